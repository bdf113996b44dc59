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
import { desc, sql } from 'drizzle-orm';
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
  const event = {
    at: at.toISOString(),
    actor: input.actor,
    action: input.action,
    subject: input.subject,
    data: input.data ?? {},
  };
  const hash = createHash('sha256')
    .update(prevHash ?? '')
    .update(canonicalJson(event))
    .digest('hex');
  await tx.insert(auditEvents).values({ ...event, at, prevHash, hash });
}
