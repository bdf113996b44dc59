/**
 * Signed audit checkpoints (POST /api/v1/audit/checkpoints, GET …/latest,
 * verified by the real openssl) and `bxchange audit verify` (the real bin
 * script, opening the database directly like `migrate`) on both backends:
 * an intact chain exits 0; a history rewritten with every hash recomputed,
 * which the hash chain alone cannot see, is caught by the checkpoint (exit 1),
 * and so is a forged checkpoint; a suffix dropped together with its
 * checkpoints is caught only against a checkpoint kept outside the database.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { asc, desc, eq, gt, gte, lt } from 'drizzle-orm';
import t from 'tap';
import { createReceiptSigner } from '../../src/crypto/cms.ts';
import { auditEvent, chainHash, checkpoint, CHECKPOINT_ACTION, verifyAuditChain } from '../../src/db/audit.ts';
import { openDatabase, type Database, type Db } from '../../src/db/client.ts';
import { auditEvents } from '../../src/db/schema.ts';
import { forEachBackend, startApp, tempDir, testPki } from '../helpers/backends.ts';

const API = '/api/v1';
const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function bxchange(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What someone with write access to the database can do: recompute every hash from `fromSeq` on. */
async function rechain(db: Db, fromSeq: number): Promise<void> {
  const [before] = await db.select().from(auditEvents).where(lt(auditEvents.seq, fromSeq)).orderBy(desc(auditEvents.seq)).limit(1);
  let prev: string | null = before?.hash ?? null;
  const rows = await db.select().from(auditEvents).where(gte(auditEvents.seq, fromSeq)).orderBy(asc(auditEvents.seq));
  for (const row of rows) {
    const hash = chainHash(prev, auditEvent(row));
    await db.update(auditEvents).set({ prevHash: prev, hash }).where(eq(auditEvents.seq, row.seq));
    prev = hash;
  }
}

