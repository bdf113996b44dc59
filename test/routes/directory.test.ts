/**
 * The directory through its HTTP door, on every backend: entities,
 * mailboxes, principals, memberships and tokens, with their authorisation
 * rules and the problem answered for each bad input.
 */
import t from 'tap';
import { json, problem } from '../helpers/problem.ts';
import { forEachBackend, startApp, type TestApp } from '../helpers/backends.ts';

const IXELLES = {
  id: 'ixelles',
  kind: 'commune',
  name: { fr: 'Ixelles', nl: 'Elsene' },
  enterpriseNumber: 'BE 0207.373.429',
  nisCode: '21009',
};



async function seed(api: TestApp) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  await post('/api/v1/entities', IXELLES);
  await post('/api/v1/entities', { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
  await post('/api/v1/entities/ixelles/mailboxes', { name: 'secretariat' });
  await post('/api/v1/entities/ixelles/mailboxes', { name: 'finances' });
  await post('/api/v1/entities/uccle/mailboxes', { name: 'secretariat' });
  const clerk = await post('/api/v1/principals', {
    name: 'ixelles-clerk',
    kind: 'user',
    memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }],
  });
  const uccle = await post('/api/v1/principals', {
    name: 'uccle-backoffice',
    kind: 'machine',
    memberships: [{ mailbox: 'secretariat@uccle', roles: ['read', 'send', 'manage'] }],
  });
  const clerkToken = await post(`/api/v1/principals/${clerk.id}/tokens`, {});
  const uccleToken = await post(`/api/v1/principals/${uccle.id}/tokens`, { label: 'cron' });
  return { clerk, uccle, clerkToken: clerkToken.token as string, clerkTokenId: clerkToken.id as string, uccleToken: uccleToken.token as string };
}

