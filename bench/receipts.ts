/**
 * receipts: evidence signed per second — canonicalisation (RFC 8785) + CMS
 * SignedData (forge structure, node:crypto RSA) + signature, without the
 * database — next to bare `crypto.sign` RSA-2048 on the same key in the same
 * process, alternated run by run (goal ≥ 0.8×, DESIGN/issue 7). A second
 * figure: end-to-end submissions per second through the HTTP app on the
 * embedded default (database writes, audit and evidence chains included),
 * with one small file per envelope uploaded beforehand: 1,000 bytes encrypted
 * (OpenPGP, openpgp.js) for the keys the draft pins, since the server refuses
 * plaintext at submit (DESIGN §4c); the two mailboxes publish their keys
 * through the API first. Encrypting happens before the timed span.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/client.ts';
import { createReceiptSigner } from '../src/crypto/cms.ts';
import { ensureDevPki } from '../src/crypto/pki.ts';
import { canonicalJson } from '../src/domain/canonical-json.ts';
import { hashSecret } from '../src/domain/directory.ts';
import { createServices } from '../src/services.ts';
import { createFsBlobStore } from '../src/storage/fs-blob-store.ts';
import { candidateResult, draftPublicKeys, encryptForKeys, envInt, machineInfo, publishBenchKeys, ratioResult, type BenchResult } from './lib.ts';

export const title = 'evidence signed per second vs bare crypto.sign RSA-2048; end-to-end submit rate';

function sampleEvidence(i: number) {
  return {
    evidenceId: `01a2236b-0000-7000-8000-${String(i).padStart(12, '0')}`,
    eventType: 'SubmissionAcceptance',
    eventTime: new Date(1_795_000_000_000 + i).toISOString(),
    issuer: 'bxchange',
    sender: 'secretariat@ixelles',
    recipient: null,
    recipients: ['secretariat@uccle', 'tutelle@bpl'],
    envelopeId: `01a2236b-1111-7000-8000-${String(i).padStart(12, '0')}`,
    envelopeType: 'tutelle.act',
    envelopeTypeVersion: '1.0',
    submissionTime: new Date(1_795_000_000_000 + i).toISOString(),
    files: [{ fileId: 'f', name: 'budget.pdf.gpg', size: 123456, sha256: 'a'.repeat(64), plaintextSha256: 'b'.repeat(64) }],
    previousEvidenceHash: 'c'.repeat(64),
  };
}

/** Operations per second over `ms` milliseconds. */
function rate(ms: number, op: (i: number) => void): number {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) op(n++);
  return (n * 1000) / (performance.now() - start);
}

