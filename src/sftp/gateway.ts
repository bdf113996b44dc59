/**
 * The file operations of the SFTP door over the virtual tree (tree.ts),
 * independent of the SSH library: each one resolves a path and calls the
 * same domain functions as the HTTP door (getEnvelope, listMailbox,
 * prepareDownload, listReceipts, createDraft, beginUpload, finishUpload,
 * submit, acknowledge, deleteDraft). The door adds no business rule: what
 * it refuses on its own is only what the tree does not offer.
 *
 * Conventions (README "Back offices over SFTP"):
 * - `mkdir send/<name>`, `put envelope.json` (type, to, metadata, optional
 *   inReplyTo and per-file hints `files: {"<name>": {role, mediaType,
 *   plaintextSha256}}`): closing it creates the draft; draft.json and
 *   keys/<mailbox>.asc appear; a refusal appears as ERROR.json.
 * - `put` files into send/<name>/ (resumable with reput); `rm` one to drop it.
 * - `rename send/<name> send/<name>.submit` submits; the outcome is
 *   send/<name>.submit/receipt.json + receipt.p7s, or ERROR.json (then
 *   `rename send/<name>.submit send/<name>` to fix and retry).
 * - `rename inbox/<id> inbox/.ack/<id>` acknowledges; `rm`/`rmdir` in the
 *   inbox never does (refused, pointing to the convention).
 * - `rmdir send/<name>` deletes the draft (or forgets a submitted folder).
 */
import type { Readable } from 'node:stream';
import { AppError, ConflictError, ValidationError, toProblem, type ProblemIssue } from '../errors.ts';
import type { Envelopes } from '../domain/envelopes.ts';
import { rolesOn, type Caller } from '../domain/model.ts';
import type { EnvelopeRecord, FileRecord, StoredEvidence } from '../domain/ports.ts';
import { FOLDER_NAME, type FileHint, type SendFolder, type SendFolders } from './send-folders.ts';
import { ACK_FOLDER, parsePath, type Box, type TreePath } from './tree.ts';
import { DownloadReader, UploadSink, createStoredUpload, storedOffset, type UploadDeps } from './transfers.ts';
import { denied, failure, noSuchFile, unsupported } from './status.ts';

export interface Attrs {
  mode: number;
  size: number;
  mtime: Date;
}

export interface Entry {
  name: string;
  attrs: Attrs;
}

export interface ReadHandle {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer | null>;
  /** The answer when it needs no waiting; undefined when `read` must be used. */
  readNow(offset: number, length: number): Buffer | null | undefined;
  close(): void;
}

export interface WriteHandle {
  write(offset: number, data: Buffer): Promise<void>;
  /** CLOSE: the write takes effect (draft made, file completed) or is refused. */
  close(): Promise<void>;
  /** The session ended without CLOSE. */
  detach(): Promise<void>;
}

/** SFTP open flags (SSH_FXF_*). */
export const OPEN = { READ: 1, WRITE: 2, APPEND: 4, CREAT: 8, TRUNC: 16, EXCL: 32 } as const;

const DIR_RO = 0o040500;
const DIR_RW = 0o040700;
const FILE_RO = 0o100400;
const FILE_RW = 0o100600;
const EPOCH = new Date(0);

const ENVELOPE_JSON = 'envelope.json';
const RECEIPTS = 'receipts';
const FOLDER_RESERVED = new Set([ENVELOPE_JSON, 'draft.json', 'keys', 'ERROR.json', 'receipt.json', 'receipt.p7s']);
const ENVELOPE_RESERVED = new Set([ENVELOPE_JSON, RECEIPTS]);
const WRITER_WAIT_MS = 30_000;

export interface GatewayDeps extends UploadDeps {
  envelopes: Envelopes;
  sendFolders: SendFolders;
  /** Largest envelope.json accepted (the HTTP body limit). */
  bodyLimit: number;
  now(): Date;
}

const json = (value: unknown) => Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
const dir = (writable: boolean, mtime: Date = EPOCH): Attrs => ({ mode: writable ? DIR_RW : DIR_RO, size: 0, mtime });
const file = (size: number, mtime: Date, writable = false): Attrs => ({ mode: writable ? FILE_RW : FILE_RO, size, mtime });

