/**
 * The relational model of DESIGN §3. PostgreSQL is the source of truth for
 * what exists; the blob store only holds bytes. Tables filled by later
 * features (envelopes, files, evidence, audit) start minimal; migrations
 * only ever move forward (drizzle-kit generate, never edit a landed one).
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  customType,
  date,
  index,
  json,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => Buffer.from(value),
});

/** PostgreSQL's 64-bit transaction id (pg_current_xact_id()), ordered, never wrapping. */
const xid8 = customType<{ data: string; driverData: string | bigint }>({
  dataType: () => 'xid8',
  fromDriver: (value) => String(value),
});

const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
};

export const entities = pgTable(
  'entities',
  {
    id: text('id').primaryKey(),
    kind: text('kind').notNull(),
    nameFr: text('name_fr').notNull(),
    nameNl: text('name_nl').notNull(),
    enterpriseNumber: text('enterprise_number'),
    nisCode: text('nis_code'),
    parentId: text('parent_id').references((): any => entities.id),
    validFrom: date('valid_from', { mode: 'string' }),
    validUntil: date('valid_until', { mode: 'string' }),
    ...timestamps,
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex('entities_enterprise_number_key').on(table.enterpriseNumber),
    uniqueIndex('entities_nis_code_key').on(table.nisCode),
    check('entities_validity', sql`${table.validUntil} IS NULL OR ${table.validFrom} IS NULL OR ${table.validFrom} <= ${table.validUntil}`),
  ],
);

export const mailboxes = pgTable(
  'mailboxes',
  {
    address: text('address').primaryKey(),
    entityId: text('entity_id')
      .notNull()
      .references(() => entities.id),
    name: text('name').notNull(),
    ...timestamps,
  },
  (table) => [uniqueIndex('mailboxes_entity_name_key').on(table.entityId, table.name)],
);

export const principals = pgTable(
  'principals',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    kind: text('kind').notNull(),
    displayName: text('display_name'),
    oidcSubject: text('oidc_subject'),
    /** Platform-wide capabilities: `admin`, `export`. */
    capabilities: text('capabilities').array().notNull().default(sql`'{}'::text[]`),
    active: boolean('active').notNull().default(true),
    ...timestamps,
    deactivatedAt: timestamp('deactivated_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('principals_name_key').on(table.name),
    uniqueIndex('principals_oidc_subject_key').on(table.oidcSubject),
  ],
);

export const memberships = pgTable(
  'memberships',
  {
    principalId: uuid('principal_id')
      .notNull()
      .references(() => principals.id),
    mailboxAddress: text('mailbox_address')
      .notNull()
      .references(() => mailboxes.address),
    roles: text('roles').array().notNull(),
    ...timestamps,
  },
  (table) => [
    primaryKey({ columns: [table.principalId, table.mailboxAddress] }),
    index('memberships_mailbox_idx').on(table.mailboxAddress),
  ],
);

/**
 * Credentials of principals. A bearer token is stored only as the SHA-256 of
 * its secret (the secret has ≥ 256 bits of entropy, so a fast hash is the
 * right tool, unlike passwords); SSH keys and client certificates come later
 * and reuse the table with their own `kind`.
 */
export const credentials = pgTable(
  'credentials',
  {
    id: uuid('id').primaryKey(),
    principalId: uuid('principal_id')
      .notNull()
      .references(() => principals.id),
    kind: text('kind').notNull(),
    secretHash: text('secret_hash'),
    publicKey: text('public_key'),
    fingerprint: text('fingerprint'),
    label: text('label'),
    ...timestamps,
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('credentials_secret_hash_key').on(table.secretHash),
    uniqueIndex('credentials_fingerprint_key').on(table.kind, table.fingerprint),
    index('credentials_principal_idx').on(table.principalId),
  ],
);

