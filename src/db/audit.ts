/**
 * Appends to the hash-chained audit log inside the caller's transaction.
 *
 * Design: `hash = SHA-256(prevHash ‖ canonical(event))`, where canonical is
 * RFC 8785 JSON of {seq-independent fields}. Appends are serialised by a
 * transaction-scoped advisory lock, so two nodes can never both chain onto
 * the same predecessor; the lock is released at commit, and a rolled-back
 * change leaves no audit row behind.
 */
import { createHash } from 'node:crypto';
import { and, asc, desc, eq, gt, sql } from 'drizzle-orm';
import type { AuditInput } from '../domain/ports.ts';
import { canonicalJson } from '../domain/canonical-json.ts';
import { evidenceBytes, verifyReceipt, type ReceiptSigner } from '../crypto/cms.ts';
import type { Db } from './client.ts';
import { auditEvents } from './schema.ts';

const AUDIT_LOCK_KEY = 0x62786175; // "bxau"

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export async function appendAudit(tx: Tx, input: AuditInput, at: Date = new Date()): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
  const [last] = await tx.select({ hash: auditEvents.hash }).from(auditEvents).orderBy(desc(auditEvents.seq)).limit(1);
  const prevHash = last?.hash ?? null;
  const event = auditEvent({
    at,
    actor: input.actor,
    action: input.action,
    subject: input.subject,
    data: input.data ?? {},
    door: input.door ?? null,
    traceId: input.traceId ?? null,
  });
  const hash = chainHash(prevHash, event);
  await tx.insert(auditEvents).values({
    at,
    actor: input.actor,
    action: input.action,
    subject: input.subject,
    data: event.data,
    door: event.door,
    traceId: event.traceId,
    prevHash,
    hash,
  });
}

/**
 * The hashed form of an audit row: every column but seq, prevHash and hash.
 * `verify` recomputes it from the stored row, so any edit of a column shows.
 */
export function auditEvent(row: {
  at: Date;
  actor: string | null;
  action: string;
  subject: string | null;
  data: unknown;
  door: string | null;
  traceId: string | null;
}) {
  // JSON round trip: the value as jsonb will give it back (Dates as ISO strings).
  const data = JSON.parse(JSON.stringify(row.data ?? {})) as Record<string, unknown>;
  return { at: row.at.toISOString(), actor: row.actor, action: row.action, subject: row.subject, data, door: row.door, traceId: row.traceId };
}

export function chainHash(prevHash: string | null, event: ReturnType<typeof auditEvent>): string {
  return createHash('sha256')
    .update(prevHash ?? '')
    .update(canonicalJson(event))
    .digest('hex');
}

export interface ChainVerdict {
  valid: boolean;
  rows: number;
  head: string | null;
  firstBroken?: { seq: number; reason: string };
  /** The signed checkpoints checked against the chain: the latest one in it, and any given one. */
  checkpoints?: CheckpointVerdict[];
}

export interface CheckpointVerdict {
  /** `chain`: the latest `audit.checkpoint` entry; `given`: one kept outside the database and passed in. */
  source: 'chain' | 'given';
  /** The checkpoint entry's own sequence number. */
  seq: number;
  /** What it signed: the entry it vouches for, that entry's hash, and when. */
  head: { seq: number; hash: string | null; time: string };
  valid: boolean;
  /** False when no trust anchor was given: only the chain position was checked. */
  signatureChecked: boolean;
  signer?: string;
  reason?: string;
}

export interface VerifyAuditOptions {
  /** Rows read per query. */
  batch?: number;
  /** Trust anchor(s) for the checkpoint signatures (ca.pem); without it signatures are not checked. */
  caCertPem?: string;
  /**
   * A checkpoint kept outside the database (saved from
   * GET /api/v1/audit/checkpoints/latest): the chain must still hold the
   * entry it signed, with the same hash. This is what detects a suffix
   * dropped together with the checkpoints written after it.
   */
  checkpoint?: AuditCheckpoint;
}

/**
 * Recomputes the chain from the first row, in batches: each row must name
 * its predecessor's hash and hash to its own content. An UPDATE shows at the
 * row itself, a DELETE at the row after the gap.
 *
 * Checkpoints: the latest `audit.checkpoint` entry (and `options.checkpoint`
 * if given) must carry a valid signature of the platform's signer (checked
 * when `options.caCertPem` is given, at the checkpoint's time), and the
 * entry it signed must still be in the chain with the signed hash. The hash
 * chain alone proves nothing against someone who can write to the database:
 * they can rewrite any entries and recompute every hash after them. A signed
 * checkpoint pins the whole prefix up to its entry: rewriting or removing an
 * entry at or before it is detected even when the hashes are recomputed,
 * since the signature cannot be remade without the signer's key.
 *
 * Limits: entries appended after the latest checkpoint are protected by the
 * hash chain only, so dropping a suffix after the last checkpoint cannot be
 * detected; and dropping a suffix that includes checkpoints makes an older
 * checkpoint the latest, which is also undetectable from the database alone.
 * Both are detected only against a checkpoint kept elsewhere
 * (`options.checkpoint`, e.g. fetched periodically by an auditor).
 */
