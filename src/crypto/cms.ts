/**
 * Signed receipts: detached CMS SignedData (RFC 5652) over the canonical JSON
 * of an evidence (DESIGN §4b), verifiable by anyone with OpenSSL alone:
 *
 *   openssl cms -verify -binary -inform DER -in receipt.p7s \
 *     -content evidence.json -CAfile ca.pem -out /dev/null
 *
 * Signing: node-forge builds the CMS structure (signed attributes
 * contentType, messageDigest, signingTime; SHA-256; the signer certificate
 * and any intermediates embedded) and node:crypto makes the RSA signature
 * (see `forgeSigningKey`): ≈70× faster than forge's own RSA.
 *
 * Verifying: forge cannot verify PKCS#7 signatures, so `verifyReceipt` does
 * it by hand, the way OpenSSL does: the messageDigest attribute must equal
 * the digest of the content, the signature must verify over the DER of the
 * signed attributes re-tagged as a SET OF (RFC 5652 §5.4), and the signer
 * certificate must chain to the given CA with the S/MIME signing purpose
 * (`verifyCertificatePath`).
 */
import { constants, createHash, createPrivateKey, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { canonicalJson } from '../domain/canonical-json.ts';
import {
  binaryFromBuffer,
  bufferFromBinary,
  bytesOf,
  children,
  forgeSigningKey,
  isContext,
  isUniversal,
  oidOf,
  parseDer,
  pemBlocks,
  reusableName,
  toDer,
} from './forge-util.ts';
import { profile, verifyCertificatePath } from './x509-chain.ts';

const { asn1 } = forge;
const { oids } = forge.pki;

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_SIGNING_TIME = '1.2.840.113549.1.9.5';

/** Digest algorithms OpenSSL's default provider verifies, by OID. */
const DIGESTS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** RSASSA-PKCS1-v1_5 signature algorithm identifiers: rsaEncryption and the sha*WithRSAEncryption family. */
const RSA_PKCS1_SIGNATURES = new Set(['1.2.840.113549.1.1.1', '1.2.840.113549.1.1.5', '1.2.840.113549.1.1.14', '1.2.840.113549.1.1.11', '1.2.840.113549.1.1.12', '1.2.840.113549.1.1.13']);
/** ECDSA: id-ecPublicKey and ecdsa-with-SHA*. */
const ECDSA_SIGNATURES = new Set(['1.2.840.10045.2.1', '1.2.840.10045.4.1', '1.2.840.10045.4.3.1', '1.2.840.10045.4.3.2', '1.2.840.10045.4.3.3', '1.2.840.10045.4.3.4']);

/** Signs evidence bytes into receipts. */
export interface ReceiptSigner {
  /** A detached CMS SignedData (DER) over `content`. */
  sign(content: Buffer): Buffer;
  /** The signer certificate (PEM), e.g. to show who signs receipts. */
  readonly certificatePem: string;
}

export interface ReceiptSignerOptions {
  /** Signer certificate, optionally followed by intermediate CA certificates (all embedded in each receipt). */
  signerCertPem: string;
  /** The signer's RSA private key, PEM, unencrypted. */
  signerKeyPem: string;
  /** Clock for the signingTime attribute. */
  now?: () => Date;
}

/**
 * Builds a signer once (keys parsed, certificates prepared) for many
 * receipts. Throws if the key is not RSA or does not match the certificate.
 */
export function createReceiptSigner(options: ReceiptSignerOptions): ReceiptSigner {
  const now = options.now ?? (() => new Date());
  const blocks = pemBlocks(options.signerCertPem);
  if (blocks.length === 0) throw new TypeError('signerCertPem holds no PEM certificate');
  const certificates = blocks.map((b) => new X509Certificate(b));
  const signer = certificates[0]!;
  let key: KeyObject;
  try {
    key = createPrivateKey(options.signerKeyPem);
  } catch (err) {
    throw new TypeError('signerKeyPem is not a readable unencrypted private key', { cause: err });
  }
  if (!signer.checkPrivateKey(key)) throw new TypeError('signerKeyPem does not match the signer certificate');
  const signingKey = forgeSigningKey(key);
  const forgeSigner = forge.pki.certificateFromPem(blocks[0]!);
  // forge's addSigner({ certificate }) would re-encode a parsed issuer name, double-encoding UTF8String values.
  const issuer = reusableName(forgeSigner.issuer.attributes);
  const serialNumber = forgeSigner.serialNumber;
  // Embedded as their original DER: forge's addCertificate re-encodes (and cannot parse non-RSA certificates).
  const certificateNodes = certificates.map((c) => parseDer(c.raw));

  return {
    certificatePem: blocks[0]!,
    sign(content: Buffer): Buffer {
      const p7 = forge.pkcs7.createSignedData();
      p7.content = forge.util.createBuffer(binaryFromBuffer(content));
      const addSigner = p7.addSigner as unknown as (signerInfo: object) => void;
      addSigner({
        key: signingKey,
        issuer,
        serialNumber,
        digestAlgorithm: oids.sha256,
        authenticatedAttributes: [
          { type: oids.contentType, value: oids.data },
          { type: oids.messageDigest }, // forge fills in SHA-256(content)
          { type: oids.signingTime, value: now() },
        ],
      });
      p7.sign({ detached: true });
      const contentInfo = p7.toAsn1();
      // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, [0] certificates, signerInfos }
      const signedData = children(children(children(contentInfo, 'ContentInfo')[1], 'content')[0], 'SignedData');
      signedData.splice(3, 0, asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, certificateNodes));
      return toDer(contentInfo);
    },
  };
}

