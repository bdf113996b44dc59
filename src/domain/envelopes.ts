/**
 * Envelopes: drafts, files, submission, delivery, retrieval and
 * acknowledgement (DESIGN §3, §5). Every door (HTTP, tus, multipart, later
 * SFTP) calls these functions, so a rule lives here once.
 *
 * Visibility: an envelope exists for a caller only as a member of its `from`
 * mailbox, or — once submitted — as a member of one of its recipient
 * mailboxes. Anyone else gets 404, so existence never leaks. A member who
 * may see the envelope but lacks the role for an action gets 403.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { AppError, ConflictError, ForbiddenError, NotFoundError, ValidationError, type ProblemIssue } from '../errors.ts';
import type { BlobStore, ByteRange } from '../storage/blob-store.ts';
import { decodeCursorValue, encodeCursorValue, pageLimit } from './pagination.ts';
import { assertMetadata, checkMetadata, findEnvelopeType, inReplyToIssues, metadataIssues, missingRoleIssues, routeEnvelope, type EnvelopeType } from './envelope-types/index.ts';
import { brusselsDate, daysBetween } from './calendar.ts';
import { senderMay } from './envelope-types/common.ts';
import { evidenceConcerns, sealEvidence, type EvidenceContext } from './evidence.ts';
import { MAILBOX_ADDRESS, UUID_PATTERN, uuidv7 } from './ids.ts';
import { rolesOn, type Caller, type Page, type Role } from './model.ts';
import {
  auditOf,
  type Clock,
  type DirectoryRepository,
  type EnvelopeRecord,
  type EnvelopeRepository,
  type FileRecord,
  type MailboxListItem,
  type MailboxListQuery,
  type PinnedKey,
  type RecipientRecord,
  type StoredEvidence,
  type SubmitChanges,
} from './ports.ts';
import { submitChanges } from './tutelle-clock.ts';

/** The key ID of a hidden recipient (RFC 9580 §5.1: gpg's --throw-keyids). */
const WILDCARD_KEY_ID = '0000000000000000';

export const MAX_RECIPIENTS = 100;

/**
 * An event's time is read before the envelope row is locked, so two
 * concurrent events may be sealed in the other order: along an envelope's
 * chain of receipts, time never goes back.
 */
function notBefore(now: Date, previous: Date | null): Date {
  return previous !== null && previous > now ? previous : now;
}

/** Decisions that close an act's tutelle (the others extend or stop its clock). */
const FINAL_DECISIONS = new Set(['suspension', 'annulment', 'approval', 'refusal']);

/** Has the act's tutelle been closed by a final decision (its deadline no longer runs)? */
function decided(envelope: Pick<EnvelopeRecord, 'computed'>): boolean {
  const decisions = envelope.computed.decisions;
  return Array.isArray(decisions) && (decisions as Array<{ kind?: string }>).some((d) => FINAL_DECISIONS.has(d.kind ?? ''));
}

/** A submitted envelope whose deadline passed (Brussels date `today`) without a final decision. */
function isOverdue(envelope: Pick<EnvelopeRecord, 'computed' | 'deadline' | 'status'>, today: string): boolean {
  return envelope.status === 'submitted' && envelope.deadline !== null && today > envelope.deadline && !decided(envelope);
}

export type CompleteFile = FileRecord & { size: number; sha256: string };
export const MAX_FILES = 200;

export interface CreateDraftInput {
  type: string;
  from: string;
  to?: string[];
  metadata: unknown;
  inReplyTo?: string | null;
}

export interface BeginUploadInput {
  envelopeId: string;
  filename: string;
  mediaType?: string;
  role?: string | null;
  plaintextSha256?: string | null;
  /** Announced size; undefined with tus creation-defer-length. */
  size?: number;
}

/** Everything a submission step may look at; steps throw or push issues. */
export interface SubmitContext {
  caller: Caller;
  envelope: EnvelopeRecord;
  type: EnvelopeType;
  now: Date;
  /** The Europe/Brussels date of `now`: the receipt date. */
  today: string;
  /** Problems found so far; a non-empty list refuses the submission (422). */
  issues: ProblemIssue[];
  /** Deadline, retention and computed values the submission will write. */
  changes?: SubmitChanges;
  /** What the encryption check found: the keys checked (the pins, refreshed) and each file's recipients. */
  encryption?: NonNullable<SubmitChanges['encryption']>;
  /** Set when a mailbox rotated its key since the draft: the refusal re-pins the draft to these. */
  repin?: PinnedKey[];
}

/** One check of the submission pipeline. Later features add steps (routing, encryption, evidence). */
export type SubmitStep = (context: SubmitContext) => Promise<void> | void;

/** The active key of a mailbox, as the key repository stores it (domain/keys.ts). */
export interface ActiveKeyLookup {
  active(mailbox: string): Promise<{ fingerprint: string; keyId: string; encryptionKeyIds: string[]; publicKey: string; expiresAt: Date | null } | null>;
}

