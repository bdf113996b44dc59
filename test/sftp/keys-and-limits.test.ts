/**
 * SSH keys of principals (the SFTP door's credentials) through the API, and
 * the door's limits, with the real OpenSSH client: only registered, active
 * keys open a session; revoking one refuses the next login at once; one
 * principal's concurrent sessions are capped.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { forEachBackend, startApp, tempDir } from '../helpers/backends.ts';
import { json } from '../helpers/problem.ts';
import { batch, run, sshKey, startDoor } from './helpers.ts';

const API = '/api/v1';

await forEachBackend(t, 'SSH keys and session limits', async (t, parts) => {
  const api = await startApp(t, await parts());
  const dir = await tempDir(t, 'bx-sftp-keys-');
  await api.call('POST', `${API}/entities`, { body: { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' } });
  await api.call('POST', `${API}/entities/ixelles/mailboxes`, { body: { name: 'secretariat' } });
  const principal = json(await api.call('POST', `${API}/principals`, { body: { name: 'ixelles-backoffice', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read'] }] } }));
  const other = json(await api.call('POST', `${API}/principals`, { body: { name: 'someone-else', kind: 'machine', memberships: [] } }));
  const otherToken = json(await api.call('POST', `${API}/principals/${other.id}/tokens`, { body: {} })).token as string;
  const keyFile = await sshKey(dir, 'backoffice');
  const publicKey = await readFile(`${keyFile}.pub`, 'utf8');
  const user = { name: 'ixelles-backoffice', keyFile };

  await t.test('registering: well-formed keys only, each once, by an administrator', async (t) => {
    const bad = await api.call('POST', `${API}/principals/${principal.id}/ssh-keys`, { body: { publicKey: 'ssh-ed25519 AAAAnotakey' } });
    t.equal(bad.statusCode, 400);
    const rsaFile = path.join(dir, 'rsa2048');
    await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsaFile]);
    const weak = await api.call('POST', `${API}/principals/${principal.id}/ssh-keys`, { body: { publicKey: await readFile(`${rsaFile}.pub`, 'utf8') } });
    t.equal(weak.statusCode, 400, 'RSA under 3072 bits is refused');
    t.match(json(weak).issues[0].detail, /3072/);
    const byOther = await api.call('POST', `${API}/principals/${principal.id}/ssh-keys`, { token: otherToken, body: { publicKey } });
    t.equal(byOther.statusCode, 404, 'another principal does not even see it');
    const created = await api.call('POST', `${API}/principals/${principal.id}/ssh-keys`, { body: { publicKey } });
    t.equal(created.statusCode, 201);
    const key = json(created);
    const { stdout } = await run('ssh-keygen', ['-l', '-f', `${keyFile}.pub`]);
    t.equal(key.fingerprint, stdout.split(' ')[1], 'the fingerprint ssh-keygen -l prints');
    t.equal(key.label, 'backoffice@backoffice', 'the comment is the default label');
    const again = await api.call('POST', `${API}/principals/${other.id}/ssh-keys`, { body: { publicKey } });
    t.equal(again.statusCode, 409, 'a key opens one principal only');
    const listed = json(await api.call('GET', `${API}/principals/${principal.id}/ssh-keys`));
    t.equal(listed.items.length, 1);
  });

  await t.test('sessions per principal are capped; a revoked key is refused at once', async (t) => {
    const door = await startDoor(t, api, dir, { SFTP_MAX_SESSIONS: '1' });
    const first = await batch(door.port, user, ['ls /'], dir);
    t.equal(first.code, 0, 'the first session works');
    // Session A stays open (interactive sftp reading its stdin) while B tries to log in.
    const a = spawn('/usr/bin/sftp', ['-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-i', keyFile, '-P', String(door.port), `${user.name}@127.0.0.1`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    a.stdout.on('data', (d: Buffer) => (out += d.toString()));
    a.stdin.write('pwd\n');
    for (let i = 0; i < 100 && !out.includes('Remote working directory'); i++) await new Promise((r) => setTimeout(r, 50));
    t.match(out, /Remote working directory/, 'session A is open');
    const second = await batch(door.port, user, ['ls /'], dir);
    t.not(second.code, 0, 'a second concurrent session is refused');
    a.stdin.end('bye\n');
    await new Promise((r) => a.on('close', r));
    await new Promise((r) => setTimeout(r, 200));
    const third = await batch(door.port, user, ['ls /'], dir);
    t.equal(third.code, 0, 'once A ended, a new session works');
    const keyId = json(await api.call('GET', `${API}/principals/${principal.id}/ssh-keys`)).items[0].id;
    t.equal((await api.call('DELETE', `${API}/principals/${principal.id}/ssh-keys/${keyId}`)).statusCode, 204);
    const revoked = await batch(door.port, user, ['ls /'], dir);
    t.not(revoked.code, 0, 'the revoked key no longer logs in');
  });
});

t.test('the generated host key always parses (ssh2 1.17 makes a malformed one about once in 200)', async (t) => {
  const { ensureHostKey } = await import('../../src/sftp/server.ts');
  const ssh2 = (await import('ssh2')).default;
  const dir = await tempDir(t, 'bx-sftp-hostkey-');
  for (let i = 0; i < 400; i++) {
    const key = await ensureHostKey(path.join(dir, `host-${i}.key`));
    if (ssh2.utils.parseKey(key) instanceof Error) t.fail(`key ${i} does not parse`);
  }
  const again = await ensureHostKey(path.join(dir, 'host-0.key'));
  t.equal(again, await readFile(path.join(dir, 'host-0.key'), 'utf8'), 'an existing key is reused');
});
