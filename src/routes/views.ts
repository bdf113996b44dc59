/** Domain records → JSON shapes of the HTTP contract (DESIGN §5). */
import type { Entity, Mailbox, Page, Principal, Role, TokenInfo } from '../domain/model.ts';
import type { EnvelopeRecord, FileRecord, ListedEnvelope, RecipientRecord, StoredEvidence } from '../domain/ports.ts';
import { pinnedKeysView } from '../domain/envelopes.ts';
import { findEnvelopeType } from '../domain/envelope-types/index.ts';

/** The file roles the envelope's type asks for, given its metadata (checked again at submit). */
function requiredRolesOf(e: EnvelopeRecord): string[] {
  try {
    return findEnvelopeType(e.type, e.typeVersion)?.requiredRoles(e.metadata as never) ?? [];
  } catch {
    return []; // metadata the type no longer understands (a purged envelope): nothing to ask for
  }
}

export const API = '/api/v1';

export const entityView = (e: Entity) => ({
  id: e.id,
  kind: e.kind,
  name: e.name,
  enterpriseNumber: e.enterpriseNumber,
  nisCode: e.nisCode,
  parent: e.parent,
  validFrom: e.validFrom,
  validUntil: e.validUntil,
  href: `${API}/entities/${e.id}`,
});

export const mailboxView = (m: Mailbox & { roles?: Role[] }) => ({
  address: m.address,
  entity: m.entity,
  name: m.name,
  ...(m.roles === undefined ? {} : { roles: m.roles }),
  href: `${API}/mailboxes/${m.address}`,
});

export const principalView = (p: Principal) => ({
  id: p.id,
  name: p.name,
  kind: p.kind,
  displayName: p.displayName,
  oidcSubject: p.oidcSubject,
  capabilities: p.capabilities,
  active: p.active,
  memberships: p.memberships,
  createdAt: p.createdAt.toISOString(),
  deactivatedAt: p.deactivatedAt?.toISOString() ?? null,
  href: `${API}/principals/${p.id}`,
});

export const tokenView = (t: TokenInfo) => ({
  id: t.id,
  label: t.label,
  createdAt: t.createdAt.toISOString(),
  expiresAt: t.expiresAt?.toISOString() ?? null,
  revokedAt: t.revokedAt?.toISOString() ?? null,
  lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
});

/** `{items, next}` where `next` repeats the request's path and filters with the new cursor. */
export function pageView<T, V>(page: Page<T>, view: (item: T) => V, path: string, query: Record<string, string | undefined>) {
  if (page.nextCursor === undefined) return { items: page.items.map(view) };
  return { items: page.items.map(view), next: nextLink(path, query, page.nextCursor) };
}

/** The next page's URL: the same query with the cursor after the last item. */
export function nextLink(path: string, query: Record<string, string | undefined>, cursor: string): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && key !== 'cursor') params.set(key, value);
  params.set('cursor', cursor);
  return `${path}?${params.toString()}`;
}

export const limitOf = (query: { limit?: string }) => (query.limit === undefined ? undefined : Number(query.limit));

const iso = (d: Date | null) => d?.toISOString() ?? null;

export const fileView = (f: FileRecord) => ({
  id: f.id,
  name: f.name,
  mediaType: f.mediaType,
  role: f.role,
  size: f.size,
  sha256: f.sha256,
  plaintextSha256: f.plaintextSha256,
  recipientKeyIds: f.recipientKeyIds,
  complete: f.completedAt !== null,
  href: `${API}/envelopes/${f.envelopeId}/files/${f.id}`,
});

export const recipientView = (r: RecipientRecord) => ({
  address: r.address,
  status: r.status,
  deliveredAt: iso(r.deliveredAt),
  retrievedAt: iso(r.retrievedAt),
  acknowledgedAt: iso(r.acknowledgedAt),
});

export const receiptRef = (r: StoredEvidence) => ({
  id: r.id,
  eventType: r.eventType,
  eventTime: r.eventTime.toISOString(),
  recipient: r.recipient,
  href: `${API}/receipts/${r.id}`,
});

export const receiptView = (r: StoredEvidence) => ({
  ...receiptRef(r),
  envelopeId: r.envelopeId,
  evidenceHref: `${API}/receipts/${r.id}/evidence.json`,
  signatureHref: `${API}/receipts/${r.id}/signature.p7s`,
});

export const envelopeView = (e: EnvelopeRecord, receipts?: StoredEvidence[]) => ({
  id: e.id,
  type: e.type,
  typeVersion: e.typeVersion,
  from: e.from,
  status: e.status,
  metadata: e.metadata as Record<string, unknown>,
  inReplyTo: e.inReplyTo,
  createdAt: e.createdAt.toISOString(),
  submittedAt: iso(e.submittedAt),
  deadline: e.deadline,
  retainUntil: e.retainUntil,
  purgedAt: iso(e.purgedAt),
  computed: e.computed,
  recipients: e.recipients.map(recipientView),
  encryptionKeys: pinnedKeysView(e.encryptionKeys),
  requiredRoles: requiredRolesOf(e),
  files: e.files.map(fileView),
  ...(e.status === 'draft' ? { uploadUrl: `${API}/uploads` } : {}),
  ...(receipts === undefined ? {} : { receipts: receipts.map(receiptRef) }),
  href: `${API}/envelopes/${e.id}`,
});

/** A whole envelope as a listing shows it (the deadlines list reads whole envelopes). */
export const listedEnvelope = (e: Omit<EnvelopeRecord, 'files' | 'encryptionKeys'>): ListedEnvelope => ({
  id: e.id,
  type: e.type,
  from: e.from,
  status: e.status,
  metadata: e.metadata,
  computed: e.computed,
  createdAt: e.createdAt.toISOString(),
  submittedAt: iso(e.submittedAt),
  deadline: e.deadline,
  recipients: e.recipients.map(recipientView),
});

/**
 * A listed envelope. In an inbox (`mailbox` given) `status` is that
 * recipient mailbox's status (delivered, retrieved, acknowledged), the one the
 * `status` filter selects on; elsewhere it is the envelope's (draft, submitted).
 * Its instants and recipients are already the contract's (ListedEnvelope).
 */
export const envelopeSummaryView = (e: ListedEnvelope, mailbox?: string, overdue = false) => ({
  id: e.id,
  type: e.type,
  from: e.from,
  status: (mailbox === undefined ? undefined : e.recipients.find((r) => r.address === mailbox)?.status) ?? e.status,
  envelopeStatus: e.status,
  metadata: e.metadata as Record<string, unknown>,
  recipients: e.recipients,
  createdAt: e.createdAt,
  submittedAt: e.submittedAt,
  deadline: e.deadline,
  overdue,
  href: `${API}/envelopes/${e.id}`,
});
