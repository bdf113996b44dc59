/**
 * The server never sees the plaintext (DESIGN §4c, issue #6): after a full
 * flow through the real doors (keys made and deposited locked by the SDK,
 * a file encrypted by the SDK into a spool and uploaded with a real
 * tus-js-client process, a second one through the multipart door, submit,
 * the recipient downloading, decrypting and acknowledging), no piece of the
 * plaintext's 1 MiB marker appears anywhere the server writes: the database
 * (every table, dumped as text), the blob store (every object), its data
 * folder (tus sidecar files, staging, temporary files), new files in the
 * system's temporary folder other than the clients' own, and the server's
 * logs at trace level. The scan first proves it finds a planted copy in each
 * of those places; raw bytes, hex and base64 renderings are searched.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { promisify } from 'node:util';
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildApp, REDACTED_PATHS } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createServices } from '../../src/services.ts';
import { hashSecret } from '../../src/domain/directory.ts';
import { rowsOf } from '../../src/db/client.ts';
import { decryptFile, encryptFileToSpool, generateMailboxKey } from '../../src/sdk/index.ts';
import { ADMIN_TOKEN, forEachBackend, tempDir, testPki } from '../helpers/backends.ts';

const run = promisify(execFile);
const API = '/api/v1';
const PASSPHRASE = 'correct horse battery staple';
const MARKER_BYTES = 1024 * 1024;

/**
 * Needles cut from the marker at spread offsets, each in the renderings a
 * server could write bytes in: raw, lowercase and uppercase hex, base64 at
 * the three alignments (a window of the base64 of the whole plaintext).
 */
function needlesOf(marker: Buffer): Buffer[] {
  const needles: Buffer[] = [];
  for (let i = 0; i < 16; i++) {
    const window = marker.subarray(Math.floor((i * (marker.length - 96)) / 15), Math.floor((i * (marker.length - 96)) / 15) + 96);
    needles.push(window.subarray(0, 48), Buffer.from(window.subarray(0, 32).toString('hex')), Buffer.from(window.subarray(0, 32).toString('hex').toUpperCase()));
    for (let align = 0; align < 3; align++) {
      const b64 = window.subarray(align).toString('base64');
      needles.push(Buffer.from(b64.slice(4, 64)));
    }
  }
  return needles;
}

/** Streams `source` and says whether any needle occurs, across chunk boundaries too. */
async function contains(source: AsyncIterable<Buffer | string>, needles: Buffer[]): Promise<boolean> {
  const overlap = Math.max(...needles.map((n) => n.length)) - 1;
  let tail = Buffer.alloc(0);
  for await (const piece of source) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
    const window = Buffer.concat([tail, chunk]);
    if (needles.some((n) => window.includes(n))) return true;
    tail = window.subarray(Math.max(0, window.length - overlap));
  }
  return false;
}

/** Every regular file under `dir` (missing folders and vanished files are skipped). */
async function filesUnder(dir: string, skip: (file: string) => boolean = () => false): Promise<string[]> {
  const found: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (skip(full)) continue;
    if (entry.isDirectory()) found.push(...(await filesUnder(full, skip)));
    else if (entry.isFile()) found.push(full);
  }
  return found;
}

