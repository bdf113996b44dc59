/**
 * End-to-end encryption for bxchange clients on Node (the CLI's `keygen`,
 * `send` and `fetch`, regional applications): mailbox key generation, and
 * file encryption and decryption that stream, so that memory stays flat for
 * files of several GiB.
 *
 * Interoperability with gpg 2.2 (which back offices use) decides the formats:
 * - keys are OpenPGP v4 with EdDSA ed25519 + ECDH cv25519, openpgp.js's
 *   `type: 'ecc'`. Not `type: 'curve25519'`: in openpgp.js 6 that makes RFC 9580
 *   Ed25519/X25519 keys (algorithms 27/25), which gpg 2.2 drops on import;
 * - messages are SEIPDv1 (no AEAD): gpg 2.2 cannot read SEIPDv2. openpgp.js
 *   picks SEIPDv2 whenever every recipient key advertises it, whatever
 *   `aeadProtect` says, so keys advertising it are refused here.
 *
 * Decryption streams with `allowUnauthenticatedStream`: openpgp.js otherwise
 * holds the whole plaintext in memory until the integrity check at the end
 * (3 GB for a 1 GiB file). Streaming means plaintext is written before it is
 * authenticated, so it goes to a temporary file beside the target that is
 * renamed into place only once the stream ended cleanly (MDC verified); on
 * any failure the temporary file is removed and nothing appears.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeWebStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import { NotOpenPgpError, OPENPGP_HEADER_BYTES, messageRecipientKeyIds } from '../crypto/openpgp-header.ts';

/** Why an SDK call failed; `code` is stable, `message` is for people. */
export type SdkErrorCode =
  | 'invalidArgument'
  | 'invalidKey'
  | 'wrongPassphrase'
  | 'notOpenPgp'
  | 'noMatchingKey'
  | 'integrityCheckFailed'
  | 'io';

export class SdkError extends Error {
  readonly code: SdkErrorCode;
  constructor(code: SdkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SdkError';
    this.code = code;
  }
}

/** The passphrase protects a private key that every `read` member may download: it must not be guessable. */
export const MIN_PASSPHRASE_LENGTH = 12;

/** How many leading bytes of a file `recipientKeyIds` needs at most. */
export const HEADER_BYTES = OPENPGP_HEADER_BYTES;

/** RFC 9580 §5.2.3.32 feature flag: the key holder accepts SEIPDv2 (AEAD) messages. */
const FEATURE_SEIPDV2 = 0x08;

/** Messages we write and keys we make: SEIPDv1, v4 keys, no compression (ciphertext of already-compressed files). */
const WRITE_CONFIG: openpgp.PartialConfig = { aeadProtect: false, v6Keys: false };

const hex = (keyId: openpgp.KeyID) => keyId.toHex().toLowerCase();

export interface GeneratedMailboxKey {
  /** The public key to publish (`PUT /api/v1/mailboxes/{address}/key`). */
  publicKeyArmored: string;
  /** The private key, every secret (sub)key encrypted with the passphrase (`PUT …/private-key`). */
  privateKeyArmored: string;
  /** 40 lowercase hex digits. */
  fingerprint: string;
  /** The primary key ID, 16 lowercase hex digits. */
  keyId: string;
  /** The encryption subkey ID(s): what the header of a file encrypted for this key names. */
  encryptionKeyIds: string[];
  /** Armored revocation certificate: keep it offline, it revokes the key without the passphrase. */
  revocationCertificate: string;
}

/**
 * A new mailbox key pair: OpenPGP v4, EdDSA ed25519 primary key with an ECDH
 * cv25519 encryption subkey, user ID `ADDRESS <ADDRESS>` (the server checks
 * that it names the mailbox), private key locked with `passphrase`.
 */