export const envelopes = pgTable(
  'envelopes',
  {
    id: uuid('id').primaryKey(),
    type: text('type').notNull(),
    typeVersion: text('type_version').notNull(),
    fromMailbox: text('from_mailbox')
      .notNull()
      .references(() => mailboxes.address),
    status: text('status').notNull(),
    metadata: jsonb('metadata').notNull(),
    inReplyTo: uuid('in_reply_to').references((): any => envelopes.id),
    createdBy: uuid('created_by')
      .notNull()
      .references(() => principals.id),
    /** Millisecond precision: keyset cursors carry JavaScript dates. */
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date', precision: 3 }).notNull().defaultNow(),
    submittedAt: timestamp('submitted_at', { withTimezone: true, mode: 'date' }),
    deadline: date('deadline', { mode: 'string' }),
    retainUntil: date('retain_until', { mode: 'string' }),
    /** Values the type computes from the metadata (tutelleKind, aboveEuThreshold…) and warnings. */
    computed: jsonb('computed').notNull().default(sql`'{}'::jsonb`),
    /** The tutelle decision clock of an act (deadlines.ts), when its type has one. */
    clock: jsonb('clock'),
    /**
     * The public keys the files must be encrypted for (DESIGN §4c), pinned
     * when the draft was made: every recipient mailbox's active key and the
     * sender's own. Each item: {mailbox, fingerprint, keyId,
     * encryptionKeyIds, publicKey}. A copy, not a reference, so that what the
     * sender was told to encrypt for never changes under it.
     */
    encryptionKeys: jsonb('encryption_keys').notNull().default(sql`'[]'::jsonb`),
    /** When the retention purge removed the files and personal data. */
    purgedAt: timestamp('purged_at', { withTimezone: true, mode: 'date' }),
    /**
     * The transaction that last changed the envelope (or its recipients or
     * files, by trigger): the export feed's order. Rows are served only below
     * the oldest transaction still running, so a late commit is never skipped.
     */
    feedXid: xid8('feed_xid').notNull().default(sql`pg_current_xact_id()`),
    /**
     * The recipients as the listing shows them (a JSON array, address order,
     * instants as ISO-8601 UTC text), kept by triggers on envelope_recipients
     * (migration 0013): the API's listing reads it instead of aggregating each
     * envelope's recipient rows per page (issue #4). Never written by the app.
     */
    recipientsJson: json('recipients_json'),
  },
  (table) => [
    index('envelopes_from_idx').on(table.fromMailbox, table.id),
    index('envelopes_outbox_idx').on(table.fromMailbox, table.createdAt, table.id),
    index('envelopes_status_created_idx').on(table.status, table.createdAt),
    index('envelopes_feed_idx').on(table.feedXid, table.id),
    index('envelopes_retain_idx').on(table.retainUntil),
  ],
);

export const envelopeRecipients = pgTable(
  'envelope_recipients',
  {
    envelopeId: uuid('envelope_id')
      .notNull()
      .references(() => envelopes.id),
    mailboxAddress: text('mailbox_address')
      .notNull()
      .references(() => mailboxes.address),
    status: text('status').notNull(),
    /** Millisecond precision: keyset cursors carry JavaScript dates. */
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date', precision: 3 }),
    retrievedAt: timestamp('retrieved_at', { withTimezone: true, mode: 'date' }),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    primaryKey({ columns: [table.envelopeId, table.mailboxAddress] }),
    index('envelope_recipients_mailbox_idx').on(table.mailboxAddress, table.envelopeId),
    index('envelope_recipients_inbox_idx').on(table.mailboxAddress, table.deliveredAt, table.envelopeId),
    // The inbox filtered by recipient status (e.g. what is still unread: delivered) as an index range in
    // listing order, however rare that status is in the mailbox, rather than a filter over its whole history.
    index('envelope_recipients_inbox_status_idx').on(table.mailboxAddress, table.status, table.deliveredAt, table.envelopeId),
  ],
);

