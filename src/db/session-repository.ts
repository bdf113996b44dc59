/** PostgreSQL implementation of the domain's SessionRepository (web_sessions; same code on postgres.js and PGlite). */
import { and, eq, isNull, lt } from 'drizzle-orm';
import type { SessionMethod, SessionRepository } from '../domain/sessions.ts';
import { appendAudit } from './audit.ts';
import type { Db } from './client.ts';
import { principals, webSessions } from './schema.ts';

export function createSessionRepository(db: Db): SessionRepository {
  return {
    async create(session, audit) {
      await db.transaction(async (tx) => {
        await tx.insert(webSessions).values({
          id: session.id,
          principalId: session.principalId,
          csrfToken: session.csrfToken,
          method: session.method,
          idToken: session.idToken,
          createdAt: session.createdAt,
          lastSeenAt: session.lastSeenAt,
          expiresAt: session.expiresAt,
        });
        await appendAudit(tx, audit, session.createdAt);
      });
    },

    async find(id) {
      const [row] = await db.select().from(webSessions).where(eq(webSessions.id, id));
      if (row === undefined) return null;
      return {
        id: row.id,
        principalId: row.principalId,
        csrfToken: row.csrfToken,
        method: row.method as SessionMethod,
        idToken: row.idToken,
        createdAt: row.createdAt,
        lastSeenAt: row.lastSeenAt,
        expiresAt: row.expiresAt,
        revokedAt: row.revokedAt,
      };
    },

    async touch(id, at) {
      await db
        .update(webSessions)
        .set({ lastSeenAt: at })
        .where(and(eq(webSessions.id, id), lt(webSessions.lastSeenAt, new Date(at.getTime() - 60_000))));
    },

    async revoke(id, at, audit) {
      return db.transaction(async (tx) => {
        const rows = await tx
          .update(webSessions)
          .set({ revokedAt: at })
          .where(and(eq(webSessions.id, id), isNull(webSessions.revokedAt)))
          .returning({ id: webSessions.id });
        if (rows.length === 0) return false;
        await appendAudit(tx, audit, at);
        return true;
      });
    },

    async principalIdBySubject(subject) {
      const [row] = await db.select({ id: principals.id }).from(principals).where(eq(principals.oidcSubject, subject));
      return row?.id ?? null;
    },

    async principalIdByName(name) {
      const [row] = await db.select({ id: principals.id }).from(principals).where(eq(principals.name, name));
      return row?.id ?? null;
    },
  };
}
