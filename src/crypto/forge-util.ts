/**
 * Small bridges between node-forge (which builds our X.509 and CMS
 * structures) and node:crypto (which does the RSA arithmetic and parses
 * certificates natively). Internal to `src/crypto/`.
 */
import { constants, privateEncrypt, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

const { asn1 } = forge;

/** forge binary string → Buffer. */
export function bufferFromBinary(bytes: string): Buffer {
  return Buffer.from(bytes, 'binary');
}

/** Buffer → forge binary string. */
export function binaryFromBuffer(bytes: Buffer): string {
  return bytes.toString('binary');
}

/**
 * Parses DER without forge's BIT STRING guessing (`decodeBitStrings`), so that
 * re-encoding a parsed node with `asn1.toDer` gives back the very same bytes.
 */
export function parseDer(der: Buffer, options: { allowTrailingBytes?: boolean } = {}): forge.asn1.Asn1 {
  const fromDer = asn1.fromDer as unknown as (
    bytes: forge.util.ByteBuffer,
    options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean },
  ) => forge.asn1.Asn1;
  return fromDer(forge.util.createBuffer(binaryFromBuffer(der)), {
    strict: true,
    parseAllBytes: options.allowTrailingBytes !== true,
    decodeBitStrings: false,
  });
}

export function toDer(node: forge.asn1.Asn1): Buffer {
  return bufferFromBinary(asn1.toDer(node).getBytes());
}

/** The children of a constructed node; throws on a primitive one. */
export function children(node: forge.asn1.Asn1 | undefined, what: string): forge.asn1.Asn1[] {
  if (!node || !Array.isArray(node.value)) throw new Error(`${what}: expected a constructed ASN.1 value`);
  return node.value;
}

/** The contents of a primitive node; throws on a constructed one. */
export function bytesOf(node: forge.asn1.Asn1 | undefined, what: string): string {
  if (!node || typeof node.value !== 'string') throw new Error(`${what}: expected a primitive ASN.1 value`);
  return node.value;
}

export function isUniversal(node: forge.asn1.Asn1 | undefined, type: forge.asn1.Type): boolean {
  return node !== undefined && node.tagClass === asn1.Class.UNIVERSAL && node.type === type;
}

export function isContext(node: forge.asn1.Asn1 | undefined, tag: number): boolean {
  return node !== undefined && node.tagClass === asn1.Class.CONTEXT_SPECIFIC && node.type === tag;
}

export function oidOf(node: forge.asn1.Asn1 | undefined, what: string): string {
  if (!isUniversal(node, asn1.Type.OID)) throw new Error(`${what}: expected an OBJECT IDENTIFIER`);
  return asn1.derToOid(bytesOf(node, what));
}

/**
 * The signing key forge gets: forge calls `key.sign(md)` (for certificates
 * and for PKCS#7 signer infos) with a finished message digest; we wrap the
 * digest in a DigestInfo (RFC 8017 §9.2) and let OpenSSL do the RSA private
 * operation with PKCS#1 v1.5 type-1 padding, which is exactly
 * RSASSA-PKCS1-v1_5. Pure-forge RSA-2048 manages ≈40 signatures/s; this
 * ≈2,900/s (shared/FACTS.md, "Receipts").
 */
export interface ForgeSigningKey {
  sign(md: forge.md.MessageDigest, scheme?: string): string;
}

export function forgeSigningKey(key: KeyObject): ForgeSigningKey {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
    throw new TypeError(`expected an RSA private key, got a ${key.asymmetricKeyType ?? 'unknown'} ${key.type} key`);
  }
  return {
    sign(md, scheme) {
      if (scheme !== undefined && scheme !== 'RSASSA-PKCS1-V1_5') throw new TypeError(`unsupported signature scheme ${scheme}`);
      const oid = (forge.pki.oids as unknown as Record<string, string | undefined>)[md.algorithm];
      if (oid === undefined) throw new TypeError(`unknown digest algorithm ${md.algorithm}`);
      const digestInfo = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes()),
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
        ]),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, md.digest().getBytes()),
      ]);
      const signature = privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, toDer(digestInfo));
      return binaryFromBuffer(signature);
    },
  };
}

/** Every `-----BEGIN <label>-----` block of a PEM text, in order. */
export function pemBlocks(pem: string, label = 'CERTIFICATE'): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return (pem.match(re) ?? []).map((block) => `${block}\n`);
}

/** @types/node-forge types `valueTagClass` as an ASN.1 class; it holds a universal type. */
export const UTF8 = asn1.Type.UTF8 as unknown as forge.asn1.Class;

/**
 * forge keeps UTF8String values of parsed names as raw UTF-8 bytes but
 * encodes them again when writing a name: without decoding them first, a CA
 * named "Région…" would issue certificates whose issuer is not its subject.
 */
export function reusableName(attributes: forge.pki.CertificateField[]): forge.pki.CertificateField[] {
  return attributes.map((a) => ({
    shortName: a.shortName,
    type: a.type,
    value: a.valueTagClass === UTF8 ? forge.util.decodeUtf8(a.value as string) : a.value,
    valueTagClass: a.valueTagClass,
  }));
}

