/**
 * The `bxchange` command as an operator runs it: the real bin script in a
 * child process, against a real server listening on a real port (every
 * backend), and `migrate` against a fresh PGlite folder and a fresh, empty
 * PostgreSQL database. Outcomes are checked through the API or the database
 * directly, never through the CLI itself.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import t from 'tap';
import { ADMIN_TOKEN, forEachBackend, startApp, tempDir } from '../helpers/backends.ts';
import { postgresService, withService } from '../helpers/services.ts';

const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Migrations known to this checkout, read from drizzle's journal (not through the code under test). */
const KNOWN_MIGRATIONS = (JSON.parse(readFileSync(path.join(ROOT, 'migrations/meta/_journal.json'), 'utf8')) as { entries: unknown[] }).entries.length;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/bxchange.js …` asynchronously (the server answering it lives
 * in this process) with only the environment given, so the test runner's own
 * DATABASE_URL or S3_* never leak into a command.
 */
function bxchange(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A port nothing listens on: bound by the OS, then released. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

forEachBackend(t, 'the bxchange CLI against a running server', async (t, parts) => {
  const api = await startApp(t, await parts());
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = api.app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const as = (token: string) => (args: string[]) => bxchange(args, { BXCHANGE_URL: url, BXCHANGE_TOKEN: token });
  const admin = as(ADMIN_TOKEN);

  await t.test('an operator sets up an entity, a mailbox, a principal and its token with the CLI alone, and the token works', async (t) => {
    const entity = await admin(['entity', 'create', '--id', 'ixelles', '--kind', 'commune', '--fr', 'Ixelles', '--nl', 'Elsene', '--enterprise-number', 'BE 0207.373.429', '--nis-code', '21009']);
    t.equal(entity.code, 0, entity.stderr);
    t.match(JSON.parse(entity.stdout), { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, enterpriseNumber: '0207373429', nisCode: '21009' });

    const mailbox = await admin(['mailbox', 'create', 'secretariat@ixelles']);
    t.equal(mailbox.code, 0, mailbox.stderr);
    t.match(JSON.parse(mailbox.stdout), { address: 'secretariat@ixelles', entity: 'ixelles', name: 'secretariat' });

    const principal = await admin(['principal', 'create', '--name', 'ixelles-backoffice', '--kind', 'machine', '--display-name', 'Back office', '--member', 'secretariat@ixelles=read,send']);
    t.equal(principal.code, 0, principal.stderr);
    const created = JSON.parse(principal.stdout);
    t.match(created, { name: 'ixelles-backoffice', kind: 'machine', displayName: 'Back office', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });

    const issued = await admin(['token', 'create', created.id, '--label', 'cron']);
    t.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    t.equal(issued.stdout, `${token}\n`, 'stdout holds the token and nothing else');
    t.match(token, /^\S{20,}$/);
    t.match(issued.stderr, /shown only once/);
    t.notOk(issued.stderr.includes(token), 'the token is not repeated on stderr');

    // Independent check: the server itself now knows all of it.
    t.equal((await api.call('GET', '/api/v1/mailboxes/secretariat@ixelles')).statusCode, 200);

    const whoami = await as(token)(['whoami']);
    t.equal(whoami.code, 0, whoami.stderr);
    t.match(JSON.parse(whoami.stdout), { id: created.id, name: 'ixelles-backoffice', active: true, memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });

    const tokens = await admin(['token', 'list', 'ixelles-backoffice']);
    t.equal(tokens.code, 0, tokens.stderr);
    const listed = JSON.parse(tokens.stdout);
    t.same(listed.map((x: { label: string }) => x.label), ['cron'], 'the token is listed, found by principal name');
    t.notOk(tokens.stdout.includes(token), 'the list never shows the secret');
  });

  await t.test('entity update changes only the named fields and keeps the other language', async (t) => {
    const res = await admin(['entity', 'update', 'ixelles', '--nl', 'Elsene (gemeente)', '--valid-until', '2030-12-31']);
    t.equal(res.code, 0, res.stderr);
    const stored = JSON.parse((await api.call('GET', '/api/v1/entities/ixelles')).body);
    t.match(stored, { name: { fr: 'Ixelles', nl: 'Elsene (gemeente)' }, validUntil: '2030-12-31', enterpriseNumber: '0207373429' });

    const cleared = await admin(['entity', 'update', 'ixelles', '--valid-until', '']);
    t.equal(cleared.code, 0, cleared.stderr);
    t.equal(JSON.parse((await api.call('GET', '/api/v1/entities/ixelles')).body).validUntil, null, "'' clears the field");
  });

  await t.test('entity list prints every entity across all pages', async (t) => {
    const ids = Array.from({ length: 60 }, (_, i) => `bulk-${String(i).padStart(2, '0')}`);
    for (const id of ids) {
      const res = await api.call('POST', '/api/v1/entities', { body: { id, kind: 'other', name: { fr: id, nl: id } } });
      t.equal(res.statusCode, 201, `created ${id}`);
    }
    const first = JSON.parse((await api.call('GET', '/api/v1/entities')).body);
    t.type(first.next, 'string', 'the API needs more than one page for these');
    t.ok(first.items.length < ids.length + 1, 'one page holds fewer than all of them');

    const res = await admin(['entity', 'list']);
    t.equal(res.code, 0, res.stderr);
    const printed = (JSON.parse(res.stdout) as { id: string }[]).map((e) => e.id);
    t.equal(new Set(printed).size, printed.length, 'no entity is printed twice');
    t.same([...printed].sort(), ['ixelles', ...ids].sort(), 'every entity is printed');
  });

  await t.test('mailbox list and principal update go through the API', async (t) => {
    const more = await admin(['mailbox', 'create', 'finances@ixelles']);
    t.equal(more.code, 0, more.stderr);
    const mailboxes = await admin(['mailbox', 'list', '--entity', 'ixelles']);
    t.equal(mailboxes.code, 0, mailboxes.stderr);
    t.same((JSON.parse(mailboxes.stdout) as { address: string }[]).map((m) => m.address).sort(), ['finances@ixelles', 'secretariat@ixelles']);

    const updated = await admin(['principal', 'update', 'ixelles-backoffice', '--member', 'finances@ixelles=read', '--member', 'secretariat@ixelles=read,send,manage']);
    t.equal(updated.code, 0, updated.stderr);
    const id = JSON.parse(updated.stdout).id as string;
    const stored = JSON.parse((await api.call('GET', `/api/v1/principals/${id}`)).body);
    const memberships = (stored.memberships as { mailbox: string; roles: string[] }[])
      .map((m) => ({ mailbox: m.mailbox, roles: [...m.roles].sort() }))
      .sort((a, b) => a.mailbox.localeCompare(b.mailbox));
    t.same(
      memberships,
      [
        { mailbox: 'finances@ixelles', roles: ['read'] },
        { mailbox: 'secretariat@ixelles', roles: ['manage', 'read', 'send'] },
      ],
      'memberships are replaced by the ones given',
    );
  });

  await t.test('a bad enterprise number exits 3 and names /enterpriseNumber on stderr', async (t) => {
    const res = await admin(['entity', 'create', '--id', 'bad-kbo', '--kind', 'other', '--fr', 'X', '--nl', 'X', '--enterprise-number', 'BE 0207.373.428']);
    t.equal(res.code, 3);
    t.equal(res.stdout, '');
    const lines = res.stderr.trimEnd().split('\n');
    t.match(lines[0], /^bxchange: Bad Request \(400\): \S/, 'one line with title, status and detail');
    t.ok(lines.slice(1).some((line) => /^ {2}\/enterpriseNumber: \S/.test(line)), 'an indented line names the field');
    t.notMatch(res.stderr, /at .*\.ts:\d+|SELECT|postgres/i, 'no internals');
    t.equal((await api.call('GET', '/api/v1/entities/bad-kbo')).statusCode, 404, 'nothing was stored');
  });

  await t.test('a revoked token stops working: whoami exits 3 without printing the token', async (t) => {
    const created = await admin(['principal', 'create', '--name', 'short-lived', '--kind', 'machine']);
    t.equal(created.code, 0, created.stderr);
    const issued = await admin(['token', 'create', 'short-lived']);
    t.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    const tokenId = /token (\S+) issued/.exec(issued.stderr)?.[1];
    t.ok(tokenId, 'stderr names the token id');
    t.equal((await as(token)(['whoami'])).code, 0, 'the token works before');

    const revoked = await admin(['token', 'revoke', 'short-lived', tokenId!]);
    t.equal(revoked.code, 0, revoked.stderr);

    const after = await as(token)(['whoami']);
    t.equal(after.code, 3);
    t.equal(after.stdout, '');
    t.match(after.stderr, /^bxchange: .+ \(401\)/);
    t.notOk(after.stderr.includes(token), 'the token is never printed');
    const listed = JSON.parse((await admin(['token', 'list', 'short-lived'])).stdout);
    t.match(listed, [{ id: tokenId, revokedAt: String }]);
  });

  await t.test('the bootstrap admin is refused by whoami (not a principal) with exit 3', async (t) => {
    const res = await admin(['whoami']);
    t.equal(res.code, 3);
    t.match(res.stderr, /\(404\)/);
    t.notOk(res.stderr.includes(ADMIN_TOKEN));
  });
});

t.test('usage errors exit 2 before anything is sent', async (t) => {
  // A URL nothing listens on: had the CLI called it, it would exit 4, not 2.
  const env = { BXCHANGE_URL: `http://127.0.0.1:${await closedPort()}`, BXCHANGE_TOKEN: 'x'.repeat(40) };
  const cases: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['an unknown subcommand', ['entity', 'delete', 'ixelles'], /unknown command "entity delete"/],
    ['an unknown flag', ['entity', 'create', '--id', 'a', '--kind', 'other', '--fr', 'a', '--nl', 'a', '--colour', 'blue'], /unknown option --colour/],
    ['a missing required flag', ['entity', 'create', '--id', 'a', '--kind', 'other', '--fr', 'a'], /missing --nl/],
    ['a missing argument', ['entity', 'show'], /missing ID/],
    ['an extra argument', ['whoami', 'me'], /unexpected argument "me"/],
    ['a malformed mailbox address', ['mailbox', 'create', 'secretariat'], /name@entity/],
    ['a malformed membership', ['principal', 'create', '--name', 'p', '--kind', 'user', '--member', 'secretariat@ixelles'], /--member must look like/],
  ];
  for (const [what, args, message] of cases) {
    const res = await bxchange(args, env);
    t.equal(res.code, 2, `${what}: exit 2`);
    t.match(res.stderr, message, `${what}: says what is wrong`);
    t.match(res.stderr, /--help/, `${what}: points to the help`);
    t.equal(res.stdout, '', `${what}: nothing on stdout`);
  }
  const noToken = await bxchange(['entity', 'list'], { BXCHANGE_URL: env.BXCHANGE_URL });
  t.equal(noToken.code, 2, 'no token configured: exit 2');
  t.match(noToken.stderr, /BXCHANGE_TOKEN/);
});

