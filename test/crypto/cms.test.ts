/**
 * Signed receipts and the platform PKI, judged by the real `openssl` binary:
 * what an auditor runs must agree with `verifyReceipt` (the code behind
 * `bxchange verify-receipt`) on every receipt, good or bad.
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import t, { type Test } from 'tap';
import { createReceiptSigner, evidenceBytes, verifyReceipt } from '../../src/crypto/cms.ts';
import { forgeSigningKey, reusableName } from '../../src/crypto/forge-util.ts';
import { chainPem, ensureDevPki, issueClientCertificate, loadPki, PKI_FILES, PkiError, randomSerialNumber, type Pki } from '../../src/crypto/pki.ts';
import { withService, type ServiceProbe } from '../helpers/services.ts';

const YEAR = 365 * 24 * 3600_000;

function opensslProbe(): ServiceProbe<string> {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return { name: 'OpenSSL', value: r.status === 0 ? r.stdout.trim() : undefined, reason: 'no openssl binary on PATH' };
}

function openssl(args: string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

async function tempDir(t: Test, label: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `bx-${label}-`));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What an auditor runs, exactly; the files are written into `dir` first. */
async function opensslVerify(dir: string, caPem: string, content: Buffer, signature: Buffer) {
  await fs.writeFile(path.join(dir, 'ca.pem'), caPem);
  await fs.writeFile(path.join(dir, 'evidence.json'), content);
  await fs.writeFile(path.join(dir, 'sig.p7s'), signature);
  return openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'sig.p7s', '-content', 'evidence.json', '-CAfile', 'ca.pem', '-out', '/dev/null'], dir);
}

const evidence = {
  evidenceId: '0f8e2c1a-6a53-4c52-9d5e-6f1e0f5d7a10',
  eventType: 'SubmissionAcceptance',
  eventTime: '2025-03-04T10:15:00.000Z',
  issuer: 'bxchange',
  sender: 'secretariat@ixelles',
  recipient: 'secretariat@uccle',
  envelopeId: '5b0e4a5e-8a57-4f7e-b8a6-3d0c3b6f0e21',
  envelopeType: 'general.letter',
  submissionTime: '2025-03-04T10:14:59.000Z',
  files: [{ name: 'lettre-échevin.pdf.gpg', sha256: 'a'.repeat(64) }],
  previousEvidenceSha256: null,
};

t.test('the serial number generator never makes a serial OpenSSL rejects', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const serial = randomSerialNumber();
    const first = Number.parseInt(serial.slice(0, 2), 16);
    if (first === 0 || first >= 0x80 || serial.length !== 32) t.fail(`bad serial ${serial}`);
    seen.add(serial);
  }
  t.equal(seen.size, 10_000, '10,000 distinct serials, none with a 00 first byte or the high bit set');
  t.equal(randomSerialNumber((n) => Buffer.alloc(n, 0x00)), `01${'00'.repeat(15)}`, 'an all-zero draw still gives a minimal positive INTEGER');
  t.equal(randomSerialNumber((n) => Buffer.alloc(n, 0xff)), `7f${'ff'.repeat(15)}`, 'an all-ones draw is not negative');
});

t.test('evidence bytes are RFC 8785 canonical JSON in UTF-8', async (t) => {
  t.equal(evidenceBytes({ b: 1, a: [true, null, 'é'], c: { z: 1e21, y: 0.5 } }).toString('utf8'), '{"a":[true,null,"é"],"b":1,"c":{"y":0.5,"z":1e+21}}');
  t.same([...evidenceBytes({ k: 'é' })], [0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xc3, 0xa9, 0x22, 0x7d], 'é is the two UTF-8 bytes C3 A9');
});

t.test('loadPki names the file it misses, and does without ca.key', async (t) => {
  const empty = await tempDir(t, 'empty');
  await t.rejects(loadPki(empty), new PkiError(path.join(empty, PKI_FILES.caCert), 'is missing'));

  const dir = await tempDir(t, 'prod');
  const dev = await ensureDevPki(dir);
  await fs.rm(path.join(dir, PKI_FILES.caKey));
  const prod = await loadPki(dir);
  t.equal(prod.caKeyPem, undefined, 'the CA key is optional in production');
  t.equal(prod.signerCertPem, dev.signerCertPem);

  await fs.rm(path.join(dir, PKI_FILES.signerKey));
  await t.rejects(loadPki(dir), { name: 'PkiError', file: path.join(dir, PKI_FILES.signerKey), message: /is missing/ });

  const other = await ensureDevPki(await tempDir(t, 'other'));
  await fs.writeFile(path.join(dir, PKI_FILES.signerKey), dev.signerKeyPem);
  await fs.writeFile(path.join(dir, PKI_FILES.caCert), other.caCertPem);
  await t.rejects(loadPki(dir), /receipt-signer\.pem: does not verify against ca\.pem: unable to get local issuer certificate/, 'a signer from another CA is refused at start');
});