/** File names as shown in a folder: the stored name, made unique and kept clear of the reserved names. */
export function fileNames(files: FileRecord[], reserved: ReadonlySet<string>): Map<string, FileRecord> {
  const names = new Map<string, FileRecord>();
  for (const f of files) {
    let name = f.name;
    if (reserved.has(name) || names.has(name)) name = `${f.name}~${f.id.slice(-8)}`;
    names.set(name, f);
  }
  return names;
}

const receiptName = (e: StoredEvidence, ext: 'json' | 'p7s') => `${e.eventType}-${e.id}.${ext}`;

/** envelope.json: what the envelope is, for this mailbox (its own recipient status in an inbox). */
function envelopeDocument(envelope: EnvelopeRecord, mailbox: string, box: Box | 'send', names: Map<string, FileRecord>, receipts: StoredEvidence[] | null) {
  const own = envelope.recipients.find((r) => r.address === mailbox);
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return {
    id: envelope.id,
    type: envelope.type,
    typeVersion: envelope.typeVersion,
    from: envelope.from,
    status: box === 'inbox' && own !== undefined ? own.status : envelope.status,
    envelopeStatus: envelope.status,
    metadata: envelope.metadata,
    inReplyTo: envelope.inReplyTo,
    createdAt: envelope.createdAt.toISOString(),
    submittedAt: iso(envelope.submittedAt),
    deadline: envelope.deadline,
    retainUntil: envelope.retainUntil,
    computed: envelope.computed,
    recipients: envelope.recipients.map((r) => ({
      address: r.address,
      status: r.status,
      deliveredAt: iso(r.deliveredAt),
      retrievedAt: iso(r.retrievedAt),
      acknowledgedAt: iso(r.acknowledgedAt),
    })),
    encryptionKeys: pinnedKeys(envelope).map((k) => ({ mailbox: k.mailbox, fingerprint: k.fingerprint, keyId: k.keyId, encryptionKeyIds: k.encryptionKeyIds })),
    files: [...names].map(([name, f]) => ({
      name,
      id: f.id,
      mediaType: f.mediaType,
      role: f.role,
      size: f.size,
      sha256: f.sha256,
      plaintextSha256: f.plaintextSha256,
      complete: f.completedAt !== null,
    })),
    ...(receipts === null ? {} : { receipts: receipts.map((e) => ({ id: e.id, eventType: e.eventType, eventTime: e.eventTime.toISOString(), recipient: e.recipient, file: `${RECEIPTS}/${receiptName(e, 'json')}` })) }),
  };
}

/** The keys pinned to a draft (end-to-end encryption, DESIGN §4c); empty on a server without them. */
function pinnedKeys(envelope: EnvelopeRecord): Array<{ mailbox: string; fingerprint: string; keyId: string; encryptionKeyIds: string[]; publicKey: string }> {
  return (envelope as { encryptionKeys?: Array<{ mailbox: string; fingerprint: string; keyId: string; encryptionKeyIds: string[]; publicKey: string }> }).encryptionKeys ?? [];
}

/** A descriptor (envelope.json put in a send folder) → the draft input and file hints; ValidationError otherwise. */
export function parseDescriptor(bytes: Buffer, mailbox: string): { input: Parameters<Envelopes['createDraft']>[1]; files: Record<string, FileHint> } {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ValidationError([{ in: 'body', name: '/', detail: 'envelope.json is not valid JSON' }], 'envelope.json is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError([{ in: 'body', name: '/', detail: 'envelope.json must be a JSON object' }], 'envelope.json must be a JSON object');
  }
  const d = value as Record<string, unknown>;
  const issues: ProblemIssue[] = [];
  for (const key of Object.keys(d)) {
    if (!['type', 'from', 'to', 'metadata', 'inReplyTo', 'files'].includes(key)) issues.push({ in: 'body', name: `/${key}`, detail: 'Unknown member' });
  }
  if (typeof d.type !== 'string') issues.push({ in: 'body', name: '/type', detail: 'Required: the envelope type, e.g. general.letter' });
  if (d.from !== undefined && d.from !== mailbox) issues.push({ in: 'body', name: '/from', value: d.from, detail: `A draft in ${mailbox}/send is sent from ${mailbox}` });
  if (d.to !== undefined && (!Array.isArray(d.to) || d.to.some((a) => typeof a !== 'string'))) issues.push({ in: 'body', name: '/to', detail: 'Must be a list of mailbox addresses' });
  if (d.inReplyTo !== undefined && d.inReplyTo !== null && typeof d.inReplyTo !== 'string') issues.push({ in: 'body', name: '/inReplyTo', detail: 'Must be an envelope id' });
  const files: Record<string, FileHint> = {};
  if (d.files !== undefined) {
    if (typeof d.files !== 'object' || d.files === null || Array.isArray(d.files)) issues.push({ in: 'body', name: '/files', detail: 'Must map file names to {role, mediaType, plaintextSha256}' });
    else {
      for (const [name, hint] of Object.entries(d.files as Record<string, unknown>)) {
        const h = (hint ?? {}) as Record<string, unknown>;
        const bad = typeof hint !== 'object' || hint === null || Object.entries(h).some(([k, v]) => !['role', 'mediaType', 'plaintextSha256'].includes(k) || typeof v !== 'string');
        if (bad) issues.push({ in: 'body', name: `/files/${name}`, detail: 'Must be {role?, mediaType?, plaintextSha256?} with string values' });
        else files[name] = h as FileHint;
      }
    }
  }
  if (issues.length > 0) throw new ValidationError(issues, 'envelope.json is not a valid envelope descriptor');
  const input: Parameters<Envelopes['createDraft']>[1] = { type: d.type as string, from: mailbox, metadata: d.metadata };
  if (d.to !== undefined) input.to = d.to as string[];
  if (d.inReplyTo !== undefined) input.inReplyTo = d.inReplyTo as string | null;
  return { input, files };
}

