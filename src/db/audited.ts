/**
 * The repositories' common write: a change and its audit entry in one
 * transaction, with a unique violation turned into the domain's
 * DuplicateKeyError (naming the constraint) instead of a driver error.
 */
import { DuplicateKeyError, type AuditInput } from '../domain/ports.ts';
import { appendAudit } from './audit.ts';
import type { Db } from './client.ts';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Unique violations arrive as SQLSTATE 23505, possibly wrapped by drizzle (DrizzleQueryError.cause). */
export function uniqueViolation(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const candidate = e as { code?: unknown; constraint_name?: unknown; constraint?: unknown; cause?: unknown };
    if (candidate.code === '23505') {
      const name = candidate.constraint_name ?? candidate.constraint;
      return typeof name === 'string' ? name : 'unknown';
    }
    e = candidate.cause;
  }
  return null;
}

/** Runs `work` and appends `audit` in one transaction; a unique violation becomes DuplicateKeyError. */
export async function auditedTransaction<T>(db: Db, audit: AuditInput, work: (tx: Tx) => Promise<T>): Promise<T> {
  try {
    return await db.transaction(async (tx) => {
      const result = await work(tx);
      await appendAudit(tx, audit);
      return result;
    });
  } catch (err) {
    const constraint = uniqueViolation(err);
    if (constraint !== null) throw new DuplicateKeyError(constraint);
    throw err;
  }
}
