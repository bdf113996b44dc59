/**
 * `bxchange verify-receipt` (the real bin script, offline) gives the same
 * verdict as the real `openssl cms -verify` on receipts obtained through the
 * HTTP API: a valid one, a one-byte-tampered evidence, a one-byte-tampered
 * signature, the wrong CA; and, with --at-signing-time, the verdict of
 * `openssl cms -verify -attime` on a receipt whose signer has expired since.
 *
 * End-to-end encryption is enforced (DESIGN §4c): both mailboxes publish keys
 * through the API and the file is ciphertext for the draft's keys, so the
 * receipt names the ciphertext's size and digest.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createReceiptSigner, evidenceBytes } from '../../src/crypto/cms.ts';
import { ensureDevPki } from '../../src/crypto/pki.ts';
import { receiptSigningTime } from '../../src/crypto/receipt-info.ts';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const API = '/api/v1';
const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function bxchange(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // No server, token or database in the environment: the command needs none.
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function openssl(evidence: string, signature: string, ca: string, attime?: Date) {
  const args = ['cms', '-verify', '-binary', '-inform', 'DER', '-in', signature, '-content', evidence, '-CAfile', ca, '-out', '/dev/null'];
  if (attime !== undefined) args.push('-attime', String(Math.floor(attime.getTime() / 1000)));
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

function multipart(filename: string, data: Buffer, fields: Record<string, string>) {
  const boundary = `----bx${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename}"\r\ncontent-type: application/octet-stream\r\n\r\n`), data, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

forEachBackend(t, 'bxchange verify-receipt agrees with openssl cms -verify', async (t, parts) => {
  const api: TestApp = await startApp(t, await parts());
  const dir = await tempDir(t);
  const post = async (url: string, body: unknown, token?: string) => {
    const res = await api.call('POST', url, { body, ...(token ? { token } : {}) });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle']) {
    await post(`${API}/entities`, { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`${API}/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle']);
  const principal = await post(`${API}/principals`, { name: 'ixelles-bo', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
  const sender = (await post(`${API}/principals/${principal.id}/tokens`, {})).token as string;
  const envelope = await post(`${API}/envelopes`, { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'Budget 2027' } }, sender);
  const plaintext = randomBytes(10_000);
  const data = await encryptFor(draftKeys(envelope), plaintext);
  const plaintextSha256 = createHash('sha256').update(plaintext).digest('hex');
  const form = multipart('budget.pdf.gpg', data, { plaintextSha256 });
  t.equal((await api.call('POST', `${API}/envelopes/${envelope.id}/files`, { token: sender, body: form.body, headers: form.headers })).statusCode, 201);
  const submitted = JSON.parse((await api.call('POST', `${API}/envelopes/${envelope.id}/submit`, { token: sender })).body);
  const receiptId = submitted.receipt.id as string;

  const files = {
    evidence: path.join(dir, 'evidence.json'),
    signature: path.join(dir, 'signature.p7s'),
    ca: path.join(dir, 'ca.pem'),
    tampered: path.join(dir, 'evidence-tampered.json'),
    badSignature: path.join(dir, 'signature-tampered.p7s'),
    otherCa: path.join(dir, 'other-ca.pem'),
  };
  const evidence = Buffer.from((await api.call('GET', `${API}/receipts/${receiptId}/evidence.json`, { token: sender })).rawPayload);
  const signature = Buffer.from((await api.call('GET', `${API}/receipts/${receiptId}/signature.p7s`, { token: sender })).rawPayload);
  await writeFile(files.evidence, evidence);
  await writeFile(files.signature, signature);
  await writeFile(files.ca, (await api.call('GET', `${API}/pki/ca.pem`, { token: null })).body);
  const tampered = Buffer.from(evidence);
  const at = tampered.indexOf('Budget') >= 0 ? tampered.indexOf('Budget') : Math.floor(tampered.length / 2);
  tampered[at] = tampered[at]! ^ 0x01;
  await writeFile(files.tampered, tampered);
  const badSignature = Buffer.from(signature);
  badSignature[badSignature.length - 1] = badSignature[badSignature.length - 1]! ^ 0x01; // inside the RSA signature value
  await writeFile(files.badSignature, badSignature);
  await writeFile(files.otherCa, (await ensureDevPki(path.join(dir, 'other'), { platformName: 'elsewhere' })).caCertPem);

  await t.test('a valid receipt: both say valid; the CLI shows the evidence readably', async (t) => {
    const cli = await bxchange(['verify-receipt', files.evidence, files.signature, '--ca', files.ca]);
    const ossl = openssl(files.evidence, files.signature, files.ca);
    t.equal(ossl.status, 0, ossl.stderr);
    t.equal(cli.code, 0, cli.stderr);
    t.match(cli.stdout, /^receipt VALID: signed by .*CN=bxchange receipt signer/);
    for (const expected of [
      /event\s+SubmissionAcceptance/,
      new RegExp(`envelope\\s+${envelope.id} \\(general\\.letter`),
      /sender → recipient\s+secretariat@ixelles → secretariat@uccle/,
      /event time\s+\d{4}-\d\d-\d\dT/,
      new RegExp(`budget\\.pdf\\.gpg\\s+\\(${data.length} bytes`),
      new RegExp(`sha256 \\(stored, encrypted\\)\\s+${createHash('sha256').update(data).digest('hex')}`),
      new RegExp(`sha256 \\(plaintext, sender\\)\\s+${plaintextSha256}`),
      /previous receipt\s+none/,
    ]) {
      t.match(cli.stdout, expected);
    }
  });

  const cases: Array<[string, string, string, string]> = [
    ['one byte of the evidence changed', files.tampered, files.signature, files.ca],
    ['one byte of the signature changed', files.evidence, files.badSignature, files.ca],
    ['another CA', files.evidence, files.signature, files.otherCa],
  ];
  for (const [name, evidenceFile, signatureFile, caFile] of cases) {
    await t.test(`${name}: both refuse`, async (t) => {
      const cli = await bxchange(['verify-receipt', evidenceFile, signatureFile, '--ca', caFile]);
      const ossl = openssl(evidenceFile, signatureFile, caFile);
      t.not(ossl.status, 0, 'openssl refuses');
      t.equal(cli.code, 1, 'the CLI exits 1');
      t.match(cli.stdout, /^receipt INVALID: /);
      if (evidenceFile === files.tampered) t.match(cli.stdout, /evidence \(NOT verified/);
    });
  }

  await t.test('usage errors exit 2', async (t) => {
    const noCa = await bxchange(['verify-receipt', files.evidence, files.signature]);
    t.equal(noCa.code, 2);
    t.match(noCa.stderr, /missing --ca/);
    const missing = await bxchange(['verify-receipt', path.join(dir, 'nope.json'), files.signature, '--ca', files.ca]);
    t.equal(missing.code, 2);
    t.match(missing.stderr, /cannot read EVIDENCE_JSON/);
  });
});

t.test('--at-signing-time agrees with openssl -attime on a receipt whose signer has expired', async (t) => {
  const dir = await tempDir(t);
  const past = new Date(Date.now() - 4 * 365 * 86400_000); // the development signer lives 3 years
  const pki = await ensureDevPki(path.join(dir, 'certs'), { now: () => past });
  const signingTime = new Date(past.getTime() + 86400_000);
  const signer = createReceiptSigner({ ...pki, now: () => signingTime });
  const content = evidenceBytes({ evidenceId: 'e1', eventType: 'SubmissionAcceptance', eventTime: signingTime.toISOString(), sender: 'a@b', recipient: null, recipients: ['c@d'], files: [], previousEvidenceHash: null });
  const files = { evidence: path.join(dir, 'old.json'), signature: path.join(dir, 'old.p7s'), ca: path.join(dir, 'certs', 'ca.pem') };
  await writeFile(files.evidence, content);
  const signature = signer.sign(content);
  await writeFile(files.signature, signature);
  t.equal(receiptSigningTime(signature)?.getTime(), Math.floor(signingTime.getTime() / 1000) * 1000, 'the signingTime is read back');

  const now = await bxchange(['verify-receipt', files.evidence, files.signature, '--ca', files.ca]);
  t.not(openssl(files.evidence, files.signature, files.ca).status, 0, 'openssl: the signer has expired');
  t.equal(now.code, 1);
  t.match(now.stdout, /INVALID: certificate verify error: .*expired/);

  const then = await bxchange(['verify-receipt', files.evidence, files.signature, '--ca', files.ca, '--at-signing-time']);
  const ossl = openssl(files.evidence, files.signature, files.ca, signingTime);
  t.equal(ossl.status, 0, ossl.stderr);
  t.equal(then.code, 0, then.stdout);
  t.match(then.stdout, /certificates checked at /);
});
