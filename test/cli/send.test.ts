/**
 * `bxchange send | inbox | fetch | ack` as a back office runs them: the real
 * bin script in a child process, against a real server on a real port (every
 * backend). Outcomes are checked through the API and the bytes on disk,
 * hashed here, never through the CLI itself.
 *
 * The interrupted send is made deterministic without timing: the CLI talks to
 * the server through a TCP relay (GateRelay) that stops forwarding once a set
 * number of bytes went up, so the upload is stuck part-way, for certain,
 * until the test kills the CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, truncate, writeFile, copyFile, rm } from 'node:fs/promises';
import { createServer as createNetServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';

const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));
const MiB = 1024 * 1024;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `node bin/bxchange.js …` with only the environment given; `done` resolves when it exits. */
function start(args: string[], env: Record<string, string>, cwd: string): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Polls `probe` until it returns a value (bounded, so a broken CLI fails the test instead of hanging it). */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 1200; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * A TCP relay in front of the server. Client-to-server bytes are counted;
 * once `limit` would be exceeded, nothing more is forwarded upstream (on any
 * connection) until `open()`; server-to-client bytes always pass.
 */
class GateRelay {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #target: number;
  limit = Number.POSITIVE_INFINITY;
  forwarded = 0;
  stalled = false;

  constructor(targetPort: number) {
    this.#target = targetPort;
    this.#server = createNetServer((client) => this.#relay(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as AddressInfo).port;
  }