async function submitRate(envelopes: number): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bx-bench-receipts-'));
  try {
    const token = `bxc_bench_admin_${'x'.repeat(24)}`;
    const database = await openDatabase({ pgliteDir: undefined });
    await database.migrate();
    const config = loadConfig({ BXCHANGE_DATA_DIR: dir, LOG_LEVEL: 'silent', BXCHANGE_CERTS_DIR: path.join(dir, 'certs') });
    const services = await createServices(config, { database, blobStore: createFsBlobStore(path.join(dir, 'blobs')), adminTokenHash: hashSecret(token) });
    const app = await buildApp({ services, logger: false });
    const call = async (method: 'POST' | 'GET' | 'PUT', url: string, body?: unknown, bearer = token, headers: Record<string, string> = {}) => {
      const res = await app.inject({ method, url, headers: { authorization: `Bearer ${bearer}`, ...(body === undefined || Buffer.isBuffer(body) ? {} : { 'content-type': 'application/json' }), ...headers }, ...(body === undefined ? {} : { payload: Buffer.isBuffer(body) ? body : JSON.stringify(body) }) });
      if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
      return JSON.parse(res.body || '{}');
    };
    for (const id of ['ixelles', 'uccle']) {
      await call('POST', '/api/v1/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
      await call('POST', `/api/v1/entities/${id}/mailboxes`, { name: 'secretariat' });
    }
    // A draft needs a published key for each recipient mailbox and for the sender's.
    await publishBenchKeys(['secretariat@ixelles', 'secretariat@uccle'], (url, body) => call('PUT', url, body));
    const p = await call('POST', '/api/v1/principals', { name: 'bench', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
    const sender = (await call('POST', `/api/v1/principals/${p.id}/tokens`, {})).token as string;
    const ids: string[] = [];
    for (let i = 0; i < envelopes; i++) {
      const draft = await call('POST', '/api/v1/envelopes', { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: `Bench ${i}` } }, sender);
      const boundary = 'bxbenchboundary';
      const ciphertext = await encryptForKeys(draftPublicKeys(draft), 'x'.repeat(1000));
      const form = Buffer.concat([
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.gpg"\r\ncontent-type: application/octet-stream\r\n\r\n`),
        ciphertext,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      await call('POST', `/api/v1/envelopes/${draft.id}/files`, form, sender, { 'content-type': `multipart/form-data; boundary=${boundary}` });
      ids.push(draft.id);
    }
    const start = performance.now();
    for (const id of ids) await call('POST', `/api/v1/envelopes/${id}/submit`, undefined, sender);
    const perSecond = (ids.length * 1000) / (performance.now() - start);
    await app.close();
    await services.close();
    return perSecond;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult> {
  const runs = envInt('BENCH_RUNS', 3);
  const windowMs = envInt('BENCH_RECEIPTS_MS', 2000);
  const startedAt = new Date().toISOString();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bx-bench-pki-'));
  const pki = await ensureDevPki(dir);
  const signer = createReceiptSigner(pki);
  const key = createPrivateKey(pki.signerKeyPem);
  const evidence: number[] = [];
  const bare: number[] = [];
  for (let r = 0; r < runs; r++) {
    evidence.push(rate(windowMs, (i) => signer.sign(Buffer.from(canonicalJson(sampleEvidence(i)), 'utf8'))));
    bare.push(rate(windowMs, (i) => sign('sha256', Buffer.from(canonicalJson(sampleEvidence(i)), 'utf8'), key)));
    console.log(`  run ${r + 1}/${runs}: evidence ${evidence.at(-1)!.toFixed(0)}/s, bare crypto.sign ${bare.at(-1)!.toFixed(0)}/s`);
  }
  await rm(dir, { recursive: true, force: true });
  const envelopes = envInt('BENCH_SUBMITS', 200);
  const submits: number[] = [];
  for (let r = 0; r < runs; r++) {
    submits.push(await submitRate(envelopes));
    console.log(`  run ${r + 1}/${runs}: ${submits.at(-1)!.toFixed(1)} submissions/s (end to end, embedded PGlite)`);
  }
  const candidate = candidateResult('evidence (JCS + CMS + RSA)', 'candidate', 'createReceiptSigner().sign(canonical evidence), no database', evidence);
  const baseline = candidateResult('bare crypto.sign RSA-2048', 'baseline', 'node:crypto sign(sha256) of the same canonical bytes with the same key', bare);
  const endToEnd = candidateResult('submit end to end', 'candidate', `POST /submit through the app (inject), embedded PGlite, ${envelopes} envelopes per run; receipts, audit and status writes included`, submits);
  return {
    name: 'receipts',
    title,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: machineInfo(),
    unit: 'operations/s',
    higherIsBetter: true,
    reference: runs >= 3,
    params: { runs, windowMs, envelopes },
    candidates: [candidate, baseline, endToEnd],
    ratios: [ratioResult('evidence / bare crypto.sign', candidate, baseline, true, 0.8)],
    notes: [
      'Evidence and bare signing alternate in one process (CPU-bound, single thread); each run counts operations over a fixed window.',
      'The end-to-end figure has no baseline: it shows what a submission costs with its two receipts (acceptance and one consignment here), audit entry and status writes on the embedded database.',
      "Since end-to-end encryption is enforced (DESIGN §4c), a submission also reads each file's OpenPGP header from the store and checks it names every pinned key: the files are real ciphertext for the draft's keys, so end-to-end figures from before that change are not comparable.",
    ],
  };
}
