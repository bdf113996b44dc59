/** PostgreSQL implementation of the domain's KeyRepository (drizzle; same code on postgres.js and PGlite). */
import { and, desc, eq, isNotNull, sql } from 'drizzle-orm';
import type { KeyRepository, KeyState, MailboxKey } from '../domain/keys.ts';
import type { AuditInput } from '../domain/ports.ts';
import { appendAudit } from './audit.ts';
import type { Db } from './client.ts';
import { auditedTransaction, type Tx } from './audited.ts';
import { mailboxKeys, mailboxes } from './schema.ts';

type Row = typeof mailboxKeys.$inferSelect;

function toKey(row: Row): MailboxKey {
  return {
    id: row.id,
    mailbox: row.mailboxAddress,
    fingerprint: row.fingerprint,
    keyId: row.keyId,
    encryptionKeyIds: row.encryptionKeyIds,
    publicKey: row.publicKey,
    state: row.state as KeyState,
    keyCreatedAt: row.keyCreatedAt,
    expiresAt: row.expiresAt,
    publishedAt: row.createdAt,
    retiredAt: row.retiredAt,
    privateKeyAt: row.privateKeyAt,
  };
}

/** Active first, then retired keys newest first. */
const listOrder = [sql`CASE WHEN ${mailboxKeys.state} = 'active' THEN 0 ELSE 1 END`, desc(mailboxKeys.createdAt), desc(mailboxKeys.id)];

export function createKeyRepository(db: Db): KeyRepository {
  const audited = <T>(audit: AuditInput, work: (tx: Tx) => Promise<T>): Promise<T> => auditedTransaction(db, audit, work);

  return {
    async publish(key, at, audit) {
      return audited(audit, async (tx) => {
        // The mailbox row lock serialises rotations of one mailbox (two nodes at once).
        await tx.select({ address: mailboxes.address }).from(mailboxes).where(eq(mailboxes.address, key.mailbox)).for('update');
        const retired = await tx
          .update(mailboxKeys)
          .set({ state: 'retired', retiredAt: at })
          .where(and(eq(mailboxKeys.mailboxAddress, key.mailbox), eq(mailboxKeys.state, 'active')))
          .returning({ fingerprint: mailboxKeys.fingerprint });
        const [row] = await tx
          .insert(mailboxKeys)
          .values({
            id: key.id,
            mailboxAddress: key.mailbox,
            fingerprint: key.fingerprint,
            keyId: key.keyId,
            encryptionKeyIds: key.encryptionKeyIds,
            publicKey: key.publicKey,
            privateKey: key.privateKey,
            privateKeyAt: key.privateKey === null ? null : at,
            state: 'active',
            keyCreatedAt: key.keyCreatedAt,
            expiresAt: key.expiresAt,
            createdAt: at,
          })
          .returning();
        return { key: toKey(row!), retired: retired[0]?.fingerprint ?? null };
      });
    },

    async refresh(id, refresh, at, audit) {
      return audited(audit, async (tx) => {
        const set: Partial<typeof mailboxKeys.$inferInsert> = {
          encryptionKeyIds: refresh.encryptionKeyIds,
          publicKey: refresh.publicKey,
          expiresAt: refresh.expiresAt,
        };
        if (refresh.privateKey !== undefined) {
          set.privateKey = refresh.privateKey;
          set.privateKeyAt = at;
        }
        const [row] = await tx
          .update(mailboxKeys)
          .set(set)
          .where(and(eq(mailboxKeys.id, id), eq(mailboxKeys.state, 'active')))
          .returning();
        return row === undefined ? null : toKey(row);
      });
    },

    async active(mailbox) {
      const [row] = await db
        .select()
        .from(mailboxKeys)
        .where(and(eq(mailboxKeys.mailboxAddress, mailbox), eq(mailboxKeys.state, 'active')));
      return row === undefined ? null : toKey(row);
    },

    async list(mailbox) {
      const rows = await db
        .select()
        .from(mailboxKeys)
        .where(eq(mailboxKeys.mailboxAddress, mailbox))
        .orderBy(...listOrder);
      return rows.map(toKey);
    },

    async findByFingerprint(fingerprint) {
      const [row] = await db.select().from(mailboxKeys).where(eq(mailboxKeys.fingerprint, fingerprint));
      return row === undefined ? null : toKey(row);
    },

    async depositPrivateKey(id, privateKey, at, audit) {
      return audited(audit, async (tx) => {
        const [row] = await tx.update(mailboxKeys).set({ privateKey, privateKeyAt: at }).where(eq(mailboxKeys.id, id)).returning();
        return row === undefined ? null : toKey(row);
      });
    },

    async privateKeys(mailbox) {
      const rows = await db
        .select()
        .from(mailboxKeys)
        .where(and(eq(mailboxKeys.mailboxAddress, mailbox), isNotNull(mailboxKeys.privateKey)))
        .orderBy(...listOrder);
      return rows.map((row) => ({ ...toKey(row), privateKey: row.privateKey! }));
    },

    async recordAudit(audit) {
      await db.transaction((tx) => appendAudit(tx, audit));
    },
  };
}
