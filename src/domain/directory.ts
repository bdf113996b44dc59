/**
 * The directory: entities, mailboxes, principals, memberships and bearer
 * tokens, with their rules (DESIGN §3, §5). Every door calls these functions;
 * authorisation is decided here, against the `Caller`.
 *
 * Visibility: the directory of entities and mailbox addresses is readable by
 * every authenticated caller (senders must find addresses); principals and
 * their tokens are visible to administrators and to the principal itself,
 * and answer 404 to anyone else, so that their existence does not leak.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, ConflictError, ForbiddenError, NotFoundError, ValidationError, type ProblemIssue } from '../errors.ts';
import { normalizeEnterpriseNumber } from './enterprise-number.ts';
import { SLUG, parseMailboxAddress, uuidv7 } from './ids.ts';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.ts';
import {
  callerIsAdmin,
  type Caller,
  type Capability,
  type Entity,
  type EntityKind,
  type Mailbox,
  type Membership,
  type Page,
  type Principal,
  type PrincipalKind,
  type Role,
  type TokenInfo,
} from './model.ts';
import { DuplicateKeyError, auditOf, type ClientCertificateInfo, type Clock, type DirectoryRepository, type EntityPatch } from './ports.ts';

export interface CreateEntityInput {
  id: string;
  kind: EntityKind;
  name: { fr: string; nl: string };
  enterpriseNumber?: string | null;
  nisCode?: string | null;
  parent?: string | null;
  validFrom?: string | null;
  validUntil?: string | null;
}

export type UpdateEntityInput = Partial<Omit<CreateEntityInput, 'id' | 'kind'>>;

export interface CreatePrincipalInput {
  name: string;
  kind: PrincipalKind;
  displayName?: string | null;
  oidcSubject?: string | null;
  capabilities?: Capability[];
  memberships?: Membership[];
}

export interface UpdatePrincipalInput {
  displayName?: string | null;
  oidcSubject?: string | null;
  active?: boolean;
  capabilities?: Capability[];
  memberships?: Membership[];
}

export interface IssuedToken {
  id: string;
  /** The secret, shown once; only its hash is stored. */
  token: string;
  expiresAt: Date | null;
  label: string | null;
}

/** A certificate as the issuing CA hands it over (crypto/pki.ts `issueClientCertificate`). */
export interface ClientCertificateMaterial {
  certPem: string;
  /** Unencrypted private key PEM: returned once, never stored. */
  keyPem: string;
  serialNumber: string;
  /** SHA-256 of the certificate's DER, 64 lowercase hex digits. */
  fingerprint: string;
  notAfter: Date;
}

/**
 * Issues a TLS client certificate with CN = `commonName`, valid `days`;
 * throws an AppError when this installation cannot issue (no CA key).
 */
export type ClientCertificateIssuer = (commonName: string, days: number) => Promise<ClientCertificateMaterial>;

export interface IssuedClientCertificate {
  credential: ClientCertificateInfo;
  certPem: string;
  keyPem: string;
  serialNumber: string;
}

/** Validity of an issued client certificate when none is asked for, and the longest one allowed. */
export const CLIENT_CERT_DAYS = { default: 365, max: 825 } as const;

export interface DirectoryDeps {
  repository: DirectoryRepository;
  clock: Clock;
  /** SHA-256 (hex) of the bootstrap administrator token, if any. */
  adminTokenHash: string | undefined;
}

const TOKEN_PREFIX = 'bxc_';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A fresh bearer token: 256 random bits, base64url, with a recognisable prefix for secret scanners. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

async function paginate<T>(
  cursor: string | undefined,
  limit: number | undefined,
  keyOf: (item: T) => string,
  fetch: (after: string | undefined, limit: number) => Promise<T[]>,
): Promise<Page<T>> {
  const size = pageLimit(limit);
  const rows = await fetch(decodeCursor(cursor), size + 1);
  if (rows.length <= size) return { items: rows };
  const items = rows.slice(0, size);
  return { items, nextCursor: encodeCursor(keyOf(items[items.length - 1]!)) };
}

function isoDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
}