function mediaTypeFor(name: string): string {
  if (/\.(gpg|pgp)$/i.test(name)) return 'application/pgp-encrypted';
  if (/\.asc$/i.test(name)) return 'application/pgp-encrypted';
  return 'application/octet-stream';
}

/** An in-memory file (JSON views, keys, receipts). */
function bufferHandle(data: Buffer): ReadHandle {
  return {
    size: data.length,
    async read(offset, length) {
      return this.readNow(offset, length) ?? null;
    },
    readNow(offset, length) {
      if (offset >= data.length) return null;
      return data.subarray(offset, Math.min(data.length, offset + length));
    },
    close() {},
  };
}

/** What a readable path holds: bytes made here, or a stored file read through the domain. */
type Content = { kind: 'buffer'; data: Buffer; mtime: Date; writable?: boolean } | { kind: 'stored'; envelope: EnvelopeRecord; file: FileRecord; mtime: Date; writable: boolean };

export function createGateway(deps: GatewayDeps) {
  const { envelopes, sendFolders } = deps;
  /** Uploads on this node, by storage key: `active` while a handle is open, `settled` once the store holds its bytes. */
  const writers = new Map<string, { active: boolean; settled: Promise<void> }>();

  const mailboxesOf = (caller: Caller) => new Set(caller.type === 'principal' ? caller.principal.memberships.map((m) => m.mailbox) : []);
  const parse = (caller: Caller, raw: string) => parsePath(raw, mailboxesOf(caller));

  async function settledWriter(key: string): Promise<void> {
    const writer = writers.get(key);
    if (writer === undefined) return;
    await Promise.race([writer.settled, new Promise((resolve) => setTimeout(resolve, WRITER_WAIT_MS).unref())]);
  }

  /** The envelope at an inbox/outbox path, if it belongs there. */
  async function boxEnvelope(caller: Caller, p: Extract<TreePath, { kind: 'envelope' }>): Promise<EnvelopeRecord> {
    const envelope = await envelopes.getEnvelope(caller, p.id);
    if (p.box === 'outbox' && envelope.from !== p.mailbox) throw noSuchFile();
    if (p.box === 'inbox') {
      const own = envelope.status === 'submitted' ? envelope.recipients.find((r) => r.address === p.mailbox) : undefined;
      if (own === undefined || (p.acknowledged && own.status !== 'acknowledged')) throw noSuchFile();
    }
    return envelope;
  }

  /** The send folder at a path, in the state the path names (send/<name> editing, send/<name>.submit otherwise). */
  async function folderAt(caller: Caller, p: Extract<TreePath, { kind: 'folder' }>): Promise<{ folder: SendFolder; envelope: EnvelopeRecord | null }> {
    const folder = await sendFolders.get(p.mailbox, p.name);
    if (folder === null || (p.submit ? folder.state === 'editing' : folder.state !== 'editing')) throw noSuchFile();
    if (folder.envelopeId === null) return { folder, envelope: null };
    try {
      return { folder, envelope: await envelopes.getEnvelope(caller, folder.envelopeId) };
    } catch (err) {
      if (err instanceof AppError && err.code === 'resourceNotFound') {
        // The draft expired or was deleted through another door: the folder goes with it.
        await sendFolders.remove(p.mailbox, p.name);
        throw noSuchFile();
      }
      throw err;
    }
  }

  async function receiptsOf(caller: Caller, envelope: EnvelopeRecord): Promise<StoredEvidence[]> {
    return envelopes.listReceipts(caller, envelope);
  }

  /** The entries of an envelope folder (inbox/outbox), or of its receipts/ subfolder. */
  async function envelopeEntries(caller: Caller, p: Extract<TreePath, { kind: 'envelope' }>, envelope: EnvelopeRecord): Promise<Map<string, Content | 'dir'>> {
    const entries = new Map<string, Content | 'dir'>();
    const mtime = envelope.submittedAt ?? envelope.createdAt;
    const receipts = await receiptsOf(caller, envelope);
    if (p.rest[0] === RECEIPTS) {
      for (const e of receipts) {
        entries.set(receiptName(e, 'json'), { kind: 'buffer', data: e.canonical, mtime: e.eventTime });
        entries.set(receiptName(e, 'p7s'), { kind: 'buffer', data: e.signature, mtime: e.eventTime });
      }
      return entries;
    }
    const names = fileNames(envelope.files.filter((f) => f.completedAt !== null), ENVELOPE_RESERVED);
    entries.set(ENVELOPE_JSON, { kind: 'buffer', data: json(envelopeDocument(envelope, p.mailbox, p.box, names, receipts)), mtime });
    entries.set(RECEIPTS, 'dir');
    for (const [name, f] of names) entries.set(name, { kind: 'stored', envelope, file: f, mtime: f.completedAt ?? mtime, writable: false });
    return entries;
  }

  /** The entries of a send folder, or of its keys/ subfolder. */
  async function folderEntries(caller: Caller, p: Extract<TreePath, { kind: 'folder' }>, folder: SendFolder, envelope: EnvelopeRecord | null): Promise<Map<string, Content | 'dir'>> {
    const entries = new Map<string, Content | 'dir'>();
    const mtime = new Date(folder.createdAt);
    const editing = folder.state === 'editing';
    if (p.rest[0] === 'keys') {
      if (envelope !== null) for (const k of pinnedKeys(envelope)) entries.set(`${k.mailbox}.asc`, { kind: 'buffer', data: Buffer.from(k.publicKey), mtime: envelope.createdAt });
      return entries;
    }
    if (folder.descriptor !== null) entries.set(ENVELOPE_JSON, { kind: 'buffer', data: Buffer.from(folder.descriptor), mtime, writable: editing });
    if (folder.error !== null) entries.set('ERROR.json', { kind: 'buffer', data: json(folder.error), mtime: deps.now() });
    if (envelope !== null) {
      const names = fileNames(envelope.files, FOLDER_RESERVED);
      entries.set('draft.json', { kind: 'buffer', data: json(envelopeDocument(envelope, p.mailbox, 'send', names, null)), mtime: envelope.createdAt });
      entries.set('keys', 'dir');
      for (const [name, f] of names) entries.set(name, { kind: 'stored', envelope, file: f, mtime: f.completedAt ?? f.createdAt, writable: editing });
      if (folder.state === 'submitted' && folder.receiptId !== null) {
        const receipt = (await receiptsOf(caller, envelope)).find((e) => e.id === folder.receiptId);
        if (receipt !== undefined) {
          entries.set('receipt.json', { kind: 'buffer', data: receipt.canonical, mtime: receipt.eventTime });
          entries.set('receipt.p7s', { kind: 'buffer', data: receipt.signature, mtime: receipt.eventTime });
        }
      }
    }
    return entries;
  }

  async function attrsOf(content: Content | 'dir', writableDir = false): Promise<Attrs> {
    if (content === 'dir') return dir(writableDir);
    if (content.kind === 'buffer') return file(content.data.length, content.mtime, content.writable ?? false);
    if (content.file.completedAt !== null) return file(content.file.size ?? 0, content.mtime, content.writable);
    // A partial upload: what the store holds, once an upload still settling on this node is done.
    await settledWriter(content.file.storageKey);
    return file((await storedOffset(deps, content.file)) ?? 0, content.mtime, content.writable);
  }

  /** Resolves a path to a directory's entries (lazily listed) or a file's content. */
  async function resolve(caller: Caller, raw: string): Promise<{ kind: 'dir'; writable: boolean; entries: () => AsyncIterable<Entry> } | { kind: 'file'; content: Content }> {
    const p = parse(caller, raw);
    switch (p.kind) {
      case 'root':
        return {
          kind: 'dir',
          writable: false,
          entries: async function* () {
            for (const mailbox of [...mailboxesOf(caller)].sort()) yield { name: mailbox, attrs: dir(false) };
          },
        };
      case 'mailbox':
        return {
          kind: 'dir',
          writable: false,
          entries: async function* () {
            yield { name: 'inbox', attrs: dir(false) };
            yield { name: 'outbox', attrs: dir(false) };
            yield { name: 'send', attrs: dir(rolesOn(caller, p.mailbox).includes('send')) };
          },
        };
      case 'box':
        // Listing checks the read role (403 → permission denied) before anything is shown.
        await envelopes.listMailbox(caller, p.mailbox, { direction: p.box === 'inbox' ? 'in' : 'out', limit: 1 });
        return {
          kind: 'dir',
          writable: p.box === 'inbox',
          entries: async function* () {
            if (p.box === 'inbox' && !p.acknowledged) yield { name: ACK_FOLDER, attrs: dir(true) };
            let cursor: string | undefined;
            do {
              const page = await envelopes.listMailbox(caller, p.mailbox, {
                direction: p.box === 'inbox' ? 'in' : 'out',
                limit: 100,
                ...(p.acknowledged ? { status: 'acknowledged' } : {}),
                ...(cursor === undefined ? {} : { cursor }),
              });
              for (const item of page.items) {
                const own = item.envelope.recipients.find((r) => r.address === p.mailbox);
                if (p.box === 'inbox' && !p.acknowledged && own?.status === 'acknowledged') continue;
                yield { name: item.envelope.id, attrs: dir(false, item.sortTime) };
              }
              cursor = page.nextCursor;
            } while (cursor !== undefined);
          },
        };
      case 'sendRoot':
        return {
          kind: 'dir',
          writable: true,
          entries: async function* () {
            for (const folder of await sendFolders.list(p.mailbox)) {
              yield { name: folder.state === 'editing' ? folder.name : `${folder.name}.submit`, attrs: dir(folder.state === 'editing', new Date(folder.createdAt)) };
            }
          },
        };
      case 'envelope': {
        const envelope = await boxEnvelope(caller, p);
        const entries = p.rest.length === 0 || (p.rest[0] === RECEIPTS && p.rest.length === 1) ? null : await envelopeEntries(caller, { ...p, rest: p.rest.slice(0, -1) }, envelope);
        if (entries === null) {
          const listed = await envelopeEntries(caller, p, envelope);
          return { kind: 'dir', writable: false, entries: () => entriesOf(listed) };
        }
        if (p.rest.length > 2 || (p.rest.length === 2 && p.rest[0] !== RECEIPTS)) throw noSuchFile();
        const content = entries.get(p.rest[p.rest.length - 1]!);
        if (content === undefined || content === 'dir') throw noSuchFile();
        return { kind: 'file', content };
      }
      case 'folder': {
        const { folder, envelope } = await folderAt(caller, p);
        if (p.rest.length === 0 || (p.rest[0] === 'keys' && p.rest.length === 1 && envelope !== null)) {
          const listed = await folderEntries(caller, p, folder, envelope);
          return { kind: 'dir', writable: folder.state === 'editing' && p.rest.length === 0, entries: () => entriesOf(listed, folder.state === 'editing') };
        }
        if (p.rest.length > 2 || (p.rest.length === 2 && p.rest[0] !== 'keys')) throw noSuchFile();
        const entries = await folderEntries(caller, { ...p, rest: p.rest.slice(0, -1) }, folder, envelope);
        const content = entries.get(p.rest[p.rest.length - 1]!);
        if (content === undefined || content === 'dir') throw noSuchFile();
        return { kind: 'file', content };
      }
    }
  }

  async function* entriesOf(entries: Map<string, Content | 'dir'>, writable = false): AsyncIterable<Entry> {
    for (const [name, content] of entries) yield { name, attrs: await attrsOf(content, writable && content === 'dir' ? false : writable) };
  }

  /** Records a refusal in the folder's ERROR.json (the whole problem, as the HTTP API gives it). */
  async function recordRefusal(folder: SendFolder, err: unknown, instance: string): Promise<void> {
    if (!(err instanceof AppError) || err.status >= 500) return;
    folder.error = toProblem(err, instance);
    await sendFolders.put(folder);
  }

  async function acceptDescriptor(caller: Caller, raw: string, p: Extract<TreePath, { kind: 'folder' }>, bytes: Buffer): Promise<void> {
    const { folder } = await folderAt(caller, p);
    let draft: ReturnType<typeof parseDescriptor>;
    try {
      if (folder.envelopeId !== null) {
        throw new ConflictError('conflict', `This folder's draft exists (${folder.envelopeId}); its envelope.json cannot change: rmdir the folder to start over`);
      }
      draft = parseDescriptor(bytes, p.mailbox);
    } catch (err) {
      await recordRefusal(folder, err, raw);
      throw err;
    }
    // At most one draft per folder: claim the folder, then create the draft, then name it in the folder.
    // A session that loses the claim creates nothing (and writes no ERROR.json into the winner's folder).
    if (!(await sendFolders.claim(folder, bytes.toString('utf8')))) {
      throw new ConflictError('conflict', `send/${p.name} has a draft already, or another session is making it from its envelope.json; list the folder (rmdir it to start over)`);
    }
    let envelope: EnvelopeRecord;
    try {
      envelope = await envelopes.createDraft(caller, draft.input);
    } catch (err) {
      try {
        await recordRefusal(folder, err, raw);
      } finally {
        // After ERROR.json, so that a session claiming next clears it when it attaches its draft.
        await sendFolders.release(folder);
      }
      throw err;
    }
    try {
      await sendFolders.attach(folder, envelope.id, draft.files);
    } catch (err) {
      // The folder was removed (or its claim lost) meanwhile: the draft goes rather than being left without a folder.
      // Should deleting it fail too, the hygiene sweep expires it; the attach error is the one reported.
      await envelopes.deleteDraft(caller, envelope.id).catch(() => undefined);
      await sendFolders.release(folder).catch(() => undefined);
      throw err;
    }
  }

  async function openUpload(caller: Caller, raw: string, p: Extract<TreePath, { kind: 'folder' }>, name: string, flags: number): Promise<WriteHandle> {
    const { folder, envelope } = await folderAt(caller, p);
    if (envelope === null) {
      const err = new AppError('conflict', `Put envelope.json into send/${p.name} first: it creates the draft the files belong to`);
      await recordRefusal(folder, err, raw);
      throw err;
    }
    const existing = fileNames(envelope.files, FOLDER_RESERVED).get(name);
    let record: FileRecord;
    let start = 0;
    if (existing !== undefined) await settledWriter(existing.storageKey);
    if (existing !== undefined && writers.get(existing.storageKey)?.active) throw failure(`${name} is being written by another session`);
    const resume = existing !== undefined && existing.completedAt === null && (flags & OPEN.TRUNC) === 0;
    const stored = resume ? await storedOffset(deps, existing) : null;
    if (resume && stored !== null) {
      // reput (SSH_FXF_APPEND, no TRUNC): continue the partial upload where the store stands.
      await envelopes.findUpload(caller, envelope.id, existing.id);
      record = existing;
      start = stored;
    } else {
      if (existing !== undefined) {
        if ((flags & OPEN.EXCL) !== 0) throw failure(`${name} exists`);
        if (existing.completedAt !== null && (flags & OPEN.TRUNC) === 0) throw failure(`${name} is complete; put it again (without reput) to replace it`);
        await removeFile(caller, envelope, existing);
      }
      const hint = folder.files[name] ?? {};
      record = await envelopes.beginUpload(caller, {
        envelopeId: envelope.id,
        filename: name,
        mediaType: hint.mediaType ?? mediaTypeFor(name),
        role: hint.role ?? null,
        plaintextSha256: hint.plaintextSha256 ?? null,
      });
      try {
        await createStoredUpload(deps, record);
      } catch (err) {
        await envelopes.abandonUpload(caller, record);
        throw err;
      }
    }
    const sink = new UploadSink(deps, record, start);
    let settle!: () => void;
    const writer = { active: true, settled: new Promise<void>((resolve) => (settle = resolve)) };
    writers.set(record.storageKey, writer);
    const done = () => {
      writer.active = false;
      settle();
      if (writers.get(record.storageKey) === writer) writers.delete(record.storageKey);
    };
    return {
      async write(offset, data) {
        try {
          await sink.write(offset, data);
        } catch (err) {
          if (err instanceof AppError && err.code === 'payloadTooLarge') {
            await sink.abandon({ abandon: () => removeFile(caller, envelope, record) }).finally(done);
            await recordRefusal(folder, err, raw);
          }
          throw err;
        }
      },
      async close() {
        try {
          await sink.finish();
        } catch (err) {
          await recordRefusal(folder, err, raw);
          throw err;
        } finally {
          done();
        }
      },
      async detach() {
        await sink.detach().finally(done);
      },
    };
  }

  /** Drops a draft's file: the store's upload (partial or not), the row and the bytes. */
  async function removeFile(caller: Caller, envelope: EnvelopeRecord, record: FileRecord): Promise<void> {
    await envelopes.findUpload(caller, envelope.id, record.id);
    if (record.completedAt === null) await deps.uploadStore.remove(record.storageKey).catch(() => undefined);
    await envelopes.abandonUpload(caller, record);
  }

  return {
    async stat(caller: Caller, raw: string): Promise<Attrs> {
      const target = await resolve(caller, raw);
      return target.kind === 'dir' ? dir(target.writable) : attrsOf(target.content);
    },

    async list(caller: Caller, raw: string): Promise<AsyncIterable<Entry>> {
      const target = await resolve(caller, raw);
      if (target.kind !== 'dir') throw failure('Not a directory');
      return target.entries();
    },

    async openRead(caller: Caller, raw: string): Promise<ReadHandle> {
      const target = await resolve(caller, raw);
      if (target.kind === 'dir') throw failure('Is a directory');
      const { content } = target;
      if (content.kind === 'buffer') return bufferHandle(content.data);
      // Authorises now; the bytes are opened (and the retrieval recorded) at the first READ.
      const download = await envelopes.prepareDownload(caller, content.envelope.id, content.file.id);
      return new DownloadReader(download.file.size, (start: number): Promise<Readable> => download.open(start === 0 ? undefined : { start }));
    },

    async openWrite(caller: Caller, raw: string, flags: number): Promise<WriteHandle> {
      const p = parse(caller, raw);
      if (p.kind !== 'folder' || p.submit || p.rest.length !== 1) {
        if (p.kind === 'envelope' || p.kind === 'box') throw denied('Inbox and outbox are read-only');
        throw denied('Files are put into a send folder: mkdir /<mailbox>/send/<name>, then put envelope.json and the files there');
      }
      const name = p.rest[0]!;
      if (name === ENVELOPE_JSON) {
        await folderAt(caller, p);
        const chunks: Buffer[] = [];
        let size = 0;
        return {
          async write(offset, data) {
            if (offset !== size) throw failure('envelope.json is written in order');
            size += data.length;
            if (size > deps.bodyLimit) throw new AppError('payloadTooLarge', `envelope.json is limited to ${deps.bodyLimit} bytes`);
            chunks.push(Buffer.from(data));
          },
          close: () => acceptDescriptor(caller, raw, p, Buffer.concat(chunks)),
          async detach() {},
        };
      }
      if (FOLDER_RESERVED.has(name)) throw denied(`${name} is made by the server`);
      return openUpload(caller, raw, p, name, flags);
    },

    async mkdir(caller: Caller, raw: string): Promise<void> {
      const p = parse(caller, raw);
      if (p.kind !== 'folder' || p.rest.length !== 0) throw denied('Folders are made only in /<mailbox>/send/');
      if (p.submit || !FOLDER_NAME.test(p.name)) throw failure('A send folder name is letters, digits, . _ - (at most 100), not ending in .submit');
      if (!rolesOn(caller, p.mailbox).includes('send')) throw denied(`Sending from ${p.mailbox} needs the send role`);
      if ((await sendFolders.get(p.mailbox, p.name)) !== null) throw failure(`send/${p.name} exists (or was submitted as send/${p.name}.submit)`);
      await sendFolders.put({ mailbox: p.mailbox, name: p.name, createdAt: deps.now().toISOString(), envelopeId: null, state: 'editing', descriptor: null, files: {}, receiptId: null, error: null });
    },

    async rmdir(caller: Caller, raw: string): Promise<void> {
      const p = parse(caller, raw);
      if (p.kind === 'envelope' && p.box === 'inbox' && p.rest.length === 0) {
        throw denied(`Removing never acknowledges: rename inbox/${p.id} inbox/${ACK_FOLDER}/${p.id} to acknowledge`);
      }
      if (p.kind !== 'folder' || p.rest.length !== 0) throw denied('Only send folders can be removed');
      const { folder, envelope } = await folderAt(caller, p);
      if (envelope !== null && envelope.status === 'draft') {
        for (const f of envelope.files) if (f.completedAt === null) await deps.uploadStore.remove(f.storageKey).catch(() => undefined);
        await envelopes.deleteDraft(caller, envelope.id);
      }
      await sendFolders.remove(folder.mailbox, folder.name);
    },

    async remove(caller: Caller, raw: string): Promise<void> {
      const p = parse(caller, raw);
      if (p.kind === 'envelope') throw denied(`Inbox and outbox are read-only; to acknowledge, rename inbox/<id> inbox/${ACK_FOLDER}/<id>`);
      if (p.kind !== 'folder' || p.submit || p.rest.length !== 1) throw denied('Only files of a draft can be removed');
      const { folder, envelope } = await folderAt(caller, p);
      const name = p.rest[0]!;
      if (name === 'ERROR.json' && folder.error !== null) {
        folder.error = null;
        await sendFolders.put(folder);
        return;
      }
      if (FOLDER_RESERVED.has(name)) throw denied(`${name} cannot be removed; rmdir the folder to drop the draft`);
      const record = envelope === null ? undefined : fileNames(envelope.files, FOLDER_RESERVED).get(name);
      if (envelope === null || record === undefined) throw noSuchFile();
      if (writers.get(record.storageKey)?.active) throw failure(`${name} is being written`);
      await removeFile(caller, envelope, record);
    },

    async rename(caller: Caller, fromRaw: string, toRaw: string): Promise<void> {
      const from = parse(caller, fromRaw);
      const to = parse(caller, toRaw);
      // Acknowledge: inbox/<id> → inbox/.ack/<id>.
      if (from.kind === 'envelope' && to.kind === 'envelope' && from.box === 'inbox' && to.box === 'inbox' && from.rest.length === 0 && to.rest.length === 0) {
        if (from.mailbox !== to.mailbox || from.id !== to.id || from.acknowledged || !to.acknowledged) {
          throw denied(`To acknowledge, rename inbox/<id> to inbox/${ACK_FOLDER}/<id> (same id, same mailbox)`);
        }
        await boxEnvelope(caller, from);
        await envelopes.acknowledge(caller, from.id, from.mailbox);
        return;
      }
      if (from.kind === 'folder' && to.kind === 'folder' && from.rest.length === 0 && to.rest.length === 0 && from.mailbox === to.mailbox && from.name === to.name) {
        const { folder, envelope } = await folderAt(caller, from);
        // Submit: send/<name> → send/<name>.submit; the outcome is in the renamed folder.
        if (!from.submit && to.submit) {
          if (envelope === null) {
            const err = new AppError('conflict', `Put envelope.json into send/${from.name} first: there is no draft to submit`);
            await recordRefusal(folder, err, fromRaw);
            throw err;
          }
          for (const f of envelope.files) await settledWriter(f.storageKey);
          try {
            const submitted = await envelopes.submit(caller, envelope.id);
            const receipts = await envelopes.listReceipts(caller, submitted);
            const acceptance = receipts.filter((e) => e.eventType === 'SubmissionAcceptance').pop();
            Object.assign(folder, { state: 'submitted', receiptId: acceptance?.id ?? null, error: null });
          } catch (err) {
            if (!(err instanceof AppError) || err.status >= 500) throw err;
            Object.assign(folder, { state: 'refused', error: toProblem(err, toRaw) });
          }
          await sendFolders.put(folder);
          return;
        }
        // Back to editing after a refusal: send/<name>.submit → send/<name>.
        if (from.submit && !to.submit && folder.state === 'refused') {
          Object.assign(folder, { state: 'editing', error: null });
          await sendFolders.put(folder);
          return;
        }
      }
      throw unsupported('This rename');
    },
  };
}

export type Gateway = ReturnType<typeof createGateway>;
