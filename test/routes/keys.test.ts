/**
 * Mailbox keys through the HTTP door, on every backend: publishing, reading,
 * listing and rotating the OpenPGP public key with the role rules; the
 * refusals, each naming the field; the locked private key's deposit and
 * download; interop with keys made by the real gpg 2.2; the audit entries;
 * and `bxchange keygen` run as a back office runs it, against a real server
 * on a real port.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { like } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { auditEvents } from '../../src/db/schema.ts';
import { decryptFile, encryptFileToSpool, generateMailboxKey } from '../../src/sdk/index.ts';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { withService } from '../helpers/services.ts';
import { gpgFingerprint, gpgHome, gpgService } from '../sdk/gpg.ts';

const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));
const PASS = 'a long enough passphrase';
const IXELLES = 'secretariat@ixelles';
const UCCLE = 'secretariat@uccle';
const BAD_REQUEST = 'urn:problem-type:belgif:badRequest';
const NOT_FOUND = 'urn:problem-type:belgif:resourceNotFound';
const FORBIDDEN = 'urn:problem-type:bxchange:forbidden';

function json(res: LightMyRequestResponse): any {
  return JSON.parse(res.body);
}

/** Asserts an RFC 9457 answer and returns it. */
function problem(t: Test, res: LightMyRequestResponse, status: number, type: string): any {
  t.equal(res.statusCode, status, `status ${status}`);
  t.match(res.headers['content-type'], /^application\/problem\+json/, 'problem+json');
  const body = json(res);
  t.equal(body.type, type);
  t.ok(typeof body.detail === 'string' && body.detail.length > 0, 'has a human detail');
  t.notMatch(res.body, /at .*\.ts:\d+|SELECT|INSERT|postgres|drizzle|openpgp\.js|Error (decrypting|during parsing)|Misformed/i, 'no internals leak');
  return body;
}

/** A 400 naming `field`, whose detail matches `detail`. */
function refusal(t: Test, res: LightMyRequestResponse, field: string, detail: RegExp): void {
  const body = problem(t, res, 400, BAD_REQUEST);
  t.match(body.issues, [{ in: 'body', name: field, detail }], `names ${field}: ${body.issues?.[0]?.detail}`);
}

/** Keys made once for every backend (generation is fast, but not free). */
async function fixtures() {
  const now = Date.now();
  const unlockedEcc = (email: string, options: { date?: Date; keyExpirationTime?: number } = {}) =>
    openpgp.generateKey({ type: 'ecc', userIDs: [{ name: email, email }], format: 'object', ...options });
  const revoked = await unlockedEcc(IXELLES);
  const expired = await unlockedEcc(IXELLES, { date: new Date(now - 10 * 86_400_000), keyExpirationTime: 86_400 });
  const x25519 = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ email: IXELLES }], format: 'armored' });
  const v6 = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ email: IXELLES }], format: 'armored', config: { v6Keys: true } });
  const aead = await openpgp.generateKey({ type: 'ecc', userIDs: [{ email: IXELLES }], format: 'armored', config: { aeadProtect: true } });
  const first = await generateMailboxKey({ address: IXELLES, passphrase: PASS });
  // The same key with only its primary secret locked: the subkey's secret is in the clear.
  const halfLocked = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: first.privateKeyArmored }), passphrase: PASS });
  await (halfLocked.keyPacket as openpgp.SecretKeyPacket).encrypt(PASS);
  return {
    first,
    second: await generateMailboxKey({ address: IXELLES, passphrase: PASS }),
    racers: [await generateMailboxKey({ address: IXELLES, passphrase: PASS }), await generateMailboxKey({ address: IXELLES, passphrase: PASS })],
    uccle: await generateMailboxKey({ address: UCCLE, passphrase: PASS }),
    revoked: (await openpgp.revokeKey({ key: revoked.privateKey, format: 'armored' })).publicKey,
    expired: expired.publicKey.armor(),
    x25519: x25519.publicKey,
    v6: v6.publicKey,
    aead: aead.publicKey,
    unlockedPrivate: (await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: first.privateKeyArmored }), passphrase: PASS })).armor(),
    halfLocked: halfLocked.armor(),
  };
}

const keys = await fixtures();