forEachBackend(t, 'the server never holds the plaintext', async (t, parts) => {
  const backend = await parts();
  const startedAt = Date.now();
  const logs: string[] = [];
  const logStream = new PassThrough();
  logStream.on('data', (line: Buffer) => logs.push(line.toString('utf8')));

  const config = loadConfig({ BXCHANGE_DATA_DIR: backend.dataDir, LOG_LEVEL: 'trace' });
  if (backend.s3 !== undefined) config.s3 = backend.s3;
  const services = await createServices(config, { database: backend.database, blobStore: backend.blobStore, adminTokenHash: hashSecret(ADMIN_TOKEN), pki: await testPki() });
  const app = await buildApp({ services, logger: { level: 'trace', stream: logStream, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } } });
  t.teardown(() => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });

  const call = async (method: string, url: string, token: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${text}`);
    return text === '' ? null : JSON.parse(text);
  };

  // The directory, and keys made by the SDK: the private keys deposited locked only.
  await call('POST', `${API}/entities`, ADMIN_TOKEN, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
  await call('POST', `${API}/entities`, ADMIN_TOKEN, { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
  await call('POST', `${API}/entities/ixelles/mailboxes`, ADMIN_TOKEN, { name: 'secretariat' });
  await call('POST', `${API}/entities/uccle/mailboxes`, ADMIN_TOKEN, { name: 'secretariat' });
  const principal = async (name: string, mailbox: string, roles: string[]) => {
    const p = await call('POST', `${API}/principals`, ADMIN_TOKEN, { name, kind: 'user', memberships: [{ mailbox, roles }] });
    return (await call('POST', `${API}/principals/${p.id}/tokens`, ADMIN_TOKEN, {})).token as string;
  };
  const sender = await principal('ixelles-clerk', 'secretariat@ixelles', ['read', 'send', 'manage']);
  const recipient = await principal('uccle-clerk', 'secretariat@uccle', ['read', 'manage']);
  for (const [address, token] of [
    ['secretariat@ixelles', sender],
    ['secretariat@uccle', recipient],
  ] as const) {
    const key = await generateMailboxKey({ address, passphrase: PASSPHRASE });
    await call('PUT', `${API}/mailboxes/${address}/key`, token, { publicKey: key.publicKeyArmored, privateKey: key.privateKeyArmored });
  }

  // The clients' own folders (plaintext lives there, legitimately): excluded from the temp scan.
  const clientDir = await tempDir(t, 'bxchange-client-');
  const marker = randomBytes(MARKER_BYTES);
  const plaintext = Buffer.concat([Buffer.from('%PDF-1.7 délibération du conseil communal\n'), marker, randomBytes(300_000)]);
  const plainFile = path.join(clientDir, 'deliberation.pdf');
  await writeFile(plainFile, plaintext);
  const needles = needlesOf(marker);

  // The sender: a draft, two files encrypted into spools, one by tus, one by multipart; submit.
  const draft = await call('POST', `${API}/envelopes`, sender, { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'Délibération' } });
  const keys = (draft.encryptionKeys as Array<{ publicKey: string }>).map((k) => k.publicKey);
  const spool1 = path.join(clientDir, 'spool-1.gpg');
  const spool2 = path.join(clientDir, 'spool-2.gpg');
  const sealed = await encryptFileToSpool(plainFile, spool1, keys);
  await encryptFileToSpool(plainFile, spool2, keys);
  t.equal(sealed.plaintextSha256, createHash('sha256').update(plaintext).digest('hex'), 'the SDK hashed the plaintext');
  const tusClient = path.join(import.meta.dirname, '..', 'helpers', 'tus-client.ts');
  const { stdout } = await run(process.execPath, [tusClient, `${base}${API}/uploads`, sender, spool1, draft.id]);
  t.match(stdout, /"event":"success"/, 'tus upload of the spool');
  const form = new FormData();
  form.append('plaintextSha256', sealed.plaintextSha256);
  form.append('file', new Blob([await readFile(spool2)], { type: 'application/pgp-encrypted' }), 'annexe.pdf.gpg');
  const multipart = await fetch(`${base}${API}/envelopes/${draft.id}/files`, { method: 'POST', headers: { authorization: `Bearer ${sender}` }, body: form });
  t.equal(multipart.status, 201, 'multipart upload of the second spool');
  const submitted = await call('POST', `${API}/envelopes/${draft.id}/submit`, sender);
  t.equal(submitted.status, 'submitted');

  // The recipient: downloads, decrypts with its locked key, acknowledges.
  const locked = await call('GET', `${API}/mailboxes/secretariat@uccle/private-key`, recipient);
  const privateKey = locked.items?.[0]?.privateKey as string;
  t.type(privateKey, 'string', 'the locked private key');
  for (const file of submitted.files as Array<{ id: string; name: string }>) {
    const res = await fetch(`${base}${API}/envelopes/${draft.id}/files/${file.id}`, { headers: { authorization: `Bearer ${recipient}` } });
    const cipher = path.join(clientDir, `${file.id}.gpg`);
    await writeFile(cipher, Buffer.from(await res.arrayBuffer()));
    const out = path.join(clientDir, `${file.id}.out`);
    await decryptFile(cipher, out, privateKey, PASSPHRASE);
    t.ok((await readFile(out)).equals(plaintext), `${file.name}: the recipient reads the plaintext`);
  }
  await call('POST', `${API}/envelopes/${draft.id}/acknowledge`, recipient);

  // ------------------------------------------------------------------ the scan
  const db = services.database.db;
  const tables = rowsOf<{ table_name: string }>(
    await db.execute(sql`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`),
  ).map((r) => r.table_name);
  t.ok(tables.includes('files') && tables.includes('envelopes') && tables.includes('audit_events'), `dumping ${tables.length} tables`);
  async function* databaseDump(): AsyncIterable<string> {
    for (const table of tables) {
      // Row by row as text: bytea renders as \x hex, jsonb as JSON, text as is.
      for (const row of rowsOf<{ line: string }>(await db.execute(sql.raw(`SELECT t::text AS line FROM "${table}" t`)))) yield `${row.line}\n`;
    }
  }
  async function* blobObjects(): AsyncIterable<Buffer> {
    for await (const object of services.blobStore.list('')) yield* (await services.blobStore.get(object.key)) as AsyncIterable<Buffer>;
  }
  const ownClientFile = (file: string) => file.startsWith(clientDir);
  const serverFiles = () => filesUnder(backend.dataDir);
  const newTempFiles = async () => {
    const found: string[] = [];
    for (const file of await filesUnder(os.tmpdir(), (f) => ownClientFile(f) || f.startsWith(backend.dataDir) || /\/(?:gpg-|bxchange-pki-)/.test(f))) {
      try {
        if ((await stat(file)).mtimeMs >= startedAt) found.push(file);
      } catch {
        // gone meanwhile
      }
    }
    return found;
  };
  async function* fileContents(files: string[]): AsyncIterable<Buffer> {
    for (const file of files) {
      try {
        yield* createReadStream(file) as AsyncIterable<Buffer>;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  const places = {
    database: () => databaseDump(),
    'blob store': () => blobObjects(),
    'data folder (tus sidecars, staging)': async function* () {
      yield* fileContents(await serverFiles());
    },
    'new temporary files': async function* () {
      yield* fileContents(await newTempFiles());
    },
    logs: async function* () {
      yield* logs;
    },
  };

  t.test('the scan finds a planted copy in each place', async (t) => {
    // Database: a text column holds a slice of the marker (hex, as a bytea column renders) for a moment.
    const [file] = rowsOf<{ id: string; name: string }>(await db.execute(sql`SELECT id, name FROM files LIMIT 1`));
    await db.execute(sql`UPDATE files SET name = ${marker.subarray(0, 4096).toString('hex')} WHERE id = ${file!.id}`);
    t.ok(await contains(places.database(), needles), 'database: found');
    await db.execute(sql`UPDATE files SET name = ${file!.name} WHERE id = ${file!.id}`);
    await services.blobStore.put('planted/marker', Readable.from([marker]));
    t.ok(await contains(places['blob store'](), needles), 'blob store: found');
    await services.blobStore.delete('planted/marker');
    const planted = path.join(backend.dataDir, 'tmp', 'planted.bin');
    await mkdir(path.dirname(planted), { recursive: true });
    await writeFile(planted, Buffer.concat([randomBytes(1000), marker.subarray(500_000, 600_000)]));
    t.ok(await contains(places['data folder (tus sidecars, staging)'](), needles), 'data folder: found');
    await rm(planted);
    const plantedTemp = path.join(os.tmpdir(), `bxchange-planted-${randomBytes(4).toString('hex')}`);
    await writeFile(plantedTemp, marker.toString('base64'));
    t.ok(await contains(places['new temporary files'](), needles), 'temporary folder: found (base64)');
    await rm(plantedTemp);
    logs.push(`{"msg":"planted","data":"${marker.subarray(0, 200).toString('hex')}"}\n`);
    t.ok(await contains(places.logs(), needles), 'logs: found (hex)');
    logs.pop();
  });

  t.test('after the full flow, no piece of the plaintext anywhere the server writes', async (t) => {
    t.ok(logs.length > 10, `the logs were captured (${logs.length} lines at trace level)`);
    // The embedded default keeps its blobs and tus sidecars there; with S3 the folder may be left empty.
    if (backend.s3 === undefined) t.ok((await serverFiles()).length > 0, 'the data folder was written');
    for (const [place, source] of Object.entries(places)) {
      t.notOk(await contains(source(), needles), `${place}: no plaintext`);
    }
  });
});
