/**
 * The datawarehouse export feed (DESIGN §3 capability `export`, §5
 * `GET /api/v1/exports/envelopes`): a change feed of submitted envelopes'
 * metadata, for principals holding the `export` capability.
 *
 * Contract (what a consumer relies on; the HTTP door only chooses the format):
 * - Each envelope is one record (`ExportedEnvelope`): its state when read. An
 *   envelope that changes later (a recipient retrieves or acknowledges it, the
 *   retention purge removes its files) appears again further on with its new
 *   state, so the consumer upserts by `id`, in feed order (a later record of
 *   an id replaces an earlier one).
 * - Never in a record: file content, file names of types whose files carry
 *   personal data (`personalData: true`), who created the draft, and no
 *   envelope at all of a type whose `exportFeed` is `counts` (decoration
 *   nominations): those exist in the feed only as the monthly counts of
 *   `counts()`.
 * - Position: a cursor is an opaque token for the pair (feed_xid, id) of the
 *   last envelope a response covered. `feed()` answers the envelopes after it,
 *   in (feed_xid, id) order, and the cursor to continue from, known before the
 *   first record is streamed (so the HTTP door can send it as a header).
 *
 * Design: why this never skips a row. `envelopes.feed_xid` is the id of the
 * transaction that last changed the envelope (set by the triggers of migration
 * 0005 on the envelope, its recipients and its files). Transaction ids are
 * handed out in start order but commit in any order: a transaction A that
 * started first (smaller xid) may commit after B. Serving B's rows and moving
 * the cursor past them would skip A's rows forever once A commits. So a
 * response only covers rows whose feed_xid is below the horizon
 * `pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction still
 * running: every transaction below it has ended, so no row can appear below
 * the horizon after it was read, and any later change gets a larger xid than
 * any cursor already issued. The window (cursor, end] is fixed by one query
 * (the horizon and the window's last key come from the same snapshot); the
 * rows are then streamed page by page by keyset inside that window. A row
 * changed while the response streams moves above the window and is served by a
 * later response: it may be served twice, never lost. The cost: the feed lags
 * behind the oldest running transaction (a transaction left open stalls it).
 */
import { ForbiddenError, ValidationError } from '../errors.ts';
import { listEnvelopeTypeVersions, findEnvelopeType } from './envelope-types/index.ts';
import { UUID_PATTERN } from './ids.ts';
import { decodeCursorValue, encodeCursorValue } from './pagination.ts';
import type { Caller } from './model.ts';
import { auditOf, type AuditInput, type RecipientStatus } from './ports.ts';

/** A position in the feed: the ordering key of an envelope. */
export interface FeedKey {
  /** envelopes.feed_xid as decimal digits (xid8: 64-bit, never wraps). */
  xid: string;
  id: string;
}

/** A type version whose envelopes the feed may carry. */
export interface FeedType {
  name: string;
  version: string;
}

/** An envelope as the repository reads it for the feed (everything the feed may need, nothing more). */
export interface FeedRecord {
  key: FeedKey;
  id: string;
  type: string;
  typeVersion: string;
  from: string;
  status: string;
  metadata: unknown;
  computed: unknown;
  inReplyTo: string | null;
  createdAt: Date;
  submittedAt: Date | null;
  deadline: string | null;
  retainUntil: string | null;
  purgedAt: Date | null;
  recipients: Array<{ address: string; status: string; deliveredAt: Date | null; retrievedAt: Date | null; acknowledgedAt: Date | null }>;
  files: Array<{ id: string; name: string; mediaType: string; role: string | null; size: number | null; sha256: string | null; plaintextSha256: string | null }>;
}

export interface FeedWindow {
  /** The last key of the window; null when nothing lies after the cursor below the horizon. */
  end: FeedKey | null;
  /** Whether more rows lie below the horizon after `end` (the consumer may ask again at once). */
  more: boolean;
}