export interface EnvelopesDeps {
  envelopes: EnvelopeRepository;
  directory: DirectoryRepository;
  blobStore: BlobStore;
  /**
   * Removes a tus upload with the upload store's sidecars (`.json` locally, `.info`/`.part` on S3);
   * idempotent. Without it only the stored object is deleted and the sidecars wait for the hygiene sweep.
   */
  removeUpload?: (storageKey: string) => Promise<void>;
  /** Mailbox keys, to pin at draft creation and re-check at submit (DESIGN §4c). */
  keys: ActiveKeyLookup;
  /**
   * The recipients' key IDs named by a message header (crypto/openpgp-header.ts);
   * rejects when the bytes are not an OpenPGP encrypted message.
   */
  readRecipientKeyIds: (header: Uint8Array) => Promise<string[]>;
  /** How many leading bytes of a file `readRecipientKeyIds` needs. */
  headerBytes: number;
  clock: Clock;
  maxUploadBytes: number;
  /** Extra steps appended to the default submission pipeline. */
  submitSteps?: SubmitStep[];
  /** Issuer name and signer of the receipts. */
  evidence: EvidenceContext;
}

const FILENAME_MAX = 255;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]{1,127}\/[a-z0-9!#$&^_.+-]{1,127}$/i;
const ROLE = /^[a-z][a-zA-Z0-9_-]{0,63}$/;

/**
 * A client's file name, reduced to a plain name: the last path segment, no
 * control characters. Storage keys never derive from it; it is only shown.
 */
export function plainFileName(name: string): string | null {
  const last = name.split(/[\\/]/).pop() ?? '';
  const trimmed = last.trim();
  if (trimmed === '' || trimmed === '.' || trimmed === '..' || trimmed.length > FILENAME_MAX) return null;
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) return null;
  return trimmed;
}

export function storageKeyFor(envelopeId: string, fileId: string): string {
  return `envelopes/${envelopeId}/${fileId}`;
}

function hasRole(caller: Caller, mailbox: string, role: Role): boolean {
  return rolesOn(caller, mailbox).includes(role);
}

function isSenderMember(caller: Caller, envelope: EnvelopeRecord): boolean {
  return rolesOn(caller, envelope.from).length > 0;
}

/** Recipient mailboxes of a submitted envelope where the caller has `read`. */
function readableRecipients(caller: Caller, envelope: EnvelopeRecord): RecipientRecord[] {
  if (envelope.status !== 'submitted') return [];
  return envelope.recipients.filter((r) => hasRole(caller, r.address, 'read'));
}

function isVisible(caller: Caller, envelope: EnvelopeRecord): boolean {
  if (isSenderMember(caller, envelope)) return true;
  if (envelope.status !== 'submitted') return false;
  return envelope.recipients.some((r) => rolesOn(caller, r.address).length > 0);
}

function receiptVisible(caller: Caller, envelope: EnvelopeRecord, evidence: StoredEvidence): boolean {
  if (isSenderMember(caller, envelope)) return true;
  if (envelope.status !== 'submitted') return false;
  return envelope.recipients.some((r) => rolesOn(caller, r.address).length > 0 && evidenceConcerns(evidence, r.address, false));
}

/** The default pipeline: authorisation, state, files, uploads, metadata. Order matters: cheap and decisive first. */
export const defaultSubmitSteps: SubmitStep[] = [
  function callerMaySend({ caller, envelope }) {
    if (!hasRole(caller, envelope.from, 'send')) throw new ForbiddenError(`Sending from ${envelope.from} needs the send role`);
  },
  function isDraft({ envelope }) {
    if (envelope.status !== 'draft') throw new ConflictError('envelopeNotDraft', 'The envelope was already submitted');
  },
  function hasFiles({ envelope, issues }) {
    if (envelope.files.length === 0) issues.push({ name: 'files', detail: 'An envelope needs at least one file' });
  },
  function uploadsComplete({ envelope, issues }) {
    for (const file of envelope.files) {
      if (file.completedAt === null) {
        issues.push({ name: `files/${file.id}`, value: file.name, detail: `The upload of "${file.name}" is not complete` });
      }
    }
  },
  function metadataValid({ envelope, type, today, issues }) {
    issues.push(...metadataIssues(type, envelope.metadata, { today }));
  },
  function requiredFileRoles({ envelope, type, issues }) {
    issues.push(...missingRoleIssues(type, envelope.metadata, envelope.files.map((f) => f.role)));
  },
];

function mailboxCursor(item: MailboxListItem): string {
  return encodeCursorValue({ t: item.sortTime.toISOString(), i: item.envelope.id });
}

const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = new RegExp(UUID_PATTERN);

function parseMailboxCursor(cursor: string | undefined): { time: Date; id: string } | undefined {
  const value = decodeCursorValue(cursor) as { t?: unknown; i?: unknown } | undefined;
  if (value === undefined) return undefined;
  // Only what mailboxCursor issues: an envelope id and a canonical instant of years 1-9999. Anything
  // else would reach the database as a uuid or timestamptz it refuses (a 500, not the client's 400).
  if (typeof value.t === 'string' && typeof value.i === 'string' && CURSOR_TIME.test(value.t) && UUID.test(value.i)) {
    const time = new Date(value.t);
    if (!Number.isNaN(time.getTime()) && time.toISOString() === value.t && time.getUTCFullYear() >= 1) return { time, id: value.i };
  }
  throw new ValidationError([{ in: 'query', name: 'cursor', detail: 'The cursor is not one this server issued' }], 'Invalid cursor');
}

