/**
 * The api benchmark's database: a dedicated database on DATABASE_URL's
 * server (bx_bench_api; bx_bench_api_<rows> for another size), created once,
 * migrated with the project's migrations and filled with one mailbox
 * (tutelle@bpl) holding `rows` delivered envelopes. A marker row
 * (bench.seed) records what was seeded; a later run finding it (and the
 * recipient count it promises) reuses the database as it is, only applying
 * new migrations. Anything else (no marker, another seed version, an
 * interrupted seed) drops the database and seeds it again.
 *
 * The directory (the Brussels seed, two machine principals) goes through the
 * project's repositories and domain; the bulk rows through one
 * `INSERT … SELECT generate_series` per table, in one transaction.
 */
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { createDirectoryRepository } from '../../src/db/directory-repository.ts';
import { openDatabase, type Db } from '../../src/db/client.ts';
import * as schema from '../../src/db/schema.ts';
import { BPL_MAILBOXES, seedPlan } from '../../src/domain/brussels-directory.ts';
import { createDirectory } from '../../src/domain/directory.ts';
import type { Caller } from '../../src/domain/model.ts';
import { systemClock } from '../../src/domain/ports.ts';
import { seedBrussels } from '../../src/domain/seed.ts';
import { ACT_CATEGORIES } from '../../src/domain/tutelle-categories.ts';

/** Bump when the generated rows change: an older seed is then dropped and made again. */
export const SEED_VERSION = 2; // 2: envelopes.recipients_json (migration 0013) filled by the seed's recipients INSERT
export const INBOX = BPL_MAILBOXES.tutelle;
/** A second recipient of every general.letter (so some items list two recipients). */
const CC = 'secretariat@bpl';
const READER = 'bench-api-reader';
const SENDERS = 'bench-api-senders';
const ADMIN: Caller = { type: 'bootstrap-admin', via: { door: 'cli' } };
/** Deliveries spread over the last three years, one every span/rows, the newest an hour ago. */
const SPAN_MS = 3 * 365 * 86_400_000;

export interface BenchDatabase {
  name: string;
  url: string;
  rows: number;
  /** Recipient rows of the inbox (= rows). */
  inboxRows: number;
  readerId: string;
  /** True when this run seeded it (else reused). */
  seededNow: boolean;
  /** Seconds the seed took (this run, or the run that made it). */
  seedSeconds: number;
  seededAt: string;
  /** Sizes after seeding, for the notes. */
  sizes: Record<string, string>;
}

export function databaseName(rows: number): string {
  const custom = process.env.BENCH_API_DATABASE;
  if (custom !== undefined && custom !== '') {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(custom)) throw new Error(`BENCH_API_DATABASE must be a plain lowercase identifier, got "${custom}"`);
    return custom;
  }
  return rows === 1_000_000 ? 'bx_bench_api' : `bx_bench_api_${rows}`;
}

