/**
 * Interfaces the domain needs from its adapters. `db/` implements them; the
 * domain never imports drizzle, postgres.js or the S3 SDK.
 */
import type { Capability, Entity, EntityKind, Mailbox, Membership, Page, Principal, PrincipalKind, TokenInfo } from './model.ts';

/** An audit entry appended in the same transaction as the change it records. */
export interface AuditInput {
  actor: string;
  action: string;
  subject: string;
  data?: Record<string, unknown>;
}

/** Thrown by repositories when a unique constraint refuses a row. */
export class DuplicateKeyError extends Error {
  readonly constraint: string;
  constructor(constraint: string) {
    super(`duplicate key (${constraint})`);
    this.name = 'DuplicateKeyError';
    this.constraint = constraint;
  }
}

export interface NewEntity {
  id: string;
  kind: EntityKind;
  name: { fr: string; nl: string };
  enterpriseNumber: string | null;
  nisCode: string | null;
  parent: string | null;
  validFrom: string | null;
  validUntil: string | null;
}

export type EntityPatch = Partial<Pick<NewEntity, 'name' | 'enterpriseNumber' | 'nisCode' | 'parent' | 'validFrom' | 'validUntil'>>;

export interface NewPrincipal {
  id: string;
  name: string;
  kind: PrincipalKind;
  displayName: string | null;
  oidcSubject: string | null;
  capabilities: Capability[];
  memberships: Membership[];
}

export interface PrincipalPatch {
  displayName?: string | null;
  active?: boolean;
  capabilities?: Capability[];
  memberships?: Membership[];
}

export interface NewToken {
  id: string;
  principalId: string;
  secretHash: string;
  label: string | null;
  expiresAt: Date | null;
}

export interface ListOptions {
  /** Exclusive lower bound on the sort key. */
  after?: string;
  limit: number;
}

export interface DirectoryRepository {
  createEntity(entity: NewEntity, audit: AuditInput): Promise<Entity>;
  findEntity(id: string): Promise<Entity | null>;
  listEntities(options: ListOptions): Promise<Entity[]>;
  /** Applies the patch atomically; null when the entity does not exist. */
  updateEntity(id: string, patch: EntityPatch, audit: AuditInput): Promise<Entity | null>;

  createMailbox(mailbox: { address: string; entity: string; name: string }, audit: AuditInput): Promise<Mailbox>;
  findMailbox(address: string): Promise<Mailbox | null>;
  /** Mailboxes by address order; `addresses` restricts to those (undefined: all). */
  listMailboxes(options: ListOptions & { addresses?: string[]; entity?: string }): Promise<Mailbox[]>;
  /** The subset of `addresses` that exist. */
  existingMailboxes(addresses: string[]): Promise<string[]>;

  createPrincipal(principal: NewPrincipal, audit: AuditInput): Promise<Principal>;
  findPrincipal(id: string): Promise<Principal | null>;
  listPrincipals(options: ListOptions): Promise<Principal[]>;
  updatePrincipal(id: string, patch: PrincipalPatch, at: Date, audit: AuditInput): Promise<Principal | null>;

  createToken(token: NewToken, audit: AuditInput): Promise<TokenInfo>;
  listTokens(principalId: string): Promise<TokenInfo[]>;
  /** Sets revokedAt if not yet revoked; false when no such token of that principal. */
  revokeToken(principalId: string, tokenId: string, at: Date, audit: AuditInput): Promise<boolean>;
  findTokenBySecretHash(secretHash: string): Promise<{ token: TokenInfo; principal: Principal } | null>;
  /** Records use, at most once a minute per token (avoids a write per request). */
  touchToken(tokenId: string, at: Date): Promise<void>;
}

export type { Page };

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