export interface MailboxListOptions {
  direction: 'in' | 'out';
  type?: string;
  status?: string;
  cursor?: string;
  limit?: number;
}

/** Who may list a mailbox (the read role on it) and the repository query a listing sends, one row beyond the page. */
function mailboxListQuery(caller: Caller, address: string, options: MailboxListOptions): { query: MailboxListQuery; limit: number } {
  const roles = rolesOn(caller, address);
  if (roles.length === 0) throw new NotFoundError(`No mailbox ${address} among yours`);
  if (!roles.includes('read')) throw new ForbiddenError(`Listing ${address} needs the read role`);
  const limit = pageLimit(options.limit);
  const after = parseMailboxCursor(options.cursor);
  const query: MailboxListQuery = {
    address,
    direction: options.direction,
    limit: limit + 1,
    ...(options.type === undefined ? {} : { type: options.type }),
    ...(options.status === undefined ? {} : { status: options.status }),
    ...(after === undefined ? {} : { after }),
  };
  return { query, limit };
}

/** A mailbox's key as it can be pinned now, or why it cannot. */
type KeyLookup = { mailbox: string; pin: PinnedKey } | { mailbox: string; pin: null; why: string };

/** The active, unexpired key of each mailbox (recipients first, the sender last: DESIGN §4c). */
async function lookUpKeys(keys: ActiveKeyLookup, mailboxes: string[], now: Date): Promise<KeyLookup[]> {
  return Promise.all(
    mailboxes.map(async (mailbox): Promise<KeyLookup> => {
      const key = await keys.active(mailbox);
      if (key === null) return { mailbox, pin: null, why: `The mailbox ${mailbox} has no encryption key: its members must publish one (bxchange keygen) before files can be sent to it` };
      if (key.expiresAt !== null && key.expiresAt <= now) {
        return { mailbox, pin: null, why: `The key of ${mailbox} expired on ${key.expiresAt.toISOString()}: its members must publish a new one` };
      }
      return { mailbox, pin: { mailbox, fingerprint: key.fingerprint, keyId: key.keyId, encryptionKeyIds: key.encryptionKeyIds, publicKey: key.publicKey } };
    }),
  );
}

const pinMailboxes = (envelope: Pick<EnvelopeRecord, 'from' | 'recipients'>) => [...envelope.recipients.map((r) => r.address), envelope.from];

/**
 * The submission's encryption check (DESIGN §4c): each file's OpenPGP header
 * (its first bytes only, no private key involved) must name every mailbox's
 * current key. A mailbox that rotated its key since the draft was made is
 * checked against its new key, and a refusal then carries the new keys and
 * re-pins the draft, so the sender learns what to re-encrypt for.
 */
function encryptionStep(deps: EnvelopesDeps): SubmitStep {
  return async function filesEncryptedForEveryKey(context) {
    const { envelope, issues } = context;
    const lookups = await lookUpKeys(deps.keys, pinMailboxes(envelope), context.now);
    const pinned = new Map(envelope.encryptionKeys.map((k) => [k.mailbox, k]));
    const rotated = new Set<string>();
    for (const lookup of lookups) {
      if (lookup.pin === null) {
        issues.push({ name: 'encryptionKeys', value: lookup.mailbox, detail: lookup.why });
      } else if (pinned.get(lookup.mailbox)?.fingerprint !== lookup.pin.fingerprint) {
        rotated.add(lookup.mailbox);
      }
    }
    const current = lookups.flatMap((l) => (l.pin === null ? [] : [l.pin]));
    const fileKeyIds: Record<string, string[]> = {};
    for (const file of envelope.files) {
      if (file.completedAt === null) continue; // uploadsComplete reported it
      const label = `"${file.name}"`;
      let ids: string[];
      try {
        ids = await deps.readRecipientKeyIds(await readHeader(deps.blobStore, file, deps.headerBytes));
      } catch (err) {
        if (err instanceof AppError && err.code === 'blobNotFound') {
          // A complete file without its bytes is the platform's fault, as on download (hygiene reports it too).
          throw new AppError('fileMissing', `The stored bytes of ${label} are missing; the platform operators have been alerted`, { cause: err });
        }
        if (err instanceof AppError) throw err;
        issues.push({
          name: `files/${file.id}`,
          value: file.name,
          detail: `${label} is not an OpenPGP message encrypted to public keys: the server accepts only files encrypted for the envelope's encryptionKeys`,
        });
        continue;
      }
      fileKeyIds[file.id] = ids;
      for (const key of current) {
        if (key.encryptionKeyIds.some((id) => ids.includes(id))) continue;
        const hidden = ids.includes(WILDCARD_KEY_ID) ? ' (it hides its recipients, as gpg --throw-keyids does: the server cannot check it)' : '';
        const why = rotated.has(key.mailbox) ? `, which rotated its key since the draft was made: re-encrypt for its new key ${key.fingerprint}` : ` (key ${key.fingerprint})`;
        issues.push({ name: `files/${file.id}`, value: file.name, detail: `${label} is not encrypted for ${key.mailbox}${why}${hidden}` });
      }
    }
    context.encryption = { keys: current, fileKeyIds };
    if (rotated.size > 0 && issues.length > 0) context.repin = current;
  };
}