/** Entities, mailboxes and principals with the roles the rules distinguish. */
async function setup(api: TestApp) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  for (const id of ['ixelles', 'uccle']) {
    await post('/api/v1/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`/api/v1/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  const token = async (name: string, mailbox: string, roles: string[]) => {
    const principal = await post('/api/v1/principals', { name, kind: 'machine', memberships: [{ mailbox, roles }] });
    return (await post(`/api/v1/principals/${principal.id}/tokens`, {})).token as string;
  };
  return {
    manager: await token('ixelles-it', IXELLES, ['read', 'send', 'manage']),
    clerk: await token('ixelles-clerk', IXELLES, ['read', 'send']),
    sendOnly: await token('ixelles-robot', IXELLES, ['send']),
    outsider: await token('uccle-bo', UCCLE, ['read', 'send', 'manage']),
  };
}

const keyUrl = (address: string, what = 'key') => `/api/v1/mailboxes/${address}/${what}`;

forEachBackend(t, 'mailbox keys', async (t, parts) => {
  const api = await startApp(t, await parts());
  const s = await setup(api);
  const put = (token: string, body: unknown, address = IXELLES, what = 'key') => api.call('PUT', keyUrl(address, what), { token, body });
  const get = (token: string, address = IXELLES, what = 'key') => api.call('GET', keyUrl(address, what), { token });

  t.test('a mailbox without a key answers 404 noMailboxKey, and lists no keys', async (t) => {
    const body = problem(t, await get(s.outsider), 404, 'urn:problem-type:bxchange:noMailboxKey');
    t.match(body.detail, /secretariat@ixelles has no key/);
    t.same(json(await get(s.clerk, IXELLES, 'keys')).items, []);
    problem(t, await get(s.clerk, IXELLES, 'private-key'), 404, 'urn:problem-type:bxchange:noPrivateKey');
  });

  t.test('publishing needs the manage role: 403 for a member without it, 404 for a non-member or an unknown mailbox', async (t) => {
    problem(t, await put(s.clerk, { publicKey: keys.first.publicKeyArmored }), 403, FORBIDDEN);
    problem(t, await put(s.outsider, { publicKey: keys.first.publicKeyArmored }), 404, NOT_FOUND);
    problem(t, await put(s.manager, { publicKey: keys.first.publicKeyArmored }, 'nobody@ixelles'), 404, NOT_FOUND);
    problem(t, await get(s.manager), 404, 'urn:problem-type:bxchange:noMailboxKey');
  });

  t.test('a manager publishes the key; any authenticated caller reads it; only members list the keys', async (t) => {
    const res = await put(s.manager, { publicKey: keys.first.publicKeyArmored });
    t.equal(res.statusCode, 200, res.body);
    const published = json(res);
    t.match(published, {
      mailbox: IXELLES,
      fingerprint: keys.first.fingerprint,
      keyId: keys.first.keyId,
      encryptionKeyIds: keys.first.encryptionKeyIds,
      state: 'active',
      expiresAt: null,
      hasPrivateKey: false,
      retired: null,
      refreshed: false,
    });
    const created = (await openpgp.readKey({ armoredKey: keys.first.publicKeyArmored })).getCreationTime();
    t.equal(published.createdAt, created.toISOString(), "createdAt is the OpenPGP key's creation time");

    const read = await get(s.outsider);
    t.equal(read.statusCode, 200, 'another commune (a sender) reads it');
    const body = json(read);
    t.equal(body.fingerprint, keys.first.fingerprint);
    const served = await openpgp.readKey({ armoredKey: body.publicKey });
    t.equal(served.getFingerprint(), keys.first.fingerprint, 'the armored key served is the one published');
    t.notOk(served.isPrivate(), 'and public');

    problem(t, await get(s.outsider, IXELLES, 'keys'), 404, NOT_FOUND);
    const listed = json(await get(s.clerk, IXELLES, 'keys'));
    t.match(listed.items, [{ fingerprint: keys.first.fingerprint, state: 'active', retiredAt: null, hasPrivateKey: false }]);
    t.equal(json(await get(api.adminToken, IXELLES, 'keys')).items.length, 1, 'an administrator lists them too');
    problem(t, await api.call('GET', keyUrl(IXELLES), { token: null }), 401, 'urn:problem-type:belgif:noAccessToken');
  });

  t.test('a refused key names the field and why, and changes nothing', async (t) => {
    refusal(t, await put(s.manager, { publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummy comment' }), '/publicKey', /Not an ASCII-armored OpenPGP public key/);
    refusal(t, await put(s.manager, { publicKey: '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n' }), '/publicKey', /Not a readable/);
    refusal(t, await put(s.manager, { publicKey: keys.v6 }), '/publicKey', /v6 key: mailbox keys must be v4/);
    refusal(t, await put(s.manager, { publicKey: keys.uccle.publicKeyArmored }), '/publicKey', /No valid user ID names the mailbox secretariat@ixelles.*secretariat@uccle/);
    refusal(t, await put(s.manager, { publicKey: keys.expired }), '/publicKey', /expired/);
    refusal(t, await put(s.manager, { publicKey: keys.revoked }), '/publicKey', /revoked/);
    refusal(t, await put(s.manager, { publicKey: keys.x25519 }), '/publicKey', /primary key is ed25519.*Curve25519/);
    refusal(t, await put(s.manager, { publicKey: keys.aead }), '/publicKey', /SEIPDv2 \(AEAD\)/);
    refusal(t, await put(s.manager, { publicKey: keys.first.privateKeyArmored }), '/publicKey', /This is a private key/);
    refusal(t, await put(s.manager, { publicKey: keys.second.publicKeyArmored + keys.racers[0]!.publicKeyArmored }), '/publicKey', /Holds 2 armored blocks/);
    const tooLong = await put(s.manager, { publicKey: `-----BEGIN PGP PUBLIC KEY BLOCK-----\n${'A'.repeat(70_000)}` });
    t.match(problem(t, tooLong, 400, BAD_REQUEST).issues, [{ name: '/publicKey' }]);
    t.equal(json(await get(s.clerk)).fingerprint, keys.first.fingerprint, 'the published key is still the active one');
    t.equal(json(await get(s.clerk, IXELLES, 'keys')).items.length, 1, 'nothing was stored');
  });

  t.test('the private key is deposited only locked, and only for a key of this mailbox', async (t) => {
    refusal(t, await put(s.manager, { privateKey: keys.unlockedPrivate }, IXELLES, 'private-key'), '/privateKey', /not locked/);
    refusal(t, await put(s.manager, { privateKey: keys.halfLocked }, IXELLES, 'private-key'), '/privateKey', new RegExp(`not locked: the secret of ${keys.first.encryptionKeyIds[0]} is not encrypted`));
    refusal(t, await put(s.manager, { privateKey: keys.uccle.privateKeyArmored }, IXELLES, 'private-key'), '/privateKey', /does not match any key of mailbox secretariat@ixelles/);
    refusal(t, await put(s.manager, { privateKey: keys.first.publicKeyArmored }, IXELLES, 'private-key'), '/privateKey', /This is a public key/);
    problem(t, await put(s.clerk, { privateKey: keys.first.privateKeyArmored }, IXELLES, 'private-key'), 403, FORBIDDEN);
    problem(t, await put(s.outsider, { privateKey: keys.first.privateKeyArmored }, IXELLES, 'private-key'), 404, NOT_FOUND);
    problem(t, await get(s.clerk, IXELLES, 'private-key'), 404, 'urn:problem-type:bxchange:noPrivateKey');

    const res = await put(s.manager, { privateKey: keys.first.privateKeyArmored }, IXELLES, 'private-key');
    t.equal(res.statusCode, 200, res.body);
    t.match(json(res), { fingerprint: keys.first.fingerprint, state: 'active', privateKeyAt: String });
    t.equal(json(await get(s.clerk, IXELLES, 'keys')).items[0].hasPrivateKey, true);
  });

  t.test('members with read download the locked private key; it unlocks with the passphrase only on their side', async (t) => {
    const res = await get(s.clerk, IXELLES, 'private-key');
    t.equal(res.statusCode, 200);
    t.equal(res.headers['cache-control'], 'no-store');
    const [item] = json(res).items;
    t.match(item, { fingerprint: keys.first.fingerprint, state: 'active' });
    const downloaded = await openpgp.readPrivateKey({ armoredKey: item.privateKey });
    t.notOk(downloaded.isDecrypted(), 'still locked');
    t.notMatch(res.body, new RegExp(PASS), 'no passphrase anywhere');
    // End to end: a file encrypted to the published key decrypts with the downloaded private key.
    const dir = await tempDir(t);
    await writeFile(path.join(dir, 'act.pdf'), 'a municipal act');
    await encryptFileToSpool(path.join(dir, 'act.pdf'), path.join(dir, 'act.pdf.pgp'), [json(await get(s.outsider)).publicKey]);
    await decryptFile(path.join(dir, 'act.pdf.pgp'), path.join(dir, 'back.pdf'), item.privateKey, PASS);
    t.equal(await readFile(path.join(dir, 'back.pdf'), 'utf8'), 'a municipal act');

    problem(t, await get(s.sendOnly, IXELLES, 'private-key'), 403, FORBIDDEN);
    problem(t, await get(s.outsider, IXELLES, 'private-key'), 404, NOT_FOUND);
    problem(t, await get(api.adminToken, IXELLES, 'private-key'), 403, FORBIDDEN);
  });

  t.test('rotation: the new key becomes active, the old one retired and still downloadable to read older files', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, 'old.txt'), 'sent before the rotation');
    await encryptFileToSpool(path.join(dir, 'old.txt'), path.join(dir, 'old.pgp'), [json(await get(s.outsider)).publicKey]);

    const res = await put(s.manager, { publicKey: keys.second.publicKeyArmored, privateKey: keys.second.privateKeyArmored });
    t.equal(res.statusCode, 200, res.body);
    t.match(json(res), { fingerprint: keys.second.fingerprint, state: 'active', retired: keys.first.fingerprint, hasPrivateKey: true });
    t.equal(json(await get(s.outsider)).fingerprint, keys.second.fingerprint, 'senders now get the new key');

    const listed = json(await get(s.clerk, IXELLES, 'keys')).items;
    t.match(listed, [
      { fingerprint: keys.second.fingerprint, state: 'active', retiredAt: null },
      { fingerprint: keys.first.fingerprint, state: 'retired', retiredAt: String, hasPrivateKey: true },
    ]);

    const privateKeys = json(await get(s.clerk, IXELLES, 'private-key')).items;
    t.same(privateKeys.map((k: any) => [k.fingerprint, k.state]), [[keys.second.fingerprint, 'active'], [keys.first.fingerprint, 'retired']]);
    const retired = privateKeys.find((k: any) => k.state === 'retired');
    await decryptFile(path.join(dir, 'old.pgp'), path.join(dir, 'old.out'), retired.privateKey, PASS);
    t.equal(await readFile(path.join(dir, 'old.out'), 'utf8'), 'sent before the rotation', 'the older file reads with the retired key');

    const back = await put(s.manager, { publicKey: keys.first.publicKeyArmored });
    t.match(problem(t, back, 409, 'urn:problem-type:bxchange:conflict').detail, /retired key cannot become active again/);
    const again = await put(s.manager, { publicKey: keys.second.publicKeyArmored });
    t.equal(again.statusCode, 200, 'publishing the active key again refreshes it');
    t.match(json(again), { refreshed: true, retired: null, hasPrivateKey: true });
  });

  t.test('two rotations at once leave exactly one active key', async (t) => {
    const [a, b] = await Promise.all(keys.racers.map((k) => put(s.manager, { publicKey: k.publicKeyArmored })));
    t.ok([a!.statusCode, b!.statusCode].every((c) => c === 200 || c === 409), `answers ${a!.statusCode}, ${b!.statusCode}`);
    const listed = json(await get(s.clerk, IXELLES, 'keys')).items;
    t.equal(listed.filter((k: any) => k.state === 'active').length, 1, 'one active key');
    t.equal(listed[0].fingerprint, json(await get(s.outsider)).fingerprint, 'the one served');
  });

  t.test('every change is in the audit chain, and so is every private key download', async (t) => {
    const rows = await api.services.database.db.select().from(auditEvents).where(like(auditEvents.action, 'mailboxKey.%'));
    const actions = rows.map((r) => r.action);
    t.ok(actions.filter((a) => a === 'mailboxKey.publish').length >= 3, 'publications');
    t.ok(actions.includes('mailboxKey.depositPrivateKey'), 'the deposit');
    t.ok(actions.includes('mailboxKey.refresh'), 'the refresh');
    t.ok(actions.includes('mailboxKey.readPrivateKey'), 'the downloads');
    t.match(rows.find((r) => r.action === 'mailboxKey.depositPrivateKey'), { actor: 'ixelles-it', subject: IXELLES, door: 'http', data: { fingerprint: keys.first.fingerprint } });
    t.notOk(rows.some((r) => JSON.stringify(r.data).includes('PRIVATE KEY')), 'no key material in the audit data');
    t.equal((await api.services.auditLog.verify()).valid, true, 'the chain verifies');
  });

  withService(t, gpgService(), 'keys made by gpg 2.2', async (t) => {
    const gpg = await gpgHome(t);
    const dir = await tempDir(t);
    await gpg.run(['--quick-gen-key', UCCLE, 'future-default', 'default', 'never'], { passphrase: PASS });
    await gpg.run(['--quick-gen-key', 'unlocked@uccle', 'future-default', 'default', 'never'], { passphrase: '' });
    const exported = async (args: string[], file: string, passphrase?: string) => {
      const { stdout } = await gpg.run(['--armor', ...args], passphrase === undefined ? {} : { passphrase });
      await writeFile(path.join(dir, file), stdout);
      return stdout;
    };
    const publicKey = await exported(['--export', UCCLE], 'uccle.asc');
    const fingerprint = gpgFingerprint(await gpg.showKeys(path.join(dir, 'uccle.asc')));

    t.test('gpg --quick-gen-key ADDR future-default makes an acceptable key, and its exported secret key is locked', async (t) => {
      const res = await put(s.outsider, { publicKey }, UCCLE);
      t.equal(res.statusCode, 200, res.body);
      t.equal(json(res).fingerprint, fingerprint, 'the fingerprint gpg computes');
      const secret = await exported(['--export-secret-keys', UCCLE], 'uccle.sec.asc', PASS);
      const deposit = await put(s.outsider, { privateKey: secret }, UCCLE, 'private-key');
      t.equal(deposit.statusCode, 200, deposit.body);
    });

    t.test('a gpg key without a passphrase is refused as unlocked', async (t) => {
      const unlocked = await exported(['--export-secret-keys', 'unlocked@uccle'], 'unlocked.sec.asc');
      refusal(t, await put(s.outsider, { privateKey: unlocked }, UCCLE, 'private-key'), '/privateKey', /not locked/);
    });

    t.test('a file the SDK encrypts to the served key decrypts with gpg; the downloaded private key works in another gpg', async (t) => {
      await writeFile(path.join(dir, 'budget.xlsx'), randomBytes(100_000));
      await encryptFileToSpool(path.join(dir, 'budget.xlsx'), path.join(dir, 'budget.pgp'), [json(await get(s.manager, UCCLE)).publicKey]);
      const other = await gpgHome(t);
      const downloaded = json(await get(s.outsider, UCCLE, 'private-key')).items[0].privateKey;
      await other.importKey(downloaded, path.join(dir, 'downloaded.asc'));
      await other.run(['--decrypt', '--output', path.join(dir, 'budget.out'), path.join(dir, 'budget.pgp')], { passphrase: PASS });
      t.ok((await readFile(path.join(dir, 'budget.out'))).equals(await readFile(path.join(dir, 'budget.xlsx'))), 'same bytes');
    });
  });
});

