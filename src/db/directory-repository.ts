/** PostgreSQL implementation of the domain's DirectoryRepository (drizzle; same code on postgres.js and PGlite). */
import { and, asc, eq, gt, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { Capability, Entity, EntityKind, Mailbox, Membership, Principal, PrincipalKind, Role, TokenInfo } from '../domain/model.ts';
import type { AuditInput, ClientCertificateInfo, DirectoryRepository } from '../domain/ports.ts';
import { auditedTransaction, type Tx } from './audited.ts';
import type { Db } from './client.ts';
import { credentials, entities, mailboxes, memberships, principals, webSessions } from './schema.ts';

type EntityRow = typeof entities.$inferSelect;
type PrincipalRow = typeof principals.$inferSelect;
type CredentialRow = typeof credentials.$inferSelect;

function toEntity(row: EntityRow): Entity {
  return {
    id: row.id,
    kind: row.kind as EntityKind,
    name: { fr: row.nameFr, nl: row.nameNl },
    enterpriseNumber: row.enterpriseNumber,
    nisCode: row.nisCode,
    parent: row.parentId,
    validFrom: row.validFrom,
    validUntil: row.validUntil,
    createdAt: row.createdAt,
  };
}

function toMailbox(row: typeof mailboxes.$inferSelect): Mailbox {
  return { address: row.address, entity: row.entityId, name: row.name, createdAt: row.createdAt };
}

function toToken(row: CredentialRow): TokenInfo {
  return {
    id: row.id,
    principalId: row.principalId,
    label: row.label,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
    lastUsedAt: row.lastUsedAt,
  };
}

function toClientCertificate(row: CredentialRow): ClientCertificateInfo {
  return { ...toToken(row), fingerprint: row.fingerprint ?? '', certificatePem: row.publicKey };
}

const CLIENT_CERT = 'client_cert';

function toPrincipal(row: PrincipalRow, memberships: Membership[]): Principal {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind as PrincipalKind,
    displayName: row.displayName,
    oidcSubject: row.oidcSubject,
    capabilities: row.capabilities as Capability[],
    active: row.active,
    memberships,
    createdAt: row.createdAt,
    deactivatedAt: row.deactivatedAt,
  };
}

/** A principal's memberships as one JSON value, ordered like membershipsOf (for single-query lookups). */
const membershipsJson = sql<Membership[] | string>`(
  SELECT coalesce(json_agg(json_build_object('mailbox', m.mailbox_address, 'roles', m.roles) ORDER BY m.mailbox_address), '[]'::json)
  FROM memberships m WHERE m.principal_id = ${principals.id})`;

