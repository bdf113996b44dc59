/** PostgreSQL implementation of the domain's EnvelopeRepository (same code on postgres.js and PGlite). */
import { and, asc, desc, eq, exists, inArray, isNotNull, like, lt, or, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn, PgPreparedQuery, PreparedQueryConfig } from 'drizzle-orm/pg-core';
import type {
  EnvelopeRecord,
  EnvelopeRepository,
  FileRecord,
  IsoInstant,
  ListedEnvelope,
  ListedRecipient,
  MailboxJsonRow,
  MailboxListItem,
  MailboxListQuery,
  PinnedKey,
  RecipientRecord,
  RecipientStatus,
  Sealer,
  StoredEvidence,
} from '../domain/ports.ts';
import { ConflictError } from '../errors.ts';
import { appendAudit } from './audit.ts';
import { rowsOf, type Db } from './client.ts';
import { envelopeRecipients, envelopes, evidence, files } from './schema.ts';
import { evidenceHash, type EvidenceType } from '../domain/evidence.ts';

type FileRow = typeof files.$inferSelect;
type EnvelopeRow = typeof envelopes.$inferSelect;
type RecipientRow = typeof envelopeRecipients.$inferSelect;

function toFile(row: FileRow): FileRecord {
  return {
    id: row.id,
    envelopeId: row.envelopeId,
    name: row.name,
    mediaType: row.mediaType,
    role: row.role,
    declaredSize: row.declaredSize,
    size: row.size,
    sha256: row.sha256,
    plaintextSha256: row.plaintextSha256,
    storageKey: row.storageKey,
    recipientKeyIds: row.recipientKeyIds,
    createdAt: row.createdAt,
    completedAt: row.completedAt,
  };
}

function toEvidence(row: typeof evidence.$inferSelect): StoredEvidence {
  return {
    id: row.id,
    envelopeId: row.envelopeId,
    eventType: row.eventType as EvidenceType,
    eventTime: row.eventTime,
    recipient: row.recipient,
    canonical: row.canonical,
    signature: row.signature,
    prevHash: row.prevHash,
  };
}

function toRecipient(row: RecipientRow): RecipientRecord {
  return {
    address: row.mailboxAddress,
    status: row.status as RecipientStatus,
    deliveredAt: row.deliveredAt,
    retrievedAt: row.retrievedAt,
    acknowledgedAt: row.acknowledgedAt,
  };
}

function toEnvelope(row: EnvelopeRow, recipients: RecipientRow[], fileRows: FileRow[]): EnvelopeRecord {
  return {
    id: row.id,
    type: row.type,
    typeVersion: row.typeVersion,
    from: row.fromMailbox,
    status: row.status as EnvelopeRecord['status'],
    metadata: row.metadata,
    inReplyTo: row.inReplyTo,
    createdBy: row.createdBy,
    createdAt: row.createdAt,
    submittedAt: row.submittedAt,
    deadline: row.deadline,
    retainUntil: row.retainUntil,
    computed: (row.computed ?? {}) as Record<string, unknown>,
    clock: row.clock,
    purgedAt: row.purgedAt,
    recipients: recipients.map(toRecipient),
    encryptionKeys: (row.encryptionKeys ?? []) as PinnedKey[],
    files: fileRows.map(toFile),
  };
}

/**
 * An instant as the contract's text (`2026-03-02T09:00:00.000Z`, what
 * Date.toISOString gives), made by PostgreSQL whatever the session's time
 * zone: `AT TIME ZONE 'UTC'` gives the UTC wall time, `MS` its milliseconds
 * (truncated, as a JavaScript Date truncates microseconds). NULL stays NULL.
 */
