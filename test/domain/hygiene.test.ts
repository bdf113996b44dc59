/**
 * Storage hygiene on both stores: expired drafts and abandoned uploads are
 * removed with their bytes, objects without a row are collected, an upload
 * in progress and its sidecars are never touched, and a row whose object
 * vanished is reported.
 *
 * End-to-end encryption is enforced (DESIGN §4c): both mailboxes publish
 * keys through the API and the attached files are ciphertext for the draft's
 * keys (the submitted one must be; the drafts' are too).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { forEachBackend, startApp, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const HOUR = 3600_000;

forEachBackend(t, 'storage hygiene', async (t, parts) => {
  const backend = await parts();
  let now = new Date();
  const api = await startApp(t, backend, { clock: { now: () => now }, env: { BXCHANGE_UPLOAD_EXPIRY_HOURS: '24', BXCHANGE_DRAFT_EXPIRY_DAYS: '7' } });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(api.app.server.address() as { port: number }).port}`;

  const post = async (url: string, body: unknown, token?: string) => {
    const res = await api.call('POST', url, { body, ...(token ? { token } : {}) });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle']) {
    await post('/api/v1/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`/api/v1/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle']);
  const sender = await post('/api/v1/principals', { name: 'bo', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
  const token = (await post(`/api/v1/principals/${sender.id}/tokens`, {})).token as string;
  /** A draft's id; its pinned keys are kept to encrypt what is attached to it. */
  const pins = new Map<string, string[]>();
  const draft = async () => {
    const created = await post('/api/v1/envelopes', { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 's' } }, token);
    pins.set(created.id, draftKeys(created));
    return created.id as string;
  };
  const attach = async (envelopeId: string) => {
    const boundary = `----bx${randomBytes(8).toString('hex')}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.gpg"\r\ncontent-type: application/octet-stream\r\n\r\n`),
      await encryptFor(pins.get(envelopeId)!, randomBytes(1000)),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await api.call('POST', `/api/v1/envelopes/${envelopeId}/files`, { token, body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
    if (res.statusCode !== 201) throw new Error(res.body);
    return JSON.parse(res.body).files[0];
  };
  const startTus = async (envelopeId: string) => {
    const meta = `envelope ${Buffer.from(envelopeId).toString('base64')},filename ${Buffer.from('big.gpg').toString('base64')}`;
    const res = await fetch(`${base}/api/v1/uploads`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0', 'upload-length': '1000000', 'upload-metadata': meta },
    });
    if (res.status !== 201) throw new Error(await res.text());
    const [e, f] = res.headers.get('location')!.split('/').pop()!.split('.');
    return `envelopes/${e}/${f}`;
  };
  const exists = async (key: string) => (await api.services.blobStore.stat(key)) !== null;
  const keysUnder = async (prefix: string) => {
    const keys: string[] = [];
    for await (const o of api.services.blobStore.list(prefix)) keys.push(o.key);
    return keys;
  };

  // A submitted envelope (kept), an old draft (expires), a stale upload (abandoned).
  const sentId = await draft();
  const sentFile = await attach(sentId);
  t.equal((await api.call('POST', `/api/v1/envelopes/${sentId}/submit`, { token })).statusCode, 200);
  const oldDraftId = await draft();
  const oldDraftFile = await attach(oldDraftId);
  const orphanKey = `envelopes/${randomUUID()}/${randomUUID()}`;
  await api.services.blobStore.put(orphanKey, Readable.from([randomBytes(10)]));
  const start = now.getTime();
  // SFTP send folders made by mkdir that never got an envelope.json (so no draft): one old, one recent.
  const emptyFolder = (name: string) =>
    api.services.sendFolderRepository.create({
      mailbox: 'secretariat@ixelles',
      name,
      createdAt: now.toISOString(),
      envelopeId: null,
      state: 'editing',
      descriptor: null,
      files: {},
      receiptId: null,
      error: null,
    });
  t.ok(await emptyFolder('never-used'), 'an empty send folder, day 0');

  // Day 2: a draft with an upload that will be abandoned (unfinished for 6 days).
  now = new Date(start + 48 * HOUR);
  const liveDraftId = await draft();
  const staleKey = await startTus(liveDraftId);

  // Day 8 minus one hour: an upload in progress on the same draft (it must survive, sidecars too).
  now = new Date(start + 8 * 24 * HOUR - HOUR);
  const freshKey = await startTus(liveDraftId);
  const freshObjects = await keysUnder(freshKey);
  t.ok(await emptyFolder('just-made'), 'an empty send folder, day 8 minus one hour');
  t.ok(freshObjects.length > 0, 'the fresh upload has stored objects (data or sidecars)');

  // Day 8: the first draft is past the 7-day draft expiry, the live one (6 days) is not.
  now = new Date(start + 8 * 24 * HOUR);
  const result = await api.services.hygiene.sweep();

  t.test('an expired draft is deleted with its bytes', async (t) => {
    t.ok(result.expiredDrafts >= 1);
    t.equal(await api.services.envelopeRepository.find(oldDraftId), null);
    t.notOk(await exists(oldDraftFile.href ? `envelopes/${oldDraftId}/${oldDraftFile.id}` : ''), 'bytes removed');
  });

  t.test('an SFTP send folder that never became a draft expires like a draft; a recent one stays', async (t) => {
    t.equal(result.emptySendFolders, 1);
    t.same((await api.services.sendFolderRepository.list('secretariat@ixelles')).map((f) => f.name), ['just-made']);
  });

  t.test('the submitted envelope and its file are untouched', async (t) => {
    const res = await api.call('GET', `/api/v1/envelopes/${sentId}/files/${sentFile.id}`, { token: null });
    t.equal(res.statusCode, 401, 'sanity: auth still required');
    t.ok(await exists(`envelopes/${sentId}/${sentFile.id}`));
  });

  t.test('objects without rows are collected, uploads in progress and their sidecars are not', async (t) => {
    t.notOk(await exists(orphanKey), 'orphan collected');
    t.ok(result.orphansCollected >= 1);
    t.same(await keysUnder(freshKey), freshObjects, 'the upload in progress keeps every object');
  });

  t.test('an upload unfinished after the expiry is abandoned with its bytes', async (t) => {
    t.ok(result.abandonedUploads >= 1);
    t.same(await keysUnder(staleKey), [], 'no data or sidecar left');
    const envelope = await api.services.envelopeRepository.find(liveDraftId);
    t.same(envelope?.files.map((f) => f.storageKey), [freshKey], 'only the fresh upload remains');
  });

  t.test('a row whose object vanished is reported, not hidden', async (t) => {
    await api.services.blobStore.delete(`envelopes/${sentId}/${sentFile.id}`);
    const again = await api.services.hygiene.sweep();
    t.match(again.missingObjects, [{ fileId: sentFile.id, envelopeId: sentId }]);
    t.ok(await api.services.envelopeRepository.find(sentId), 'the envelope row stays');
    const download = await api.call('GET', `/api/v1/envelopes/${sentId}/files/${sentFile.id}`, { token });
    t.equal(download.statusCode, 500);
    t.equal(JSON.parse(download.body).code, 'fileMissing');
  });
});

export type { TestApp };