export interface ExportRepository {
  /**
   * Fixes the next window in ONE statement: among submitted envelopes of
   * `types` after `after` (null: from the start) whose feed_xid is below
   * pg_snapshot_xmin(pg_current_snapshot()) of that statement, in (feed_xid,
   * id) order, the key of the `limit`-th (or of the last, when fewer).
   */
  window(types: FeedType[], after: FeedKey | null, limit: number): Promise<FeedWindow>;
  /** Submitted envelopes of `types` with after < (feed_xid, id) ≤ upTo, in that order, at most `limit`. */
  page(types: FeedType[], after: FeedKey | null, upTo: FeedKey, limit: number): Promise<FeedRecord[]>;
  /** Submitted envelopes by type and Europe/Brussels month of submission (YYYY-MM). */
  counts(): Promise<Array<{ type: string; month: string; envelopes: number }>>;
  recordAudit(audit: AuditInput): Promise<void>;
}

/** One line of the feed. Times are RFC 3339 UTC, dates YYYY-MM-DD. */
export interface ExportedEnvelope {
  id: string;
  type: string;
  typeVersion: string;
  from: string;
  status: string;
  inReplyTo: string | null;
  createdAt: string;
  submittedAt: string | null;
  deadline: string | null;
  retainUntil: string | null;
  /** When the retention purge deleted the files (their digests stay). */
  purgedAt: string | null;
  metadata: unknown;
  computed: Record<string, unknown>;
  recipients: Array<{ address: string; status: RecipientStatus; deliveredAt: string | null; retrievedAt: string | null; acknowledgedAt: string | null }>;
  /** `name` only for types whose files carry no personal data. */
  files: Array<{ id: string; name?: string; mediaType: string; role: string | null; size: number | null; sha256: string | null; plaintextSha256: string | null }>;
}

export interface FeedResponse {
  /** The cursor to continue from (after the last envelope this response covers); undefined: from the start (nothing served yet). */
  next: string | undefined;
  /** More envelopes were already available after `next` when the window was fixed. */
  more: boolean;
  /** Streamed page by page; never the whole window in memory. */
  envelopes: AsyncIterable<ExportedEnvelope>;
}

export interface MonthlyCount {
  type: string;
  /** What the feed carries of the type: `metadata` (a record per envelope) or `counts` (only these counts). */
  exportFeed: 'metadata' | 'counts';
  /** Europe/Brussels month of submission. */
  month: string;
  envelopes: number;
}

export const FEED_DEFAULT_LIMIT = 1000;
export const FEED_MAX_LIMIT = 10_000;
/** Rows fetched per query while streaming a window. */
export const FEED_PAGE_ROWS = 500;

const XID8_MAX = 2n ** 64n - 1n;
const DIGITS = /^(0|[1-9][0-9]{0,19})$/;
const UUID = new RegExp(UUID_PATTERN);

export function encodeFeedCursor(key: FeedKey): string {
  return encodeCursorValue({ x: key.xid, i: key.id });
}

/** The key inside a cursor this server issued; undefined for none; a 400 problem otherwise. */
export function decodeFeedCursor(cursor: string | undefined): FeedKey | undefined {
  const value = decodeCursorValue(cursor) as { x?: unknown; i?: unknown } | undefined;
  if (value === undefined) return undefined;
  // Only what encodeFeedCursor issues: anything else would reach the database as an xid8 or uuid it refuses (a 500, not a 400).
  if (typeof value.x === 'string' && DIGITS.test(value.x) && BigInt(value.x) <= XID8_MAX && typeof value.i === 'string' && UUID.test(value.i)) {
    return { xid: value.x, id: value.i.toLowerCase() };
  }
  throw new ValidationError([{ in: 'query', name: 'cursor', detail: 'The cursor is not one this server issued' }], 'Invalid cursor');
}

export function feedLimit(limit: number | undefined): number {
  if (limit === undefined) return FEED_DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > FEED_MAX_LIMIT) {
    throw new ValidationError([{ in: 'query', name: 'limit', value: limit, detail: `limit must be between 1 and ${FEED_MAX_LIMIT}` }]);
  }
  return limit;
}

export function callerMayExport(caller: Caller): boolean {
  return caller.type === 'principal' && caller.principal.capabilities.includes('export');
}

function assertExporter(caller: Caller): void {
  // The bootstrap administrator manages the directory; reading the feed is a separate, explicit capability.
  if (!callerMayExport(caller)) throw new ForbiddenError('The export feed needs the export capability');
}