const isoText = (instant: SQL | AnyPgColumn) => sql`to_char(${instant} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * An envelope's recipients as one JSON array, in address order like `load`,
 * with the keys of ListedRecipient and instants as `isoText` writes them:
 * envelopes.recipients_json, kept by the triggers of migration 0013
 * (bx_envelope_recipients_json) whenever a recipient row changes, so that a
 * listed page reads one column instead of aggregating each envelope's
 * recipient rows (issue #4). `[]` for an envelope without recipients yet.
 */
const listedRecipients = sql`coalesce(${envelopes.recipientsJson}, '[]'::json)`;

/**
 * What a listing row holds, named as ListedEnvelope names it (each column
 * aliased: the rows are read as the driver returns them, not mapped by
 * drizzle) plus the listing's sort time.
 */
const listedFields = (sortTime: AnyPgColumn) => ({
  id: sql`${envelopes.id}`.as('id'),
  type: sql`${envelopes.type}`.as('type'),
  from: sql`${envelopes.fromMailbox}`.as('from'),
  status: sql`${envelopes.status}`.as('status'),
  metadata: sql`${envelopes.metadata}`.as('metadata'),
  computed: sql`${envelopes.computed}`.as('computed'),
  createdAt: isoText(envelopes.createdAt).as('createdAt'),
  submittedAt: isoText(envelopes.submittedAt).as('submittedAt'),
  deadline: sql`${envelopes.deadline}`.as('deadline'),
  recipients: listedRecipients.as('recipients'),
  sortTime: isoText(sortTime).as('sortTime'),
});

type ListedRow = Omit<ListedEnvelope, 'recipients'> & { recipients: ListedRecipient[] | string; sortTime: IsoInstant };

/**
 * A list item written by PostgreSQL as the HTTP contract's JSON text
 * (EnvelopeSummaryView: its keys in the schema's order, instants as
 * `isoText` makes them, the deadline as JSON writes a date, YYYY-MM-DD,
 * whatever the DateStyle), so that the API's hot path neither parses the
 * JSON columns nor serialises 50 objects again: on a 50-item page that was
 * about a third of bxchange's CPU per request, with the garbage it left
 * (issue #4). `status` is the listed mailbox's recipient status in an inbox,
 * the envelope's in an outbox. `overdue` is the domain's rule (isOverdue in
 * domain/envelopes.ts) on bound values: a submitted envelope whose deadline
 * is before `today` (Brussels date) and whose `computed.decisions` array holds
 * no decision whose kind is in `final` (a JSON array of kinds); a test holds
 * both to the same answers. `recipients` is `listedRecipients` (a column the
 * triggers keep). PostgreSQL writes JSON with a space around each
 * ':' and after each ',' and keeps jsonb's own layout inside metadata: the
 * same JSON values, not the same bytes, as JSON.stringify.
 */
const listedItemJson = (direction: 'in' | 'out') => sql`json_build_object(
    'id', ${envelopes.id}, 'type', ${envelopes.type}, 'from', ${envelopes.fromMailbox},
    'status', ${direction === 'in' ? envelopeRecipients.status : envelopes.status}, 'envelopeStatus', ${envelopes.status},
    'metadata', ${envelopes.metadata},
    'recipients', ${listedRecipients},
    'createdAt', ${isoText(envelopes.createdAt)}, 'submittedAt', ${isoText(envelopes.submittedAt)}, 'deadline', ${envelopes.deadline},
    'overdue', CASE WHEN ${envelopes.status} = 'submitted' AND ${envelopes.deadline} < ${sql.placeholder('today')}::date
      THEN NOT EXISTS (SELECT FROM jsonb_array_elements(CASE jsonb_typeof(${envelopes.computed} -> 'decisions') WHEN 'array' THEN ${envelopes.computed} -> 'decisions' END) d
                       WHERE ${sql.placeholder('final')}::jsonb ? (d ->> 'kind'))
      ELSE false END,
    'href', ${sql.placeholder('hrefPrefix')}::text || ${envelopes.id})::text`;

/** What a JSON listing row holds: the item's text, and the sort time and id a cursor after it is made of. */
const listedJsonFields = (direction: 'in' | 'out', sortTime: AnyPgColumn, id: AnyPgColumn) => ({
  json: listedItemJson(direction).as('json'),
  sortTime: isoText(sortTime).as('sortTime'),
  id: sql`${id}`.as('id'),
});

/**
 * Row counts the listing statements are prepared for: a page asks for the
 * smallest that holds its `limit` rows and keeps the first `limit`. The count
 * is written into the SQL, not bound: PostgreSQL plans a prepared statement
 * once (its generic plan, after five runs) only when that plan costs about
 * what a plan for the actual values would, and a bound LIMIT is costed as 10%
 * of the table (a parallel scan with JIT compilation on a large inbox), so
 * every run would be planned again. Five sizes keep the number of prepared
 * statements per connection bounded whatever limits clients send.
 */
const LISTING_ROWS = [11, 26, 51, 101, 201];

/** "t_s_c_51": which filters and cursor a listing statement has, and its row count. */
const listingShape = (query: MailboxListQuery, rows: number) =>
  `${query.type === undefined ? '' : 't'}_${query.status === undefined ? '' : 's'}_${query.after === undefined ? '' : 'c'}_${rows}`;

/** `listingDb`: where the mailbox listings run (Database.listingDb: generic plans on PostgreSQL). */
export function createEnvelopeRepository(db: Db, listingDb: Db = db): EnvelopeRepository {
  type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

  async function load(rows: EnvelopeRow[], withFiles: boolean): Promise<EnvelopeRecord[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const [recipientRows, fileRows] = await Promise.all([
      db.select().from(envelopeRecipients).where(inArray(envelopeRecipients.envelopeId, ids)).orderBy(asc(envelopeRecipients.mailboxAddress)),
      withFiles ? db.select().from(files).where(inArray(files.envelopeId, ids)).orderBy(asc(files.id)) : Promise.resolve([] as FileRow[]),
    ]);
    return rows.map((row) =>
      toEnvelope(
        row,
        recipientRows.filter((r) => r.envelopeId === row.id),
        fileRows.filter((f) => f.envelopeId === row.id),
      ),
    );
  }

  async function find(id: string): Promise<EnvelopeRecord | null> {
    const rows = await db.select().from(envelopes).where(eq(envelopes.id, id));
    const [envelope] = await load(rows, true);
    return envelope ?? null;
  }

  /** Appends the evidence sealed after the envelope's last one (the caller holds the envelope row lock). */
  async function appendEvidence(tx: Tx, envelopeId: string, seal: Sealer): Promise<void> {
    const [last] = await tx
      .select({ canonical: evidence.canonical, eventTime: evidence.eventTime })
      .from(evidence)
      .where(eq(evidence.envelopeId, envelopeId))
      .orderBy(desc(evidence.seq))
      .limit(1);
    const sealed = last === undefined ? seal(null, null) : seal(evidenceHash(last.canonical), last.eventTime);
    if (sealed.length > 0) await tx.insert(evidence).values(sealed);
  }

  /** Runs `work` and appends its audit entry in one transaction; `changed` may say nothing happened (no entry then). */
  async function audited<T>(
    audit: Parameters<EnvelopeRepository['create']>[1],
    at: Date | undefined,
    work: (tx: Tx) => Promise<T>,
    changed: (result: T) => boolean = () => true,
  ): Promise<T> {
    return db.transaction(async (tx) => {
      const result = await work(tx);
      if (changed(result)) await appendAudit(tx, audit, at);
      return result;
    });
  }

  /**
   * One round trip per page: the fields a listing shows and each envelope's
   * recipients aggregated in a subquery, instants formatted by PostgreSQL. A
   * prepared statement per shape (direction, which filters, cursor or not,
   * row count), made on first use: PostgreSQL parses it once per connection
   * and, for the unfiltered inbox, plans it once (on PGlite prepare simply
   * runs the query). The values are bound at each run. drizzle builds the SQL
   * once; the rows are read as the driver gives them (named by the column
   * aliases, JSON already parsed), without drizzle's per-value mapping, which
   * was a measured share of a listing's CPU (issue #4).
   */
  function buildListing(query: MailboxListQuery, rows: number, json: boolean) {
    const limit = sql.raw(String(rows)) as unknown as number; // written into the SQL (see LISTING_ROWS)
    if (query.direction === 'in') {
      const time = envelopeRecipients.deliveredAt;
      return db
        .select(json ? listedJsonFields('in', time, envelopeRecipients.envelopeId) : listedFields(time))
        .from(envelopeRecipients)
        .innerJoin(envelopes, eq(envelopes.id, envelopeRecipients.envelopeId))
        .where(
          and(
            eq(envelopeRecipients.mailboxAddress, sql.placeholder('address')),
            eq(envelopes.status, 'submitted'),
            query.type === undefined ? undefined : eq(envelopes.type, sql.placeholder('type')),
            query.status === undefined ? undefined : eq(envelopeRecipients.status, sql.placeholder('status')),
            query.after === undefined
              ? undefined
              : // A row-value comparison is an index condition on (mailbox, time, id); the equivalent OR is only a filter.
                sql`(${time}, ${envelopeRecipients.envelopeId}) < (${sql.placeholder('afterTime')}::timestamptz, ${sql.placeholder('afterId')}::uuid)`,
          ),
        )
        .orderBy(desc(time), desc(envelopeRecipients.envelopeId))
        .limit(limit);
    }
    const time = envelopes.createdAt;
    return db
      .select(json ? listedJsonFields('out', time, envelopes.id) : listedFields(time))
      .from(envelopes)
      .where(
        and(
          eq(envelopes.fromMailbox, sql.placeholder('address')),
          query.type === undefined ? undefined : eq(envelopes.type, sql.placeholder('type')),
          query.status === undefined ? undefined : eq(envelopes.status, sql.placeholder('status')),
          query.after === undefined
            ? undefined
            : sql`(${time}, ${envelopes.id}) < (${sql.placeholder('afterTime')}::timestamptz, ${sql.placeholder('afterId')}::uuid)`,
        ),
      )
      .orderBy(desc(time), desc(envelopes.id))
      .limit(limit);
  }
  type Listing = PgPreparedQuery<PreparedQueryConfig>;
  const listings = new Map<string, Listing>();
  function listingStatement(query: MailboxListQuery, rows: number, json = false): Listing {
    const key = `${json ? 'json_' : ''}${query.direction}_${listingShape(query, rows)}`;
    let statement = listings.get(key);
    if (statement === undefined) {
      // No fields: the driver's rows as they come (postgres.js: an array of objects, PGlite: `{ rows }`).
      statement = listingDb._.session.prepareQuery(buildListing(query, rows, json).toSQL(), undefined, `listing_${key}`, false);
      listings.set(key, statement);
    }
    return statement;
  }

  return {
    async create(envelope, audit) {
      await audited(audit, undefined, async (tx) => {
        await tx.insert(envelopes).values({
          id: envelope.id,
          type: envelope.type,
          typeVersion: envelope.typeVersion,
          fromMailbox: envelope.from,
          status: 'draft',
          metadata: envelope.metadata,
          inReplyTo: envelope.inReplyTo,
          createdBy: envelope.createdBy,
          // Millisecond precision from the clock, so keyset cursors (JS dates) compare exactly.
          createdAt: envelope.createdAt,
          computed: envelope.computed ?? {},
          encryptionKeys: envelope.encryptionKeys ?? [],
        });
        if (envelope.recipients.length > 0) {
          await tx
            .insert(envelopeRecipients)
            .values(envelope.recipients.map((address) => ({ envelopeId: envelope.id, mailboxAddress: address, status: 'pending' })));
        }
      });
      return (await find(envelope.id))!;
    },

    find,

    async deleteDraft(id, audit) {
      return audited(audit, undefined, async (tx) => {
        const [row] = await tx.select({ status: envelopes.status }).from(envelopes).where(eq(envelopes.id, id)).for('update');
        if (row === undefined || row.status !== 'draft') return false;
        await tx.delete(files).where(eq(files.envelopeId, id));
        await tx.delete(envelopeRecipients).where(eq(envelopeRecipients.envelopeId, id));
        await tx.delete(envelopes).where(eq(envelopes.id, id));
        return true;
      });
    },

    async addFile(file, audit) {
      const [row] = await audited(audit, undefined, async (tx) => {
        // Serialise with submit: a file can only join an envelope that is still a draft.
        const [envelope] = await tx.select({ status: envelopes.status }).from(envelopes).where(eq(envelopes.id, file.envelopeId)).for('update');
        if (envelope?.status !== 'draft') throw new ConflictError('envelopeNotDraft', 'The envelope was submitted meanwhile; its files cannot change');
        return tx
          .insert(files)
          .values({
            id: file.id,
            envelopeId: file.envelopeId,
            name: file.name,
            mediaType: file.mediaType,
            role: file.role,
            declaredSize: file.declaredSize,
            plaintextSha256: file.plaintextSha256,
            storageKey: file.storageKey,
            uploadedBy: file.uploadedBy,
            createdAt: file.createdAt,
          })
          .returning();
      });
      return toFile(row!);
    },

    async findFile(fileId) {
      const [row] = await db.select().from(files).where(eq(files.id, fileId));
      return row === undefined ? null : toFile(row);
    },

    async completeFile(fileId, result, at) {
      const [row] = await db
        .update(files)
        .set({ size: result.size, sha256: result.sha256, completedAt: at })
        .where(eq(files.id, fileId))
        .returning();
      return row === undefined ? null : toFile(row);
    },

    async removeFile(fileId, audit) {
      await audited(
        audit,
        undefined,
        async (tx) => {
          // Only a draft's files can go: a submitted envelope never loses one, whatever raced.
          const draft = tx.select({ id: envelopes.id }).from(envelopes).where(and(eq(envelopes.id, files.envelopeId), eq(envelopes.status, 'draft')));
          return tx.delete(files).where(and(eq(files.id, fileId), exists(draft))).returning({ id: files.id });
        },
        (rows) => rows.length > 0,
      );
    },

    async markSubmitted(id, at, audit, seal, changes) {
      return audited(audit, at, async (tx) => {
        const [row] = await tx.select({ status: envelopes.status }).from(envelopes).where(eq(envelopes.id, id)).for('update');
        if (row?.status !== 'draft') return false;
        await tx
          .update(envelopes)
          .set({
            status: 'submitted',
            submittedAt: at,
            ...(changes === undefined ? {} : { deadline: changes.deadline, retainUntil: changes.retainUntil, clock: changes.clock, computed: changes.computed }),
            ...(changes?.encryption === undefined ? {} : { encryptionKeys: changes.encryption.keys }),
          })
          .where(eq(envelopes.id, id));
        for (const [fileId, keyIds] of Object.entries(changes?.encryption?.fileKeyIds ?? {})) {
          await tx.update(files).set({ recipientKeyIds: keyIds }).where(and(eq(files.id, fileId), eq(files.envelopeId, id)));
        }
        if (changes?.related !== undefined) {
          const related = changes.related;
          await tx.update(envelopes).set({ deadline: related.deadline, clock: related.clock, computed: related.computed }).where(eq(envelopes.id, related.id));
        }
        await tx.update(envelopeRecipients).set({ status: 'delivered', deliveredAt: at }).where(eq(envelopeRecipients.envelopeId, id));
        await appendEvidence(tx, id, seal);
        return true;
      });
    },

    async recordAudit(audit) {
      await audited(audit, undefined, async () => undefined);
    },

    async recordRejection(id, audit, seal, repin) {
      await audited(audit, undefined, async (tx) => {
        const [row] = await tx.select({ status: envelopes.status }).from(envelopes).where(eq(envelopes.id, id)).for('update');
        if (repin !== undefined && row?.status === 'draft') await tx.update(envelopes).set({ encryptionKeys: repin }).where(eq(envelopes.id, id));
        await appendEvidence(tx, id, seal);
      });
    },

    async withDeadlines(address, limit) {
      const received = db.select({ id: envelopeRecipients.envelopeId }).from(envelopeRecipients).where(eq(envelopeRecipients.mailboxAddress, address));
      const rows = await db
        .select()
        .from(envelopes)
        .where(
          and(
            eq(envelopes.status, 'submitted'),
            isNotNull(envelopes.deadline),
            or(eq(envelopes.fromMailbox, address), inArray(envelopes.id, received)),
          ),
        )
        .orderBy(asc(envelopes.deadline), asc(envelopes.id))
        .limit(limit);
      return load(rows, false);
    },

    async listEvidence(envelopeId) {
      const rows = await db.select().from(evidence).where(eq(evidence.envelopeId, envelopeId)).orderBy(asc(evidence.seq));
      return rows.map(toEvidence);
    },

    async findEvidence(id) {
      const [row] = await db.select().from(evidence).where(eq(evidence.id, id));
      return row === undefined ? null : toEvidence(row);
    },

    async markRetrieved(id, mailbox, at, audit, seal) {
      await audited(
        audit,
        at,
        async (tx) => {
          await tx.select({ id: envelopes.id }).from(envelopes).where(eq(envelopes.id, id)).for('update');
          const rows = await tx
            .update(envelopeRecipients)
            .set({ status: 'retrieved', retrievedAt: at })
            .where(and(eq(envelopeRecipients.envelopeId, id), eq(envelopeRecipients.mailboxAddress, mailbox), eq(envelopeRecipients.status, 'delivered')))
            .returning({ id: envelopeRecipients.envelopeId });
          if (rows.length > 0) await appendEvidence(tx, id, seal);
          return rows;
        },
        (rows) => rows.length > 0,
      );
    },

    async markAcknowledged(id, mailbox, at, audit, seal) {
      const rows = await audited(audit, at, async (tx) => {
        await tx.select({ id: envelopes.id }).from(envelopes).where(eq(envelopes.id, id)).for('update');
        const updated = await tx
          .update(envelopeRecipients)
          .set({ status: 'acknowledged', acknowledgedAt: at, retrievedAt: sql`coalesce(${envelopeRecipients.retrievedAt}, ${at.toISOString()}::timestamptz)` })
          .where(
            and(
              eq(envelopeRecipients.envelopeId, id),
              eq(envelopeRecipients.mailboxAddress, mailbox),
              inArray(envelopeRecipients.status, ['delivered', 'retrieved']),
            ),
          )
          .returning();
        if (updated.length > 0) await appendEvidence(tx, id, seal);
        return updated;
      },
        (updated) => updated.length > 0,
      );
      return rows[0] === undefined ? null : toRecipient(rows[0]);
    },

    /**
     * Keyset pagination on (time DESC, id DESC): a row inserted between two
     * page reads sorts either before the cursor (already-read territory: it
     * shows on a fresh first page) or after it; never twice, never skipped
     * among the rows that existed. Ties on time are broken by the id.
     */
    async listMailbox(query) {
      const rows = LISTING_ROWS.find((n) => n >= query.limit) ?? query.limit;
      const found = rowsOf<ListedRow>(
        await listingStatement(query, rows).execute({
          address: query.address,
          type: query.type,
          status: query.status,
          afterTime: query.after?.time.toISOString(),
          afterId: query.after?.id,
        }),
      );
      const items: MailboxListItem[] = [];
      for (const row of found.length > query.limit ? found.slice(0, query.limit) : found) {
        // Named one by one: an object rest/spread copy per row was a visible cost.
        const envelope: ListedEnvelope = {
          id: row.id,
          type: row.type,
          from: row.from,
          status: row.status,
          metadata: row.metadata,
          computed: row.computed,
          createdAt: row.createdAt,
          submittedAt: row.submittedAt,
          deadline: row.deadline,
          recipients: typeof row.recipients === 'string' ? (JSON.parse(row.recipients) as ListedRecipient[]) : row.recipients,
        };
        items.push({ envelope, sortTime: new Date(row.sortTime) });
      }
      return items;
    },

    async listMailboxJson(query, view) {
      const rows = LISTING_ROWS.find((n) => n >= query.limit) ?? query.limit;
      const found = rowsOf<MailboxJsonRow>(
        await listingStatement(query, rows, true).execute({
          address: query.address,
          type: query.type,
          status: query.status,
          afterTime: query.after?.time.toISOString(),
          afterId: query.after?.id,
          today: view.today,
          final: JSON.stringify(view.finalDecisions),
          hrefPrefix: view.hrefPrefix,
        }),
      );
      return found.length > query.limit ? found.slice(0, query.limit) : found;
    },

    async expiredDrafts(before, limit) {
      const rows = await db
        .select()
        .from(envelopes)
        .where(and(eq(envelopes.status, 'draft'), lt(envelopes.createdAt, before)))
        .orderBy(asc(envelopes.createdAt))
        .limit(limit);
      return load(rows, true);
    },

    async storageKeys(prefix) {
      const rows = await db.select({ key: files.storageKey }).from(files).where(like(files.storageKey, `${prefix.replace(/[%_\\]/g, '\\$&')}%`));
      return new Set(rows.map((r) => r.key));
    },
  };
}