export async function generateMailboxKey(options: { address: string; passphrase: string; date?: Date }): Promise<GeneratedMailboxKey> {
  const { address, passphrase } = options;
  if (!/^[^\s@<>()]+@[^\s@<>()]+$/.test(address)) throw new SdkError('invalidArgument', `Not a mailbox address (name@entity): "${address}"`);
  if (typeof passphrase !== 'string' || [...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new SdkError('invalidArgument', `The passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  let generated: { publicKey: string; privateKey: string; revocationCertificate: string } | undefined;
  // openpgp.js wants a dotted-looking e-mail (x@yy); a 1-letter entity still gets the address as the
  // user ID's name, which readers (openpgp.js, gpg) parse as the e-mail when unbracketed.
  for (const userID of [{ name: address, email: address }, { name: address }]) {
    try {
      generated = await openpgp.generateKey({
        type: 'ecc',
        curve: 'curve25519Legacy',
        userIDs: [userID],
        passphrase,
        format: 'armored',
        ...(options.date === undefined ? {} : { date: options.date }),
        // The strongest iterated S2K count (65 MB hashed): every `read` member may download the locked key.
        config: { ...WRITE_CONFIG, s2kIterationCountByte: 255 },
      });
      break;
    } catch (err) {
      if (!/user ID/i.test((err as Error).message)) throw new SdkError('invalidKey', `Could not generate the key: ${(err as Error).message}`, { cause: err });
    }
  }
  if (generated === undefined) throw new SdkError('invalidArgument', `openpgp.js refuses "${address}" as a user ID`);
  const publicKey = await openpgp.readKey({ armoredKey: generated.publicKey });
  const encryptionKey = await publicKey.getEncryptionKey(undefined, options.date);
  return {
    publicKeyArmored: generated.publicKey,
    privateKeyArmored: generated.privateKey,
    fingerprint: publicKey.getFingerprint().toLowerCase(),
    keyId: hex(publicKey.getKeyID()),
    encryptionKeyIds: [hex(encryptionKey.getKeyID())],
    revocationCertificate: generated.revocationCertificate,
  };
}

async function readRecipientKeys(publicKeysArmored: string[]): Promise<openpgp.PublicKey[]> {
  if (!Array.isArray(publicKeysArmored) || publicKeysArmored.length === 0) {
    throw new SdkError('invalidArgument', 'At least one recipient public key is needed');
  }
  const keys: openpgp.PublicKey[] = [];
  for (const [index, armored] of publicKeysArmored.entries()) {
    let key: openpgp.Key;
    try {
      key = await openpgp.readKey({ armoredKey: armored });
    } catch (err) {
      throw new SdkError('invalidKey', `Recipient key #${index + 1} is not a readable armored OpenPGP key`, { cause: err });
    }
    const fingerprint = key.getFingerprint();
    if (key.keyPacket.version !== 4) throw new SdkError('invalidKey', `Recipient key ${fingerprint} is a v${key.keyPacket.version} key: gpg 2.2 recipients need v4`);
    let features = 0;
    try {
      features = (await key.getPrimaryUser()).selfCertification.features?.[0] ?? 0;
    } catch (err) {
      throw new SdkError('invalidKey', `Recipient key ${fingerprint} has no valid user ID (expired or revoked?)`, { cause: err });
    }
    if ((features & FEATURE_SEIPDV2) !== 0) {
      throw new SdkError('invalidKey', `Recipient key ${fingerprint} advertises AEAD (SEIPDv2): openpgp.js would write a message gpg 2.2 cannot read`);
    }
    try {
      await key.getEncryptionKey();
    } catch (err) {
      throw new SdkError('invalidKey', `Recipient key ${fingerprint} has no valid encryption key (expired or revoked?)`, { cause: err });
    }
    keys.push(key.toPublic());
  }
  return keys;
}

/** A pass-through that hashes and counts what goes by (and reports the count to `onProgress`). */
function meter(onProgress?: (bytes: number) => void): Transform & { digest(): { size: number; sha256: string } } {
  const hash = createHash('sha256');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      onProgress?.(size);
      done(null, chunk);
    },
  });
  return Object.assign(transform, { digest: () => ({ size, sha256: hash.digest('hex') }) });
}