forEachBackend(t, 'directory', async (t, parts) => {
  let now = new Date();
  const api = await startApp(t, await parts(), { clock: { now: () => now } });
  const s = await seed(api);

  t.test('an entity is created with its enterprise number normalised', async (t) => {
    const res = await api.call('GET', '/api/v1/entities/ixelles', { token: s.clerkToken });
    t.equal(res.statusCode, 200);
    t.match(json(res), {
      id: 'ixelles',
      kind: 'commune',
      name: { fr: 'Ixelles', nl: 'Elsene' },
      enterpriseNumber: '0207373429',
      nisCode: '21009',
      href: '/api/v1/entities/ixelles',
    });
  });

  t.test('the old 9-digit enterprise number form is accepted and stored with its leading 0', async (t) => {
    const res = await api.call('POST', '/api/v1/entities', {
      body: { id: 'old-form', kind: 'other', name: { fr: 'Ancien', nl: 'Oud' }, enterpriseNumber: '207.373.429' },
    });
    // Same number as Ixelles: the normalised forms collide, which proves normalisation.
    problem(t, res, 409, 'urn:problem-type:bxchange:entityExists');
  });

  t.test('an enterprise number failing the modulo-97 check is refused and nothing is stored', async (t) => {
    const res = await api.call('POST', '/api/v1/entities', {
      body: { id: 'bad-kbo', kind: 'other', name: { fr: 'X', nl: 'X' }, enterpriseNumber: 'BE 0207.373.428' },
    });
    const body = problem(t, res, 400, 'urn:problem-type:belgif:badRequest');
    t.match(body.issues, [{ in: 'body', name: '/enterpriseNumber' }]);
    t.equal((await api.call('GET', '/api/v1/entities/bad-kbo')).statusCode, 404);
  });

  t.test('malformed JSON, unknown properties and wrong types name the field', async (t) => {
    const malformed = await api.call('POST', '/api/v1/entities', { body: '{"id": "x",', headers: { 'content-type': 'application/json' } });
    problem(t, malformed, 400, 'urn:problem-type:belgif:badRequest');

    const unknown = await api.call('POST', '/api/v1/entities', { body: { ...IXELLES, id: 'zz', enterpriseNumber: null, nisCode: null, kind: 'other', colour: 'blue' } });
    t.match(problem(t, unknown, 400, 'urn:problem-type:belgif:badRequest').issues, [{ in: 'body', name: '/colour' }]);

    const types = await api.call('POST', '/api/v1/entities', { body: { id: 42, kind: 'village', name: { fr: 'A' } } });
    const issues = problem(t, types, 400, 'urn:problem-type:belgif:badRequest').issues.map((i: any) => i.name);
    t.ok(issues.includes('/id'), 'names /id');
    t.ok(issues.includes('/kind'), 'names /kind');
    t.ok(issues.includes('/name/nl'), 'names the missing /name/nl');
    const list = json(await api.call('GET', '/api/v1/entities'));
    t.same(list.items.map((e: any) => e.id), ['ixelles', 'uccle'], 'nothing was stored');
  });

  t.test('an oversized body is refused with 413', async (t) => {
    const big = { ...IXELLES, id: 'big', name: { fr: 'x'.repeat(2 * 1024 * 1024), nl: 'y' } };
    problem(t, await api.call('POST', '/api/v1/entities', { body: big }), 413, 'urn:problem-type:belgif:payloadTooLarge');
  });

  t.test('a duplicate entity or mailbox is a 409 and leaves the original intact', async (t) => {
    const dup = await api.call('POST', '/api/v1/entities', { body: { id: 'ixelles', kind: 'cpas', name: { fr: 'Autre', nl: 'Ander' } } });
    t.match(problem(t, dup, 409, 'urn:problem-type:bxchange:entityExists').issues, [{ name: '/id' }]);
    t.equal(json(await api.call('GET', '/api/v1/entities/ixelles')).kind, 'commune');
    const dupBox = await api.call('POST', '/api/v1/entities/ixelles/mailboxes', { body: { name: 'secretariat' } });
    problem(t, dupBox, 409, 'urn:problem-type:bxchange:mailboxExists');
  });

  t.test('a mailbox name or address that is not a slug is refused', async (t) => {
    problem(t, await api.call('POST', '/api/v1/entities/ixelles/mailboxes', { body: { name: 'Secrétariat' } }), 400, 'urn:problem-type:belgif:badRequest');
    problem(t, await api.call('GET', '/api/v1/mailboxes/not-an-address'), 400, 'urn:problem-type:belgif:badRequest');
    const bad = await api.call('POST', '/api/v1/principals', {
      body: { name: 'p1', kind: 'user', memberships: [{ mailbox: 'secretariat', roles: ['read'] }] },
    });
    t.match(problem(t, bad, 400, 'urn:problem-type:belgif:badRequest').issues, [{ name: '/memberships/0/mailbox' }]);
    const ghost = await api.call('POST', '/api/v1/principals', {
      body: { name: 'p2', kind: 'user', memberships: [{ mailbox: 'nobody@ixelles', roles: ['read'] }] },
    });
    t.match(problem(t, ghost, 400, 'urn:problem-type:belgif:badRequest').issues, [{ name: '/memberships/0/mailbox', detail: /No such mailbox/ }]);
  });

  t.test('without a token the API answers 401 with WWW-Authenticate', async (t) => {
    const res = await api.call('GET', '/api/v1/entities', { token: null });
    problem(t, res, 401, 'urn:problem-type:belgif:noAccessToken');
    t.match(res.headers['www-authenticate'], /^Bearer/);
    problem(t, await api.call('GET', '/api/v1/entities', { token: 'bxc_made_up' }), 401, 'urn:problem-type:belgif:invalidAccessToken');
  });

  t.test('a member sees its own mailboxes with its roles, not the others', async (t) => {
    const res = await api.call('GET', '/api/v1/mailboxes', { token: s.clerkToken });
    t.same(json(res).items.map((m: any) => [m.address, m.roles]), [['secretariat@ixelles', ['read', 'send']]]);
    t.equal((await api.call('GET', '/api/v1/mailboxes/secretariat@ixelles', { token: s.clerkToken })).statusCode, 200);
    problem(t, await api.call('GET', '/api/v1/mailboxes/secretariat@uccle', { token: s.clerkToken }), 404, 'urn:problem-type:belgif:resourceNotFound');
  });

  t.test('a non-administrator cannot change the directory (403) and nothing changes', async (t) => {
    problem(t, await api.call('POST', '/api/v1/entities', { token: s.clerkToken, body: { id: 'evil', kind: 'other', name: { fr: 'E', nl: 'E' } } }), 403, 'urn:problem-type:bxchange:forbidden');
    problem(t, await api.call('POST', '/api/v1/entities/uccle/mailboxes', { token: s.clerkToken, body: { name: 'evil' } }), 403, 'urn:problem-type:bxchange:forbidden');
    problem(t, await api.call('POST', '/api/v1/principals', { token: s.clerkToken, body: { name: 'evil', kind: 'user' } }), 403, 'urn:problem-type:bxchange:forbidden');
    problem(t, await api.call('GET', '/api/v1/principals', { token: s.clerkToken }), 403, 'urn:problem-type:bxchange:forbidden');
    t.equal((await api.call('GET', '/api/v1/entities/evil')).statusCode, 404);
  });

  t.test("a principal's token does not open another principal (404, existence does not leak)", async (t) => {
    problem(t, await api.call('GET', `/api/v1/principals/${s.uccle.id}`, { token: s.clerkToken }), 404, 'urn:problem-type:belgif:resourceNotFound');
    problem(t, await api.call('GET', `/api/v1/principals/${s.uccle.id}/tokens`, { token: s.clerkToken }), 404, 'urn:problem-type:belgif:resourceNotFound');
    problem(t, await api.call('POST', `/api/v1/principals/${s.uccle.id}/tokens`, { token: s.clerkToken, body: {} }), 404, 'urn:problem-type:belgif:resourceNotFound');
    const self = await api.call('GET', `/api/v1/principals/${s.clerk.id}`, { token: s.clerkToken });
    t.equal(self.statusCode, 200);
    t.equal(json(self).name, 'ixelles-clerk');
    const me = json(await api.call('GET', '/api/v1/me', { token: s.uccleToken }));
    t.equal(me.name, 'uccle-backoffice');
  });

  t.test('tokens are shown once, listed without secret, and a revoked token stops at once', async (t) => {
    const issued = json(await api.call('POST', `/api/v1/principals/${s.clerk.id}/tokens`, { body: { label: 'laptop' } }));
    t.match(issued.token, /^bxc_[A-Za-z0-9_-]{43}$/, '256-bit token');
    t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
    const listed = await api.call('GET', `/api/v1/principals/${s.clerk.id}/tokens`, { token: s.clerkToken });
    t.equal(listed.statusCode, 200);
    t.notMatch(listed.body, issued.token, 'the secret is never listed');
    t.ok(json(listed).items.some((x: any) => x.id === issued.id && x.label === 'laptop'));
    const rows = await api.services.database.db.execute('SELECT secret_hash FROM credentials' as any);
    t.notMatch(JSON.stringify(rows), issued.token.slice(4), 'only a hash is stored');

    t.equal((await api.call('DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${issued.id}`)).statusCode, 204);
    problem(t, await api.call('GET', '/api/v1/me', { token: issued.token }), 401, 'urn:problem-type:belgif:invalidAccessToken');
    t.equal((await api.call('GET', '/api/v1/me', { token: s.clerkToken })).statusCode, 200, 'other tokens still work');
    problem(t, await api.call('DELETE', `/api/v1/principals/${s.uccle.id}/tokens/${issued.id}`), 404, 'urn:problem-type:belgif:resourceNotFound');
  });

  t.test('an expired token is refused', async (t) => {
    const expiresAt = new Date(now.getTime() + 3600_000).toISOString();
    const issued = json(await api.call('POST', `/api/v1/principals/${s.clerk.id}/tokens`, { body: { expiresAt } }));
    t.equal(issued.expiresAt, expiresAt);
    t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
    const saved = now;
    now = new Date(saved.getTime() + 2 * 3600_000);
    problem(t, await api.call('GET', '/api/v1/me', { token: issued.token }), 401, 'urn:problem-type:belgif:invalidAccessToken');
    now = saved;
    const past = await api.call('POST', `/api/v1/principals/${s.clerk.id}/tokens`, { body: { expiresAt: '2001-01-01T00:00:00Z' } });
    t.match(problem(t, past, 400, 'urn:problem-type:belgif:badRequest').issues, [{ name: '/expiresAt' }]);
  });

  t.test("a token's last use is recorded at most once a minute, served from memory or not", async (t) => {
    const issued = json(await api.call('POST', `/api/v1/principals/${s.clerk.id}/tokens`, { body: { label: 'use' } }));
    const lastUse = async () => {
      const items = json(await api.call('GET', `/api/v1/principals/${s.clerk.id}/tokens`)).items as Array<{ id: string; lastUsedAt: string | null }>;
      return items.find((x) => x.id === issued.id)!.lastUsedAt;
    };
    t.equal(await lastUse(), null, 'never used');
    const saved = now;
    try {
      const first = new Date(Math.floor(saved.getTime() / 1000) * 1000 + 1000);
      now = first;
      t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
      t.equal(await lastUse(), first.toISOString(), 'the first use is recorded');
      now = new Date(first.getTime() + 59_000);
      t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
      t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
      t.equal(await lastUse(), first.toISOString(), 'not again within the minute');
      now = new Date(first.getTime() + 60_000);
      t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
      t.equal(await lastUse(), now.toISOString(), 'a minute later, again');
      now = new Date(first.getTime() + 61_000);
      t.equal((await api.call('GET', '/api/v1/me', { token: issued.token })).statusCode, 200);
      t.equal(await lastUse(), new Date(first.getTime() + 60_000).toISOString(), 'and then not within that minute');
    } finally {
      now = saved;
    }
  });

  t.test('memberships change as a whole, and deactivation stops every token at once', async (t) => {
    const changed = await api.call('PATCH', `/api/v1/principals/${s.clerk.id}`, {
      body: { memberships: [{ mailbox: 'finances@ixelles', roles: ['read'] }, { mailbox: 'secretariat@ixelles', roles: ['send', 'read', 'manage'] }] },
    });
    t.equal(changed.statusCode, 200);
    const mine = json(await api.call('GET', '/api/v1/mailboxes', { token: s.clerkToken })).items;
    t.same(mine.map((m: any) => [m.address, m.roles]), [['finances@ixelles', ['read']], ['secretariat@ixelles', ['manage', 'read', 'send']]]);
    problem(t, await api.call('PATCH', `/api/v1/principals/${s.clerk.id}`, { token: s.clerkToken, body: { active: true } }), 403, 'urn:problem-type:bxchange:forbidden');

    const off = await api.call('PATCH', `/api/v1/principals/${s.uccle.id}`, { body: { active: false } });
    t.equal(json(off).active, false);
    t.type(json(off).deactivatedAt, 'string');
    problem(t, await api.call('GET', '/api/v1/me', { token: s.uccleToken }), 401, 'urn:problem-type:belgif:invalidAccessToken');
    problem(t, await api.call('POST', `/api/v1/principals/${s.uccle.id}/tokens`, { body: {} }), 409, 'urn:problem-type:bxchange:conflict');
    await api.call('PATCH', `/api/v1/principals/${s.uccle.id}`, { body: { active: true } });
    t.equal((await api.call('GET', '/api/v1/me', { token: s.uccleToken })).statusCode, 200, 'reactivated');
  });

  t.test('an entity gets an end date; a date before its start is refused', async (t) => {
    const ended = await api.call('PATCH', '/api/v1/entities/uccle', { body: { validFrom: '1795-01-01', validUntil: '2030-12-31' } });
    t.equal(ended.statusCode, 200);
    t.match(json(ended), { validFrom: '1795-01-01', validUntil: '2030-12-31' });
    const bad = await api.call('PATCH', '/api/v1/entities/uccle', { body: { validUntil: '1700-01-01' } });
    t.match(problem(t, bad, 400, 'urn:problem-type:belgif:badRequest').issues, [{ name: '/validUntil' }]);
    t.equal(json(await api.call('GET', '/api/v1/entities/uccle')).validUntil, '2030-12-31', 'unchanged');
    problem(t, await api.call('PATCH', '/api/v1/entities/nowhere', { body: { validUntil: '2030-01-01' } }), 404, 'urn:problem-type:belgif:resourceNotFound');
  });

  t.test('lists are paginated with an opaque cursor and a next link', async (t) => {
    for (let i = 0; i < 5; i++) {
      await api.call('POST', '/api/v1/entities', { body: { id: `regie-${i}`, kind: 'regie', name: { fr: `Régie ${i}`, nl: `Regie ${i}` } } });
    }
    const seen: string[] = [];
    let url: string | undefined = '/api/v1/entities?limit=3';
    let pages = 0;
    while (url !== undefined) {
      const body = json(await api.call('GET', url));
      seen.push(...body.items.map((e: any) => e.id));
      url = body.next;
      pages++;
    }
    t.equal(pages, 3);
    t.same(seen, [...seen].sort(), 'ordered');
    t.equal(new Set(seen).size, seen.length, 'no duplicates');
    t.ok(seen.includes('regie-4') && seen.includes('ixelles'), 'nothing skipped');
    problem(t, await api.call('GET', '/api/v1/entities?cursor=garbage'), 400, 'urn:problem-type:belgif:badRequest');
    problem(t, await api.call('GET', '/api/v1/entities?limit=999'), 400, 'urn:problem-type:belgif:badRequest');
  });

  t.test('every change left a hash-chained audit entry', async (t) => {
    const result: any = await api.services.database.db.execute('SELECT action, prev_hash, hash FROM audit_events ORDER BY seq' as any);
    const rows: any[] = Array.isArray(result) ? result : result.rows;
    t.ok(rows.length >= 10);
    for (let i = 1; i < rows.length; i++) t.equal(rows[i].prev_hash, rows[i - 1].hash, `entry ${i} chains onto ${i - 1}`);
    t.ok(rows.some((r) => r.action === 'token.revoke'));
  });
});
