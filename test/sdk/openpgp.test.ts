/**
 * The SDK's OpenPGP against the real gpg 2.2 (the recipients' tool): keys it
 * makes are what gpg calls ed25519/cv25519 and are locked; files it encrypts
 * decrypt with `gpg --decrypt`; files gpg encrypts decrypt with the SDK; a
 * tampered or truncated file leaves no output; the recipients read from a
 * header are the encryption subkeys gpg lists. Oracles are gpg's own
 * listings and SHA-256 of the bytes, never the SDK itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import * as openpgp from 'openpgp';
import { HEADER_BYTES, SdkError, decryptFile, encryptFileToSpool, generateMailboxKey, privateKeyIds, recipientKeyIds, unlockPrivateKey } from '../../src/sdk/index.ts';
import { tempDir } from '../helpers/backends.ts';
import { withService } from '../helpers/services.ts';
import { gpgEncryptionSubkeyIds, gpgFingerprint, gpgHome, gpgService } from './gpg.ts';

const PASS = 'correct horse battery staple';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function rejectsWith(t: Test, promise: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: should have failed with ${code}`);
  } catch (err) {
    t.type(err, SdkError, `${what}: an SdkError`);
    t.equal((err as SdkError).code, code, `${what}: ${code}`);
  }
}

t.test('generateMailboxKey refuses a short passphrase and a non-address', async (t) => {
  await rejectsWith(t, generateMailboxKey({ address: 'secretariat@ixelles', passphrase: 'short' }), 'invalidArgument', 'short passphrase');
  await rejectsWith(t, generateMailboxKey({ address: 'not an address', passphrase: PASS }), 'invalidArgument', 'bad address');
});

t.test('recipientKeyIds refuses bytes that do not start an OpenPGP message', async (t) => {
  await rejectsWith(t, recipientKeyIds(Buffer.from('%PDF-1.7\n'.repeat(100))), 'notOpenPgp', 'a PDF');
  await rejectsWith(t, recipientKeyIds(randomBytes(4096)), 'notOpenPgp', 'random bytes');
});

withService(t, gpgService(), 'SDK and gpg 2.2', async (t) => {
  const gpg = await gpgHome(t);
  const dir = await tempDir(t, 'bxchange-sdk-');
  const file = (name: string) => path.join(dir, name);

  const mailbox = await generateMailboxKey({ address: 'secretariat@ixelles', passphrase: PASS });
  const other = await generateMailboxKey({ address: 'tutelle@bpl', passphrase: PASS });
  await writeFile(file('mailbox.pub.asc'), mailbox.publicKeyArmored);
  await writeFile(file('mailbox.sec.asc'), mailbox.privateKeyArmored);

  // 3 MiB and an odd tail: several openpgp.js chunks, no block alignment.
  const plain = randomBytes(3 * 1024 * 1024 + 4099);
  await writeFile(file('plain.bin'), plain);

  t.test('a generated key is a v4 ed25519/cv25519 key naming the mailbox, as gpg reads it', async (t) => {
    const records = await gpg.showKeys(file('mailbox.pub.asc'));
    const pub = records.find((r) => r[0] === 'pub')!;
    t.equal(pub[3], '22', 'primary key: EdDSA (22)');
    t.equal(pub[16], 'ed25519', 'on ed25519');
    const sub = records.find((r) => r[0] === 'sub')!;
    t.equal(sub[3], '18', 'subkey: ECDH (18)');
    t.equal(sub[16], 'cv25519', 'on cv25519');
    t.match(sub[11], /e/, 'the subkey encrypts');
    t.ok(records.some((r) => r[0] === 'uid' && (r[9] ?? '').includes('<secretariat@ixelles>')), 'a user ID names the mailbox');
    t.equal(gpgFingerprint(records), mailbox.fingerprint, 'fingerprint as gpg computes it');
    t.same(gpgEncryptionSubkeyIds(records), mailbox.encryptionKeyIds, 'encryption subkey id as gpg lists it');
    t.equal(mailbox.keyId, mailbox.fingerprint.slice(-16), 'the v4 key id is the fingerprint tail');
  });

  t.test('the generated private key is locked: gpg sees every secret key protected, and cannot use it without the passphrase', async (t) => {
    const { stdout } = await gpg.run(['--list-packets', file('mailbox.sec.asc')]);
    const secretPackets = stdout.split('\n').filter((l) => /^:secret (sub )?key packet:/.test(l));
    t.equal(secretPackets.length, 2, 'a secret key and a secret subkey');
    t.equal(stdout.match(/iter\+salt S2K/g)?.length, 2, 'each secret packet is protected with an iterated and salted S2K');
    t.equal(stdout.match(/skey\[\d\]: \[v4 protected\]/g)?.length, 2, 'each secret is encrypted');
    t.notMatch(stdout, /skey\[\d\]: \[\d+ bits\]/, 'no cleartext secret is listed');
    // A fresh gpg home (its agent has cached no passphrase): the key decrypts only with the passphrase.
    const g2 = await gpgHome(t);
    await g2.importKey(mailbox.privateKeyArmored, file('sec-copy.asc'));
    await writeFile(file('small.txt'), 'hello');
    await encryptFileToSpool(file('small.txt'), file('small.pgp'), [mailbox.publicKeyArmored]);
    await t.rejects(g2.run(['--decrypt', file('small.pgp')], { passphrase: 'not the passphrase at all' }), /Bad passphrase|decryption failed/, 'a wrong passphrase does not unlock it');
    t.equal((await g2.run(['--decrypt', file('small.pgp')], { passphrase: PASS })).stdout, 'hello', 'the passphrase does');
  });

  t.test('a file encrypted by the SDK decrypts with gpg --decrypt, byte for byte', async (t) => {
    const result = await encryptFileToSpool(file('plain.bin'), file('plain.bin.pgp'), [mailbox.publicKeyArmored]);
    const spool = await readFile(file('plain.bin.pgp'));
    t.equal(result.size, spool.length, 'size of the spool');
    t.equal(result.sha256, sha256(spool), 'SHA-256 of the spool');
    t.equal(result.plaintextSize, plain.length);
    t.equal(result.plaintextSha256, sha256(plain));
    t.not(spool.subarray(0, 64).toString('latin1').startsWith('-----BEGIN'), true, 'binary, not armored');
    await gpg.importKey(mailbox.privateKeyArmored, file('import.sec.asc'), PASS);
    const { stderr } = await gpg.run(['--decrypt', '--output', file('gpg-out.bin'), file('plain.bin.pgp')], { passphrase: PASS });
    t.ok((await readFile(file('gpg-out.bin'))).equals(plain), 'gpg recovers the plaintext');
    t.notMatch(stderr, /AEAD|WARNING: message was not integrity protected/, 'SEIPDv1 with MDC, no AEAD');
    const { stdout: packets } = await gpg.run(['--list-packets', file('plain.bin.pgp')], { passphrase: PASS });
    t.match(packets, /:encrypted data packet:\s*\n\s*length: .*\n\s*mdc_method: 2/, 'a SEIPDv1 (MDC) packet');
  });

  t.test('files encrypted by gpg -r (binary and armored) decrypt with the SDK', async (t) => {
    await gpg.importKey(mailbox.publicKeyArmored, file('import.pub.asc'));
    for (const armor of [false, true]) {
      const out = file(armor ? 'gpg.asc' : 'gpg.gpg');
      await gpg.run(['--trust-model', 'always', '--recipient', mailbox.fingerprint, ...(armor ? ['--armor'] : []), '--output', out, '--encrypt', file('plain.bin')]);
      const target = file(armor ? 'from-gpg-armored.bin' : 'from-gpg.bin');
      const result = await decryptFile(out, target, mailbox.privateKeyArmored, PASS);
      const back = await readFile(target);
      t.ok(back.equals(plain), `${armor ? 'armored' : 'binary'}: same bytes`);
      t.equal(result.sha256, sha256(plain), 'the reported SHA-256 is the plaintext');
      t.equal(result.size, plain.length);
    }
  });

  t.test('a tampered or truncated ciphertext fails decryptFile and leaves no output, not even a temporary file', async (t) => {
    const spool = await readFile(file('plain.bin.pgp'));
    const tampered = Buffer.from(spool);
    tampered[tampered.length >> 1]! ^= 0x01;
    await writeFile(file('tampered.pgp'), tampered);
    await writeFile(file('truncated.pgp'), spool.subarray(0, spool.length - 1000));
    const gpgFile = await readFile(file('gpg.gpg'));
    const gpgTampered = Buffer.from(gpgFile);
    gpgTampered[gpgTampered.length - 30]! ^= 0x80;
    await writeFile(file('gpg-tampered.gpg'), gpgTampered);
    const before = new Set(await readdir(dir));
    for (const name of ['tampered.pgp', 'truncated.pgp', 'gpg-tampered.gpg']) {
      await rejectsWith(t, decryptFile(file(name), file(`${name}.out`), mailbox.privateKeyArmored, PASS), 'integrityCheckFailed', name);
    }
    t.same(new Set(await readdir(dir)), before, 'no file appeared in the folder');
    // An existing output survives a failed decryption untouched.
    await writeFile(file('keep.bin'), 'previous content');
    await rejectsWith(t, decryptFile(file('tampered.pgp'), file('keep.bin'), mailbox.privateKeyArmored, PASS), 'integrityCheckFailed', 'over an existing file');
    t.equal(await readFile(file('keep.bin'), 'utf8'), 'previous content', 'the existing file is unchanged');
  });

  t.test('decryptFile says why: wrong passphrase, another mailbox key, not OpenPGP', async (t) => {
    await rejectsWith(t, decryptFile(file('plain.bin.pgp'), file('x1'), mailbox.privateKeyArmored, 'wrong passphrase here'), 'wrongPassphrase', 'wrong passphrase');
    await rejectsWith(t, decryptFile(file('plain.bin.pgp'), file('x2'), other.privateKeyArmored, PASS), 'noMatchingKey', 'another key');
    await rejectsWith(t, decryptFile(file('plain.bin'), file('x3'), mailbox.privateKeyArmored, PASS), 'notOpenPgp', 'a plaintext file');
    // Bytes that parse as OpenPGP packets without being encrypted to a key: an unencrypted OpenPGP message, and
    // plaintext whose first byte reads as a packet tag (random plaintext does so about half the time).
    await writeFile(file('literal.pgp'), (await (await openpgp.createMessage({ binary: new Uint8Array([1, 2, 3, 4]) })).write()) as Uint8Array);
    await rejectsWith(t, decryptFile(file('literal.pgp'), file('x5'), mailbox.privateKeyArmored, PASS), 'notOpenPgp', 'an unencrypted OpenPGP message');
    for (const tag of [0xcb, 0xac, 0x84]) {
      await writeFile(file('tagged.bin'), Buffer.concat([Buffer.from([tag]), randomBytes(64 * 1024)]));
      await rejectsWith(t, decryptFile(file('tagged.bin'), file('x6'), mailbox.privateKeyArmored, PASS), 'notOpenPgp', `plaintext starting 0x${tag.toString(16)}`);
    }
    await rejectsWith(t, decryptFile(file('missing'), file('x4'), mailbox.privateKeyArmored, PASS), 'io', 'a missing file');
    t.notOk((await readdir(dir)).some((n) => /^x\d$|\.part-/.test(n)), 'nothing written');
  });

  t.test('a key unlocked once decrypts several files; privateKeyIds gives the IDs gpg lists without the passphrase; progress is reported', async (t) => {
    const ids = await privateKeyIds(mailbox.privateKeyArmored);
    const records = await gpg.showKeys(file('mailbox.sec.asc'));
    t.equal(ids.fingerprint, gpgFingerprint(records), 'the fingerprint gpg computes');
    t.same(
      ids.keyIds.sort(),
      records
        .filter((r) => r[0] === 'sec' || r[0] === 'ssb')
        .map((r) => r[4]!.toLowerCase())
        .sort(),
      'the key and subkey IDs gpg lists',
    );
    await rejectsWith(t, unlockPrivateKey(mailbox.privateKeyArmored, 'wrong passphrase here'), 'wrongPassphrase', 'wrong passphrase');
    const unlocked = await unlockPrivateKey(mailbox.privateKeyArmored, PASS);
    t.equal(unlocked.fingerprint, mailbox.fingerprint);
    let encrypted = 0;
    await encryptFileToSpool(file('plain.bin'), file('twice.pgp'), [mailbox.publicKeyArmored], { onProgress: (n) => (encrypted = n) });
    t.equal(encrypted, plain.length, 'encryption progress reaches the plaintext size');
    for (const out of ['once.bin', 'again.bin']) {
      let written = 0;
      const result = await decryptFile(file('twice.pgp'), file(out), unlocked, undefined, { onProgress: (n) => (written = n) });
      t.equal(result.sha256, sha256(plain), `${out}: decrypted with the unlocked key`);
      t.equal(written, plain.length, `${out}: decryption progress reaches the plaintext size`);
    }
  });

  t.test('recipientKeyIds names the encryption subkeys of every recipient, from the first 64 KiB only', async (t) => {
    // A third recipient made by gpg itself.
    await gpg.run(['--passphrase', '', '--quick-gen-key', 'archives@bpl', 'future-default', 'default', 'never']);
    const { stdout } = await gpg.run(['--with-colons', '--list-keys', 'archives@bpl']);
    const gpgKey = stdout.split('\n').map((l) => l.split(':'));
    const gpgRecipient = gpgEncryptionSubkeyIds(gpgKey);
    t.equal(gpgRecipient.length, 1, 'gpg made one encryption subkey');
    await gpg.importKey(other.publicKeyArmored, file('other.pub.asc'));

    await gpg.run([
      '--trust-model', 'always',
      '--recipient', mailbox.fingerprint, '--recipient', other.fingerprint, '--recipient', 'archives@bpl',
      '--output', file('three.gpg'), '--encrypt', file('plain.bin'),
    ]);
    const expected = [...mailbox.encryptionKeyIds, ...other.encryptionKeyIds, ...gpgRecipient].sort();
    const fromGpg = await recipientKeyIds((await readFile(file('three.gpg'))).subarray(0, HEADER_BYTES));
    t.same([...fromGpg].sort(), expected, 'gpg-encrypted file: its three recipients');

    const { stdout: armoredGpgKey } = await gpg.run(['--armor', '--export', 'archives@bpl']);
    const sdk = await encryptFileToSpool(file('plain.bin'), file('three.pgp'), [mailbox.publicKeyArmored, other.publicKeyArmored, armoredGpgKey]);
    const fromSdk = await recipientKeyIds((await readFile(file('three.pgp'))).subarray(0, HEADER_BYTES));
    t.same([...fromSdk].sort(), expected, 'SDK-encrypted file: the same three');
    t.same([...sdk.recipientKeyIds].sort(), expected, 'and encryptFileToSpool reports them');

    // gpg's own view of the packets, an oracle independent of openpgp.js (mailbox's secret key was imported above).
    const { stdout: packets } = await gpg.run(['--list-packets', file('three.pgp')], { passphrase: PASS });
    const listed = [...packets.matchAll(/:pubkey enc packet: version 3, algo 18, keyid ([0-9A-F]{16})/g)].map((m) => m[1]!.toLowerCase());
    t.same(listed.sort(), expected, 'gpg --list-packets names the same key ids');

    const armoredMessage = file('three.asc');
    await gpg.run(['--trust-model', 'always', '--armor', '--recipient', other.fingerprint, '--output', armoredMessage, '--encrypt', file('plain.bin')]);
    t.same(await recipientKeyIds((await readFile(armoredMessage)).subarray(0, HEADER_BYTES)), other.encryptionKeyIds, 'an armored message too');
  });

  t.test('the SDK refuses keys that would make it write what gpg 2.2 cannot read: v6 keys, keys advertising AEAD', async (t) => {
    const v6 = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ email: 'v6@keys' }], format: 'armored', config: { v6Keys: true } });
    await rejectsWith(t, encryptFileToSpool(file('plain.bin'), file('v6.pgp'), [v6.publicKey]), 'invalidKey', 'a v6 key');
    const aead = await openpgp.generateKey({ type: 'ecc', userIDs: [{ email: 'aead@keys' }], format: 'armored', config: { aeadProtect: true } });
    await rejectsWith(t, encryptFileToSpool(file('plain.bin'), file('aead.pgp'), [aead.publicKey]), 'invalidKey', 'a key advertising SEIPDv2');
    t.notOk((await readdir(dir)).some((n) => n.startsWith('v6.pgp') || n.startsWith('aead.pgp') || n.includes('.spool-')), 'no spool left behind');
  });
});

t.test('streaming keeps memory flat: 256 MiB encrypted and decrypted with a bounded RSS', async (t) => {
  const dir = await tempDir(t, 'bxchange-sdk-big-');
  const size = 256 * 1024 * 1024;
  const input = path.join(dir, 'big.bin');
  // Pseudo-random content, generated in chunks (never whole in memory).
  let left = size;
  const seed = randomBytes(1024 * 1024);
  await pipeline(
    Readable.from(
      (function* () {
        while (left > 0) {
          const n = Math.min(left, seed.length);
          seed[0]! ^= left & 0xff;
          left -= n;
          yield Buffer.from(seed.subarray(0, n));
        }
      })(),
    ),
    createWriteStream(input),
  );
  const key = await generateMailboxKey({ address: 'datawarehouse@bpl', passphrase: PASS });
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    const spool = await encryptFileToSpool(input, path.join(dir, 'big.pgp'), [key.publicKeyArmored]);
    const back = await decryptFile(path.join(dir, 'big.pgp'), path.join(dir, 'big.out'), key.privateKeyArmored, PASS);
    t.equal(back.size, size);
    t.equal(back.sha256, spool.plaintextSha256, 'round trip');
    t.equal((await stat(path.join(dir, 'big.out'))).size, size);
  } finally {
    clearInterval(timer);
  }
  const grown = (peak - baseline) / (1024 * 1024);
  // Buffering the plaintext (openpgp.js's default for SEIPDv1) would add ≥ 256 MiB, several times over.
  t.ok(grown < 160, `RSS grew by ${grown.toFixed(0)} MiB (< 160 MiB) for a 256 MiB file`);
});