t.test('ensureDevPki: a half pair is reported, a missing signer pair is issued again by the existing CA', async (t) => {
  const dir = await tempDir(t, 'partial');
  const first = await ensureDevPki(dir);
  await fs.rm(path.join(dir, PKI_FILES.signerCert));
  await t.rejects(ensureDevPki(dir), { name: 'PkiError', file: path.join(dir, PKI_FILES.signerCert), message: /is missing while other PKI files exist/ });

  await fs.rm(path.join(dir, PKI_FILES.signerKey));
  const renewed = await ensureDevPki(dir);
  t.equal(renewed.caCertPem, first.caCertPem, 'same CA');
  t.not(renewed.signerCertPem, first.signerCertPem, 'a new signer');
  t.ok(new X509Certificate(renewed.signerCertPem).checkIssued(new X509Certificate(renewed.caCertPem)), 'issued by that CA');
});

t.test('two servers starting on one empty certs folder end up with one consistent PKI', async (t) => {
  const dir = await tempDir(t, 'race');
  const [a, b, c] = await Promise.all([ensureDevPki(dir), ensureDevPki(dir), ensureDevPki(dir)]);
  t.same(b, a);
  t.same(c, a);
  const signer = new X509Certificate(a.signerCertPem);
  t.ok(signer.verify(new X509Certificate(a.caCertPem).publicKey), 'the signer on disk is signed by the CA on disk');
  t.same((await fs.readdir(dir)).sort(), Object.values(PKI_FILES).sort(), 'no temporary file left behind');
});

