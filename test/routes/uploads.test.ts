/**
 * tus uploads with the real tus-js-client against the real server (listening
 * on a port), on both stores: resumption after the client is killed, after a
 * server restart, the checksum extension with raw PATCH requests, limits and
 * authorisation.
 *
 * End-to-end encryption is enforced (DESIGN §4c): the seed's mailboxes
 * publish keys, and the uploaded files are real OpenPGP ciphertext for the
 * keys the draft pins (openpgp.js, encrypted once into a temp file); the
 * server's SHA-256 is compared with the ciphertext file's, and a completed
 * upload is then submitted, so the server's encryption check accepts what
 * the resumed or checksummed transfer stored.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const CLIENT = path.join(import.meta.dirname, '../helpers/tus-client.ts');

interface ClientRun {
  events: any[];
  done: Promise<number | null>;
  kill(): void;
}

/** Runs the tus client; `until` may kill it when an event satisfies it. */
function runClient(args: string[], until?: (event: any) => boolean): ClientRun {
  const child = spawn(process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const events: any[] = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const event = JSON.parse(line);
    events.push(event);
    if (until?.(event)) child.kill('SIGKILL');
  });
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { events, done, kill: () => child.kill('SIGKILL') };
}

async function setup(current: () => TestApp) {
  const post = async (url: string, body: unknown, token?: string) => {
    const res = await current().call('POST', url, { body, ...(token ? { token } : {}) });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle', 'evere']) {
    await post('/api/v1/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`/api/v1/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  const sender = await post('/api/v1/principals', { name: 'ixelles-bo', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
  const stranger = await post('/api/v1/principals', { name: 'evere-bo', kind: 'machine', memberships: [{ mailbox: 'secretariat@evere', roles: ['read', 'send'] }] });
  const senderToken = (await post(`/api/v1/principals/${sender.id}/tokens`, {})).token as string;
  const strangerToken = (await post(`/api/v1/principals/${stranger.id}/tokens`, {})).token as string;
  // A draft needs a key for each recipient and for its sender.
  await publishKeys(current(), ['secretariat@ixelles', 'secretariat@uccle', 'secretariat@evere']);
  /** A new draft: its id and the armored keys it pins (what its files must be encrypted for). */
  const draft = async (): Promise<{ id: string; keys: string[] }> => {
    const created = await post('/api/v1/envelopes', { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'Budget 2027' } }, senderToken);
    return { id: created.id as string, keys: draftKeys(created) };
  };
  return { senderToken, strangerToken, draft };
}

/** `plainSize` random bytes encrypted for `keys`, written once to a temp file: its path, size and SHA-256. */
async function cipherFile(t: Test, keys: string[], plainSize: number): Promise<{ file: string; size: number; sha256: string }> {
  const dir = await tempDir(t, 'bx-upload-');
  const data = await encryptFor(keys, randomBytes(plainSize));
  const file = path.join(dir, 'act.pdf.gpg');
  await writeFile(file, data);
  return { file, size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

async function listen(api: TestApp): Promise<string> {
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const address = api.app.server.address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

async function envelopeFileList(base: string, token: string, envelopeId: string): Promise<any[]> {
  const res = await fetch(`${base}/api/v1/envelopes/${envelopeId}`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as any;
  return body.files;
}

async function envelopeFile(base: string, token: string, envelopeId: string): Promise<any> {
  return (await envelopeFileList(base, token, envelopeId))[0];
}

/** Submits the envelope: its status and body (the server checks each file's OpenPGP header). */
async function submit(base: string, token: string, envelopeId: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/api/v1/envelopes/${envelopeId}/submit`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

forEachBackend(t, 'tus uploads', async (suite, parts) => {
  const t = suite;
  const backend = await parts();
  let api = await startApp(t, backend, { env: { BXCHANGE_MAX_UPLOAD_BYTES: String(80 * 1024 * 1024) } });
  const s = await setup(() => api);
  let base = await listen(api);

  t.test('a 50 MB upload killed half-way resumes with a new client and the server hash matches the file', async (t) => {
    const { id: envelopeId, keys } = await s.draft();
    const { file, size, sha256 } = await cipherFile(t, keys, 50 * 1024 * 1024);
    const first = runClient([`${base}/api/v1/uploads`, s.senderToken, file, envelopeId], (e) => e.event === 'progress' && e.sent > 25 * 1024 * 1024);
    await first.done;
    const url = first.events.find((e) => e.event === 'url')?.url;
    t.ok(url, 'the upload was created');
    t.notOk(first.events.some((e) => e.event === 'success'), 'the first client died before finishing');
    const head = await fetch(new URL(url, base), { method: 'HEAD', headers: { authorization: `Bearer ${s.senderToken}`, 'tus-resumable': '1.0.0' } });
    const offset = Number(head.headers.get('upload-offset'));
    t.ok(offset > 0 && offset < size, `stored part of it (${offset} bytes)`);
    const [envelopePart, filePart] = new URL(url, base).pathname.split('/').pop()!.split('.');
    const hashed = api.services.uploadStore.hashedOffset(`envelopes/${envelopePart}/${filePart}`);
    if (backend.name === 'embedded') {
      // The common path: the running hash covers exactly the stored bytes (caught up from a checkpoint).
      t.equal(hashed, offset, 'the running hash covers the confirmed offset');
    } else {
      t.ok(hashed === null || hashed === offset, 'on S3 the running hash is either exact or dropped (rebuilt at the end)');
    }

    const second = runClient([`${base}/api/v1/uploads`, s.senderToken, file, envelopeId, new URL(url, base).href]);
    t.equal(await second.done, 0);
    t.ok(second.events.some((e) => e.event === 'success'), 'the second client finished');
    const progress = second.events.filter((e) => e.event === 'progress');
    t.ok(progress.length > 0 && progress[0].sent >= offset, 'it resumed rather than restarting');
    const stored = await envelopeFile(base, s.senderToken, envelopeId);
    t.equal(stored.sha256, sha256, 'server SHA-256 = ciphertext file SHA-256');
    t.equal(stored.size, size);
    t.equal(stored.complete, true);
    t.equal(stored.name, 'act.pdf.gpg');
    const submitted = await submit(base, s.senderToken, envelopeId);
    t.equal(submitted.status, 200, `the resumed ciphertext passes the encryption check: ${JSON.stringify(submitted.body.issues ?? null)}`);
  });

  t.test('an upload resumes after a server restart in the middle', async (t) => {
    const { id: envelopeId, keys } = await s.draft();
    const { file, sha256 } = await cipherFile(t, keys, 20 * 1024 * 1024);
    const first = runClient([`${base}/api/v1/uploads`, s.senderToken, file, envelopeId, '-', String(4 * 1024 * 1024)], (e) => e.event === 'progress' && e.sent >= 9 * 1024 * 1024);
    await first.done;
    const url = first.events.find((e) => e.event === 'url')?.url;
    // Restart: a new app with new services (nothing kept in memory), same database and store.
    await api.app.close();
    api = await startApp(suite, backend, { env: { BXCHANGE_MAX_UPLOAD_BYTES: String(80 * 1024 * 1024) } });
    base = await listen(api);
    const second = runClient([`${base}/api/v1/uploads`, s.senderToken, file, envelopeId, new URL(new URL(url).pathname, base).href, String(4 * 1024 * 1024)]);
    t.equal(await second.done, 0, JSON.stringify(second.events.filter((e) => e.event !== 'progress')));
    const stored = await envelopeFile(base, s.senderToken, envelopeId);
    t.equal(stored.sha256, sha256, 'server SHA-256 = ciphertext file SHA-256');
    const submitted = await submit(base, s.senderToken, envelopeId);
    t.equal(submitted.status, 200, `submitted after the restart: ${JSON.stringify(submitted.body.issues ?? null)}`);
  });

  t.test("deleting a draft or one of its files leaves nothing in the store (bytes and the upload store's sidecars)", async (t) => {
    const auth = { authorization: `Bearer ${s.senderToken}`, 'tus-resumable': '1.0.0' };
    const stored = async (envelopeId: string) => {
      const keys: string[] = [];
      for await (const object of api.services.blobStore.list(`envelopes/${envelopeId}/`)) keys.push(object.key);
      return keys.sort();
    };
    /** A tus upload of `total` bytes of which `sent` are PATCHed; its URL. */
    const upload = async (envelopeId: string, keys: Awaited<ReturnType<typeof s.draft>>['keys'], total: number, sent: number) => {
      const data = await encryptFor(keys, randomBytes(total));
      const meta = `envelope ${Buffer.from(envelopeId).toString('base64')},filename ${Buffer.from('a.gpg').toString('base64')}`;
      const created = await fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { ...auth, 'upload-length': String(data.length), 'upload-metadata': meta } });
      t.equal(created.status, 201);
      const url = new URL(created.headers.get('location')!, base);
      const patched = await fetch(url, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }, body: data.subarray(0, sent === total ? data.length : sent) });
      t.equal(patched.status, 204);
      return url;
    };
    const { id: envelopeId, keys } = await s.draft();
    await upload(envelopeId, keys, 2 * 1024 * 1024, 2 * 1024 * 1024);
    await upload(envelopeId, keys, 12 * 1024 * 1024, 9 * 1024 * 1024); // on S3: one complete part and an incomplete one
    const before = await stored(envelopeId);
    t.ok(before.length >= 2, `the uploads are in the store (${before.join(', ')})`);
    const deleted = await fetch(`${base}/api/v1/envelopes/${envelopeId}`, { method: 'DELETE', headers: auth });
    t.equal(deleted.status, 204);
    t.same(await stored(envelopeId), [], 'nothing of the draft is left in the store');

    const other = await s.draft();
    await upload(other.id, other.keys, 1024 * 1024, 1024 * 1024);
    const [file] = (await envelopeFileList(base, s.senderToken, other.id)) as Array<{ id: string }>;
    const removed = await fetch(`${base}/api/v1/envelopes/${other.id}/files/${file!.id}`, { method: 'DELETE', headers: auth });
    t.equal(removed.status, 204);
    t.same(await stored(other.id), [], 'nothing of the removed file is left in the store');
  });

  t.test('checksum extension: a corrupted chunk gets 460 and leaves the offset; the right chunk then succeeds', async (t) => {
    const { id: envelopeId, keys } = await s.draft();
    const data = await encryptFor(keys, randomBytes(3 * 1024 * 1024));
    const auth = { authorization: `Bearer ${s.senderToken}`, 'tus-resumable': '1.0.0' };
    const options = await fetch(`${base}/api/v1/uploads`, { method: 'OPTIONS', headers: auth });
    t.match(options.headers.get('tus-extension'), /checksum/);
    t.equal(options.headers.get('tus-checksum-algorithm'), 'sha256');
    const meta = `envelope ${Buffer.from(envelopeId).toString('base64')},filename ${Buffer.from('x.gpg').toString('base64')}`;
    const created = await fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { ...auth, 'upload-length': String(data.length), 'upload-metadata': meta } });
    t.equal(created.status, 201);
    const url = new URL(created.headers.get('location')!, base);
    const chunk = data.subarray(0, 1024 * 1024);
    const corrupted = Buffer.from(chunk);
    corrupted[1000] = corrupted[1000]! ^ 0xff;
    const digest = (b: Buffer) => `sha256 ${createHash('sha256').update(b).digest('base64')}`;
    const patch = (body: Buffer, offset: number, checksum: string) =>
      fetch(url, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), 'upload-checksum': checksum }, body });
    const bad = await patch(corrupted, 0, digest(chunk));
    t.equal(bad.status, 460);
    t.match(bad.headers.get('content-type'), /problem\+json/);
    t.equal(((await bad.json()) as any).type, 'urn:problem-type:bxchange:checksumMismatch');
    const head = await fetch(url, { method: 'HEAD', headers: auth });
    t.equal(head.headers.get('upload-offset'), '0', 'the offset did not move');
    const good = await patch(chunk, 0, digest(chunk));
    t.equal(good.status, 204);
    t.equal(good.headers.get('upload-offset'), String(chunk.length));
    const unsupported = await patch(data.subarray(chunk.length), chunk.length, 'md5 AAAA');
    t.equal(unsupported.status, 400);
    const rest = data.subarray(chunk.length);
    const last = await patch(rest, chunk.length, digest(rest));
    t.equal(last.status, 204);
    const stored = await envelopeFile(base, s.senderToken, envelopeId);
    t.equal(stored.sha256, createHash('sha256').update(data).digest('hex'));
    const submitted = await submit(base, s.senderToken, envelopeId);
    t.equal(submitted.status, 200, `the checksummed ciphertext is submitted: ${JSON.stringify(submitted.body.issues ?? null)}`);
  });

  t.test('refusals: another entity, wrong offset, too large, traversal file name', async (t) => {
    const { id: envelopeId } = await s.draft();
    const auth = (token: string) => ({ authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0' });
    const meta = (filename: string) => `envelope ${Buffer.from(envelopeId).toString('base64')},filename ${Buffer.from(filename).toString('base64')}`;
    const foreign = await fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { ...auth(s.strangerToken), 'upload-length': '10', 'upload-metadata': meta('a.gpg') } });
    t.equal(foreign.status, 404, "another entity's draft does not exist for it");
    t.match(foreign.headers.get('content-type'), /problem\+json/);
    const tooLarge = await fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { ...auth(s.senderToken), 'upload-length': String(81 * 1024 * 1024), 'upload-metadata': meta('a.gpg') } });
    t.equal(tooLarge.status, 413);
    const anonymous = await fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { 'tus-resumable': '1.0.0', 'upload-length': '10', 'upload-metadata': meta('a.gpg') } });
    t.equal(anonymous.status, 401);
    const created = await fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { ...auth(s.senderToken), 'upload-length': '10', 'upload-metadata': meta('../../etc/passwd') } });
    t.equal(created.status, 201);
    const location = created.headers.get('location')!;
    t.notMatch(location, /passwd|etc/, 'the URL never derives from the file name');
    const url = new URL(location, base);
    const wrongOffset = await fetch(url, { method: 'PATCH', headers: { ...auth(s.senderToken), 'content-type': 'application/offset+octet-stream', 'upload-offset': '5' }, body: Buffer.from('hello') });
    t.equal(wrongOffset.status, 409);
    const strangerHead = await fetch(url, { method: 'HEAD', headers: auth(s.strangerToken) });
    t.equal(strangerHead.status, 404);
    const envelope = (await (await fetch(`${base}/api/v1/envelopes/${envelopeId}`, { headers: auth(s.senderToken) })).json()) as any;
    t.equal(envelope.files.length, 1, 'only the accepted upload exists');
    t.equal(envelope.files[0].name, 'passwd', 'stored as a plain name');
    t.equal(envelope.files[0].complete, false);
    const submit = await fetch(`${base}/api/v1/envelopes/${envelopeId}/submit`, { method: 'POST', headers: auth(s.senderToken) });
    t.equal(submit.status, 422, 'an incomplete upload blocks the submission');
    t.match(((await submit.json()) as any).issues, [{ name: `files/${envelope.files[0].id}` }]);
    const terminated = await fetch(url, { method: 'DELETE', headers: auth(s.senderToken) });
    t.equal(terminated.status, 204);
    const after = (await (await fetch(`${base}/api/v1/envelopes/${envelopeId}`, { headers: auth(s.senderToken) })).json()) as any;
    t.equal(after.files.length, 0, 'termination removes the file');
  });
});