function requireAdmin(caller: Caller, action: string): void {
  if (!callerIsAdmin(caller)) throw new ForbiddenError(`Only an administrator may ${action}`);
}

function dedupeRoles(roles: Role[]): Role[] {
  return [...new Set(roles)].sort();
}

export function createDirectory(deps: DirectoryDeps) {
  const { repository, clock } = deps;
  const adminHash = deps.adminTokenHash === undefined ? undefined : Buffer.from(deps.adminTokenHash, 'hex');

  async function checkEntityFields(
    input: UpdateEntityInput,
    kind: EntityKind,
    current: Entity | null,
  ): Promise<{ patch: EntityPatch; issues: ProblemIssue[] }> {
    const issues: ProblemIssue[] = [];
    const patch: EntityPatch = {};
    if (input.name !== undefined) {
      const fr = input.name.fr.trim();
      const nl = input.name.nl.trim();
      if (fr === '') issues.push({ in: 'body', name: '/name/fr', detail: 'The French name must not be empty' });
      if (nl === '') issues.push({ in: 'body', name: '/name/nl', detail: 'The Dutch name must not be empty' });
      patch.name = { fr, nl };
    }
    if (input.enterpriseNumber !== undefined) {
      if (input.enterpriseNumber === null) patch.enterpriseNumber = null;
      else {
        const result = normalizeEnterpriseNumber(input.enterpriseNumber);
        if (result.ok) patch.enterpriseNumber = result.value;
        else
          issues.push({
            in: 'body',
            name: '/enterpriseNumber',
            value: input.enterpriseNumber,
            detail: `Not a valid Belgian enterprise number: it ${result.reason}`,
          });
      }
    }
    if (input.nisCode !== undefined) {
      if (input.nisCode !== null && kind !== 'commune') {
        issues.push({ in: 'body', name: '/nisCode', value: input.nisCode, detail: 'Only communes have a NIS code' });
      } else if (input.nisCode !== null && !/^\d{5}$/.test(input.nisCode)) {
        issues.push({ in: 'body', name: '/nisCode', value: input.nisCode, detail: 'A NIS code has 5 digits' });
      } else patch.nisCode = input.nisCode;
    }
    for (const field of ['validFrom', 'validUntil'] as const) {
      const value = input[field];
      if (value === undefined) continue;
      if (value !== null && !isoDate(value)) {
        issues.push({ in: 'body', name: `/${field}`, value, detail: 'Must be a date (YYYY-MM-DD)' });
      } else patch[field] = value;
    }
    const from = patch.validFrom !== undefined ? patch.validFrom : (current?.validFrom ?? null);
    const until = patch.validUntil !== undefined ? patch.validUntil : (current?.validUntil ?? null);
    if (from !== null && until !== null && from > until) {
      issues.push({ in: 'body', name: '/validUntil', value: until, detail: 'validUntil must not be before validFrom' });
    }
    if (input.parent !== undefined) {
      if (input.parent !== null) {
        if (current !== null && input.parent === current.id) {
          issues.push({ in: 'body', name: '/parent', value: input.parent, detail: 'An entity cannot be its own parent' });
        } else if ((await repository.findEntity(input.parent)) === null) {
          issues.push({ in: 'body', name: '/parent', value: input.parent, detail: `No entity "${input.parent}"` });
        }
      }
      patch.parent = input.parent;
    }
    return { patch, issues };
  }

  function entityConflict(err: unknown, id: string): never {
    if (err instanceof DuplicateKeyError) {
      if (err.constraint.includes('enterprise_number')) {
        throw new ConflictError('entityExists', 'Another entity already has this enterprise number', [
          { in: 'body', name: '/enterpriseNumber', detail: 'Already used by another entity' },
        ]);
      }
      if (err.constraint.includes('nis_code')) {
        throw new ConflictError('entityExists', 'Another entity already has this NIS code', [
          { in: 'body', name: '/nisCode', detail: 'Already used by another entity' },
        ]);
      }
      throw new ConflictError('entityExists', `An entity "${id}" already exists`, [
        { in: 'body', name: '/id', value: id, detail: 'Already exists' },
      ]);
    }
    throw err;
  }

  async function checkMemberships(memberships: Membership[]): Promise<Membership[]> {
    const issues: ProblemIssue[] = [];
    const seen = new Set<string>();
    memberships.forEach((membership, index) => {
      if (parseMailboxAddress(membership.mailbox) === null) {
        issues.push({ in: 'body', name: `/memberships/${index}/mailbox`, value: membership.mailbox, detail: 'Not a mailbox address (name@entity)' });
      } else if (seen.has(membership.mailbox)) {
        issues.push({ in: 'body', name: `/memberships/${index}/mailbox`, value: membership.mailbox, detail: 'Listed twice' });
      }
      if (membership.roles.length === 0) {
        issues.push({ in: 'body', name: `/memberships/${index}/roles`, detail: 'At least one role is required' });
      }
      seen.add(membership.mailbox);
    });
    if (issues.length === 0 && memberships.length > 0) {
      const existing = new Set(await repository.existingMailboxes(memberships.map((m) => m.mailbox)));
      memberships.forEach((membership, index) => {
        if (!existing.has(membership.mailbox)) {
          issues.push({ in: 'body', name: `/memberships/${index}/mailbox`, value: membership.mailbox, detail: 'No such mailbox' });
        }
      });
    }
    if (issues.length > 0) throw new ValidationError(issues, 'Invalid memberships');
    return memberships.map((m) => ({ mailbox: m.mailbox, roles: dedupeRoles(m.roles) }));
  }

  /** Principals are visible to admins and to themselves; 404 otherwise. */
  async function visiblePrincipal(caller: Caller, id: string): Promise<Principal> {
    const self = caller.type === 'principal' && caller.principal.id === id;
    if (!self && !callerIsAdmin(caller)) throw new NotFoundError('No such principal');
    const principal = await repository.findPrincipal(id);
    if (principal === null) throw new NotFoundError('No such principal');
    return principal;
  }

  return {
    /** Resolves a bearer token to a caller; throws 401 problems. */
    async authenticate(bearer: string | undefined): Promise<Caller> {
      if (bearer === undefined || bearer === '') {
        throw new AppError('noAccessToken', 'This request needs an access token (Authorization: Bearer …)');
      }
      const hash = hashSecret(bearer);
      if (adminHash !== undefined && timingSafeEqual(Buffer.from(hash, 'hex'), adminHash)) {
        return { type: 'bootstrap-admin' };
      }
      const found = await repository.findTokenBySecretHash(hash);
      const now = clock.now();
      if (
        found === null ||
        found.token.revokedAt !== null ||
        (found.token.expiresAt !== null && found.token.expiresAt <= now) ||
        !found.principal.active
      ) {
        throw new AppError('invalidAccessToken', 'The access token is invalid, expired or revoked');
      }
      // Last use is recorded at most once a minute (tokens and client certificates alike): no write on most requests.
      if (found.token.lastUsedAt === null || now.getTime() - found.token.lastUsedAt.getTime() >= 60_000) await repository.touchToken(found.token.id, now);
      return { type: 'principal', principal: found.principal, tokenId: found.token.id };
    },

    /**
     * Resolves a TLS client certificate, already verified against the client
     * CA by the TLS layer, to its machine principal by the certificate's
     * SHA-256 fingerprint; throws 401 problems when it is not registered,
     * revoked or expired, or its principal is deactivated or not a machine.
     */
    async authenticateClientCertificate(fingerprint: string): Promise<Caller> {
      const found = await repository.findClientCertificateByFingerprint(fingerprint);
      if (found === null) {
        throw new AppError('invalidAccessToken', 'The client certificate is not registered to any principal');
      }
      const now = clock.now();
      const { certificate, principal } = found;
      if (
        certificate.revokedAt !== null ||
        (certificate.expiresAt !== null && certificate.expiresAt <= now) ||
        !principal.active ||
        principal.kind !== 'machine'
      ) {
        throw new AppError('invalidAccessToken', 'The client certificate is revoked or expired, or its principal is deactivated');
      }
      if (certificate.lastUsedAt === null || now.getTime() - certificate.lastUsedAt.getTime() >= 60_000) await repository.touchToken(certificate.id, now);
      return { type: 'principal', principal, tokenId: certificate.id };
    },

    async createEntity(caller: Caller, input: CreateEntityInput): Promise<Entity> {
      requireAdmin(caller, 'create entities');
      const issues: ProblemIssue[] = [];
      if (!SLUG.test(input.id)) issues.push({ in: 'body', name: '/id', value: input.id, detail: 'Must be a lowercase slug (a-z, 0-9, -)' });
      const { patch, issues: fieldIssues } = await checkEntityFields(
        { ...input, name: input.name, enterpriseNumber: input.enterpriseNumber ?? null, nisCode: input.nisCode ?? null },
        input.kind,
        null,
      );
      issues.push(...fieldIssues);
      if (issues.length > 0) throw new ValidationError(issues, 'The entity is not valid');
      try {
        return await repository.createEntity(
          {
            id: input.id,
            kind: input.kind,
            name: patch.name!,
            enterpriseNumber: patch.enterpriseNumber ?? null,
            nisCode: patch.nisCode ?? null,
            parent: patch.parent ?? null,
            validFrom: patch.validFrom ?? null,
            validUntil: patch.validUntil ?? null,
          },
          auditOf(caller, 'entity.create', input.id),
        );
      } catch (err) {
        entityConflict(err, input.id);
      }
    },

    async getEntity(_caller: Caller, id: string): Promise<Entity> {
      const entity = await repository.findEntity(id);
      if (entity === null) throw new NotFoundError(`No entity "${id}"`);
      return entity;
    },

    listEntities(_caller: Caller, options: { cursor?: string; limit?: number }): Promise<Page<Entity>> {
      return paginate(options.cursor, options.limit, (e) => e.id, (after, limit) =>
        repository.listEntities(after === undefined ? { limit } : { after, limit }),
      );
    },

    async updateEntity(caller: Caller, id: string, input: UpdateEntityInput): Promise<Entity> {
      requireAdmin(caller, 'change entities');
      const current = await repository.findEntity(id);
      if (current === null) throw new NotFoundError(`No entity "${id}"`);
      const { patch, issues } = await checkEntityFields(input, current.kind, current);
      if (issues.length > 0) throw new ValidationError(issues, 'The change is not valid');
      let updated: Entity | null;
      try {
        updated = await repository.updateEntity(id, patch, auditOf(caller, 'entity.update', id, { fields: Object.keys(patch) }));
      } catch (err) {
        entityConflict(err, id);
      }
      if (updated === null) throw new NotFoundError(`No entity "${id}"`);
      return updated;
    },

    async createMailbox(caller: Caller, entityId: string, input: { name: string }): Promise<Mailbox> {
      requireAdmin(caller, 'create mailboxes');
      if (!SLUG.test(input.name)) {
        throw ValidationError.field('/name', 'Must be a lowercase slug (a-z, 0-9, -)', input.name);
      }
      const entity = await repository.findEntity(entityId);
      if (entity === null) throw new NotFoundError(`No entity "${entityId}"`);
      const address = `${input.name}@${entityId}`;
      try {
        return await repository.createMailbox(
          { address, entity: entityId, name: input.name },
          auditOf(caller, 'mailbox.create', address),
        );
      } catch (err) {
        if (err instanceof DuplicateKeyError) {
          throw new ConflictError('mailboxExists', `The mailbox ${address} already exists`, [
            { in: 'body', name: '/name', value: input.name, detail: 'Already exists in this entity' },
          ]);
        }
        throw err;
      }
    },

    /** The mailboxes the caller belongs to (administrators: all, optionally of one entity). */
    listMailboxes(caller: Caller, options: { cursor?: string; limit?: number; entity?: string }): Promise<Page<Mailbox & { roles: Role[] }>> {
      const memberships = caller.type === 'principal' ? caller.principal.memberships : [];
      const admin = callerIsAdmin(caller);
      return paginate(options.cursor, options.limit, (m) => m.address, async (after, limit) => {
        const rows = await repository.listMailboxes({
          limit,
          ...(after === undefined ? {} : { after }),
          ...(admin ? {} : { addresses: memberships.map((m) => m.mailbox) }),
          ...(options.entity === undefined ? {} : { entity: options.entity }),
        });
        return rows.map((m) => ({ ...m, roles: memberships.find((x) => x.mailbox === m.address)?.roles ?? [] }));
      });
    },

    /** A mailbox is visible to its members and administrators; 404 otherwise. */
    async getMailbox(caller: Caller, address: string): Promise<Mailbox & { roles: Role[] }> {
      const roles = caller.type === 'principal' ? (caller.principal.memberships.find((m) => m.mailbox === address)?.roles ?? []) : [];
      if (roles.length === 0 && !callerIsAdmin(caller)) throw new NotFoundError(`No mailbox ${address}`);
      const mailbox = await repository.findMailbox(address);
      if (mailbox === null) throw new NotFoundError(`No mailbox ${address}`);
      return { ...mailbox, roles };
    },

    async createPrincipal(caller: Caller, input: CreatePrincipalInput): Promise<Principal> {
      requireAdmin(caller, 'create principals');
      const memberships = await checkMemberships(input.memberships ?? []);
      try {
        return await repository.createPrincipal(
          {
            id: uuidv7(clock.now().getTime()),
            name: input.name,
            kind: input.kind,
            displayName: input.displayName ?? null,
            oidcSubject: input.oidcSubject ?? null,
            capabilities: [...new Set(input.capabilities ?? [])].sort(),
            memberships,
          },
          auditOf(caller, 'principal.create', input.name, { memberships }),
        );
      } catch (err) {
        if (err instanceof DuplicateKeyError) {
          const field = err.constraint.includes('oidc') ? '/oidcSubject' : '/name';
          throw new ConflictError('principalExists', `A principal with this ${field.slice(1)} already exists`, [
            { in: 'body', name: field, detail: 'Already exists' },
          ]);
        }
        throw err;
      }
    },

    getPrincipal(caller: Caller, id: string): Promise<Principal> {
      return visiblePrincipal(caller, id);
    },

    listPrincipals(caller: Caller, options: { cursor?: string; limit?: number }): Promise<Page<Principal>> {
      requireAdmin(caller, 'list principals');
      return paginate(options.cursor, options.limit, (p) => p.id, (after, limit) =>
        repository.listPrincipals(after === undefined ? { limit } : { after, limit }),
      );
    },

    async updatePrincipal(caller: Caller, id: string, input: UpdatePrincipalInput): Promise<Principal> {
      if (!callerIsAdmin(caller)) {
        await visiblePrincipal(caller, id); // 404 for others, then 403 for self
        throw new ForbiddenError('Only an administrator may change principals');
      }
      const patch: UpdatePrincipalInput = { ...input };
      if (input.memberships !== undefined) patch.memberships = await checkMemberships(input.memberships);
      if (input.capabilities !== undefined) patch.capabilities = [...new Set(input.capabilities)].sort();
      let updated: Principal | null;
      try {
        updated = await repository.updatePrincipal(id, patch, clock.now(), auditOf(caller, 'principal.update', id, { ...patch }));
      } catch (err) {
        if (err instanceof DuplicateKeyError && err.constraint.includes('oidc')) {
          throw new ConflictError('principalExists', 'Another principal already has this oidcSubject', [
            { in: 'body', name: '/oidcSubject', detail: 'Already used by another principal' },
          ]);
        }
        throw err;
      }
      if (updated === null) throw new NotFoundError('No such principal');
      return updated;
    },

    async issueToken(caller: Caller, principalId: string, input: { expiresAt?: string | null; label?: string | null }): Promise<IssuedToken> {
      if (!callerIsAdmin(caller)) {
        await visiblePrincipal(caller, principalId);
        throw new ForbiddenError('Only an administrator may issue tokens');
      }
      const principal = await repository.findPrincipal(principalId);
      if (principal === null) throw new NotFoundError('No such principal');
      if (!principal.active) throw new ConflictError('conflict', 'The principal is deactivated');
      let expiresAt: Date | null = null;
      if (input.expiresAt !== undefined && input.expiresAt !== null) {
        expiresAt = new Date(input.expiresAt);
        if (Number.isNaN(expiresAt.getTime())) throw ValidationError.field('/expiresAt', 'Must be an RFC 3339 date-time', input.expiresAt);
        if (expiresAt <= clock.now()) throw ValidationError.field('/expiresAt', 'Must be in the future', input.expiresAt);
      }
      const token = generateToken();
      const info = await repository.createToken(
        { id: uuidv7(clock.now().getTime()), principalId, secretHash: hashSecret(token), label: input.label ?? null, expiresAt },
        auditOf(caller, 'token.issue', principal.name, { expiresAt }),
      );
      return { id: info.id, token, expiresAt: info.expiresAt, label: info.label };
    },

    async listTokens(caller: Caller, principalId: string): Promise<TokenInfo[]> {
      await visiblePrincipal(caller, principalId);
      return repository.listTokens(principalId);
    },

    /**
     * Issues a TLS client certificate for a machine principal (admin) with
     * `issue` (the platform CA) and registers its fingerprint as a
     * credential expiring with the certificate. The private key is returned
     * once and never stored.
     */
    async issueClientCertificate(
      caller: Caller,
      principalId: string,
      input: { label?: string | null; days?: number },
      issue: ClientCertificateIssuer,
    ): Promise<IssuedClientCertificate> {
      if (!callerIsAdmin(caller)) {
        await visiblePrincipal(caller, principalId);
        throw new ForbiddenError('Only an administrator may issue client certificates');
      }
      const principal = await repository.findPrincipal(principalId);
      if (principal === null) throw new NotFoundError('No such principal');
      if (!principal.active) throw new ConflictError('conflict', 'The principal is deactivated');
      if (principal.kind !== 'machine') {
        throw new ConflictError('conflict', `Client certificates are for machine principals; ${principal.name} is a ${principal.kind}`);
      }
      const days = input.days ?? CLIENT_CERT_DAYS.default;
      if (!Number.isInteger(days) || days < 1 || days > CLIENT_CERT_DAYS.max) {
        throw ValidationError.field('/days', `Must be a whole number of days from 1 to ${CLIENT_CERT_DAYS.max}`, days);
      }
      const material = await issue(principal.name, days);
      const credential = await repository.createClientCertificate(
        {
          id: uuidv7(clock.now().getTime()),
          principalId,
          fingerprint: material.fingerprint,
          certificatePem: material.certPem,
          label: input.label ?? null,
          expiresAt: material.notAfter,
        },
        auditOf(caller, 'clientCertificate.issue', principal.name, {
          fingerprint: material.fingerprint,
          serialNumber: material.serialNumber,
          expiresAt: material.notAfter,
        }),
      );
      return { credential, certPem: material.certPem, keyPem: material.keyPem, serialNumber: material.serialNumber };
    },

    async listClientCertificates(caller: Caller, principalId: string): Promise<ClientCertificateInfo[]> {
      await visiblePrincipal(caller, principalId);
      return repository.listClientCertificates(principalId);
    },

    /** Admins revoke any client certificate; a principal may revoke its own. Requests with it are refused at once. */
    async revokeClientCertificate(caller: Caller, principalId: string, credentialId: string): Promise<void> {
      const principal = await visiblePrincipal(caller, principalId);
      const revoked = await repository.revokeClientCertificate(
        principalId,
        credentialId,
        clock.now(),
        auditOf(caller, 'clientCertificate.revoke', principal.name, { credentialId }),
      );
      if (!revoked) throw new NotFoundError('No such client certificate');
    },

    /** Admins revoke any token; a principal may revoke its own. */
    async revokeToken(caller: Caller, principalId: string, tokenId: string): Promise<void> {
      const principal = await visiblePrincipal(caller, principalId);
      const revoked = await repository.revokeToken(principalId, tokenId, clock.now(), auditOf(caller, 'token.revoke', principal.name, { tokenId }));
      if (!revoked) throw new NotFoundError('No such token');
    },
  };
}

export type Directory = ReturnType<typeof createDirectory>;