/** Canonical JSON (RFC 8785, `canonicalJson`) of an evidence, UTF-8: the bytes a receipt signs. */
export function evidenceBytes(evidence: object): Buffer {
  return Buffer.from(canonicalJson(evidence), 'utf8');
}

export interface VerifyReceiptOptions {
  /** The signed bytes (the evidence JSON exactly as served). */
  content: Buffer;
  /** The receipt: detached CMS SignedData, DER. */
  signature: Buffer;
  /** Trust anchor(s), PEM (what GET /api/v1/pki/ca.pem serves). */
  caCertPem: string;
  /**
   * Time at which certificates must be valid. OpenSSL uses the current time
   * (so does the default); to check an old receipt after its signer expired,
   * pass its signing time (OpenSSL: `-attime <epoch seconds>`).
   */
  at?: Date;
}

export interface ReceiptVerification {
  valid: boolean;
  /** Why the receipt is not valid (OpenSSL's wording where it has one). */
  reason?: string;
  /** The signer's subject, e.g. `C=BE, O=bxchange, CN=bxchange receipt signer (development)`. */
  signerSubject?: string;
  /** The signed signingTime attribute. */
  signingTime?: Date;
}

class Invalid extends Error {}

/**
 * Verifies a receipt without OpenSSL's binary, with the verdict of
 * `openssl cms -verify -binary -inform DER -in <signature> -content <content> -CAfile <ca>`.
 * Every signer info must verify (OpenSSL's rule); the details returned are
 * the first signer's. Throws only when `caCertPem` holds no certificate.
 */
export function verifyReceipt(options: VerifyReceiptOptions): ReceiptVerification {
  const trusted = pemBlocks(options.caCertPem).map((b) => new X509Certificate(b));
  if (trusted.length === 0) throw new TypeError('caCertPem holds no PEM certificate');
  const at = options.at ?? new Date();
  try {
    const signedData = parseSignedData(options.signature);
    if (signedData.signerInfos.length === 0) throw new Invalid('no signers');
    let first: ReceiptVerification | undefined;
    for (const signerInfo of signedData.signerInfos) {
      const result = verifySignerInfo(signerInfo, signedData, options.content, trusted, at);
      first ??= result;
    }
    return first!;
  } catch (err) {
    if (err instanceof Invalid) return { valid: false, reason: err.message };
    // forge's ASN.1 parser and our structure walk throw plain errors on malformed input.
    return { valid: false, reason: `malformed CMS structure: ${(err as Error).message}` };
  }
}

interface SignerInfo {
  sid: { issuerDer: Buffer; serial: string } | { subjectKeyIdentifier: string };
  digestAlgorithm: string;
  signedAttrs: forge.asn1.Asn1 | undefined;
  signatureAlgorithm: string;
  signature: Buffer;
}

