/** Queries of the retention purge (domain/purge.ts). */
import { and, asc, eq, gt, inArray, isNotNull, isNull, lt, or } from 'drizzle-orm';
import type { PurgeRepository } from '../domain/purge.ts';
import { appendAudit } from './audit.ts';
import type { Db } from './client.ts';
import { envelopes, files } from './schema.ts';

export function createPurgeRepository(db: Db): PurgeRepository {
  return {
    async due(today, after, limit) {
      const rows = await db
        .select({
          id: envelopes.id,
          type: envelopes.type,
          typeVersion: envelopes.typeVersion,
          retainUntil: envelopes.retainUntil,
          computed: envelopes.computed,
        })
        .from(envelopes)
        .where(
          and(
            eq(envelopes.status, 'submitted'),
            isNull(envelopes.purgedAt),
            isNotNull(envelopes.retainUntil),
            lt(envelopes.retainUntil, today),
            after === null
              ? undefined
              : or(gt(envelopes.retainUntil, after.retainUntil), and(eq(envelopes.retainUntil, after.retainUntil), gt(envelopes.id, after.id))),
          ),
        )
        .orderBy(asc(envelopes.retainUntil), asc(envelopes.id))
        .limit(limit);
      if (rows.length === 0) return [];
      const fileRows = await db
        .select({
          envelopeId: files.envelopeId,
          id: files.id,
          storageKey: files.storageKey,
          size: files.size,
          sha256: files.sha256,
          plaintextSha256: files.plaintextSha256,
        })
        .from(files)
        .where(inArray(files.envelopeId, rows.map((r) => r.id)))
        .orderBy(asc(files.id));
      return rows.map((row) => ({
        ...row,
        retainUntil: row.retainUntil!,
        files: fileRows.filter((f) => f.envelopeId === row.id).map(({ envelopeId: _envelopeId, ...file }) => file),
      }));
    },

    async markPurged(id, today, at, audit) {
      return db.transaction(async (tx) => {
        const rows = await tx
          .update(envelopes)
          .set({ purgedAt: at })
          .where(and(eq(envelopes.id, id), isNull(envelopes.purgedAt), lt(envelopes.retainUntil, today)))
          .returning({ id: envelopes.id });
        if (rows.length === 0) return false;
        await appendAudit(tx, audit, at);
        return true;
      });
    },

    async purgedAt(id) {
      const [row] = await db.select({ purgedAt: envelopes.purgedAt }).from(envelopes).where(eq(envelopes.id, id));
      return row?.purgedAt ?? null;
    },
  };
}
