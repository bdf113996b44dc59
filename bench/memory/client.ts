/**
 * The streaming tus client of the memory and concurrency benchmarks, as its own process:
 *   node bench/memory/client.ts '<json spec>'
 * spec: { "chunkSize": number | null, "uploads": [{ "label", "endpoint", "file", "headers"?, "metadata" }] }
 *
 * A minimal tus 1.0 client on node:http (creation POST, then PATCH requests
 * whose body is an fs.ReadStream piped into the request): the file is never
 * held in memory, whatever its size (tus-js-client in Node only takes an
 * unlimited chunk from a Buffer, and buffers each finite chunk). With
 * chunkSize null one PATCH carries the whole file, like the upload
 * benchmark's chunkSize Infinity; with a number, PATCHes of that many bytes.
 * Every upload of the spec starts at once (one socket each, keep-alive agent,
 * no limit); nothing is retried: a failure is counted, not hidden.
 *
 * Prints {"event":"ready"} once the files are checked, waits for a "go" line
 * on stdin (so the server's counters can be reset just before), then
 * {"event":"done","seconds","bytes","failures","uploads":[…],"cpuSeconds","peakRssMiB"}:
 * seconds from the first request to the last answer, bytes of the uploads
 * that succeeded, and the client's own peak RSS (proof it streamed).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export interface ClientUpload {
  label: string;
  endpoint: string;
  file: string;
  headers?: Record<string, string>;
  metadata: Record<string, string>;
}

export interface ClientSpec {
  /** Bytes per PATCH; null = one PATCH for the whole file. */
  chunkSize: number | null;
  uploads: ClientUpload[];
}

export interface ClientUploadResult {
  label: string;
  ok: boolean;
  url?: string;
  bytes: number;
  /** From this upload's creation POST to its last answer. */
  seconds: number;
  error?: string;
}

const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

const raw = process.argv[2];
if (raw === undefined) {
  process.stderr.write('usage: client.ts \'{"chunkSize":null,"uploads":[{"label","endpoint","file","headers","metadata"}]}\'\n');
  process.exit(2);
}
const spec = JSON.parse(raw) as ClientSpec;
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One request; `body` is piped in (and destroyed if the request fails). */
function send(method: string, url: string, headers: OutgoingHttpHeaders, body?: Readable): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent });
    req.on('error', (err) => {
      body?.destroy();
      reject(err);
    });
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8').slice(0, 500) }));
    });
    if (body === undefined) req.end();
    else {
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    }
  });
}

async function upload(u: ClientUpload): Promise<ClientUploadResult> {
  const t0 = performance.now();
  let sent = 0;
  try {
    const size = (await stat(u.file)).size;
    const metadata = Object.entries(u.metadata)
      .map(([key, value]) => `${key} ${Buffer.from(value, 'utf8').toString('base64')}`)
      .join(',');
    const created = await send('POST', u.endpoint, {
      ...u.headers,
      'tus-resumable': '1.0.0',
      'upload-length': String(size),
      'upload-metadata': metadata,
      'content-length': '0',
    });
    const location = created.headers.location;
    if (created.status !== 201 || location === undefined) throw new Error(`creation answered ${created.status}: ${created.text}`);
    const url = new URL(location, u.endpoint).href;
    let offset = 0;
    while (offset < size) {
      const end = spec.chunkSize === null ? size : Math.min(size, offset + spec.chunkSize);
      const answer = await send(
        'PATCH',
        url,
        {
          ...u.headers,
          'tus-resumable': '1.0.0',
          'upload-offset': String(offset),
          'content-type': 'application/offset+octet-stream',
          'content-length': String(end - offset),
        },
        createReadStream(u.file, { start: offset, end: end - 1 }),
      );
      if (answer.status !== 204) throw new Error(`PATCH at ${offset} answered ${answer.status}: ${answer.text}`);
      if (Number(answer.headers['upload-offset']) !== end) throw new Error(`PATCH at ${offset}: server offset ${answer.headers['upload-offset']}, expected ${end}`);
      sent = end;
      offset = end;
    }
    return { label: u.label, ok: true, url, bytes: size, seconds: (performance.now() - t0) / 1000 };
  } catch (err) {
    return { label: u.label, ok: false, bytes: sent, seconds: (performance.now() - t0) / 1000, error: String(err) };
  }
}

for (const u of spec.uploads) await stat(u.file);
say({ event: 'ready', uploads: spec.uploads.length });
await new Promise<void>((resolve) => {
  const lines = createInterface({ input: process.stdin });
  lines.once('line', () => {
    lines.close();
    // An open stdin would keep the process alive after the uploads.
    process.stdin.destroy();
    resolve();
  });
});

const cpu0 = process.cpuUsage();
const t0 = performance.now();
const results = await Promise.all(spec.uploads.map(upload));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
agent.destroy();
const ok = results.filter((r) => r.ok);
say({
  event: 'done',
  seconds,
  bytes: ok.reduce((sum, r) => sum + r.bytes, 0),
  failures: results.length - ok.length,
  uploads: results,
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
});
