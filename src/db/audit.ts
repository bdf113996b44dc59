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
import { asc, desc, gt, sql } from 'drizzle-orm';
import type { AuditInput } from '../domain/ports.ts';
import { canonicalJson } from '../domain/canonical-json.ts';
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
}

/**
 * Recomputes the chain from the first row, in batches: each row must name
 * its predecessor's hash and hash to its own content. An UPDATE shows at the
 * row itself, a DELETE at the row after the gap.
 */
export async function verifyAuditChain(db: Db, batch = 1000): Promise<ChainVerdict> {
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
      prev = row.hash;
      lastSeq = row.seq;
      rows++;
    }
    if (page.length < batch) return { valid: true, rows, head: prev };
  }
}