export function createDirectoryRepository(db: Db): DirectoryRepository {
  async function membershipsOf(principalIds: string[]): Promise<Map<string, Membership[]>> {
    const result = new Map<string, Membership[]>();
    if (principalIds.length === 0) return result;
    const rows = await db
      .select()
      .from(memberships)
      .where(inArray(memberships.principalId, principalIds))
      .orderBy(asc(memberships.mailboxAddress));
    for (const row of rows) {
      const list = result.get(row.principalId) ?? [];
      list.push({ mailbox: row.mailboxAddress, roles: row.roles as Role[] });
      result.set(row.principalId, list);
    }
    return result;
  }

  async function toPrincipals(rows: PrincipalRow[]): Promise<Principal[]> {
    const byId = await membershipsOf(rows.map((r) => r.id));
    return rows.map((row) => toPrincipal(row, byId.get(row.id) ?? []));
  }

  async function findPrincipal(id: string): Promise<Principal | null> {
    const rows = await db.select().from(principals).where(eq(principals.id, id));
    const [principal] = await toPrincipals(rows);
    return principal ?? null;
  }

  const audited = <T>(audit: AuditInput, work: (tx: Tx) => Promise<T>): Promise<T> => auditedTransaction(db, audit, work);

  // A prepared statement: PostgreSQL parses and plans it once per connection (on PGlite drizzle's prepare
  // simply runs the query); the hash is bound at each run.
  const tokenBySecretHash = db
    .select({ credential: credentials, principal: principals, memberships: membershipsJson })
    .from(credentials)
    .innerJoin(principals, eq(principals.id, credentials.principalId))
    .where(and(eq(credentials.secretHash, sql.placeholder('secretHash')), eq(credentials.kind, 'token')))
    .prepare('token_by_secret_hash');

  return {
    async createEntity(entity, audit) {
      const [row] = await audited(audit, (tx) =>
        tx
          .insert(entities)
          .values({
            id: entity.id,
            kind: entity.kind,
            nameFr: entity.name.fr,
            nameNl: entity.name.nl,
            enterpriseNumber: entity.enterpriseNumber,
            nisCode: entity.nisCode,
            parentId: entity.parent,
            validFrom: entity.validFrom,
            validUntil: entity.validUntil,
          })
          .returning(),
      );
      return toEntity(row!);
    },

    async findEntity(id) {
      const [row] = await db.select().from(entities).where(eq(entities.id, id));
      return row === undefined ? null : toEntity(row);
    },

    async listEntities({ after, limit }) {
      const rows = await db
        .select()
        .from(entities)
        .where(after === undefined ? undefined : gt(entities.id, after))
        .orderBy(asc(entities.id))
        .limit(limit);
      return rows.map(toEntity);
    },

    async updateEntity(id, patch, audit) {
      const set: Partial<typeof entities.$inferInsert> = { updatedAt: new Date() };
      if (patch.name !== undefined) {
        set.nameFr = patch.name.fr;
        set.nameNl = patch.name.nl;
      }
      if (patch.enterpriseNumber !== undefined) set.enterpriseNumber = patch.enterpriseNumber;
      if (patch.nisCode !== undefined) set.nisCode = patch.nisCode;
      if (patch.parent !== undefined) set.parentId = patch.parent;
      if (patch.validFrom !== undefined) set.validFrom = patch.validFrom;
      if (patch.validUntil !== undefined) set.validUntil = patch.validUntil;
      const rows = await audited(audit, (tx) => tx.update(entities).set(set).where(eq(entities.id, id)).returning());
      return rows[0] === undefined ? null : toEntity(rows[0]);
    },

    async createMailbox(mailbox, audit) {
      const [row] = await audited(audit, (tx) =>
        tx.insert(mailboxes).values({ address: mailbox.address, entityId: mailbox.entity, name: mailbox.name }).returning(),
      );
      return toMailbox(row!);
    },

    async findMailbox(address) {
      const [row] = await db.select().from(mailboxes).where(eq(mailboxes.address, address));
      return row === undefined ? null : toMailbox(row);
    },

    async listMailboxes({ after, limit, addresses, entity }) {
      if (addresses !== undefined && addresses.length === 0) return [];
      const rows = await db
        .select()
        .from(mailboxes)
        .where(
          and(
            after === undefined ? undefined : gt(mailboxes.address, after),
            addresses === undefined ? undefined : inArray(mailboxes.address, addresses),
            entity === undefined ? undefined : eq(mailboxes.entityId, entity),
          ),
        )
        .orderBy(asc(mailboxes.address))
        .limit(limit);
      return rows.map(toMailbox);
    },

    async existingMailboxes(addresses) {
      if (addresses.length === 0) return [];
      const rows = await db.select({ address: mailboxes.address }).from(mailboxes).where(inArray(mailboxes.address, addresses));
      return rows.map((r) => r.address);
    },

    async createPrincipal(principal, audit) {
      await audited(audit, async (tx) => {
        await tx.insert(principals).values({
          id: principal.id,
          name: principal.name,
          kind: principal.kind,
          displayName: principal.displayName,
          oidcSubject: principal.oidcSubject,
          capabilities: principal.capabilities,
        });
        if (principal.memberships.length > 0) {
          await tx
            .insert(memberships)
            .values(principal.memberships.map((m) => ({ principalId: principal.id, mailboxAddress: m.mailbox, roles: m.roles })));
        }
      });
      return (await findPrincipal(principal.id))!;
    },

    findPrincipal,

    async listPrincipals({ after, limit }) {
      const rows = await db
        .select()
        .from(principals)
        .where(after === undefined ? undefined : gt(principals.id, after))
        .orderBy(asc(principals.id))
        .limit(limit);
      return toPrincipals(rows);
    },

    async updatePrincipal(id, patch, at, audit) {
      const found = await audited(audit, async (tx) => {
        // Lock the row so concurrent membership edits apply one after the other.
        const [current] = await tx.select().from(principals).where(eq(principals.id, id)).for('update');
        if (current === undefined) return false;
        const set: Partial<typeof principals.$inferInsert> = {};
        if (patch.displayName !== undefined) set.displayName = patch.displayName;
        if (patch.oidcSubject !== undefined) set.oidcSubject = patch.oidcSubject;
        if (patch.capabilities !== undefined) set.capabilities = patch.capabilities;
        if (patch.active !== undefined) {
          set.active = patch.active;
          set.deactivatedAt = patch.active ? null : (current.deactivatedAt ?? at);
        }
        if (Object.keys(set).length > 0) await tx.update(principals).set(set).where(eq(principals.id, id));
        // Deactivation ends the principal's web sessions for good (a later reactivation does not revive them).
        if (patch.active === false) {
          await tx.update(webSessions).set({ revokedAt: at }).where(and(eq(webSessions.principalId, id), isNull(webSessions.revokedAt)));
        }
        if (patch.memberships !== undefined) {
          await tx.delete(memberships).where(eq(memberships.principalId, id));
          if (patch.memberships.length > 0) {
            await tx
              .insert(memberships)
              .values(patch.memberships.map((m) => ({ principalId: id, mailboxAddress: m.mailbox, roles: m.roles })));
          }
        }
        return true;
      });
      return found ? findPrincipal(id) : null;
    },

    async createToken(token, audit) {
      const [row] = await audited(audit, (tx) =>
        tx
          .insert(credentials)
          .values({
            id: token.id,
            principalId: token.principalId,
            kind: 'token',
            secretHash: token.secretHash,
            label: token.label,
            expiresAt: token.expiresAt,
          })
          .returning(),
      );
      return toToken(row!);
    },

    async listTokens(principalId) {
      const rows = await db
        .select()
        .from(credentials)
        .where(and(eq(credentials.principalId, principalId), eq(credentials.kind, 'token')))
        .orderBy(asc(credentials.id));
      return rows.map(toToken);
    },

    async revokeToken(principalId, tokenId, at, audit) {
      return audited(audit, async (tx) => {
        const [row] = await tx
          .select({ id: credentials.id, revokedAt: credentials.revokedAt })
          .from(credentials)
          .where(and(eq(credentials.id, tokenId), eq(credentials.principalId, principalId), eq(credentials.kind, 'token')));
        if (row === undefined) return false;
        if (row.revokedAt === null) await tx.update(credentials).set({ revokedAt: at }).where(eq(credentials.id, tokenId));
        return true;
      });
    },

    // Runs on every API request: token, principal and memberships in one round trip, prepared once.
    async findTokenBySecretHash(secretHash) {
      const [row] = await tokenBySecretHash.execute({ secretHash });
      if (row === undefined) return null;
      const memberships = (typeof row.memberships === 'string' ? JSON.parse(row.memberships) : row.memberships) as Membership[];
      return { token: toToken(row.credential), principal: toPrincipal(row.principal, memberships) };
    },

    async createClientCertificate(certificate, audit) {
      const [row] = await audited(audit, (tx) =>
        tx
          .insert(credentials)
          .values({
            id: certificate.id,
            principalId: certificate.principalId,
            kind: CLIENT_CERT,
            fingerprint: certificate.fingerprint,
            publicKey: certificate.certificatePem,
            label: certificate.label,
            expiresAt: certificate.expiresAt,
          })
          .returning(),
      );
      return toClientCertificate(row!);
    },

    async listClientCertificates(principalId) {
      const rows = await db
        .select()
        .from(credentials)
        .where(and(eq(credentials.principalId, principalId), eq(credentials.kind, CLIENT_CERT)))
        .orderBy(asc(credentials.id));
      return rows.map(toClientCertificate);
    },

    async revokeClientCertificate(principalId, credentialId, at, audit) {
      return audited(audit, async (tx) => {
        const [row] = await tx
          .select({ id: credentials.id, revokedAt: credentials.revokedAt })
          .from(credentials)
          .where(and(eq(credentials.id, credentialId), eq(credentials.principalId, principalId), eq(credentials.kind, CLIENT_CERT)));
        if (row === undefined) return false;
        if (row.revokedAt === null) await tx.update(credentials).set({ revokedAt: at }).where(eq(credentials.id, credentialId));
        return true;
      });
    },

    async findClientCertificateByFingerprint(fingerprint) {
      const [row] = await db
        .select()
        .from(credentials)
        .where(and(eq(credentials.kind, CLIENT_CERT), eq(credentials.fingerprint, fingerprint)));
      if (row === undefined) return null;
      const principal = await findPrincipal(row.principalId);
      return principal === null ? null : { certificate: toClientCertificate(row), principal };
    },

    async touchToken(tokenId, at) {
      await db
        .update(credentials)
        .set({ lastUsedAt: at })
        .where(
          and(
            eq(credentials.id, tokenId),
            or(isNull(credentials.lastUsedAt), lte(credentials.lastUsedAt, new Date(at.getTime() - 60_000))),
          ),
        );
    },
  };
}