/** The first `bytes` of a stored file (bounded: never more, whatever the file's size). */
async function readHeader(blobStore: BlobStore, file: FileRecord, bytes: number): Promise<Uint8Array> {
  const size = file.size ?? 0;
  if (size === 0) return new Uint8Array(0);
  const stream = await blobStore.get(file.storageKey, { start: 0, end: Math.min(size, bytes) - 1 });
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    length += chunk.length;
    if (length >= bytes) break;
  }
  stream.destroy();
  return Buffer.concat(chunks, Math.min(length, bytes));
}

/** Pins as clients see them (the draft answer, a refusal after a rotation). */
export const pinnedKeysView = (keys: PinnedKey[]) =>
  keys.map((k) => ({ mailbox: k.mailbox, fingerprint: k.fingerprint, keyId: k.keyId, encryptionKeyIds: k.encryptionKeyIds, publicKey: k.publicKey }));

export function createEnvelopes(deps: EnvelopesDeps) {
  const { envelopes, directory, blobStore, clock } = deps;
  const submitSteps = [...defaultSubmitSteps, encryptionStep(deps), ...(deps.submitSteps ?? [])];

  /** Deletes a file's bytes and its upload's sidecars; never fails (what is left is an orphan for hygiene). */
  async function removeBytes(storageKey: string): Promise<void> {
    await deps.removeUpload?.(storageKey).catch(() => undefined);
    await blobStore.delete(storageKey).catch(() => undefined);
  }

  /** The envelope if the caller may see it, 404 otherwise. */
  async function visibleEnvelope(caller: Caller, id: string): Promise<EnvelopeRecord> {
    const envelope = await envelopes.find(id);
    if (envelope === null || !isVisible(caller, envelope)) throw new NotFoundError('No such envelope');
    return envelope;
  }

  /** A draft the caller may send from (404 if invisible, 403 without send, 409 if submitted). */
  async function sendableDraft(caller: Caller, id: string): Promise<EnvelopeRecord> {
    const envelope = await visibleEnvelope(caller, id);
    if (!hasRole(caller, envelope.from, 'send')) throw new ForbiddenError(`Sending from ${envelope.from} needs the send role`);
    if (envelope.status !== 'draft') throw new ConflictError('envelopeNotDraft', 'The envelope was already submitted; its files cannot change');
    return envelope;
  }

  const api = {
    submitSteps,

    async createDraft(caller: Caller, input: CreateDraftInput): Promise<EnvelopeRecord> {
      const type = findEnvelopeType(input.type);
      if (type === undefined) throw ValidationError.field('/type', `Unknown envelope type "${input.type}"`, input.type);
      const fromRoles = rolesOn(caller, input.from);
      const fromMailbox = fromRoles.length === 0 ? null : await directory.findMailbox(input.from);
      if (fromMailbox === null) throw new NotFoundError(`No mailbox ${input.from} among yours`);
      if (!fromRoles.includes('send')) throw new ForbiddenError(`Sending from ${input.from} needs the send role`);
      const sender = await directory.findEntity(fromMailbox.entity);
      if (sender === null) throw new NotFoundError(`No mailbox ${input.from} among yours`);
      const now = clock.now();
      const today = brusselsDate(now);
      if ((sender.validFrom !== null && today < sender.validFrom) || (sender.validUntil !== null && today > sender.validUntil)) {
        throw new ForbiddenError(`The entity ${sender.id} is not valid on ${today} (validity ${sender.validFrom ?? '…'} – ${sender.validUntil ?? '…'}); it cannot send`);
      }

      // 0. May this kind of entity send this type at all? (403 before anything about the content)
      if (!senderMay(type.senders, sender.kind)) {
        throw new ForbiddenError(`A ${sender.kind.replace('_', ' ')} cannot send a ${type.name}`);
      }

      // 1. Metadata: the type's schema and cross-field rules.
      const checked = checkMetadata(type, input.metadata, { today });
      if (checked.issues.length > 0) throw new ValidationError(checked.issues, `The metadata is not valid for ${type.name} ${type.version}`);

      // 2. The reply, when the type needs or allows one.
      let original: EnvelopeRecord | null = null;
      if (input.inReplyTo !== undefined && input.inReplyTo !== null) {
        original = await envelopes.find(input.inReplyTo);
        if (original === null || !isVisible(caller, original) || original.status !== 'submitted') {
          throw ValidationError.field('/inReplyTo', 'No submitted envelope you can see has this id', input.inReplyTo);
        }
      }
      const replyIssues = inReplyToIssues(type, original === null ? null : { id: original.id, type: original.type });
      if (replyIssues.length > 0) throw new ValidationError(replyIssues, 'The reply is not valid');

      // 3. Routing: the type decides the recipients from the sender's entity (or checks free addressing).
      const to = [...new Set(input.to ?? [])];
      const addressIssues: ProblemIssue[] = [];
      to.forEach((address, index) => {
        if (!MAILBOX_ADDRESS.test(address)) addressIssues.push({ in: 'body', name: `/to/${index}`, value: address, detail: 'Not a mailbox address (name@entity)' });
      });
      if (to.length > MAX_RECIPIENTS) addressIssues.push({ in: 'body', name: '/to', detail: `At most ${MAX_RECIPIENTS} recipients` });
      if (addressIssues.length > 0) throw new ValidationError(addressIssues, 'The recipients are not valid');
      const routed = routeEnvelope(type, {
        senderEntity: { id: sender.id, kind: sender.kind, parent: sender.parent },
        from: input.from,
        to,
        metadata: input.metadata,
        inReplyTo: original === null ? null : { id: original.id, type: original.type, from: original.from },
      });
      if ('refusal' in routed) {
        if (routed.refusal.status === 403) throw new ForbiddenError(routed.refusal.detail);
        throw new ValidationError(routed.refusal.issues ?? [{ in: 'body', name: '/to', detail: routed.refusal.detail }], routed.refusal.detail);
      }
      const recipients = [...new Set(routed.recipients)];
      const existing = new Set(await directory.existingMailboxes(recipients));
      const recipientIssues: ProblemIssue[] = [];
      recipients.forEach((address) => {
        const index = to.indexOf(address);
        const name = index >= 0 ? `/to/${index}` : '/to';
        if (!existing.has(address)) {
          recipientIssues.push({ in: 'body', name, value: address, detail: index >= 0 ? 'No such mailbox' : `The platform has no mailbox ${address} for this type: ask an administrator` });
        } else if (address === input.from) recipientIssues.push({ in: 'body', name, value: address, detail: 'A mailbox cannot send to itself' });
      });
      if (recipients.length === 0) recipientIssues.push({ in: 'body', name: '/to', detail: `A ${type.name} needs at least one recipient` });
      if (recipientIssues.length > 0) throw new ValidationError(recipientIssues, 'The recipients are not valid');

      // 4. Keys: files will be encrypted for every recipient's key and the sender's own (DESIGN §4c);
      //    a mailbox without a usable key fails the draft now rather than at submit.
      const lookups = await lookUpKeys(deps.keys, [...recipients, input.from], now);
      const keyless = lookups.flatMap((lookup) => {
        if (lookup.pin !== null) return [];
        const index = to.indexOf(lookup.mailbox);
        const name = lookup.mailbox === input.from ? '/from' : index >= 0 ? `/to/${index}` : '/to';
        return [{ in: 'body' as const, name, value: lookup.mailbox, detail: lookup.why }];
      });
      if (keyless.length > 0) {
        throw new AppError('mailboxWithoutKey', keyless.map((i) => i.detail).join('; '), { issues: keyless });
      }

      const id = uuidv7(now.getTime());
      const computed = type.computed?.(input.metadata, { today, senderEntity: { id: sender.id, kind: sender.kind, parent: sender.parent } }) ?? {};
      return envelopes.create(
        {
          id,
          type: type.name,
          typeVersion: type.version,
          from: input.from,
          metadata: input.metadata,
          inReplyTo: input.inReplyTo ?? null,
          createdBy: caller.type === 'principal' ? caller.principal.id : '',
          createdAt: now,
          recipients,
          encryptionKeys: lookups.flatMap((l) => (l.pin === null ? [] : [l.pin])),
          computed: checked.warnings.length > 0 ? { ...computed, warnings: checked.warnings } : computed,
        },
        auditOf(caller, 'envelope.create', id, { type: type.name, version: type.version, from: input.from, to: recipients }),
      );
    },

    getEnvelope: visibleEnvelope,

    async deleteDraft(caller: Caller, id: string): Promise<void> {
      const envelope = await sendableDraft(caller, id);
      const deleted = await envelopes.deleteDraft(id, auditOf(caller, 'envelope.delete', id));
      if (!deleted) throw new ConflictError('envelopeNotDraft', 'The envelope was submitted meanwhile');
      // Rows first, bytes second: a crash in between leaves only orphans, which hygiene collects.
      for (const file of envelope.files) await removeBytes(file.storageKey);
    },

    /**
     * Registers a file about to be uploaded (tus creation or multipart):
     * checks the caller may add files to this draft and returns the row with
     * the storage key, which never derives from the client's file name.
     */
    async beginUpload(caller: Caller, input: BeginUploadInput): Promise<FileRecord> {
      const envelope = await sendableDraft(caller, input.envelopeId);
      const issues: ProblemIssue[] = [];
      const name = plainFileName(input.filename);
      if (name === null) issues.push({ in: 'header', name: 'filename', value: input.filename, detail: 'Not a usable file name' });
      const mediaType = input.mediaType ?? 'application/octet-stream';
      if (!MEDIA_TYPE.test(mediaType)) issues.push({ in: 'header', name: 'filetype', value: mediaType, detail: 'Not a media type' });
      if (input.role !== undefined && input.role !== null && !ROLE.test(input.role)) {
        issues.push({ in: 'header', name: 'role', value: input.role, detail: 'Not a file role name' });
      }
      const plaintext = input.plaintextSha256?.toLowerCase() ?? null;
      if (plaintext !== null && !SHA256_HEX.test(plaintext)) {
        issues.push({ in: 'header', name: 'plaintextSha256', value: input.plaintextSha256, detail: 'Must be 64 hexadecimal digits' });
      }
      if (issues.length > 0) throw new ValidationError(issues, 'The file description is not valid');
      if (input.size !== undefined && input.size > deps.maxUploadBytes) {
        throw new AppError('payloadTooLarge', `Files are limited to ${deps.maxUploadBytes} bytes`);
      }
      if (envelope.files.length >= MAX_FILES) throw new ConflictError('conflict', `An envelope holds at most ${MAX_FILES} files`);
      const id = uuidv7(clock.now().getTime());
      return envelopes.addFile(
        {
          id,
          envelopeId: envelope.id,
          name: name!,
          mediaType,
          role: input.role ?? null,
          declaredSize: input.size ?? null,
          plaintextSha256: plaintext,
          storageKey: storageKeyFor(envelope.id, id),
          uploadedBy: caller.type === 'principal' ? caller.principal.id : '',
          createdAt: clock.now(),
        },
        auditOf(caller, 'file.create', envelope.id, { fileId: id, size: input.size ?? null }),
      );
    },

    /** Called by the upload doors once every byte is stored; the hash was computed while streaming. */
    async finishUpload(fileId: string, result: { size: number; sha256: string }): Promise<FileRecord> {
      const file = await envelopes.completeFile(fileId, result, clock.now());
      if (file === null) throw new NotFoundError('No such file');
      return file;
    },

    /** Forgets a file whose upload failed or was terminated (row and bytes). */
    async abandonUpload(caller: Caller | null, file: FileRecord): Promise<void> {
      await envelopes.removeFile(file.id, caller === null
        ? { actor: 'system', action: 'file.remove', subject: file.envelopeId, data: { fileId: file.id } }
        : auditOf(caller, 'file.remove', file.envelopeId, { fileId: file.id }));
      await removeBytes(file.storageKey);
    },

    /**
     * Removes a file from a draft (rows first, then bytes), e.g. to replace it
     * with one re-encrypted after a key rotation. Only the sender's members
     * with `send`, only while a draft.
     */
    async removeFile(caller: Caller, envelopeId: string, fileId: string): Promise<void> {
      const envelope = await sendableDraft(caller, envelopeId);
      const file = envelope.files.find((f) => f.id === fileId);
      if (file === undefined) throw new NotFoundError('No such file in this envelope');
      await api.abandonUpload(caller, file);
    },

    /** Looks up an upload's file row by its storage key, for the tus door. */
    async findUpload(caller: Caller, envelopeId: string, fileId: string): Promise<FileRecord> {
      const envelope = await sendableDraft(caller, envelopeId);
      const file = envelope.files.find((f) => f.id === fileId);
      if (file === undefined) throw new NotFoundError('No such upload');
      return file;
    },

    /**
     * Runs the submission pipeline; on success the envelope is submitted and
     * delivered to every recipient mailbox in one transaction.
     */
    async submit(caller: Caller, id: string): Promise<EnvelopeRecord> {
      const envelope = await visibleEnvelope(caller, id);
      // The version the draft was made with: old envelopes keep their schema.
      const type = findEnvelopeType(envelope.type, envelope.typeVersion);
      if (type === undefined) throw new AppError('unprocessable', `The envelope type ${envelope.type} ${envelope.typeVersion} is no longer known`);
      const now = clock.now();
      const context: SubmitContext = { caller, envelope, type, now, today: brusselsDate(now), issues: [] };
      for (const step of submitSteps) await step(context);
      if (context.issues.length === 0) {
        const { changes, issues } = await submitChanges(type, envelope, context.today, (other) => envelopes.find(other));
        context.changes = context.encryption === undefined ? changes : { ...changes, encryption: context.encryption };
        context.issues.push(...issues);
      }
      if (context.issues.length > 0) {
        // A refused submission leaves its signed rejection and an audit entry, nothing else.
        const reasons = context.issues;
        await envelopes.recordRejection(
          id,
          auditOf(caller, 'envelope.reject', id, { issues: reasons.map((i) => ({ name: i.name, detail: i.detail })) }),
          (prev) => sealEvidence(deps.evidence, envelope, [{ eventType: 'SubmissionRejection', recipient: null, reasons }], context.now, prev),
          context.repin,
        );
        throw new AppError('envelopeIncomplete', reasons.map((i) => i.detail).join('; '), {
          issues: reasons,
          // After a key rotation: the keys to re-encrypt for (the draft now pins them too).
          ...(context.repin === undefined ? {} : { extensions: { encryptionKeys: pinnedKeysView(context.repin) } }),
        });
      }
      const submitted: EnvelopeRecord = { ...envelope, status: 'submitted', submittedAt: context.now };
      const ok = await envelopes.markSubmitted(
        id,
        context.now,
        auditOf(caller, 'envelope.submit', id, { recipients: envelope.recipients.map((r) => r.address), files: envelope.files.map((f) => ({ id: f.id, sha256: f.sha256 })) }),
        (prev) =>
          sealEvidence(
            deps.evidence,
            submitted,
            [
              { eventType: 'SubmissionAcceptance', recipient: null },
              ...envelope.recipients.map((r) => ({ eventType: 'ContentConsignment' as const, recipient: r.address })),
            ],
            context.now,
            prev,
          ),
        context.changes,
      );
      if (!ok) throw new ConflictError('envelopeNotDraft', 'The envelope was already submitted');
      return (await envelopes.find(id))!;
    },

    /** The receipts of an envelope the caller may see (sender: all; a recipient: its own and the acceptance). */
    async listReceipts(caller: Caller, envelope: EnvelopeRecord): Promise<StoredEvidence[]> {
      const all = await envelopes.listEvidence(envelope.id);
      return all.filter((e) => receiptVisible(caller, envelope, e));
    },

    /** One receipt, 404 unless it concerns a mailbox of the caller. */
    async getReceipt(caller: Caller, id: string): Promise<{ envelope: EnvelopeRecord; evidence: StoredEvidence }> {
      const found = await envelopes.findEvidence(id);
      if (found === null) throw new NotFoundError('No such receipt');
      const envelope = await envelopes.find(found.envelopeId);
      if (envelope === null || !isVisible(caller, envelope) || !receiptVisible(caller, envelope, found)) {
        throw new NotFoundError('No such receipt');
      }
      return { envelope, evidence: found };
    },

    /**
     * Open tutelle acts of a mailbox (sent or received) by due date: those
     * with a running clock and no final decision yet; overdue ones flagged.
     */
    async deadlines(caller: Caller, address: string): Promise<Array<{ envelope: EnvelopeRecord; overdue: boolean; daysLeft: number }>> {
      const roles = rolesOn(caller, address);
      if (roles.length === 0) throw new NotFoundError(`No mailbox ${address} among yours`);
      if (!roles.includes('read')) throw new ForbiddenError(`Listing ${address} needs the read role`);
      const today = brusselsDate(clock.now());
      const rows = await envelopes.withDeadlines(address, 1000);
      return rows
        .filter((e) => !decided(e))
        .map((envelope) => ({ envelope, overdue: today > envelope.deadline!, daysLeft: daysBetween(today, envelope.deadline!) }));
    },

    /** Inbox (`in`: submitted envelopes delivered to the mailbox) or outbox (`out`: drafts and sent). */
    async listMailbox(caller: Caller, address: string, options: MailboxListOptions): Promise<Page<MailboxListItem>> {
      const { query, limit } = mailboxListQuery(caller, address, options);
      const rows = await envelopes.listMailbox(query);
      const today = brusselsDate(clock.now());
      for (const row of rows) row.overdue = isOverdue(row.envelope, today);
      if (rows.length <= limit) return { items: rows };
      const items = rows.slice(0, limit);
      return { items, nextCursor: mailboxCursor(items[items.length - 1]!) };
    },

    /**
     * The same page, its items already the HTTP contract's JSON text (the
     * API's listing; see listMailboxJson in db/envelope-repository.ts): the
     * same authorisation, filters, order, cursor and overdue rule.
     */
    async listMailboxJson(caller: Caller, address: string, options: MailboxListOptions, hrefPrefix: string): Promise<{ items: string[]; nextCursor?: string }> {
      const { query, limit } = mailboxListQuery(caller, address, options);
      const rows = await envelopes.listMailboxJson(query, { today: brusselsDate(clock.now()), finalDecisions: [...FINAL_DECISIONS], hrefPrefix });
      const items = rows.slice(0, limit).map((r) => r.json);
      if (rows.length <= limit) return { items };
      const last = rows[limit - 1]!;
      return { items, nextCursor: encodeCursorValue({ t: last.sortTime, i: last.id }) };
    },

    /**
     * Authorises a download and returns the file with an `open` function.
     * Opening (not preparing) by a member of a recipient mailbox records the
     * retrieval, first download only; downloads by the sender never do. A
     * conditional request answered 304 therefore never counts.
     */
    async prepareDownload(
      caller: Caller,
      envelopeId: string,
      fileId: string,
    ): Promise<{ envelope: EnvelopeRecord; file: CompleteFile; open(range?: ByteRange): Promise<Readable> }> {
      const envelope = await visibleEnvelope(caller, envelopeId);
      const file = envelope.files.find((f) => f.id === fileId);
      if (file === undefined) throw new NotFoundError('No such file in this envelope');
      const recipients = readableRecipients(caller, envelope);
      if (recipients.length === 0 && !hasRole(caller, envelope.from, 'read')) {
        throw new ForbiddenError('Downloading needs the read role');
      }
      if (envelope.purgedAt !== null) {
        throw new AppError(
          'filePurged',
          `The files of this envelope were deleted on ${envelope.purgedAt.toISOString().slice(0, 10)} at the end of their retention period (kept until ${envelope.retainUntil ?? 'unknown'})`,
        );
      }
      if (file.completedAt === null || file.size === null || file.sha256 === null) {
        throw new ConflictError('conflict', 'This file is still being uploaded');
      }
      const complete = file as CompleteFile;
      return {
        envelope,
        file: complete,
        async open(range?: ByteRange): Promise<Readable> {
          if (range !== undefined && (range.start >= complete.size || (range.end !== undefined && range.end < range.start))) {
            throw new AppError('rangeNotSatisfiable', `The file has ${complete.size} bytes`);
          }
          let stream: Readable;
          try {
            stream = await blobStore.get(complete.storageKey, range);
          } catch (err) {
            if (err instanceof AppError && err.code === 'blobNotFound') {
              // A row without its object is an error to report, never to hide.
              throw new AppError('fileMissing', 'The stored file is missing; the platform operators have been alerted', { cause: err });
            }
            throw err;
          }
          const now = clock.now();
          // Every read is audited (DESIGN §3); a recipient's first one also changes its status.
          await envelopes.recordAudit(auditOf(caller, 'file.read', envelope.id, { fileId, range: range ?? null }));
          for (const recipient of recipients) {
            if (recipient.status === 'delivered') {
              await envelopes.markRetrieved(
                envelope.id,
                recipient.address,
                now,
                auditOf(caller, 'envelope.retrieve', envelope.id, { mailbox: recipient.address, fileId, range: range ?? null }),
                (prev, prevTime) => sealEvidence(deps.evidence, envelope, [{ eventType: 'ContentHandover', recipient: recipient.address }], notBefore(now, prevTime), prev),
              );
            }
          }
          return stream;
        },
      };
    },

    /**
     * The simple (non-resumable) upload: registers the file, streams the body
     * to the store while hashing it, and completes it — the same checks,
     * limit and storage as a tus upload. On any failure the file is forgotten.
     */
    async uploadFile(caller: Caller, input: BeginUploadInput, body: Readable): Promise<FileRecord> {
      const file = await api.beginUpload(caller, input);
      const hash = createHash('sha256');
      let size = 0;
      const limit = deps.maxUploadBytes;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          size += chunk.length;
          if (size > limit) return done(new AppError('payloadTooLarge', `Files are limited to ${limit} bytes`));
          hash.update(chunk);
          done(null, chunk);
        },
      });
      body.on('error', (err) => meter.destroy(err));
      try {
        await blobStore.put(file.storageKey, body.pipe(meter), { contentType: file.mediaType });
        if (body.readableAborted || (body as Readable & { truncated?: boolean }).truncated === true) {
          throw new AppError('payloadTooLarge', `Files are limited to ${limit} bytes`);
        }
      } catch (err) {
        await api.abandonUpload(caller, file);
        throw err;
      }
      return api.finishUpload(file.id, { size, sha256: hash.digest('hex') });
    },

    /** The recipient confirms receipt; `mailbox` may be omitted when the caller reads only one recipient mailbox. */
    async acknowledge(caller: Caller, id: string, mailbox?: string): Promise<EnvelopeRecord> {
      const envelope = await visibleEnvelope(caller, id);
      const readable = readableRecipients(caller, envelope);
      if (readable.length === 0) {
        if (envelope.status !== 'submitted' || isSenderMember(caller, envelope) && envelope.recipients.every((r) => rolesOn(caller, r.address).length === 0)) {
          throw new ForbiddenError('Only a recipient mailbox can acknowledge an envelope');
        }
        throw new ForbiddenError('Acknowledging needs the read role on a recipient mailbox');
      }
      let target: RecipientRecord | undefined;
      if (mailbox === undefined) {
        if (readable.length > 1) {
          throw ValidationError.field('/mailbox', `You read several recipient mailboxes; name one of ${readable.map((r) => r.address).join(', ')}`);
        }
        target = readable[0];
      } else {
        target = readable.find((r) => r.address === mailbox);
        if (target === undefined) throw ValidationError.field('/mailbox', 'Not a recipient mailbox you read', mailbox);
      }
      if (target!.status !== 'acknowledged') {
        const now = clock.now();
        const mailbox = target!.address;
        await envelopes.markAcknowledged(id, mailbox, now, auditOf(caller, 'envelope.acknowledge', id, { mailbox }), (prev, prevTime) =>
          sealEvidence(deps.evidence, envelope, [{ eventType: 'ConsignmentAcceptance', recipient: mailbox }], notBefore(now, prevTime), prev),
        );
      }
      return (await envelopes.find(id))!;
    },
  };
  return api;
}

export type Envelopes = ReturnType<typeof createEnvelopes>;
export { assertMetadata };
