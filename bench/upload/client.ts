/**
 * The upload benchmark's client, as its own process:
 *   node bench/upload/client.ts tus <endpoint> <file> [token envelopeId]   tus-js-client, chunkSize Infinity
 *   node bench/upload/client.ts put <url> <file>                           node:http PUT
 * The whole file is read into a Buffer first (tus-js-client in Node only
 * accepts an unlimited chunk with a Buffer; a ReadStream needs a finite
 * chunkSize), then {"event":"ready"} is printed and the client waits for a
 * "go" line on stdin, so the server's counters can be reset just before.
 * Both clients send the Buffer the same way (writable-highWaterMark slices,
 * waiting for 'drain'), as tus-js-client's NodeHttpStack does.
 * The timed span runs from the first request to the final response (for
 * tus: creation POST, the PATCH, and whatever the server does before
 * answering it, e.g. bxchange's hash digest, database update and fsync).
 * Prints {"event":"done","seconds":…,"bytes":…,"cpuSeconds":…,"url":…}.
 */
import { readFileSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Upload } from 'tus-js-client';

const [mode, target, file, token, envelopeId] = process.argv.slice(2);
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);
if ((mode !== 'tus' && mode !== 'put') || target === undefined || file === undefined) {
  process.stderr.write('usage: client.ts tus <endpoint> <file> [token envelopeId] | put <url> <file>\n');
  process.exit(2);
}

const data = readFileSync(file);
say({ event: 'ready', bytes: data.length });
await new Promise<void>((resolve) => {
  const lines = createInterface({ input: process.stdin });
  lines.once('line', () => {
    lines.close();
    // An open stdin would keep the process alive after the upload.
    process.stdin.destroy();
    resolve();
  });
});

function tusUpload(): Promise<string> {
  return new Promise((resolve, reject) => {
    const upload = new Upload(data, {
      endpoint: target!,
      chunkSize: Infinity,
      retryDelays: [],
      removeFingerprintOnSuccess: true,
      storeFingerprintForResuming: false,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      metadata: {
        filename: path.basename(file!),
        filetype: 'application/octet-stream',
        ...(envelopeId === undefined ? {} : { envelope: envelopeId }),
      },
      onSuccess: () => resolve(upload.url ?? ''),
      onError: reject,
    });
    upload.start();
  });
}

/** Same slicing as tus-js-client's writeBufferToStreamWithProgress. */
function writeBuffer(req: ClientRequest, source: Buffer): void {
  let offset = 0;
  const next = () => {
    for (;;) {
      const chunk = source.subarray(offset, offset + Math.min(req.writableHighWaterMark, source.length - offset));
      offset += chunk.length;
      const more = req.write(chunk);
      if (offset >= source.length) {
        req.end();
        return;
      }
      if (!more) {
        req.once('drain', next);
        return;
      }
    }
  };
  next();
}

function putUpload(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(target!, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) } });
    req.on('error', reject);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('end', () => {
        if (res.statusCode === 201 || res.statusCode === 204) resolve(target!);
        else reject(new Error(`PUT answered ${res.statusCode}: ${Buffer.concat(parts).toString('utf8').slice(0, 300)}`));
      });
    });
    writeBuffer(req, data);
  });
}

const cpu0 = process.cpuUsage();
const t0 = performance.now();
try {
  const url = mode === 'tus' ? await tusUpload() : await putUpload();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  say({ event: 'done', seconds, bytes: data.length, cpuSeconds: (cpu.user + cpu.system) / 1e6, url });
} catch (err) {
  say({ event: 'error', message: String(err) });
  process.exitCode = 1;
}