function withDatabase(baseUrl: string, name: string): string {
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The database name of a postgres:// URL. */
export function databaseOf(baseUrl: string): string {
  return decodeURIComponent(new URL(baseUrl).pathname.replace(/^\//, '')) || 'postgres';
}

interface Marker {
  version: number;
  rows: number;
  mailbox: string;
  reader_id: string;
  seconds: number;
  seeded_at: Date;
}

async function readMarker(url: string): Promise<Marker | undefined> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [present] = await sql<{ ok: boolean }[]>`SELECT to_regclass('bench.seed') IS NOT NULL AS ok`;
    if (!present?.ok) return undefined;
    const [marker] = await sql<Marker[]>`SELECT version, rows, mailbox, reader_id, seconds::float8 AS seconds, seeded_at FROM bench.seed WHERE name = 'api'`;
    if (marker === undefined) return undefined;
    const [count] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM envelope_recipients WHERE mailbox_address = ${marker.mailbox}`;
    return count?.n === marker.rows ? marker : undefined;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function sizes(url: string): Promise<Record<string, string>> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ name: string; size: string }[]>`
      SELECT c.relname AS name, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relname IN ('envelopes', 'envelope_recipients')
      UNION ALL SELECT 'database', pg_size_pretty(pg_database_size(current_database()))`;
    return Object.fromEntries(rows.map((r) => [r.name, r.size]));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Makes sure the benchmark database exists, is migrated and holds the seed;
 * never writes into DATABASE_URL's own database (only CREATE/DROP DATABASE
 * of the benchmark's, issued from there).
 */
export async function ensureSeeded(baseUrl: string, rows: number, log: (line: string) => void): Promise<BenchDatabase> {
  const name = databaseName(rows);
  if (databaseOf(baseUrl) === name) {
    throw new Error(`api: DATABASE_URL names ${name} itself; point it at another database of the server (e.g. /postgres): the benchmark creates ${name} there`);
  }
  const url = withDatabase(baseUrl, name);
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_database WHERE datname = ${name}`;
    let marker = exists?.n ? await readMarker(url) : undefined;
    if (marker !== undefined && (marker.version !== SEED_VERSION || marker.rows !== rows || marker.mailbox !== INBOX)) marker = undefined;
    if (marker !== undefined) {
      // Reused as it is; new migrations of the project still apply.
      const database = await openDatabase({ url });
      try {
        await database.migrate();
      } finally {
        await database.close();
      }
      log(`api: reusing ${name} (seeded ${marker.seeded_at.toISOString()} in ${marker.seconds.toFixed(0)} s, ${rows} envelopes in ${INBOX})`);
      return { name, url, rows, inboxRows: rows, readerId: marker.reader_id, seededNow: false, seedSeconds: marker.seconds, seededAt: marker.seeded_at.toISOString(), sizes: await sizes(url) };
    }
    if (exists?.n) {
      log(`api: ${name} exists without a complete seed of ${rows} rows (version ${SEED_VERSION}): dropping it`);
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const t0 = performance.now();
  const readerId = await seed(url, rows, log);
  const seconds = (performance.now() - t0) / 1000;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const seededAt = new Date();
  try {
    await sql`CREATE SCHEMA IF NOT EXISTS bench`;
    await sql`CREATE TABLE IF NOT EXISTS bench.seed (name text PRIMARY KEY, version int NOT NULL, rows int NOT NULL, mailbox text NOT NULL, reader_id uuid NOT NULL, seconds numeric NOT NULL, seeded_at timestamptz NOT NULL)`;
    await sql`INSERT INTO bench.seed VALUES ('api', ${SEED_VERSION}, ${rows}, ${INBOX}, ${readerId}, ${seconds.toFixed(1)}, ${seededAt})`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  log(`api: seeded ${name} in ${seconds.toFixed(1)} s`);
  return { name, url, rows, inboxRows: rows, readerId, seededNow: true, seedSeconds: seconds, seededAt: seededAt.toISOString(), sizes: await sizes(url) };
}

async function seed(url: string, rows: number, log: (line: string) => void): Promise<string> {
  const database = await openDatabase({ url });
  try {
    await database.migrate();
    const repository = createDirectoryRepository(database.db);
    await seedBrussels(repository, 'bench-api');
    const directory = createDirectory({ repository, clock: systemClock, adminTokenHash: undefined });
    const plan = seedPlan();
    // Every entity's secretariat sends to the tutelle mailbox (BPL's own excepted).
    const senders = plan.mailboxes.filter((m) => m.name === 'secretariat' && m.entity !== 'bpl').map((m) => m.address);
    const sender = await directory.createPrincipal(ADMIN, { name: SENDERS, kind: 'machine', memberships: senders.map((mailbox) => ({ mailbox, roles: ['send'] })) });
    const reader = await directory.createPrincipal(ADMIN, { name: READER, kind: 'machine', memberships: [{ mailbox: INBOX, roles: ['read'] }] });
    log(`api: directory seeded (${plan.entities.length} entities, ${plan.mailboxes.length} mailboxes), ${rows} envelopes from ${senders.length} senders to ${INBOX} …`);
    const newest = Date.now() - 3_600_000;
    const step = Math.max(1, Math.floor(SPAN_MS / rows));
    const first = newest - (rows - 1) * step;
    const bodies = ['council', 'college', 'cpasCouncil', 'cpasPermanentBureau', 'policeCouncil', 'policeCollege'];
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const t0 = performance.now();
      await sql.begin(async (tx) => {
        // Superuser only: skips the FK checks and the feed trigger (the rows are consistent by construction).
        await tx`SAVEPOINT replica`;
        try {
          await tx`SET LOCAL session_replication_role = replica`;
          await tx`RELEASE SAVEPOINT replica`;
        } catch {
          await tx`ROLLBACK TO SAVEPOINT replica`;
          log('api: not a superuser: seeding with foreign-key checks and triggers (slower)');
        }
        // i = 0 is the oldest envelope. Ids are UUIDv7 made from the creation millisecond, like the app's.
        // Kinds: i % 10 = 0 general.letter, 9 tutelle.actList, else tutelle.act; the recipient status is
        // independent of the kind (hashint4): 15% delivered, 25% retrieved, 60% acknowledged.
        await tx`
          INSERT INTO envelopes (id, type, type_version, from_mailbox, status, metadata, created_by, created_at, submitted_at, deadline, retain_until, computed)
          SELECT
            (lpad(to_hex(g.created), 12, '0') || '7' || lpad(to_hex(g.i % 4096), 3, '0') || '8' || lpad(to_hex(g.i), 15, '0'))::uuid,
            g.type, '1.0', (${senders}::text[])[1 + g.i % ${senders.length}], 'submitted',
            CASE g.type
              WHEN 'general.letter' THEN jsonb_build_object('subject', 'Courrier ' || g.i || ' — demande d''information', 'reference', 'BX/' || g.i)
              WHEN 'tutelle.actList' THEN jsonb_build_object(
                'period', jsonb_build_object('start', to_char(g.day - 30, 'YYYY-MM-DD'), 'end', to_char(g.day - 1, 'YYYY-MM-DD')),
                'entries', jsonb_build_array(
                  jsonb_build_object('decisionDate', to_char(g.day - 20, 'YYYY-MM-DD'), 'body', 'college', 'summary', 'Désignation d''un agent ' || g.i),
                  jsonb_build_object('decisionDate', to_char(g.day - 12, 'YYYY-MM-DD'), 'body', 'college', 'summary', 'Octroi d''un subside ' || g.i),
                  jsonb_build_object('decisionDate', to_char(g.day - 5, 'YYYY-MM-DD'), 'body', 'council', 'summary', 'Convention de partenariat ' || g.i)))
              ELSE jsonb_build_object(
                'issuingBody', (${bodies}::text[])[1 + g.i % ${bodies.length}],
                'decisionDate', to_char(g.day - 7, 'YYYY-MM-DD'),
                'actCategory', (${[...ACT_CATEGORIES]}::text[])[1 + (g.i / 10) % ${ACT_CATEGORIES.length}],
                'subject', 'Délibération n° ' || g.i || ' — modification budgétaire et marché de fournitures',
                'transmission', 'automatic',
                'reference', 'ACT/' || g.i)
            END,
            ${sender.id}::uuid,
            to_timestamp((g.created) / 1000.0),
            to_timestamp((g.created + 1500) / 1000.0),
            CASE WHEN g.type = 'tutelle.act' THEN g.day + 30 END,
            g.day + 3650,
            '{}'::jsonb
          FROM (
            SELECT i, t AS created, to_timestamp(t / 1000.0)::date AS day,
                   CASE i % 10 WHEN 0 THEN 'general.letter' WHEN 9 THEN 'tutelle.actList' ELSE 'tutelle.act' END AS type
            FROM generate_series(0, ${rows - 1}::int) AS i, LATERAL (SELECT ${first}::bigint + i::bigint * ${step}::bigint AS t) AS s
          ) AS g`;
        const t1 = performance.now();
        log(`api: ${rows} envelopes inserted in ${((t1 - t0) / 1000).toFixed(1)} s`);
        await tx`
          INSERT INTO envelope_recipients (envelope_id, mailbox_address, status, delivered_at, retrieved_at, acknowledged_at)
          SELECT e.id, m.address, s.status, e.submitted_at,
                 CASE WHEN s.status <> 'delivered' THEN e.submitted_at + interval '2 hours' END,
                 CASE WHEN s.status = 'acknowledged' THEN e.submitted_at + interval '3 hours' END
          FROM envelopes e
          -- i is the id's last 15 hex digits (see above); the status hashes it.
          CROSS JOIN LATERAL (SELECT (hashint8(('x' || right(replace(e.id::text, '-', ''), 15))::bit(60)::bigint)::bigint % 100 + 100) % 100 AS h) AS hh
          CROSS JOIN LATERAL (SELECT CASE WHEN hh.h < 15 THEN 'delivered' WHEN hh.h < 40 THEN 'retrieved' ELSE 'acknowledged' END AS status) AS s
          CROSS JOIN LATERAL (SELECT ${INBOX}::text AS address UNION ALL SELECT ${CC}::text WHERE e.type = 'general.letter') AS m
          ORDER BY e.submitted_at, e.id`;
        log(`api: recipients inserted in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
      });
      const t2 = performance.now();
      // Sets the visibility map (index-only scans) and the statistics the planner needs.
      await sql`VACUUM (ANALYZE) envelopes`;
      await sql`VACUUM (ANALYZE) envelope_recipients`;
      await sql`CHECKPOINT`;
      log(`api: VACUUM ANALYZE + CHECKPOINT in ${((performance.now() - t2) / 1000).toFixed(1)} s`);
    } finally {
      await sql.end({ timeout: 5 });
    }
    return reader.id;
  } finally {
    await database.close();
  }
}

/** A fresh bearer token of the reader principal (revoked by `revoke` at the end of the run). */
export async function issueToken(url: string, readerId: string): Promise<{ token: string; revoke(): Promise<void> }> {
  const database = await openDatabase({ url });
  const directory = createDirectory({ repository: createDirectoryRepository(database.db), clock: systemClock, adminTokenHash: undefined });
  try {
    const issued = await directory.issueToken(ADMIN, readerId, { label: `bench api ${new Date().toISOString()}` });
    return {
      token: issued.token,
      async revoke() {
        const db = await openDatabase({ url });
        try {
          await createDirectory({ repository: createDirectoryRepository(db.db), clock: systemClock, adminTokenHash: undefined }).revokeToken(ADMIN, readerId, issued.id);
        } finally {
          await db.close();
        }
      },
    };
  } finally {
    await database.close();
  }
}

/** (delivered_at, envelope_id) of the inbox row at 0-based `position` (newest first). */
export async function inboxRowAt(url: string, position: number): Promise<{ time: Date; id: string }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ t: Date; id: string }[]>`
      SELECT delivered_at AS t, envelope_id AS id FROM envelope_recipients
      WHERE mailbox_address = ${INBOX} ORDER BY delivered_at DESC, envelope_id DESC OFFSET ${position} LIMIT 1`;
    if (row === undefined) throw new Error(`api: the inbox has no row ${position}`);
    return { time: row.t, id: row.id };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A drizzle database over its own small pool that records every statement (SQL + parameters) it sends. */
export function recordingDb(url: string): { db: Db; statements: Array<{ sql: string; params: unknown[] }>; end(): Promise<void> } {
  const client = postgres(url, { max: 2, onnotice: () => {}, connection: { application_name: 'bxchange-bench-explain' } });
  const statements: Array<{ sql: string; params: unknown[] }> = [];
  const db = drizzle(client, { schema, logger: { logQuery: (query, params) => statements.push({ sql: query, params }) } }) as unknown as Db;
  return { db, statements, end: () => client.end({ timeout: 5 }) };
}