export const files = pgTable(
  'files',
  {
    id: uuid('id').primaryKey(),
    envelopeId: uuid('envelope_id')
      .notNull()
      .references(() => envelopes.id),
    name: text('name').notNull(),
    mediaType: text('media_type').notNull(),
    role: text('role'),
    size: bigint('size', { mode: 'number' }),
    sha256: text('sha256'),
    plaintextSha256: text('plaintext_sha256'),
    storageKey: text('storage_key').notNull(),
    recipientKeyIds: text('recipient_key_ids').array(),
    /** Size announced at creation (null while tus creation-defer-length). */
    declaredSize: bigint('declared_size', { mode: 'number' }),
    uploadedBy: uuid('uploaded_by').references(() => principals.id),
    ...timestamps,
    completedAt: timestamp('completed_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [uniqueIndex('files_storage_key_key').on(table.storageKey), index('files_envelope_idx').on(table.envelopeId)],
);

export const evidence = pgTable(
  'evidence',
  {
    id: uuid('id').primaryKey(),
    envelopeId: uuid('envelope_id').notNull(),
    eventType: text('event_type').notNull(),
    eventTime: timestamp('event_time', { withTimezone: true, mode: 'date' }).notNull(),
    recipient: text('recipient'),
    /** The exact signed bytes (RFC 8785 canonical JSON). */
    canonical: bytea('canonical').notNull(),
    /** Detached CMS SignedData, DER. */
    signature: bytea('signature').notNull(),
    prevHash: text('prev_hash'),
    /** Insertion order: appends happen under the envelope's row lock, so this is the chain order. */
    seq: bigserial('seq', { mode: 'number' }).notNull(),
  },
  (table) => [index('evidence_envelope_idx').on(table.envelopeId, table.eventTime), index('evidence_envelope_seq_idx').on(table.envelopeId, table.seq)],
);

/** Append-only, hash-chained: hash = SHA-256(prevHash ‖ canonical event). */
export const auditEvents = pgTable('audit_events', {
  seq: bigserial('seq', { mode: 'number' }).primaryKey(),
  at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  actor: text('actor'),
  action: text('action').notNull(),
  subject: text('subject'),
  data: jsonb('data').notNull().default(sql`'{}'::jsonb`),
  /** The door the change came through: http, tus, sftp, cli, system. */
  door: text('door'),
  traceId: text('trace_id'),
  prevHash: text('prev_hash'),
  hash: text('hash').notNull(),
});

/**
 * OpenPGP keys of mailboxes (DESIGN §4c). One `active` key per mailbox (the
 * partial unique index makes a second one impossible, even for two nodes
 * rotating at once); rotated keys stay as `retired` so that files sent to them
 * remain readable. The private key is only ever the passphrase-locked armored
 * key the members deposited: the server never sees the passphrase.
 */
export const mailboxKeys = pgTable(
  'mailbox_keys',
  {
    id: uuid('id').primaryKey(),
    mailboxAddress: text('mailbox_address')
      .notNull()
      .references(() => mailboxes.address),
    /** v4 fingerprint, 40 lowercase hex digits. */
    fingerprint: text('fingerprint').notNull(),
    /** The primary key's key ID, 16 lowercase hex digits. */
    keyId: text('key_id').notNull(),
    /** Key IDs of the (sub)keys valid for encryption when published: what a file's header must name. */
    encryptionKeyIds: text('encryption_key_ids').array().notNull(),
    publicKey: text('public_key').notNull(),
    /** Armored private key, every secret (sub)key encrypted with the members' passphrase. */
    privateKey: text('private_key'),
    state: text('state').notNull(),
    /** The OpenPGP key's own creation time and expiry (null: never). */
    keyCreatedAt: timestamp('key_created_at', { withTimezone: true, mode: 'date' }).notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    /** When it was published here, retired, and when its private key was deposited. */
    ...timestamps,
    retiredAt: timestamp('retired_at', { withTimezone: true, mode: 'date' }),
    privateKeyAt: timestamp('private_key_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('mailbox_keys_fingerprint_key').on(table.fingerprint),
    uniqueIndex('mailbox_keys_active_key').on(table.mailboxAddress).where(sql`${table.state} = 'active'`),
    index('mailbox_keys_mailbox_idx').on(table.mailboxAddress, table.createdAt),
    check('mailbox_keys_state', sql`${table.state} IN ('active', 'retired')`),
  ],
);

/**
 * Browser sessions of the web door (signed in through OpenID Connect, or the
 * development sign-in of the embedded default). Server-side rows, so that any
 * node can serve a session and signing out or deactivating a principal ends
 * it at once; the cookie carries a random secret whose SHA-256 is the id.
 */
export const webSessions = pgTable(
  'web_sessions',
  {
    /** SHA-256 (hex) of the cookie's secret. */
    id: text('id').primaryKey(),
    principalId: uuid('principal_id')
      .notNull()
      .references(() => principals.id),
    /** The anti-CSRF token bound to this session (sent back in a header on state-changing requests). */
    csrfToken: text('csrf_token').notNull(),
    /** How the session was opened: `oidc` or `dev`. */
    method: text('method').notNull(),
    /** The ID token, kept only as the `id_token_hint` of an RP-initiated sign-out. */
    idToken: text('id_token'),
    ...timestamps,
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [index('web_sessions_principal_idx').on(table.principalId), index('web_sessions_expires_idx').on(table.expiresAt)],
);

/**
 * The send folders of the SFTP door (`/<mailbox>/send/<name>/`, src/sftp/send-folders.ts):
 * the name a back office gave with `mkdir`, the draft its envelope.json made,
 * the descriptor and per-file hints, and the outcome once renamed to
 * `<name>.submit` (state, acceptance receipt, last refusal as ERROR.json).
 * Door state in the database so that any node sees it, inside the same
 * transactions as the envelopes: the primary key makes two sessions (or two
 * nodes) creating one name get one folder, and deleting a draft (deleteDraft,
 * the hygiene sweep) deletes its folder by cascade. A folder without a draft
 * yet has no envelope_id.
 */
export const sftpSendFolders = pgTable(
  'sftp_send_folders',
  {
    mailboxAddress: text('mailbox_address')
      .notNull()
      .references(() => mailboxes.address),
    name: text('name').notNull(),
    envelopeId: uuid('envelope_id').references(() => envelopes.id, { onDelete: 'cascade' }),
    /** `editing` shows as send/<name>/, `submitted` and `refused` as send/<name>.submit/. */
    state: text('state').notNull(),
    /** The envelope.json as the operator put it (served back as is). */
    descriptor: text('descriptor'),
    /** Per-file hints by file name: {role, mediaType, plaintextSha256}. */
    fileHints: jsonb('file_hints').notNull().default(sql`'{}'::jsonb`),
    /** The SubmissionAcceptance evidence id, once submitted. */
    receiptId: uuid('receipt_id'),
    /** The last refusal in this folder (RFC 9457 problem), served as ERROR.json. */
    lastError: jsonb('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date', precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ columns: [table.mailboxAddress, table.name] }),
    uniqueIndex('sftp_send_folders_envelope_key').on(table.envelopeId),
    check('sftp_send_folders_state', sql`${table.state} IN ('editing', 'submitted', 'refused')`),
    check('sftp_send_folders_submitted_has_draft', sql`${table.state} = 'editing' OR ${table.envelopeId} IS NOT NULL`),
  ],
);
