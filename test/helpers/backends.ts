/**
 * Builds the app against real parts, once per backend:
 * - "embedded": PGlite (in memory) + a local folder in a temp dir, always;
 * - "PostgreSQL + S3": a fresh database on DATABASE_URL's server and a fresh
 *   bucket on the S3 server, when both are configured (CI=true: required).
 * Everything is torn down with t.teardown.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { ensureDevPki, type Pki } from '../../src/crypto/pki.ts';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import postgres from 'postgres';
import type { Test } from 'tap';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig, type Config, type S3Config } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import { hashSecret } from '../../src/domain/directory.ts';
import type { Clock } from '../../src/domain/ports.ts';
import type { BlobStore } from '../../src/storage/blob-store.ts';
import { createFsBlobStore } from '../../src/storage/fs-blob-store.ts';
import { createS3BlobStore, createS3Client } from '../../src/storage/s3-blob-store.ts';
import { createServices, type Services } from '../../src/services.ts';
import { inCI, postgresService, s3Service, withService } from './services.ts';

export async function tempDir(t: Test, prefix = 'bxchange-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A new, empty, migrated database on the PostgreSQL server of `baseUrl`, dropped at teardown. */
export async function freshPostgres(t: Test, baseUrl: string): Promise<Database> {
  return (await freshPostgresWithUrl(t, baseUrl)).database;
}

/** `freshPostgres`, with the new database's URL (to open more pools on it, like more nodes would). */
export async function freshPostgresWithUrl(t: Test, baseUrl: string): Promise<{ database: Database; url: string }> {
  const name = `bx_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ url: url.toString() });
  t.teardown(async () => {
    await database.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end({ timeout: 5 });
  });
  await database.migrate();
  return { database, url: url.toString() };
}

export async function freshPglite(t: Test): Promise<Database> {
  const database = await openDatabase({ pgliteDir: undefined });
  t.teardown(() => database.close());
  await database.migrate();
  return database;
}

/** A new bucket on the S3 server, emptied and removed at teardown. */
export async function freshBucket(t: Test, s3: S3Config): Promise<S3Config> {
  const bucket = `bx-test-${randomBytes(6).toString('hex')}`;
  const client = createS3Client(s3);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  t.teardown(async () => {
    for (;;) {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    client.destroy();
  });
  return { ...s3, bucket };
}

export interface BackendParts {
  name: string;
  database: Database;
  blobStore: BlobStore;
  dataDir: string;
  s3: S3Config | undefined;
  /** The PostgreSQL URL of `database` (PostgreSQL backend only), to open a second pool on it. */
  url?: string;
}

export interface TestApp {
  backend: string;
  app: FastifyInstance;
  services: Services;
  adminToken: string;
  /** inject with JSON body and bearer token conveniences; `token: null` sends none. */
  call(method: InjectOptions['method'], url: string, options?: { token?: string | null; body?: unknown; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
}

/**
 * Runs `body` once per backend. The newcomer without services gets the
 * PostgreSQL + S3 run reported as skipped by name; CI=true fails it instead.
 */
export async function forEachBackend(t: Test, label: string, body: (t: Test, parts: () => Promise<BackendParts>) => Promise<void>): Promise<void> {
  await t.test(`${label} [embedded: PGlite + local folder]`, async (tt) => {
    await body(tt, async () => {
      const dataDir = await tempDir(tt);
      return { name: 'embedded', database: await freshPglite(tt), blobStore: createFsBlobStore(path.join(dataDir, 'blobs')), dataDir, s3: undefined };
    });
  });
  const pg = postgresService();
  const s3 = s3Service();
  const both = {
    name: 'PostgreSQL + S3',
    value: pg.value !== undefined && s3.value !== undefined ? { url: pg.value, s3: s3.value } : undefined,
    reason: [pg.value === undefined ? pg.reason : '', s3.value === undefined ? s3.reason : ''].filter(Boolean).join('; '),
  };
  await withService(t, both, label, async (tt, { url, s3: s3Config }) => {
    await body(tt, async () => {
      const dataDir = await tempDir(tt);
      const bucket = await freshBucket(tt, s3Config);
      const blobStore = createS3BlobStore(bucket);
      tt.teardown(() => blobStore.close());
      const fresh = await freshPostgresWithUrl(tt, url);
      return { name: 'postgres+s3', database: fresh.database, blobStore, dataDir, s3: bucket, url: fresh.url };
    });
  });
}

export const ADMIN_TOKEN = `bxc_test_admin_${randomBytes(16).toString('hex')}`;

let sharedPki: Promise<Pki> | undefined;

/** One development PKI per test process (generating one costs ~0.3 s). */
export function testPki(): Promise<Pki> {
  sharedPki ??= mkdtemp(path.join(os.tmpdir(), 'bxchange-pki-')).then(async (dir) => {
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return ensureDevPki(dir);
  });
  return sharedPki;
}

export async function startApp(
  t: Test,
  parts: BackendParts,
  options: { clock?: Clock; env?: Record<string, string>; https?: import('node:https').ServerOptions } = {},
): Promise<TestApp> {
  const config: Config = loadConfig({ BXCHANGE_DATA_DIR: parts.dataDir, LOG_LEVEL: 'silent', ...options.env });
  if (parts.s3 !== undefined) config.s3 = parts.s3;
  const services = await createServices(config, {
    database: parts.database,
    blobStore: parts.blobStore,
    adminTokenHash: hashSecret(ADMIN_TOKEN),
    pki: await testPki(),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const app = await buildApp({ services, logger: false, ...(options.https === undefined ? {} : { https: options.https }) });
  t.teardown(() => app.close());
  return {
    backend: parts.name,
    app,
    services,
    adminToken: ADMIN_TOKEN,
    call(method, url, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const inject: InjectOptions = { method, url, headers };
      if (opts.body !== undefined) {
        if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) inject.payload = opts.body;
        else {
          inject.payload = JSON.stringify(opts.body);
          headers['content-type'] ??= 'application/json';
        }
      }
      return app.inject(inject);
    },
  };
}

export { inCI };