withService(t, opensslProbe(), 'receipts against the openssl binary', async (t) => {
  const certsDir = await tempDir(t, 'certs');
  const signingClock = new Date('2025-03-04T10:15:00Z');
  // Receipts signed "now" by the clock below; certificates valid from real now.
  const pki = await ensureDevPki(certsDir);
  const signer = createReceiptSigner({ ...pki, now: () => signingClock });
  const work = await tempDir(t, 'work');
  const content = evidenceBytes(evidence);
  const signature = signer.sign(content);

  t.test('ensureDevPki writes ca.pem, ca.key, receipt-signer.pem, receipt-signer.key; keys are 0600', async (t) => {
    const mode = async (name: string) => (await fs.stat(path.join(certsDir, name))).mode & 0o777;
    t.equal(await mode(PKI_FILES.caKey), 0o600);
    t.equal(await mode(PKI_FILES.signerKey), 0o600);
    t.equal((await mode(PKI_FILES.caCert)) & 0o022, 0, 'certificates are not group/world writable');
    t.same((await fs.readdir(certsDir)).sort(), Object.values(PKI_FILES).sort());
    t.equal(await fs.readFile(path.join(certsDir, PKI_FILES.signerKey), 'utf8'), pki.signerKeyPem);
  });

  t.test('a second ensureDevPki returns the same files unchanged', async (t) => {
    const before = await Promise.all(Object.values(PKI_FILES).map((f) => fs.stat(path.join(certsDir, f))));
    const again: Pki = await ensureDevPki(certsDir);
    t.same(again, pki);
    const after = await Promise.all(Object.values(PKI_FILES).map((f) => fs.stat(path.join(certsDir, f))));
    t.same(after.map((s) => s.mtimeMs), before.map((s) => s.mtimeMs));
  });

  t.test('openssl sees a signer certificate with EKU emailProtection and a serial not starting with 00', async (t) => {
    const r = openssl(['x509', '-in', PKI_FILES.signerCert, '-noout', '-serial', '-ext', 'extendedKeyUsage,keyUsage,basicConstraints', '-subject', '-nameopt', 'RFC2253'], certsDir);
    t.equal(r.status, 0, r.output);
    t.match(r.output, /X509v3 Extended Key Usage:\s*\n\s*E-mail Protection\s*\n/);
    t.match(r.output, /Digital Signature, Non Repudiation/);
    t.match(r.output, /subject=CN=bxchange receipt signer \(development\),O=bxchange,C=BE/);
    const serial = /serial=([0-9A-F]+)/.exec(r.output)?.[1] ?? '';
    t.match(serial, /^[0-9A-F]{32}$/);
    t.notMatch(serial, /^00/);
    t.ok(Number.parseInt(serial.slice(0, 2), 16) < 0x80, 'positive');
    const ca = openssl(['x509', '-in', PKI_FILES.caCert, '-noout', '-ext', 'basicConstraints,keyUsage', '-enddate'], certsDir);
    t.match(ca.output, /CA:TRUE/);
    t.match(ca.output, /Certificate Sign, CRL Sign/);
    const chain = openssl(['verify', '-CAfile', PKI_FILES.caCert, '-purpose', 'smimesign', PKI_FILES.signerCert], certsDir);
    t.equal(chain.status, 0, chain.output);
  });

  t.test('a receipt over canonical evidence verifies with openssl and with verifyReceipt', async (t) => {
    const r = await opensslVerify(work, chainPem(pki), content, signature);
    t.equal(r.status, 0, r.output);
    t.match(r.output, /Verification successful/);
    const v = verifyReceipt({ content, signature, caCertPem: chainPem(pki) });
    t.same(v, { valid: true, signerSubject: 'C=BE, O=bxchange, CN=bxchange receipt signer (development)', signingTime: signingClock });
    const printed = openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'sig.p7s'], work);
    t.match(printed.output, /eContent: <ABSENT>/, 'detached');
    t.match(printed.output, /signingTime/);
    t.match(printed.output, /messageDigest/);
    t.match(printed.output, /algorithm: sha256 /);
  });

  t.test('chainPem serves the CA only, and openssl needs nothing more', async (t) => {
    t.equal(chainPem(pki), pki.caCertPem);
    t.equal(chainPem({ caCertPem: `junk\n${pki.caCertPem}trailing` }), pki.caCertPem);
  });

  t.test('a one-byte change to the content fails both', async (t) => {
    const tampered = Buffer.from(content);
    const at = tampered.indexOf('ixelles');
    tampered[at] = tampered[at]! ^ 0x01;
    const r = await opensslVerify(work, pki.caCertPem, tampered, signature);
    t.not(r.status, 0);
    t.match(r.output, /Verification failure/);
    t.match(verifyReceipt({ content: tampered, signature, caCertPem: pki.caCertPem }), { valid: false, reason: /message digest/ });
  });

  t.test('a one-byte change to the RSA signature fails both', async (t) => {
    const tampered = Buffer.from(signature);
    const at = tampered.length - 20; // inside the signature value, which closes the DER
    tampered[at] = tampered[at]! ^ 0x01;
    const r = await opensslVerify(work, pki.caCertPem, content, tampered);
    t.not(r.status, 0);
    t.match(verifyReceipt({ content, signature: tampered, caCertPem: pki.caCertPem }), { valid: false, reason: 'signature does not verify' });
  });

  t.test('a receipt signed under another CA fails both', async (t) => {
    const other = await ensureDevPki(await tempDir(t, 'other-ca'));
    const foreign = createReceiptSigner(other).sign(content);
    const r = await opensslVerify(work, pki.caCertPem, content, foreign);
    t.not(r.status, 0);
    t.match(r.output, /unable to get local issuer certificate/);
    t.match(verifyReceipt({ content, signature: foreign, caCertPem: pki.caCertPem }), { valid: false, reason: /unable to get local issuer certificate/ });
    t.match(verifyReceipt({ content, signature: foreign, caCertPem: other.caCertPem }), { valid: true }, 'it is fine under its own CA');
  });

  t.test('a receipt by an expired signer fails both now, and passes both at its signing time', async (t) => {
    const fourYearsAgo = new Date(Date.now() - 4 * YEAR);
    const old = await ensureDevPki(await tempDir(t, 'old'), { now: () => fourYearsAgo });
    const receipt = createReceiptSigner({ ...old, now: () => fourYearsAgo }).sign(content);
    const r = await opensslVerify(work, old.caCertPem, content, receipt);
    t.not(r.status, 0);
    t.match(r.output, /certificate has expired/);
    t.match(verifyReceipt({ content, signature: receipt, caCertPem: old.caCertPem }), { valid: false, reason: /certificate has expired/ });

    const attime = String(Math.floor(fourYearsAgo.getTime() / 1000));
    const then = openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'sig.p7s', '-content', 'evidence.json', '-CAfile', 'ca.pem', '-attime', attime, '-out', '/dev/null'], work);
    t.equal(then.status, 0, then.output);
    t.match(verifyReceipt({ content, signature: receipt, caCertPem: old.caCertPem, at: fourYearsAgo }), { valid: true });
  });

  t.test('a codeSigning-only signer is refused by both (unsuitable certificate purpose)', async (t) => {
    const caCert = forge.pki.certificateFromPem(pki.caCertPem);
    const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, workers: -1 });
    const cert = forge.pki.createCertificate();
    cert.serialNumber = randomSerialNumber();
    cert.publicKey = keys.publicKey;
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + YEAR);
    cert.setSubject([{ shortName: 'CN', value: 'code signer' }]);
    cert.setIssuer(reusableName(caCert.subject.attributes));
    cert.setExtensions([{ name: 'extKeyUsage', codeSigning: true }]);
    cert.sign(forgeSigningKey(createPrivateKey(pki.caKeyPem!)) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
    const receipt = createReceiptSigner({ signerCertPem: forge.pki.certificateToPem(cert), signerKeyPem: forge.pki.privateKeyToPem(keys.privateKey) }).sign(content);
    const r = await opensslVerify(work, pki.caCertPem, content, receipt);
    t.not(r.status, 0);
    t.match(r.output, /unsuitable certificate purpose/);
    t.match(verifyReceipt({ content, signature: receipt, caCertPem: pki.caCertPem }), { valid: false, reason: /unsuitable certificate purpose/ });
  });

  t.test('like openssl, verifyReceipt ignores bytes after the DER and refuses garbage', async (t) => {
    const trailing = Buffer.concat([signature, Buffer.from([0])]);
    t.equal((await opensslVerify(work, pki.caCertPem, content, trailing)).status, 0);
    t.match(verifyReceipt({ content, signature: trailing, caCertPem: pki.caCertPem }), { valid: true });
    const garbage = randomBytes(300);
    t.not((await opensslVerify(work, pki.caCertPem, content, garbage)).status, 0);
    t.match(verifyReceipt({ content, signature: garbage, caCertPem: pki.caCertPem }), { valid: false, reason: /malformed/ });
    t.throws(() => verifyReceipt({ content, signature, caCertPem: 'not a certificate' }), /caCertPem holds no PEM certificate/);
  });

  t.test('the client certificate has EKU clientAuth and verifies against the CA for sslclient', async (t) => {
    const client = await issueClientCertificate({ caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem!, commonName: 'bo-ixelles', days: 30 });
    await fs.writeFile(path.join(work, 'client.pem'), client.certPem);
    await fs.writeFile(path.join(work, 'ca.pem'), pki.caCertPem);
    const ok = openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'client.pem'], work);
    t.equal(ok.status, 0, ok.output);
    t.match(ok.output, /client\.pem: OK/);
    const shown = openssl(['x509', '-in', 'client.pem', '-noout', '-ext', 'extendedKeyUsage', '-subject', '-serial', '-nameopt', 'RFC2253'], work);
    t.match(shown.output, /TLS Web Client Authentication/);
    t.match(shown.output, /subject=CN=bo-ixelles,O=bxchange,C=BE/);
    t.match(shown.output, new RegExp(`serial=${client.serialNumber}`));
    t.ok(client.notAfter.getTime() - Date.now() <= 30 * 24 * 3600_000);
    t.ok(createPrivateKey(client.keyPem), 'the key is readable');

    const wrongPurpose = openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', path.join(certsDir, PKI_FILES.signerCert)], work);
    t.not(wrongPurpose.status, 0, 'the receipt signer is not a TLS client certificate');
  });

  t.test('a platform with a non-ASCII name: certificates issued by a reloaded CA still chain', async (t) => {
    // forge re-encodes UTF8String names it parsed as if they were not yet UTF-8.
    const dir = await tempDir(t, 'utf8');
    await ensureDevPki(dir, { platformName: 'Région de Bruxelles-Capitale' });
    await fs.rm(path.join(dir, PKI_FILES.signerCert));
    await fs.rm(path.join(dir, PKI_FILES.signerKey));
    const region = await ensureDevPki(dir, { platformName: 'Région de Bruxelles-Capitale' }); // signer issued by the CA read back from disk
    const receipt = createReceiptSigner(region).sign(content);
    const r = await opensslVerify(work, region.caCertPem, content, receipt);
    t.equal(r.status, 0, r.output);
    t.match(verifyReceipt({ content, signature: receipt, caCertPem: region.caCertPem }), { valid: true, signerSubject: /CN=Région de Bruxelles-Capitale receipt signer/ });

    const client = await issueClientCertificate({ caCertPem: region.caCertPem, caKeyPem: region.caKeyPem!, commonName: 'agent-é', days: 1 });
    await fs.writeFile(path.join(work, 'client.pem'), client.certPem);
    const ok = openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'client.pem'], work);
    t.equal(ok.status, 0, ok.output);
  });
});
