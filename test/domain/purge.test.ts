/**
 * The retention purge on both stores: an envelope whose last day of
 * retention is past in Brussels loses every stored object (tus sidecars
 * included) but keeps its row, its file digests, its evidence and an audit
 * entry saying why; one on its last day is untouched; a run that cannot
 * delete marks nothing; running twice changes nothing; the hygiene sweep does
 * not report a purged envelope's files as missing objects.
 *
 * End-to-end encryption is enforced (DESIGN §4c): both mailboxes publish
 * keys through the API and every file is ciphertext for its draft's keys, so
 * the digests kept after the purge are the ciphertext's.
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../src/db/client.ts';
import { createPurgeRepository } from '../../src/db/purge-repository.ts';
import { createPurge } from '../../src/domain/purge.ts';
import { forEachBackend, startApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const API = '/api/v1';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

forEachBackend(t, 'retention purge', async (t, parts) => {
  const backend = await parts();
  let now = new Date();
  const api = await startApp(t, backend, { clock: { now: () => now } });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(api.app.server.address() as { port: number }).port}`;
  const db = api.services.database.db;
  const exec = async <T>(query: string): Promise<T[]> => rowsOf<T>(await db.execute(sql.raw(query)));

  const post = async (url: string, body: unknown, token?: string) => {
    const res = await api.call('POST', url, { body, ...(token === undefined ? {} : { token }) });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle']) {
    await post(`${API}/entities`, { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`${API}/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle']);
  const sender = await post(`${API}/principals`, { name: 'ixelles-bo', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
  const token = (await post(`${API}/principals/${sender.id}/tokens`, {})).token as string;
  const exporterPrincipal = await post(`${API}/principals`, { name: 'dwh', kind: 'machine', capabilities: ['export'] });
  const exporter = (await post(`${API}/principals/${exporterPrincipal.id}/tokens`, {})).token as string;

  const multipart = async (envelopeId: string, name: string, data: Buffer) => {
    const boundary = `----bx${randomBytes(8).toString('hex')}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: application/pgp-encrypted\r\n\r\n`),
      data,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await api.call('POST', `${API}/envelopes/${envelopeId}/files`, { token, body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
    if (res.statusCode !== 201) throw new Error(res.body);
  };
  /** A tus upload in one request (creation-with-upload): the upload store keeps a sidecar beside the object. */
  const tus = async (envelopeId: string, name: string, data: Buffer) => {
    const meta = `envelope ${Buffer.from(envelopeId).toString('base64')},filename ${Buffer.from(name).toString('base64')}`;
    const res = await fetch(`${base}${API}/uploads`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'tus-resumable': '1.0.0',
        'upload-length': String(data.length),
        'upload-metadata': meta,
        'content-type': 'application/offset+octet-stream',
      },
      body: data,
    });
    if (res.status !== 201) throw new Error(`tus: ${res.status} ${await res.text()}`);
    if (res.headers.get('upload-offset') !== String(data.length)) throw new Error(`tus: offset ${res.headers.get('upload-offset')}`);
  };
  /** A submitted letter with a file per entry: `plaintext` encrypted for the draft's keys; its id and the ciphertexts uploaded. */
  const letter = async (files: Array<{ via: 'multipart' | 'tus'; plaintext: Buffer }>) => {
    const draft = await post(`${API}/envelopes`, { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'Convention' } }, token);
    const uploaded: Buffer[] = [];
    for (const [i, file] of files.entries()) {
      const data = await encryptFor(draftKeys(draft), file.plaintext);
      uploaded.push(data);
      await (file.via === 'tus' ? tus : multipart)(draft.id, `annexe-${i}.gpg`, data);
    }
    const res = await api.call('POST', `${API}/envelopes/${draft.id}/submit`, { token });
    if (res.statusCode !== 200) throw new Error(`submit: ${res.statusCode} ${res.body}`);
    return { id: draft.id as string, uploaded };
  };
  const keysUnder = async (prefix: string) => {
    const keys: string[] = [];
    for await (const object of api.services.blobStore.list(prefix)) keys.push(object.key);
    return keys;
  };
  const fileRows = (id: string) =>
    exec<Record<string, unknown>>(`SELECT id, name, size, sha256, plaintext_sha256, storage_key, completed_at FROM files WHERE envelope_id = '${id}' ORDER BY id`);
  const evidenceRows = (id: string) =>
    exec<Record<string, unknown>>(`SELECT id, event_type, encode(canonical, 'hex') AS canonical, encode(signature, 'hex') AS signature FROM evidence WHERE envelope_id = '${id}' ORDER BY id`);
  const purgedAt = async (id: string) => (await exec<{ purged_at: unknown }>(`SELECT purged_at FROM envelopes WHERE id = '${id}'`))[0]!.purged_at;
  const auditCount = async () => Number((await exec<{ n: string | number }>('SELECT count(*) AS n FROM audit_events'))[0]!.n);
  const setRetention = (id: string, date: string) => exec(`UPDATE envelopes SET retain_until = '${date}' WHERE id = '${id}'`);

  const due = await letter([
    { via: 'multipart', plaintext: randomBytes(1000) },
    { via: 'tus', plaintext: randomBytes(20_000) },
  ]);
  const dueId = due.id;
  /** The tus-uploaded ciphertext. */
  const annex = due.uploaded[1]!;
  const lastDayId = (await letter([{ via: 'multipart', plaintext: randomBytes(500) }])).id;
  const failingId = (await letter([{ via: 'multipart', plaintext: randomBytes(200) }])).id;

  // 23:30 UTC on 10 March 2031 is already 11 March in Brussels (CET, UTC+1): the purge counts Brussels days.
  now = new Date('2031-03-10T23:30:00Z');
  await setRetention(dueId, '2031-03-10');
  await setRetention(lastDayId, '2031-03-11');
  await setRetention(failingId, '2031-03-01');

  const dueObjects = await keysUnder(`envelopes/${dueId}/`);
  const dueFilesBefore = await fileRows(dueId);
  const dueEvidenceBefore = await evidenceRows(dueId);
  const lastDayObjects = await keysUnder(`envelopes/${lastDayId}/`);

  await t.test('the test envelopes have what the purge must remove', async (t) => {
    t.equal(dueFilesBefore.length, 2);
    t.ok(dueObjects.some((k) => /\.(json|info)$/.test(k)), `the tus upload left a sidecar (${dueObjects.join(', ')})`);
    t.ok(dueEvidenceBefore.length >= 2, 'acceptance and consignment receipts');
    t.equal(dueFilesBefore.find((f) => Number(f.size) === annex.length)?.sha256, sha256(annex));
  });

  await t.test('a run that cannot delete the bytes marks nothing, and the next run does', async (t) => {
    const errors: object[] = [];
    const failing = createPurge({
      repository: createPurgeRepository(db),
      blobStore: {
        ...api.services.blobStore,
        list: (prefix) => api.services.blobStore.list(prefix),
        stat: (key) => api.services.blobStore.stat(key),
        delete: async () => {
          throw new Error('the store is down');
        },
      },
      removeUpload: async () => undefined,
      clock: { now: () => now },
      log: { warn: () => undefined, error: (obj) => void errors.push(obj) },
    });
    const before = await auditCount();
    const result = await failing.run();
    t.same(result.failed.map((f) => f.envelopeId).sort(), [dueId, failingId].sort());
    t.equal(result.purged, 0);
    t.equal(errors.length, 2, 'each failure is logged');
    t.equal(await purgedAt(dueId), null);
    t.equal(await purgedAt(failingId), null);
    t.equal(await auditCount(), before, 'no audit entry for a purge that did not happen');
    t.same(await keysUnder(`envelopes/${dueId}/`), dueObjects, 'nothing deleted');
  });

  let first: Awaited<ReturnType<typeof api.services.purge.run>>;
  await t.test('an envelope past its retention loses its objects and keeps its proof', async (t) => {
    first = await api.services.purge.run();
    t.equal(first.today, '2031-03-11', 'the Brussels date of the clock');
    t.equal(first.purged, 2);
    t.same(first.failed, []);
    t.same(await keysUnder(`envelopes/${dueId}/`), [], 'no object left, sidecars included');
    for (const file of dueFilesBefore) t.equal(await api.services.blobStore.stat(String(file.storage_key)), null, `${String(file.storage_key)} is gone`);
    t.same(await fileRows(dueId), dueFilesBefore, 'file rows and digests untouched');
    t.same(await evidenceRows(dueId), dueEvidenceBefore, 'evidence untouched');
    t.equal(new Date(String(await purgedAt(dueId))).toISOString(), now.toISOString(), 'purged_at set');
    const envelope = await api.services.envelopeRepository.find(dueId);
    t.equal(envelope?.status, 'submitted', 'the envelope stays, submitted');
    t.same(envelope?.metadata, { subject: 'Convention' }, 'its metadata stays');
    const download = await api.call('GET', `${API}/envelopes/${dueId}/files/${String(dueFilesBefore[0]!.id)}`, { token });
    t.equal(download.statusCode, 410, 'a download answers 410 Gone');
    t.equal(JSON.parse(download.body).type, 'urn:problem-type:bxchange:filePurged');

    const [entry] = await exec<{ actor: string; action: string; subject: string; door: string; data: any }>(
      `SELECT actor, action, subject, door, data FROM audit_events WHERE action = 'envelope.purge' AND subject = '${dueId}'`,
    );
    t.match(entry, {
      actor: 'system',
      action: 'envelope.purge',
      door: 'system',
      data: { reason: 'retention period over', retentionClass: 'letter', retainUntil: '2031-03-10', purgedOn: '2031-03-11', type: 'general.letter' },
    });
    t.same(
      entry!.data.files,
      dueFilesBefore.map((f) => ({ id: f.id, size: Number(f.size), sha256: f.sha256 })),
      'the audit entry names what was deleted, by digest',
    );
    t.same(await api.services.auditLog.verify(), { valid: true, rows: await auditCount(), head: (await exec<{ hash: string }>('SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1'))[0]!.hash }, 'the audit chain holds');
  });

  await t.test('an envelope on its last day of retention is untouched', async (t) => {
    t.equal(await purgedAt(lastDayId), null);
    t.same(await keysUnder(`envelopes/${lastDayId}/`), lastDayObjects);
  });

  await t.test('running the purge again changes nothing', async (t) => {
    const before = { audit: await auditCount(), purgedAt: await purgedAt(dueId), files: await fileRows(dueId) };
    const again = await api.services.purge.run();
    t.same([again.purged, again.objectsDeleted, again.failed], [0, 0, []]);
    t.same({ audit: await auditCount(), purgedAt: await purgedAt(dueId), files: await fileRows(dueId) }, before);
  });

  await t.test('the feed serves the purged envelope again, with purgedAt and its digests', async (t) => {
    const res = await api.call('GET', `${API}/exports/envelopes`, { token: exporter });
    const line = res.body.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.id === dueId);
    t.equal(line.purgedAt, now.toISOString());
    t.same(line.files.map((f: any) => f.sha256), dueFilesBefore.map((f) => f.sha256));
  });

  await t.test("the hygiene sweep does not report a purged envelope's files as missing, but still reports a real loss", async (t) => {
    const lost = (await fileRows(lastDayId))[0]!;
    await api.services.blobStore.delete(String(lost.storage_key));
    const sweep = await api.services.hygiene.sweep();
    t.same(sweep.missingObjects.map((m) => m.envelopeId), [lastDayId], 'only the envelope that lost a file it should have');
  });

  await t.test('the next Brussels day, the last-day envelope is purged too', async (t) => {
    now = new Date('2031-03-11T23:00:00Z'); // 12 March, 00:00 in Brussels
    const next = await api.services.purge.run();
    t.equal(next.today, '2031-03-12');
    t.equal(next.purged, 1);
    t.ok(await purgedAt(lastDayId));
    t.same((await api.services.hygiene.sweep()).missingObjects, [], 'nothing reported any more');
  });
});
