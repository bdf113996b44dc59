/**
 * The envelope lifecycle through its HTTP door, on every backend: a mailbox
 * of one entity sends an envelope with files (multipart) to mailboxes of
 * another, the recipients read and acknowledge it, and everyone else sees
 * nothing. Real services (database, blob store), no mocks; every refusal is
 * an application/problem+json answer that leaves the stored data unchanged.
 *
 * End-to-end encryption is enforced (DESIGN §4c): every mailbox of the seed
 * publishes a key, and every file that is submitted is real OpenPGP
 * ciphertext for the keys its draft pins (`encryptFor(draftKeys(draft), …)`);
 * downloads are compared with the ciphertext uploaded and decrypted with a
 * recipient's key. Files that are never submitted (refused forms, the empty
 * file, deleted drafts) may stay plain bytes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../src/db/client.ts';
import { envelopeRecipients, envelopes as envelopesTable } from '../../src/db/schema.ts';
import { json, problem } from '../helpers/problem.ts';
import { forEachBackend, startApp, type TestApp } from '../helpers/backends.ts';
import { decryptWith, draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const API = '/api/v1';
const NOT_FOUND = 'urn:problem-type:belgif:resourceNotFound';
const BAD_REQUEST = 'urn:problem-type:belgif:badRequest';
const FORBIDDEN = 'urn:problem-type:bxchange:forbidden';
const NOT_DRAFT = 'urn:problem-type:bxchange:envelopeNotDraft';
const INCOMPLETE = 'urn:problem-type:bxchange:envelopeIncomplete';



const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

// ------------------------------------------------------------- multipart

type Part = { name: string; value: string } | { name: string; filename: string; type?: string; data: Buffer };

/** A multipart/form-data body built by hand, as curl -F sends it. */
function multipart(parts: Part[]): { payload: Buffer; contentType: string } {
  const boundary = `----bxchange-test-${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if ('filename' in part) head += `; filename="${part.filename}"\r\nContent-Type: ${part.type ?? 'application/octet-stream'}`;
    chunks.push(Buffer.from(`${head}\r\n\r\n`, 'utf8'), 'data' in part ? part.data : Buffer.from(part.value, 'utf8'), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

function upload(api: TestApp, token: string, envelopeId: string, parts: Part[]): Promise<LightMyRequestResponse> {
  const { payload, contentType } = multipart(parts);
  return api.call('POST', `${API}/envelopes/${envelopeId}/files`, { token, body: payload, headers: { 'content-type': contentType } });
}

// ------------------------------------------------------------------ seed

async function seed(api: TestApp) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  await post(`${API}/entities`, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
  await post(`${API}/entities`, { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
  await post(`${API}/entities`, { id: 'schaerbeek', kind: 'commune', name: { fr: 'Schaerbeek', nl: 'Schaarbeek' }, nisCode: '21015' });
  for (const [entity, name] of [
    ['ixelles', 'secretariat'],
    ['ixelles', 'archives'],
    ['uccle', 'secretariat'],
    ['uccle', 'urbanisme'],
    ['uccle', 'archives'],
    ['schaerbeek', 'secretariat'],
  ] as const) {
    await post(`${API}/entities/${entity}/mailboxes`, { name });
  }
  const principal = async (name: string, memberships: { mailbox: string; roles: string[] }[]) => {
    const p = await post(`${API}/principals`, { name, kind: 'user', memberships });
    const token = await post(`${API}/principals/${p.id}/tokens`, {});
    return { id: p.id as string, token: token.token as string };
  };
  // Every mailbox publishes a key: a draft needs one for each recipient and for its sender.
  const keys = await publishKeys(api, [
    'secretariat@ixelles',
    'archives@ixelles',
    'secretariat@uccle',
    'urbanisme@uccle',
    'archives@uccle',
    'secretariat@schaerbeek',
  ]);
  return {
    keys,
    /** read + send on secretariat@ixelles: the sender. */
    sender: await principal('ixelles-sender', [
      { mailbox: 'secretariat@ixelles', roles: ['read', 'send'] },
      { mailbox: 'archives@ixelles', roles: ['read', 'send'] },
    ]),
    /** read only on the sender's mailbox: sees its envelopes, may not send. */
    reader: await principal('ixelles-reader', [{ mailbox: 'secretariat@ixelles', roles: ['read'] }]),
    /** read on secretariat@uccle: the first recipient. */
    recipient: await principal('uccle-clerk', [
      { mailbox: 'secretariat@uccle', roles: ['read'] },
      { mailbox: 'archives@uccle', roles: ['read'] },
    ]),
    /** read on urbanisme@uccle: the second recipient. */
    urbanisme: await principal('uccle-urbanisme', [{ mailbox: 'urbanisme@uccle', roles: ['read'] }]),
    /** read on both recipient mailboxes: must name the one it acknowledges for. */
    both: await principal('uccle-director', [
      { mailbox: 'secretariat@uccle', roles: ['read'] },
      { mailbox: 'urbanisme@uccle', roles: ['read'] },
    ]),
    /** send without read on the sender's mailbox: may send, may not read back. */
    courier: await principal('ixelles-courier', [{ mailbox: 'secretariat@ixelles', roles: ['send'] }]),
    /** a member of a recipient mailbox without read: sees the envelope, may not read it. */
    sendOnly: await principal('uccle-courier', [{ mailbox: 'secretariat@uccle', roles: ['send'] }]),
    /** a third entity: must see nothing. */
    outsider: await principal('schaerbeek-clerk', [{ mailbox: 'secretariat@schaerbeek', roles: ['read', 'send', 'manage'] }]),
  };
}

forEachBackend(t, 'envelopes', async (t, parts) => {
  const backend = await parts();
  const api = await startApp(t, backend);
  const s = await seed(api);

  const exec = async <T>(query: string): Promise<T[]> => rowsOf<T>(await api.services.database.db.execute(sql.raw(query)));
  const auditCount = async () => Number((await exec<{ n: string | number }>('SELECT count(*) AS n FROM audit_events'))[0]!.n);
  const blobKeys = async (prefix: string) => {
    const keys: string[] = [];
    for await (const stat of api.services.blobStore.list(prefix)) keys.push(stat.key);
    return keys;
  };
  /** What a refused request must not change: the stored envelope, its blobs, the audit log. */
  const snapshot = async (envelopeId: string) =>
    JSON.stringify({
      envelope: await api.services.envelopeRepository.find(envelopeId),
      blobs: await blobKeys(`envelopes/${envelopeId}/`),
      audit: await auditCount(),
    });
  /** What a refused submit must leave untouched: the envelope and its bytes (it adds only its rejection evidence and audit entry). */
  const stateOf = async (envelopeId: string) =>
    JSON.stringify({ envelope: await api.services.envelopeRepository.find(envelopeId), blobs: await blobKeys(`envelopes/${envelopeId}/`) });
  const rejections = async (envelopeId: string) =>
    (await api.services.envelopeRepository.listEvidence(envelopeId))
      .filter((e) => e.eventType === 'SubmissionRejection')
      .map((e) => JSON.parse(e.canonical.toString('utf8')));
  const createDraft = async (overrides: Record<string, unknown> = {}, token = s.sender.token) => {
    const res = await api.call('POST', `${API}/envelopes`, {
      token,
      body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle', 'urbanisme@uccle'], metadata: { subject: 'Convention de voirie', reference: 'IX/2026/042' }, ...overrides },
    });
    if (res.statusCode !== 201) throw new Error(`create: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  const get = (id: string, token: string) => api.call('GET', `${API}/envelopes/${id}`, { token });
  const statuses = async (id: string) =>
    Object.fromEntries((await api.services.envelopeRepository.find(id))!.recipients.map((r) => [r.address, r.status]));

  const auditAtStart = await auditCount();

  /** `plaintext` encrypted for the keys `draft` pins (its recipients' and its sender's). */
  const cipher = (draft: any, plaintext: Uint8Array | string) => encryptFor(draftKeys(draft), plaintext);
  /** Asserts that the holder of `address`'s key decrypts `ciphertext` into `plaintext`. */
  const decrypts = async (t: Test, address: string, ciphertext: Buffer, plaintext: Buffer, what: string) =>
    t.ok((await decryptWith(s.keys.get(address)!, ciphertext)).equals(plaintext), `${what}: ${address} decrypts the original plaintext`);

  // The main envelope of the suite and its files: their plaintexts now, their ciphertexts
  // (for the keys the draft pins) once the draft exists.
  const letterPlain = randomBytes(100_000);
  // Larger than an S3 multipart part (5 MiB), so ranges of its ciphertext cross part boundaries.
  const annexPlain = randomBytes(6 * 1024 * 1024 + 123);
  const passwdPlain = Buffer.from('root:x:0:0:not really:/root:/bin/sh\n');
  let letter: Buffer;
  let annex: Buffer;
  let passwdBytes: Buffer;
  let main: any;
  let files: Record<string, any> = {};

  t.test('a sender creates a draft addressed to two mailboxes; only its own mailbox sees it', async (t) => {
    const res = await api.call('POST', `${API}/envelopes`, {
      token: s.sender.token,
      body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle', 'urbanisme@uccle'], metadata: { subject: 'Convention de voirie', reference: 'IX/2026/042' } },
    });
    t.equal(res.statusCode, 201);
    main = json(res);
    t.equal(res.headers.location, `${API}/envelopes/${main.id}`);
    t.match(main, {
      type: 'general.letter',
      typeVersion: '1.0',
      from: 'secretariat@ixelles',
      status: 'draft',
      metadata: { subject: 'Convention de voirie', reference: 'IX/2026/042' },
      files: [],
      uploadUrl: `${API}/uploads`,
      href: `${API}/envelopes/${main.id}`,
    });
    t.same(main.recipients.map((r: any) => [r.address, r.status]), [['secretariat@uccle', 'pending'], ['urbanisme@uccle', 'pending']]);
    t.same(
      main.encryptionKeys.map((k: any) => [k.mailbox, k.fingerprint]),
      ['secretariat@uccle', 'urbanisme@uccle', 'secretariat@ixelles'].map((a) => [a, s.keys.get(a)!.fingerprint]),
      "the draft pins the recipients' keys and the sender's",
    );
    letter = await cipher(main, letterPlain);
    annex = await cipher(main, annexPlain);
    passwdBytes = await cipher(main, passwdPlain);
    t.equal((await get(main.id, s.reader.token)).statusCode, 200, 'a read-only member of the sender mailbox sees the draft');
    problem(t, await get(main.id, s.recipient.token), 404, NOT_FOUND);
    problem(t, await get(main.id, s.outsider.token), 404, NOT_FOUND);
    problem(t, await get(main.id, s.sendOnly.token), 404, NOT_FOUND);
    problem(t, await api.call('GET', `${API}/envelopes/not-a-uuid`, { token: s.sender.token }), 400, BAD_REQUEST);
  });

  t.test('draft creation refusals store nothing', async (t) => {
    const outbox = async () => (await exec<{ n: string | number }>("SELECT count(*) AS n FROM envelopes WHERE from_mailbox = 'secretariat@ixelles'"))[0]!.n;
    const before = [await outbox(), await auditCount()];
    const body = { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'x' } };
    problem(t, await api.call('POST', `${API}/envelopes`, { token: s.reader.token, body }), 403, FORBIDDEN);
    problem(t, await api.call('POST', `${API}/envelopes`, { token: s.outsider.token, body }), 404, NOT_FOUND);
    problem(t, await api.call('POST', `${API}/envelopes`, { token: s.recipient.token, body }), 404, NOT_FOUND);
    const nobody = problem(t, await api.call('POST', `${API}/envelopes`, { token: s.sender.token, body: { ...body, to: ['nobody@uccle', 'secretariat@ixelles'] } }), 400, BAD_REQUEST);
    t.match(nobody.issues, [{ name: '/to/0', detail: /No such mailbox/ }, { name: '/to/1', detail: /itself/ }]);
    const noSubject = problem(t, await api.call('POST', `${API}/envelopes`, { token: s.sender.token, body: { ...body, metadata: { reference: 'R', colour: 'blue' } } }), 400, BAD_REQUEST);
    const names = noSubject.issues.map((i: any) => i.name);
    t.ok(names.includes('/metadata/subject'), 'names the missing subject');
    t.ok(names.includes('/metadata/colour'), 'names the unknown property');
    problem(t, await api.call('POST', `${API}/envelopes`, { token: s.sender.token, body: { ...body, type: 'no.such.type' } }), 400, BAD_REQUEST);
    problem(t, await api.call('POST', `${API}/envelopes`, { token: s.sender.token, body: { ...body, to: [] } }), 400, BAD_REQUEST);
    t.same([await outbox(), await auditCount()], before, 'no envelope and no audit entry were added');
  });

  t.test('multipart upload streams the bytes to the store and records their SHA-256', async (t) => {
    const auditBefore = await auditCount();
    const res = await upload(api, s.sender.token, main.id, [
      { name: 'role', value: 'letter' },
      { name: 'plaintextSha256', value: sha256(letterPlain).toUpperCase() },
      { name: 'file', filename: 'lettre.pdf.gpg', type: 'application/pgp-encrypted', data: letter },
      { name: 'file', filename: 'Délibération annexe 2026.pdf.gpg', data: annex },
      { name: 'file', filename: '../../etc/passwd', type: 'text/plain', data: passwdBytes },
    ]);
    t.equal(res.statusCode, 201, res.body.slice(0, 300));
    const stored = json(res).files;
    t.equal(stored.length, 3);
    files = { letter: stored[0], annex: stored[1], passwd: stored[2] };
    t.match(files.letter, { name: 'lettre.pdf.gpg', mediaType: 'application/pgp-encrypted', role: 'letter', size: letter.length, sha256: sha256(letter), plaintextSha256: sha256(letterPlain), complete: true });
    t.match(files.annex, { name: 'Délibération annexe 2026.pdf.gpg', mediaType: 'application/octet-stream', role: null, size: annex.length, sha256: sha256(annex), plaintextSha256: null, complete: true });
    t.match(files.passwd, { name: 'passwd', size: passwdBytes.length, sha256: sha256(passwdBytes), role: null });
    for (const f of stored) t.equal(f.href, `${API}/envelopes/${main.id}/files/${f.id}`);

    const view = json(await get(main.id, s.sender.token));
    t.same(view.files.map((f: any) => [f.id, f.sha256, f.size]), stored.map((f: any) => [f.id, f.sha256, f.size]).sort((a: any, b: any) => (a[0] < b[0] ? -1 : 1)));

    // Storage keys derive from ids only; the traversal name is a plain display name.
    const record = (await api.services.envelopeRepository.find(main.id))!;
    for (const file of record.files) {
      t.equal(file.storageKey, `envelopes/${main.id}/${file.id}`);
      const stat = await api.services.blobStore.stat(file.storageKey);
      t.equal(stat?.size, file.size, `${file.name} is stored with its size`);
    }
    t.same((await blobKeys(`envelopes/${main.id}/`)).sort(), record.files.map((f) => f.storageKey).sort(), 'nothing else was written');
    t.notOk(record.files.some((f) => /[\\/]|\.\./.test(f.name)), 'no stored name is a path');
    t.notOk(existsSync(path.join(backend.dataDir, 'etc', 'passwd')), 'nothing written outside the store');
    t.notOk(existsSync(path.join(backend.dataDir, 'blobs', 'etc')), 'nothing written beside the envelopes');
    t.equal(await auditCount(), auditBefore + 3, 'one audit entry per file');
  });

  t.test('upload refusals: 404 for a draft one may not see, 403 without send, 400/415 for bad forms; nothing changes', async (t) => {
    const before = await snapshot(main.id);
    const file: Part = { name: 'file', filename: 'intrus.bin', data: Buffer.from('intrus') };
    problem(t, await upload(api, s.outsider.token, main.id, [file]), 404, NOT_FOUND);
    problem(t, await upload(api, s.recipient.token, main.id, [file]), 404, NOT_FOUND);
    problem(t, await upload(api, s.reader.token, main.id, [file]), 403, FORBIDDEN);
    problem(t, await upload(api, s.sender.token, randomUUID(), [file]), 404, NOT_FOUND);
    problem(t, await upload(api, s.sender.token, main.id, [{ ...file, filename: '..' }]), 400, BAD_REQUEST);
    problem(t, await upload(api, s.sender.token, main.id, [{ name: 'role', value: 'Not A Role!' }, file]), 400, BAD_REQUEST);
    const badHash = problem(t, await upload(api, s.sender.token, main.id, [{ name: 'plaintextSha256', value: 'abc' }, file]), 400, BAD_REQUEST);
    t.match(badHash.issues, [{ name: 'plaintextSha256' }]);
    problem(t, await upload(api, s.sender.token, main.id, [{ name: 'role', value: 'annex' }]), 400, BAD_REQUEST);
    problem(t, await upload(api, s.sender.token, main.id, [{ name: 'colour', value: 'blue' }, file]), 400, BAD_REQUEST);
    const jsonBody = await api.call('POST', `${API}/envelopes/${main.id}/files`, { token: s.sender.token, body: { file: 'x' } });
    problem(t, jsonBody, 415, 'urn:problem-type:bxchange:unsupportedMediaType');
    problem(t, await upload(api, null as unknown as string, main.id, [file]), 401, 'urn:problem-type:belgif:noAccessToken');
    t.equal(await snapshot(main.id), before, 'the draft, its blobs and the audit log are unchanged');
  });

  t.test('a refused form keeps none of the files it carried', async (t) => {
    const before = (await api.services.envelopeRepository.find(main.id))!;
    const res = await upload(api, s.sender.token, main.id, [
      { name: 'file', filename: 'premier.bin', data: randomBytes(1000) },
      { name: 'colour', value: 'blue' },
    ]);
    problem(t, res, 400, BAD_REQUEST);
    const after = (await api.services.envelopeRepository.find(main.id))!;
    t.same(after.files.map((f) => f.id), before.files.map((f) => f.id), 'the file stored before the bad field was forgotten');
    t.same((await blobKeys(`envelopes/${main.id}/`)).sort(), before.files.map((f) => f.storageKey).sort(), 'and its bytes too');
  });

  t.test('a file over the upload limit is refused with 413 and forgotten', async (t) => {
    const small = await startApp(t, backend, { env: { BXCHANGE_MAX_UPLOAD_BYTES: '1000' } });
    const draft = await createDraft({ to: ['secretariat@uccle'] });
    const res = await upload(small, s.sender.token, draft.id, [{ name: 'file', filename: 'big.bin', data: randomBytes(5000) }]);
    problem(t, res, 413, 'urn:problem-type:belgif:payloadTooLarge');
    t.same((await api.services.envelopeRepository.find(draft.id))!.files, [], 'no file row');
    t.same(await blobKeys(`envelopes/${draft.id}/`), [], 'no bytes');
    t.equal((await upload(small, s.sender.token, draft.id, [{ name: 'file', filename: 'ok.bin', data: randomBytes(1000) }])).statusCode, 201, 'a file at the limit passes');
  });

  t.test('submit refusals: no file, an incomplete upload (naming the file), no send role, not visible; nothing changes', async (t) => {
    const empty = await createDraft();
    let state = await stateOf(empty.id);
    let audits = await auditCount();
    const noFile = problem(t, await api.call('POST', `${API}/envelopes/${empty.id}/submit`, { token: s.sender.token }), 422, INCOMPLETE);
    t.match(noFile.issues, [{ name: 'files' }]);
    t.equal(await stateOf(empty.id), state, 'the envelope is unchanged');
    t.equal(await auditCount(), audits + 1, 'one audit entry: the rejection');
    t.match(await rejections(empty.id), [{ eventType: 'SubmissionRejection', envelopeId: empty.id, eventReasons: [{ name: 'files' }] }], 'a signed rejection');

    const partial = await createDraft();
    t.equal((await upload(api, s.sender.token, partial.id, [{ name: 'file', filename: 'complete.bin', data: await cipher(partial, randomBytes(10)) }])).statusCode, 201);
    // An upload begun (as tus creation does) but never finished.
    const caller = await api.services.directory.authenticate(s.sender.token);
    const pending = await api.services.envelopes.beginUpload(caller, { envelopeId: partial.id, filename: 'budget-2026.pdf.gpg', size: 4096 });
    state = await stateOf(partial.id);
    audits = await auditCount();
    const incomplete = problem(t, await api.call('POST', `${API}/envelopes/${partial.id}/submit`, { token: s.sender.token }), 422, INCOMPLETE);
    t.match(incomplete.detail, /budget-2026\.pdf\.gpg/, 'the detail names the file');
    t.match(incomplete.issues, [{ name: `files/${pending.id}`, value: 'budget-2026.pdf.gpg' }]);
    t.equal(incomplete.issues.length, 1, 'the complete file (ciphertext for every pinned key) raises nothing');
    problem(t, await api.call('GET', `${API}/envelopes/${partial.id}/files/${pending.id}`, { token: s.sender.token }), 409, 'urn:problem-type:bxchange:conflict');

    problem(t, await api.call('POST', `${API}/envelopes/${partial.id}/submit`, { token: s.reader.token }), 403, FORBIDDEN);
    problem(t, await api.call('POST', `${API}/envelopes/${partial.id}/submit`, { token: s.recipient.token }), 404, NOT_FOUND);
    problem(t, await api.call('POST', `${API}/envelopes/${partial.id}/submit`, { token: s.outsider.token }), 404, NOT_FOUND);
    problem(t, await api.call('POST', `${API}/envelopes/${randomUUID()}/submit`, { token: s.sender.token }), 404, NOT_FOUND);
    t.equal(await stateOf(partial.id), state, 'still a draft, same files, same recipients');
    t.equal(await auditCount(), audits + 1, 'only the 422 left an audit entry (its rejection)');
    t.equal((await rejections(partial.id)).length, 1, 'only the 422 left a rejection evidence');
    t.same(await statuses(partial.id), { 'secretariat@uccle': 'pending', 'urbanisme@uccle': 'pending' });

    // Invalid metadata that slipped in (e.g. an older schema) is caught at submit too.
    const stale = await createDraft({ to: ['secretariat@uccle'] });
    await upload(api, s.sender.token, stale.id, [{ name: 'file', filename: 'a.bin', data: await cipher(stale, randomBytes(10)) }]);
    await exec(`UPDATE envelopes SET metadata = '{"reference":"R"}'::jsonb WHERE id = '${stale.id}'`);
    const invalid = problem(t, await api.call('POST', `${API}/envelopes/${stale.id}/submit`, { token: s.sender.token }), 422, INCOMPLETE);
    t.match(invalid.issues, [{ name: '/metadata/subject' }]);
    t.equal(invalid.issues.length, 1, 'only the metadata: its file is ciphertext for every pinned key');
    t.equal((await api.services.envelopeRepository.find(stale.id))!.status, 'draft');
  });

  t.test('submit delivers to every recipient mailbox; the envelope is then frozen', async (t) => {
    const auditBefore = await auditCount();
    const res = await api.call('POST', `${API}/envelopes/${main.id}/submit`, { token: s.sender.token });
    t.equal(res.statusCode, 200, res.body);
    const body = json(res);
    t.equal(body.status, 'submitted');
    t.type(body.submittedAt, 'string');
    t.notOk('uploadUrl' in body);
    for (const r of body.recipients) {
      t.equal(r.status, 'delivered');
      t.equal(r.deliveredAt, body.submittedAt);
      t.equal(r.retrievedAt, null);
    }
    t.equal(await auditCount(), auditBefore + 1);

    const before = await snapshot(main.id);
    problem(t, await api.call('POST', `${API}/envelopes/${main.id}/submit`, { token: s.sender.token }), 409, NOT_DRAFT);
    problem(t, await upload(api, s.sender.token, main.id, [{ name: 'file', filename: 'late.bin', data: randomBytes(100) }]), 409, NOT_DRAFT);
    problem(t, await api.call('DELETE', `${API}/envelopes/${main.id}`, { token: s.sender.token }), 409, NOT_DRAFT);
    problem(t, await api.call('POST', `${API}/envelopes/${main.id}/submit`, { token: s.recipient.token }), 403, FORBIDDEN);
    problem(t, await api.call('DELETE', `${API}/envelopes/${main.id}`, { token: s.recipient.token }), 403, FORBIDDEN);
    t.equal(await snapshot(main.id), before, 'nothing changed');
  });

  t.test('after submission: recipients see it, the third entity sees nothing anywhere', async (t) => {
    for (const token of [s.recipient.token, s.urbanisme.token, s.both.token, s.sendOnly.token, s.reader.token]) {
      const res = await get(main.id, token);
      t.equal(res.statusCode, 200);
      t.equal(json(res).files.length, 3);
    }
    const o = s.outsider.token;
    const other = await createDraft({ from: 'secretariat@schaerbeek', to: ['secretariat@ixelles'] }, o);
    const stored = json(await upload(api, o, other.id, [{ name: 'file', filename: 'schaerbeek.bin', data: randomBytes(50) }])).files[0];
    const before = await snapshot(main.id);
    problem(t, await get(main.id, o), 404, NOT_FOUND);
    for (const file of Object.values(files)) {
      problem(t, await api.call('GET', file.href, { token: o }), 404, NOT_FOUND);
      problem(t, await api.call('GET', file.href, { token: o, headers: { range: 'bytes=0-0' } }), 404, NOT_FOUND);
    }
    problem(t, await api.call('POST', `${API}/envelopes/${main.id}/acknowledge`, { token: o, body: {} }), 404, NOT_FOUND);
    problem(t, await api.call('POST', `${API}/envelopes/${main.id}/acknowledge`, { token: o, body: { mailbox: 'secretariat@uccle' } }), 404, NOT_FOUND);
    problem(t, await api.call('POST', `${API}/envelopes/${main.id}/submit`, { token: o }), 404, NOT_FOUND);
    problem(t, await api.call('DELETE', `${API}/envelopes/${main.id}`, { token: o }), 404, NOT_FOUND);
    problem(t, await upload(api, o, main.id, [{ name: 'file', filename: 'x', data: Buffer.from('x') }]), 404, NOT_FOUND);
    for (const address of ['secretariat@uccle', 'urbanisme@uccle', 'secretariat@ixelles']) {
      problem(t, await api.call('GET', `${API}/mailboxes/${address}/envelopes?direction=in`, { token: o }), 404, NOT_FOUND);
      problem(t, await api.call('GET', `${API}/mailboxes/${address}/envelopes?direction=out`, { token: o }), 404, NOT_FOUND);
    }
    const own = json(await api.call('GET', `${API}/mailboxes/secretariat@schaerbeek/envelopes?direction=in`, { token: o }));
    t.same(own.items, [], 'its own inbox is empty');
    problem(t, await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes`, { token: s.sender.token }), 404, NOT_FOUND);

    // A file id of one envelope does not open through another envelope the caller sees.
    problem(t, await api.call('GET', `${API}/envelopes/${main.id}/files/${stored.id}`, { token: s.sender.token }), 404, NOT_FOUND);
    problem(t, await api.call('GET', stored.href, { token: s.sender.token }), 404, NOT_FOUND);
    problem(t, await api.call('GET', `${API}/envelopes/${main.id}/files/${randomUUID()}`, { token: s.recipient.token }), 404, NOT_FOUND);
    problem(t, await api.call('GET', `${API}/envelopes/${main.id}/files/..%2F..%2Fetc%2Fpasswd`, { token: s.recipient.token }), 400, BAD_REQUEST);

    // A member of a recipient mailbox without `read` sees the envelope but may not read it.
    problem(t, await api.call('GET', files.letter.href, { token: s.sendOnly.token }), 403, FORBIDDEN);
    problem(t, await api.call('POST', `${API}/envelopes/${main.id}/acknowledge`, { token: s.sendOnly.token }), 403, FORBIDDEN);
    problem(t, await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes`, { token: s.sendOnly.token }), 403, FORBIDDEN);
    t.equal(await snapshot(main.id), before, 'no refused request changed anything');
  });

  t.test('inbox and outbox list the envelope for its members, with filters and a checked cursor', async (t) => {
    const list = async (address: string, query: string, token: string) => {
      const res = await api.call('GET', `${API}/mailboxes/${address}/envelopes?${query}`, { token });
      t.equal(res.statusCode, 200, `${address}?${query}`);
      return json(res);
    };
    const inbox = await list('secretariat@uccle', 'direction=in', s.recipient.token);
    t.same(inbox.items.map((e: any) => e.id), [main.id]);
    t.match(inbox.items[0], { type: 'general.letter', from: 'secretariat@ixelles', status: 'delivered', envelopeStatus: 'submitted', href: `${API}/envelopes/${main.id}` });
    t.notOk('next' in inbox, 'no next link on the last page');
    t.same((await list('secretariat@uccle', '', s.recipient.token)).items.map((e: any) => e.id), [main.id], 'direction defaults to in');
    t.same((await list('urbanisme@uccle', 'direction=in', s.urbanisme.token)).items.map((e: any) => e.id), [main.id]);
    t.same((await list('secretariat@uccle', 'direction=in&type=tutelle.act', s.recipient.token)).items, []);
    t.same((await list('secretariat@uccle', 'direction=in&status=delivered', s.recipient.token)).items.map((e: any) => e.id), [main.id]);
    t.match((await list('secretariat@uccle', 'direction=in&status=delivered', s.recipient.token)).items, [{ status: 'delivered', envelopeStatus: 'submitted' }], "an inbox item shows the mailbox's own status, the one the filter selects");
    t.same((await list('secretariat@uccle', 'direction=in&status=acknowledged', s.recipient.token)).items, []);

    const outbox = await list('secretariat@ixelles', 'direction=out', s.reader.token);
    t.ok(outbox.items.some((e: any) => e.id === main.id && e.status === 'submitted'));
    t.ok(outbox.items.some((e: any) => e.status === 'draft'), 'the outbox holds drafts too');
    const sent = await list('secretariat@ixelles', 'direction=out&status=submitted', s.sender.token);
    t.same(sent.items.map((e: any) => e.id), [main.id]);
    t.same((await list('secretariat@ixelles', 'direction=in', s.sender.token)).items, [], 'nothing came in to the sender');

    const base = `${API}/mailboxes/secretariat@uccle/envelopes?direction=in&cursor=`;
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const cursor of [
      'garbage',
      '%E2%9C%93',
      b64([1, 2]),
      b64(null),
      b64({ t: 'yesterday', i: main.id }),
      b64({ t: new Date().toISOString(), i: 'not-a-uuid' }),
      b64({ t: new Date().toISOString(), i: "' OR 1=1 --" }),
      b64({ t: '-100000-01-01T00:00:00.000Z', i: main.id }),
      b64({ t: new Date().toISOString() }),
      'x'.repeat(600),
    ]) {
      const body = problem(t, await api.call('GET', base + cursor, { token: s.recipient.token }), 400, BAD_REQUEST);
      t.match(body.issues, [{ in: 'query', name: 'cursor' }], `cursor ${cursor.slice(0, 40)}`);
    }
    problem(t, await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?limit=0`, { token: s.recipient.token }), 400, BAD_REQUEST);
    problem(t, await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?limit=201`, { token: s.recipient.token }), 400, BAD_REQUEST);
    problem(t, await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=sideways`, { token: s.recipient.token }), 400, BAD_REQUEST);
  });

  t.test("downloads: the sender's never record retrieval; bytes, ETag, 304 and ranges are exact", async (t) => {
    const dl = (file: any, token: string, headers: Record<string, string> = {}) => api.call('GET', file.href, { token, headers });
    const before = await snapshot(main.id);

    for (const [key, bytes, plaintext] of [['letter', letter, letterPlain], ['annex', annex, annexPlain], ['passwd', passwdBytes, passwdPlain]] as const) {
      const res = await dl(files[key], s.sender.token);
      t.equal(res.statusCode, 200);
      t.equal(sha256(res.rawPayload), sha256(bytes), `${key}: the bytes downloaded are the ciphertext uploaded`);
      t.equal(res.headers.etag, `"${sha256(bytes)}"`, 'ETag is the quoted SHA-256');
      t.equal(Number(res.headers['content-length']), bytes.length);
      t.equal(res.headers['accept-ranges'], 'bytes');
      t.match(res.headers['content-disposition'], /^attachment; filename="/);
      await decrypts(t, 'secretariat@uccle', res.rawPayload, plaintext, `${key} (the bytes the sender downloaded)`);
    }
    const disposition = (await dl(files.annex, s.sender.token)).headers['content-disposition'] as string;
    t.match(disposition, `filename*=UTF-8''${encodeURIComponent('Délibération annexe 2026.pdf.gpg')}`);
    t.match((await dl(files.passwd, s.sender.token)).headers['content-disposition'], 'filename="passwd"');
    t.match((await dl(files.letter, s.reader.token)).statusCode, 200, 'a read-only member of the sender mailbox may download');

    const size = annex.length;
    const ranged = async (range: string, start: number, end: number) => {
      const res = await dl(files.annex, s.sender.token, { range });
      t.equal(res.statusCode, 206, range);
      t.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`);
      t.equal(Number(res.headers['content-length']), end - start + 1);
      t.ok(res.rawPayload.equals(annex.subarray(start, end + 1)), `${range}: exact slice`);
      t.equal(res.headers.etag, `"${files.annex.sha256}"`);
    };
    await ranged('bytes=0-0', 0, 0);
    await ranged('bytes=1000-1999', 1000, 1999);
    const part = 5 * 1024 * 1024;
    await ranged(`bytes=${part - 10}-${part + 9}`, part - 10, part + 9);
    await ranged('bytes=-10', size - 10, size - 1);
    await ranged(`bytes=${size - 5}-`, size - 5, size - 1);
    await ranged(`bytes=${size - 5}-${size + 100}`, size - 5, size - 1);
    await ranged(`bytes=-${size + 100}`, 0, size - 1);
    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
      const res = await dl(files.annex, s.sender.token, { range });
      problem(t, res, 416, 'urn:problem-type:bxchange:rangeNotSatisfiable');
      t.equal(res.headers['content-range'], `bytes */${size}`, `${range}: Content-Range names the size`);
    }
    const multi = await dl(files.annex, s.sender.token, { range: 'bytes=0-1,5-6' });
    t.equal(multi.statusCode, 200, 'several ranges: the whole file');
    t.equal(multi.rawPayload.length, size);
    t.equal((await dl(files.annex, s.sender.token, { range: 'items=0-1' })).statusCode, 200, 'unknown unit ignored');

    const cached = await dl(files.letter, s.sender.token, { 'if-none-match': `"${files.letter.sha256}"` });
    t.equal(cached.statusCode, 304);
    t.equal(cached.rawPayload.length, 0);
    t.equal(cached.headers.etag, `"${files.letter.sha256}"`);
    t.equal((await dl(files.letter, s.sender.token, { 'if-none-match': `W/"other", "${files.letter.sha256}"` })).statusCode, 304);
    t.equal((await dl(files.letter, s.sender.token, { 'if-none-match': '"0000"' })).statusCode, 200);

    t.same(await statuses(main.id), { 'secretariat@uccle': 'delivered', 'urbanisme@uccle': 'delivered' }, "the sender's downloads recorded no retrieval");
    t.equal(await stateOf(main.id), JSON.stringify({ envelope: JSON.parse(before).envelope, blobs: JSON.parse(before).blobs }), 'the envelope is unchanged');
    t.ok(await auditCount() > JSON.parse(before).audit, 'every read is audited, the 304s excepted');
  });

  t.test("a recipient's 304 or HEAD is not a retrieval; its first download (ranged) is, for its mailbox only", async (t) => {
    const dl = (file: any, token: string, headers: Record<string, string> = {}) => api.call('GET', file.href, { token, headers });
    let res = await dl(files.letter, s.recipient.token, { 'if-none-match': `"${files.letter.sha256}"` });
    t.equal(res.statusCode, 304);
    res = await api.call('HEAD', files.letter.href, { token: s.recipient.token });
    t.equal(res.statusCode, 200);
    t.equal(Number(res.headers['content-length']), letter.length);
    t.equal(res.headers.etag, `"${files.letter.sha256}"`);
    t.equal(res.rawPayload.length, 0);
    res = await api.call('HEAD', files.annex.href, { token: s.recipient.token, headers: { range: 'bytes=0-9' } });
    t.equal(res.statusCode, 206);
    t.equal(res.headers['content-range'], `bytes 0-9/${annex.length}`);
    t.equal(Number(res.headers['content-length']), 10);
    problem(t, await dl(files.annex, s.recipient.token, { range: `bytes=${annex.length}-` }), 416, 'urn:problem-type:bxchange:rangeNotSatisfiable');
    t.same(await statuses(main.id), { 'secretariat@uccle': 'delivered', 'urbanisme@uccle': 'delivered' }, 'still delivered');

    const auditBefore = await auditCount();
    res = await dl(files.annex, s.recipient.token, { range: 'bytes=-10' });
    t.equal(res.statusCode, 206);
    t.ok(res.rawPayload.equals(annex.subarray(annex.length - 10)));
    t.same(await statuses(main.id), { 'secretariat@uccle': 'retrieved', 'urbanisme@uccle': 'delivered' });
    t.equal(await auditCount(), auditBefore + 2, 'the read and the retrieval are audited');
    const first = json(await get(main.id, s.recipient.token)).recipients.find((r: any) => r.address === 'secretariat@uccle');
    t.type(first.retrievedAt, 'string');

    res = await dl(files.letter, s.recipient.token);
    t.equal(res.statusCode, 200);
    t.equal(sha256(res.rawPayload), sha256(letter), 'the recipient gets the exact bytes');
    await decrypts(t, 'secretariat@uccle', res.rawPayload, letterPlain, 'letter');
    const again = json(await get(main.id, s.recipient.token)).recipients.find((r: any) => r.address === 'secretariat@uccle');
    t.equal(again.retrievedAt, first.retrievedAt, 'only the first download counts');

    res = await dl(files.passwd, s.urbanisme.token);
    t.equal(res.statusCode, 200);
    t.ok(res.rawPayload.equals(passwdBytes));
    await decrypts(t, 'urbanisme@uccle', res.rawPayload, passwdPlain, 'passwd');
    t.same(await statuses(main.id), { 'secretariat@uccle': 'retrieved', 'urbanisme@uccle': 'retrieved' });
  });

  t.test('acknowledge: recipients only, with or without a mailbox, idempotent', async (t) => {
    const ack = (token: string, body?: unknown) =>
      api.call('POST', `${API}/envelopes/${main.id}/acknowledge`, { token, ...(body === undefined ? {} : { body }) });
    let before = await snapshot(main.id);
    problem(t, await ack(s.sender.token), 403, FORBIDDEN);
    problem(t, await ack(s.reader.token, {}), 403, FORBIDDEN);
    const ambiguous = problem(t, await ack(s.both.token, {}), 400, BAD_REQUEST);
    t.match(ambiguous.issues, [{ name: '/mailbox' }]);
    t.match(ambiguous.detail, /secretariat@uccle/);
    problem(t, await ack(s.recipient.token, { mailbox: 'urbanisme@uccle' }), 400, BAD_REQUEST);
    problem(t, await ack(s.recipient.token, { mailbox: 'secretariat@schaerbeek' }), 400, BAD_REQUEST);
    problem(t, await ack(s.recipient.token, { mailbox: 'not an address' }), 400, BAD_REQUEST);
    problem(t, await ack(s.recipient.token, { mailbox: 'secretariat@uccle', extra: 1 }), 400, BAD_REQUEST);
    t.equal(await snapshot(main.id), before, 'refusals change nothing');

    let res = await ack(s.recipient.token);
    t.equal(res.statusCode, 200, res.body);
    const acked = json(res).recipients.find((r: any) => r.address === 'secretariat@uccle');
    t.equal(acked.status, 'acknowledged');
    t.type(acked.acknowledgedAt, 'string');
    t.same(await statuses(main.id), { 'secretariat@uccle': 'acknowledged', 'urbanisme@uccle': 'retrieved' });

    before = await snapshot(main.id);
    res = await ack(s.recipient.token, { mailbox: 'secretariat@uccle' });
    t.equal(res.statusCode, 200, 'acknowledging again is fine');
    t.equal(json(res).recipients.find((r: any) => r.address === 'secretariat@uccle').acknowledgedAt, acked.acknowledgedAt, 'and changes nothing');
    t.equal(await snapshot(main.id), before, 'no second audit entry');

    res = await ack(s.both.token, { mailbox: 'urbanisme@uccle' });
    t.equal(res.statusCode, 200);
    t.same(await statuses(main.id), { 'secretariat@uccle': 'acknowledged', 'urbanisme@uccle': 'acknowledged' });
    t.same((await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?status=acknowledged`, { token: s.recipient.token })).json().items.map((e: any) => e.id), [main.id]);

    // A download after acknowledgement does not move the status back.
    t.equal((await api.call('GET', files.letter.href, { token: s.recipient.token })).statusCode, 200);
    t.same(await statuses(main.id), { 'secretariat@uccle': 'acknowledged', 'urbanisme@uccle': 'acknowledged' });
  });

  t.test('acknowledging a delivered envelope that was never downloaded also records its retrieval', async (t) => {
    const draft = await createDraft({ to: ['urbanisme@uccle'] });
    t.equal((await upload(api, s.sender.token, draft.id, [{ name: 'file', filename: 'note.bin', data: await cipher(draft, randomBytes(64)) }])).statusCode, 201);
    problem(t, await api.call('POST', `${API}/envelopes/${draft.id}/acknowledge`, { token: s.urbanisme.token }), 404, NOT_FOUND);
    problem(t, await api.call('POST', `${API}/envelopes/${draft.id}/acknowledge`, { token: s.sender.token }), 403, FORBIDDEN);
    t.equal((await api.call('POST', `${API}/envelopes/${draft.id}/submit`, { token: s.sender.token })).statusCode, 200);
    const res = await api.call('POST', `${API}/envelopes/${draft.id}/acknowledge`, { token: s.urbanisme.token });
    t.equal(res.statusCode, 200);
    const [r] = json(res).recipients;
    t.equal(r.status, 'acknowledged');
    t.equal(r.retrievedAt, r.acknowledgedAt);
  });

  t.test('an empty file is stored, hashed and served; any range of it is unsatisfiable', async (t) => {
    const draft = await createDraft({ to: ['secretariat@uccle'] });
    const res = await upload(api, s.sender.token, draft.id, [{ name: 'file', filename: 'vide.bin', data: Buffer.alloc(0) }]);
    t.equal(res.statusCode, 201, res.body);
    const [file] = json(res).files;
    t.match(file, { size: 0, sha256: sha256(''), complete: true });
    const full = await api.call('GET', file.href, { token: s.sender.token });
    t.equal(full.statusCode, 200);
    t.equal(full.rawPayload.length, 0);
    const range = await api.call('GET', file.href, { token: s.sender.token, headers: { range: 'bytes=0-' } });
    problem(t, range, 416, 'urn:problem-type:bxchange:rangeNotSatisfiable');
    t.equal(range.headers['content-range'], 'bytes */0');
  });

  t.test('deleting a draft removes its rows and its bytes; refusals change nothing', async (t) => {
    const draft = await createDraft();
    const res = await upload(api, s.sender.token, draft.id, [
      { name: 'file', filename: 'a.bin', data: randomBytes(2048) },
      { name: 'file', filename: 'b.bin', data: randomBytes(4096) },
    ]);
    const keys = (await api.services.envelopeRepository.find(draft.id))!.files.map((f) => f.storageKey);
    t.equal(keys.length, 2);
    for (const key of keys) t.ok(await api.services.blobStore.stat(key), `${key} stored`);

    const before = await snapshot(draft.id);
    problem(t, await api.call('DELETE', `${API}/envelopes/${draft.id}`, { token: s.outsider.token }), 404, NOT_FOUND);
    problem(t, await api.call('DELETE', `${API}/envelopes/${draft.id}`, { token: s.recipient.token }), 404, NOT_FOUND);
    problem(t, await api.call('DELETE', `${API}/envelopes/${draft.id}`, { token: s.reader.token }), 403, FORBIDDEN);
    problem(t, await api.call('DELETE', `${API}/envelopes/${randomUUID()}`, { token: s.sender.token }), 404, NOT_FOUND);
    t.equal(await snapshot(draft.id), before, 'refused deletes changed nothing');

    const auditBefore = await auditCount();
    const del = await api.call('DELETE', `${API}/envelopes/${draft.id}`, { token: s.sender.token });
    t.equal(del.statusCode, 204);
    t.equal(del.body, '');
    problem(t, await get(draft.id, s.sender.token), 404, NOT_FOUND);
    problem(t, await api.call('GET', json(res).files[0].href, { token: s.sender.token }), 404, NOT_FOUND);
    problem(t, await api.call('DELETE', `${API}/envelopes/${draft.id}`, { token: s.sender.token }), 404, NOT_FOUND);
    t.equal(await api.services.envelopeRepository.find(draft.id), null);
    for (const key of keys) t.equal(await api.services.blobStore.stat(key), null, `${key} is gone from the store`);
    t.same(await blobKeys(`envelopes/${draft.id}/`), []);
    const outbox = json(await api.call('GET', `${API}/mailboxes/secretariat@ixelles/envelopes?direction=out&limit=200`, { token: s.sender.token }));
    t.notOk(outbox.items.some((e: any) => e.id === draft.id), 'no longer listed');
    t.equal(await auditCount(), auditBefore + 1, 'the deletion is audited');
  });

  t.test('pagination over 1,000 envelopes sharing timestamps returns each exactly once while new ones arrive', async (t) => {
    const db = api.services.database.db;
    const base = Date.parse('2026-03-02T09:00:00.000Z');
    // 1,000 envelopes on 7 instants (about 143 per instant), so most page boundaries fall inside a tie.
    const rows = Array.from({ length: 1000 }, (_, i) => {
      const at = new Date(base - (i % 7) * 60_000);
      return { id: randomUUID(), at };
    });
    await db.insert(envelopesTable).values(
      rows.map((r, i) => ({
        id: r.id,
        type: 'general.letter',
        typeVersion: '1.0',
        fromMailbox: 'archives@ixelles',
        status: 'submitted',
        metadata: { subject: `Archive ${i}` },
        createdBy: s.sender.id,
        createdAt: r.at,
        submittedAt: r.at,
      })),
    );
    await db.insert(envelopeRecipients).values(rows.map((r) => ({ envelopeId: r.id, mailboxAddress: 'archives@uccle', status: 'delivered', deliveredAt: r.at })));

    /** A new envelope through the repository (the real write path) at a forced instant. */
    const insert = async (at: Date) => {
      const id = randomUUID();
      await api.services.envelopeRepository.create(
        { id, type: 'general.letter', typeVersion: '1.0', from: 'archives@ixelles', metadata: { subject: 'late' }, inReplyTo: null, createdBy: s.sender.id, createdAt: at, recipients: ['archives@uccle'] },
        { actor: 'test', action: 'envelope.create', subject: id },
      );
      t.ok(await api.services.envelopeRepository.markSubmitted(id, at, { actor: 'test', action: 'envelope.submit', subject: id }, () => []));
      return id;
    };
    const before = (a: { time: number; id: string }, b: { time: number; id: string }) => a.time < b.time || (a.time === b.time && a.id < b.id);

    for (const direction of ['in', 'out'] as const) {
      const address = direction === 'in' ? 'archives@uccle' : 'archives@ixelles';
      const token = direction === 'in' ? s.recipient.token : s.sender.token;
      const timeOf = (item: any) => Date.parse(direction === 'in' ? item.recipients.find((r: any) => r.address === 'archives@uccle').deliveredAt : item.createdAt);
      const existing = new Set(
        (await exec<{ id: string }>("SELECT id FROM envelopes WHERE from_mailbox = 'archives@ixelles'")).map((r) => r.id),
      );
      t.ok(existing.size >= 1000);
      const seen = new Map<string, number>();
      const mustSee = new Set<string>();
      const mustNotSee = new Set<string>();
      let previous: { time: number; id: string } | undefined;
      let url: string | undefined = `${API}/mailboxes/${address}/envelopes?direction=${direction}&limit=50`;
      let pages = 0;
      while (url !== undefined) {
        const res = await api.call('GET', url, { token });
        t.equal(res.statusCode, 200);
        const page = json(res);
        pages++;
        for (const item of page.items) {
          seen.set(item.id, (seen.get(item.id) ?? 0) + 1);
          const key = { time: timeOf(item), id: item.id };
          if (previous !== undefined && !before(key, previous)) t.fail(`order broken at ${item.id}`);
          previous = key;
        }
        url = page.next;
        if (url !== undefined) {
          t.equal(page.items.length, 50, 'full pages before the last');
          const cursor = previous!;
          // Between two page reads: one at the cursor's instant (its id sorts either side), one newer, one older than all.
          for (const at of [new Date(cursor.time), new Date(cursor.time), new Date(base + 3600_000), new Date(base - 86_400_000 - pages)]) {
            const id = await insert(at);
            (before({ time: at.getTime(), id }, cursor) ? mustSee : mustNotSee).add(id);
          }
        }
      }
      t.ok(pages >= 20, `${direction}: ${pages} pages`);
      const missing = [...existing].filter((id) => seen.get(id) !== 1);
      t.same(missing, [], `${direction}: every envelope that existed is seen exactly once`);
      t.same([...seen.values()].filter((n) => n !== 1), [], `${direction}: nothing is duplicated`);
      t.same([...mustSee].filter((id) => seen.get(id) !== 1), [], `${direction}: new envelopes sorting after the cursor show once`);
      t.same([...mustNotSee].filter((id) => seen.has(id)), [], `${direction}: new envelopes sorting before the cursor do not show`);
      t.ok(mustSee.size > 0 && mustNotSee.size > 0, 'both cases happened');
      t.equal(seen.size, existing.size + mustSee.size, 'and nothing else');
    }
  });

  t.test('a page of any size holds that many items and its cursor continues right after them', async (t) => {
    // On the archives mailboxes filled by the test above; the listing fetches a few more rows than asked for.
    for (const [address, query, token] of [
      ['archives@uccle', 'direction=in', s.recipient.token],
      ['archives@uccle', 'direction=in&type=general.letter&status=delivered', s.recipient.token],
      ['archives@ixelles', 'direction=out', s.sender.token],
    ] as const) {
      const all = json(await api.call('GET', `${API}/mailboxes/${address}/envelopes?${query}&limit=130`, { token })).items.map((e: any) => e.id);
      t.equal(all.length, 130, `${address} ${query}: a full reference page`);
      for (const limit of [1, 2, 10, 11, 25, 26, 49, 50, 51, 100, 101, 130]) {
        const ids: string[] = [];
        let url: string | undefined = `${API}/mailboxes/${address}/envelopes?${query}&limit=${limit}`;
        while (url !== undefined && ids.length < 130) {
          const page = json(await api.call('GET', url, { token }));
          // Over a thousand envelopes: every page read here is full and has a next link.
          if (page.items.length !== limit || page.next === undefined) t.fail(`${query} limit=${limit}: a page of ${page.items.length}, next ${page.next}`);
          ids.push(...page.items.map((e: any) => e.id));
          url = page.next;
        }
        t.same(ids.slice(0, 130), all, `${address} ${query} limit=${limit}: the same envelopes in the same order`);
      }
    }
  });

  t.test('send without read: a member may create, upload and submit, but not download or list', async (t) => {
    const draft = await createDraft({ to: ['urbanisme@uccle'] }, s.courier.token);
    const courrier = randomBytes(256);
    const res = await upload(api, s.courier.token, draft.id, [{ name: 'file', filename: 'courrier.bin', data: await cipher(draft, courrier) }]);
    t.equal(res.statusCode, 201);
    const [file] = json(res).files;
    problem(t, await api.call('GET', file.href, { token: s.courier.token }), 403, FORBIDDEN);
    problem(t, await api.call('GET', `${API}/mailboxes/secretariat@ixelles/envelopes?direction=out`, { token: s.courier.token }), 403, FORBIDDEN);
    t.equal((await api.call('POST', `${API}/envelopes/${draft.id}/submit`, { token: s.courier.token })).statusCode, 200);
    problem(t, await api.call('GET', file.href, { token: s.courier.token }), 403, FORBIDDEN);
    problem(t, await api.call('POST', `${API}/envelopes/${draft.id}/acknowledge`, { token: s.courier.token }), 403, FORBIDDEN);
    t.same(await statuses(draft.id), { 'urbanisme@uccle': 'delivered' });
    const got = await api.call('GET', file.href, { token: s.urbanisme.token });
    t.equal(got.statusCode, 200);
    t.equal(sha256(got.rawPayload), file.sha256);
    await decrypts(t, 'urbanisme@uccle', got.rawPayload, courrier, 'courrier.bin');
    t.same(await statuses(draft.id), { 'urbanisme@uccle': 'retrieved' });
  });

  t.test('every change left a hash-chained audit entry', async (t) => {
    const rows = await exec<{ action: string; prev_hash: string | null; hash: string }>('SELECT action, prev_hash, hash FROM audit_events ORDER BY seq');
    t.ok(rows.length > auditAtStart, 'the chain grew');
    for (let i = 1; i < rows.length; i++) {
      if (rows[i]!.prev_hash !== rows[i - 1]!.hash) t.fail(`entry ${i} does not chain onto ${i - 1}`);
    }
    const actions = new Set(rows.map((r) => r.action));
    for (const action of ['envelope.create', 'file.create', 'file.remove', 'envelope.submit', 'envelope.retrieve', 'envelope.acknowledge', 'envelope.delete']) {
      t.ok(actions.has(action), action);
    }
  });
});
