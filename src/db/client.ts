/**
 * One factory, two drivers: postgres.js when a DATABASE_URL is given, the
 * embedded PGlite (a WASM PostgreSQL) otherwise. Both give a drizzle
 * `PgDatabase` over the same schema, so repositories run unchanged on either.
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from './schema.ts';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /**
   * Where the mailbox listings run (db/envelope-repository.ts). On PostgreSQL a small pool of its own
   * whose sessions use generic plans only (plan_cache_mode = force_generic_plan): the listing statements
   * are written so that one plan serves every value (row count in the SQL, filters as index conditions),
   * yet PostgreSQL's plan cache planned the filtered ones again at every run, because it costs their
   * generic plan above a custom one for the same scans: 0.25 ms of planning per request, a fifth of the
   * database's CPU per filtered page (issue #4). Only here: other statements bind a LIMIT, whose generic
   * plan is poor. On PGlite (one session) the same as `db`.
   */
  readonly listingDb: Db;
  /**
   * Listens to a notification channel (NOTIFY, e.g. from a trigger, by any
   * session: this node's, another node's, the admin CLI's). `listening` runs
   * each time notifications start to flow, first and after a reconnection;
   * `lost` when they may have stopped (the listening connection closed), so
   * that what relies on them can stop trusting what it kept. On PostgreSQL a
   * connection of its own that reconnects by itself (backing off up to 30 s);
   * on PGlite (one process, nothing to lose) `listening` once. Resolves once
   * the first attempt is over (listening or not); returns what stops it
   * (`close` stops every listener).
   */
  listen(channel: string, handlers: ChannelHandlers): Promise<() => Promise<void>>;
  /** Applies pending migrations (idempotent; serialised across nodes on PostgreSQL). */
  migrate(): Promise<void>;
  /** Number of migrations applied vs known to this build. */
  migrationStatus(): Promise<{ applied: number; known: number }>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface ChannelHandlers {
  notify(payload: string): void;
  listening(): void;
  lost(): void;
}

export type DatabaseTarget = { url: string } | { pgliteDir: string | undefined };

// Arbitrary constant key for pg_advisory_lock while migrating, so two nodes
// starting at once do not both apply the same migration.
const MIGRATION_LOCK_KEY = 0x62786368; // "bxch"

async function knownMigrations(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const journal = JSON.parse(await readFile(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

async function appliedMigrations(db: Db): Promise<number> {
  const exists = await db.execute<{ present: boolean }>(
    sql`SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`,
  );
  if (!rowsOf<{ present: boolean }>(exists)[0]?.present) return 0;
  const result = await db.execute<{ count: string | number }>(sql`SELECT count(*) AS count FROM drizzle.__drizzle_migrations`);
  return Number(rowsOf<{ count: string | number }>(result)[0]?.count ?? 0);
}

/** postgres.js returns an array of rows, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

const LISTEN_RETRY_MS = { first: 250, max: 30_000 };

/**
 * LISTEN on a connection of its own. postgres.js's `listen` re-listens after
 * a reconnection but says nothing when the connection drops, and gives up for
 * good when the first reconnection fails; here the drop is reported (`lost`)
 * and reconnection retried with backoff until `stop`.
 */
export async function listenPostgres(url: string, channel: string, handlers: ChannelHandlers): Promise<() => Promise<void>> {
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let delay = LISTEN_RETRY_MS.first;
  const options = {
    max: 1,
    // Kept open for good: postgres.js would otherwise recycle it after 30-60 min, a needless `lost`.
    idle_timeout: null,
    max_lifetime: null,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: 'bxchange-listen' },
    // postgres.js's own listen() passes these two; `onnotify` is not in its public types.
    onnotify: (name: string, payload: string) => {
      if (name === channel) handlers.notify(payload);
    },
    onclose: () => {
      if (stopped) return;
      handlers.lost();
      schedule();
    },
  };
  const listener = postgres(url, options as unknown as postgres.Options<Record<string, never>>);
  function schedule(): void {
    if (stopped || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      void attempt();
    }, delay);
    retry.unref();
    delay = Math.min(delay * 2, LISTEN_RETRY_MS.max);
  }
  async function attempt(): Promise<void> {
    try {
      await listener.unsafe(`LISTEN "${channel.replace(/"/g, '""')}"`);
      if (stopped) return;
      delay = LISTEN_RETRY_MS.first;
      handlers.listening();
    } catch {
      if (stopped) return;
      handlers.lost();
      schedule();
    }
  }
  await attempt();
  let ended: Promise<void> | undefined;
  return () => {
    stopped = true;
    clearTimeout(retry);
    ended ??= listener.end({ timeout: 1 });
    return ended;
  };
}

export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  if ('url' in target) {
    const client = postgres(target.url, {
      max: 10,
      onnotice: () => {},
      connection: { application_name: 'bxchange' },
    });
    const db = drizzlePostgres(client, { schema }) as unknown as Db;
    const listingClient = postgres(target.url, {
      max: 4,
      onnotice: () => {},
      connection: { application_name: 'bxchange', plan_cache_mode: 'force_generic_plan' },
    });
    const listingDb = drizzlePostgres(listingClient, { schema }) as unknown as Db;
    const listeners = new Set<() => Promise<void>>();
    return {
      kind: 'postgres',
      db,
      listingDb,
      async listen(channel, handlers) {
        const stop = await listenPostgres(target.url, channel, handlers);
        const once = async () => {
          listeners.delete(once);
          await stop();
        };
        listeners.add(once);
        return once;
      },
      async migrate() {
        // A single connection: the advisory lock is held by the session that migrates.
        const single = postgres(target.url, { max: 1, onnotice: () => {} });
        try {
          await single`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
          await migratePostgres(drizzlePostgres(single), { migrationsFolder });
          await single`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
        } finally {
          await single.end({ timeout: 5 });
        }
      },
      async migrationStatus() {
        return { applied: await appliedMigrations(db), known: await knownMigrations() };
      },
      async ping() {
        await client`SELECT 1`;
      },
      async close() {
        await Promise.all([...listeners].map((stop) => stop()));
        await Promise.all([client.end({ timeout: 5 }), listingClient.end({ timeout: 5 })]);
      },
    };
  }
  if (target.pgliteDir !== undefined) await mkdir(target.pgliteDir, { recursive: true });
  const client = target.pgliteDir === undefined ? new PGlite() : new PGlite(target.pgliteDir);
  await client.waitReady;
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    listingDb: db,
    async listen(channel, handlers) {
      const stop = await client.listen(channel, (payload) => handlers.notify(payload));
      handlers.listening();
      return async () => {
        if (!client.closed) await stop();
      };
    },
    async migrate() {
      await migratePglite(drizzlePglite(client), { migrationsFolder });
    },
    async migrationStatus() {
      return { applied: await appliedMigrations(db), known: await knownMigrations() };
    },
    async ping() {
      if (client.closed) throw new Error('database closed');
      await client.query('SELECT 1');
    },
    async close() {
      if (!client.closed) await client.close();
    },
  };
}