t.test('--help works at every level and says migrate needs the embedded server stopped', async (t) => {
  const top = await bxchange(['--help']);
  t.equal(top.code, 0);
  for (const word of ['serve', 'migrate', 'entity', 'mailbox', 'principal', 'token', 'whoami', 'BXCHANGE_URL', 'BXCHANGE_TOKEN']) t.match(top.stdout, word);
  const group = await bxchange(['token', '--help']);
  t.equal(group.code, 0);
  t.match(group.stdout, /token create PRINCIPAL/);
  t.match(group.stdout, /token revoke PRINCIPAL TOKEN_ID/);
  const command = await bxchange(['principal', 'update', '--help']);
  t.equal(command.code, 0);
  t.match(command.stdout, /--member MAILBOX=ROLES/);
  t.match(command.stdout, /--deactivate/);
  const migrate = await bxchange(['migrate', '--help']);
  t.equal(migrate.code, 0);
  t.match(migrate.stdout, /PGlite.*STOPPED/s);
});

t.test('an unreachable server exits 4 and names BXCHANGE_URL without the token', async (t) => {
  const token = `bxc_${randomBytes(20).toString('hex')}`;
  const target = `http://127.0.0.1:${await closedPort()}`;
  const res = await bxchange(['entity', 'list'], { BXCHANGE_URL: target, BXCHANGE_TOKEN: token });
  t.equal(res.code, 4);
  t.equal(res.stdout, '');
  t.match(res.stderr, `cannot reach BXCHANGE_URL ${target}`);
  t.notOk(res.stderr.includes(token), 'the token is never printed');
});

