/**
 * The bearer-token cache (db/credential-cache.ts): a token is read from the
 * database once and then served from memory, and forgotten the moment its
 * credential, principal or memberships change, whether the change comes
 * through this server, or (PostgreSQL) from another node or plain SQL, by
 * the notification of migration 0012's triggers. While the listening
 * connection is down nothing is served from memory. The rules of the cache
 * itself (a lookup overtaken by a change, the age bound, the size bound,
 * frozen shared objects) are checked on a repository whose lookup the test
 * holds open.
 */
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import t, { type Test } from 'tap';
import { cacheCredentials } from '../../src/db/credential-cache.ts';
import type { Principal, TokenInfo } from '../../src/domain/model.ts';
import type { DirectoryRepository } from '../../src/domain/ports.ts';
import { forEachBackend, startApp, type TestApp } from '../helpers/backends.ts';
import { json } from '../helpers/problem.ts';

/** Polls `condition` every 20 ms until it holds (a wait for an event, not a timing assertion). */
async function until(condition: () => boolean | Promise<boolean>, what: string, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`still waiting after ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function seed(api: TestApp, name: string) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  const exists = await api.call('GET', '/api/v1/entities/ixelles');
  if (exists.statusCode === 404) {
    await post('/api/v1/entities', { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
    await post('/api/v1/entities/ixelles/mailboxes', { name: 'secretariat' });
  }
  const principal = await post('/api/v1/principals', { name, kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read'] }] });
  const token = await post(`/api/v1/principals/${principal.id}/tokens`, {});
  return { principalId: principal.id as string, token: token.token as string, tokenId: token.id as string };
}

/**
 * Waits until the cache has been told of every change committed so far: this
 * server's own writes come back as notifications too, a little later, and
 * empty the cache once more. A listener receives notifications in commit
 * order, so once a marker sent now has arrived, so have they.
 */
let markers = 0;
async function settled(api: TestApp): Promise<void> {
  const marker = `test-marker-${++markers}`;
  await api.services.database.db.execute(sql`SELECT pg_notify('bx_credentials', ${marker})`);
  await until(() => api.services.credentialCache.stats().lastNotification === marker, `the notification ${marker}`);
}

const INBOX = '/api/v1/mailboxes/secretariat@ixelles/envelopes';

/** Two listings with the token (the first reads the database, the second is served from memory), and the entry kept. */
async function warm(t: Test, api: TestApp, token: string): Promise<void> {
  t.equal((await api.call('GET', INBOX, { token })).statusCode, 200);
  t.equal((await api.call('GET', INBOX, { token })).statusCode, 200);
  t.ok(api.services.credentialCache.stats().entries > 0, 'kept');
}

forEachBackend(t, 'credential cache', async (t, parts) => {
  const backend = await parts();
  const api = await startApp(t, backend);
  const cache = api.services.credentialCache;
  await until(() => cache.stats().active, 'the cache listens');

  t.test('a token is read from the database once, then served from memory', async (t) => {
    const s = await seed(api, 'cache-reader');
    await settled(api);
    const before = cache.stats();
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 200);
    t.equal(cache.stats().misses, before.misses + 1, 'the first request reads the database');
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 200);
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 200);
    t.equal(cache.stats().misses, before.misses + 1, 'the next ones do not');
    t.equal(cache.stats().hits, before.hits + 2);
    const unknown = await api.call('GET', INBOX, { token: `bxc_${'0'.repeat(43)}` });
    t.equal(unknown.statusCode, 401);
    t.equal(cache.stats().entries, 1, 'an unknown secret is not kept');
  });

  t.test('a revocation through the API refuses the token at once', async (t) => {
    const s = await seed(api, 'cache-revoked');
    await settled(api);
    await warm(t, api, s.token);
    const revoked = await api.call('DELETE', `/api/v1/principals/${s.principalId}/tokens/${s.tokenId}`);
    t.equal(revoked.statusCode, 204);
    // Not waiting for the notification: the revocation through this server empties the cache itself.
    const refused = await api.call('GET', INBOX, { token: s.token });
    t.equal(refused.statusCode, 401);
    t.match(json(refused).type, /invalidAccessToken$/);
  });

  t.test('a membership or a deactivation through the API applies at once', async (t) => {
    const s = await seed(api, 'cache-member');
    await settled(api);
    await warm(t, api, s.token);
    t.equal((await api.call('PATCH', `/api/v1/principals/${s.principalId}`, { body: { memberships: [] } })).statusCode, 200);
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 404, 'no longer a member of the mailbox');
    t.equal((await api.call('PATCH', `/api/v1/principals/${s.principalId}`, { body: { memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read'] }] } })).statusCode, 200);
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 200, 'a member again');
    await settled(api);
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 200);
    t.ok(cache.stats().entries > 0, 'kept');
    t.equal((await api.call('PATCH', `/api/v1/principals/${s.principalId}`, { body: { active: false } })).statusCode, 200);
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 401, 'deactivated');
  });

  if (backend.url === undefined) return;
  const url = backend.url;
  // Another node, the admin CLI or an operator with psql: a session of its own on the same database.
  const other = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => other.end({ timeout: 1 }));

  t.test('a change by another session reaches the cache by notification', async (t) => {
    const s = await seed(api, 'cache-other-node');
    await settled(api);
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 200);
    t.ok(cache.stats().entries > 0);
    await other`UPDATE credentials SET revoked_at = now() WHERE id = ${s.tokenId}`;
    await until(() => cache.stats().entries === 0, 'the notification empties the cache');
    t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 401, 'revoked by plain SQL');

    const m = await seed(api, 'cache-other-member');
    await settled(api);
    t.equal((await api.call('GET', INBOX, { token: m.token })).statusCode, 200);
    await other`DELETE FROM memberships WHERE principal_id = ${m.principalId}`;
    await until(() => cache.stats().entries === 0, 'the notification empties the cache');
    t.equal((await api.call('GET', INBOX, { token: m.token })).statusCode, 404, 'membership removed by plain SQL');
  });

  t.test("recording a token's use does not empty the cache", async (t) => {
    const s = await seed(api, 'cache-touch');
    await settled(api);
    await warm(t, api, s.token);
    const heard = cache.stats().notifications;
    await other`UPDATE credentials SET last_used_at = now() WHERE id = ${s.tokenId}`;
    // Once a marker sent after it has arrived, a notification of that update would have too (commit order).
    await settled(api);
    t.equal(cache.stats().notifications, heard + 1, 'the marker only: the update notified nobody');
    const before = cache.stats().notifications;
    await other`UPDATE principals SET display_name = 'x' WHERE id = ${s.principalId}`;
    await settled(api);
    t.equal(cache.stats().notifications, before + 2, 'a principal change does notify');
  });

  t.test('while the listening connection is down nothing is served from memory, and the cache comes back', async (t) => {
    const s = await seed(api, 'cache-outage');
    await settled(api);
    await warm(t, api, s.token);
    const [{ db }] = await other<[{ db: string }]>`SELECT current_database() AS db`;
    // The outage: the listening backend is killed and cannot reconnect; the app's open pool still works.
    const admin = postgres(url.replace(/\/[^/?]*(\?|$)/, '/postgres$1'), { max: 1, onnotice: () => {} });
    t.teardown(() => admin.end({ timeout: 1 }));
    await admin.unsafe(`ALTER DATABASE "${db}" WITH ALLOW_CONNECTIONS false`);
    try {
      const killed = await admin`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = ${db} AND application_name = 'bxchange-listen'`;
      t.equal(killed.length, 1, 'one listening connection');
      await until(() => !cache.stats().active, 'the cache sees the connection drop');
      t.equal(cache.stats().entries, 0, 'what it kept is forgotten');
      await other`UPDATE credentials SET revoked_at = now() WHERE id = ${s.tokenId}`;
      t.equal((await api.call('GET', INBOX, { token: s.token })).statusCode, 401, 'a revocation nobody was told about is honoured');
    } finally {
      await admin.unsafe(`ALTER DATABASE "${db}" WITH ALLOW_CONNECTIONS true`);
    }
    await until(() => cache.stats().active, 'the listener reconnects by itself');
    const fresh = await seed(api, 'cache-after-outage');
    await settled(api);
    t.equal((await api.call('GET', INBOX, { token: fresh.token })).statusCode, 200);
    const hits = cache.stats().hits;
    t.equal((await api.call('GET', INBOX, { token: fresh.token })).statusCode, 200);
    t.equal(cache.stats().hits, hits + 1, 'served from memory again');
    await other`UPDATE credentials SET revoked_at = now() WHERE id = ${fresh.tokenId}`;
    await until(() => cache.stats().entries === 0, 'notifications flow again');
    t.equal((await api.call('GET', INBOX, { token: fresh.token })).statusCode, 401);
  });
});

// ---------------------------------------------------------------- the cache's own rules

const principal: Principal = {
  id: 'p1',
  name: 'p',
  kind: 'machine',
  displayName: null,
  oidcSubject: null,
  capabilities: [],
  active: true,
  memberships: [{ mailbox: 'a@b', roles: ['read'] }],
  createdAt: new Date(0),
  deactivatedAt: null,
};

function fakeRepository() {
  const token: TokenInfo = { id: 't1', principalId: 'p1', label: null, createdAt: new Date(0), expiresAt: null, revokedAt: null, lastUsedAt: null };
  let gate: Promise<void> | undefined;
  let reads = 0;
  const repository = {
    async findTokenBySecretHash(hash: string) {
      reads++;
      if (gate !== undefined) await gate;
      return hash.startsWith('known') ? { token: { ...token }, principal: structuredClone(principal) } : null;
    },
    async touchToken() {},
    async revokeToken() {
      return true;
    },
  } as unknown as DirectoryRepository;
  return {
    repository,
    reads: () => reads,
    hold() {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

t.test('the cache keeps nothing before it listens, nor after the connection is lost', async (t) => {
  const fake = fakeRepository();
  const cache = cacheCredentials(fake.repository);
  await cache.repository.findTokenBySecretHash('known-1');
  await cache.repository.findTokenBySecretHash('known-1');
  t.equal(fake.reads(), 2);
  t.equal(cache.stats().entries, 0);
  cache.handlers.listening();
  await cache.repository.findTokenBySecretHash('known-1');
  await cache.repository.findTokenBySecretHash('known-1');
  t.equal(fake.reads(), 3);
  cache.handlers.lost();
  t.equal(cache.stats().entries, 0);
  await cache.repository.findTokenBySecretHash('known-1');
  t.equal(fake.reads(), 4);
  t.equal(cache.stats().entries, 0);
});

t.test('a lookup overtaken by a change is not kept', async (t) => {
  const fake = fakeRepository();
  const cache = cacheCredentials(fake.repository);
  cache.handlers.listening();
  const release = fake.hold();
  const pending = cache.repository.findTokenBySecretHash('known-1');
  cache.handlers.notify('credentials');
  release();
  t.ok(await pending, 'the lookup itself answers');
  t.equal(cache.stats().entries, 0, 'but what it read may predate the change');

  const release2 = fake.hold();
  const pending2 = cache.repository.findTokenBySecretHash('known-1');
  const revoking = cache.repository.revokeToken('p1', 't1', new Date(), { action: 'x' } as never);
  release2();
  await Promise.all([pending2, revoking]);
  t.equal(cache.stats().entries, 0, 'a write through this repository counts as a change');
});

t.test('entries are read again after the age bound, and the oldest go first', async (t) => {
  let clock = 0;
  const fake = fakeRepository();
  const cache = cacheCredentials(fake.repository, { maxAgeMs: 1000, maxEntries: 2, now: () => clock });
  cache.handlers.listening();
  await cache.repository.findTokenBySecretHash('known-1');
  clock = 999;
  await cache.repository.findTokenBySecretHash('known-1');
  t.equal(fake.reads(), 1);
  clock = 1000;
  await cache.repository.findTokenBySecretHash('known-1');
  t.equal(fake.reads(), 2, 'read again at the age bound');
  await cache.repository.findTokenBySecretHash('known-2');
  await cache.repository.findTokenBySecretHash('known-3');
  t.equal(cache.stats().entries, 2);
  await cache.repository.findTokenBySecretHash('known-1');
  t.equal(fake.reads(), 5, 'the oldest was let go');
});

t.test('what is shared between requests cannot be changed by one of them, and the last use is remembered', async (t) => {
  const fake = fakeRepository();
  const cache = cacheCredentials(fake.repository);
  cache.handlers.listening();
  await cache.repository.findTokenBySecretHash('known-1');
  const found = (await cache.repository.findTokenBySecretHash('known-1'))!;
  t.throws(() => {
    (found.principal.memberships as Array<unknown>).push({ mailbox: 'x@y', roles: ['read'] });
  }, TypeError);
  t.throws(() => {
    (found.principal as { active: boolean }).active = false;
  }, TypeError);
  t.equal(found.token.lastUsedAt, null);
  const at = new Date('2026-12-06T10:00:00Z');
  await cache.repository.touchToken('t1', at);
  t.same((await cache.repository.findTokenBySecretHash('known-1'))!.token.lastUsedAt, at);
  t.equal(fake.reads(), 1);
});