forEachBackend(t, 'signed audit checkpoints and bxchange audit verify', async (t, parts) => {
  const base = await parts();
  const dir = await tempDir(t);
  const pki = await testPki();
  const certsDir = path.join(dir, 'certs');
  const caFile = path.join(dir, 'ca.pem');
  await writeFile(caFile, pki.caCertPem);

  // The CLI opens the database of the configuration: DATABASE_URL, or the PGlite folder BXCHANGE_DATA_DIR/db.
  const embedded = base.url === undefined;
  const pgliteDir = path.join(base.dataDir, 'db');
  let database: Database = base.database;
  if (embedded) {
    database = await openDatabase({ pgliteDir });
    await database.migrate();
  }
  const cliEnv: Record<string, string> = { BXCHANGE_DATA_DIR: base.dataDir, BXCHANGE_CERTS_DIR: certsDir, ...(embedded ? {} : { DATABASE_URL: base.url! }) };
  const api = await startApp(t, { ...base, database });
  const entity = (i: number) => api.call('POST', `${API}/entities`, { body: { id: `e-${i}`, kind: 'other', name: { fr: `E${i}`, nl: `E${i}` } } });

  await t.test('checkpoints through the API: admin only, signed head, verified by openssl and by /audit/verify', async (t) => {
    t.equal((await api.call('GET', `${API}/audit/checkpoints/latest`)).statusCode, 404, 'none yet');
    for (let i = 0; i < 10; i++) t.equal((await entity(i)).statusCode, 201);
    const machine = JSON.parse((await api.call('POST', `${API}/principals`, { body: { name: 'bo', kind: 'machine' } })).body);
    const token = JSON.parse((await api.call('POST', `${API}/principals/${machine.id}/tokens`, { body: {} })).body).token;
    t.equal((await api.call('POST', `${API}/audit/checkpoints`, { token })).statusCode, 403);
    t.equal((await api.call('GET', `${API}/audit/checkpoints/latest`, { token })).statusCode, 403);
    t.equal((await api.call('POST', `${API}/audit/checkpoints`, { token: null })).statusCode, 401);

    const made = await api.call('POST', `${API}/audit/checkpoints`, { headers: { 'belgov-trace-id': 'cp-1' } });
    t.equal(made.statusCode, 201);
    const cp = JSON.parse(made.body);
    t.equal(made.headers.location, `${API}/audit/checkpoints/${cp.seq}`);
    t.match(cp, { head: { type: 'bxchange.auditCheckpoint', issuer: 'bxchange', seq: cp.seq - 1 } });
    const [signed] = await database.db.select().from(auditEvents).where(eq(auditEvents.seq, cp.head.seq));
    t.equal(cp.head.hash, signed!.hash, 'it signs the hash of the entry before it');
    const [row] = await database.db.select().from(auditEvents).where(eq(auditEvents.seq, cp.seq));
    t.match(row, { action: CHECKPOINT_ACTION, actor: 'bootstrap-admin', door: 'http', traceId: 'cp-1' }, 'it is an audit entry itself');
    t.same(JSON.parse((await api.call('GET', `${API}/audit/checkpoints/latest`)).body), cp);
    t.same(JSON.parse((await api.call('GET', `${API}/audit/checkpoints/${cp.seq}`)).body), cp);
    t.equal((await api.call('GET', `${API}/audit/checkpoints/${cp.head.seq}`)).statusCode, 404, 'another entry is not a checkpoint');

    await writeFile(path.join(dir, 'head.json'), cp.content);
    await writeFile(path.join(dir, 'head.p7s'), Buffer.from(cp.signature, 'base64'));
    const ossl = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', path.join(dir, 'head.p7s'), '-content', path.join(dir, 'head.json'), '-CAfile', caFile, '-out', '/dev/null'], { encoding: 'utf8' });
    t.equal(ossl.status, 0, `openssl verifies the checkpoint: ${ossl.stderr.trim()}`);

    const verdict = JSON.parse((await api.call('GET', `${API}/audit/verify`)).body);
    t.match(verdict, { valid: true, checkpoints: [{ source: 'chain', seq: cp.seq, valid: true, signatureChecked: true, signer: /receipt signer/ }] });
  });

  let external = '';
  await t.test('the scheduled form signs only when something happened since the last checkpoint', async (t) => {
    const signer = createReceiptSigner(pki);
    const idle = await checkpoint(database.db, signer, { issuer: 'bxchange', onlyIfChanged: true });
    t.equal(idle.created, false, 'nothing new: the last checkpoint is returned');
    for (let i = 10; i < 20; i++) await entity(i);
    const second = await checkpoint(database.db, signer, { issuer: 'bxchange', onlyIfChanged: true });
    t.equal(second.created, true);
    t.match(second.checkpoint, { head: { seq: second.checkpoint.seq - 1 } });
    // An auditor keeps this one outside the platform.
    external = path.join(dir, 'checkpoint.json');
    await writeFile(external, (await api.call('GET', `${API}/audit/checkpoints/latest`)).body);
    for (let i = 20; i < 25; i++) await entity(i);
  });

  // Hand the database over to the CLI (PGlite: one process at a time).
  await api.app.close();
  if (embedded) await database.close();
  const withDb = async <T>(work: (db: Db) => Promise<T>): Promise<T> => {
    if (!embedded) return work(database.db);
    const db = await openDatabase({ pgliteDir });
    try {
      return await work(db.db);
    } finally {
      await db.close();
    }
  };
  const verify = (...args: string[]) => bxchange(['audit', 'verify', '--ca', caFile, ...args], cliEnv);

  await t.test('an intact chain: exit 0, checkpoint signatures valid', async (t) => {
    const res = await verify();
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, /^audit chain valid: \d+ entries/);
    t.match(res.stdout, /latest checkpoint #\d+ \(entry #\d+ at .*\): valid, signed by .*receipt signer/);
    const given = await verify('--checkpoint', external, '--json');
    t.equal(given.code, 0, given.stderr);
    t.match(JSON.parse(given.stdout), { valid: true, checkpoints: [{ source: 'chain', valid: true }, { source: 'given', valid: true }] });
    const noCa = await bxchange(['audit', 'verify'], cliEnv); // BXCHANGE_CERTS_DIR has no ca.pem
    t.equal(noCa.code, 0, noCa.stderr);
    t.match(noCa.stdout, /signature NOT checked/);
  });

  await t.test('a rewritten history with recomputed hashes is caught by the checkpoint', async (t) => {
    const [target] = await withDb((db) => db.select().from(auditEvents).where(eq(auditEvents.subject, 'e-3')));
    await withDb(async (db) => {
      await db.update(auditEvents).set({ actor: 'mallory' }).where(eq(auditEvents.seq, target!.seq));
      await rechain(db, target!.seq);
    });
    const chainOnly = await withDb((db) => verifyAuditChain(db, { batch: 7 }));
    t.equal(chainOnly.checkpoints?.[0]?.valid, false, 'even without the CA, the checkpointed hash no longer matches');
    const res = await verify();
    t.equal(res.code, 1);
    t.match(res.stdout, /^audit chain BROKEN at entry #\d+: checkpoint #\d+: entry #\d+ no longer has the hash the checkpoint signed/);

    // The forger also puts the new hash into the latest checkpoint: its signature then fails.
    await withDb(async (db) => {
      const latest = (await db.select().from(auditEvents).where(eq(auditEvents.action, CHECKPOINT_ACTION)).orderBy(asc(auditEvents.seq))).at(-1)!;
      const [entry] = await db.select().from(auditEvents).where(eq(auditEvents.seq, (latest.data as any).head.seq));
      const data = { ...(latest.data as any), head: { ...(latest.data as any).head, hash: entry!.hash } };
      await db.update(auditEvents).set({ data }).where(eq(auditEvents.seq, latest.seq));
      await rechain(db, latest.seq);
    });
    const forged = await verify();
    t.equal(forged.code, 1);
    t.match(forged.stdout, /INVALID: its signature does not verify/);

    // Repair for the next test: the original actor, hashes recomputed, the checkpoint's original hash back.
    await withDb(async (db) => {
      await db.update(auditEvents).set({ actor: target!.actor }).where(eq(auditEvents.seq, target!.seq));
      await rechain(db, target!.seq);
      const latest = (await db.select().from(auditEvents).where(eq(auditEvents.action, CHECKPOINT_ACTION)).orderBy(asc(auditEvents.seq))).at(-1)!;
      const [entry] = await db.select().from(auditEvents).where(eq(auditEvents.seq, (latest.data as any).head.seq));
      await db.update(auditEvents).set({ data: { ...(latest.data as any), head: { ...(latest.data as any).head, hash: entry!.hash } } }).where(eq(auditEvents.seq, latest.seq));
      await rechain(db, latest.seq);
    });
    t.equal((await verify()).code, 0, 'repaired');
  });

  await t.test('a suffix dropped with its checkpoints: invisible from the database alone, caught by a kept checkpoint', async (t) => {
    const first = await withDb(async (db) => (await db.select().from(auditEvents).where(eq(auditEvents.action, CHECKPOINT_ACTION)).orderBy(asc(auditEvents.seq)))[0]!);
    await withDb((db) => db.delete(auditEvents).where(gt(auditEvents.seq, first.seq + 3)));
    const alone = await verify();
    t.equal(alone.code, 0, 'documented limitation: the earlier checkpoint still matches the shorter chain');
    const kept = await verify('--checkpoint', external);
    t.equal(kept.code, 1);
    t.match(kept.stdout, /given checkpoint #\d+ .*INVALID: the chain no longer contains entry #\d+/);
  });

  await t.test('usage: a file that is not a checkpoint exits 2', async (t) => {
    const res = await verify('--checkpoint', caFile);
    t.equal(res.code, 2);
    t.match(res.stderr, /not JSON/);
  });
});
