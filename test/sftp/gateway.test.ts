/**
 * The SFTP door driven by the real OpenSSH `sftp` client in batch mode, on
 * every backend, the way a municipal back office scripts it: SSH keys
 * registered through the API, a draft made by mkdir + put envelope.json,
 * the pinned keys fetched, files encrypted with the real gpg and put, the
 * submission by rename, its receipt verified with openssl against the
 * platform CA; the recipient lists, fetches (bytes equal, a retrieval),
 * verifies and acknowledges by the .ack convention. Plus: a refused submit
 * (ERROR.json, the HTTP problem), reput after a killed transfer, put -p,
 * traversal refused, other entities' mailboxes invisible.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { publishKeys } from '../helpers/e2e.ts';
import { json } from '../helpers/problem.ts';
import { gpgHome } from '../sdk/gpg.ts';
import { batch, ok, refused, run, spawnBatch, sshKey, startDoor, type SftpUser } from './helpers.ts';

const API = '/api/v1';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function seed(api: TestApp, dir: string) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  await post(`${API}/entities`, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
  await post(`${API}/entities`, { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
  await post(`${API}/entities`, { id: 'schaerbeek', kind: 'commune', name: { fr: 'Schaerbeek', nl: 'Schaarbeek' }, nisCode: '21015' });
  for (const entity of ['ixelles', 'uccle', 'schaerbeek']) await post(`${API}/entities/${entity}/mailboxes`, { name: 'secretariat' });
  await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle', 'secretariat@schaerbeek']);
  const principal = async (name: string, mailbox: string, roles: string[]): Promise<SftpUser & { id: string }> => {
    const p = await post(`${API}/principals`, { name, kind: 'machine', memberships: [{ mailbox, roles }] });
    const keyFile = await sshKey(dir, name);
    const registered = await post(`${API}/principals/${p.id}/ssh-keys`, { publicKey: await readFile(`${keyFile}.pub`, 'utf8') });
    if (!String(registered.fingerprint).startsWith('SHA256:')) throw new Error('no fingerprint');
    return { id: p.id as string, name, keyFile };
  };
  return {
    sender: await principal('ixelles-backoffice', 'secretariat@ixelles', ['read', 'send']),
    recipient: await principal('uccle-backoffice', 'secretariat@uccle', ['read']),
    stranger: await principal('schaerbeek-backoffice', 'secretariat@schaerbeek', ['read', 'send']),
  };
}

/** Imports the keys fetched over SFTP and encrypts `file` for all of them, as a back office would with gpg. */
async function gpgEncrypt(gpg: Awaited<ReturnType<typeof gpgHome>>, keysDir: string, input: string, output: string): Promise<void> {
  const recipients: string[] = [];
  for (const name of await readdir(keysDir)) {
    await gpg.run(['--import', path.join(keysDir, name)]);
    const colons = await gpg.showKeys(path.join(keysDir, name));
    recipients.push(colons.find((r) => r[0] === 'fpr')![9]!);
  }
  await gpg.run(['--trust-model', 'always', '--encrypt', ...recipients.flatMap((r) => ['-r', r]), '-o', output, input]);
}

