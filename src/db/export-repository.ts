/**
 * Queries of the export feed (domain/exports.ts), same SQL on postgres.js and
 * PGlite. The horizon `pg_snapshot_xmin(pg_current_snapshot())` is read in the
 * same statement as the window it bounds, so both come from one snapshot.
 */
import { and, asc, eq, inArray, isNotNull, sql, type SQL } from 'drizzle-orm';
import type { ExportRepository, FeedKey, FeedRecord, FeedType } from '../domain/exports.ts';
import { appendAudit } from './audit.ts';
import { rowsOf, type Db } from './client.ts';
import { envelopeRecipients, envelopes, files } from './schema.ts';

function ofTypes(types: FeedType[]): SQL {
  if (types.length === 0) return sql`false`;
  return sql`(${envelopes.type}, ${envelopes.typeVersion}) IN (${sql.join(
    types.map((t) => sql`(${t.name}, ${t.version})`),
    sql`, `,
  )})`;
}

/** Row comparison on the (feed_xid, id) index. */
const keyAfter = (key: FeedKey): SQL => sql`(${envelopes.feedXid}, ${envelopes.id}) > (${key.xid}::xid8, ${key.id}::uuid)`;
const keyUpTo = (key: FeedKey): SQL => sql`(${envelopes.feedXid}, ${envelopes.id}) <= (${key.xid}::xid8, ${key.id}::uuid)`;

export function createExportRepository(db: Db): ExportRepository {
  return {
    async window(types, after, limit) {
      // The first limit+1 keys below the horizon, then the last two of them: the (limit)-th is the
      // window's end when a (limit+1)-th exists (more to come), else the last one is.
      const result = await db.execute<{ xid: string; id: string; n: string | number }>(sql`
        WITH w AS (
          SELECT ${envelopes.feedXid} AS feed_xid, ${envelopes.id} AS id
          FROM ${envelopes}
          WHERE ${envelopes.status} = 'submitted'
            AND ${ofTypes(types)}
            AND ${envelopes.feedXid} < pg_snapshot_xmin(pg_current_snapshot())
            ${after === null ? sql`` : sql`AND ${keyAfter(after)}`}
          ORDER BY ${envelopes.feedXid}, ${envelopes.id}
          LIMIT ${limit + 1}
        )
        SELECT feed_xid::text AS xid, id::text AS id, count(*) OVER () AS n
        FROM w ORDER BY feed_xid DESC, id DESC LIMIT 2`);
      const rows = rowsOf<{ xid: string; id: string; n: string | number }>(result);
      if (rows.length === 0) return { end: null, more: false };
      const more = Number(rows[0]!.n) > limit;
      const end = more ? rows[1]! : rows[0]!;
      return { end: { xid: String(end.xid), id: String(end.id) }, more };
    },

    async page(types, after, upTo, limit) {
      const rows = await db
        .select({
          xid: sql<string>`${envelopes.feedXid}::text`,
          id: envelopes.id,
          type: envelopes.type,
          typeVersion: envelopes.typeVersion,
          from: envelopes.fromMailbox,
          status: envelopes.status,
          metadata: envelopes.metadata,
          computed: envelopes.computed,
          inReplyTo: envelopes.inReplyTo,
          createdAt: envelopes.createdAt,
          submittedAt: envelopes.submittedAt,
          deadline: envelopes.deadline,
          retainUntil: envelopes.retainUntil,
          purgedAt: envelopes.purgedAt,
        })
        .from(envelopes)
        .where(and(eq(envelopes.status, 'submitted'), ofTypes(types), after === null ? undefined : keyAfter(after), keyUpTo(upTo)))
        .orderBy(asc(envelopes.feedXid), asc(envelopes.id))
        .limit(limit);
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.id);
      // Recipients and files as of a later statement than the envelope row: if they changed meanwhile, the
      // envelope moved above this window and is served again with that state, so the newer values are harmless.
      const [recipientRows, fileRows] = await Promise.all([
        db
          .select({
            envelopeId: envelopeRecipients.envelopeId,
            address: envelopeRecipients.mailboxAddress,
            status: envelopeRecipients.status,
            deliveredAt: envelopeRecipients.deliveredAt,
            retrievedAt: envelopeRecipients.retrievedAt,
            acknowledgedAt: envelopeRecipients.acknowledgedAt,
          })
          .from(envelopeRecipients)
          .where(inArray(envelopeRecipients.envelopeId, ids))
          .orderBy(asc(envelopeRecipients.envelopeId), asc(envelopeRecipients.mailboxAddress)),
        db
          .select({
            envelopeId: files.envelopeId,
            id: files.id,
            name: files.name,
            mediaType: files.mediaType,
            role: files.role,
            size: files.size,
            sha256: files.sha256,
            plaintextSha256: files.plaintextSha256,
          })
          .from(files)
          .where(and(inArray(files.envelopeId, ids), isNotNull(files.completedAt)))
          .orderBy(asc(files.envelopeId), asc(files.id)),
      ]);
      const recipientsOf = new Map<string, FeedRecord['recipients']>();
      for (const { envelopeId, ...recipient } of recipientRows) {
        const list = recipientsOf.get(envelopeId) ?? [];
        list.push(recipient);
        recipientsOf.set(envelopeId, list);
      }
      const filesOf = new Map<string, FeedRecord['files']>();
      for (const { envelopeId, ...file } of fileRows) {
        const list = filesOf.get(envelopeId) ?? [];
        list.push(file);
        filesOf.set(envelopeId, list);
      }
      return rows.map(({ xid, ...row }) => ({
        ...row,
        key: { xid: String(xid), id: row.id },
        recipients: recipientsOf.get(row.id) ?? [],
        files: filesOf.get(row.id) ?? [],
      }));
    },

    async counts() {
      const month = sql<string>`to_char(${envelopes.submittedAt} AT TIME ZONE 'Europe/Brussels', 'YYYY-MM')`;
      const rows = await db
        .select({ type: envelopes.type, month, envelopes: sql<string | number>`count(*)` })
        .from(envelopes)
        .where(and(eq(envelopes.status, 'submitted'), isNotNull(envelopes.submittedAt)))
        .groupBy(envelopes.type, month)
        .orderBy(asc(envelopes.type), asc(month));
      return rows.map((r) => ({ type: r.type, month: r.month, envelopes: Number(r.envelopes) }));
    },

    async recordAudit(audit) {
      await db.transaction((tx) => appendAudit(tx, audit));
    },
  };
}
