/**
 * SSH public keys of principals, the credential of the SFTP door (DESIGN §5
 * `POST /api/v1/principals/{id}/ssh-keys`). A key is stored as a credential
 * of kind `ssh` with its OpenSSH line and its fingerprint (`SHA256:<base64>`,
 * what `ssh-keygen -l` prints), unique across the platform: one key opens
 * one principal, so the SFTP user name only has to agree with it.
 *
 * Accepted algorithms: Ed25519, ECDSA P-256/384/521, RSA of at least 3072
 * bits (NIST SP 800-57: 2048-bit RSA is not for use beyond 2030, and a
 * back-office key lives for years). DSA and certificates are refused.
 */
import { createHash } from 'node:crypto';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { uuidv7 } from './ids.ts';
import { callerIsAdmin, type Caller, type Principal } from './model.ts';
import { DuplicateKeyError, auditOf, type AuditInput, type Clock, type DirectoryRepository } from './ports.ts';

export const MIN_RSA_BITS = 3072;

export interface SshKeyInfo {
  id: string;
  principalId: string;
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, … */
  algorithm: string;
  /** The key as one OpenSSH line `<algorithm> <base64>` (the comment is kept as the label). */
  publicKey: string;
  /** `SHA256:` + unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  label: string | null;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export interface NewSshKey {
  id: string;
  principalId: string;
  publicKey: string;
  fingerprint: string;
  label: string | null;
}

/** Storage of SSH keys (db/ssh-key-repository.ts): credentials of kind `ssh`. */
export interface SshKeyRepository {
  /** DuplicateKeyError when the fingerprint is already registered (to anyone). */
  create(key: NewSshKey, audit: AuditInput): Promise<SshKeyInfo>;
  list(principalId: string): Promise<SshKeyInfo[]>;
  /** Sets revokedAt if not yet revoked; false when the principal has no such key. */
  revoke(principalId: string, keyId: string, at: Date, audit: AuditInput): Promise<boolean>;
  findByFingerprint(fingerprint: string): Promise<SshKeyInfo | null>;
  /** Records use, at most once a minute. */
  touch(keyId: string, at: Date): Promise<void>;
}

export interface ParsedSshKey {
  algorithm: string;
  /** The wire-format key blob. */
  blob: Buffer;
  fingerprint: string;
  comment: string | null;
  /** `<algorithm> <base64>`. */
  line: string;
}

const CURVES: Record<string, string> = {
  'ecdsa-sha2-nistp256': 'nistp256',
  'ecdsa-sha2-nistp384': 'nistp384',
  'ecdsa-sha2-nistp521': 'nistp521',
};

/** Reads the SSH wire strings of a key blob (RFC 4253 §6.6); null when malformed. */
function wireStrings(blob: Buffer, count: number): Buffer[] | null {
  const out: Buffer[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 4 > blob.length) return null;
    const length = blob.readUInt32BE(p);
    p += 4;
    if (p + length > blob.length) return null;
    out.push(blob.subarray(p, p + length));
    p += length;
  }
  return p === blob.length ? out : null;
}

/** Bits of an SSH mpint (two's complement, big endian, positive here). */
function mpintBits(value: Buffer): number {
  let i = 0;
  while (i < value.length && value[i] === 0) i++;
  if (i === value.length) return 0;
  return (value.length - i - 1) * 8 + (32 - Math.clz32(value[i]!));
}

export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Parses one OpenSSH public key line (`ssh-ed25519 AAAA… comment`), checking
 * that the blob is well formed and names the same algorithm as the line.
 * Throws a ValidationError on `/publicKey` otherwise.
 */
