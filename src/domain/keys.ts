/**
 * Mailbox keys (DESIGN §4c): each mailbox has one active OpenPGP key that
 * senders encrypt to, and keeps its retired keys so that files sent to them
 * stay readable. The private key is held only as the passphrase-locked key
 * the members deposited; the passphrase never reaches the server, which
 * therefore refuses any private key with an unlocked secret.
 *
 * What a published key must be, and why:
 * - OpenPGP v4, with an EdDSA (ed25519, "legacy" algorithm 22) primary key and
 *   an ECDH cv25519 (algorithm 18) encryption subkey: what `gpg --quick-gen-key
 *   ADDR future-default` and `bxchange keygen` make. gpg 2.2 imports neither v6
 *   keys nor RFC 9580's new Ed25519/X25519 algorithms (27/25, which openpgp.js
 *   6 makes for `type: 'curve25519'`): it drops them as "unsupported public-key
 *   algorithm", so a recipient on gpg 2.2 could not read its mail.
 * - Not advertising SEIPDv2 (feature flag 0x08): openpgp.js encrypts with AEAD
 *   (SEIPDv2) as soon as every recipient key advertises it, whatever its
 *   `aeadProtect` setting, and gpg 2.2 cannot decrypt such messages.
 * - Valid now: not expired, not revoked, with a valid self-certified user ID
 *   whose e-mail part is the mailbox address (so a key cannot be published
 *   for the wrong mailbox by mistake), and at least one encryption (sub)key.
 *
 * Authorisation (DESIGN §3 visibility rule): the active public key is served
 * to every authenticated caller (senders need it); the list of keys to the
 * mailbox's members and administrators; publishing and depositing need the
 * `manage` role (or the admin capability, which also rotates keys); the
 * locked private key goes to members with `read` only. Whoever may not see
 * the mailbox gets 404, whoever sees it without the role 403.
 */
