/**
 * End-to-end encryption enforced by the server (DESIGN §4c), on every
 * backend: a draft pins the public keys of its recipients and of its sender;
 * a mailbox without a usable key fails the draft at once; at submit the
 * server reads only each file's OpenPGP header from the store and refuses
 * plaintext and files not encrypted for every key, naming the file and the
 * mailbox; after a key rotation the refusal gives the new key and the draft
 * is re-pinned; the key IDs found are recorded on the files. Ciphertext comes
 * from openpgp.js (test helper) and from the real gpg.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { Transform } from 'node:stream';
import path from 'node:path';
import t from 'tap';
import * as openpgp from 'openpgp';
import { json, problem } from '../helpers/problem.ts';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { decryptWith, draftKeys, encryptFor, publishKeys, testKey } from '../helpers/e2e.ts';
import { gpgHome, gpgService } from '../sdk/gpg.ts';
import { withService } from '../helpers/services.ts';
import type { BlobStore } from '../../src/storage/blob-store.ts';

const API = '/api/v1';
const INCOMPLETE = 'urn:problem-type:bxchange:envelopeIncomplete';
const WITHOUT_KEY = 'urn:problem-type:bxchange:mailboxWithoutKey';

async function seed(api: TestApp) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  await post(`${API}/entities`, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
  await post(`${API}/entities`, { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
  for (const [entity, name] of [
    ['ixelles', 'secretariat'],
    ['uccle', 'secretariat'],
    ['uccle', 'urbanisme'],
    ['uccle', 'keyless'],
  ] as const) {
    await post(`${API}/entities/${entity}/mailboxes`, { name });
  }
  const principal = async (name: string, memberships: { mailbox: string; roles: string[] }[]) => {
    const p = await post(`${API}/principals`, { name, kind: 'user', memberships });
    return (await post(`${API}/principals/${p.id}/tokens`, {})).token as string;
  };
  const keys = await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle', 'urbanisme@uccle']);
  return {
    keys,
    sender: await principal('ixelles-sender', [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }]),
    recipient: await principal('uccle-clerk', [{ mailbox: 'secretariat@uccle', roles: ['read', 'manage'] }]),
  };
}

const TO = ['secretariat@uccle', 'urbanisme@uccle'];

/** Counts the bytes read from the store: the header check must read only the first bytes. */
function countingStore(store: BlobStore): BlobStore & { bytesRead: number } {
  const counting = Object.create(store) as BlobStore & { bytesRead: number };
  counting.bytesRead = 0;
  counting.get = async (key, range) => {
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        counting.bytesRead += chunk.length;
        done(null, chunk);
      },
    });
    const source = await store.get(key, range);
    // Closing the counted stream early (the header reader does) must release the source too.
    count.on('close', () => source.destroy());
    return source.pipe(count);
  };
  return counting;
}