/** The type versions whose envelopes the feed carries (exportFeed `metadata`); any other type is never read for it. */
export function feedTypes(): FeedType[] {
  return listEnvelopeTypeVersions()
    .filter((t) => t.exportFeed === 'metadata')
    .map((t) => ({ name: t.name, version: t.version }));
}

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

/** The record of one envelope, or null when its type (version) may not appear in the feed. */
export function exportedEnvelope(record: FeedRecord): ExportedEnvelope | null {
  const type = findEnvelopeType(record.type, record.typeVersion);
  // Fail closed: an unknown type or version, or a counts-only one, never leaves as a record.
  if (type === undefined || type.exportFeed !== 'metadata') return null;
  const computed = record.computed !== null && typeof record.computed === 'object' && !Array.isArray(record.computed) ? (record.computed as Record<string, unknown>) : {};
  return {
    id: record.id,
    type: record.type,
    typeVersion: record.typeVersion,
    from: record.from,
    status: record.status,
    inReplyTo: record.inReplyTo,
    createdAt: record.createdAt.toISOString(),
    submittedAt: iso(record.submittedAt),
    deadline: record.deadline,
    retainUntil: record.retainUntil,
    purgedAt: iso(record.purgedAt),
    metadata: record.metadata,
    computed,
    recipients: record.recipients.map((r) => ({
      address: r.address,
      status: r.status as RecipientStatus,
      deliveredAt: iso(r.deliveredAt),
      retrievedAt: iso(r.retrievedAt),
      acknowledgedAt: iso(r.acknowledgedAt),
    })),
    files: record.files.map((f) => ({
      id: f.id,
      ...(type.personalData ? {} : { name: f.name }),
      mediaType: f.mediaType,
      role: f.role,
      size: f.size,
      sha256: f.sha256,
      plaintextSha256: f.plaintextSha256,
    })),
  };
}

export interface ExportsDeps {
  repository: ExportRepository;
  /** Rows per query while streaming (tests make it small to cross page boundaries). */
  pageRows?: number;
}

export function createExports(deps: ExportsDeps) {
  const { repository } = deps;
  const pageRows = deps.pageRows ?? FEED_PAGE_ROWS;

  async function* stream(types: FeedType[], after: FeedKey | null, end: FeedKey): AsyncGenerator<ExportedEnvelope> {
    let position = after;
    for (;;) {
      const rows = await repository.page(types, position, end, pageRows);
      for (const row of rows) {
        const line = exportedEnvelope(row);
        if (line !== null) yield line;
      }
      if (rows.length < pageRows) return;
      position = rows[rows.length - 1]!.key;
    }
  }

  return {
    /**
     * The envelopes after `cursor` (from the start without one), at most
     * `limit`, and the cursor to continue from. See the module comment for
     * why a late commit is never skipped.
     */
    async feed(caller: Caller, options: { cursor?: string; limit?: number; format?: string } = {}): Promise<FeedResponse> {
      assertExporter(caller);
      const after = decodeFeedCursor(options.cursor) ?? null;
      const limit = feedLimit(options.limit);
      const types = feedTypes();
      const window = await repository.window(types, after, limit);
      const end = window.end;
      const next = end === null ? options.cursor || undefined : encodeFeedCursor(end);
      await repository.recordAudit(
        auditOf(caller, 'export.read', 'envelopes', { cursor: options.cursor ?? null, next: next ?? null, limit, format: options.format ?? null }),
      );
      const envelopes: AsyncIterable<ExportedEnvelope> = end === null ? (async function* () {})() : stream(types, after, end);
      return { next, more: window.more, envelopes };
    },

    /** Submitted envelopes by type and Brussels month, every type included (the only trace of counts-only types). */
    async counts(caller: Caller): Promise<MonthlyCount[]> {
      assertExporter(caller);
      const rows = await repository.counts();
      await repository.recordAudit(auditOf(caller, 'export.read', 'counts'));
      return rows.map((row) => ({
        type: row.type,
        exportFeed: findEnvelopeType(row.type)?.exportFeed ?? 'counts',
        month: row.month,
        envelopes: row.envelopes,
      }));
    },
  };
}

export type Exports = ReturnType<typeof createExports>;