import * as openpgp from 'openpgp';
import { AppError, ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { uuidv7 } from './ids.ts';
import { callerIsAdmin, rolesOn, type Caller, type Role } from './model.ts';
import { DuplicateKeyError, auditOf, type AuditInput, type Clock, type DirectoryRepository } from './ports.ts';

export type KeyState = 'active' | 'retired';

/** A mailbox key as stored, without its private key. */
export interface MailboxKey {
  id: string;
  mailbox: string;
  /** 40 lowercase hex digits. */
  fingerprint: string;
  /** The primary key's ID, 16 lowercase hex digits. */
  keyId: string;
  /** IDs of the (sub)keys valid for encryption when the key was published (lowercase hex). */
  encryptionKeyIds: string[];
  /** The armored public key, as re-serialised after parsing. */
  publicKey: string;
  state: KeyState;
  /** The OpenPGP key's creation time and expiry (null: never). */
  keyCreatedAt: Date;
  expiresAt: Date | null;
  /** When it was published here. */
  publishedAt: Date;
  retiredAt: Date | null;
  /** When a locked private key was deposited (null: none). */
  privateKeyAt: Date | null;
}

export interface NewMailboxKey {
  id: string;
  mailbox: string;
  fingerprint: string;
  keyId: string;
  encryptionKeyIds: string[];
  publicKey: string;
  /** A locked private key deposited together with the public key, or null. */
  privateKey: string | null;
  keyCreatedAt: Date;
  expiresAt: Date | null;
}

/** The key fields a re-publication of the same key (new expiry, new subkey) may change. */
export type KeyRefresh = Pick<NewMailboxKey, 'encryptionKeyIds' | 'publicKey' | 'expiresAt'> & { privateKey?: string };

/** What the domain needs from the database (implemented in db/key-repository.ts). */
export interface KeyRepository {
  /**
   * In one transaction with `audit`: locks the mailbox, retires its active
   * key (if any) at `at`, stores `key` as active. DuplicateKeyError when the
   * fingerprint is already known (unique index). Returns the new key and
   * the fingerprint of the key it retired.
   */
  publish(key: NewMailboxKey, at: Date, audit: AuditInput): Promise<{ key: MailboxKey; retired: string | null }>;
  /** Updates an existing key's public material (and optionally its private key); null when gone. */
  refresh(id: string, refresh: KeyRefresh, at: Date, audit: AuditInput): Promise<MailboxKey | null>;
  active(mailbox: string): Promise<MailboxKey | null>;
  /** Every key of the mailbox, active first, then retired ones newest first. */
  list(mailbox: string): Promise<MailboxKey[]>;
  findByFingerprint(fingerprint: string): Promise<MailboxKey | null>;
  /** Stores the locked private key of the mailbox's key `id`; null when no such key. */
  depositPrivateKey(id: string, privateKey: string, at: Date, audit: AuditInput): Promise<MailboxKey | null>;
  /** The keys of the mailbox that have a deposited private key, in `list` order, with it. */
  privateKeys(mailbox: string): Promise<(MailboxKey & { privateKey: string })[]>;
  /** An audit entry without a state change (a private key was downloaded). */
  recordAudit(audit: AuditInput): Promise<void>;
}

export interface KeysDeps {
  repository: KeyRepository;
  directory: Pick<DirectoryRepository, 'findMailbox'>;
  clock: Clock;
}

export interface PublishKeyInput {
  publicKey: string;
  /** Optional: the locked private key, stored in the same transaction (atomic deposit, used by `bxchange keygen`). */
  privateKey?: string;
}

/** Armored keys are small (a Curve25519 key is ~1 KB): anything far bigger is refused before parsing. */
export const MAX_ARMORED_KEY_LENGTH = 64 * 1024;

/** Tolerated clock difference between the machine that made a key and this server. */
const CLOCK_SKEW_MS = 2 * 60_000;

/** RFC 9580 §5.2.3.32: "Version 2 Symmetrically Encrypted and Integrity Protected Data packet" feature. */
const FEATURE_SEIPDV2 = 0x08;

const GENERATE_HINT = 'make one with "bxchange keygen" or "gpg --quick-gen-key ADDRESS future-default"';

const hex = (keyId: openpgp.KeyID) => keyId.toHex().toLowerCase();

function bad(field: string, detail: string): ValidationError {
  return ValidationError.field(field, detail);
}

/** What the server learnt from a public key it accepted. */
export interface InspectedPublicKey {
  fingerprint: string;
  keyId: string;
  encryptionKeyIds: string[];
  keyCreatedAt: Date;
  expiresAt: Date | null;
  /** The key re-serialised from what was parsed (no armor comments, nothing but the key). */
  armored: string;
}

async function readOneKey(armored: string, field: string, what: 'public' | 'private'): Promise<openpgp.Key> {
  if (armored.length > MAX_ARMORED_KEY_LENGTH) throw bad(field, `Too long for an OpenPGP key (more than ${MAX_ARMORED_KEY_LENGTH} characters)`);
  const block = what === 'public' ? 'PUBLIC KEY BLOCK' : 'PRIVATE KEY BLOCK';
  if (!armored.includes('-----BEGIN PGP ')) {
    throw bad(field, `Not an ASCII-armored OpenPGP ${what} key: it must start with "-----BEGIN PGP ${block}-----"`);
  }
  // openpgp.js reads the first armored block and ignores the rest: refuse what it would silently drop.
  const blocks = armored.match(/-----BEGIN PGP /g)?.length ?? 0;
  if (blocks > 1) throw bad(field, `Holds ${blocks} armored blocks: send exactly one key`);
  let keys: openpgp.Key[];
  try {
    keys = await openpgp.readKeys({ armoredKeys: armored });
  } catch {
    throw bad(field, `Not a readable ASCII-armored OpenPGP ${what} key`);
  }
  if (keys.length !== 1) throw bad(field, `Holds ${keys.length} keys: send exactly one`);
  return keys[0]!;
}

/**
 * Checks a public key for `address` at `now` (rules at the top of this file)
 * and returns what the server stores; throws a ValidationError naming
 * `field` with the reason otherwise.
 */
export async function inspectPublicKey(armored: string, address: string, now: Date, field = '/publicKey'): Promise<InspectedPublicKey> {
  const key = await readOneKey(armored, field, 'public');
  if (key.isPrivate()) {
    throw bad(field, 'This is a private key: publish the public key only (the private key is deposited locked, with PUT …/private-key)');
  }
  if (key.keyPacket.version !== 4) {
    throw bad(field, `An OpenPGP v${key.keyPacket.version} key: mailbox keys must be v4 (gpg 2.2 cannot use v${key.keyPacket.version} keys); ${GENERATE_HINT}`);
  }
  const created = key.getCreationTime();
  if (created.getTime() > now.getTime() + CLOCK_SKEW_MS) {
    throw bad(field, `The key is dated in the future (${created.toISOString()}): check the clock of the machine that made it`);
  }
  // Signatures made a moment "after" the server's now (clock skew) still count.
  const at = new Date(now.getTime() + CLOCK_SKEW_MS);
  if (await key.isRevoked(undefined, undefined, at)) throw bad(field, 'The key is revoked');
  let expiresAt: Date | null;
  try {
    const expiry = await key.getExpirationTime();
    expiresAt = expiry instanceof Date ? expiry : null;
  } catch {
    expiresAt = null;
  }
  if (expiresAt !== null && expiresAt.getTime() <= now.getTime()) throw bad(field, `The key expired on ${expiresAt.toISOString()}`);
  try {
    await key.verifyPrimaryKey(at);
  } catch {
    throw bad(field, 'The key has no valid self-signature (it is expired, revoked or damaged)');
  }
  const primary = key.getAlgorithmInfo();
  if (primary.algorithm !== 'eddsaLegacy' || primary.curve !== 'ed25519Legacy') {
    throw bad(field, `The primary key is ${describe(primary)}: mailbox keys are Curve25519 keys (EdDSA ed25519 primary key, ECDH cv25519 encryption subkey); ${GENERATE_HINT}`);
  }
  // The user ID naming the mailbox, with a valid (unrevoked) self-certification.
  const wanted = address.toLowerCase();
  const named = key.users.map((u) => u.userID?.email ?? '').filter((email) => email.toLowerCase() === wanted);
  let selfCertification: openpgp.SignaturePacket | undefined;
  for (const email of new Set(named)) {
    try {
      selfCertification = (await key.getPrimaryUser(at, { email })).selfCertification;
      break;
    } catch {
      // revoked or badly certified: try the next one
    }
  }
  if (selfCertification === undefined) {
    const ids = key.getUserIDs();
    throw bad(
      field,
      `No valid user ID names the mailbox ${address} (the key's user IDs: ${ids.length === 0 ? 'none' : ids.map((id) => `"${id}"`).join(', ')}); the user ID must be "${address}" or "NAME <${address}>"`,
    );
  }
  const features = selfCertification.features?.[0] ?? 0;
  if ((features & FEATURE_SEIPDV2) !== 0) {
    throw bad(field, 'The key advertises SEIPDv2 (AEAD) encryption, which gpg 2.2 cannot decrypt: make a key without AEAD support');
  }
  const encryptionKeys: (openpgp.Key | openpgp.Subkey)[] = [];
  for (const candidate of key.getKeys()) {
    try {
      encryptionKeys.push(await key.getEncryptionKey(candidate.getKeyID(), at));
    } catch {
      // not an encryption key, or not valid now
    }
  }
  if (encryptionKeys.length === 0) throw bad(field, 'The key has no valid encryption subkey (expired, revoked, or signing only)');
  for (const subkey of encryptionKeys) {
    const info = subkey.getAlgorithmInfo();
    if (info.algorithm !== 'ecdh' || info.curve !== 'curve25519Legacy') {
      const why = info.algorithm === 'x25519' ? ' (RFC 9580 X25519, which gpg 2.2 cannot use)' : '';
      throw bad(field, `The encryption subkey ${hex(subkey.getKeyID())} is ${describe(info)}${why}: it must be ECDH cv25519; ${GENERATE_HINT}`);
    }
  }
  return {
    fingerprint: key.getFingerprint().toLowerCase(),
    keyId: hex(key.getKeyID()),
    encryptionKeyIds: [...new Set(encryptionKeys.map((k) => hex(k.getKeyID())))],
    keyCreatedAt: created,
    expiresAt,
    armored: key.toPublic().armor(),
  };
}

function describe(info: openpgp.AlgorithmInfo): string {
  return [info.algorithm, info.curve, info.bits === undefined ? undefined : `${info.bits} bits`].filter(Boolean).join(' ');
}

/**
 * Checks that a private key is locked and belongs to one of `candidates`
 * (the mailbox's keys): every packet that holds secret material must be
 * encrypted (a gnu-dummy stub, as `gpg --export-secret-subkeys` writes for
 * the primary key, holds none and is allowed), and the secret of every
 * encryption key of the matching public key must be there. Returns the
 * matching key and the private key re-serialised.
 */
export async function inspectPrivateKey(
  armored: string,
  address: string,
  candidates: MailboxKey[],
  field = '/privateKey',
): Promise<{ key: MailboxKey; armored: string }> {
  const key = await readOneKey(armored, field, 'private');
  if (!key.isPrivate()) throw bad(field, 'This is a public key: deposit the passphrase-locked private key');
  const unlocked = key
    .getKeys()
    .filter((k) => holdsSecret(k.keyPacket) && k.keyPacket.isDecrypted())
    .map((k) => hex(k.getKeyID()));
  if (unlocked.length > 0) {
    throw bad(
      field,
      `The private key is not locked: the secret of ${unlocked.join(', ')} is not encrypted. Protect every key and subkey with a passphrase before depositing it (the server must never hold an usable private key)`,
    );
  }
  const fingerprint = key.getFingerprint().toLowerCase();
  const match = candidates.find((c) => c.fingerprint === fingerprint);
  if (match === undefined) {
    throw bad(field, `The private key (fingerprint ${fingerprint}) does not match any key of mailbox ${address}: publish its public key first`);
  }
  // The stored public key tells which subkeys encrypt; their secrets must be in the deposit.
  const published = await openpgp.readKey({ armoredKey: match.publicKey });
  for (const keyId of match.encryptionKeyIds) {
    const publicPart = published.getKeys().find((k) => hex(k.getKeyID()) === keyId);
    const secretPart = key.getKeys().find((k) => hex(k.getKeyID()) === keyId);
    if (
      publicPart === undefined ||
      secretPart === undefined ||
      secretPart.getFingerprint() !== publicPart.getFingerprint() ||
      !holdsSecret(secretPart.keyPacket)
    ) {
      throw bad(field, `The private key lacks the secret of the encryption subkey ${keyId}: files sent to this mailbox could not be read with it`);
    }
  }
  return { key: match, armored: key.armor() };
}

/** A secret (sub)key packet with secret material: neither a public packet nor a gnu-dummy stub. */
function holdsSecret(packet: openpgp.Key['keyPacket'] | openpgp.Subkey['keyPacket']): boolean {
  const secret = packet as Partial<openpgp.SecretKeyPacket>;
  return typeof secret.isDummy === 'function' && !secret.isDummy();
}

export function createKeys(deps: KeysDeps) {
  const { repository, directory, clock } = deps;

  /**
   * The mailbox as the caller may see it: 404 when it does not exist or the
   * caller is neither a member nor an administrator (unless `anyone`).
   */
  async function visibleMailbox(caller: Caller, address: string, anyone = false): Promise<Role[]> {
    const roles = rolesOn(caller, address);
    if (!anyone && roles.length === 0 && !callerIsAdmin(caller)) throw new NotFoundError(`No mailbox ${address}`);
    if ((await directory.findMailbox(address)) === null) throw new NotFoundError(`No mailbox ${address}`);
    return roles;
  }

  async function requireManage(caller: Caller, address: string, action: string): Promise<void> {
    const roles = await visibleMailbox(caller, address);
    if (!roles.includes('manage') && !callerIsAdmin(caller)) throw new ForbiddenError(`${action} needs the manage role on ${address}`);
  }

  function conflictOnDuplicate(err: unknown, fingerprint: string): never {
    if (err instanceof DuplicateKeyError) {
      if (err.constraint.includes('active')) {
        throw new ConflictError('conflict', 'Another key was published for this mailbox at the same moment: read it and try again');
      }
      throw new ConflictError('conflict', `The key ${fingerprint} is already published`, [
        { in: 'body', name: '/publicKey', detail: 'Already published (for this or another mailbox): each mailbox key is used once' },
      ]);
    }
    throw err;
  }

  return {
    /**
     * Publishes `input.publicKey` as the mailbox's active key; the previous
     * active key becomes retired (files sent to it stay readable with it).
     * Publishing the active key again refreshes it (a new expiry date, a new
     * subkey). A retired key cannot come back, nor can another mailbox's key.
     */
    async publish(caller: Caller, address: string, input: PublishKeyInput): Promise<{ key: MailboxKey; retired: string | null; refreshed: boolean }> {
      await requireManage(caller, address, 'Publishing a key');
      const now = clock.now();
      const inspected = await inspectPublicKey(input.publicKey, address, now);
      const existing = await repository.findByFingerprint(inspected.fingerprint);
      const candidate: MailboxKey = existing ?? {
        id: uuidv7(now.getTime()),
        mailbox: address,
        fingerprint: inspected.fingerprint,
        keyId: inspected.keyId,
        encryptionKeyIds: inspected.encryptionKeyIds,
        publicKey: inspected.armored,
        state: 'active',
        keyCreatedAt: inspected.keyCreatedAt,
        expiresAt: inspected.expiresAt,
        publishedAt: now,
        retiredAt: null,
        privateKeyAt: null,
      };
      if (existing !== null) {
        if (existing.mailbox !== address) conflictOnDuplicate(new DuplicateKeyError('mailbox_keys_fingerprint_key'), inspected.fingerprint);
        if (existing.state === 'retired') {
          throw new ConflictError('conflict', `The key ${inspected.fingerprint} was retired on ${existing.retiredAt?.toISOString() ?? '?'}: a retired key cannot become active again; publish a new key`, [
            { in: 'body', name: '/publicKey', detail: 'A retired key of this mailbox' },
          ]);
        }
        candidate.encryptionKeyIds = inspected.encryptionKeyIds;
        candidate.publicKey = inspected.armored;
      }
      const privateKey = input.privateKey === undefined ? undefined : (await inspectPrivateKey(input.privateKey, address, [candidate])).armored;
      if (existing !== null) {
        const refreshed = await repository.refresh(
          existing.id,
          { encryptionKeyIds: inspected.encryptionKeyIds, publicKey: inspected.armored, expiresAt: inspected.expiresAt, ...(privateKey === undefined ? {} : { privateKey }) },
          now,
          auditOf(caller, 'mailboxKey.refresh', address, {
            fingerprint: inspected.fingerprint,
            encryptionKeyIds: inspected.encryptionKeyIds,
            expiresAt: inspected.expiresAt,
            privateKey: privateKey !== undefined,
          }),
        );
        if (refreshed === null) throw new ConflictError('conflict', 'The key changed meanwhile: try again');
        return { key: refreshed, retired: null, refreshed: true };
      }
      try {
        const published = await repository.publish(
          {
            id: candidate.id,
            mailbox: address,
            fingerprint: inspected.fingerprint,
            keyId: inspected.keyId,
            encryptionKeyIds: inspected.encryptionKeyIds,
            publicKey: inspected.armored,
            privateKey: privateKey ?? null,
            keyCreatedAt: inspected.keyCreatedAt,
            expiresAt: inspected.expiresAt,
          },
          now,
          auditOf(caller, 'mailboxKey.publish', address, {
            fingerprint: inspected.fingerprint,
            keyId: inspected.keyId,
            encryptionKeyIds: inspected.encryptionKeyIds,
            expiresAt: inspected.expiresAt,
            privateKey: privateKey !== undefined,
          }),
        );
        return { ...published, refreshed: false };
      } catch (err) {
        conflictOnDuplicate(err, inspected.fingerprint);
      }
    },

    /** The active public key: any authenticated caller (senders encrypt to it). */
    async activeKey(caller: Caller, address: string): Promise<MailboxKey> {
      await visibleMailbox(caller, address, true);
      const key = await repository.active(address);
      if (key === null) throw new AppError('noMailboxKey', `The mailbox ${address} has no key yet: files cannot be encrypted for it until a member with the manage role publishes one`);
      return key;
    },

    /** Every key of the mailbox, active and retired (members and administrators). */
    async listKeys(caller: Caller, address: string): Promise<MailboxKey[]> {
      await visibleMailbox(caller, address);
      return repository.list(address);
    },

    /**
     * Deposits the passphrase-locked private key of one of the mailbox's keys
     * (active or retired), replacing any earlier deposit for that key.
     */
    async depositPrivateKey(caller: Caller, address: string, armored: string): Promise<MailboxKey> {
      await requireManage(caller, address, 'Depositing a private key');
      const keys = await repository.list(address);
      if (keys.length === 0) {
        throw new AppError('noMailboxKey', `The mailbox ${address} has no key: publish the public key first (PUT …/key)`);
      }
      const { key, armored: locked } = await inspectPrivateKey(armored, address, keys);
      const updated = await repository.depositPrivateKey(
        key.id,
        locked,
        clock.now(),
        auditOf(caller, 'mailboxKey.depositPrivateKey', address, { fingerprint: key.fingerprint, state: key.state }),
      );
      if (updated === null) throw new NotFoundError('The key is gone');
      return updated;
    },

    /**
     * The locked private keys of the mailbox (members with `read` only; an
     * administrator must make itself a member, which the audit chain shows).
     * Each download is an audit entry.
     */
    async privateKeys(caller: Caller, address: string): Promise<(MailboxKey & { privateKey: string })[]> {
      const roles = await visibleMailbox(caller, address);
      if (!roles.includes('read')) throw new ForbiddenError(`Downloading the private key needs the read role on ${address}`);
      const keys = await repository.privateKeys(address);
      if (keys.length === 0) {
        throw new AppError('noPrivateKey', `No private key of ${address} was deposited: a member with the manage role deposits it (bxchange keygen does)`);
      }
      await repository.recordAudit(auditOf(caller, 'mailboxKey.readPrivateKey', address, { fingerprints: keys.map((k) => k.fingerprint) }));
      return keys;
    },
  };
}

export type Keys = ReturnType<typeof createKeys>;
