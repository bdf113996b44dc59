/**
 * OpenPGP in the browser (openpgp.js, loaded on demand: it is the largest
 * chunk). Same formats as the Node SDK (src/sdk/openpgp.ts) so gpg 2.2
 * recipients can read what the page sends: SEIPDv1, no AEAD, v4 keys.
 *
 * Decryption streams with `allowUnauthenticatedStream` (otherwise openpgp.js
 * keeps the whole plaintext in memory until the final integrity check); the
 * plaintext goes into an OPFS writable that is only published when the
 * stream ended cleanly (MDC verified), and aborted otherwise.
 */
import * as openpgp from 'openpgp';
import { meter } from './spool.ts';

export type PrivateKey = openpgp.PrivateKey;

export class WrongPassphraseError extends Error {
  constructor() {
    super('wrong passphrase');
    this.name = 'WrongPassphraseError';
  }
}

export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

/** Encrypts `file` for every armored key, streaming from File.stream() into the spool; returns the plaintext SHA-256. */
export async function encryptToSpool(
  file: File,
  armoredKeys: string[],
  target: FileSystemFileHandle,
  onProgress: (bytes: number) => void,
): Promise<{ plaintextSha256: string; size: number }> {
  if (armoredKeys.length === 0) throw new Error('no encryption key');
  const encryptionKeys = await Promise.all(armoredKeys.map((armoredKey) => openpgp.readKey({ armoredKey })));
  const counted = meter(onProgress);
  const plaintext = file.stream().pipeThrough(counted.stream);
  // The real file name travels inside the encrypted literal data packet.
  const message = await openpgp.createMessage({ binary: plaintext, filename: file.name, format: 'binary' });
  const encrypted = (await openpgp.encrypt({
    message,
    encryptionKeys,
    format: 'binary',
    config: { aeadProtect: false },
  })) as unknown as ReadableStream<Uint8Array>;
  const writable = await target.createWritable({ keepExistingData: false });
  await encrypted.pipeTo(writable);
  const spooled = await target.getFile();
  return { plaintextSha256: counted.digest(), size: spooled.size };
}

/** Unlocks the mailbox's locked private keys with the passphrase; keys it does not open are skipped. */
export async function unlockKeys(armoredPrivateKeys: string[], passphrase: string): Promise<PrivateKey[]> {
  const unlocked: PrivateKey[] = [];
  for (const armoredKey of armoredPrivateKeys) {
    const privateKey = await openpgp.readPrivateKey({ armoredKey });
    try {
      unlocked.push(await openpgp.decryptKey({ privateKey, passphrase }));
    } catch {
      /* another passphrase (an older key): try the next */
    }
  }
  if (unlocked.length === 0) throw new WrongPassphraseError();
  return unlocked;
}

/**
 * Decrypts the ciphertext spool into `target`. Resolves only when the whole
 * message decrypted and its integrity check (MDC) passed; on any failure the
 * target's writable is aborted, so no plaintext is published.
 */
export async function decryptToSpool(
  ciphertext: File,
  decryptionKeys: PrivateKey[],
  target: FileSystemFileHandle,
  onProgress: (bytes: number) => void,
): Promise<{ sha256: string; size: number; filename: string | null }> {
  const message = await openpgp.readMessage({ binaryMessage: ciphertext.stream() as unknown as ReadableStream<Uint8Array> });
  const result = await openpgp.decrypt({
    message,
    decryptionKeys,
    format: 'binary',
    config: { allowUnauthenticatedStream: true },
  });
  const counted = meter(onProgress);
  const writable = await target.createWritable({ keepExistingData: false });
  try {
    await (result.data as unknown as ReadableStream<Uint8Array>).pipeThrough(counted.stream).pipeTo(writable);
  } catch (err) {
    throw new IntegrityError((err as Error).message);
  }
  const file = await target.getFile();
  const filename = typeof result.filename === 'string' && result.filename !== '' ? result.filename : null;
  return { sha256: counted.digest(), size: file.size, filename };
}