  #relay(client: Socket): void {
    const upstream = connect(this.#target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      if (this.stalled || this.forwarded + chunk.length > this.limit) {
        this.stalled = true;
        client.pause();
        return;
      }
      this.forwarded += chunk.length;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => {
          if (!this.stalled) client.resume();
        });
      }
    });
  }

  /** Cuts every connection (the server sees its requests end) and lets everything through from now on. */
  open(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.stalled = false;
    this.limit = Number.POSITIVE_INFINITY;
    this.forwarded = 0;
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

async function listen(api: TestApp): Promise<number> {
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  return (api.app.server.address() as AddressInfo).port;
}

/** Entities, mailboxes, principals and tokens, through the admin API. */
async function setup(api: TestApp) {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle', 'evere']) {
    await post('/api/v1/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`/api/v1/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  const token = async (name: string, mailbox: string, roles: string[]) => {
    const principal = await post('/api/v1/principals', { name, kind: 'machine', memberships: [{ mailbox, roles }] });
    return (await post(`/api/v1/principals/${principal.id}/tokens`, {})).token as string;
  };
  return {
    sender: await token('ixelles-bo', 'secretariat@ixelles', ['read', 'send']),
    recipient: await token('uccle-bo', 'secretariat@uccle', ['read']),
    stranger: await token('evere-bo', 'secretariat@evere', ['read', 'send']),
  };
}

forEachBackend(t, 'send, inbox, fetch and ack with the CLI', async (t, parts) => {
  const api = await startApp(t, await parts());
  const port = await listen(api);
  const url = `http://127.0.0.1:${port}`;
  const tokens = await setup(api);
  const stateHome = await tempDir(t, 'bx-state-');
  const work = await tempDir(t, 'bx-files-');
  const cli = (token: string, args: string[], base = url) => start(args, { BXCHANGE_URL: base, BXCHANGE_TOKEN: token, XDG_STATE_HOME: stateHome }, work).done;
  const stateFiles = async () => {
    const dir = path.join(stateHome, 'bxchange');
    return existsSync(dir) ? (await readdir(dir)).filter((name) => /^send-.*\.json$/.test(name)).map((name) => path.join(dir, name)) : [];
  };
  const asSender = async (method: 'GET' | 'HEAD', target: string) =>
    fetch(new URL(target, url), { method, headers: { authorization: `Bearer ${tokens.sender}`, 'tus-resumable': '1.0.0' } });

  const big = randomBytes(20 * MiB);
  const small = Buffer.from('Annexe: liste des pièces\n', 'utf8');
  await writeFile(path.join(work, 'act.pdf.gpg'), big);
  await writeFile(path.join(work, 'annex.txt'), small);
  let envelopeId = '';
  const fetched = path.join(work, 'fetched');

  await t.test('send: two files go into one submitted envelope, with their server SHA-256 matching', async (t) => {
    const res = await cli(tokens.sender, [
      'send',
      '--from',
      'secretariat@ixelles',
      '--to',
      'secretariat@uccle',
      '--subject',
      'Budget 2027',
      '--reference',
      'REF-42',
      'act.pdf.gpg',
      path.join(work, 'annex.txt'),
    ]);
    t.equal(res.code, 0, res.stderr);
    const printed = JSON.parse(res.stdout);
    envelopeId = printed.id;
    t.match(printed, { status: 'submitted', from: 'secretariat@ixelles', metadata: { subject: 'Budget 2027', reference: 'REF-42' } });
    t.match(res.stderr, /sent act\.pdf\.gpg \(20971520 bytes\)/, 'one line per file (stderr is not a terminal)');
    t.match(res.stderr, /sent annex\.txt/);
    t.notMatch(res.stderr, /Warning|\r/, 'no progress bar and no runtime warning in a log');
    t.same(await stateFiles(), [], 'the resume state is removed after the submission');

    // Independent check: the server's own view.
    const envelope: any = await (await asSender('GET', `/api/v1/envelopes/${envelopeId}`)).json();
    t.equal(envelope.status, 'submitted');
    t.match(envelope.recipients, [{ address: 'secretariat@uccle', status: 'delivered' }]);
    const byName = Object.fromEntries(envelope.files.map((f: { name: string }) => [f.name, f]));
    t.match(byName['act.pdf.gpg'], { size: big.length, sha256: sha256(big), mediaType: 'application/pgp-encrypted', complete: true });
    t.match(byName['annex.txt'], { size: small.length, sha256: sha256(small), mediaType: 'application/octet-stream', complete: true });
  });

  await t.test('inbox: the recipient lists it, the sender finds it in the outbox', async (t) => {
    const inbox = await cli(tokens.recipient, ['inbox', '--mailbox', 'secretariat@uccle']);
    t.equal(inbox.code, 0, inbox.stderr);
    t.match(JSON.parse(inbox.stdout), [{ id: envelopeId, from: 'secretariat@ixelles', type: 'general.letter', status: 'delivered', envelopeStatus: 'submitted' }]);
    const filtered = await cli(tokens.recipient, ['inbox', '--mailbox', 'secretariat@uccle', '--type', 'no.such.type']);
    t.equal(filtered.code, 0, filtered.stderr);
    t.same(JSON.parse(filtered.stdout), [], '--type filters');
    const delivered = await cli(tokens.recipient, ['inbox', '--mailbox', 'secretariat@uccle', '--status', 'delivered']);
    t.equal(delivered.code, 0, delivered.stderr);
    t.same(JSON.parse(delivered.stdout).map((e: { id: string }) => e.id), [envelopeId], '--status filters on the mailbox status in the inbox');
    const outbox = await cli(tokens.sender, ['inbox', '--mailbox', 'secretariat@ixelles', '--out']);
    t.equal(outbox.code, 0, outbox.stderr);
    t.same(JSON.parse(outbox.stdout).map((e: { id: string }) => e.id), [envelopeId]);
    const drafts = await cli(tokens.sender, ['inbox', '--mailbox', 'secretariat@ixelles', '--out', '--status', 'draft']);
    t.equal(drafts.code, 0, drafts.stderr);
    t.same(JSON.parse(drafts.stdout), [], '--status filters the outbox');
    const foreign = await cli(tokens.stranger, ['inbox', '--mailbox', 'secretariat@uccle']);
    t.equal(foreign.code, 3, 'another entity cannot list the mailbox');
  });

  await t.test('fetch: the recipient gets the identical bytes and envelope.json', async (t) => {
    const res = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched]);
    t.equal(res.code, 0, res.stderr);
    t.equal(sha256(await readFile(path.join(fetched, 'act.pdf.gpg'))), sha256(big), 'the big file is identical');
    t.same(await readFile(path.join(fetched, 'annex.txt')), small, 'the small file is identical');
    const saved = JSON.parse(await readFile(path.join(fetched, 'envelope.json'), 'utf8'));
    t.match(saved, { id: envelopeId, metadata: { subject: 'Budget 2027' }, recipients: [{ address: 'secretariat@uccle', status: 'retrieved' }] });
    t.same((await readdir(fetched)).sort(), ['act.pdf.gpg', 'annex.txt', 'envelope.json'], 'no .part is left');
    const summary = JSON.parse(res.stdout);
    t.match(summary, { envelope: envelopeId, files: [{ fetched: true }, { fetched: true }] });
  });

  await t.test('fetch: never overwrites a different file without --force; an identical one is kept; a .part resumes', async (t) => {
    const target = path.join(fetched, 'act.pdf.gpg');
    const tampered = Buffer.from('not the file');
    await writeFile(target, tampered);
    const refused = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched]);
    t.equal(refused.code, 2, refused.stderr);
    t.match(refused.stderr, /not overwriting an existing file/);
    t.match(refused.stderr, /--force/);
    t.same(await readFile(target), tampered, 'the existing file is untouched');

    const forced = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched, '--force']);
    t.equal(forced.code, 0, forced.stderr);
    t.equal(sha256(await readFile(target)), sha256(big), '--force overwrites it with the right bytes');

    const again = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched]);
    t.equal(again.code, 0, again.stderr);
    t.match(again.stderr, /already there/);
    t.match(JSON.parse(again.stdout), { files: [{ fetched: false }, { fetched: false }] });

    // An interrupted fetch: part of the file is in act.pdf.gpg.part.
    await rm(target);
    await copyFile(path.join(work, 'act.pdf.gpg'), `${target}.part`);
    await truncate(`${target}.part`, 5 * MiB);
    const resumed = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched, '--file', JSON.parse(again.stdout).files.find((f: { name: string }) => f.name === 'act.pdf.gpg').id]);
    t.equal(resumed.code, 0, resumed.stderr);
    t.match(resumed.stderr, new RegExp(`resumed at ${5 * MiB}`));
    t.equal(sha256(await readFile(target)), sha256(big));
    t.notOk(existsSync(`${target}.part`));

    // A .part holding wrong bytes is detected and fetched again from the start.
    await rm(target);
    await writeFile(`${target}.part`, randomBytes(3 * MiB));
    const repaired = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched]);
    t.equal(repaired.code, 0, repaired.stderr);
    t.match(repaired.stderr, /do not match; fetching it again/);
    t.equal(sha256(await readFile(target)), sha256(big));
  });

  await t.test("a stranger's token cannot fetch or acknowledge: exit 3, nothing written", async (t) => {
    const dir = path.join(work, 'stranger');
    const res = await cli(tokens.stranger, ['fetch', envelopeId, '--dir', dir]);
    t.equal(res.code, 3);
    t.equal(res.stdout, '');
    t.match(res.stderr, /^bxchange: .+ \(404\)/);
    t.notOk(existsSync(dir), 'nothing was written');
    const ack = await cli(tokens.stranger, ['ack', envelopeId]);
    t.equal(ack.code, 3);
  });

  await t.test('ack: the recipient acknowledges; the envelope shows it', async (t) => {
    const res = await cli(tokens.recipient, ['ack', envelopeId]);
    t.equal(res.code, 0, res.stderr);
    t.match(JSON.parse(res.stdout), { id: envelopeId, recipients: [{ address: 'secretariat@uccle', status: 'acknowledged' }] });
    const envelope: any = await (await asSender('GET', `/api/v1/envelopes/${envelopeId}`)).json();
    t.match(envelope.recipients, [{ address: 'secretariat@uccle', status: 'acknowledged', acknowledgedAt: String }]);
  });

  await t.test('an interrupted send resumes when run again: same draft, one envelope, the rest of the bytes only', async (t) => {
    const huge = randomBytes(40 * MiB);
    await writeFile(path.join(work, 'register.pgp'), huge);
    const relay = new GateRelay(port);
    const relayUrl = `http://127.0.0.1:${await relay.listen()}`;
    t.teardown(() => relay.close());
    // The first 8 MiB chunk goes through, then the relay holds everything.
    relay.limit = 12 * MiB;
    const args = ['send', '--from', 'secretariat@ixelles', '--to', 'secretariat@uccle', '--subject', 'Registre', 'register.pgp'];
    const env = { BXCHANGE_URL: relayUrl, BXCHANGE_TOKEN: tokens.sender, XDG_STATE_HOME: stateHome };
    const first = start(args, env, work);

    const { draftId, uploadUrl, offset } = await until('a partial upload on the server', async () => {
      const [file] = await stateFiles();
      if (file === undefined) return undefined;
      const state = JSON.parse(await readFile(file, 'utf8'));
      const uploadUrl = state.files?.[0]?.uploadUrl as string | null;
      if (!uploadUrl) return undefined;
      // Asked of the server directly, not through the relay.
      const head = await asSender('HEAD', new URL(uploadUrl).pathname);
      const offset = Number(head.headers.get('upload-offset'));
      return offset > 0 ? { draftId: state.envelopeId as string, uploadUrl, offset } : undefined;
    });
    t.ok(offset < huge.length, `the server holds part of the file (${offset} bytes)`);
    const concurrent = await start(args, env, work).done;
    t.equal(concurrent.code, 1, 'the same send cannot run twice at once');
    t.match(concurrent.stderr, `already running (process ${first.child.pid})`);
    first.child.kill('SIGKILL');
    const killed = await first.done;
    t.equal(killed.code, null, 'the first send was killed');
    relay.open();
    t.equal((await stateFiles()).length, 1, 'the resume state survived the kill');

    const second = await start(args, env, work).done;
    t.equal(second.code, 0, second.stderr);
    const submitted = JSON.parse(second.stdout);
    t.equal(submitted.id, draftId, 'the same draft was submitted');
    t.equal(submitted.status, 'submitted');
    t.match(second.stderr, `resuming the interrupted send of draft ${draftId}`);
    t.match(second.stderr, /sent register\.pgp \(41943040 bytes, resumed at \d+\)/);
    t.ok(relay.forwarded < huge.length, `the second run sent less than the file (${relay.forwarded} bytes)`);
    t.same(await stateFiles(), [], 'the resume state is gone after the submission');

    const envelope: any = await (await asSender('GET', `/api/v1/envelopes/${draftId}`)).json();
    t.match(envelope.files, [{ name: 'register.pgp', size: huge.length, sha256: sha256(huge), complete: true }]);
    t.equal(envelope.files.length, 1);
    const outbox: any = await (await asSender('GET', '/api/v1/mailboxes/secretariat@ixelles/envelopes?direction=out')).json();
    const registers = outbox.items.filter((e: { metadata: { subject: string } }) => e.metadata.subject === 'Registre');
    t.same(registers.map((e: { id: string }) => e.id), [draftId], 'only one envelope was created');
    t.equal((await asSender('HEAD', new URL(uploadUrl).pathname)).status >= 400, true, 'the upload is no longer open (submitted)');
  });

  await t.test('inbox prints every item across all pages', async (t) => {
    for (let i = 0; i < 55; i++) {
      const res = await api.call('POST', '/api/v1/envelopes', {
        token: tokens.sender,
        body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject: `Draft ${i}` } },
      });
      t.equal(res.statusCode, 201);
    }
    const first: any = await (await asSender('GET', '/api/v1/mailboxes/secretariat@ixelles/envelopes?direction=out')).json();
    t.type(first.next, 'string', 'the API needs more than one page');
    const res = await cli(tokens.sender, ['inbox', '--mailbox', 'secretariat@ixelles', '--out']);
    t.equal(res.code, 0, res.stderr);
    const ids = (JSON.parse(res.stdout) as { id: string }[]).map((e) => e.id);
    t.equal(ids.length, 57, 'two sent envelopes and 55 drafts');
    t.equal(new Set(ids).size, ids.length, 'none twice');
  });
});

