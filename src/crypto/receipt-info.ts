/**
 * Reading a receipt (detached CMS SignedData, DER) without verifying it:
 * what `openssl cms -cmsout -print` shows about its signing time. Used to
 * verify an old receipt "at its signing time" (OpenSSL `-attime`), after
 * its signer certificate expired; `verifyReceipt` then checks everything.
 */
import forge from 'node-forge';
import { bytesOf, children, isContext, isUniversal, oidOf, parseDer } from './forge-util.ts';

const { asn1 } = forge;
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_SIGNING_TIME = '1.2.840.113549.1.9.5';

/**
 * The signingTime signed attribute of the first signer, or undefined when
 * the receipt has none or cannot be read. The value is only as trustworthy
 * as the signature over it: use it to choose the time of a verification,
 * never as a verified fact before `verifyReceipt` said valid.
 */
export function receiptSigningTime(signature: Buffer): Date | undefined {
  try {
    const contentInfo = children(parseDer(signature, { allowTrailingBytes: true }), 'ContentInfo');
    if (oidOf(contentInfo[0], 'contentType') !== OID_SIGNED_DATA) return undefined;
    const fields = children(children(contentInfo[1], 'content')[0], 'SignedData');
    const signerInfos = children(fields[fields.length - 1], 'signerInfos');
    const signerInfo = children(signerInfos[0], 'SignerInfo');
    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] signedAttrs OPTIONAL, … } (sid may itself be a [0])
    const signedAttrs = signerInfo[3];
    if (!isContext(signedAttrs, 0)) return undefined;
    for (const attr of children(signedAttrs, 'signedAttrs')) {
      const [type, set] = children(attr, 'Attribute');
      if (oidOf(type, 'attrType') !== OID_SIGNING_TIME) continue;
      const value = children(set, 'attrValues')[0];
      if (isUniversal(value, asn1.Type.UTCTIME)) return asn1.utcTimeToDate(bytesOf(value, 'signingTime'));
      if (isUniversal(value, asn1.Type.GENERALIZEDTIME)) return asn1.generalizedTimeToDate(bytesOf(value, 'signingTime'));
      return undefined;
    }
    return undefined;
  } catch {
    return undefined;
  }
}