await forEachBackend(t, 'a back office sends and receives over SFTP with the OpenSSH client', async (t, parts) => {
  const backend = await parts();
  const api = await startApp(t, backend);
  const dir = await tempDir(t, 'bx-sftp-');
  const users = await seed(api, dir);
  const door = await startDoor(t, api, dir);
  const port = door.port;
  const gpg = await gpgHome(t);
  const out = path.join(dir, 'work');
  await mkdir(out);
  const ca = (await api.call('GET', `${API}/pki/ca.pem`)).body;
  await writeFile(path.join(out, 'ca.pem'), ca);
  const S = 'secretariat@ixelles/send';
  let envelopeId = '';
  let ciphertext = Buffer.alloc(0);

  await t.test('the registered key opens the principal named by it, and no other', async (t) => {
    const root = await ok(t, port, users.sender, ['ls -1 /'], out);
    t.match(root.stdout, /secretariat@ixelles/);
    t.notMatch(root.stdout, /uccle|schaerbeek/, 'only its own mailboxes');
    const wrongUser = await batch(port, { name: 'uccle-backoffice', keyFile: users.sender.keyFile }, ['ls /'], out);
    t.not(wrongUser.code, 0, "a key does not open another principal's account");
  });

  await t.test('mkdir + put envelope.json make a draft; draft.json and the keys to encrypt for appear', async (t) => {
    await writeFile(path.join(out, 'envelope.json'), JSON.stringify({ type: 'general.letter', to: ['secretariat@uccle'], metadata: { subject: 'Budget 2027', reference: 'FIN/2027/1' } }));
    await ok(t, port, users.sender, [`mkdir ${S}/budget`, `put envelope.json ${S}/budget/envelope.json`, `get ${S}/budget/draft.json draft.json`, `get -r ${S}/budget/keys keys`], out);
    const draft = JSON.parse(await readFile(path.join(out, 'draft.json'), 'utf8'));
    envelopeId = draft.id;
    t.equal(draft.status, 'draft');
    t.same(draft.recipients.map((r: { address: string }) => r.address), ['secretariat@uccle']);
    t.same((await readdir(path.join(out, 'keys'))).sort(), ['secretariat@ixelles.asc', 'secretariat@uccle.asc'], 'the recipient and the sender itself');
  });

  await t.test('gpg-encrypted files are put, the rename submits, and the receipt verifies with openssl', async (t) => {
    await writeFile(path.join(out, 'budget.pdf'), randomBytes(3 * 1024 * 1024 + 17));
    await gpgEncrypt(gpg, path.join(out, 'keys'), path.join(out, 'budget.pdf'), path.join(out, 'budget.pdf.gpg'));
    ciphertext = await readFile(path.join(out, 'budget.pdf.gpg'));
    await ok(t, port, users.sender, [
      `put budget.pdf.gpg ${S}/budget/`,
      `rename ${S}/budget ${S}/budget.submit`,
      `get ${S}/budget.submit/receipt.json receipt.json`,
      `get ${S}/budget.submit/receipt.p7s receipt.p7s`,
    ], out);
    const receipt = JSON.parse(await readFile(path.join(out, 'receipt.json'), 'utf8'));
    t.equal(receipt.eventType, 'SubmissionAcceptance');
    t.equal(receipt.envelopeId, envelopeId);
    const verified = await run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'receipt.p7s', '-content', 'receipt.json', '-CAfile', 'ca.pem', '-out', '/dev/null'], { cwd: out });
    t.match(verified.stderr, /Verification successful/);
    const row = (await api.services.envelopeRepository.find(envelopeId))!;
    t.equal(row.status, 'submitted');
    t.equal(row.files[0]!.sha256, sha256(ciphertext), 'the stored SHA-256 is that of the bytes put');
  });

  await t.test('the recipient lists its inbox, gets the file (a retrieval) and verifies a receipt', async (t) => {
    const listed = await ok(t, port, users.recipient, ['ls -1 secretariat@uccle/inbox'], out);
    t.match(listed.stdout, envelopeId);
    const I = `secretariat@uccle/inbox/${envelopeId}`;
    await ok(t, port, users.recipient, [`get ${I}/budget.pdf.gpg fetched.gpg`, `get ${I}/envelope.json inbox-envelope.json`, `get -r ${I}/receipts receipts`], out);
    t.equal(sha256(await readFile(path.join(out, 'fetched.gpg'))), sha256(ciphertext), 'the bytes sent, unchanged');
    const decrypted = await gpg.run(['--decrypt', '-o', path.join(out, 'budget.out'), path.join(out, 'fetched.gpg')]).then(
      () => true,
      () => false,
    );
    t.notOk(decrypted, 'without the private key the file stays ciphertext');
    const envelope = JSON.parse(await readFile(path.join(out, 'inbox-envelope.json'), 'utf8'));
    t.equal(envelope.from, 'secretariat@ixelles');
    t.equal(envelope.metadata.subject, 'Budget 2027');
    const row = (await api.services.envelopeRepository.find(envelopeId))!;
    t.equal(row.recipients[0]!.status, 'retrieved', 'reading the file counted as the retrieval');
    const names = await readdir(path.join(out, 'receipts'));
    const handover = names.find((n) => n.startsWith('ContentHandover-') && n.endsWith('.json'));
    t.ok(handover, 'the ContentHandover receipt is listed');
    const base = path.join('receipts', handover!.slice(0, -'.json'.length));
    const verified = await run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', `${base}.p7s`, '-content', `${base}.json`, '-CAfile', 'ca.pem', '-out', '/dev/null'], { cwd: out });
    t.match(verified.stderr, /Verification successful/);
  });

  await t.test('rm never acknowledges; rename into inbox/.ack does', async (t) => {
    const I = `secretariat@uccle/inbox/${envelopeId}`;
    await refused(t, port, users.recipient, `rmdir ${I}`, out);
    await refused(t, port, users.recipient, `rm ${I}/budget.pdf.gpg`, out);
    t.equal((await api.services.envelopeRepository.find(envelopeId))!.recipients[0]!.status, 'retrieved', 'still not acknowledged');
    await ok(t, port, users.recipient, [`rename ${I} secretariat@uccle/inbox/.ack/${envelopeId}`], out);
    t.equal((await api.services.envelopeRepository.find(envelopeId))!.recipients[0]!.status, 'acknowledged');
    const inbox = await ok(t, port, users.recipient, ['ls -1 secretariat@uccle/inbox', 'ls -1 secretariat@uccle/inbox/.ack'], out);
    t.equal(inbox.stdout.split(envelopeId).length - 1, 1, 'listed once: in .ack, no longer in the inbox');
    const sender = await ok(t, port, users.sender, [`get -r secretariat@ixelles/outbox/${envelopeId}/receipts sent-receipts`], out);
    t.equal(sender.code, 0);
    t.ok((await readdir(path.join(out, 'sent-receipts'))).some((n) => n.startsWith('ConsignmentAcceptance-')), 'the sender gets the acknowledgement receipt');
  });

  await t.test('a refused submit shows the HTTP problem in ERROR.json and submits nothing', async (t) => {
    await writeFile(path.join(out, 'plain.txt'), 'not encrypted\n');
    await ok(t, port, users.sender, [`mkdir ${S}/plain`, `put envelope.json ${S}/plain/envelope.json`, `put plain.txt ${S}/plain/plain.txt`, `rename ${S}/plain ${S}/plain.submit`, `get ${S}/plain.submit/ERROR.json ERROR.json`], out);
    const problem = JSON.parse(await readFile(path.join(out, 'ERROR.json'), 'utf8'));
    t.equal(problem.status, 422);
    t.equal(problem.code, 'envelopeIncomplete');
    t.equal(problem.type, 'urn:problem-type:bxchange:envelopeIncomplete');
    t.ok(problem.issues.some((i: { value?: unknown; detail: string }) => String(i.value ?? i.detail).includes('plain.txt') || i.detail.includes('plain.txt')), 'an issue names the file');
    await refused(t, port, users.sender, `get ${S}/plain.submit/receipt.json`, out);
    const draft = await ok(t, port, users.sender, [`rename ${S}/plain.submit ${S}/plain`, `get ${S}/plain/draft.json plain-draft.json`], out);
    t.equal(draft.code, 0);
    t.equal(JSON.parse(await readFile(path.join(out, 'plain-draft.json'), 'utf8')).status, 'draft', 'back to editing, still a draft');
  });

  await t.test('a refused envelope.json leaves ERROR.json naming the field', async (t) => {
    await writeFile(path.join(out, 'bad.json'), JSON.stringify({ type: 'general.letter', to: ['nobody@nowhere'], metadata: { subject: 'x' } }));
    const result = await batch(port, users.sender, [`mkdir ${S}/bad`, `put bad.json ${S}/bad/envelope.json`], out);
    t.not(result.code, 0, 'the put fails');
    await ok(t, port, users.sender, [`get ${S}/bad/ERROR.json bad-error.json`], out);
    const problem = JSON.parse(await readFile(path.join(out, 'bad-error.json'), 'utf8'));
    t.equal(problem.status, 400);
    t.ok(problem.issues.some((i: { name: string }) => i.name === '/to/0'));
  });

  await t.test('reput after a killed transfer completes the file with identical bytes; nothing partial is submitted', async (t) => {
    const big = randomBytes(24 * 1024 * 1024 + 12345);
    await writeFile(path.join(out, 'big.bin'), big);
    await ok(t, port, users.sender, [`mkdir ${S}/big`, `put envelope.json ${S}/big/envelope.json`], out);
    const folder = (await api.services.envelopes.listMailbox({ type: 'principal', principal: (await api.services.directoryRepository.findPrincipal(users.sender.id))!, tokenId: null }, 'secretariat@ixelles', { direction: 'out', status: 'draft' })).items;
    const draftId = folder[0]!.envelope.id;
    // 16 Mbit/s: the transfer would last ~13 s; it is killed (sftp and its ssh) once the store holds some of it
    // (S3 shows bytes by 8 MiB parts).
    const transfer = spawnBatch(port, users.sender, [`put big.bin ${S}/big/big.bin`], out, ['-l', '16000']);
    let stored = 0;
    for (let i = 0; i < 1000 && stored === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      const file = (await api.services.envelopeRepository.find(draftId))!.files[0];
      if (file !== undefined) stored = (await api.services.uploadStore.getUpload(file.storageKey).catch(() => ({ offset: 0 }))).offset;
    }
    process.kill(-transfer.child.pid!, 'SIGKILL');
    await transfer.done;
    t.ok(stored > 0 && stored < big.length, `killed mid-transfer (${stored} bytes stored)`);
    const partial = (await api.services.envelopeRepository.find(draftId))!.files[0]!;
    t.equal(partial.completedAt, null, 'the file is partial');
    await ok(t, port, users.sender, [`rename ${S}/big ${S}/big.submit`, `get ${S}/big.submit/ERROR.json big-error.json`, `rename ${S}/big.submit ${S}/big`], out);
    const early = JSON.parse(await readFile(path.join(out, 'big-error.json'), 'utf8'));
    t.ok(early.issues.some((i: { detail: string }) => /is not complete/.test(i.detail)), 'a partial file is never submitted');
    await ok(t, port, users.sender, [`reput big.bin ${S}/big/big.bin`, `get ${S}/big/big.bin big.back`], out);
    t.equal(sha256(await readFile(path.join(out, 'big.back'))), sha256(big), 'identical bytes after reput');
    const done = (await api.services.envelopeRepository.find(draftId))!.files[0]!;
    t.equal(done.sha256, sha256(big), 'the hash followed the resume');
    t.equal(done.size, big.length);
  });

  await t.test('put -p works (SETSTAT/FSETSTAT answered)', async (t) => {
    await writeFile(path.join(out, 'small.bin'), randomBytes(1000));
    await ok(t, port, users.sender, [`put -p small.bin ${S}/big/small.bin`, `ls -l ${S}/big`], out);
  });

  await t.test('traversal, absolute paths outside the tree and links are refused', async (t) => {
    await refused(t, port, users.sender, 'get ../../../etc/passwd', out);
    await refused(t, port, users.sender, 'get /etc/passwd', out);
    await refused(t, port, users.sender, `get secretariat@ixelles/../../etc/passwd`, out);
    await refused(t, port, users.sender, `ls ${S}/../../../`, out);
    await refused(t, port, users.sender, `symlink /etc/passwd ${S}/big/passwd`, out);
    await refused(t, port, users.sender, `put envelope.json secretariat@ixelles/inbox/x.json`, out);
    const up = await ok(t, port, users.sender, ['cd secretariat@ixelles/inbox', 'cd ../../..', 'pwd', 'ls -1'], out);
    t.match(up.stdout, /Remote working directory: \/\n/, 'cd .. stops at the root');
  });

  await t.test("another entity's mailboxes do not exist for a principal", async (t) => {
    const root = await ok(t, port, users.stranger, ['ls -1 /'], out);
    t.notMatch(root.stdout, /ixelles|uccle/);
    await refused(t, port, users.stranger, 'ls secretariat@uccle/inbox', out);
    await refused(t, port, users.stranger, `get secretariat@uccle/inbox/${envelopeId}/envelope.json`, out);
    await refused(t, port, users.stranger, `get secretariat@ixelles/outbox/${envelopeId}/budget.pdf.gpg`, out);
    await refused(t, port, users.stranger, `get secretariat@schaerbeek/inbox/${envelopeId}/envelope.json`, out);
    const row = (await api.services.envelopeRepository.find(envelopeId))!;
    t.equal(row.recipients[0]!.status, 'acknowledged', 'unchanged');
  });
});
