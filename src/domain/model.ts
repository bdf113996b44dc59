/** Plain records of the directory (DESIGN §3), shared by the domain and its adapters. */

export const ENTITY_KINDS = ['commune', 'cpas', 'police_zone', 'regie', 'intercommunale', 'region', 'regional_app', 'other'] as const;
export type EntityKind = (typeof ENTITY_KINDS)[number];

export const ROLES = ['read', 'send', 'manage'] as const;
export type Role = (typeof ROLES)[number];

export const CAPABILITIES = ['admin', 'export'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export const PRINCIPAL_KINDS = ['user', 'machine'] as const;
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

export interface BilingualName {
  fr: string;
  nl: string;
}

export interface Entity {
  id: string;
  kind: EntityKind;
  name: BilingualName;
  enterpriseNumber: string | null;
  nisCode: string | null;
  parent: string | null;
  /** ISO dates (YYYY-MM-DD), inclusive. */
  validFrom: string | null;
  validUntil: string | null;
  createdAt: Date;
}

export interface Mailbox {
  address: string;
  entity: string;
  name: string;
  createdAt: Date;
}

export interface Membership {
  mailbox: string;
  roles: Role[];
}

export interface Principal {
  id: string;
  name: string;
  kind: PrincipalKind;
  displayName: string | null;
  oidcSubject: string | null;
  capabilities: Capability[];
  active: boolean;
  memberships: Membership[];
  createdAt: Date;
  deactivatedAt: Date | null;
}

export interface TokenInfo {
  id: string;
  principalId: string;
  label: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/**
 * Who is calling. The bootstrap administrator (BXCHANGE_ADMIN_TOKEN) is not a
 * row: it exists so a fresh installation can create its first principals.
 */
export type Caller = (
  | { type: 'bootstrap-admin' }
  | { type: 'principal'; principal: Principal; tokenId: string | null }
) & {
  /** Where the request came from, recorded in the audit chain. */
  via?: RequestOrigin;
};

export interface RequestOrigin {
  door: 'http' | 'tus' | 'web' | 'sftp' | 'cli' | 'system';
  traceId?: string;
}

export function callerIsAdmin(caller: Caller): boolean {
  return caller.type === 'bootstrap-admin' || caller.principal.capabilities.includes('admin');
}

export function callerId(caller: Caller): string {
  return caller.type === 'bootstrap-admin' ? 'bootstrap-admin' : caller.principal.name;
}

/** The caller's roles on a mailbox (empty when not a member). */
export function rolesOn(caller: Caller, mailbox: string): Role[] {
  if (caller.type !== 'principal') return [];
  return caller.principal.memberships.find((m) => m.mailbox === mailbox)?.roles ?? [];
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page; absent on the last page. */
  nextCursor?: string;
}