forEachBackend(t, 'end-to-end encryption enforced', async (t, parts) => {
  const backend = await parts();
  const store = countingStore(backend.blobStore);
  const api = await startApp(t, { ...backend, blobStore: store });
  const s = await seed(api);

  const draft = async (to = TO) => {
    const res = await api.call('POST', `${API}/envelopes`, {
      token: s.sender,
      body: { type: 'general.letter', from: 'secretariat@ixelles', to, metadata: { subject: 'Convention' } },
    });
    t.equal(res.statusCode, 201, 'draft created');
    return json(res);
  };
  const putFile = async (envelopeId: string, name: string, data: Buffer) => {
    const boundary = `b${randomBytes(8).toString('hex')}`;
    const payload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/pgp-encrypted\r\n\r\n`),
      data,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await api.call('POST', `${API}/envelopes/${envelopeId}/files`, {
      token: s.sender,
      body: payload,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    t.equal(res.statusCode, 201, `${name} uploaded`);
    return json(res).files[0];
  };
  const submit = (envelopeId: string) => api.call('POST', `${API}/envelopes/${envelopeId}/submit`, { token: s.sender });

  t.test('the draft answer pins the active key of every recipient and of the sender', async (t) => {
    const d = await draft();
    t.same(
      d.encryptionKeys.map((k: { mailbox: string }) => k.mailbox),
      [...TO, 'secretariat@ixelles'],
      "recipients' keys, then the sender's own",
    );
    for (const pin of d.encryptionKeys) {
      const key = s.keys.get(pin.mailbox)!;
      t.equal(pin.fingerprint, key.fingerprint, `${pin.mailbox}: its published key`);
      t.same(pin.encryptionKeyIds, [key.encryptionKeyId], `${pin.mailbox}: the encryption subkey`);
      const parsed = await openpgp.readKey({ armoredKey: pin.publicKey });
      t.equal(parsed.getFingerprint().toLowerCase(), key.fingerprint, 'publicKey is the armored key itself');
    }
    const again = json(await api.call('GET', `${API}/envelopes/${d.id}`, { token: s.sender }));
    t.same(again.encryptionKeys, d.encryptionKeys, 'GET shows the same pins');
  });

  t.test('a recipient mailbox without a key fails the draft at once, naming it', async (t) => {
    const before = json(await api.call('GET', `${API}/mailboxes/secretariat@ixelles/envelopes?direction=out`, { token: s.sender })).items.length;
    const p = problem(
      t,
      await api.call('POST', `${API}/envelopes`, {
        token: s.sender,
        body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle', 'keyless@uccle'], metadata: { subject: 'x' } },
      }),
      422,
      WITHOUT_KEY,
    );
    t.same(p.issues.map((i: { name: string; value: string }) => [i.name, i.value]), [['/to/1', 'keyless@uccle']]);
    t.match(p.detail, /keyless@uccle has no encryption key/);
    const after = json(await api.call('GET', `${API}/mailboxes/secretariat@ixelles/envelopes?direction=out`, { token: s.sender })).items.length;
    t.equal(after, before, 'no draft was made');
  });

  t.test('ciphertext for every pinned key is accepted and its recipients recorded; the check reads only the header', async (t) => {
    const d = await draft();
    const plaintext = randomBytes(3 * 1024 * 1024); // larger than the header the check may read
    const file = await putFile(d.id, 'convention.pdf.gpg', await encryptFor(draftKeys(d), plaintext));
    store.bytesRead = 0;
    const res = await submit(d.id);
    t.equal(res.statusCode, 200, 'submitted');
    t.ok(store.bytesRead > 0 && store.bytesRead <= 64 * 1024, `read ${store.bytesRead} bytes of a 3 MiB file`);
    const submitted = json(await api.call('GET', `${API}/envelopes/${d.id}`, { token: s.sender }));
    const recorded = submitted.files.find((f: { id: string }) => f.id === file.id);
    t.same(
      [...recorded.recipientKeyIds].sort(),
      ['secretariat@uccle', 'urbanisme@uccle', 'secretariat@ixelles'].map((a) => s.keys.get(a)!.encryptionKeyId).sort(),
      'the recipient key IDs are stored with the file',
    );
    // The recipient can read it with its own key: the server stored the ciphertext as sent.
    const download = await api.call('GET', `${API}/envelopes/${d.id}/files/${file.id}`, { token: s.recipient });
    t.equal(download.statusCode, 200);
    t.ok((await decryptWith(s.keys.get('secretariat@uccle')!, download.rawPayload)).equals(plaintext), 'the recipient decrypts the original bytes');
  });

  t.test('plaintext is refused at submit, naming the file; nothing is delivered', async (t) => {
    const d = await draft();
    const file = await putFile(d.id, 'budget.xlsx', Buffer.from('PK\u0003\u0004 not encrypted at all '.repeat(1000)));
    const p = problem(t, await submit(d.id), 422, INCOMPLETE);
    t.same(p.issues.map((i: { name: string; value: string }) => [i.name, i.value]), [[`files/${file.id}`, 'budget.xlsx']]);
    t.match(p.issues[0].detail, /not an OpenPGP message/);
    const after = json(await api.call('GET', `${API}/envelopes/${d.id}`, { token: s.sender }));
    t.equal(after.status, 'draft', 'still a draft');
    t.equal(after.files[0].recipientKeyIds, null, 'nothing recorded');
    const inbox = json(await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=in`, { token: s.recipient }));
    t.notOk(inbox.items.some((i: { id: string }) => i.id === d.id), 'the recipient sees nothing');
  });

  t.test('a complete file whose bytes vanished from the store fails the submit as the platform fault it is', async (t) => {
    const d = await draft();
    const file = await putFile(d.id, 'lost.gpg', await encryptFor(draftKeys(d), 'bytes the store will lose'));
    await backend.blobStore.delete(`envelopes/${d.id}/${file.id}`);
    const p = problem(t, await submit(d.id), 500, 'urn:problem-type:bxchange:fileMissing');
    t.match(p.detail, /"lost.gpg" are missing/);
    t.equal(json(await api.call('GET', `${API}/envelopes/${d.id}`, { token: s.sender })).status, 'draft', 'still a draft');
  });

  t.test('a file encrypted for only some keys is refused, naming each missing mailbox', async (t) => {
    const d = await draft();
    const onlyUccle = d.encryptionKeys.filter((k: { mailbox: string }) => k.mailbox === 'secretariat@uccle').map((k: { publicKey: string }) => k.publicKey);
    const file = await putFile(d.id, 'partial.gpg', await encryptFor(onlyUccle, 'for one recipient only'));
    const p = problem(t, await submit(d.id), 422, INCOMPLETE);
    const missing = p.issues.map((i: { name: string; detail: string }) => [i.name, /not encrypted for (\S+)/.exec(i.detail)?.[1]]);
    t.same(missing, [
      [`files/${file.id}`, 'urbanisme@uccle'],
      [`files/${file.id}`, 'secretariat@ixelles'],
    ]);
  });

  t.test('a key rotated after the draft: the refusal lists the new key, the draft is re-pinned, re-encrypting succeeds', async (t) => {
    const d = await draft();
    const old = await putFile(d.id, 'before-rotation.gpg', await encryptFor(draftKeys(d), 'encrypted for the old keys'));
    // urbanisme@uccle rotates its key (an administrator publishes a new one).
    const rotated = await testKey('urbanisme@uccle', 'rotated');
    t.equal((await api.call('PUT', `${API}/mailboxes/urbanisme@uccle/key`, { body: { publicKey: rotated.publicKey } })).statusCode, 200, 'rotated');
    const p = problem(t, await submit(d.id), 422, INCOMPLETE);
    t.match(p.issues[0].detail, new RegExp(`urbanisme@uccle, which rotated its key.*${rotated.fingerprint}`));
    t.same(
      p.encryptionKeys.map((k: { mailbox: string; fingerprint: string }) => [k.mailbox, k.fingerprint]),
      [
        ['secretariat@uccle', s.keys.get('secretariat@uccle')!.fingerprint],
        ['urbanisme@uccle', rotated.fingerprint],
        ['secretariat@ixelles', s.keys.get('secretariat@ixelles')!.fingerprint],
      ],
      'the problem gives the keys to encrypt for now',
    );
    const repinned = json(await api.call('GET', `${API}/envelopes/${d.id}`, { token: s.sender }));
    t.same(repinned.encryptionKeys, p.encryptionKeys, 'the draft pins the new keys');
    t.equal((await api.call('DELETE', `${API}/envelopes/${d.id}/files/${old.id}`, { token: s.sender })).statusCode, 204, 'old file removed');
    await putFile(d.id, 'after-rotation.gpg', await encryptFor(draftKeys(repinned), 'encrypted for the new keys'));
    t.equal((await submit(d.id)).statusCode, 200, 'submitted after re-encrypting');
  });

  t.test('a file encrypted by the real gpg for the pinned keys is accepted', async (t) => {
    await withService(t, gpgService(), 'gpg', async (t) => {
      const gpg = await gpgHome(t);
      const dir = await tempDir(t);
      const d = await draft(['secretariat@uccle']);
      const recipients: string[] = [];
      for (const [i, key] of d.encryptionKeys.entries()) {
        await gpg.importKey(key.publicKey, path.join(dir, `k${i}.asc`));
        recipients.push('-r', key.fingerprint);
      }
      const input = path.join(dir, 'deliberation.pdf');
      await writeFile(input, randomBytes(200_000));
      await gpg.run(['--trust-model', 'always', '--encrypt', ...recipients, '--output', `${input}.gpg`, input]);
      await putFile(d.id, 'deliberation.pdf.gpg', await readFile(`${input}.gpg`));
      t.equal((await submit(d.id)).statusCode, 200, 'gpg ciphertext accepted');
      // gpg --throw-keyids hides the recipients: the server cannot check, so it refuses with that reason.
      const hidden = await draft(['secretariat@uccle']);
      await gpg.run(['--trust-model', 'always', '--throw-keyids', '--encrypt', ...recipients, '--output', `${input}.hidden.gpg`, input]);
      await putFile(hidden.id, 'hidden.gpg', await readFile(`${input}.hidden.gpg`));
      const p = problem(t, await submit(hidden.id), 422, INCOMPLETE);
      t.match(p.issues[0].detail, /hides its recipients/);
    });
  });
});