export async function verifyAuditChain(db: Db, options: number | VerifyAuditOptions = {}): Promise<ChainVerdict> {
  const { batch = 1000, caCertPem, checkpoint: given } = typeof options === 'number' ? { batch: options } : options;
  const checks: CheckpointCheck[] = [];
  const latest = await latestCheckpoint(db);
  if (latest !== null) checks.push(startCheck('chain', latest, caCertPem));
  if (given !== undefined) checks.push(startCheck('given', given, caCertPem));

  const walked = await walkChain(db, batch, (row) => {
    for (const check of checks) {
      if (check.head?.seq === row.seq) check.found = row.hash; // head may be null in a malformed checkpoint
    }
  });
  const verdict: ChainVerdict = walked;
  if (checks.length === 0) return verdict;
  verdict.checkpoints = checks.map((check) => finishCheck(check, walked));
  const failed = verdict.checkpoints.find((c) => !c.valid);
  if (verdict.valid && failed !== undefined) {
    verdict.valid = false;
    verdict.firstBroken = { seq: failed.head.seq === 0 ? failed.seq : failed.head.seq, reason: `checkpoint #${failed.seq}: ${failed.reason}` };
  }
  return verdict;
}

async function walkChain(db: Db, batch: number, visit: (row: { seq: number; hash: string }) => void): Promise<ChainVerdict> {
  let prev: string | null = null;
  let lastSeq = 0;
  let rows = 0;
  for (;;) {
    const page = await db.select().from(auditEvents).where(gt(auditEvents.seq, lastSeq)).orderBy(asc(auditEvents.seq)).limit(batch);
    for (const row of page) {
      if (row.prevHash !== prev) {
        return { valid: false, rows, head: prev, firstBroken: { seq: row.seq, reason: 'does not follow the previous entry (an entry before it was removed or altered)' } };
      }
      const expected = chainHash(prev, auditEvent(row));
      if (row.hash !== expected) {
        return { valid: false, rows, head: prev, firstBroken: { seq: row.seq, reason: 'its content does not match its hash (the entry was altered)' } };
      }
      visit(row);
      prev = row.hash;
      lastSeq = row.seq;
      rows++;
    }
    if (page.length < batch) return { valid: true, rows, head: prev };
  }
}

// ---------------------------------------------------------------- checkpoints

export const CHECKPOINT_ACTION = 'audit.checkpoint';
/** The `type` of a signed audit head, so that its signature cannot pass for a receipt's and back. */
export const CHECKPOINT_TYPE = 'bxchange.auditCheckpoint';

/** What a checkpoint signs: the chain's last entry when it was made. */
export interface CheckpointHead {
  type: typeof CHECKPOINT_TYPE;
  issuer: string;
  /** The last entry's sequence number (0: the chain was empty). */
  seq: number;
  /** Its hash (null: the chain was empty). */
  hash: string | null;
  /** When the checkpoint was made, RFC 3339. */
  time: string;
}

/** A signed checkpoint, as stored in the `data` of its `audit.checkpoint` entry and served by the API. */
export interface AuditCheckpoint {
  /** The sequence number of the `audit.checkpoint` entry itself. */
  seq: number;
  at: Date;
  head: CheckpointHead;
  /** Detached CMS SignedData over `checkpointContent(head)`, DER, base64. */
  signature: string;
}

/** The exact bytes a checkpoint signs: RFC 8785 canonical JSON of its head, UTF-8 (as for receipts). */
export function checkpointContent(head: CheckpointHead): Buffer {
  return evidenceBytes(head);
}

export interface CheckpointOptions {
  /** The platform named in the head (the receipts' issuer). */
  issuer: string;
  at?: Date;
  /** Who asked: an administrator's id, or `system` for the scheduled checkpoint. */
  actor?: string;
  door?: string;
  traceId?: string;
  /**
   * Do not sign again when the last entry is already a checkpoint (nothing
   * happened since): the scheduled run, so that an idle platform, or several
   * nodes running the schedule, do not fill the chain with checkpoints.
   */
  onlyIfChanged?: boolean;
}

type AuditRow = typeof auditEvents.$inferSelect;

function checkpointOf(row: AuditRow): AuditCheckpoint | null {
  const data = row.data as { head?: CheckpointHead; signature?: unknown };
  if (data?.head === undefined || typeof data.signature !== 'string') return null;
  return { seq: row.seq, at: row.at, head: data.head, signature: data.signature };
}

/**
 * Signs the current chain head (its last entry's seq and hash, and the
 * time) with the receipt signer, as a detached CMS SignedData like a
 * receipt, and appends it as an `audit.checkpoint` entry whose data holds
 * the head and the signature. Head and entry are read and written under the
 * audit lock in one transaction, so the entry signed is exactly the one
 * before the checkpoint. `created` is false when `onlyIfChanged` found the
 * last entry to be a checkpoint already (returned instead).
 */