export function parseSshPublicKey(text: string): ParsedSshKey {
  const bad = (detail: string) => ValidationError.field('/publicKey', detail);
  const trimmed = text.trim();
  if (trimmed.includes('\n')) throw bad('One key, on one line');
  if (trimmed.startsWith('-----')) throw bad('An OpenSSH public key line is expected (ssh-ed25519 AAAA… comment), not a PEM block');
  const match = /^([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?: (.{1,200}))?$/.exec(trimmed);
  if (match === null) throw bad('Not an OpenSSH public key line (ssh-ed25519 AAAA… comment)');
  const [, algorithm, base64, comment] = match as unknown as [string, string, string, string | undefined];
  const blob = Buffer.from(base64, 'base64');
  let valid = false;
  if (algorithm === 'ssh-ed25519') {
    const parts = wireStrings(blob, 2);
    valid = parts !== null && parts[0]!.toString() === algorithm && parts[1]!.length === 32;
  } else if (algorithm in CURVES) {
    const parts = wireStrings(blob, 3);
    valid = parts !== null && parts[0]!.toString() === algorithm && parts[1]!.toString() === CURVES[algorithm] && parts[2]![0] === 4;
  } else if (algorithm === 'ssh-rsa') {
    const parts = wireStrings(blob, 3);
    valid = parts !== null && parts[0]!.toString() === algorithm;
    if (valid && mpintBits(parts![2]!) < MIN_RSA_BITS) throw bad(`RSA keys must have at least ${MIN_RSA_BITS} bits; prefer ssh-keygen -t ed25519`);
  } else {
    throw bad(`Unsupported key type ${algorithm}: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa (≥ ${MIN_RSA_BITS} bits)`);
  }
  if (!valid) throw bad('The key data is malformed');
  const label = comment?.trim() || null;
  if (label !== null && /[\u0000-\u001f\u007f]/.test(label)) throw bad('The comment has control characters');
  return { algorithm, blob, fingerprint: sshFingerprint(blob), comment: label, line: `${algorithm} ${blob.toString('base64')}` };
}

export interface SshKeysDeps {
  repository: SshKeyRepository;
  directory: DirectoryRepository;
  clock: Clock;
}

export function createSshKeys(deps: SshKeysDeps) {
  const { repository, directory, clock } = deps;

  /** Principals are visible to admins and to themselves; 404 otherwise (as in directory.ts). */
  async function visiblePrincipal(caller: Caller, id: string): Promise<Principal> {
    const self = caller.type === 'principal' && caller.principal.id === id;
    if (!self && !callerIsAdmin(caller)) throw new NotFoundError('No such principal');
    const principal = await directory.findPrincipal(id);
    if (principal === null) throw new NotFoundError('No such principal');
    return principal;
  }

  return {
    /** Registers a key for a principal (admin). The label defaults to the key's comment. */
    async register(caller: Caller, principalId: string, input: { publicKey: string; label?: string | null }): Promise<SshKeyInfo> {
      const principal = await visiblePrincipal(caller, principalId);
      if (!callerIsAdmin(caller)) throw new ForbiddenError('Only an administrator may register SSH keys');
      if (!principal.active) throw new ConflictError('conflict', 'The principal is deactivated');
      const parsed = parseSshPublicKey(input.publicKey);
      try {
        return await repository.create(
          { id: uuidv7(clock.now().getTime()), principalId, publicKey: parsed.line, fingerprint: parsed.fingerprint, label: input.label ?? parsed.comment },
          auditOf(caller, 'sshKey.register', principal.name, { fingerprint: parsed.fingerprint, algorithm: parsed.algorithm }),
        );
      } catch (err) {
        if (err instanceof DuplicateKeyError) {
          throw new ConflictError('conflict', `This key (${parsed.fingerprint}) is already registered; a key opens one principal only`);
        }
        throw err;
      }
    },

    async list(caller: Caller, principalId: string): Promise<SshKeyInfo[]> {
      await visiblePrincipal(caller, principalId);
      return repository.list(principalId);
    },

    /** Admins revoke any key; a principal may revoke its own. New SFTP logins with it are refused at once. */
    async revoke(caller: Caller, principalId: string, keyId: string): Promise<void> {
      const principal = await visiblePrincipal(caller, principalId);
      const revoked = await repository.revoke(principalId, keyId, clock.now(), auditOf(caller, 'sshKey.revoke', principal.name, { keyId }));
      if (!revoked) throw new NotFoundError('No such SSH key');
    },

    /**
     * The caller an SFTP login is for: the key (by its blob) must be
     * registered, not revoked, to an active principal whose name is the
     * user name. Null otherwise (the door says no more than "denied").
     * Checking the signature is the SSH layer's job.
     */
    async authenticate(username: string, algorithm: string, blob: Buffer): Promise<Caller | null> {
      const key = await repository.findByFingerprint(sshFingerprint(blob));
      if (key === null || key.revokedAt !== null || key.algorithm !== algorithm) return null;
      const principal = await directory.findPrincipal(key.principalId);
      if (principal === null || !principal.active || principal.name !== username) return null;
      const now = clock.now();
      if (key.lastUsedAt === null || now.getTime() - key.lastUsedAt.getTime() >= 60_000) await repository.touch(key.id, now);
      return { type: 'principal', principal, tokenId: key.id, via: { door: 'sftp' } };
    },

    /** The principal as it is now (memberships change, deactivation applies at once); null when gone or inactive. */
    async refresh(principalId: string): Promise<Principal | null> {
      const principal = await directory.findPrincipal(principalId);
      return principal !== null && principal.active ? principal : null;
    },
  };
}

export type SshKeys = ReturnType<typeof createSshKeys>;