t.test('a failing server (5xx, not a problem document) exits 4 with one line', async (t) => {
  const token = `bxc_${randomBytes(20).toString('hex')}`;
  const server = createHttpServer((_req, res) => {
    res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>Bad Gateway</body></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const res = await bxchange(['principal', 'list'], { BXCHANGE_URL: `http://127.0.0.1:${port}`, BXCHANGE_TOKEN: token });
  t.equal(res.code, 4);
  t.equal(res.stderr.trimEnd().split('\n').length, 1, 'one line');
  t.match(res.stderr, /^bxchange: HTTP 502/);
  t.notMatch(res.stderr, /<html>/, 'the proxy page is not dumped');
  t.notOk(res.stderr.includes(token));
});

t.test('migrate [embedded PGlite]: applies every migration to a fresh data dir, and again is a no-op', async (t) => {
  const dataDir = await tempDir(t, 'bxchange-cli-migrate-');
  const env = { BXCHANGE_DATA_DIR: dataDir };
  const expected = `migrated: ${KNOWN_MIGRATIONS}/${KNOWN_MIGRATIONS} migrations applied\n`;

  const countApplied = async () => {
    const db = new PGlite(path.join(dataDir, 'db'));
    try {
      const rows = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations')).rows;
      const table = (await db.query<{ t: string | null }>("SELECT to_regclass('public.entities')::text AS t")).rows;
      return { applied: rows[0]?.n, entities: table[0]?.t };
    } finally {
      await db.close();
    }
  };

  const first = await bxchange(['migrate'], env);
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stdout, expected);
  t.same(await countApplied(), { applied: KNOWN_MIGRATIONS, entities: 'entities' }, 'the schema is in the data dir');

  const second = await bxchange(['migrate'], env);
  t.equal(second.code, 0, second.stderr);
  t.equal(second.stdout, expected);
  t.same(await countApplied(), { applied: KNOWN_MIGRATIONS, entities: 'entities' }, 'nothing was applied twice');
});

t.test('migrate with a bad configuration exits 2 naming the variable', async (t) => {
  const res = await bxchange(['migrate'], { DATABASE_URL: 'mysql://localhost/x' });
  t.equal(res.code, 2);
  t.match(res.stderr, /^bxchange: configuration error: DATABASE_URL/);
});

withService(t, postgresService(), 'migrate', async (t, baseUrl) => {
  const name = `bx_cli_${randomBytes(6).toString('hex')}`;
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const target = new URL(baseUrl);
  target.pathname = `/${name}`;
  const check = postgres(target.toString(), { max: 1, onnotice: () => {} });
  t.teardown(async () => {
    await check.end({ timeout: 5 });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end({ timeout: 5 });
  });
  const env = { DATABASE_URL: target.toString() };
  const expected = `migrated: ${KNOWN_MIGRATIONS}/${KNOWN_MIGRATIONS} migrations applied\n`;
  const state = async () => {
    const [row] = await check<{ m: string | null; e: string | null }[]>`
      SELECT to_regclass('drizzle.__drizzle_migrations')::text AS m, to_regclass('public.entities')::text AS e`;
    if (!row?.m) return { applied: 0, entities: row?.e ?? null };
    const [count] = await check<{ n: number }[]>`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`;
    return { applied: count?.n, entities: row.e };
  };

  t.same(await state(), { applied: 0, entities: null }, 'the database starts empty');
  const first = await bxchange(['migrate'], env);
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stdout, expected);
  t.same(await state(), { applied: KNOWN_MIGRATIONS, entities: 'entities' });

  const second = await bxchange(['migrate'], env);
  t.equal(second.code, 0, second.stderr);
  t.equal(second.stdout, expected);
  t.same(await state(), { applied: KNOWN_MIGRATIONS, entities: 'entities' }, 'nothing was applied twice');
  t.notMatch(first.stderr + second.stderr, /postgres:\/\//, 'the URL is not echoed');
});

t.test('migrate against an unreachable PostgreSQL exits 4 without echoing DATABASE_URL', async (t) => {
  const secret = randomBytes(8).toString('hex');
  const res = await bxchange(['migrate'], { DATABASE_URL: `postgres://bx:${secret}@127.0.0.1:${await closedPort()}/bx` });
  t.equal(res.code, 4, res.stderr);
  t.match(res.stderr, /^bxchange: cannot reach DATABASE_URL/);
  t.notOk(res.stderr.includes(secret), 'the password is never printed');
});
