/**
 * Interfaces the domain needs from its adapters. `db/` implements them; the
 * domain never imports drizzle, postgres.js or the S3 SDK.
 */
import type { SealedEvidence } from './evidence.ts';
import { callerId, type Caller, type Capability, type Entity, type EntityKind, type Mailbox, type Membership, type Page, type Principal, type PrincipalKind, type TokenInfo } from './model.ts';

/** An audit entry appended in the same transaction as the change it records. */
export interface AuditInput {
  actor: string;
  action: string;
  subject: string;
  data?: Record<string, unknown>;
  /** The door the change came through (http, tus, sftp, cli, system). */
  door?: string;
  /** The request's BelGov-Trace-Id. */
  traceId?: string;
}

/** The audit entry of an action done by `caller`, with its door and trace id. */
export function auditOf(caller: Caller, action: string, subject: string, data?: Record<string, unknown>): AuditInput {
  const input: AuditInput = { actor: callerId(caller), action, subject };
  if (data !== undefined) input.data = data;
  if (caller.via?.door !== undefined) input.door = caller.via.door;
  if (caller.via?.traceId !== undefined) input.traceId = caller.via.traceId;
  return input;
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
  /** The OIDC subject that signs in as this principal (null: none). */
  oidcSubject?: string | null;
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

/** A TLS client certificate of a machine principal, stored as a credential of kind `client_cert`. */
export interface ClientCertificateInfo extends TokenInfo {
  /** SHA-256 of the certificate's DER, 64 lowercase hex digits. */
  fingerprint: string;
  /** The certificate (PEM), kept so that it can be shown and audited; the private key is never stored. */
  certificatePem: string | null;
}

export interface NewClientCertificate {
  id: string;
  principalId: string;
  fingerprint: string;
  certificatePem: string;
  label: string | null;
  /** The certificate's notAfter. */
  expiresAt: Date;
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

  /** Registers a TLS client certificate (credential kind `client_cert`); DuplicateKeyError when its fingerprint is known. */
  createClientCertificate(certificate: NewClientCertificate, audit: AuditInput): Promise<ClientCertificateInfo>;
  listClientCertificates(principalId: string): Promise<ClientCertificateInfo[]>;
  /** Sets revokedAt if not yet revoked; false when no such client certificate of that principal. */
  revokeClientCertificate(principalId: string, credentialId: string, at: Date, audit: AuditInput): Promise<boolean>;
  /** The client-certificate credential with this SHA-256 fingerprint (lowercase hex), revoked or not, and its principal. */
  findClientCertificateByFingerprint(fingerprint: string): Promise<{ certificate: ClientCertificateInfo; principal: Principal } | null>;
}

export type { Page };

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

// ---------------------------------------------------------------- envelopes

export type EnvelopeStatus = 'draft' | 'submitted';
export type RecipientStatus = 'pending' | 'delivered' | 'retrieved' | 'acknowledged';

export interface RecipientRecord {
  address: string;
  status: RecipientStatus;
  deliveredAt: Date | null;
  retrievedAt: Date | null;
  acknowledgedAt: Date | null;
}

export interface FileRecord {
  id: string;
  envelopeId: string;
  name: string;
  mediaType: string;
  role: string | null;
  declaredSize: number | null;
  size: number | null;
  sha256: string | null;
  plaintextSha256: string | null;
  storageKey: string;
  /** The encryption (sub)key IDs the file's OpenPGP header names, recorded at submit (null before). */
  recipientKeyIds: string[] | null;
  createdAt: Date;
  completedAt: Date | null;
}

/**
 * A public key a draft's files must be encrypted for (DESIGN §4c): a copy of
 * a mailbox's active key taken when the draft was made (or re-pinned when a
 * submission found that the mailbox had rotated its key).
 */
export interface PinnedKey {
  mailbox: string;
  /** 40 lowercase hex digits. */
  fingerprint: string;
  /** The primary key ID, 16 lowercase hex digits. */
  keyId: string;
  /** The (sub)key IDs a file's header must name, one of them at least. */
  encryptionKeyIds: string[];
  /** Armored public key, to encrypt with. */
  publicKey: string;
}

export interface EnvelopeRecord {
  id: string;
  type: string;
  typeVersion: string;
  from: string;
  status: EnvelopeStatus;
  metadata: unknown;
  inReplyTo: string | null;
  createdBy: string;
  createdAt: Date;
  submittedAt: Date | null;
  deadline: string | null;
  retainUntil: string | null;
  /** Values the type derived (tutelleKind, aboveEuThreshold…), warnings, flags such as `late`. */
  computed: Record<string, unknown>;
  /** The tutelle clock of an act (deadlines.ts). */
  clock: unknown;
  purgedAt: Date | null;
  /** The keys the files are (to be) encrypted for: recipients' then the sender's. */
  encryptionKeys: PinnedKey[];
  recipients: RecipientRecord[];
  files: FileRecord[];
}

/** What a submission changes besides the status: on the envelope, and on the act a decision or complement answers. */
export interface SubmitChanges {
  deadline: string | null;
  retainUntil: string | null;
  clock: unknown;
  computed: Record<string, unknown>;
  related?: { id: string; deadline: string | null; clock: unknown; computed: Record<string, unknown> };
  /** The keys the files were checked against (the pins, refreshed) and each file's recipient key IDs. */
  encryption?: { keys: PinnedKey[]; fileKeyIds: Record<string, string[]> };
}

export interface NewEnvelope {
  id: string;
  type: string;
  typeVersion: string;
  from: string;
  metadata: unknown;
  inReplyTo: string | null;
  createdBy: string;
  createdAt: Date;
  recipients: string[];
  /** The keys pinned to the draft (empty only for rows seeded outside the domain). */
  encryptionKeys?: PinnedKey[];
  computed?: Record<string, unknown>;
}

export interface NewFile {
  id: string;
  envelopeId: string;
  name: string;
  mediaType: string;
  role: string | null;
  declaredSize: number | null;
  plaintextSha256: string | null;
  storageKey: string;
  uploadedBy: string;
  /** From the domain clock, so upload expiry is judged on one time line. */
  createdAt: Date;
}

export interface MailboxListQuery {
  address: string;
  direction: 'in' | 'out';
  type?: string;
  status?: string;
  /** Keyset: strictly after (time, id) in the descending order. */
  after?: { time: Date; id: string };
  limit: number;
}

/**
 * An instant as the HTTP contract writes it: ISO-8601 in UTC with milliseconds,
 * `2026-03-02T09:00:00.000Z` (what `Date.prototype.toISOString` gives).
 */
export type IsoInstant = string;

/** A recipient as a listing shows it. */
export interface ListedRecipient {
  address: string;
  status: RecipientStatus;
  deliveredAt: IsoInstant | null;
  retrievedAt: IsoInstant | null;
  acknowledgedAt: IsoInstant | null;
}

/**
 * An envelope as a mailbox listing shows it: what the list item of the
 * contract carries and what the domain needs to flag it overdue; no files,
 * pinned keys, clock or retention. Its instants are already the contract's
 * text, formatted by the database: a page of 50 carries about 300 of them,
 * and text → Date → text for each was a measured share of a listing's CPU
 * (issue #4).
 */
export interface ListedEnvelope {
  id: string;
  type: string;
  from: string;
  status: EnvelopeStatus;
  metadata: unknown;
  computed: Record<string, unknown>;
  createdAt: IsoInstant;
  submittedAt: IsoInstant | null;
  deadline: string | null;
  /** In address order. */
  recipients: ListedRecipient[];
}

export interface MailboxListItem {
  envelope: ListedEnvelope;
  /** The listing's sort time: delivery time (in) or creation time (out). */
  sortTime: Date;
  /** Deadline passed without a final decision (set by the domain, Brussels date). */
  overdue?: boolean;
}

/** A list item as the HTTP contract's JSON text (EnvelopeSummaryView), and where a cursor after it points. */
export interface MailboxJsonRow {
  json: string;
  /** The listing's sort time (ISO-8601 UTC with milliseconds) and the envelope id. */
  sortTime: IsoInstant;
  id: string;
}

/** What a JSON list item needs beyond the rows: the overdue rule's inputs and the envelopes' URL prefix. */
export interface MailboxJsonView {
  /** Brussels date, YYYY-MM-DD. */
  today: string;
  finalDecisions: readonly string[];
  /** `href` is this followed by the envelope id. */
  hrefPrefix: string;
}

export interface EnvelopeRepository {
  create(envelope: NewEnvelope, audit: AuditInput): Promise<EnvelopeRecord>;
  find(id: string): Promise<EnvelopeRecord | null>;
  /** Deletes a draft and its file rows; false when it is no longer a draft. */
  deleteDraft(id: string, audit: AuditInput): Promise<boolean>;
  addFile(file: NewFile, audit: AuditInput): Promise<FileRecord>;
  findFile(fileId: string): Promise<FileRecord | null>;
  /** Marks an upload complete with its final size and SHA-256. */
  completeFile(fileId: string, result: { size: number; sha256: string }, at: Date): Promise<FileRecord | null>;
  removeFile(fileId: string, audit: AuditInput): Promise<void>;
  /**
   * Moves a draft to submitted and its recipients to delivered, atomically;
   * false when it was not a draft any more (a concurrent submit won).
   */
  markSubmitted(id: string, at: Date, audit: AuditInput, seal: Sealer, changes?: SubmitChanges): Promise<boolean>;
  /** First download by a recipient: delivered → retrieved (no change otherwise). */
  markRetrieved(id: string, mailbox: string, at: Date, audit: AuditInput, seal: Sealer): Promise<void>;
  /** delivered|retrieved → acknowledged; returns the recipient afterwards. */
  markAcknowledged(id: string, mailbox: string, at: Date, audit: AuditInput, seal: Sealer): Promise<RecipientRecord | null>;
  /** Appends an audit entry that goes with no state change (a file read). */
  recordAudit(audit: AuditInput): Promise<void>;
  /**
   * A refused submission: stores only its evidence and audit entry, and,
   * when a mailbox rotated its key, the refreshed pins (`repin`).
   */
  recordRejection(id: string, audit: AuditInput, seal: Sealer, repin?: PinnedKey[]): Promise<void>;
  listEvidence(envelopeId: string): Promise<StoredEvidence[]>;
  /** Submitted envelopes with a running deadline that the mailbox sent or received, by due date. */
  withDeadlines(address: string, limit: number): Promise<EnvelopeRecord[]>;
  findEvidence(id: string): Promise<StoredEvidence | null>;
  listMailbox(query: MailboxListQuery): Promise<MailboxListItem[]>;
  /** The same rows (at most `limit`) as the HTTP contract's JSON, for the API's listing. */
  listMailboxJson(query: MailboxListQuery, view: MailboxJsonView): Promise<MailboxJsonRow[]>;
  /** Drafts created before `before` (expired), oldest first. */
  expiredDrafts(before: Date, limit: number): Promise<EnvelopeRecord[]>;
  /** Storage keys of all file rows whose key starts with `prefix`. */
  storageKeys(prefix: string): Promise<Set<string>>;
}

/**
 * Builds the sealed evidence of a state change from the hash of the
 * envelope's last evidence; called by the repository inside the transaction
 * that makes the change, with the envelope row locked, so the evidence chain
 * of an envelope never forks.
 */
export type Sealer = (prevHash: string | null, prevEventTime: Date | null) => SealedEvidence[];

/** A stored receipt is exactly what was sealed. */
export type StoredEvidence = SealedEvidence;
