/**
 * `bxchange verify-receipt`: checks a receipt offline, with the verdict of
 * `openssl cms -verify -binary -inform DER -in signature.p7s -content
 * evidence.json -CAfile ca.pem` (crypto/cms.ts `verifyReceipt`), and shows
 * what the receipt proves in readable form. Needs no server, token or
 * database: only the two files of the receipt and the platform's ca.pem.
 */
import { readFile } from 'node:fs/promises';
import { verifyReceipt, type ReceiptVerification } from '../crypto/cms.ts';
import { receiptSigningTime } from '../crypto/receipt-info.ts';
import { EXIT, str, usageError, type Command } from './common.ts';

const HELP_FOR = 'verify-receipt';

async function readArg(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw usageError(`cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, HELP_FOR);
  }
}

interface EvidenceFile {
  fileId?: unknown;
  name?: unknown;
  size?: unknown;
  sha256?: unknown;
  plaintextSha256?: unknown;
}

interface Evidence {
  evidenceId?: unknown;
  eventType?: unknown;
  eventTime?: unknown;
  issuer?: unknown;
  sender?: unknown;
  recipient?: unknown;
  recipients?: unknown;
  envelopeId?: unknown;
  envelopeType?: unknown;
  envelopeTypeVersion?: unknown;
  submissionTime?: unknown;
  files?: unknown;
  eventReasons?: unknown;
  previousEvidenceHash?: unknown;
}

const text = (value: unknown, none = '-') => (value === null || value === undefined || value === '' ? none : String(value));

/** The evidence as an auditor reads it; unknown or missing fields shown as "-". */
export function evidenceLines(evidence: Evidence): string[] {
  const row = (label: string, value: string) => `  ${label.padEnd(20)}${value}`;
  const recipients = Array.isArray(evidence.recipients) ? evidence.recipients.map((r) => text(r)).join(', ') : '-';
  const to = evidence.recipient === null || evidence.recipient === undefined ? recipients : text(evidence.recipient);
  const type = [text(evidence.envelopeType, ''), text(evidence.envelopeTypeVersion, '')].filter(Boolean).join(' ');
  const lines = [
    row('event', text(evidence.eventType)),
    row('evidence id', text(evidence.evidenceId)),
    row('envelope', `${text(evidence.envelopeId)}${type ? ` (${type})` : ''}`),
    row('sender → recipient', `${text(evidence.sender)} → ${to}`),
    row('event time', text(evidence.eventTime)),
    row('submission time', text(evidence.submissionTime)),
    row('issuer', text(evidence.issuer)),
  ];
  const files = Array.isArray(evidence.files) ? (evidence.files as EvidenceFile[]) : [];
  lines.push(row('files', files.length === 0 ? 'none' : String(files.length)));
  for (const file of files) {
    lines.push(`    ${text(file?.name)}  (${text(file?.size)} bytes, id ${text(file?.fileId)})`);
    lines.push(`      sha256 (stored, encrypted)  ${text(file?.sha256)}`);
    lines.push(`      sha256 (plaintext, sender)  ${text(file?.plaintextSha256, 'not declared')}`);
  }
  if (Array.isArray(evidence.eventReasons) && evidence.eventReasons.length > 0) {
    lines.push('  reasons');
    for (const reason of evidence.eventReasons as { name?: unknown; detail?: unknown }[]) lines.push(`    ${text(reason?.name)}: ${text(reason?.detail)}`);
  }
  lines.push(row('previous receipt', evidence.previousEvidenceHash ? `sha256 ${text(evidence.previousEvidenceHash)}` : 'none (first receipt of the envelope)'));
  return lines;
}

export const verifyReceiptCommand: Command = {
  args: ['EVIDENCE_JSON', 'SIGNATURE_P7S'],
  summary: 'verify a signed receipt offline against the platform CA, and show what it proves',
  details:
    'EVIDENCE_JSON and SIGNATURE_P7S are the two files of a receipt exactly as the server serves them\n' +
    '(GET /api/v1/receipts/{id}/evidence.json and …/signature.p7s); --ca is the platform CA (GET /api/v1/pki/ca.pem).\n' +
    'Same verdict as: openssl cms -verify -binary -inform DER -in SIGNATURE_P7S -content EVIDENCE_JSON -CAfile CA -out /dev/null\n' +
    'Certificates are checked at the current time, like OpenSSL; --at-signing-time checks them at the receipt\'s signed\n' +
    'signingTime instead (OpenSSL -attime), for a receipt whose signer certificate has expired since.\n' +
    'Needs no server and no token. Exit status: 0 valid, 1 invalid, 2 usage error (e.g. a file cannot be read).',
  options: {
    ca: { type: 'string', arg: 'FILE', required: true, description: 'the trust anchor, PEM (the platform\'s ca.pem)' },
    'at-signing-time': { type: 'boolean', description: 'check the certificates at the receipt\'s signing time instead of now' },
  },
  async run(ctx, values, [evidenceFile, signatureFile]) {
    const content = await readArg(evidenceFile!, 'EVIDENCE_JSON');
    const signature = await readArg(signatureFile!, 'SIGNATURE_P7S');
    const caFile = str(values, 'ca')!;
    const caCertPem = (await readArg(caFile, '--ca')).toString('utf8');
    if (!caCertPem.includes('-----BEGIN CERTIFICATE-----')) throw usageError(`--ca ${caFile} holds no PEM certificate`, HELP_FOR);

    let at: Date | undefined;
    if (values['at-signing-time']) {
      at = receiptSigningTime(signature);
      if (at === undefined) {
        await ctx.out(`receipt INVALID: it carries no readable signingTime to check it at\n`);
        return EXIT.failure;
      }
    }
    const result: ReceiptVerification = verifyReceipt({ content, signature, caCertPem, ...(at === undefined ? {} : { at }) });

    const lines: string[] = [];
    if (result.valid) {
      lines.push(`receipt VALID: signed by ${result.signerSubject ?? '?'}${result.signingTime ? ` at ${result.signingTime.toISOString()}` : ''}`);
      lines.push(`  the evidence is byte for byte what the platform signed; the signer chains to ${caFile}${at ? ` (certificates checked at ${at.toISOString()})` : ''}`);
    } else {
      lines.push(`receipt INVALID: ${result.reason ?? 'verification failure'}`);
    }
    let evidence: Evidence | undefined;
    try {
      const parsed: unknown = JSON.parse(content.toString('utf8'));
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) evidence = parsed as Evidence;
    } catch {
      evidence = undefined;
    }
    lines.push('');
    if (evidence === undefined) lines.push('the evidence file is not a JSON object');
    else lines.push(result.valid ? 'evidence:' : 'evidence (NOT verified: do not rely on it):', ...evidenceLines(evidence));
    await ctx.out(`${lines.join('\n')}\n`);
    return result.valid ? EXIT.ok : EXIT.failure;
  },
};