interface SignedData {
  /** Parsed for well-formedness; like OpenSSL 3.0 we do not compare it with the contentType attribute. */
  eContentType: string;
  certificates: X509Certificate[];
  signerInfos: SignerInfo[];
}

function parseSignedData(der: Buffer): SignedData {
  // OpenSSL reads one DER object from the file and ignores what follows it.
  const contentInfo = children(parseDer(der, { allowTrailingBytes: true }), 'ContentInfo');
  if (oidOf(contentInfo[0], 'contentType') !== OID_SIGNED_DATA) throw new Invalid('not a CMS SignedData');
  if (!isContext(contentInfo[1], 0)) throw new Error('ContentInfo: missing content');
  const fields = children(children(contentInfo[1], 'content')[0], 'SignedData');
  let i = 2; // version, digestAlgorithms
  const encap = children(fields[i++], 'encapContentInfo');
  const eContentType = oidOf(encap[0], 'eContentType');
  const certificates: X509Certificate[] = [];
  if (isContext(fields[i], 0)) {
    for (const choice of children(fields[i], 'certificates')) {
      // Only plain X.509 certificates (not the [1]..[3] attribute or other certificate choices).
      if (isUniversal(choice, asn1.Type.SEQUENCE)) certificates.push(new X509Certificate(toDer(choice)));
    }
    i++;
  }
  if (isContext(fields[i], 1)) i++; // crls: not used (OpenSSL ignores them unless asked to check CRLs)
  const signerInfos = children(fields[i], 'signerInfos').map(parseSignerInfo);
  return { eContentType, certificates, signerInfos };
}

function parseSignerInfo(node: forge.asn1.Asn1): SignerInfo {
  const f = children(node, 'SignerInfo');
  let i = 1; // version
  const sidNode = f[i++];
  let sid: SignerInfo['sid'];
  if (isContext(sidNode, 0)) {
    sid = { subjectKeyIdentifier: forge.util.bytesToHex(bytesOf(sidNode, 'subjectKeyIdentifier')) };
  } else {
    const [issuer, serial] = children(sidNode, 'issuerAndSerialNumber');
    sid = { issuerDer: toDer(issuer!), serial: forge.util.bytesToHex(bytesOf(serial, 'serialNumber')) };
  }
  const digestAlgorithm = oidOf(children(f[i++], 'digestAlgorithm')[0], 'digestAlgorithm');
  let signedAttrs: forge.asn1.Asn1 | undefined;
  if (isContext(f[i], 0)) signedAttrs = f[i++];
  const signatureAlgorithm = oidOf(children(f[i++], 'signatureAlgorithm')[0], 'signatureAlgorithm');
  const signature = bufferFromBinary(bytesOf(f[i], 'signature'));
  return { sid, digestAlgorithm, signedAttrs, signatureAlgorithm, signature };
}

/** Issuer name (DER) and serial (hex) of a certificate, read from its TBSCertificate. */
function issuerAndSerial(cert: X509Certificate): { issuerDer: Buffer; serial: string } {
  const tbs = children(children(parseDer(cert.raw), 'Certificate')[0], 'tbsCertificate');
  const k = isContext(tbs[0], 0) ? 1 : 0; // explicit version
  return { issuerDer: toDer(tbs[k + 2]!), serial: forge.util.bytesToHex(bytesOf(tbs[k], 'serialNumber')) };
}

function findSigner(sid: SignerInfo['sid'], certificates: X509Certificate[]): X509Certificate | undefined {
  return certificates.find((c) => {
    if ('subjectKeyIdentifier' in sid) return profile(c).subjectKeyIdentifier === sid.subjectKeyIdentifier;
    const own = issuerAndSerial(c);
    return own.serial === sid.serial && own.issuerDer.equals(sid.issuerDer);
  });
}

interface Attributes {
  messageDigest: Buffer;
  signingTime: Date | undefined;
}

/**
 * OpenSSL's attribute rules (RFC 5652 §11): contentType and messageDigest
 * exactly once, single-valued; signingTime at most once. Like OpenSSL 3.0, the
 * contentType value is not compared with eContentType (RFC 5652 says it
 * MUST match; our receipts always say id-data).
 */
