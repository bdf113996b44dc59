/**
 * Signed receipts through the HTTP door, verified with the real OpenSSL:
 * every evidence type, the chain between an envelope's receipts, tampering,
 * and who may see which receipt.
 *
 * End-to-end encryption is enforced (DESIGN §4c): the mailboxes publish keys
 * through the API and the uploaded file is ciphertext for the draft's keys, so
 * the receipts' digests are those of the ciphertext the server stored.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { decryptWith, draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const API = '/api/v1';

function multipart(files: Array<{ filename: string; data: Buffer }>, fields: Record<string, string> = {}) {
  const boundary = `----bx${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  for (const f of files) {
    chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${f.filename}"\r\ncontent-type: application/octet-stream\r\n\r\n`), f.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

forEachBackend(t, 'receipts', async (t, parts) => {
  const api: TestApp = await startApp(t, await parts());
  const dir = await tempDir(t);
  const post = async (url: string, body: unknown, token?: string) => {
    const res = await api.call('POST', url, { body, ...(token ? { token } : {}) });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle', 'evere']) {
    await post(`${API}/entities`, { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`${API}/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  const keys = await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle', 'secretariat@evere']);
  const member = async (name: string, mailbox: string) => {
    const p = await post(`${API}/principals`, { name, kind: 'machine', memberships: [{ mailbox, roles: ['read', 'send'] }] });
    return (await post(`${API}/principals/${p.id}/tokens`, {})).token as string;
  };
  const sender = await member('ixelles-bo', 'secretariat@ixelles');
  const uccle = await member('uccle-bo', 'secretariat@uccle');
  const evere = await member('evere-bo', 'secretariat@evere');
  const stranger = await post(`${API}/principals`, { name: 'nobody', kind: 'user' });
  const strangerToken = (await post(`${API}/principals/${stranger.id}/tokens`, {})).token as string;

  const caRes = await api.call('GET', `${API}/pki/ca.pem`, { token: null });
  t.equal(caRes.statusCode, 200, 'the CA is public');
  const caFile = path.join(dir, 'ca.pem');
  await writeFile(caFile, caRes.body);

  /** Downloads a receipt's two files and runs `openssl cms -verify` on them. */
  const opensslVerify = async (receiptId: string, token: string, tamper = false) => {
    const evidence = await api.call('GET', `${API}/receipts/${receiptId}/evidence.json`, { token });
    const signature = await api.call('GET', `${API}/receipts/${receiptId}/signature.p7s`, { token });
    const content = Buffer.from(evidence.rawPayload);
    if (tamper) {
      const at = Math.floor(content.length / 2);
      content[at] = content[at]! ^ 0x01;
    }
    const evidenceFile = path.join(dir, `${receiptId}${tamper ? '-tampered' : ''}.json`);
    const signatureFile = path.join(dir, `${receiptId}.p7s`);
    await writeFile(evidenceFile, content);
    await writeFile(signatureFile, signature.rawPayload);
    const result = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', signatureFile, '-content', evidenceFile, '-CAfile', caFile, '-out', '/dev/null'], { encoding: 'utf8' });
    return { status: result.status, stderr: result.stderr, evidence: JSON.parse(evidence.body), bytes: evidence.rawPayload };
  };

  // A refused submission, then a complete flow.
  const refused = await post(`${API}/envelopes`, { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'empty' } }, sender);
  t.equal((await api.call('POST', `${API}/envelopes/${refused.id}/submit`, { token: sender })).statusCode, 422);

  const envelope = await post(`${API}/envelopes`, { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle', 'secretariat@evere'], metadata: { subject: 'Budget 2027' } }, sender);
  const plaintext = randomBytes(50_000);
  const data = await encryptFor(draftKeys(envelope), plaintext);
  const plaintextSha256 = createHash('sha256').update(plaintext).digest('hex');
  const form = multipart([{ filename: 'budget.pdf.gpg', data }], { plaintextSha256 });
  const uploaded = await api.call('POST', `${API}/envelopes/${envelope.id}/files`, { token: sender, body: form.body, headers: form.headers });
  t.equal(uploaded.statusCode, 201);
  const fileId = JSON.parse(uploaded.body).files[0].id;
  const submitted = JSON.parse((await api.call('POST', `${API}/envelopes/${envelope.id}/submit`, { token: sender })).body);
  t.equal(submitted.receipt.eventType, 'SubmissionAcceptance', 'submit answers with the acceptance receipt');
  const download = await api.call('GET', `${API}/envelopes/${envelope.id}/files/${fileId}`, { token: uccle });
  t.equal(download.statusCode, 200);
  t.ok(download.rawPayload.equals(data), 'the recipient downloads the ciphertext as uploaded');
  t.ok((await decryptWith(keys.get('secretariat@uccle')!, download.rawPayload)).equals(plaintext), 'and decrypts it to the plaintext');
  t.equal((await api.call('GET', `${API}/envelopes/${envelope.id}/files/${fileId}`, { token: uccle })).statusCode, 200, 'a second download');
  t.equal((await api.call('GET', `${API}/envelopes/${envelope.id}/files/${fileId}`, { token: sender })).statusCode, 200, "the sender's download");
  t.equal((await api.call('POST', `${API}/envelopes/${envelope.id}/acknowledge`, { token: uccle, body: {} })).statusCode, 200);

  const senderView = JSON.parse((await api.call('GET', `${API}/envelopes/${envelope.id}`, { token: sender })).body);

  t.test('each event left exactly the receipts it should', async (t) => {
    t.same(
      senderView.receipts.map((r: any) => [r.eventType, r.recipient]),
      [
        ['SubmissionAcceptance', null],
        ['ContentConsignment', 'secretariat@evere'],
        ['ContentConsignment', 'secretariat@uccle'],
        ['ContentHandover', 'secretariat@uccle'],
        ['ConsignmentAcceptance', 'secretariat@uccle'],
      ],
      'in order: recipients by address, the second download and the sender\'s leave nothing',
    );
  });

  t.test('OpenSSL verifies every receipt, and refuses a one-byte change', async (t) => {
    const refusedView = JSON.parse((await api.call('GET', `${API}/envelopes/${refused.id}`, { token: sender })).body);
    const all = [...refusedView.receipts, ...senderView.receipts];
    t.same([...new Set(all.map((r: any) => r.eventType))].sort(), ['ConsignmentAcceptance', 'ContentConsignment', 'ContentHandover', 'SubmissionAcceptance', 'SubmissionRejection']);
    for (const receipt of all) {
      const ok = await opensslVerify(receipt.id, sender);
      t.equal(ok.status, 0, `${receipt.eventType}: ${ok.stderr.trim()}`);
      const bad = await opensslVerify(receipt.id, sender, true);
      t.not(bad.status, 0, `${receipt.eventType} tampered is refused`);
    }
  });

  t.test('the evidence carries the digests and chains to the previous receipt', async (t) => {
    let previous: string | null = null;
    for (const receipt of senderView.receipts) {
      const { evidence, bytes } = await opensslVerify(receipt.id, sender);
      t.equal(evidence.evidenceId, receipt.id);
      t.equal(evidence.envelopeId, envelope.id);
      t.equal(evidence.sender, 'secretariat@ixelles');
      t.equal(evidence.issuer, 'bxchange');
      t.same(evidence.files, [{ fileId, name: 'budget.pdf.gpg', size: data.length, sha256: createHash('sha256').update(data).digest('hex'), plaintextSha256 }]);
      t.equal(evidence.previousEvidenceHash, previous, `${receipt.eventType} names its predecessor`);
      previous = createHash('sha256').update(bytes).digest('hex');
    }
    const rejection = await api.services.envelopeRepository.listEvidence(refused.id);
    t.match(JSON.parse(rejection[0]!.canonical.toString()), { eventType: 'SubmissionRejection', eventReasons: [{ name: 'files' }] });
  });

  t.test('a recipient sees the acceptance and its own receipts only; others see none', async (t) => {
    const evereView = JSON.parse((await api.call('GET', `${API}/envelopes/${envelope.id}`, { token: evere })).body);
    t.same(evereView.receipts.map((r: any) => [r.eventType, r.recipient]), [['SubmissionAcceptance', null], ['ContentConsignment', 'secretariat@evere']]);
    const uccleHandover = senderView.receipts.find((r: any) => r.eventType === 'ContentHandover');
    t.equal((await api.call('GET', `${API}/receipts/${uccleHandover.id}`, { token: evere })).statusCode, 404, "another recipient's receipt does not exist for it");
    t.equal((await api.call('GET', `${API}/receipts/${uccleHandover.id}`, { token: uccle })).statusCode, 200);
    t.equal((await api.call('GET', `${API}/receipts/${uccleHandover.id}/signature.p7s`, { token: strangerToken })).statusCode, 404);
    const refusedView = JSON.parse((await api.call('GET', `${API}/envelopes/${refused.id}`, { token: sender })).body);
    t.equal((await api.call('GET', `${API}/receipts/${refusedView.receipts[0].id}`, { token: uccle })).statusCode, 404, 'a rejection concerns the sender only');
    const one = JSON.parse((await api.call('GET', `${API}/receipts/${uccleHandover.id}`, { token: uccle })).body);
    t.match(one, { eventType: 'ContentHandover', recipient: 'secretariat@uccle', evidence: { eventType: 'ContentHandover' } });
  });
});