export async function checkpoint(
  db: Db,
  signer: Pick<ReceiptSigner, 'sign'>,
  options: CheckpointOptions,
): Promise<{ checkpoint: AuditCheckpoint; created: boolean }> {
  const at = options.at ?? new Date();
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const [last] = await tx.select().from(auditEvents).orderBy(desc(auditEvents.seq)).limit(1);
    if (options.onlyIfChanged && last !== undefined && last.action === CHECKPOINT_ACTION) {
      const existing = checkpointOf(last);
      if (existing !== null) return { checkpoint: existing, created: false };
    }
    const head: CheckpointHead = { type: CHECKPOINT_TYPE, issuer: options.issuer, seq: last?.seq ?? 0, hash: last?.hash ?? null, time: at.toISOString() };
    const signature = signer.sign(checkpointContent(head)).toString('base64');
    const input: AuditInput = { actor: options.actor ?? 'system', action: CHECKPOINT_ACTION, subject: String(head.seq), data: { head, signature }, door: options.door ?? 'system' };
    if (options.traceId !== undefined) input.traceId = options.traceId;
    await appendAudit(tx, input, at); // takes the same (re-entrant) lock
    const [row] = await tx.select().from(auditEvents).orderBy(desc(auditEvents.seq)).limit(1);
    return { checkpoint: checkpointOf(row!)!, created: true };
  });
}

/** The latest `audit.checkpoint` entry, or null. */
export async function latestCheckpoint(db: Db): Promise<AuditCheckpoint | null> {
  const [row] = await db.select().from(auditEvents).where(eq(auditEvents.action, CHECKPOINT_ACTION)).orderBy(desc(auditEvents.seq)).limit(1);
  return row === undefined ? null : checkpointOf(row);
}

/** The `audit.checkpoint` entry `seq`, or null. */
export async function findCheckpoint(db: Db, seq: number): Promise<AuditCheckpoint | null> {
  const [row] = await db.select().from(auditEvents).where(and(eq(auditEvents.seq, seq), eq(auditEvents.action, CHECKPOINT_ACTION)));
  return row === undefined ? null : checkpointOf(row);
}

interface CheckpointCheck {
  source: CheckpointVerdict['source'];
  seq: number;
  head: CheckpointHead;
  signature: { checked: boolean; valid: boolean; signer?: string; reason?: string };
  /** The hash of entry head.seq as found in the chain (undefined: not reached). */
  found?: string;
}

function startCheck(source: CheckpointVerdict['source'], cp: AuditCheckpoint, caCertPem: string | undefined): CheckpointCheck {
  const head = cp.head;
  const check: CheckpointCheck = { source, seq: cp.seq, head, signature: { checked: false, valid: true } };
  const wellFormed =
    head !== null &&
    typeof head === 'object' &&
    head.type === CHECKPOINT_TYPE &&
    Number.isSafeInteger(head.seq) &&
    head.seq >= 0 &&
    (head.hash === null || typeof head.hash === 'string') &&
    typeof head.time === 'string' &&
    !Number.isNaN(new Date(head.time).getTime());
  if (!wellFormed) {
    check.signature = { checked: false, valid: false, reason: 'the checkpoint is malformed' };
    return check;
  }
  if (caCertPem !== undefined) {
    const result = verifyReceipt({
      content: checkpointContent(head),
      signature: Buffer.from(cp.signature, 'base64'),
      caCertPem,
      // The signer must have been valid when it signed; it may have expired since.
      at: new Date(head.time),
    });
    check.signature = { checked: true, valid: result.valid };
    if (result.signerSubject !== undefined) check.signature.signer = result.signerSubject;
    if (!result.valid) check.signature.reason = `its signature does not verify (${result.reason ?? 'invalid'})`;
  }
  return check;
}

function finishCheck(check: CheckpointCheck, walked: ChainVerdict): CheckpointVerdict {
  const verdict: CheckpointVerdict = {
    source: check.source,
    seq: check.seq,
    head: { seq: check.head?.seq, hash: check.head?.hash, time: check.head?.time },
    valid: true,
    signatureChecked: check.signature.checked,
  };
  if (check.signature.signer !== undefined) verdict.signer = check.signature.signer;
  const fail = (reason: string) => ({ ...verdict, valid: false, reason });
  if (!check.signature.valid) return fail(check.signature.reason ?? 'invalid');
  if (check.head.seq === 0) return verdict; // signed an empty chain: every later entry follows it
  if (check.found === undefined) {
    if (!walked.valid && walked.firstBroken !== undefined && walked.firstBroken.seq <= check.head.seq) {
      return fail(`entry #${check.head.seq} was not reached: the chain breaks before it`);
    }
    return fail(`the chain no longer contains entry #${check.head.seq}, which the checkpoint signed (entries were removed)`);
  }
  if (check.found !== check.head.hash) {
    return fail(`entry #${check.head.seq} no longer has the hash the checkpoint signed (the chain up to it was rewritten)`);
  }
  return verdict;
}