// ---------------------------------------------------------------- bxchange keygen

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/bxchange.js …` with only the environment given and no terminal. */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

forEachBackend(t, 'bxchange keygen', async (t, parts) => {
  const api = await startApp(t, await parts());
  const s = await setup(api);
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  const as = (token: string, extra: Record<string, string> = {}) => ({ BXCHANGE_URL: url, BXCHANGE_TOKEN: token, ...extra });
  const active = async () => {
    const res = await api.call('GET', keyUrl(IXELLES), { token: s.outsider });
    return res.statusCode === 200 ? (json(res).fingerprint as string) : null;
  };

  t.test('without BXCHANGE_KEY_PASSPHRASE and without a terminal, keygen refuses and publishes nothing', async (t) => {
    const run = await cli(['keygen', '--mailbox', IXELLES], as(s.manager));
    t.equal(run.code, 2, run.stderr);
    t.match(run.stderr, /no passphrase: set BXCHANGE_KEY_PASSPHRASE, or run keygen on a terminal/);
    t.equal(await active(), null);
    const short = await cli(['keygen', '--mailbox', IXELLES], as(s.manager, { BXCHANGE_KEY_PASSPHRASE: 'short' }));
    t.equal(short.code, 2);
    t.match(short.stderr, /at least 12 characters/);
  });

  t.test('a member without manage is refused by the server (exit 3)', async (t) => {
    const run = await cli(['keygen', '--mailbox', IXELLES], as(s.clerk, { BXCHANGE_KEY_PASSPHRASE: PASS }));
    t.equal(run.code, 3, run.stderr);
    t.match(run.stderr, /Forbidden \(403\).*manage role/);
    t.equal(await active(), null);
  });

  let first: string | undefined;
  t.test('keygen deposits the public key and the private key locked with the passphrase from the environment', async (t) => {
    const dir = await tempDir(t);
    const revocation = path.join(dir, 'revocation.asc');
    const run = await cli(['keygen', '--mailbox', IXELLES, '--revocation-certificate', revocation], as(s.manager, { BXCHANGE_KEY_PASSPHRASE: PASS }));
    t.equal(run.code, 0, run.stderr);
    t.match(run.stdout, /^[0-9a-f]{40}\n$/, 'prints the fingerprint only');
    first = run.stdout.trim();
    t.notMatch(run.stdout + run.stderr, new RegExp(PASS), 'never prints the passphrase');
    t.equal(await active(), first, 'the API serves it to senders');

    const served = await openpgp.readKey({ armoredKey: json(await api.call('GET', keyUrl(IXELLES), { token: s.outsider })).publicKey });
    t.ok(served.getUserIDs().some((id) => id.includes(`<${IXELLES}>`)), 'its user ID names the mailbox');
    const items = json(await api.call('GET', keyUrl(IXELLES, 'private-key'), { token: s.clerk })).items;
    t.equal(items[0].fingerprint, first, 'its private key was deposited');
    const locked = await openpgp.readPrivateKey({ armoredKey: items[0].privateKey });
    t.notOk(locked.isDecrypted(), 'locked');
    await t.rejects(openpgp.decryptKey({ privateKey: locked, passphrase: 'another passphrase' }), 'not with another passphrase');
    t.ok((await openpgp.decryptKey({ privateKey: locked, passphrase: PASS })).isDecrypted(), 'unlocked with the one from BXCHANGE_KEY_PASSPHRASE');
    t.match(await readFile(revocation, 'utf8'), /BEGIN PGP PUBLIC KEY BLOCK/, 'the revocation certificate was written');
  });

  t.test('a second keygen keeps the key unless --rotate; with it the old key is retired', async (t) => {
    const keep = await cli(['keygen', '--mailbox', IXELLES], as(s.manager, { BXCHANGE_KEY_PASSPHRASE: PASS }));
    t.equal(keep.code, 2, keep.stderr);
    t.match(keep.stderr, /already has the key .* give --rotate/);
    t.equal(await active(), first);
    const rotate = await cli(['keygen', '--mailbox', IXELLES, '--rotate'], as(s.manager, { BXCHANGE_KEY_PASSPHRASE: PASS }));
    t.equal(rotate.code, 0, rotate.stderr);
    t.match(rotate.stderr, new RegExp(`the key ${first} is now retired`));
    t.equal(await active(), rotate.stdout.trim());
    const listed = json(await api.call('GET', keyUrl(IXELLES, 'keys'), { token: s.clerk })).items;
    t.same(listed.map((k: any) => [k.fingerprint, k.state, k.hasPrivateKey]), [
      [rotate.stdout.trim(), 'active', true],
      [first, 'retired', true],
    ]);
  });

  t.test('keygen --help describes the passphrase rules', async (t) => {
    const run = await cli(['keygen', '--help'], {});
    t.equal(run.code, 0);
    t.match(run.stdout, /BXCHANGE_KEY_PASSPHRASE/);
    t.match(run.stdout, /--rotate/);
  });
});
