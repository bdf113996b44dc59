/**
 * PostgreSQL implementation of the domain's SshKeyRepository: SSH keys are
 * rows of `credentials` with kind `ssh`, the OpenSSH line in `public_key`
 * and `SHA256:…` in `fingerprint` (unique per kind, so a key opens one
 * principal only). Drizzle; same code on postgres.js and PGlite.
 */
import { and, asc, eq, isNull, lt, or } from 'drizzle-orm';
import type { AuditInput } from '../domain/ports.ts';
import type { SshKeyInfo, SshKeyRepository } from '../domain/ssh-keys.ts';
import type { Db } from './client.ts';
import { auditedTransaction, type Tx } from './audited.ts';
import { credentials } from './schema.ts';

type Row = typeof credentials.$inferSelect;

const SSH = 'ssh';

function toSshKey(row: Row): SshKeyInfo {
  const publicKey = row.publicKey ?? '';
  return {
    id: row.id,
    principalId: row.principalId,
    algorithm: publicKey.split(' ')[0] ?? '',
    publicKey,
    fingerprint: row.fingerprint ?? '',
    label: row.label,
    createdAt: row.createdAt,
    revokedAt: row.revokedAt,
    lastUsedAt: row.lastUsedAt,
  };
}

export function createSshKeyRepository(db: Db): SshKeyRepository {
  const audited = <T>(audit: AuditInput, work: (tx: Tx) => Promise<T>): Promise<T> => auditedTransaction(db, audit, work);

  return {
    async create(key, audit) {
      const [row] = await audited(audit, (tx) =>
        tx
          .insert(credentials)
          .values({ id: key.id, principalId: key.principalId, kind: SSH, publicKey: key.publicKey, fingerprint: key.fingerprint, label: key.label })
          .returning(),
      );
      return toSshKey(row!);
    },

    async list(principalId) {
      const rows = await db
        .select()
        .from(credentials)
        .where(and(eq(credentials.principalId, principalId), eq(credentials.kind, SSH)))
        .orderBy(asc(credentials.id));
      return rows.map(toSshKey);
    },

    async revoke(principalId, keyId, at, audit) {
      return audited(audit, async (tx) => {
        const [row] = await tx
          .select({ id: credentials.id, revokedAt: credentials.revokedAt })
          .from(credentials)
          .where(and(eq(credentials.id, keyId), eq(credentials.principalId, principalId), eq(credentials.kind, SSH)));
        if (row === undefined) return false;
        if (row.revokedAt === null) await tx.update(credentials).set({ revokedAt: at }).where(eq(credentials.id, keyId));
        return true;
      });
    },

    async findByFingerprint(fingerprint) {
      const [row] = await db
        .select()
        .from(credentials)
        .where(and(eq(credentials.kind, SSH), eq(credentials.fingerprint, fingerprint)));
      return row === undefined ? null : toSshKey(row);
    },

    async touch(keyId, at) {
      await db
        .update(credentials)
        .set({ lastUsedAt: at })
        .where(and(eq(credentials.id, keyId), or(isNull(credentials.lastUsedAt), lt(credentials.lastUsedAt, new Date(at.getTime() - 60_000)))));
    },
  };
}