function readAttributes(signedAttrs: forge.asn1.Asn1): Attributes {
  const values = new Map<string, forge.asn1.Asn1[][]>();
  for (const attr of children(signedAttrs, 'signedAttrs')) {
    const [type, set] = children(attr, 'Attribute');
    const oid = oidOf(type, 'attrType');
    values.set(oid, [...(values.get(oid) ?? []), children(set, 'attrValues')]);
  }
  const single = (oid: string, name: string, required: boolean): forge.asn1.Asn1 | undefined => {
    const found = values.get(oid) ?? [];
    if (found.length === 0 && !required) return undefined;
    if (found.length !== 1 || found[0]!.length !== 1) throw new Invalid(`the ${name} signed attribute must occur exactly once, with one value`);
    return found[0]![0];
  };
  oidOf(single(OID_CONTENT_TYPE, 'contentType', true), 'contentType');
  const digest = single(OID_MESSAGE_DIGEST, 'messageDigest', true);
  if (!isUniversal(digest, asn1.Type.OCTETSTRING)) throw new Invalid('the messageDigest signed attribute is not an OCTET STRING');
  const time = single(OID_SIGNING_TIME, 'signingTime', false);
  let signingTime: Date | undefined;
  if (time) {
    if (isUniversal(time, asn1.Type.UTCTIME)) signingTime = asn1.utcTimeToDate(bytesOf(time, 'signingTime'));
    else if (isUniversal(time, asn1.Type.GENERALIZEDTIME)) signingTime = asn1.generalizedTimeToDate(bytesOf(time, 'signingTime'));
    else throw new Invalid('the signingTime signed attribute is not a time');
  }
  return { messageDigest: bufferFromBinary(bytesOf(digest, 'messageDigest')), signingTime };
}

function verifySignerInfo(
  si: SignerInfo,
  sd: SignedData,
  content: Buffer,
  trusted: X509Certificate[],
  at: Date,
): ReceiptVerification {
  const signer = findSigner(si.sid, sd.certificates);
  if (!signer) throw new Invalid('signer certificate not found');
  const signerSubject = signer.subject.split('\n').join(', ');

  const chain = verifyCertificatePath({ leaf: signer, untrusted: sd.certificates, trusted, at, purpose: 'smimeSign' });
  if (!chain.ok) throw new Invalid(`certificate verify error: ${chain.reason}`);

  const hash = DIGESTS[si.digestAlgorithm];
  if (hash === undefined) throw new Invalid(`unsupported digest algorithm ${si.digestAlgorithm}`);
  const contentDigest = createHash(hash).update(content).digest();

  let signedBytes: Buffer;
  let signingTime: Date | undefined;
  if (si.signedAttrs) {
    const attrs = readAttributes(si.signedAttrs);
    if (!attrs.messageDigest.equals(contentDigest)) throw new Invalid('content does not match the signed message digest');
    signingTime = attrs.signingTime;
    // The signature covers the attributes' DER with the SET OF tag, not the [0] IMPLICIT one (RFC 5652 §5.4).
    signedBytes = toDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, children(si.signedAttrs, 'signedAttrs')));
  } else {
    signedBytes = content;
  }

  const key = signer.publicKey;
  let ok: boolean;
  try {
    if (key.asymmetricKeyType === 'rsa' && RSA_PKCS1_SIGNATURES.has(si.signatureAlgorithm)) {
      ok = cryptoVerify(hash, signedBytes, { key, padding: constants.RSA_PKCS1_PADDING }, si.signature);
    } else if (key.asymmetricKeyType === 'ec' && ECDSA_SIGNATURES.has(si.signatureAlgorithm)) {
      ok = cryptoVerify(hash, signedBytes, key, si.signature);
    } else {
      throw new Invalid(`unsupported signature algorithm ${si.signatureAlgorithm} for a ${key.asymmetricKeyType} key`);
    }
  } catch (err) {
    if (err instanceof Invalid) throw err;
    ok = false;
  }
  if (!ok) throw new Invalid('signature does not verify');
  return signingTime === undefined ? { valid: true, signerSubject } : { valid: true, signerSubject, signingTime };
}
