/**
 * `bxchange send | inbox | fetch | ack` as a back office runs them: the real
 * bin script in a child process, against a real server on a real port (every
 * backend), with real mailbox keys made by `bxchange keygen`. send encrypts
 * every file for the draft's keys; fetch decrypts with the mailbox's
 * deposited private key. Outcomes are checked through the API and the bytes
 * on disk, hashed here, never through the CLI itself. (OpenPGP against the
 * real gpg: e2e.test.ts.)
 *
 * The interrupted send is made deterministic without timing: the CLI talks to
 * the server through a TCP relay (GateRelay) that stops forwarding once a set
 * number of bytes went up, so the upload is stuck part-way, for certain,
 * until the test kills the CLI.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { forEachBackend, startApp, tempDir } from '../helpers/backends.ts';
import { GateRelay, PASSPHRASE, exchangeSetup, listen, start, until } from '../helpers/cli-process.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

forEachBackend(t, 'send, inbox, fetch and ack with the CLI', async (t, parts) => {
  const api = await startApp(t, await parts());
  const port = await listen(api);
  const url = `http://127.0.0.1:${port}`;
  const stateHome = await tempDir(t, 'bx-state-');
  const work = await tempDir(t, 'bx-files-');
  const tokens = await exchangeSetup(api, url, work);
  const env = (token: string, base = url) => ({ BXCHANGE_URL: base, BXCHANGE_TOKEN: token, XDG_STATE_HOME: stateHome, BXCHANGE_PASSPHRASE: PASSPHRASE });
  const cli = (token: string, args: string[], base = url) => start(args, env(token, base), work).done;
  const stateFiles = async () => {
    const dir = path.join(stateHome, 'bxchange');
    return existsSync(dir) ? (await readdir(dir)).filter((name) => /^send-.*\.json$/.test(name)).map((name) => path.join(dir, name)) : [];
  };
  /** Everything in the state folder (state files, locks, spool folders). */
  const stateEntries = async () => {
    const dir = path.join(stateHome, 'bxchange');
    return existsSync(dir) ? await readdir(dir) : [];
  };
  const asSender = async (method: 'GET' | 'HEAD', target: string) =>
    fetch(new URL(target, url), { method, headers: { authorization: `Bearer ${tokens.sender}`, 'tus-resumable': '1.0.0' } });

  const big = randomBytes(20 * MiB);
  const small = Buffer.from('Annexe: liste des pièces\n', 'utf8');
  await writeFile(path.join(work, 'act.pdf'), big);
  await writeFile(path.join(work, 'annex.txt'), small);
  let envelopeId = '';
  const fetched = path.join(work, 'fetched');

  await t.test('send: two files go encrypted into one submitted envelope, with the plaintext SHA-256 beside', async (t) => {
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
      'act.pdf',
      path.join(work, 'annex.txt'),
    ]);
    t.equal(res.code, 0, res.stderr);
    const printed = JSON.parse(res.stdout);
    envelopeId = printed.id;
    t.match(printed, { status: 'submitted', from: 'secretariat@ixelles', metadata: { subject: 'Budget 2027', reference: 'REF-42' } });
    t.match(res.stderr, /encrypted act\.pdf for secretariat@uccle, secretariat@ixelles/, 'encrypted for the recipient and the sender');
    t.match(res.stderr, /sent act\.pdf\.gpg \(\d+ bytes\)/, 'one line per file and step (stderr is not a terminal)');
    t.match(res.stderr, /sent annex\.txt\.gpg/);
    t.notMatch(res.stderr, /Warning|\r/, 'no progress bar and no runtime warning in a log');
    t.same(await stateEntries(), [], 'the resume state and the spools are removed after the submission');

    // Independent check: the server's own view.
    const envelope: any = await (await asSender('GET', `/api/v1/envelopes/${envelopeId}`)).json();
    t.equal(envelope.status, 'submitted');
    t.match(envelope.recipients, [{ address: 'secretariat@uccle', status: 'delivered' }]);
    const byName = Object.fromEntries(envelope.files.map((f: { name: string }) => [f.name, f]));
    t.match(byName['act.pdf.gpg'], { plaintextSha256: sha256(big), mediaType: 'application/pgp-encrypted', complete: true });
    t.match(byName['annex.txt.gpg'], { plaintextSha256: sha256(small), mediaType: 'application/pgp-encrypted', complete: true });
    // What the server holds is not the plaintext: OpenPGP adds its packets, and the bytes differ.
    t.ok(byName['act.pdf.gpg'].size > big.length, 'the stored file is larger than the plaintext (OpenPGP packets)');
    t.not(byName['act.pdf.gpg'].sha256, sha256(big), 'the stored file is not the plaintext');
    const stored = Buffer.from(await (await asSender('GET', byName['annex.txt.gpg'].href)).arrayBuffer());
    t.equal(stored.indexOf(small.subarray(0, 12)), -1, 'the small file is not readable in what the server stores');
    t.equal(sha256(stored), byName['annex.txt.gpg'].sha256);
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

  await t.test("fetch: the recipient decrypts with its mailbox's deposited key and gets the identical bytes and envelope.json", async (t) => {
    const res = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', fetched]);
    t.equal(res.code, 0, res.stderr);
    t.equal(sha256(await readFile(path.join(fetched, 'act.pdf'))), sha256(big), 'the big file is identical');
    t.same(await readFile(path.join(fetched, 'annex.txt')), small, 'the small file is identical');
    const saved = JSON.parse(await readFile(path.join(fetched, 'envelope.json'), 'utf8'));
    t.match(saved, { id: envelopeId, metadata: { subject: 'Budget 2027' }, recipients: [{ address: 'secretariat@uccle', status: 'retrieved' }] });
    t.same((await readdir(fetched)).sort(), ['act.pdf', 'annex.txt', 'envelope.json'], 'no .part, staging or temporary file is left');
    t.match(res.stderr, /decrypted act\.pdf \(20971520 bytes, plaintext SHA-256 verified\)/);
    t.notMatch(res.stderr, new RegExp(PASSPHRASE), 'the passphrase is never printed');
    const summary = JSON.parse(res.stdout);
    t.match(summary, { envelope: envelopeId, files: [{ fetched: true, decrypted: true, plaintextSha256: sha256(big) }, { fetched: true, decrypted: true }] });

    const raw = path.join(work, 'raw');
    const kept = await cli(tokens.recipient, ['fetch', envelopeId, '--dir', raw, '--raw']);
    t.equal(kept.code, 0, kept.stderr);
    t.same((await readdir(raw)).sort(), ['act.pdf.gpg', 'annex.txt.gpg', 'envelope.json'], '--raw keeps the server names');
    t.equal(sha256(await readFile(path.join(raw, 'act.pdf.gpg'))), saved.files.find((f: { name: string }) => f.name === 'act.pdf.gpg').sha256, '--raw keeps the ciphertext as stored');

    const noSecret = await start(['fetch', envelopeId, '--dir', path.join(work, 'nosecret')], { BXCHANGE_URL: url, BXCHANGE_TOKEN: tokens.recipient, XDG_STATE_HOME: stateHome }, work).done;
    t.equal(noSecret.code, 2, 'without a passphrase and without a terminal: a usage error');
    t.match(noSecret.stderr, /no passphrase to unlock the private key: set BXCHANGE_PASSPHRASE/);
    t.notOk(existsSync(path.join(work, 'nosecret', 'act.pdf')), 'nothing was decrypted');

    const wrong = await start(['fetch', envelopeId, '--dir', path.join(work, 'wrongsecret')], { ...env(tokens.recipient), BXCHANGE_PASSPHRASE: 'not the passphrase at all' }, work).done;
    t.equal(wrong.code, 1, 'a wrong passphrase fails');
    t.match(wrong.stderr, /the passphrase \(BXCHANGE_PASSPHRASE\) does not unlock the active key [0-9a-f]{40} of secretariat@uccle/);
    t.same((await readdir(path.join(work, 'wrongsecret'))).filter((n) => !n.endsWith('.part')), [], 'no plaintext file (the verified ciphertext .part is kept for the next run)');
  });

  await t.test('fetch: never overwrites a different file without --force; an identical one is kept; a .part resumes', async (t) => {
    const target = path.join(fetched, 'act.pdf');
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

    // An interrupted fetch: part of the ciphertext is in act.pdf.part.
    await rm(target);
    await copyFile(path.join(work, 'raw', 'act.pdf.gpg'), `${target}.part`);
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

  await t.test('an interrupted send resumes from the same encrypted spool when run again: same draft, one envelope, the rest of the bytes only', async (t) => {
    const huge = randomBytes(60 * MiB);
    await writeFile(path.join(work, 'register.pdf'), huge);
    const relay = new GateRelay(port);
    const relayUrl = `http://127.0.0.1:${await relay.listen()}`;
    t.teardown(() => relay.close());
    // The first 8 MiB chunk goes through, then the relay holds everything.
    relay.limit = 12 * MiB;
    const args = ['send', '--from', 'secretariat@ixelles', '--to', 'secretariat@uccle', '--subject', 'Registre', 'register.pdf'];
    const first = start(args, env(tokens.sender, relayUrl), work);

    const { draftId, uploadUrl, offset, spool, spoolSha256, spoolSize } = await until('a partial upload on the server', async () => {
      const [file] = await stateFiles();
      if (file === undefined) return undefined;
      const state = JSON.parse(await readFile(file, 'utf8'));
      const entry = state.files?.[0];
      const uploadUrl = entry?.uploadUrl as string | null;
      if (!uploadUrl) return undefined;
      // Asked of the server directly, not through the relay.
      const head = await asSender('HEAD', new URL(uploadUrl).pathname);
      const offset = Number(head.headers.get('upload-offset'));
      return offset > 0
        ? { draftId: state.envelopeId as string, uploadUrl, offset, spool: entry.spool as string, spoolSha256: entry.spoolSha256 as string, spoolSize: entry.spoolSize as number }
        : undefined;
    });
    t.ok(offset < spoolSize, `the server holds part of the file (${offset} bytes)`);
    const concurrent = await start(args, env(tokens.sender, relayUrl), work).done;
    t.equal(concurrent.code, 1, 'the same send cannot run twice at once');
    t.match(concurrent.stderr, `already running (process ${first.child.pid})`);
    first.child.kill('SIGKILL');
    const killed = await first.done;
    t.equal(killed.code, null, 'the first send was killed');
    relay.open();
    t.equal((await stateFiles()).length, 1, 'the resume state survived the kill');

    // The spool, as the interrupted run left it: ciphertext only, owner-only, in an owner-only folder.
    const spoolBytes = await readFile(spool);
    t.equal(sha256(spoolBytes), spoolSha256, 'the state records the spool SHA-256');
    t.equal(spoolBytes.indexOf(huge.subarray(MiB, MiB + 64)), -1, 'the spool holds no plaintext');
    t.equal((await stat(spool)).mode & 0o777, 0o600, 'the spool is readable by its owner only');
    t.equal((await stat(path.dirname(spool))).mode & 0o777, 0o700, 'the spool folder is reachable by its owner only');
    const before = await stat(spool);
    t.same(
      (await readdir(path.join(stateHome, 'bxchange'), { recursive: true })).filter((n) => !/send-[0-9a-f]{32}(\.json|\.lock|\.spool(\/0\.gpg)?)$/.test(n)),
      [],
      'no other file in the state folder (no plaintext copy)',
    );

    // The second run is held part-way too, to look at the spool it resumes from while it sends.
    relay.limit = 4 * MiB;
    const second = start(args, env(tokens.sender, relayUrl), work);
    await until('the second run to be held by the relay', async () => (relay.stalled ? true : undefined));
    const during = await stat(spool);
    t.equal(during.ino, before.ino, 'it sends the very spool of the interrupted run (same inode)');
    t.equal(during.mtimeMs, before.mtimeMs, 'not encrypted again (same modification time)');
    relay.open();
    const done = await second.done;
    t.equal(done.code, 0, done.stderr);
    const submitted = JSON.parse(done.stdout);
    t.equal(submitted.id, draftId, 'the same draft was submitted');
    t.equal(submitted.status, 'submitted');
    t.match(done.stderr, `resuming the interrupted send of draft ${draftId}`);
    t.notMatch(done.stderr, /encrypted register/, 'the second run did not encrypt');
    t.match(done.stderr, new RegExp(`sent register\\.pdf\\.gpg \\(${spoolSize} bytes, resumed at \\d+\\)`));
    t.ok(relay.forwarded < spoolSize, `the second run sent less than the file (${relay.forwarded} bytes)`);
    t.same(await stateEntries(), [], 'the resume state and the spool are gone after the submission');

    const envelope: any = await (await asSender('GET', `/api/v1/envelopes/${draftId}`)).json();
    t.match(envelope.files, [{ name: 'register.pdf.gpg', size: spoolSize, sha256: spoolSha256, plaintextSha256: sha256(huge), complete: true }]);
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
    ['--raw with a key', ['fetch', '01234567-89ab-7def-8123-456789abcdef', '--raw', '--key', 'a.gpg'], /--raw keeps the files encrypted: it takes no --mailbox or --key/],
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
