/** Queries for storage hygiene (domain/hygiene.ts). */
import { and, asc, eq, gt, inArray, isNotNull, isNull, lt } from 'drizzle-orm';
import type { HygieneRepository } from '../domain/hygiene.ts';
import type { EnvelopeRepository } from '../domain/ports.ts';
import { appendAudit } from './audit.ts';
import type { Db } from './client.ts';
import { envelopes, files, sftpSendFolders } from './schema.ts';

export function createHygieneRepository(db: Db, envelopeRepository: EnvelopeRepository): HygieneRepository {
  return {
    expiredDrafts: (before, limit) => envelopeRepository.expiredDrafts(before, limit),

    async staleUploads(before, limit) {
      const rows = await db
        .select({ id: files.id })
        .from(files)
        .innerJoin(envelopes, eq(envelopes.id, files.envelopeId))
        .where(and(isNull(files.completedAt), lt(files.createdAt, before), eq(envelopes.status, 'draft')))
        .orderBy(asc(files.createdAt))
        .limit(limit);
      const found = await Promise.all(rows.map((r) => envelopeRepository.findFile(r.id)));
      return found.filter((f) => f !== null);
    },

    async completeFiles(afterKey, limit) {
      // A purged envelope's files keep their rows (digests, evidence) without objects: not an error.
      return db
        .select({ id: files.id, envelopeId: files.envelopeId, storageKey: files.storageKey })
        .from(files)
        .innerJoin(envelopes, eq(envelopes.id, files.envelopeId))
        .where(and(isNotNull(files.completedAt), isNull(envelopes.purgedAt), gt(files.storageKey, afterKey)))
        .orderBy(asc(files.storageKey))
        .limit(limit);
    },

    async knownKeys(keys) {
      if (keys.length === 0) return new Set();
      const rows = await db.select({ key: files.storageKey }).from(files).where(inArray(files.storageKey, keys));
      return new Set(rows.map((r) => r.key));
    },

    deleteDraft: (id) => envelopeRepository.deleteDraft(id, { actor: 'system', action: 'envelope.expire', subject: id }),

    async deleteEmptySendFolders(before) {
      const rows = await db
        .delete(sftpSendFolders)
        .where(and(isNull(sftpSendFolders.envelopeId), lt(sftpSendFolders.createdAt, before)))
        .returning({ name: sftpSendFolders.name });
      return rows.length;
    },

    async deleteFile(id) {
      await db.transaction(async (tx) => {
        const [row] = await tx.delete(files).where(eq(files.id, id)).returning({ envelopeId: files.envelopeId });
        if (row !== undefined) await appendAudit(tx, { actor: 'system', action: 'file.expire', subject: row.envelopeId, data: { fileId: id } });
      });
    },
  };
}
