/**
 * The web door's server side: sign-in through a real OpenID provider
 * (oidc-provider, in-process) driven with fetch and a cookie jar, sessions
 * on every backend (expiry, deactivation, sign-out), CSRF and same-origin
 * rules on the API and on tus, the development sign-in, and the static UI's
 * headers.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { inArray } from 'drizzle-orm';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { auditEvents, webSessions } from '../../src/db/schema.ts';
import { createFsBlobStore } from '../../src/storage/fs-blob-store.ts';
import { forEachBackend, freshPglite, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';
import { CookieJar, parseForm, signInThroughProvider, startOidcProvider, testClientSecret } from '../helpers/oidc.ts';
import { json, problem } from '../helpers/problem.ts';

const PUBLIC = 'http://127.0.0.1:8080';
const CSRF_TYPE = 'urn:problem-type:bxchange:csrf';
const HOUR = 3600_000;

function cookieOf(res: LightMyRequestResponse, name: string): string | undefined {
  const raw = res.headers['set-cookie'];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return list.find((c) => c.startsWith(`${name}=`));
}

/** Injects with the app origin's cookies and records the answer's. */
async function browse(
  api: TestApp,
  jar: CookieJar,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'HEAD',
  url: string,
  options: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...options.headers };
  const cookie = jar.header(PUBLIC);
  if (cookie !== undefined) headers.cookie = cookie;
  let payload: string | Buffer | undefined;
  if (options.body !== undefined) {
    if (typeof options.body === 'string' || Buffer.isBuffer(options.body)) payload = options.body;
    else {
      payload = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
  }
  const res = await api.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
  const setCookie = res.headers['set-cookie'];
  jar.store(PUBLIC, setCookie as string[] | string | undefined);
  return res;
}

