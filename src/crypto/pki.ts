/**
 * The platform PKI kept in the certs folder (`BXCHANGE_CERTS_DIR`, DESIGN §7):
 *
 * | file                 | what                                                  | mode |
 * |----------------------|-------------------------------------------------------|------|
 * | `ca.pem`             | root CA certificate(s): the trust anchor for receipts | 0644 |
 * | `ca.key`             | the CA's private key (optional in production)         | 0600 |
 * | `receipt-signer.pem` | receipt-signing certificate, then any intermediates   | 0644 |
 * | `receipt-signer.key` | its private key (RSA)                                 | 0600 |
 *
 * The embedded default generates a development CA and signer on first start
 * (`ensureDevPki`); production provides the files (`loadPki`). Certificates
 * are built with node-forge; keys are generated and used by node:crypto
 * (native, and forge's pure-JS RSA key generation takes seconds).
 *
 * Two forge traps are avoided here: forge writes `serialNumber` hex as the
 * INTEGER contents verbatim, so a serial starting with a 00 byte is a
 * non-minimal DER INTEGER that OpenSSL rejects ("illegal padding") and one
 * with the high bit set is negative (see `randomSerialNumber`); and forge's
 * `authorityKeyIdentifier: { keyIdentifier: true }` copies the subject's own
 * key identifier, so we pass the issuer's explicitly.
 */
import { createHash, createPrivateKey, generateKeyPair, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { bytesOf, children, forgeSigningKey, parseDer, pemBlocks, reusableName, UTF8 } from './forge-util.ts';
import { OID_EMAIL_PROTECTION, profile, verifyCertificatePath } from './x509-chain.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

export const PKI_FILES = {
  caCert: 'ca.pem',
  caKey: 'ca.key',
  signerCert: 'receipt-signer.pem',
  signerKey: 'receipt-signer.key',
} as const;

/** The PEM texts of the platform PKI. */
export interface Pki {
  /** Root CA certificate(s), the trust anchor served to verifiers. */
  caCertPem: string;
  /** Receipt-signing certificate, optionally followed by intermediate CA certificates. */
  signerCertPem: string;
  /** The signer's RSA private key (PKCS#8 or PKCS#1 PEM, unencrypted). */
  signerKeyPem: string;
  /** The CA's private key, when present (always in development; optional in production). */
  caKeyPem?: string;
}

/** A missing, unreadable or inconsistent PKI file; `file` is its full path. */
export class PkiError extends Error {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = 'PkiError';
    this.file = file;
  }
}

const SERIAL_BYTES = 16;

/**
 * A random certificate serial number as forge wants it (hex): 16 bytes (127
 * bits of entropy, within RFC 5280's 20-octet limit), first byte in
 * 0x01..0x7f so that the DER INTEGER is positive and minimal.
 */
