/**
 * Certificate path validation for receipt signers, written to give the
 * verdict `openssl cms -verify -CAfile …` gives (OpenSSL 3.0, default
 * purpose `smimesign`), so that `bxchange verify-receipt` and an auditor with
 * OpenSSL alone agree:
 *
 * - the path is built from the signer upwards, trusted certificates first,
 *   then the certificates embedded in the signature, and must end at a
 *   self-issued certificate of the trust store (no partial chains);
 * - every certificate must be valid at the verification time (the current
 *   time by default, as OpenSSL: not the signing time), including the root;
 * - the signature of each certificate is checked with its issuer's key (the
 *   root's self-signature is not, as OpenSSL by default);
 * - issuers must be CAs (basicConstraints cA, or no basicConstraints but a
 *   keyUsage, or a v1 root), with keyCertSign when keyUsage is present, and
 *   respect pathLenConstraint;
 * - S/MIME signing purpose on every certificate of the path: an
 *   extendedKeyUsage, when present, must list emailProtection (this is why a
 *   codeSigning-only signer fails with "unsuitable certificate purpose"); the
 *   signer's keyUsage, when present, must allow digitalSignature or
 *   nonRepudiation;
 * - a critical extension OpenSSL does not handle fails the path.
 *
 * Not implemented (none of them occurs in the platform PKI): name and policy
 * constraints, revocation (OpenSSL does not check CRLs without `-crl_check`
 * either), trust settings of "TRUSTED CERTIFICATE" PEM blocks.
 *
 * Failure reasons reuse OpenSSL's wording.
 */
import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { children, isContext, parseDer } from './forge-util.ts';

const { asn1 } = forge;

export const OID_EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';

const OID_KEY_USAGE = '2.5.29.15';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_EXT_KEY_USAGE = '2.5.29.37';

/** Extensions OpenSSL 3.0 understands (X509_supported_extension); any other critical one fails the path. */
const HANDLED_CRITICAL = new Set([
  '2.16.840.1.113730.1.1', // nsCertType
  OID_KEY_USAGE,
  '2.5.29.17', // subjectAltName
  OID_BASIC_CONSTRAINTS,
  '2.5.29.32', // certificatePolicies
  OID_EXT_KEY_USAGE,
  '2.5.29.36', // policyConstraints
  '1.3.6.1.5.5.7.1.14', // proxyCertInfo
  '2.5.29.30', // nameConstraints
  '2.5.29.33', // policyMappings
  '2.5.29.54', // inhibitAnyPolicy
  '1.3.6.1.5.5.7.1.7', // sbgp-ipAddrBlock
  '1.3.6.1.5.5.7.1.8', // sbgp-autonomousSysNum
]);

const MAX_DEPTH = 10;

/** forge's parsed extension (pki.certificateExtensionFromAsn1). */
interface ParsedExtension {
  id: string;
  critical: boolean;
  digitalSignature?: boolean;
  nonRepudiation?: boolean;
  keyCertSign?: boolean;
  cA?: boolean;
  pathLenConstraint?: number;
  subjectKeyIdentifier?: string;
  [eku: string]: unknown;
}

/** What path validation needs to know about one certificate. */
export interface CertificateProfile {
  cert: X509Certificate;
  version: number;
  keyUsage: ParsedExtension | undefined;
  basicConstraints: ParsedExtension | undefined;
  /** OIDs of the extendedKeyUsage extension, undefined when absent. */
  extKeyUsage: string[] | undefined;
  /** Hex, when the extension is present. */
  subjectKeyIdentifier: string | undefined;
  criticalUnhandled: string[];
}

const extensionFromAsn1 = (forge.pki as unknown as { certificateExtensionFromAsn1(ext: forge.asn1.Asn1): ParsedExtension })
  .certificateExtensionFromAsn1;

/**
 * Reads version and extensions with forge's ASN.1 parser from the raw DER:
 * node:crypto's X509Certificate does not expose keyUsage bits, basic
 * constraints details or criticality, and forge's own certificate parser
 * refuses non-RSA public keys.
 */
