/**
 * A real tus-js-client upload, run as its own process so a test can kill it
 * mid-upload. Prints one JSON line per event on stdout:
 *   {"event":"url","url":…} {"event":"progress","sent":…,"total":…} {"event":"success"} {"event":"error","message":…}
 * Usage: node tus-client.ts <endpoint> <token> <file> <envelopeId> [uploadUrl|-] [chunkSize|inf]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Upload } from 'tus-js-client';

const [endpoint, token, file, envelopeId, uploadUrl = '-', chunk = 'inf'] = process.argv.slice(2);
const data = readFileSync(file!);
const say = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

const upload = new Upload(data, {
  endpoint: endpoint!,
  ...(uploadUrl !== '-' ? { uploadUrl } : {}),
  chunkSize: chunk === 'inf' ? Infinity : Number(chunk),
  retryDelays: [0, 200, 500],
  headers: { authorization: `Bearer ${token}` },
  metadata: { envelope: envelopeId!, filename: path.basename(file!), filetype: 'application/pgp-encrypted' },
  onUploadUrlAvailable() {
    say({ event: 'url', url: upload.url });
  },
  onProgress(sent, total) {
    say({ event: 'progress', sent, total });
  },
  onSuccess() {
    say({ event: 'success', url: upload.url });
  },
  onError(error) {
    say({ event: 'error', message: String(error) });
    process.exitCode = 1;
  },
});
upload.start();