export function randomSerialNumber(random: (size: number) => Buffer = randomBytes): string {
  const bytes = Buffer.from(random(SERIAL_BYTES));
  if (bytes.length !== SERIAL_BYTES) throw new RangeError(`random source returned ${bytes.length} bytes`);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

export interface DevPkiOptions {
  /** Goes into the subjects (O=…, and the CN of the signer). */
  platformName?: string;
  /** Clock for the validity periods. */
  now?: () => Date;
}

type Name = forge.pki.CertificateField[];

/** C as PrintableString (RFC 5280), the others as UTF8String so any platform name is valid. */
function name(parts: { CN: string; O: string; OU?: string }): Name {
  const utf8 = (shortName: string, value: string) => ({ shortName, value, valueTagClass: UTF8 });
  return [
    { shortName: 'C', value: 'BE' },
    utf8('O', parts.O),
    ...(parts.OU === undefined ? [] : [utf8('OU', parts.OU)]),
    utf8('CN', parts.CN),
  ];
}

async function rsaKeyPair(modulusLength: number): Promise<{ privateKey: KeyObject; publicKeyPem: string; privateKeyPem: string }> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength, publicExponent: 0x10001 });
  return {
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

const HOUR = 3600_000;

function addYears(date: Date, years: number): Date {
  const d = new Date(date);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

function minDate(a: Date, b: Date): Date {
  return a < b ? a : b;
}

/**
 * The issuer's key identifier for authorityKeyIdentifier: its
 * subjectKeyIdentifier when it has one (RFC 5280 §4.2.1.1), else the SHA-1 of
 * its subjectPublicKey (method (1) of §4.2.1.2, what forge and OpenSSL compute).
 */
function keyIdentifier(cert: X509Certificate): string {
  const ski = profile(cert).subjectKeyIdentifier;
  if (ski !== undefined) return forge.util.hexToBytes(ski);
  const spki = children(parseDer(cert.publicKey.export({ type: 'spki', format: 'der' })), 'subjectPublicKeyInfo');
  const subjectPublicKey = bytesOf(spki[1], 'subjectPublicKey').slice(1); // skip the unused-bits byte
  return createHash('sha1').update(Buffer.from(subjectPublicKey, 'binary')).digest().toString('binary');
}

interface IssueOptions {
  subject: Name;
  publicKeyPem: string;
  notBefore: Date;
  notAfter: Date;
  extensions: object[];
  /** Absent: self-signed with `signingKey`. */
  issuer?: { cert: X509Certificate; forgeCert: forge.pki.Certificate };
  signingKey: KeyObject;
}

function issue(o: IssueOptions): string {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = randomSerialNumber();
  cert.publicKey = forge.pki.publicKeyFromPem(o.publicKeyPem);
  cert.validity.notBefore = o.notBefore;
  cert.validity.notAfter = o.notAfter;
  cert.setSubject(o.subject);
  cert.setIssuer(o.issuer ? reusableName(o.issuer.forgeCert.subject.attributes) : o.subject);
  const authorityKeyIdentifier = o.issuer
    ? [{ name: 'authorityKeyIdentifier', keyIdentifier: keyIdentifier(o.issuer.cert) }]
    : [];
  cert.setExtensions([...o.extensions, { name: 'subjectKeyIdentifier' }, ...authorityKeyIdentifier]);
  cert.sign(forgeSigningKey(o.signingKey) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

function caExtensions(): object[] {
  return [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ];
}

function signerExtensions(): object[] {
  return [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, nonRepudiation: true, critical: true },
    { name: 'extKeyUsage', emailProtection: true },
  ];
}

interface CaMaterial {
  cert: X509Certificate;
  forgeCert: forge.pki.Certificate;
  key: KeyObject;
}

function caMaterial(caCertPem: string, caKeyPem: string, files: { cert: string; key: string }): CaMaterial {
  const first = pemBlocks(caCertPem)[0];
  if (first === undefined) throw new PkiError(files.cert, 'holds no PEM certificate');
  let cert: X509Certificate;
  let forgeCert: forge.pki.Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(first);
    forgeCert = forge.pki.certificateFromPem(first);
  } catch (err) {
    throw new PkiError(files.cert, 'is not a readable RSA certificate', { cause: err });
  }
  try {
    key = createPrivateKey(caKeyPem);
  } catch (err) {
    throw new PkiError(files.key, 'is not a readable unencrypted private key', { cause: err });
  }
  if (!cert.checkPrivateKey(key)) throw new PkiError(files.key, `does not match the certificate in ${files.cert}`);
  if (!profile(cert).basicConstraints?.cA) throw new PkiError(files.cert, 'is not a CA certificate (basicConstraints cA)');
  return { cert, forgeCert, key };
}

async function newCa(platformName: string, now: Date): Promise<{ certPem: string; keyPem: string }> {
  const keys = await rsaKeyPair(3072);
  const subject = name({ CN: `${platformName} development root CA`, O: platformName, OU: 'development, not for production' });
  const certPem = issue({
    subject,
    publicKeyPem: keys.publicKeyPem,
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: addYears(now, 10),
    extensions: caExtensions(),
    signingKey: keys.privateKey,
  });
  return { certPem, keyPem: keys.privateKeyPem };
}

async function newSigner(ca: CaMaterial, platformName: string, now: Date): Promise<{ certPem: string; keyPem: string }> {
  const keys = await rsaKeyPair(2048);
  const certPem = issue({
    subject: name({ CN: `${platformName} receipt signer (development)`, O: platformName }),
    publicKeyPem: keys.publicKeyPem,
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: minDate(addYears(now, 3), ca.cert.validToDate),
    extensions: signerExtensions(),
    issuer: ca,
    signingKey: ca.key,
  });
  return { certPem, keyPem: keys.privateKeyPem };
}

/**
 * Creates `name` in `dir` only if it does not exist yet, atomically: the data
 * goes to a temporary file (created with `mode`, flushed), which is then
 * hard-linked to its final name. Unlike rename, link never replaces an
 * existing file, so two servers starting on one empty certs folder cannot
 * end up with one's CA and the other's signer. Returns false when the file
 * already exists.
 */
async function createExclusive(dir: string, name: string, data: string, mode: number): Promise<boolean> {
  const target = path.join(dir, name);
  const temp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode); // the umask may have narrowed it; never widened
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.link(temp, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    // Filesystems without hard links: fall back to rename, which is atomic but not exclusive.
    if (['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'].includes((err as NodeJS.ErrnoException).code ?? '')) {
      if (await exists(target)) return false;
      await fs.rename(temp, target);
      return true;
    }
    throw err;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not every platform can fsync a directory; the files themselves are flushed.
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

async function readRequired(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PkiError(file, code === 'ENOENT' ? 'is missing' : `cannot be read (${code ?? 'error'})`, { cause: err });
  }
}

/**
 * Publishes a key and its certificate, key first: a half-published pair
 * (a crash in between) is reported by `ensureDevPki` instead of being
 * silently replaced. Returns false if another process published first.
 */
async function publishPair(dir: string, keyFile: string, keyPem: string, certFile: string, certPem: string): Promise<boolean> {
  if (!(await createExclusive(dir, keyFile, keyPem, 0o600))) return false;
  if (!(await createExclusive(dir, certFile, certPem, 0o644))) {
    throw new PkiError(path.join(dir, certFile), `appeared while ${keyFile} was being created; remove both and restart`);
  }
  await syncDir(dir);
  return true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForFiles(files: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing: string[] = [];
    for (const f of files) if (!(await exists(f))) missing.push(f);
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new PkiError(missing[0]!, 'is missing (another process started generating the PKI and did not finish)');
    await sleep(50);
  }
}

/**
 * The embedded default: on first call, generates into `certsDir` a
 * development root CA (RSA-3072, 10 years, CA:true, keyCertSign/cRLSign) and
 * a receipt-signing certificate it issues (RSA-2048, 3 years, EKU
 * emailProtection, keyUsage digitalSignature/nonRepudiation); later calls
 * load the existing files unchanged. If the CA pair exists but the signer
 * pair does not (an operator deleted an expired signer), a new signer is
 * issued by the existing CA. Any other partial state is an error naming the
 * missing file. The loaded files are checked as `loadPki` checks them.
 */
export async function ensureDevPki(certsDir: string, options: DevPkiOptions = {}): Promise<Pki> {
  const platformName = options.platformName ?? 'bxchange';
  const now = options.now ?? (() => new Date());
  const file = (n: string) => path.join(certsDir, n);
  await fs.mkdir(certsDir, { recursive: true, mode: 0o700 });

  const present = async (names: string[]) => (await Promise.all(names.map((n) => exists(file(n))))).filter(Boolean).length;
  const caPair = [PKI_FILES.caKey, PKI_FILES.caCert];
  const signerPair = [PKI_FILES.signerKey, PKI_FILES.signerCert];
  const all = [...caPair, ...signerPair];

  const incomplete = (pair: string[], count: number) => count !== 0 && count !== pair.length;
  let caCount = 0;
  let signerCount = 0;
  // A half pair may be another process publishing right now: give it a moment before calling it broken.
  for (const deadline = Date.now() + 2000; ; ) {
    caCount = await present(caPair);
    signerCount = await present(signerPair);
    if (caCount + signerCount === all.length) return checkedPki(certsDir, true, now());
    const broken = incomplete(caPair, caCount) || incomplete(signerPair, signerCount) || (caCount === 0 && signerCount > 0);
    if (!broken) break;
    if (Date.now() > deadline) {
      const missing: string[] = [];
      for (const n of all) if (!(await exists(file(n)))) missing.push(n);
      throw new PkiError(
        file(missing[0]!),
        `is missing while other PKI files exist in ${certsDir} (found: ${all.filter((n) => !missing.includes(n)).join(', ')}); restore it, or remove the incomplete pair to have it generated again`,
      );
    }
    await sleep(50);
  }

  let ca: CaMaterial;
  if (caCount === 0) {
    const generated = await newCa(platformName, now());
    if (!(await publishPair(certsDir, PKI_FILES.caKey, generated.keyPem, PKI_FILES.caCert, generated.certPem))) {
      // Another process is generating the same folder: use its result.
      await waitForFiles(all.map(file), 60_000);
      return checkedPki(certsDir, true, now());
    }
    ca = caMaterial(generated.certPem, generated.keyPem, { cert: file(PKI_FILES.caCert), key: file(PKI_FILES.caKey) });
  } else {
    ca = caMaterial(await readRequired(file(PKI_FILES.caCert)), await readRequired(file(PKI_FILES.caKey)), {
      cert: file(PKI_FILES.caCert),
      key: file(PKI_FILES.caKey),
    });
  }
  const signer = await newSigner(ca, platformName, now());
  if (!(await publishPair(certsDir, PKI_FILES.signerKey, signer.keyPem, PKI_FILES.signerCert, signer.certPem))) {
    await waitForFiles(all.map(file), 60_000);
  }
  return checkedPki(certsDir, true, now());
}

/**
 * Loads provided PKI files (production): `ca.pem`, `receipt-signer.pem` and
 * `receipt-signer.key` are required, `ca.key` is optional (without it the
 * platform cannot issue client certificates). Fails with a `PkiError` naming
 * the missing or faulty file; in particular the signer certificate must
 * match its key, be RSA, and chain to `ca.pem` with the S/MIME signing
 * purpose now, so that receipts signed with it verify with OpenSSL.
 */
export async function loadPki(certsDir: string, now: Date = new Date()): Promise<Pki> {
  return checkedPki(certsDir, false, now);
}

async function checkedPki(certsDir: string, requireCaKey: boolean, now: Date): Promise<Pki> {
  const file = (n: string) => path.join(certsDir, n);
  const caCertPem = await readRequired(file(PKI_FILES.caCert));
  const signerCertPem = await readRequired(file(PKI_FILES.signerCert));
  const signerKeyPem = await readRequired(file(PKI_FILES.signerKey));
  const caKeyPem = requireCaKey || (await exists(file(PKI_FILES.caKey))) ? await readRequired(file(PKI_FILES.caKey)) : undefined;

  const trusted = parseCertificates(caCertPem, file(PKI_FILES.caCert));
  const [signer, ...intermediates] = parseCertificates(signerCertPem, file(PKI_FILES.signerCert));
  let signerKey: KeyObject;
  try {
    signerKey = createPrivateKey(signerKeyPem);
  } catch (err) {
    throw new PkiError(file(PKI_FILES.signerKey), 'is not a readable unencrypted private key', { cause: err });
  }
  if (signerKey.asymmetricKeyType !== 'rsa') throw new PkiError(file(PKI_FILES.signerKey), 'must be an RSA key (node-forge signs receipts with RSA only)');
  if (!signer!.checkPrivateKey(signerKey)) {
    throw new PkiError(file(PKI_FILES.signerKey), `does not match the first certificate in ${PKI_FILES.signerCert}`);
  }
  const eku = profile(signer!).extKeyUsage;
  if (eku && !eku.includes(OID_EMAIL_PROTECTION)) {
    throw new PkiError(file(PKI_FILES.signerCert), 'has an extendedKeyUsage without emailProtection: OpenSSL would refuse its receipts');
  }
  const path_ = verifyCertificatePath({ leaf: signer!, untrusted: intermediates, trusted, at: now, purpose: 'smimeSign' });
  if (!path_.ok) {
    throw new PkiError(file(PKI_FILES.signerCert), `does not verify against ${PKI_FILES.caCert}: ${path_.reason}`);
  }
  if (caKeyPem !== undefined) {
    let caKey: KeyObject;
    try {
      caKey = createPrivateKey(caKeyPem);
    } catch (err) {
      throw new PkiError(file(PKI_FILES.caKey), 'is not a readable unencrypted private key', { cause: err });
    }
    if (!trusted[0]!.checkPrivateKey(caKey)) throw new PkiError(file(PKI_FILES.caKey), `does not match the first certificate in ${PKI_FILES.caCert}`);
  }
  return caKeyPem === undefined ? { caCertPem, signerCertPem, signerKeyPem } : { caCertPem, signerCertPem, signerKeyPem, caKeyPem };
}

function parseCertificates(pem: string, file: string): X509Certificate[] {
  const blocks = pemBlocks(pem);
  if (blocks.length === 0) throw new PkiError(file, 'holds no PEM certificate');
  try {
    return blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw new PkiError(file, 'holds an unreadable certificate', { cause: err });
  }
}

export interface ClientCertificateOptions {
  caCertPem: string;
  caKeyPem: string;
  /** The machine principal's name; becomes the subject CN. */
  commonName: string;
  /** Validity in days, capped at the CA's own expiry. */
  days: number;
  now?: () => Date;
}

export interface ClientCertificate {
  certPem: string;
  /** PKCS#8 PEM, unencrypted: hand it over once, never store it. */
  keyPem: string;
  /** Hex, as in the certificate. */
  serialNumber: string;
  /** SHA-256 fingerprint, colon-separated hex (node:crypto's format). */
  fingerprint256: string;
  notAfter: Date;
}

/**
 * Issues a TLS client certificate (EKU clientAuth, RSA-2048) for a machine
 * principal's mutual TLS; CN = the principal's name. Needs the CA key.
 */
export async function issueClientCertificate(options: ClientCertificateOptions): Promise<ClientCertificate> {
  const { commonName, days } = options;
  if (commonName.length === 0 || commonName.length > 64) throw new RangeError('commonName must be 1 to 64 characters (RFC 5280 ub-common-name)');
  if (!Number.isInteger(days) || days < 1) throw new RangeError('days must be a positive integer');
  const ca = caMaterial(options.caCertPem, options.caKeyPem, { cert: 'caCertPem', key: 'caKeyPem' });
  const now = (options.now ?? (() => new Date()))();
  const keys = await rsaKeyPair(2048);
  const certPem = issue({
    subject: [
      ...reusableName(ca.forgeCert.subject.attributes).filter((a) => a.shortName === 'C' || a.shortName === 'O'),
      { shortName: 'CN', value: commonName, valueTagClass: UTF8 },
    ],
    publicKeyPem: keys.publicKeyPem,
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: minDate(new Date(now.getTime() + days * 24 * HOUR), ca.cert.validToDate),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
    issuer: ca,
    signingKey: ca.key,
  });
  const cert = new X509Certificate(certPem);
  return { certPem, keyPem: keys.privateKeyPem, serialNumber: cert.serialNumber, fingerprint256: cert.fingerprint256, notAfter: cert.validToDate };
}

/**
 * The PEM served at GET /api/v1/pki/ca.pem: the trust anchor(s) only, i.e.
 * `ca.pem`. The signer certificate (and any intermediate listed after it in
 * `receipt-signer.pem`) is embedded in every receipt, so
 * `openssl cms -verify -CAfile ca.pem` needs nothing else; serving the signer
 * as well would invite people to use a leaf as a trust anchor.
 */
export function chainPem(pki: Pick<Pki, 'caCertPem'>): string {
  return pemBlocks(pki.caCertPem).join('');
}

export interface ServerCertificateOptions {
  caCertPem: string;
  caKeyPem: string;
  /** Host names for the subjectAltName (dNSName); the first one, or the first address, becomes the CN. */
  dnsNames?: string[];
  /** IP addresses for the subjectAltName (iPAddress), e.g. `127.0.0.1`. */
  ipAddresses?: string[];
  /** Validity in days, capped at the CA's own expiry. */
  days: number;
  now?: () => Date;
}

export interface ServerCertificate {
  certPem: string;
  /** PKCS#8 PEM, unencrypted. */
  keyPem: string;
  notAfter: Date;
}

/**
 * Issues a TLS server certificate (EKU serverAuth, RSA-2048) from the
 * platform CA, for development and tests: HTTPS on 127.0.0.1 with a
 * certificate every client that trusts `ca.pem` accepts. Clients match the
 * host against the subjectAltName only (RFC 6125), so give every name and
 * address the server is reached by. Needs the CA key.
 */
export async function issueServerCertificate(options: ServerCertificateOptions): Promise<ServerCertificate> {
  const dnsNames = options.dnsNames ?? [];
  const ipAddresses = options.ipAddresses ?? [];
  if (dnsNames.length + ipAddresses.length === 0) throw new RangeError('a server certificate needs at least one DNS name or IP address');
  for (const ip of ipAddresses) if (isIP(ip) === 0) throw new RangeError(`not an IP address: ${ip}`);
  const { days } = options;
  if (!Number.isInteger(days) || days < 1) throw new RangeError('days must be a positive integer');
  const ca = caMaterial(options.caCertPem, options.caKeyPem, { cert: 'caCertPem', key: 'caKeyPem' });
  const now = (options.now ?? (() => new Date()))();
  const keys = await rsaKeyPair(2048);
  const commonName = (dnsNames[0] ?? ipAddresses[0]!).slice(0, 64);
  const certPem = issue({
    subject: [
      ...reusableName(ca.forgeCert.subject.attributes).filter((a) => a.shortName === 'C' || a.shortName === 'O'),
      { shortName: 'CN', value: commonName, valueTagClass: UTF8 },
    ],
    publicKeyPem: keys.publicKeyPem,
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: minDate(new Date(now.getTime() + days * 24 * HOUR), ca.cert.validToDate),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))],
      },
    ],
    issuer: ca,
    signingKey: ca.key,
  });
  return { certPem, keyPem: keys.privateKeyPem, notAfter: new X509Certificate(certPem).validToDate };
}

/**
 * The SHA-256 fingerprint of a certificate's DER as a credential stores it:
 * 64 lowercase hex digits, no colons. Accepts the DER (`X509Certificate.raw`,
 * `getPeerCertificate().raw`) or a PEM text (its first certificate).
 */
export function certificateFingerprint(certificate: Buffer | string): string {
  const der = typeof certificate === 'string' ? new X509Certificate(certificate).raw : certificate;
  return createHash('sha256').update(der).digest('hex');
}
