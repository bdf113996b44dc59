/**
 * Mutual TLS for machine principals, over a REAL HTTPS server (TLS_CERT,
 * TLS_KEY and TLS_CLIENT_CA read by readTlsOptions, as main.ts does) with
 * Node's https client, curl and the bxchange CLI: a certificate issued by the
 * platform CA authenticates as its principal; one from another CA, a revoked,
 * an expired or an unregistered one is refused with a 401 problem.
 */
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { certificateFingerprint, ensureDevPki, issueClientCertificate, issueServerCertificate } from '../../src/crypto/pki.ts';
import { rowsOf } from '../../src/db/client.ts';
import { createDirectoryRepository } from '../../src/db/directory-repository.ts';
import { readTlsOptions } from '../../src/tls.ts';
import { ADMIN_TOKEN, forEachBackend, startApp, tempDir, testPki } from '../helpers/backends.ts';

const API = '/api/v1';
const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DAY = 86400_000;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** One request on a fresh connection (agent: false), so each identity gets its own TLS handshake. */
function request(
  port: number,
  method: string,
  url: string,
  options: { ca: string; cert?: string; key?: string; token?: string; body?: unknown },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        ca: options.ca,
        ...(options.cert === undefined ? {} : { cert: options.cert, key: options.key }),
        agent: false,
        headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const hasCurl = spawnSync('curl', ['--version']).status === 0;

forEachBackend(t, 'client certificates (mutual TLS)', async (t, parts) => {
  const dir = await tempDir(t);
  const pki = await testPki(); // the PKI startApp gives the services
  const server = await issueServerCertificate({ caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem!, ipAddresses: ['127.0.0.1'], days: 2 });
  const files = { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.pem') };
  await writeFile(files.cert, server.certPem);
  await writeFile(files.key, server.keyPem, { mode: 0o600 });
  await writeFile(files.ca, pki.caCertPem);
  const tlsEnv = { TLS_CERT: files.cert, TLS_KEY: files.key, TLS_CLIENT_CA: files.ca };
  const https_ = await readTlsOptions({ certFile: files.cert, keyFile: files.key, clientCaFile: files.ca });
  let offset = 0; // moves the application's clock (not TLS's) to test expiry
  const api = await startApp(t, await parts(), { env: tlsEnv, https: https_, clock: { now: () => new Date(Date.now() + offset) } });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = api.app.server.address() as AddressInfo;
  const ca = pki.caCertPem;
  const as = (identity: { cert?: string; key?: string; token?: string }) => (method: string, url: string, body?: unknown) =>
    request(port, method, url, { ca, ...identity, ...(body === undefined ? {} : { body }) });
  const admin = as({ token: ADMIN_TOKEN });

  const created = async (res: Answer) => {
    if (res.status >= 300) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  await created(await admin('POST', `${API}/entities`, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' } }));
  await created(await admin('POST', `${API}/entities/ixelles/mailboxes`, { name: 'secretariat' }));
  const machine = await created(
    await admin('POST', `${API}/principals`, { name: 'ixelles-bo', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] }),
  );
  const user = await created(await admin('POST', `${API}/principals`, { name: 'alice', kind: 'user' }));
  const machineToken = (await created(await admin('POST', `${API}/principals/${machine.id}/tokens`, {}))).token as string;

  const issued = await admin('POST', `${API}/principals/${machine.id}/client-certificates`, { label: 'backoffice', days: 30 });

  await t.test('an administrator issues a certificate: CN = the principal, clientAuth, fingerprint registered, key shown once', async (t) => {
    t.equal(issued.status, 201, issued.status === 201 ? 'issued' : JSON.stringify(issued.body));
    t.equal(issued.headers['cache-control'], 'no-store');
    const cert = new X509Certificate(issued.body.certificate);
    t.match(cert.subject, /CN=ixelles-bo/);
    t.ok(cert.checkIssued(new X509Certificate(pki.caCertPem)), 'issued by the platform CA');
    t.match(issued.body.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    t.equal(issued.body.fingerprint, certificateFingerprint(issued.body.certificate));
    t.equal(issued.body.expiresAt, cert.validToDate.toISOString(), 'expiresAt = notAfter');
    t.ok(Math.abs(cert.validToDate.getTime() - (Date.now() + 30 * DAY)) < 2 * DAY, 'valid for the 30 days asked');
    const listed = await admin('GET', `${API}/principals/${machine.id}/client-certificates`);
    t.equal(listed.status, 200);
    t.same(
      listed.body.items.map((c: any) => [c.id, c.label, c.fingerprint, c.revokedAt]),
      [[issued.body.id, 'backoffice', issued.body.fingerprint, null]],
    );
    t.notOk(JSON.stringify(listed.body).includes('PRIVATE KEY'), 'the key is never listed');
    const audit = rowsOf<{ actor: string; subject: string }>(
      await api.services.database.db.execute(sql`SELECT actor, subject FROM audit_events WHERE action = 'clientCertificate.issue'`),
    );
    t.same(audit, [{ actor: 'bootstrap-admin', subject: 'ixelles-bo' }], 'audited');
  });

  await t.test('only an administrator issues, only for an active machine, with a valid validity', async (t) => {
    const self = await as({ token: machineToken })('POST', `${API}/principals/${machine.id}/client-certificates`, {});
    t.equal(self.status, 403, 'the machine itself may not');
    const forUser = await admin('POST', `${API}/principals/${user.id}/client-certificates`, {});
    t.equal(forUser.status, 409);
    t.match(forUser.body.detail, /machine principals/);
    const unknown = await admin('POST', `${API}/principals/00000000-0000-7000-8000-000000000000/client-certificates`, {});
    t.equal(unknown.status, 404);
    const tooLong = await admin('POST', `${API}/principals/${machine.id}/client-certificates`, { days: 5000 });
    t.equal(tooLong.status, 400);
  });

  const good = { cert: issued.body.certificate as string, key: issued.body.privateKey as string };

  await t.test('the CA-issued certificate authenticates as its principal, without a token', async (t) => {
    const me = await as(good)('GET', `${API}/me`);
    t.equal(me.status, 200, 'authenticated by its certificate');
    t.match(me.body, { id: machine.id, name: 'ixelles-bo', kind: 'machine' });
    const mailboxes = await as(good)('GET', `${API}/mailboxes`);
    t.same(mailboxes.body.items.map((m: any) => m.address), ['secretariat@ixelles'], 'with the principal’s memberships');
    const admins = await as(good)('GET', `${API}/principals`);
    t.equal(admins.status, 403, 'and only its rights');
    const listed = await admin('GET', `${API}/principals/${machine.id}/client-certificates`);
    t.ok(listed.body.items[0].lastUsedAt, 'its use is recorded');
  });

  await t.test("a certificate's use is recorded at most once a minute, not at every request", async (t) => {
    const lastUse = async () => (await admin('GET', `${API}/principals/${machine.id}/client-certificates`)).body.items[0].lastUsedAt as string;
    const first = await lastUse();
    try {
      offset = 30_000;
      t.equal((await as(good)('GET', `${API}/me`)).status, 200);
      t.equal(await lastUse(), first, 'not again within the minute');
      offset = 61_000;
      t.equal((await as(good)('GET', `${API}/me`)).status, 200);
      t.ok(Date.parse(await lastUse()) >= Date.parse(first) + 60_000, 'a minute later, again');
    } finally {
      offset = 0;
    }
  });

  await t.test('bearer tokens still work over the same TLS, and a token takes precedence over a certificate', async (t) => {
    t.equal((await as({ token: machineToken })('GET', `${API}/me`)).status, 200, 'token, no certificate');
    t.equal((await as({})('GET', `${API}/me`)).status, 401, 'neither');
    const both = await as({ ...good, token: 'bxc_not-a-token' })('GET', `${API}/me`);
    t.equal(both.status, 401, 'a wrong token is not rescued by a good certificate');
    t.match(both.body, { title: 'Invalid Access Token' });
  });

  if (hasCurl) {
    await t.test('the real curl with --cert --key --cacert', async (t) => {
      await writeFile(path.join(dir, 'client.pem'), good.cert);
      await writeFile(path.join(dir, 'client.key'), good.key, { mode: 0o600 });
      const res = await run(
        'curl',
        ['-sS', '--cert', path.join(dir, 'client.pem'), '--key', path.join(dir, 'client.key'), '--cacert', files.ca, `https://127.0.0.1:${port}${API}/me`],
        {},
      );
      t.equal(res.code, 0, res.stderr);
      t.match(JSON.parse(res.stdout), { name: 'ixelles-bo' });
    });
  }

  await t.test('a certificate from another CA is refused, even with a registered fingerprint', async (t) => {
    const otherPki = await ensureDevPki(path.join(dir, 'other-ca'), { platformName: 'impostor' });
    const forged = await issueClientCertificate({ caCertPem: otherPki.caCertPem, caKeyPem: otherPki.caKeyPem!, commonName: 'ixelles-bo', days: 30 });
    const res = await as({ cert: forged.certPem, key: forged.keyPem })('GET', `${API}/me`);
    t.equal(res.status, 401);
    t.match(res.body, { title: 'Invalid Access Token', detail: /not trusted/ });
    t.match(res.headers['content-type'], /application\/problem\+json/);
    // Even a row that names its fingerprint (written straight into the database) does not make it trusted:
    await createDirectoryRepository(api.services.database.db).createClientCertificate(
      { id: '00000000-0000-7000-8000-0000000000aa', principalId: machine.id, fingerprint: certificateFingerprint(forged.certPem), certificatePem: forged.certPem, label: null, expiresAt: forged.notAfter },
      { actor: 'test', action: 'test.inject', subject: 'ixelles-bo' },
    );
    t.equal((await as({ cert: forged.certPem, key: forged.keyPem })('GET', `${API}/me`)).status, 401, 'the TLS verdict comes first');
  });

  await t.test('a CA-issued certificate that is not registered is refused', async (t) => {
    const stray = await issueClientCertificate({ caCertPem: pki.caCertPem, caKeyPem: pki.caKeyPem!, commonName: 'ixelles-bo', days: 30 });
    const res = await as({ cert: stray.certPem, key: stray.keyPem })('GET', `${API}/me`);
    t.equal(res.status, 401);
    t.match(res.body.detail, /not registered/);
  });

  await t.test('expired (by the credential’s expiresAt) and deactivated principals are refused', async (t) => {
    const short = await created(await admin('POST', `${API}/principals/${machine.id}/client-certificates`, { days: 1 }));
    const identity = as({ cert: short.certificate, key: short.privateKey });
    t.equal((await identity('GET', `${API}/me`)).status, 200);
    offset = 2 * DAY;
    try {
      const expired = await identity('GET', `${API}/me`);
      t.equal(expired.status, 401, 'past its expiresAt');
      t.match(expired.body.detail, /revoked or expired/);
      t.equal((await as(good)('GET', `${API}/me`)).status, 200, 'a longer one still works');
    } finally {
      offset = 0;
    }
    t.equal((await admin('PATCH', `${API}/principals/${machine.id}`, { active: false })).status, 200);
    t.equal((await as(good)('GET', `${API}/me`)).status, 401, 'deactivated principal');
    t.equal((await admin('PATCH', `${API}/principals/${machine.id}`, { active: true })).status, 200);
    t.equal((await as(good)('GET', `${API}/me`)).status, 200, 'active again');
  });

  await t.test('bxchange admin issue-client-cert writes cert.pem and key.pem (0600) that authenticate; existing files are kept', async (t) => {
    const out = path.join(dir, 'issued');
    const env = { BXCHANGE_URL: `https://127.0.0.1:${port}`, BXCHANGE_TOKEN: ADMIN_TOKEN, NODE_EXTRA_CA_CERTS: files.ca };
    const res = await run(process.execPath, [BIN, 'admin', 'issue-client-cert', 'ixelles-bo', '--out', out, '--label', 'cli'], env);
    t.equal(res.code, 0, res.stderr);
    const printed = JSON.parse(res.stdout);
    t.match(printed, { label: 'cli', principal: machine.id, certificate: path.join(out, 'cert.pem'), privateKey: path.join(out, 'key.pem') });
    t.notOk(res.stdout.includes('PRIVATE KEY') || res.stderr.includes('PRIVATE KEY'), 'the key is never printed');
    for (const name of ['cert.pem', 'key.pem']) t.equal((await stat(path.join(out, name))).mode & 0o777, 0o600, `${name} is 0600`);
    const { readFile } = await import('node:fs/promises');
    const cert = await readFile(path.join(out, 'cert.pem'), 'utf8');
    const key = await readFile(path.join(out, 'key.pem'), 'utf8');
    t.equal(certificateFingerprint(cert), printed.fingerprint);
    t.match((await as({ cert, key })('GET', `${API}/me`)).body, { name: 'ixelles-bo' });

    const again = await run(process.execPath, [BIN, 'admin', 'issue-client-cert', 'ixelles-bo', '--out', out], env);
    t.equal(again.code, 2, 'refuses to replace the files');
    t.match(again.stderr, /already exists/);
    t.equal(await readFile(path.join(out, 'key.pem'), 'utf8'), key, 'the key is untouched');

    const revoked = await run(process.execPath, [BIN, 'admin', 'revoke-client-cert', 'ixelles-bo', printed.id], env);
    t.equal(revoked.code, 0, revoked.stderr);
    t.equal((await as({ cert, key })('GET', `${API}/me`)).status, 401, 'revoked through the CLI');
  });

  await t.test('a revoked certificate is refused at once; revoking is idempotent and scoped to the principal', async (t) => {
    const del = await admin('DELETE', `${API}/principals/${machine.id}/client-certificates/${issued.body.id}`);
    t.equal(del.status, 204);
    const res = await as(good)('GET', `${API}/me`);
    t.equal(res.status, 401);
    t.match(res.body.detail, /revoked/);
    t.equal((await admin('DELETE', `${API}/principals/${machine.id}/client-certificates/${issued.body.id}`)).status, 204, 'again');
    t.equal((await admin('DELETE', `${API}/principals/${user.id}/client-certificates/${issued.body.id}`)).status, 404, 'another principal’s');
    t.equal((await admin('DELETE', `${API}/principals/${machine.id}/tokens/${issued.body.id}`)).status, 404, 'not a token');
    const listed = await admin('GET', `${API}/principals/${machine.id}/client-certificates`);
    t.ok(listed.body.items.find((c: any) => c.id === issued.body.id).revokedAt, 'listed as revoked');
  });
});

forEachBackend(t, 'client certificates without a CA key', async (t, parts) => {
  const pki = await testPki();
  const { caKeyPem: _dropped, ...withoutKey } = pki;
  const api = await startApp(t, await parts());
  // A second app on the same database, built on a PKI without ca.key (production with an external CA).
  const { createServices } = await import('../../src/services.ts');
  const { buildApp } = await import('../../src/app.ts');
  const { hashSecret } = await import('../../src/domain/directory.ts');
  const services = await createServices(api.services.config, { database: api.services.database, blobStore: api.services.blobStore, adminTokenHash: hashSecret(ADMIN_TOKEN), pki: withoutKey });
  const app = await buildApp({ services, logger: false });
  t.teardown(() => app.close());
  const machine = JSON.parse((await api.call('POST', `${API}/principals`, { body: { name: 'zp-bo', kind: 'machine' } })).body);
  const res = await app.inject({ method: 'POST', url: `${API}/principals/${machine.id}/client-certificates`, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, payload: '{}' });
  t.equal(res.statusCode, 409);
  t.match(JSON.parse(res.body), { detail: /no CA private key \(ca\.key/ });
  t.equal(JSON.parse((await api.call('GET', `${API}/principals/${machine.id}/client-certificates`)).body).items.length, 0, 'nothing registered');
});
