/**
 * End-to-end encryption for tests (DESIGN §4c): the server refuses drafts to
 * mailboxes without a key and files that are not OpenPGP messages encrypted
 * for every pinned key, so tests publish real keys through the API and
 * upload real ciphertext made by openpgp.js (the SDK's streaming functions
 * and the gpg binary are tested on their own).
 *
 * Keys are made once per address and test process (tests use fresh
 * databases, so the same key can be published again); their private keys
 * stay unlocked in this process's memory and never reach the server.
 */
import * as openpgp from 'openpgp';
import type { TestApp } from './backends.ts';

export interface TestKey {
  address: string;
  publicKey: string;
  /** Unlocked, in memory only. */
  privateKey: string;
  fingerprint: string;
  /** The encryption subkey's ID: what a file's header names. */
  encryptionKeyId: string;
}

const keys = new Map<string, Promise<TestKey>>();

/** A v4 ed25519/cv25519 key whose user ID names `address` (what the server requires). */
export function testKey(address: string, tag = ''): Promise<TestKey> {
  const cacheKey = `${address}\u0000${tag}`;
  let key = keys.get(cacheKey);
  if (key === undefined) {
    key = (async () => {
      const { publicKey, privateKey } = await openpgp.generateKey({
        type: 'ecc',
        curve: 'curve25519Legacy',
        userIDs: [{ name: address, email: address }],
        format: 'armored',
        config: { v6Keys: false, aeadProtect: false },
      });
      const parsed = await openpgp.readKey({ armoredKey: publicKey });
      const sub = await parsed.getEncryptionKey();
      return { address, publicKey, privateKey, fingerprint: parsed.getFingerprint().toLowerCase(), encryptionKeyId: sub.getKeyID().toHex().toLowerCase() };
    })();
    keys.set(cacheKey, key);
  }
  return key;
}

/** Publishes a key for each mailbox (as the admin unless `token` is given); returns them by address. */
export async function publishKeys(api: Pick<TestApp, 'call'>, addresses: string[], token?: string, tag = ''): Promise<Map<string, TestKey>> {
  const published = new Map<string, TestKey>();
  for (const address of addresses) {
    const key = await testKey(address, tag);
    const res = await api.call('PUT', `/api/v1/mailboxes/${address}/key`, { ...(token === undefined ? {} : { token }), body: { publicKey: key.publicKey } });
    if (res.statusCode !== 200 && res.statusCode !== 201) throw new Error(`publishing the key of ${address}: ${res.statusCode} ${res.body}`);
    published.set(address, key);
  }
  return published;
}

/** The armored public keys a draft's answer pins (`encryptionKeys[].publicKey`). */
export function draftKeys(draft: { encryptionKeys?: Array<{ publicKey: string }> }): string[] {
  if (!Array.isArray(draft.encryptionKeys) || draft.encryptionKeys.length === 0) throw new Error('the draft answer carries no encryptionKeys');
  return draft.encryptionKeys.map((k) => k.publicKey);
}

/** `data` encrypted (binary OpenPGP, SEIPDv1) for every armored public key. */
export async function encryptFor(publicKeys: string[], data: Uint8Array | string): Promise<Buffer> {
  const encryptionKeys = await Promise.all(publicKeys.map((armoredKey) => openpgp.readKey({ armoredKey })));
  const message = await openpgp.createMessage({ binary: typeof data === 'string' ? Buffer.from(data) : data });
  const encrypted = await openpgp.encrypt({ message, encryptionKeys, format: 'binary', config: { aeadProtect: false } });
  return Buffer.from(encrypted as Uint8Array);
}

/** Decrypts a ciphertext made for `key` (for assertions on small files). */
export async function decryptWith(key: TestKey, ciphertext: Uint8Array): Promise<Buffer> {
  const decryptionKeys = await openpgp.readPrivateKey({ armoredKey: key.privateKey });
  const message = await openpgp.readMessage({ binaryMessage: ciphertext });
  const { data } = await openpgp.decrypt({ message, decryptionKeys, format: 'binary' });
  return Buffer.from(data as Uint8Array);
}
