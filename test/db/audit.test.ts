/**
 * The audit hash chain: every change appends a row chained onto the previous
 * one, with its door and trace id; concurrent appends never fork the chain;
 * an UPDATE or DELETE done directly in the database is detected and named.
 */
import { sql } from 'drizzle-orm';
import t from 'tap';
import { rowsOf } from '../../src/db/client.ts';
import { forEachBackend, startApp } from '../helpers/backends.ts';

forEachBackend(t, 'audit chain', async (t, parts) => {
  const api = await startApp(t, await parts());
  const db = api.services.database.db;

  // 40 concurrent changes over the connection pool (PostgreSQL: 10 connections).
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      api.call('POST', '/api/v1/entities', { body: { id: `entity-${i}`, kind: 'other', name: { fr: `E${i}`, nl: `E${i}` } }, headers: { 'belgov-trace-id': `trace-${i}` } }),
    ),
  );
  t.ok(results.every((r) => r.statusCode === 201), 'all created');

  t.test('the chain is intact after concurrent appends', async (t) => {
    const verdict = JSON.parse((await api.call('GET', '/api/v1/audit/verify')).body);
    t.same({ valid: verdict.valid, rows: verdict.rows }, { valid: true, rows: 40 });
    const forks = rowsOf<{ n: number }>(await db.execute(sql`SELECT count(*)::int AS n FROM (SELECT prev_hash FROM audit_events GROUP BY prev_hash HAVING count(*) > 1) f`));
    t.equal(forks[0]?.n, 0, 'no two entries share a predecessor');
  });

  t.test('entries record the door and the trace id', async (t) => {
    const rows = rowsOf<{ door: string; trace_id: string; actor: string }>(await db.execute(sql`SELECT door, trace_id, actor FROM audit_events WHERE subject = 'entity-7'`));
    t.same(rows, [{ door: 'http', trace_id: 'trace-7', actor: 'bootstrap-admin' }]);
  });

  t.test('only administrators verify the chain', async (t) => {
    const res = await api.call('GET', '/api/v1/audit/verify', { token: null });
    t.equal(res.statusCode, 401);
  });

  t.test('an UPDATE done in the database is detected at that row', async (t) => {
    const [target] = rowsOf<{ seq: number }>(await db.execute(sql`SELECT seq FROM audit_events ORDER BY seq OFFSET 10 LIMIT 1`));
    await db.execute(sql`UPDATE audit_events SET actor = 'someone-else' WHERE seq = ${target!.seq}`);
    const verdict = await api.services.auditLog.verify();
    t.equal(verdict.valid, false);
    t.equal(Number(verdict.firstBroken?.seq), Number(target!.seq));
    t.match(verdict.firstBroken?.reason, /altered/);
    await db.execute(sql`UPDATE audit_events SET actor = 'bootstrap-admin' WHERE seq = ${target!.seq}`);
    t.equal((await api.services.auditLog.verify()).valid, true, 'restoring the value repairs it');
  });

  t.test('a DELETE done in the database is detected at the following row', async (t) => {
    const rows = rowsOf<{ seq: number }>(await db.execute(sql`SELECT seq FROM audit_events ORDER BY seq OFFSET 20 LIMIT 2`));
    await db.execute(sql`DELETE FROM audit_events WHERE seq = ${rows[0]!.seq}`);
    const verdict = await api.services.auditLog.verify();
    t.equal(verdict.valid, false);
    t.equal(Number(verdict.firstBroken?.seq), Number(rows[1]!.seq));
    t.match(verdict.firstBroken?.reason, /does not follow/);
  });
});