async function seed(api: TestApp) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  await post('/api/v1/entities', { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' } });
  await post('/api/v1/entities', { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' } });
  await post('/api/v1/entities/ixelles/mailboxes', { name: 'secretariat' });
  await post('/api/v1/entities/uccle/mailboxes', { name: 'secretariat' });
  const clerk = await post('/api/v1/principals', {
    name: 'ixelles-clerk',
    kind: 'user',
    displayName: 'Alice <Clerk>',
    oidcSubject: 'alice-sub',
    memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }],
  });
  const bob = await post('/api/v1/principals', { name: 'uccle-clerk', kind: 'user', memberships: [{ mailbox: 'secretariat@uccle', roles: ['read'] }] });
  return { clerk, bob };
}

forEachBackend(t, 'web sign-in through a real OpenID provider', async (t, parts) => {
  const secret = testClientSecret();
  const idp = await startOidcProvider(t, {
    clients: [
      {
        client_id: 'bxchange-web',
        client_secret: secret,
        redirect_uris: [`${PUBLIC}/auth/callback`],
        post_logout_redirect_uris: [`${PUBLIC}/`],
      },
    ],
    accounts: { 'alice-sub': { name: 'Alice' } },
  });
  let now = new Date();
  const api = await startApp(t, await parts(), {
    clock: { now: () => now },
    env: { OIDC_ISSUER: idp.issuer, OIDC_CLIENT_ID: 'bxchange-web', OIDC_CLIENT_SECRET: secret, PUBLIC_URL: PUBLIC },
  });
  const s = await seed(api);

  /** The whole code flow: /auth/login → provider (login, consent) → /auth/callback; returns the callback's answer. */
  async function signIn(login: string, returnTo = '/app/inbox'): Promise<{ jar: CookieJar; res: LightMyRequestResponse }> {
    const jar = new CookieJar();
    const start = await browse(api, jar, 'GET', `/auth/login?returnTo=${encodeURIComponent(returnTo)}`);
    if (start.statusCode !== 303) throw new Error(`/auth/login: ${start.statusCode} ${start.body}`);
    const location = String(start.headers.location);
    const callback = await signInThroughProvider(jar, location, login, `${PUBLIC}/auth/callback`);
    const res = await browse(api, jar, 'GET', `${callback.pathname}${callback.search}`, { headers: { accept: 'text/html' } });
    return { jar, res };
  }

  async function session(jar: CookieJar) {
    const res = await browse(api, jar, 'GET', '/auth/session');
    return { res, body: res.statusCode === 200 ? json(res) : undefined };
  }

  t.test('GET /auth/login sends the browser to the provider with PKCE (S256), state and nonce', async (t) => {
    const jar = new CookieJar();
    const res = await browse(api, jar, 'GET', '/auth/login?returnTo=/app/x');
    t.equal(res.statusCode, 303);
    const url = new URL(String(res.headers.location));
    t.equal(url.origin, idp.issuer);
    t.equal(url.searchParams.get('client_id'), 'bxchange-web');
    t.equal(url.searchParams.get('redirect_uri'), `${PUBLIC}/auth/callback`);
    t.equal(url.searchParams.get('code_challenge_method'), 'S256');
    t.ok(url.searchParams.get('code_challenge'));
    t.ok(url.searchParams.get('state'));
    t.ok(url.searchParams.get('nonce'));
    const flow = cookieOf(res, 'bx_oidc');
    t.match(flow, /HttpOnly/i);
    t.match(flow, /SameSite=Lax/i);
    t.match(flow, /Path=\/auth/);
    t.notOk(cookieOf(res, 'bx_session'), 'no session before the provider answered');
  });

  t.test('an identity no principal is linked to gets "ask an administrator" and no session', async (t) => {
    const { res, jar } = await signIn('stranger-sub');
    t.equal(res.statusCode, 403);
    t.match(res.headers['content-type'], /text\/html/);
    t.match(res.body, /Ask an administrator/);
    t.match(res.body, /stranger-sub/, 'the page names the subject to give the administrator');
    t.notOk(cookieOf(res, 'bx_session'));
    const refusedSession = (await session(jar)).res;
    t.equal(refusedSession.statusCode, 401);
    t.same(json(refusedSession).signIn, { oidc: true, dev: false }, 'the 401 names the ways in');
  });

  t.test('a linked identity gets a session cookie and lands on returnTo', async (t) => {
    const { res, jar } = await signIn('alice-sub', '/app/envelopes?direction=in');
    t.equal(res.statusCode, 303);
    t.equal(res.headers.location, '/app/envelopes?direction=in');
    const cookie = cookieOf(res, 'bx_session')!;
    t.match(cookie, /HttpOnly/i);
    t.match(cookie, /SameSite=Lax/i);
    t.match(cookie, /Path=\/(;|$)/);
    t.notMatch(cookie, /Secure/i, 'plain-HTTP PUBLIC_URL: not Secure');
    t.notOk(jar.get(PUBLIC, 'bx_oidc'), 'the sign-in cookie is cleared');

    const { res: sres, body } = await session(jar);
    t.equal(sres.statusCode, 200);
    t.match(sres.headers['cache-control'], /no-store/);
    t.match(body, { principal: { id: s.clerk.id, name: 'ixelles-clerk', displayName: 'Alice <Clerk>' }, method: 'oidc', devSignIn: false });
    t.match(body.csrfToken, /^[A-Za-z0-9_-]{43}$/);
    t.ok(new Date(body.expiresAt).getTime() > Date.now());

    const me = await browse(api, jar, 'GET', '/api/v1/me');
    t.equal(me.statusCode, 200);
    t.equal(json(me).name, 'ixelles-clerk');
  });

  t.test('an open redirect in returnTo is replaced by /', async (t) => {
    for (const target of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const { res } = await signIn('alice-sub', target);
      t.equal(res.statusCode, 303);
      t.equal(res.headers.location, '/', target);
    }
  });

  t.test('a callback without the sign-in cookie, or with a forged state, opens no session', async (t) => {
    const jar = new CookieJar();
    const start = await browse(api, jar, 'GET', '/auth/login');
    const callback = await signInThroughProvider(jar, String(start.headers.location), 'alice-sub', `${PUBLIC}/auth/callback`);
    const stranger = new CookieJar();
    const res = await browse(api, stranger, 'GET', `${callback.pathname}${callback.search}`);
    t.equal(res.statusCode, 400);
    t.notOk(cookieOf(res, 'bx_session'));
    const forged = new URL(callback);
    forged.searchParams.set('state', 'forged');
    const res2 = await browse(api, jar, 'GET', `${forged.pathname}${forged.search}`);
    t.equal(res2.statusCode, 400);
    t.notOk(cookieOf(res2, 'bx_session'));
  });

  t.test('state-changing API calls with the cookie need the CSRF header and this origin', async (t) => {
    const { jar } = await signIn('alice-sub');
    const { body } = await session(jar);
    const issue = async () => json(await api.call('POST', `/api/v1/principals/${s.clerk.id}/tokens`, { body: { label: 'web-test' } })).id as string;
    const tokenId = await issue();

    problem(t, await browse(api, jar, 'DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${tokenId}`), 403, CSRF_TYPE);
    problem(t, await browse(api, jar, 'DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${tokenId}`, { headers: { 'x-csrf-token': 'wrong' } }), 403, CSRF_TYPE);
    problem(
      t,
      await browse(api, jar, 'DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${tokenId}`, {
        headers: { 'x-csrf-token': body.csrfToken, origin: 'https://evil.example' },
      }),
      403,
      CSRF_TYPE,
    );
    const tokens = json(await api.call('GET', `/api/v1/principals/${s.clerk.id}/tokens`)).items;
    t.equal(tokens.find((x: { id: string }) => x.id === tokenId).revokedAt, null, 'nothing changed');

    const ok = await browse(api, jar, 'DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${tokenId}`, {
      headers: { 'x-csrf-token': body.csrfToken, origin: PUBLIC },
    });
    t.equal(ok.statusCode, 204, 'with the token and this origin');
    const tokenId2 = await issue();
    const noOrigin = await browse(api, jar, 'DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${tokenId2}`, { headers: { 'x-csrf-token': body.csrfToken } });
    t.equal(noOrigin.statusCode, 204, 'with the token and no Origin header');
    // Another session's token does not do.
    const other = await signIn('alice-sub');
    const tokenId3 = await issue();
    problem(t, await browse(api, other.jar, 'DELETE', `/api/v1/principals/${s.clerk.id}/tokens/${tokenId3}`, { headers: { 'x-csrf-token': body.csrfToken } }), 403, CSRF_TYPE);
  });

  t.test('a bearer token wins over the cookie', async (t) => {
    const { jar } = await signIn('alice-sub');
    const res = await browse(api, jar, 'GET', '/api/v1/me', { headers: { authorization: `Bearer ${api.adminToken}` } });
    t.equal(res.statusCode, 404, 'the bootstrap admin is not a principal: the bearer was used');
  });

  t.test('tus uploads work with the cookie: POST/PATCH need the CSRF header, HEAD does not', async (t) => {
    await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle']);
    const { jar } = await signIn('alice-sub');
    const { body } = await session(jar);
    const csrf = { 'x-csrf-token': body.csrfToken };
    const draftRes = await browse(api, jar, 'POST', '/api/v1/envelopes', {
      headers: csrf,
      body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: 'web upload' } },
    });
    t.equal(draftRes.statusCode, 201, draftRes.body);
    const draft = json(draftRes);
    const bytes = await encryptFor(draftKeys(draft), 'contents of a letter');
    const b64 = (v: string) => Buffer.from(v).toString('base64');
    const tusHeaders = {
      'tus-resumable': '1.0.0',
      'upload-length': String(bytes.length),
      'upload-metadata': `envelope ${b64(draft.id)},filename ${b64('letter.pdf.gpg')},filetype ${b64('application/pgp-encrypted')}`,
    };
    problem(t, await browse(api, jar, 'POST', '/api/v1/uploads', { headers: tusHeaders }), 403, CSRF_TYPE);
    const created = await browse(api, jar, 'POST', '/api/v1/uploads', { headers: { ...tusHeaders, ...csrf } });
    t.equal(created.statusCode, 201, created.body);
    const location = new URL(String(created.headers.location), PUBLIC).pathname;

    const patchHeaders = { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' };
    problem(t, await browse(api, jar, 'PATCH', location, { headers: patchHeaders, body: bytes }), 403, CSRF_TYPE);
    const patched = await browse(api, jar, 'PATCH', location, { headers: { ...patchHeaders, ...csrf }, body: bytes });
    t.equal(patched.statusCode, 204, patched.body);
    const head = await browse(api, jar, 'HEAD', location, { headers: { 'tus-resumable': '1.0.0' } });
    t.equal(head.statusCode, 200);
    t.equal(head.headers['upload-offset'], String(bytes.length));

    const submitted = await browse(api, jar, 'POST', `/api/v1/envelopes/${draft.id}/submit`, { headers: csrf });
    t.equal(submitted.statusCode, 200, submitted.body);
    const audit = await api.services.database.db
      .select({ door: auditEvents.door })
      .from(auditEvents)
      .where(inArray(auditEvents.action, ['envelope.submit', 'envelope.create']));
    t.ok(audit.length > 0 && audit.every((a) => a.door === 'web'), 'the audit names the web door');
  });

  t.test('sign-out needs the CSRF header, revokes the session everywhere, and offers the provider sign-out', async (t) => {
    const { jar } = await signIn('alice-sub');
    const { body } = await session(jar);
    const copy = new CookieJar();
    copy.set(PUBLIC, 'bx_session', jar.get(PUBLIC, 'bx_session')!);
    problem(t, await browse(api, jar, 'POST', '/auth/logout'), 403, CSRF_TYPE);
    const out = await browse(api, jar, 'POST', '/auth/logout', { headers: { 'x-csrf-token': body.csrfToken, origin: PUBLIC } });
    t.equal(out.statusCode, 200);
    t.match(cookieOf(out, 'bx_session'), /bx_session=;/);
    const end = new URL(json(out).endSessionUrl);
    t.equal(end.origin, idp.issuer);
    t.equal(end.searchParams.get('post_logout_redirect_uri'), `${PUBLIC}/`);
    t.ok(end.searchParams.get('id_token_hint'), 'the ID token is the hint');
    problem(t, await browse(api, copy, 'GET', '/auth/session'), 401, 'urn:problem-type:belgif:invalidAccessToken');
    problem(t, await browse(api, copy, 'GET', '/api/v1/me'), 401, 'urn:problem-type:belgif:invalidAccessToken');
    t.equal((await browse(api, copy, 'POST', '/auth/logout')).statusCode, 200, 'signing out twice only clears the cookie');
  });

  t.test('sign-in and sign-out are in the audit chain', async (t) => {
    const rows = await api.services.database.db
      .select({ action: auditEvents.action, actor: auditEvents.actor, door: auditEvents.door, data: auditEvents.data })
      .from(auditEvents)
      .where(inArray(auditEvents.action, ['session.signIn', 'session.signOut']));
    t.ok(rows.some((r) => r.action === 'session.signIn' && r.actor === 'ixelles-clerk' && r.door === 'web'));
    t.ok(rows.some((r) => r.action === 'session.signOut' && r.actor === 'ixelles-clerk'));
    t.notMatch(JSON.stringify(rows), /bx_session|eyJ/, 'no cookie or ID token in the audit');
    t.equal((await api.services.auditLog.verify()).valid, true);
  });

  t.test('a session ends after 8 idle hours, and 12 hours after sign-in however used', async (t) => {
    const idle = await signIn('alice-sub');
    now = new Date(now.getTime() + 8 * HOUR + 60_000);
    problem(t, await browse(api, idle.jar, 'GET', '/api/v1/me'), 401, 'urn:problem-type:belgif:invalidAccessToken');

    const busy = await signIn('alice-sub');
    for (let hours = 0; hours < 10; hours += 2) {
      now = new Date(now.getTime() + 2 * HOUR);
      t.equal((await browse(api, busy.jar, 'GET', '/api/v1/me')).statusCode, 200, `still on after ${hours + 2} h of use`);
    }
    now = new Date(now.getTime() + 2 * HOUR);
    t.equal((await browse(api, busy.jar, 'GET', '/api/v1/me')).statusCode, 401, 'ended after 12 h');
    now = new Date();
  });

  t.test('deactivating a principal ends its sessions, for good', async (t) => {
    const { jar } = await signIn('alice-sub');
    t.equal((await browse(api, jar, 'GET', '/api/v1/me')).statusCode, 200);
    t.equal((await api.call('PATCH', `/api/v1/principals/${s.clerk.id}`, { body: { active: false } })).statusCode, 200);
    problem(t, await browse(api, jar, 'GET', '/api/v1/me'), 401, 'urn:problem-type:belgif:invalidAccessToken');
    const refused = await signIn('alice-sub');
    t.equal(refused.res.statusCode, 403);
    t.match(refused.res.body, /deactivated/);
    t.equal((await api.call('PATCH', `/api/v1/principals/${s.clerk.id}`, { body: { active: true } })).statusCode, 200);
    t.equal((await browse(api, jar, 'GET', '/api/v1/me')).statusCode, 401, 'reactivation does not revive old sessions');
    const live = await api.services.database.db.select().from(webSessions);
    t.ok(live.filter((r) => r.principalId === s.clerk.id).every((r) => r.revokedAt !== null));
  });

  t.test('administrators link an identity with oidcSubject on PATCH; a subject belongs to one principal', async (t) => {
    t.equal((await signIn('bob-sub')).res.statusCode, 403);
    const patched = await api.call('PATCH', `/api/v1/principals/${s.bob.id}`, { body: { oidcSubject: 'bob-sub' } });
    t.equal(patched.statusCode, 200);
    t.equal(json(patched).oidcSubject, 'bob-sub');
    const { res, jar } = await signIn('bob-sub');
    t.equal(res.statusCode, 303);
    t.equal((await session(jar)).body.principal.name, 'uccle-clerk');
    const taken = await api.call('PATCH', `/api/v1/principals/${s.bob.id}`, { body: { oidcSubject: 'alice-sub' } });
    problem(t, taken, 409, 'urn:problem-type:bxchange:principalExists');
    t.equal((await api.call('PATCH', `/api/v1/principals/${s.bob.id}`, { body: { oidcSubject: null } })).statusCode, 200);
    t.equal((await signIn('bob-sub')).res.statusCode, 403, 'unlinked again');
  });

  t.test('the development sign-in does not exist beside OIDC', async (t) => {
    const jar = new CookieJar();
    t.equal((await browse(api, jar, 'GET', '/auth/dev')).statusCode, 404);
    const res = await browse(api, jar, 'POST', '/auth/dev', {
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: PUBLIC },
      body: 'principal=ixelles-clerk',
    });
    t.equal(res.statusCode, 404);
    t.notOk(cookieOf(res, 'bx_session'));
  });
});

t.test('configuration of the web door', async (t) => {
  const oidc = { OIDC_ISSUER: 'https://idp.example/realms/brussels', OIDC_CLIENT_ID: 'bxchange', OIDC_CLIENT_SECRET: 'a-long-enough-client-secret' };
  t.throws(() => loadConfig({ ...oidc, BXCHANGE_DEV_SIGNIN: 'true' }), { name: 'ConfigError', variable: 'BXCHANGE_DEV_SIGNIN' }, 'dev sign-in with OIDC stops the start');
  t.equal(loadConfig(oidc).devSignIn, false);
  t.equal(loadConfig(oidc).oidc?.redirectUri, 'http://127.0.0.1:8080/auth/callback');
  t.equal(loadConfig({ ...oidc, PUBLIC_URL: 'https://bxchange.example' }).oidc?.redirectUri, 'https://bxchange.example/auth/callback');
  t.equal(loadConfig({}).devSignIn, true, 'the embedded default on loopback: on');
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db.example/bx' }).devSignIn, false, 'with PostgreSQL: off');
  t.equal(loadConfig({ HOST: '0.0.0.0' }).devSignIn, false, 'listening beyond loopback: off');
  t.equal(loadConfig({ HOST: '0.0.0.0', BXCHANGE_DEV_SIGNIN: 'true' }).devSignIn, true, 'unless asked for');
  t.equal(loadConfig({ BXCHANGE_DEV_SIGNIN: 'false' }).devSignIn, false);
  t.throws(() => loadConfig({ ...oidc, OIDC_ISSUER: 'http://idp.example' }), { name: 'ConfigError', variable: 'OIDC_ISSUER' }, 'plain http only on loopback');
  t.throws(() => loadConfig({ OIDC_ISSUER: 'https://idp.example' }), { name: 'ConfigError', variable: 'OIDC_CLIENT_ID' });
  t.throws(() => loadConfig({ OIDC_ISSUER: 'https://idp.example', OIDC_CLIENT_ID: 'x' }), { name: 'ConfigError', variable: 'OIDC_CLIENT_SECRET' });
  t.throws(() => loadConfig({ OIDC_CLIENT_ID: 'x' }), { name: 'ConfigError', variable: 'OIDC_CLIENT_ID' }, 'OIDC_* without an issuer');
  t.throws(() => loadConfig({ PUBLIC_URL: 'https://bxchange.example/app' }), { name: 'ConfigError', variable: 'PUBLIC_URL' });
  t.equal(loadConfig({ BXCHANGE_SESSION_IDLE_MINUTES: '30', BXCHANGE_SESSION_MAX_HOURS: '2' }).sessionIdleMs, 30 * 60_000);
  t.ok(new ConfigError('X', 'y') instanceof Error);
});

forEachBackend(t, 'development sign-in (embedded default)', async (t, parts) => {
  let now = new Date();
  const api = await startApp(t, await parts(), { clock: { now: () => now } });
  await seed(api);
  const form = { 'content-type': 'application/x-www-form-urlencoded' };

  t.test('GET /auth/login leads to the development sign-in, a plain form listing active principals', async (t) => {
    const jar = new CookieJar();
    const login = await browse(api, jar, 'GET', '/auth/login?returnTo=/app/inbox');
    t.equal(login.statusCode, 303);
    t.equal(login.headers.location, '/auth/dev?returnTo=%2Fapp%2Finbox');
    const page = await browse(api, jar, 'GET', '/auth/dev?returnTo=/app/inbox');
    t.equal(page.statusCode, 200);
    t.match(page.headers['content-security-policy'], /script-src 'self'/);
    t.equal(page.headers['referrer-policy'], 'same-origin', 'a form POST from this page carries its real Origin (not null)');
    t.same(json(await browse(api, new CookieJar(), 'GET', '/auth/session')).signIn, { oidc: false, dev: true });
    t.equal((await browse(api, new CookieJar(), 'HEAD', '/auth/dev')).statusCode, 200, 'HEAD /auth/dev tells the landing page');
    t.notMatch(page.body, /<script|<style|\sstyle=|\son[a-z]+=/i, 'no inline script or style');
    t.match(page.body, /Development sign-in/);
    t.match(page.body, /ixelles-clerk/);
    t.match(page.body, /secretariat@ixelles/);
    t.match(page.body, /Alice &#60;Clerk&#62;/, 'display names are escaped');
    const parsed = parseForm(page.body);
    t.equal(parsed.action, '/auth/dev');
    t.equal(parsed.fields.returnTo, '/app/inbox');
  });

  t.test('POST /auth/dev needs this origin', async (t) => {
    const jar = new CookieJar();
    problem(t, await browse(api, jar, 'POST', '/auth/dev', { headers: form, body: 'principal=ixelles-clerk' }), 403, CSRF_TYPE);
    problem(t, await browse(api, jar, 'POST', '/auth/dev', { headers: { ...form, origin: 'http://evil.example' }, body: 'principal=ixelles-clerk' }), 403, CSRF_TYPE);
    t.notOk(jar.get(PUBLIC, 'bx_session'));
  });

  t.test('a development session says so, works on the API, and ends like any other', async (t) => {
    const jar = new CookieJar();
    const res = await browse(api, jar, 'POST', '/auth/dev', {
      headers: { ...form, origin: 'http://localhost' },
      body: 'principal=ixelles-clerk&returnTo=%2Fapp%2Finbox',
    });
    t.equal(res.statusCode, 303, res.body);
    t.equal(res.headers.location, '/app/inbox');
    const session = json(await browse(api, jar, 'GET', '/auth/session'));
    t.match(session, { principal: { name: 'ixelles-clerk' }, method: 'dev', devSignIn: true });
    t.equal((await browse(api, jar, 'GET', '/api/v1/mailboxes')).statusCode, 200);
    const unknown = await browse(api, new CookieJar(), 'POST', '/auth/dev', { headers: { ...form, origin: PUBLIC }, body: 'principal=nobody' });
    t.equal(unknown.statusCode, 403);
    now = new Date(now.getTime() + 13 * HOUR);
    t.equal((await browse(api, jar, 'GET', '/auth/session')).statusCode, 401);
    now = new Date();
  });
});

async function embeddedApp(t: Test, env: Record<string, string>) {
  const dataDir = await tempDir(t);
  const parts = { name: 'embedded', database: await freshPglite(t), blobStore: createFsBlobStore(path.join(dataDir, 'blobs')), dataDir, s3: undefined };
  return startApp(t, parts, { env });
}

t.test('the static UI: strict CSP, client-side routes under /app/, never for /api/ or /auth/', async (t) => {
  const webDir = await tempDir(t);
  await writeFile(path.join(webDir, 'index.html'), '<!doctype html><title>bxchange</title><script type="module" src="/main.js"></script>');
  await writeFile(path.join(webDir, 'main.js'), 'console.log("ui")');
  await mkdir(path.join(webDir, 'app'));
  await writeFile(path.join(webDir, 'app', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  const api = await embeddedApp(t, { BXCHANGE_WEB_DIR: webDir });
  const expected =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

  const root = await api.app.inject({ method: 'GET', url: '/' });
  t.equal(root.statusCode, 200);
  t.match(root.headers['content-type'], /text\/html/);
  t.equal(root.headers['content-security-policy'], expected);
  t.match(root.body, /<title>bxchange/);
  t.equal(root.headers['x-content-type-options'], 'nosniff');
  t.equal(root.headers['referrer-policy'], 'same-origin');

  const js = await api.app.inject({ method: 'GET', url: '/main.js' });
  t.equal(js.statusCode, 200);
  t.match(js.headers['content-type'], /javascript/);
  t.equal(js.headers['content-security-policy'], expected);

  for (const route of ['/app', '/app/', '/app/inbox', '/app/envelopes/0190a000-0000-7000-8000-000000000000']) {
    const res = await api.app.inject({ method: 'GET', url: route });
    t.equal(res.statusCode, 200, route);
    t.match(res.body, /<title>bxchange/, `${route}: index.html`);
  }
  const asset = await api.app.inject({ method: 'GET', url: '/app/logo.svg' });
  t.match(asset.body, /<svg/, 'a file of the build under /app/ is itself');
  const traversal = await api.app.inject({ method: 'GET', url: '/app/..%2f..%2fpackage.json' });
  t.notMatch(traversal.body, /"dependencies"/, 'no file outside the build');

  for (const route of ['/api/v1/nothing-here', '/auth/nothing-here', '/nothing.js']) {
    const res = await api.app.inject({ method: 'GET', url: route });
    t.equal(res.statusCode, 404, route);
    t.notMatch(res.body, /<title>bxchange/, `${route}: not index.html`);
  }
  const apiRes = await api.app.inject({ method: 'GET', url: '/api/v1/entities' });
  t.equal(apiRes.statusCode, 401, 'the API is untouched');
  t.not(apiRes.headers['content-security-policy'], expected, 'the API keeps its own headers');
});

t.test('without a build, / answers 503 saying how to build', async (t) => {
  const api = await embeddedApp(t, { BXCHANGE_WEB_DIR: path.join(await tempDir(t), 'missing') });
  const res = await api.app.inject({ method: 'GET', url: '/' });
  const body = problem(t, res, 503, 'urn:problem-type:belgif:serviceUnavailable');
  t.match(body.detail, /npm run build:web/);
  t.equal((await api.app.inject({ method: 'GET', url: '/app/inbox' })).statusCode, 503);
  t.equal((await api.app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
});
