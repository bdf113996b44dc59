/**
 * What the server may learn from a stored file without any private key: the
 * recipients named by its OpenPGP header (RFC 9580 §5.1, Public-Key
 * Encrypted Session Key packets come before the encrypted data). The server
 * checks with it, at submit, that a file is ciphertext for every key pinned
 * to the envelope (DESIGN §4c); it never decrypts anything.
 */
import * as openpgp from 'openpgp';

/**
 * How many leading bytes are read: the session-key packets of 100 recipients
 * (the envelope limit) take about 15 KiB, an armored header a third more.
 */
export const OPENPGP_HEADER_BYTES = 64 * 1024;

/** The key ID gpg writes for a hidden recipient (`--throw-keyids`). */
export const WILDCARD_KEY_ID = '0000000000000000';

export class NotOpenPgpError extends Error {
  constructor(cause: unknown) {
    super('Not the start of an OpenPGP encrypted message', { cause });
    this.name = 'NotOpenPgpError';
  }
}

const ARMOR = '-----BEGIN PGP MESSAGE-----';

function once<T>(chunk: T): ReadableStream<T> {
  return new ReadableStream<T>({
    start(controller) {
      controller.enqueue(chunk);
      controller.close();
    },
  });
}

/**
 * The encryption (sub)key IDs (16 lowercase hex digits) that the message
 * starting with `header` is encrypted for. Throws NotOpenPgpError when the
 * bytes do not start an OpenPGP message encrypted to public keys (plaintext,
 * a signed-only or password-only message, garbage).
 */
export async function messageRecipientKeyIds(header: Uint8Array): Promise<string[]> {
  const bytes = header.subarray(0, OPENPGP_HEADER_BYTES);
  const armored = Buffer.from(bytes.subarray(0, 80)).toString('latin1').trimStart().startsWith(ARMOR);
  let ids: string[];
  try {
    // A stream rather than an array: openpgp.js parses packets lazily from a stream, so the encrypted
    // data packet cut short at the end of the header does not fail the parse (an array would).
    const message = armored
      ? await openpgp.readMessage({ armoredMessage: once(Buffer.from(bytes).toString('latin1')) })
      : await openpgp.readMessage({ binaryMessage: once(bytes) });
    ids = message.getEncryptionKeyIDs().map((id) => id.toHex().toLowerCase());
  } catch (err) {
    throw new NotOpenPgpError(err);
  }
  if (ids.length === 0) throw new NotOpenPgpError(new Error('no public-key encrypted session key packet'));
  return ids;
}
