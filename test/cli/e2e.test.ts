/**
 * End-to-end encryption with the CLI against the real gpg 2.2 (DESIGN §4c,
 * issue #6): real server on a real port (every backend), real `bxchange`
 * processes, mailbox keys made by `bxchange keygen`, and gpg in its own
 * GNUPGHOME as the independent OpenPGP implementation.
 *
 * Oracles never come from the code under test: recipients are what
 * `gpg --list-packets` reads from the stored bytes, plaintext is compared
 * with the bytes written here, tampering is done to the stored object or to
 * the ciphertext before it is uploaded, and "nothing left" is a listing of
 * the output folder including hidden files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { forEachBackend, startApp, tempDir, type BackendParts, type TestApp } from '../helpers/backends.ts';
import { GateRelay, PASSPHRASE, exchangeSetup, listen, start, until } from '../helpers/cli-process.ts';
import { encryptFor } from '../helpers/e2e.ts';
import { withService } from '../helpers/services.ts';
import { gpgEncryptionSubkeyIds, gpgHome, gpgService, type Gpg } from '../sdk/gpg.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The recipient key IDs gpg reads from a message's public-key encrypted session key packets. */
async function gpgRecipients(gpg: Gpg, file: string): Promise<string[]> {
  // --list-only: list the packets without trying to decrypt (no key is needed).
  const { stdout, stderr } = await gpg.run(['--list-only', '--list-packets', file]).catch((err: Error) => ({ stdout: '', stderr: err.message }));
  const text = `${stdout}\n${stderr}`;
  return [...new Set([...text.matchAll(/:pubkey enc packet: version \d+, algo \d+, keyid ([0-9A-F]{16})/gi)].map((m) => m[1]!.toLowerCase()))].sort();
}

/** Every name in a folder, hidden ones included. */
const listing = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).sort();