t.test('usage errors of the exchange commands exit 2 before anything is sent', async (t) => {
  const dir = await tempDir(t, 'bx-usage-');
  // Nothing listens there: had the CLI called it, it would exit 4, not 2.
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const closedPort = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const env = { BXCHANGE_URL: `http://127.0.0.1:${closedPort}`, BXCHANGE_TOKEN: 'x'.repeat(40), XDG_STATE_HOME: dir };
  await writeFile(path.join(dir, 'a.gpg'), 'a');
  await writeFile(path.join(dir, 'meta.json'), '[1, 2]');
  await mkdir(path.join(dir, 'folder'));
  const cases: [string, string[], RegExp][] = [
    ['no file', ['send', '--from', 'a@b', '--to', 'c@d'], /missing FILE/],
    ['no recipient', ['send', '--from', 'a@b', 'a.gpg'], /missing --to/],
    ['a missing file', ['send', '--from', 'a@b', '--to', 'c@d', 'nope.gpg'], /cannot read nope\.gpg/],
    ['a folder', ['send', '--from', 'a@b', '--to', 'c@d', 'folder'], /not a regular file/],
    ['a file twice', ['send', '--from', 'a@b', '--to', 'c@d', 'a.gpg', './a.gpg'], /given twice/],
    ['metadata not an object', ['send', '--from', 'a@b', '--to', 'c@d', '--meta', 'meta.json', 'a.gpg'], /must hold a JSON object/],
    ['a malformed envelope id', ['fetch', '../../etc'], /must be an envelope id/],
    ['inbox without mailbox', ['inbox'], /missing --mailbox/],
    ['ack with two ids', ['ack', 'a', 'b'], /unexpected argument/],
  ];
  for (const [what, args, message] of cases) {
    const res = await start(args, env, dir).done;
    t.equal(res.code, 2, `${what}: exit 2 (${res.stderr.trim()})`);
    t.match(res.stderr, message, `${what}: says what is wrong`);
    t.equal(res.stdout, '', `${what}: nothing on stdout`);
  }
  const unreachable = await start(['send', '--from', 'a@b', '--to', 'c@d', '--subject', 's', 'a.gpg'], env, dir).done;
  t.equal(unreachable.code, 4, 'an unreachable server: exit 4');
  t.match(unreachable.stderr, /cannot reach BXCHANGE_URL/);

  const help = await start(['send', '--help'], {}, dir).done;
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: bxchange send FILE… --from ADDR --to ADDR \[options\]/);
  t.match(help.stdout, /XDG_STATE_HOME/);
  for (const command of ['inbox', 'fetch', 'ack']) {
    const res = await start([command, '--help'], {}, dir).done;
    t.equal(res.code, 0, `${command} --help`);
    t.match(res.stdout, `Usage: bxchange ${command}`);
  }
});
