/**
 * Receipt verification in the browser (loaded on demand): the detached CMS
 * SignedData (signature.p7s, DER) is verified over the exact signed bytes
 * (evidence.json), and the signer's certificate must chain to the
 * certificates the platform publishes at /api/v1/pki/ca.pem — the same check
 * as `openssl cms -verify -binary -inform DER -content evidence.json
 * -in signature.p7s -CAfile ca.pem`.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

function pemCertificates(pem: string): pkijs.Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => {
    const base64 = block.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
    const der = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return pkijs.Certificate.fromBER(der);
  });
}

export interface Verification {
  ok: boolean;
  reason?: string;
  signer?: string;
}

export async function verifyReceipt(evidence: ArrayBuffer, signature: ArrayBuffer, caPem: string): Promise<Verification> {
  const trustedCerts = pemCertificates(caPem);
  if (trustedCerts.length === 0) return { ok: false, reason: 'no certificate in ca.pem' };
  const asn1 = asn1js.fromBER(signature);
  if (asn1.offset === -1) return { ok: false, reason: 'signature.p7s is not DER' };
  const contentInfo = new pkijs.ContentInfo({ schema: asn1.result });
  if (contentInfo.contentType !== pkijs.ContentInfo.SIGNED_DATA) return { ok: false, reason: 'not a CMS SignedData' };
  const signedData = new pkijs.SignedData({ schema: contentInfo.content });
  try {
    const result = await signedData.verify({ signer: 0, data: evidence, trustedCerts, checkChain: true, extendedMode: true });
    const signer = result.signerCertificate?.subject.typesAndValues.map((tv) => tv.value.valueBlock.value).join(', ');
    if (!result.signatureVerified) return { ok: false, reason: result.message || 'signature not verified' };
    return { ok: true, ...(signer ? { signer } : {}) };
  } catch (err) {
    const e = err as { message?: string; date?: unknown };
    return { ok: false, reason: typeof e.message === 'string' && e.message !== '' ? e.message : String(err) };
  }
}