export function profile(cert: X509Certificate): CertificateProfile {
  const tbs = children(children(parseDer(cert.raw), 'certificate')[0], 'tbsCertificate');
  let version = 1;
  const extensions: ParsedExtension[] = [];
  for (const node of tbs) {
    if (isContext(node, 0)) version = asn1.derToInteger(children(node, 'version')[0]!.value as string) + 1;
    if (isContext(node, 3)) {
      for (const ext of children(children(node, 'extensions')[0], 'extensions')) extensions.push(extensionFromAsn1(ext));
    }
  }
  const byId = (id: string) => extensions.find((e) => e.id === id);
  const eku = byId(OID_EXT_KEY_USAGE);
  let extKeyUsage: string[] | undefined;
  if (eku) {
    // forge flags known purposes by name (`emailProtection: true`) and unknown ones by OID.
    const names = forge.pki.oids as unknown as Record<string, string | undefined>;
    extKeyUsage = Object.keys(eku)
      .filter((k) => eku[k] === true && k !== 'critical')
      .map((k) => (/^[0-9.]+$/.test(k) ? k : (names[k] ?? k)));
  }
  return {
    cert,
    version,
    keyUsage: byId(OID_KEY_USAGE),
    basicConstraints: byId(OID_BASIC_CONSTRAINTS),
    extKeyUsage,
    subjectKeyIdentifier: byId('2.5.29.14')?.subjectKeyIdentifier,
    criticalUnhandled: extensions.filter((e) => e.critical && !HANDLED_CRITICAL.has(e.id)).map((e) => e.id),
  };
}

/** OpenSSL's check_ca(): may this certificate issue others? */
function actsAsCa(p: CertificateProfile): boolean {
  if (p.keyUsage && !p.keyUsage.keyCertSign) return false;
  if (p.basicConstraints) return p.basicConstraints.cA === true;
  if (p.version === 1 && selfIssued(p.cert)) return true;
  return p.keyUsage !== undefined;
}

function selfIssued(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.checkIssued(cert);
}

export type ChainResult = { ok: true; chain: X509Certificate[] } | { ok: false; reason: string };

export interface ChainOptions {
  leaf: X509Certificate;
  /** Certificates that may serve as intermediates (e.g. those embedded in the CMS). */
  untrusted: X509Certificate[];
  /** Trust anchors (the `-CAfile`). */
  trusted: X509Certificate[];
  /** Validity time; OpenSSL's default is now. */
  at: Date;
  /** Purpose checked on every certificate of the path; `smimeSign` is OpenSSL's default for `cms -verify`. */
  purpose: 'smimeSign';
}

/** Validates the path from `leaf` to a trust anchor; see the module comment for the rules. */
export function verifyCertificatePath(options: ChainOptions): ChainResult {
  const { leaf, untrusted, trusted, at } = options;
  const isTrusted = (c: X509Certificate) => trusted.some((t) => t.raw.equals(c.raw));
  const fail = (reason: string): ChainResult => ({ ok: false, reason });

  // Build, preferring trusted issuers (OpenSSL's X509_V_FLAG_TRUSTED_FIRST default).
  const chain = [leaf];
  for (let current = leaf; ; ) {
    if (selfIssued(current)) {
      if (isTrusted(current)) break;
      return fail(chain.length === 1 ? 'self-signed certificate' : 'self-signed certificate in certificate chain');
    }
    if (chain.length > MAX_DEPTH) return fail('certificate chain too long');
    const candidates = [...trusted, ...untrusted].filter((c) => !chain.some((x) => x.raw.equals(c.raw)) && current.checkIssued(c));
    if (candidates.length === 0) return fail('unable to get local issuer certificate');
    const issuer = candidates.find((c) => current.verify(c.publicKey));
    if (!issuer) return fail('certificate signature failure');
    chain.push(issuer);
    current = issuer;
  }

  const profiles = chain.map(profile);
  let pathLength = 0;
  for (const [i, p] of profiles.entries()) {
    if (p.criticalUnhandled.length > 0) return fail('unhandled critical extension');
    if (i > 0) {
      if (!actsAsCa(p)) return fail('invalid CA certificate');
      const limit = p.basicConstraints?.pathLenConstraint;
      if (i > 1 && limit !== undefined && pathLength > limit) return fail('path length constraint exceeded');
      if (!selfIssued(p.cert)) pathLength++;
    }
    if (p.extKeyUsage && !p.extKeyUsage.includes(OID_EMAIL_PROTECTION)) return fail('unsuitable certificate purpose');
    if (i === 0 && p.keyUsage && !p.keyUsage.digitalSignature && !p.keyUsage.nonRepudiation) {
      return fail('unsuitable certificate purpose');
    }
    if (at < p.cert.validFromDate) return fail('certificate is not yet valid');
    if (at > p.cert.validToDate) return fail('certificate has expired');
  }
  return { ok: true, chain };
}