/** A hidden sibling of `target`, created exclusively, for the bytes that become `target` on success. */
function tempSibling(target: string, tag: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${tag}-${randomBytes(6).toString('hex')}`);
}

const toWeb = (stream: Readable) => Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;
const fromWeb = (stream: ReadableStream<Uint8Array>) => Readable.fromWeb(stream as unknown as NodeWebStream<Uint8Array>);

export interface SpoolResult {
  /** Size and SHA-256 of the ciphertext written to the spool (what the server stores and hashes). */
  size: number;
  sha256: string;
  /** Size and SHA-256 of the plaintext (the upload's optional `plaintextSha256`). */
  plaintextSize: number;
  plaintextSha256: string;
  /** The encryption (sub)key IDs named in the spool's header, one per recipient. */
  recipientKeyIds: string[];
}

/**
 * Encrypts `inputPath` for every key of `publicKeysArmored` into the spool
 * file `spoolPath` (binary OpenPGP, SEIPDv1, no AEAD), streaming. The spool
 * appears only complete: it is written to a temporary sibling and renamed;
 * an existing spool is replaced. Upload the spool (not the input again):
 * re-encrypting never gives the same bytes, so only the spool lets an
 * interrupted upload resume byte for byte. `onProgress` hears how many
 * plaintext bytes were read so far.
 */
export async function encryptFileToSpool(
  inputPath: string,
  spoolPath: string,
  publicKeysArmored: string[],
  options: { onProgress?: (plaintextBytesRead: number) => void } = {},
): Promise<SpoolResult> {
  const keys = await readRecipientKeys(publicKeysArmored);
  const recipientKeyIds = [];
  for (const key of keys) recipientKeyIds.push(hex((await key.getEncryptionKey()).getKeyID()));
  const temp = tempSibling(spoolPath, 'spool');
  const plain = meter(options.onProgress);
  const cipher = meter();
  const input = createReadStream(inputPath);
  try {
    // Opening errors (ENOENT…) surface before any output exists.
    await new Promise<void>((resolve, reject) => input.once('open', () => resolve()).once('error', reject));
    input.once('error', (err) => plain.destroy(err));
    const message = await openpgp.createMessage({ binary: toWeb(input.pipe(plain)), filename: path.basename(inputPath), format: 'binary' });
    const encrypted = await openpgp.encrypt({ message, encryptionKeys: keys, format: 'binary', config: WRITE_CONFIG });
    await pipeline(fromWeb(encrypted), cipher, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    await rename(temp, spoolPath);
  } catch (err) {
    input.destroy();
    await rm(temp, { force: true });
    if (err instanceof SdkError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new SdkError('io', `Could not encrypt ${inputPath} into ${spoolPath}: ${e.code ?? e.message}`, { cause: err });
  }
  const plainDigest = plain.digest();
  const cipherDigest = cipher.digest();
  return { ...cipherDigest, plaintextSize: plainDigest.size, plaintextSha256: plainDigest.sha256, recipientKeyIds };
}

/**
 * A private key unlocked in this process's memory (`unlockPrivateKey`), to
 * decrypt several files with one passphrase check (the S2K of a mailbox key
 * hashes 65 MB: a noticeable fraction of a second each time).
 */
export class UnlockedPrivateKey {
  /** 40 lowercase hex digits. */
  readonly fingerprint: string;
  /** The key ID and every subkey ID, 16 lowercase hex digits each. */
  readonly keyIds: string[];
  readonly #key: openpgp.PrivateKey;
  constructor(key: openpgp.PrivateKey) {
    this.#key = key;
    this.fingerprint = key.getFingerprint().toLowerCase();
    this.keyIds = key.getKeyIDs().map(hex);
  }
  /** @internal the openpgp.js key, for this module only. */
  static key(unlocked: UnlockedPrivateKey): openpgp.PrivateKey {
    return unlocked.#key;
  }
}

async function readPrivate(privateKeyArmored: string): Promise<openpgp.PrivateKey> {
  try {
    return await openpgp.readPrivateKey({ armoredKey: privateKeyArmored });
  } catch (err) {
    throw new SdkError('invalidKey', 'Not a readable armored OpenPGP private key', { cause: err });
  }
}

/**
 * The fingerprint and every (sub)key ID of an armored private key, locked or
 * not, without the passphrase: to pick the key that can decrypt a file (its
 * `recipientKeyIds`) before paying for the unlock.
 */
export async function privateKeyIds(privateKeyArmored: string): Promise<{ fingerprint: string; keyIds: string[] }> {
  const key = await readPrivate(privateKeyArmored);
  return { fingerprint: key.getFingerprint().toLowerCase(), keyIds: key.getKeyIDs().map(hex) };
}

/** Unlocks an armored private key with its passphrase (SdkError `wrongPassphrase` otherwise). */
export async function unlockPrivateKey(privateKeyArmored: string, passphrase: string): Promise<UnlockedPrivateKey> {
  const key = await readPrivate(privateKeyArmored);
  if (key.isDecrypted()) return new UnlockedPrivateKey(key);
  try {
    return new UnlockedPrivateKey(await openpgp.decryptKey({ privateKey: key, passphrase }));
  } catch (err) {
    throw new SdkError('wrongPassphrase', `The passphrase does not unlock the private key ${key.getFingerprint()}`, { cause: err });
  }
}

/** Does the file start with an ASCII armor header? */
async function isArmored(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(64), 0, 64, 0);
    return buffer.subarray(0, bytesRead).toString('latin1').trimStart().startsWith('-----BEGIN PGP MESSAGE-----');
  } finally {
    await handle.close();
  }
}

export interface DecryptResult {
  /** Size and SHA-256 of the plaintext written to the output. */
  size: number;
  sha256: string;
}

/**
 * Decrypts the OpenPGP message `inputPath` (binary or armored, from the SDK
 * or gpg) with the locked `privateKeyArmored` unlocked by `passphrase` (or a
 * key from `unlockPrivateKey`, passphrase ignored), into `outputPath`, streaming. `outputPath` appears (replacing any file there)
 * only when the whole message was decrypted and its integrity check passed;
 * otherwise nothing is written there and an SdkError is thrown
 * (`integrityCheckFailed` for a tampered or truncated file). The temporary
 * file is a hidden sibling of `outputPath` named `.<basename>.part-<random>`
 * (a caller may sweep those left by a killed process). `onProgress` hears how
 * many plaintext bytes were written so far (not yet authenticated).
 */
export async function decryptFile(
  inputPath: string,
  outputPath: string,
  privateKey: string | UnlockedPrivateKey,
  passphrase = '',
  options: { onProgress?: (plaintextBytesWritten: number) => void } = {},
): Promise<DecryptResult> {
  const key = UnlockedPrivateKey.key(typeof privateKey === 'string' ? await unlockPrivateKey(privateKey, passphrase) : privateKey);
  const temp = tempSibling(outputPath, 'part');
  const plain = meter(options.onProgress);
  let input: Readable | undefined;
  let stage: 'open' | 'header' | 'stream' = 'open';
  try {
    const armored = await isArmored(inputPath);
    input = createReadStream(inputPath);
    await new Promise<void>((resolve, reject) => input!.once('open', () => resolve()).once('error', reject));
    stage = 'header';
    const message = armored
      ? await openpgp.readMessage({ armoredMessage: toWeb(input).pipeThrough(new TextDecoderStream()) })
      : await openpgp.readMessage({ binaryMessage: toWeb(input) });
    // Bytes that happen to parse as packets (a plaintext file whose first byte looks like a packet tag, or an
    // unencrypted OpenPGP message) carry no key packet: not a message encrypted to public keys.
    if (message.getEncryptionKeyIDs().length === 0) throw new SdkError('notOpenPgp', `${inputPath} is not an OpenPGP message encrypted to public keys`);
    const result = await openpgp.decrypt({
      message,
      decryptionKeys: key,
      format: 'binary',
      // Stream instead of buffering the plaintext; it is only released by the rename below.
      config: { allowUnauthenticatedStream: true },
    });
    // Signatures are not checked here; keep their promises from becoming unhandled rejections.
    for (const signature of result.signatures) signature.verified.catch(() => {});
    stage = 'stream';
    await pipeline(fromWeb(result.data as ReadableStream<Uint8Array>), plain, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    await rename(temp, outputPath);
  } catch (err) {
    input?.destroy();
    await rm(temp, { force: true });
    throw decryptError(err, stage, inputPath);
  }
  return plain.digest();
}

function decryptError(err: unknown, stage: 'open' | 'header' | 'stream', inputPath: string): SdkError {
  if (err instanceof SdkError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code !== undefined && stage === 'open') return new SdkError('io', `Cannot read ${inputPath}: ${e.code}`, { cause: err });
  if (e.code !== undefined && typeof e.syscall === 'string') return new SdkError('io', `Cannot decrypt ${inputPath}: ${e.code}`, { cause: err });
  const message = e.message ?? String(err);
  if (/session key|decryption key/i.test(message)) {
    return new SdkError('noMatchingKey', `${inputPath} is not encrypted for this key (or the key cannot decrypt it)`, { cause: err });
  }
  if (stage === 'header' && /pars|format|packet|armor/i.test(message)) {
    return new SdkError('notOpenPgp', `${inputPath} is not an OpenPGP encrypted message`, { cause: err });
  }
  return new SdkError('integrityCheckFailed', `${inputPath} failed to decrypt: it is damaged, truncated or was tampered with; nothing was written`, { cause: err });
}

/**
 * The encryption (sub)key IDs (16 lowercase hex digits) a message names as
 * its recipients, read from its first bytes (`HEADER_BYTES` are always
 * enough: the recipients' packets come first), without any private key. A
 * wildcard recipient (gpg --throw-keyids) shows as 0000000000000000. Throws
 * SdkError `notOpenPgp` when the bytes do not start an OpenPGP message.
 */
export async function recipientKeyIds(headerBytes: Uint8Array): Promise<string[]> {
  // The same parser the server's submit check uses (a pure function, no server code).
  try {
    return await messageRecipientKeyIds(headerBytes.subarray(0, HEADER_BYTES));
  } catch (err) {
    if (err instanceof NotOpenPgpError) throw new SdkError('notOpenPgp', 'Not the start of an OpenPGP message encrypted to public keys', { cause: err });
    throw err;
  }
}