forEachBackend(t, 'end-to-end encryption with the CLI and gpg', async (t, parts) => {
  await withService(t, gpgService(), 'gpg interoperability', async (t) => {
    const backend: BackendParts = await parts();
    const api: TestApp = await startApp(t, backend);
    const port = await listen(api);
    const url = `http://127.0.0.1:${port}`;
    const work = await tempDir(t, 'bx-e2e-');
    const stateHome = await tempDir(t, 'bx-e2e-state-');
    const tokens = await exchangeSetup(api, url, work);
    const gpg = await gpgHome(t);
    const env = (token: string, base = url) => ({ BXCHANGE_URL: base, BXCHANGE_TOKEN: token, XDG_STATE_HOME: stateHome, BXCHANGE_PASSPHRASE: PASSPHRASE });
    const cli = (token: string, args: string[], base = url) => start(args, env(token, base), work).done;
    const get = async (token: string, target: string) => {
      const res = await fetch(new URL(target, url), { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`GET ${target}: ${res.status} ${await res.text()}`);
      return res;
    };
    const getJson = async (token: string, target: string): Promise<any> => (await get(token, target)).json();
    const download = async (token: string, target: string) => Buffer.from(await (await get(token, target)).arrayBuffer());
    const draft = async (subject: string): Promise<any> => {
      const res = await api.call('POST', '/api/v1/envelopes', {
        token: tokens.sender,
        body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { subject } },
      });
      if (res.statusCode !== 201) throw new Error(`draft: ${res.statusCode} ${res.body}`);
      return JSON.parse(res.body);
    };
    /** A simple (multipart) upload over HTTP, with the sender's optional plaintextSha256 field before the file. */
    const upload = async (envelopeId: string, name: string, bytes: Buffer, plaintextSha256?: string) => {
      const form = new FormData();
      if (plaintextSha256 !== undefined) form.append('plaintextSha256', plaintextSha256);
      form.append('file', new Blob([bytes], { type: 'application/pgp-encrypted' }), name);
      const res = await fetch(`${url}/api/v1/envelopes/${envelopeId}/files`, { method: 'POST', headers: { authorization: `Bearer ${tokens.sender}` }, body: form });
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
    };
    const submit = async (envelopeId: string) => api.call('POST', `/api/v1/envelopes/${envelopeId}/submit`, { token: tokens.sender });
    /** The keys the draft pins, imported into gpg; returns their fingerprints and their encryption subkey IDs as gpg lists them. */
    const importPins = async (pins: { fingerprint: string; publicKey: string }[]) => {
      const subkeys: string[] = [];
      for (const [i, pin] of pins.entries()) {
        const file = path.join(gpg.home, `pin-${i}-${pin.fingerprint}.asc`);
        await gpg.importKey(pin.publicKey, file);
        subkeys.push(...gpgEncryptionSubkeyIds(await gpg.showKeys(file)));
      }
      return { fingerprints: pins.map((p) => p.fingerprint), subkeys: [...new Set(subkeys)].sort() };
    };

    const report = randomBytes(3 * MiB + 17);
    await writeFile(path.join(work, 'report.pdf'), report);
    let reportEnvelope = '';

    await t.test('(a) what bxchange send stores is an OpenPGP message for exactly the pinned keys, and gpg --decrypt gives the original bytes', async (t) => {
      const res = await cli(tokens.sender, ['send', '--from', 'secretariat@ixelles', '--to', 'secretariat@uccle', '--subject', 'Rapport', 'report.pdf']);
      t.equal(res.code, 0, res.stderr);
      const envelope = JSON.parse(res.stdout);
      reportEnvelope = envelope.id;
      t.equal(envelope.status, 'submitted');
      const file = envelope.files[0];
      t.match(file, { name: 'report.pdf.gpg', mediaType: 'application/pgp-encrypted', plaintextSha256: sha256(report) });

      const pins = (await getJson(tokens.sender, `/api/v1/envelopes/${envelope.id}`)).encryptionKeys as { mailbox: string; fingerprint: string; publicKey: string }[];
      t.same(pins.map((p) => p.mailbox).sort(), ['secretariat@ixelles', 'secretariat@uccle'], 'the recipient and the sender are pinned');
      const { subkeys } = await importPins(pins);
      t.equal(subkeys.length, 2, 'one encryption subkey per pinned key');

      const stored = path.join(work, 'stored-report.gpg');
      await writeFile(stored, await download(tokens.sender, file.href));
      t.equal(sha256(await readFile(stored)), file.sha256, 'the download is what the server hashed');
      t.same(await gpgRecipients(gpg, stored), subkeys, 'gpg reads exactly the pinned keys as recipients');
      t.same([...file.recipientKeyIds].sort(), subkeys, "the server's recipientKeyIds agree with gpg");

      // The recipient's locked private key, as any of its members downloads it, unlocked by gpg.
      const keys = await getJson(tokens.recipient, '/api/v1/mailboxes/secretariat@uccle/private-key');
      await gpg.importKey(keys.items[0].privateKey, path.join(gpg.home, 'uccle.sec.asc'), PASSPHRASE);
      const out = path.join(work, 'gpg-report.pdf');
      await gpg.run(['--output', out, '--decrypt', stored], { passphrase: PASSPHRASE });
      t.equal(sha256(await readFile(out)), sha256(report), 'gpg --decrypt gives the original bytes');
    });

    await t.test('(b) a file gpg encrypted to every key of the draft is accepted at submit and bxchange fetch decrypts it', async (t) => {
      const memo = randomBytes(MiB + 333);
      await writeFile(path.join(work, 'memo.odt'), memo);
      const d = await draft('gpg memo');
      const { fingerprints } = await importPins(d.encryptionKeys);
      const encrypted = path.join(work, 'memo.odt.gpg');
      await gpg.run(['--trust-model', 'always', ...fingerprints.flatMap((f) => ['--recipient', f]), '--output', encrypted, '--encrypt', path.join(work, 'memo.odt')]);
      await upload(d.id, 'memo.odt.gpg', await readFile(encrypted));
      const submitted = await submit(d.id);
      t.equal(submitted.statusCode, 200, submitted.body);

      const dir = path.join(work, 'fetched-memo');
      const res = await cli(tokens.recipient, ['fetch', d.id, '--dir', dir]);
      t.equal(res.code, 0, res.stderr);
      t.same(await readFile(path.join(dir, 'memo.odt')), memo, 'the decrypted bytes are the original');
      t.same(await listing(dir), ['envelope.json', 'memo.odt'], 'nothing else is left');

      // A fetch killed while decrypting leaves unauthenticated plaintext in a hidden temporary file: the next one removes it.
      const leftover = path.join(dir, '..memo.odt.bxchange-decrypted.part-0123456789ab');
      await writeFile(leftover, memo.subarray(0, 4096));
      const again = await cli(tokens.recipient, ['fetch', d.id, '--dir', dir, '--force']);
      t.equal(again.code, 0, again.stderr);
      t.same(await listing(dir), ['envelope.json', 'memo.odt'], "a killed fetch's temporary file is removed by the next fetch");

      // A back office holding the locked key in a file instead of downloading it each time.
      const keys = await getJson(tokens.recipient, '/api/v1/mailboxes/secretariat@uccle/private-key');
      const keyFile = path.join(work, 'uccle-locked.asc');
      await writeFile(keyFile, keys.items[0].privateKey, { mode: 0o600 });
      const local = path.join(work, 'fetched-memo-local-key');
      const withKey = await cli(tokens.recipient, ['fetch', d.id, '--dir', local, '--key', keyFile]);
      t.equal(withKey.code, 0, withKey.stderr);
      t.same(await readFile(path.join(local, 'memo.odt')), memo, '--key FILE decrypts too');
    });

    await t.test('(d) a ciphertext tampered in the store makes fetch fail: non-zero exit, one line, nothing left', async (t) => {
      const letter = randomBytes(2 * MiB);
      await writeFile(path.join(work, 'letter.pdf'), letter);
      const sent = await cli(tokens.sender, ['send', '--from', 'secretariat@ixelles', '--to', 'secretariat@uccle', '--subject', 'Tampered', 'letter.pdf']);
      t.equal(sent.code, 0, sent.stderr);
      const envelope = JSON.parse(sent.stdout);
      const key = `envelopes/${envelope.id}/${envelope.files[0].id}`;
      const chunks: Buffer[] = [];
      for await (const chunk of await backend.blobStore.get(key)) chunks.push(chunk as Buffer);
      const bytes = Buffer.concat(chunks);
      bytes[bytes.length >> 1]! ^= 0x01;
      await backend.blobStore.put(key, Readable.from([bytes]));

      const dir = path.join(work, 'fetched-tampered-store');
      const res = await cli(tokens.recipient, ['fetch', envelope.id, '--dir', dir]);
      t.equal(res.code, 1, 'exit 1');
      t.match(res.stderr, /letter\.pdf\.gpg: the bytes received do not match the envelope/);
      t.equal(res.stdout, '');
      t.same(await listing(dir), [], 'no plaintext, no .part, no temporary file');
    });

    await t.test('(d) a ciphertext tampered before its upload (the server hashed the tampered bytes) fails the integrity check: nothing left', async (t) => {
      const d = await draft('Tampered before upload');
      const plain = randomBytes(2 * MiB);
      const cipher = await encryptFor(
        d.encryptionKeys.map((k: { publicKey: string }) => k.publicKey),
        plain,
      );
      cipher[cipher.length >> 1]! ^= 0x01; // inside the encrypted data, far from the header the server checks
      await upload(d.id, 'minutes.pdf.gpg', cipher, sha256(plain));
      const submitted = await submit(d.id);
      t.equal(submitted.statusCode, 200, `the header is intact, the server accepts it: ${submitted.body}`);

      const dir = path.join(work, 'fetched-tampered');
      const res = await cli(tokens.recipient, ['fetch', d.id, '--dir', dir]);
      t.equal(res.code, 1, 'exit 1');
      t.match(res.stderr, /minutes\.pdf\.gpg failed the OpenPGP integrity check \(damaged, truncated or tampered with\): nothing was decrypted/);
      t.equal(res.stderr.trim().split('\n').filter((l) => l.startsWith('bxchange:') && !/fetched /.test(l)).length, 1, 'one line says what failed');
      t.same(await listing(dir), [], 'no plaintext (not even the part decrypted before the check failed), no .part, no temporary file');
    });

    await t.test('(e) a plaintext that does not match the sender\'s plaintextSha256 is refused: nothing left', async (t) => {
      const d = await draft('Wrong plaintext hash');
      const plain = randomBytes(MiB);
      const cipher = await encryptFor(
        d.encryptionKeys.map((k: { publicKey: string }) => k.publicKey),
        plain,
      );
      await upload(d.id, 'budget.xlsx.gpg', cipher, sha256(Buffer.from('another plaintext')));
      t.equal((await submit(d.id)).statusCode, 200);

      const dir = path.join(work, 'fetched-wrong-hash');
      const res = await cli(tokens.recipient, ['fetch', d.id, '--dir', dir]);
      t.equal(res.code, 1, 'exit 1');
      t.match(res.stderr, /budget\.xlsx: the decrypted bytes do not match the sender's plaintext SHA-256/);
      t.same(await listing(dir), [], 'the decrypted file was not kept');
    });

    await t.test('(f) after the recipient rotates its key, a file sent before is still decrypted by fetch (retired key), and a new one with the new key', async (t) => {
      const rotated = await cli(tokens.recipient, ['keygen', '--mailbox', 'secretariat@uccle', '--rotate']);
      t.equal(rotated.code, 0, rotated.stderr);
      const keys = await getJson(tokens.recipient, '/api/v1/mailboxes/secretariat@uccle/keys');
      t.same(keys.items.map((k: { state: string }) => k.state).sort(), ['active', 'retired']);

      const dir = path.join(work, 'fetched-after-rotation');
      const res = await cli(tokens.recipient, ['fetch', reportEnvelope, '--dir', dir]);
      t.equal(res.code, 0, res.stderr);
      t.equal(sha256(await readFile(path.join(dir, 'report.pdf'))), sha256(report), 'the old file decrypts with the retired key');

      const sent = await cli(tokens.sender, ['send', '--from', 'secretariat@ixelles', '--to', 'secretariat@uccle', '--subject', 'After rotation', 'report.pdf']);
      t.equal(sent.code, 0, sent.stderr);
      const dir2 = path.join(work, 'fetched-new-key');
      const res2 = await cli(tokens.recipient, ['fetch', JSON.parse(sent.stdout).id, '--dir', dir2]);
      t.equal(res2.code, 0, res2.stderr);
      t.equal(sha256(await readFile(path.join(dir2, 'report.pdf'))), sha256(report), 'a new file decrypts with the new key');
    });

    await t.test('a key rotated between the draft and the submission: send encrypts again for the new key, once, and the envelope is submitted', async (t) => {
      const big = randomBytes(16 * MiB);
      await writeFile(path.join(work, 'annual.pdf'), big);
      const relay = new GateRelay(port);
      const relayUrl = `http://127.0.0.1:${await relay.listen()}`;
      t.teardown(() => relay.close());
      relay.limit = 6 * MiB; // the upload is held part-way
      const running = start(['send', '--from', 'secretariat@ixelles', '--to', 'secretariat@uccle', '--subject', 'Annual', 'annual.pdf'], env(tokens.sender, relayUrl), work);
      await until('the upload to be held', async () => (relay.stalled ? true : undefined));

      const rotated = await cli(tokens.recipient, ['keygen', '--mailbox', 'secretariat@uccle', '--rotate']);
      t.equal(rotated.code, 0, rotated.stderr);
      const current = await getJson(tokens.sender, '/api/v1/mailboxes/secretariat@uccle/key');
      relay.open();

      const res = await running.done;
      t.equal(res.code, 0, res.stderr);
      t.match(res.stderr, /refused because secretariat@uccle rotated its key since the draft was made/);
      t.match(res.stderr, /encrypting 1 file again for the current keys/);
      const envelope = JSON.parse(res.stdout);
      t.equal(envelope.status, 'submitted');
      t.equal(envelope.files.length, 1, 'the file encrypted for the old key was removed from the draft');
      t.ok(current.encryptionKeyIds.some((id: string) => envelope.files[0].recipientKeyIds.includes(id)), 'the file is encrypted for the new key');

      const dir = path.join(work, 'fetched-annual');
      const fetched = await cli(tokens.recipient, ['fetch', envelope.id, '--dir', dir]);
      t.equal(fetched.code, 0, fetched.stderr);
      t.equal(sha256(await readFile(path.join(dir, 'annual.pdf'))), sha256(big));
    });
  });
});
