/**
 * Evidence (DESIGN §4b, named after ETSI EN 319 522): every submission,
 * delivery, first retrieval and acknowledgement yields a signed receipt.
 *
 * Canonicalisation: the evidence object is serialised as RFC 8785 canonical
 * JSON; those exact bytes are what is signed (detached CMS SignedData, see
 * crypto/cms.ts), stored, and served as `evidence.json`, so a verifier never
 * re-serialises anything. Each evidence names the SHA-256 of the previous
 * evidence of the same envelope (`previousEvidenceHash`), so the receipts of
 * an envelope form a chain in which a removed receipt shows.
 */
import { createHash } from 'node:crypto';
import type { ProblemIssue } from '../errors.ts';
import { canonicalJson } from './canonical-json.ts';
import { uuidv7 } from './ids.ts';
import type { EnvelopeRecord } from './ports.ts';

export const EVIDENCE_TYPES = ['SubmissionAcceptance', 'SubmissionRejection', 'ContentConsignment', 'ContentHandover', 'ConsignmentAcceptance'] as const;
export type EvidenceType = (typeof EVIDENCE_TYPES)[number];

/** Signs the canonical bytes; returns a detached CMS SignedData (DER). */
export interface EvidenceSigner {
  sign(content: Buffer): Buffer;
}

export interface EvidenceEvent {
  eventType: EvidenceType;
  /** The mailbox concerned (null for the submission events, which concern every recipient). */
  recipient: string | null;
  reasons?: ProblemIssue[];
}

/** A sealed evidence, ready to be stored next to the state change it proves. */
export interface SealedEvidence {
  id: string;
  envelopeId: string;
  eventType: EvidenceType;
  eventTime: Date;
  recipient: string | null;
  canonical: Buffer;
  signature: Buffer;
  prevHash: string | null;
}

export function evidenceHash(canonical: Buffer): string {
  return createHash('sha256').update(canonical).digest('hex');
}

export interface EvidenceContext {
  issuer: string;
  signer: EvidenceSigner;
}

/**
 * Builds and signs the evidence of `events`, chained after `prevHash` (the
 * hash of the envelope's last evidence, read inside the same transaction).
 */
export function sealEvidence(
  context: EvidenceContext,
  envelope: EnvelopeRecord,
  events: EvidenceEvent[],
  eventTime: Date,
  prevHash: string | null,
): SealedEvidence[] {
  const sealed: SealedEvidence[] = [];
  let previous = prevHash;
  for (const event of events) {
    const id = uuidv7(eventTime.getTime());
    const body = {
      evidenceId: id,
      eventType: event.eventType,
      eventTime: eventTime.toISOString(),
      issuer: context.issuer,
      sender: envelope.from,
      recipient: event.recipient,
      recipients: envelope.recipients.map((r) => r.address),
      envelopeId: envelope.id,
      envelopeType: envelope.type,
      envelopeTypeVersion: envelope.typeVersion,
      submissionTime: (envelope.submittedAt ?? (event.eventType === 'SubmissionAcceptance' ? eventTime : null))?.toISOString() ?? null,
      files: envelope.files.map((f) => ({
        fileId: f.id,
        name: f.name,
        size: f.size,
        sha256: f.sha256,
        plaintextSha256: f.plaintextSha256,
      })),
      ...(event.reasons === undefined ? {} : { eventReasons: event.reasons.map((r) => ({ name: r.name, detail: r.detail })) }),
      previousEvidenceHash: previous,
    };
    const canonical = Buffer.from(canonicalJson(body), 'utf8');
    sealed.push({
      id,
      envelopeId: envelope.id,
      eventType: event.eventType,
      eventTime,
      recipient: event.recipient,
      canonical,
      signature: context.signer.sign(canonical),
      prevHash: previous,
    });
    previous = evidenceHash(canonical);
  }
  return sealed;
}

/** Who may see a receipt: the sender's members always; a recipient's members for its own events and the submission acceptance. */
export function evidenceConcerns(evidence: { eventType: EvidenceType; recipient: string | null }, mailbox: string, isSender: boolean): boolean {
  if (isSender) return true;
  if (evidence.eventType === 'SubmissionRejection') return false;
  if (evidence.eventType === 'SubmissionAcceptance') return true;
  return evidence.recipient === mailbox;
}
