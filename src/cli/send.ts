/**
 * `bxchange send`: create a draft, encrypt each file for the draft's keys
 * into a ciphertext spool, upload the spools with tus (tus-js-client,
 * streamed from disk in CHUNK_SIZE requests), check what the server holds,
 * submit, print the submitted envelope.
 *
 * Encryption (DESIGN §4c). The draft's answer pins `encryptionKeys`: the
 * active key of every recipient mailbox and of the sending mailbox. Each
 * file is encrypted for all of them by the SDK (encryptFileToSpool: OpenPGP
 * SEIPDv1, streaming, memory flat) into a spool file; the spool is what is
 * uploaded, never the plaintext, and no plaintext copy is ever written. The
 * SDK's plaintext SHA-256 goes along in the upload metadata
 * (`plaintextSha256`), for the recipient's fetch to verify. There is no way
 * to send a file unencrypted: the server refuses it at submit anyway.
 *
 * Resume state. An interrupted send (killed, network lost, server restarted)
 * is finished by running the same command again. The command's identity is a
 * SHA-256 over the canonical JSON of {server URL, from, to, type, metadata,
 * role, and each file's absolute path, size and mtime}; its state lives in
 * `$XDG_STATE_HOME/bxchange/send-<hash>.json` (default ~/.local/state/bxchange):
 *   {version, key, server, envelopeId, createdAt, spoolDir,
 *    files: [{path, size, spool, spoolSize, spoolSha256, plaintextSha256, keys, uploadUrl, done}]}
 * written (atomically, mode 0600) right after the draft is created, when a
 * file's spool is complete, each time tus hands out an upload URL (before any
 * byte is sent) and when a file is done. The spools live beside it in
 * `send-<hash>.spool/` (mode 0700, spools 0600). Re-encrypting never gives the
 * same bytes (new session key), so a re-run resumes from the recorded spool:
 * it first checks that the spool still has the recorded size and SHA-256,
 * then tus asks the server for the upload's offset (HEAD) and sends only the
 * rest. A spool that vanished or changed cannot be resumed: its upload is
 * terminated and the file encrypted and sent again (said on stderr). A re-run
 * reuses the draft (if it is still a draft; if it was submitted meanwhile, it
 * is printed as the answer). After a successful submission the state file and
 * the spools are deleted. Changing any argument or touching a file (mtime)
 * makes a new identity, hence a new draft: the old one is left to the
 * server's draft expiry. A lock file beside the state (`.lock`, holding the
 * pid) keeps two runs of the same command from sending at once; a lock whose
 * process is gone is taken over.
 *
 * Key rotation. If a recipient rotates its key between the draft and the
 * submission, the server refuses the submission and re-pins the draft to the
 * current keys. send then re-encrypts, once and automatically, every file
 * whose spool was made for other keys (saying so on stderr): it terminates the
 * old upload, encrypts a new spool, uploads it and submits again. A second
 * refusal is reported as it is.
 *
 * Before submitting, files of the draft that are not this command's (a
 * creation interrupted before its URL was recorded, a creation retried by
 * tus, an upload replaced by a re-encryption) are terminated, since they
 * would block or spoil the submission, and each file's SHA-256 as stored by
 * the server is compared with the spool's.
 */
import { createHash } from 'node:crypto';
import { chmodSync, createReadStream, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { access, constants, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { DetailedError, HttpRequest, HttpResponse, HttpStack } from 'tus-js-client';
import { canonicalJson } from '../domain/canonical-json.ts';
import { CliError, EXIT, httpError, json, list, seg, str, unreachable, usageError, type ApiClient, type Command, type Context, type Values } from './common.ts';
import { Progress, bytes } from './progress.ts';

const CHUNK_SIZE = 8 * 1024 * 1024;
/** tus-js-client's retries of one request (network errors, 5xx, 409, 423), in ms. */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10_000, 20_000];
/** A tus request whose socket stays silent this long fails (and is retried). Generous: finishing a large upload takes a while. */
const IDLE_TIMEOUT_MS = 10 * 60_000;
const HELP = 'send';

export interface EnvelopeFile {
  id: string;
  name: string;
  mediaType?: string;
  size: number | null;
  sha256: string | null;
  /** The sender's SHA-256 of the plaintext, when it gave one (the recipient checks it after decryption). */
  plaintextSha256?: string | null;
  /** The encryption key IDs the file's OpenPGP header names (set at submission). */
  recipientKeyIds?: string[] | null;
  complete?: boolean;
  href?: string;
}

/** A key the draft pins: every file must be encrypted for each of them (DESIGN §4c). */
export interface PinnedKey {
  mailbox: string;
  fingerprint: string;
  keyId?: string;
  encryptionKeyIds?: string[];
  publicKey: string;
}

export interface EnvelopeJson {
  id: string;
  status: string;
  from?: string;
  files?: EnvelopeFile[];
  uploadUrl?: string;
  recipients?: { address: string; status: string }[];
  encryptionKeys?: PinnedKey[];
}

interface LocalFile {
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
}

/** What is uploaded is always an OpenPGP message: its name gets `.gpg`, its type application/pgp-encrypted. */
export const ENCRYPTED_SUFFIX = '.gpg';
export const ENCRYPTED_MEDIA_TYPE = 'application/pgp-encrypted';

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// ---------------------------------------------------------------- arguments

async function readMetadata(values: Values): Promise<Record<string, unknown>> {
  let metadata: Record<string, unknown> = {};
  const file = str(values, 'meta');
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw usageError(`cannot read --meta ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, HELP);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw usageError(`--meta ${file} is not JSON: ${(err as Error).message}`, HELP);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw usageError(`--meta ${file} must hold a JSON object`, HELP);
    metadata = parsed as Record<string, unknown>;
  }
  const subject = str(values, 'subject');
  const reference = str(values, 'reference');
  if (subject !== undefined) metadata = { ...metadata, subject };
  if (reference !== undefined) metadata = { ...metadata, reference };
  return metadata;
}

async function localFiles(paths: string[]): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  const seen = new Set<string>();
  for (const given of paths) {
    const absolute = path.resolve(given);
    if (seen.has(absolute)) throw usageError(`${given} is given twice`, HELP);
    seen.add(absolute);
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(absolute);
      await access(absolute, constants.R_OK);
    } catch (err) {
      throw usageError(`cannot read ${given} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, HELP);
    }
    if (!info.isFile()) throw usageError(`${given} is not a regular file`, HELP);
    const name = path.basename(absolute);
    files.push({ path: absolute, name, size: info.size, mtimeMs: info.mtimeMs });
  }
  return files;
}

// ---------------------------------------------------------------- resume state

interface FileState {
  path: string;
  /** Of the plaintext. */
  size: number;
  /** The ciphertext spool, once complete; with its size, SHA-256, the plaintext's SHA-256 and the keys (fingerprints, sorted) it is encrypted for. */
  spool: string | null;
  spoolSize: number | null;
  spoolSha256: string | null;
  plaintextSha256: string | null;
  keys: string[];
  uploadUrl: string | null;
  done: boolean;
}

interface SendState {
  version: 2;
  key: string;
  server: string;
  envelopeId: string;
  createdAt: string;
  spoolDir: string;
  files: FileState[];
}

export function stateDir(env: Context['io']['env']): string {
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'bxchange');
  return path.join(env.HOME?.trim() || os.homedir(), '.local', 'state', 'bxchange');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The state file of one send command, and its lock. Failing to keep it only costs resumability: it warns, never fails the send. */
class StateStore {
  readonly file: string;
  readonly lockFile: string;
  readonly #key: string;
  readonly #warn: (text: string) => void;
  #enabled = true;

  /** Where this command's ciphertext spools go (created 0700 on first use). */
  readonly spoolDir: string;

  constructor(dir: string, key: string, warn: (text: string) => void) {
    this.file = path.join(dir, `send-${key.slice(0, 32)}.json`);
    this.lockFile = path.join(dir, `send-${key.slice(0, 32)}.lock`);
    this.spoolDir = path.join(dir, `send-${key.slice(0, 32)}.spool`);
    this.#key = key;
    this.#warn = warn;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      this.#disable(err);
    }
  }

  #disable(err: unknown): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    const e = err as NodeJS.ErrnoException;
    this.#warn(`bxchange: warning: cannot keep the resume state in ${path.dirname(this.file)} (${e.code ?? e.message}); an interrupted send will start over\n`);
  }

  /** Takes the lock; returns its release. Refuses while another live process holds it. */
  lock(): () => void {
    if (!this.#enabled) return () => {};
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        writeFileSync(this.lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        return () => rmSync(this.lockFile, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          this.#disable(err);
          return () => {};
        }
      }
      let holder = Number.NaN;
      try {
        holder = Number(readFileSync(this.lockFile, 'utf8').trim());
      } catch {
        // vanished meanwhile: try again
      }
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new CliError(EXIT.failure, [
          `bxchange: the same send is already running (process ${holder}); wait for it to finish`,
          `  (if no such send runs, remove ${this.lockFile})`,
        ]);
      }
      rmSync(this.lockFile, { force: true }); // left by a process that is gone
    }
    throw new CliError(EXIT.failure, [`bxchange: cannot take the lock ${this.lockFile}`]);
  }

  load(files: LocalFile[]): SendState | null {
    if (!this.#enabled) return null;
    let state: SendState;
    try {
      state = JSON.parse(readFileSync(this.file, 'utf8')) as SendState;
    } catch {
      return null; // none, or unreadable: start over
    }
    const valid =
      state !== null &&
      typeof state === 'object' &&
      state.version === 2 &&
      state.key === this.#key &&
      typeof state.envelopeId === 'string' &&
      state.spoolDir === this.spoolDir &&
      Array.isArray(state.files) &&
      state.files.length === files.length &&
      state.files.every(
        (f, i) =>
          f !== null &&
          typeof f === 'object' &&
          f.path === files[i]!.path &&
          (f.uploadUrl === null || typeof f.uploadUrl === 'string') &&
          (f.spool === null || (typeof f.spool === 'string' && path.dirname(f.spool) === this.spoolDir)) &&
          Array.isArray(f.keys),
      );
    return valid ? state : null;
  }

  /** Synchronous: when it returns, the state is on disk (a kill right after loses nothing). */
  save(state: SendState): void {
    if (!this.#enabled) return;
    const temporary = `${this.file}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      renameSync(temporary, this.file);
    } catch (err) {
      rmSync(temporary, { force: true });
      this.#disable(err);
    }
  }

  remove(): void {
    if (this.#enabled) rmSync(this.file, { force: true });
  }

  /** The spool folder, created (owner only) if missing; spools are written even when the state cannot be kept. */
  makeSpoolDir(): string {
    try {
      mkdirSync(this.spoolDir, { recursive: true, mode: 0o700 });
      chmodSync(this.spoolDir, 0o700);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CliError(EXIT.failure, [`bxchange: cannot create the spool folder ${this.spoolDir} (${e.code ?? e.message})`]);
    }
    return this.spoolDir;
  }

  /** Deletes every spool of this command (after the submission, or when its draft is gone). */
  removeSpools(): void {
    rmSync(this.spoolDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- tus over node:http

/**
 * tus-js-client's transport (its `httpStack` option). Its own Node stack
 * parses URLs with the deprecated url.parse (a warning on our stderr), sets
 * no timeout and hangs if the file cannot be read; this one uses WHATWG URLs,
 * fails a request whose socket stays silent for IDLE_TIMEOUT_MS and passes
 * read errors on. The protocol itself stays tus-js-client's.
 */
class TusResponse implements HttpResponse {
  readonly #response: IncomingMessage;
  readonly #body: string;
  constructor(response: IncomingMessage, body: string) {
    this.#response = response;
    this.#body = body;
  }
  getStatus(): number {
    return this.#response.statusCode ?? 0;
  }
  getHeader(header: string): string | undefined {
    const value = this.#response.headers[header.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  getBody(): string {
    return this.#body;
  }
  getUnderlyingObject(): unknown {
    return this.#response;
  }
}

class TusRequest implements HttpRequest {
  readonly #method: string;
  readonly #url: string;
  readonly #headers: Record<string, string> = {};
  #onProgress: (sent: number) => void = () => {};
  #request: http.ClientRequest | null = null;

  constructor(method: string, url: string) {
    this.#method = method;
    this.#url = url;
  }
  getMethod(): string {
    return this.#method;
  }
  getURL(): string {
    return this.#url;
  }
  setHeader(header: string, value: string): void {
    this.#headers[header] = value;
  }
  getHeader(header: string): string | undefined {
    return this.#headers[header];
  }
  setProgressHandler(handler: (sent: number) => void): void {
    this.#onProgress = handler;
  }
  getUnderlyingObject(): unknown {
    return this.#request;
  }
  abort(): Promise<void> {
    this.#request?.destroy();
    return Promise.resolve();
  }

  send(body: unknown = null): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const url = new URL(this.#url);
      const headers: Record<string, string> = { ...this.#headers };
      const size = (body as { size?: unknown } | null)?.size;
      if (typeof size === 'number') headers['Content-Length'] = String(size);
      const request = (url.protocol === 'https:' ? https : http).request(url, { method: this.#method, headers, timeout: IDLE_TIMEOUT_MS });
      this.#request = request;
      request.on('timeout', () => {
        request.destroy(Object.assign(new Error(`no answer within ${IDLE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' }));
      });
      request.on('error', reject);
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => resolve(new TusResponse(response, Buffer.concat(chunks).toString('utf8'))));
      });
      const onProgress = this.#onProgress;
      if (body instanceof Readable) {
        let sent = 0;
        const meter = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            sent += chunk.length;
            onProgress(sent);
            done(null, chunk);
          },
        });
        body.on('error', (err) => request.destroy(err));
        body.pipe(meter).pipe(request);
      } else if (body instanceof Uint8Array) {
        request.end(body, () => onProgress(body.length));
      } else {
        request.end(body ?? undefined);
      }
    });
  }
}

const tusHttpStack: HttpStack = {
  createRequest: (method, url) => new TusRequest(method, url),
  getName: () => 'bxchange-node-http',
};

// ---------------------------------------------------------------- the command

/** `…/uploads/<envelope>.<file>`: the server's tus URL (src/routes/api/uploads.ts) names the file. */
const UPLOAD_URL = /\/([0-9a-f-]{36})\.([0-9a-f-]{36})$/i;

function fileIdOf(uploadUrl: string | null): string | undefined {
  if (uploadUrl === null) return undefined;
  try {
    return UPLOAD_URL.exec(new URL(uploadUrl).pathname)?.[2]?.toLowerCase();
  } catch {
    return undefined;
  }
}

function uploadFailure(err: unknown, api: ApiClient, file: LocalFile, spool: string): CliError {
  const e = err as Error & Partial<Pick<DetailedError, 'originalResponse' | 'causingError'>>;
  const resume = `bxchange: ${file.name} was not sent completely; run the same command again to resume`;
  const response = e.originalResponse;
  if (response) {
    const failure = httpError(response.getStatus(), '', response.getHeader('Content-Type') ?? '', response.getBody() ?? '', api.shown);
    return failure.exitCode === EXIT.unavailable ? new CliError(failure.exitCode, [...failure.lines, resume], failure.status) : failure;
  }
  const cause = (e.causingError ?? e) as NodeJS.ErrnoException;
  if (cause.path !== undefined || ['open', 'read', 'stat', 'fstat'].includes(cause.syscall ?? '')) {
    return new CliError(EXIT.failure, [`bxchange: cannot read the spool ${spool} of ${file.name} (${cause.code ?? cause.message})`]);
  }
  if (cause.code === undefined) return new CliError(EXIT.failure, [`bxchange: sending ${file.name} failed: ${cause.message}`]);
  return new CliError(EXIT.unavailable, [...unreachable(api.shown, cause.code).lines, resume]);
}

interface Sending {
  ctx: Context;
  api: ApiClient;
  endpoint: string;
  envelopeId: string;
  role: string | undefined;
  store: StateStore;
  state: SendState;
  sdk: typeof import('../sdk/index.ts');
  /** Spools checked against the state (or made) by this run: not hashed again. */
  verified: Set<FileState>;
}

/** The draft's pinned keys; a server that pins none cannot take encrypted files (too old, or not bxchange). */
function pinnedKeys(draft: EnvelopeJson, api: ApiClient): PinnedKey[] {
  const keys = draft.encryptionKeys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k?.publicKey === 'string' && typeof k.fingerprint === 'string')) {
    throw new CliError(EXIT.unavailable, [
      `bxchange: the draft ${draft.id} names no keys to encrypt for (encryptionKeys): is BXCHANGE_URL ${api.shown} an up-to-date bxchange server?`,
    ]);
  }
  return keys;
}

const fingerprints = (keys: PinnedKey[]) => [...new Set(keys.map((k) => k.fingerprint.toLowerCase()))].sort();
const sameKeys = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Removes an upload from the draft: tus termination (which also drops what
 * the tus store keeps beside an unfinished upload), else the API's
 * `DELETE /envelopes/{id}/files/{fileId}`. Best effort: what stays behind is
 * removed as a stray before the submission.
 */
async function terminate(s: Sending, uploadUrl: string): Promise<void> {
  const { Upload } = await import('tus-js-client');
  try {
    await Upload.terminate(uploadUrl, { headers: s.api.authorization(), httpStack: tusHttpStack, retryDelays: [0, 1000] });
  } catch {
    const fileId = fileIdOf(uploadUrl);
    if (fileId !== undefined) await s.api.request('DELETE', `/api/v1/envelopes/${seg(s.envelopeId)}/files/${seg(fileId)}`).catch(() => {});
  }
}

/** Size and SHA-256 of a file, or null when it cannot be read. */
async function fileDigest(file: string): Promise<{ size: number; sha256: string } | null> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return null;
    return { size: info.size, sha256: await hashFile(file) };
  } catch {
    return null;
  }
}

/**
 * Makes sure `entry` has a spool encrypted for exactly `keys`: the recorded
 * one when it is intact (checked once per run: same size and SHA-256), a new
 * one otherwise. A new spool means new bytes, so an upload of the old one is
 * terminated first and the file is sent from the start.
 */
async function prepareSpool(s: Sending, index: number, file: LocalFile, entry: FileState, keys: PinnedKey[]): Promise<void> {
  const wanted = fingerprints(keys);
  if (entry.spool !== null) {
    let why: string | undefined;
    if (!sameKeys(entry.keys, wanted)) {
      why = 'the draft now pins other keys (a recipient rotated its key): encrypting it again for the new keys';
    } else if (!s.verified.has(entry)) {
      const held = await fileDigest(entry.spool);
      if (held === null || held.size !== entry.spoolSize || held.sha256 !== entry.spoolSha256) {
        why = `its encrypted spool ${entry.spool} ${held === null ? 'is gone' : 'changed'}; an upload cannot resume from other bytes: encrypting and sending it again from the start`;
      } else {
        s.verified.add(entry);
      }
    }
    if (why === undefined) return;
    await s.ctx.note(`bxchange: ${file.name}: ${why}\n`);
    if (entry.uploadUrl !== null) await terminate(s, entry.uploadUrl);
    rmSync(entry.spool, { force: true });
    Object.assign(entry, { spool: null, spoolSize: null, spoolSha256: null, plaintextSha256: null, keys: [], uploadUrl: null, done: false });
    s.store.save(s.state);
  } else if (entry.uploadUrl !== null) {
    // An upload without a recorded spool (cannot happen with this version's states): its bytes are unknown.
    await terminate(s, entry.uploadUrl);
    Object.assign(entry, { uploadUrl: null, done: false });
    s.store.save(s.state);
  }

  const dir = s.store.makeSpoolDir();
  // Left by an encryption that was killed: never complete, never recorded.
  for (const name of readdirSync(dir)) if (name.startsWith(`.${index}.gpg.spool-`)) rmSync(path.join(dir, name), { force: true });
  const spool = path.join(dir, `${index}.gpg`);
  const progress = new Progress(s.ctx.io.stderr, `${file.name} (encrypting)`, file.size);
  let result: Awaited<ReturnType<typeof s.sdk.encryptFileToSpool>>;
  try {
    result = await s.sdk.encryptFileToSpool(
      file.path,
      spool,
      keys.map((k) => k.publicKey),
      { onProgress: (n) => progress.update(n) },
    );
  } catch (err) {
    progress.abandon();
    if (err instanceof s.sdk.SdkError) {
      if (err.code === 'invalidKey' || err.code === 'invalidArgument') {
        throw new CliError(EXIT.failure, [`bxchange: cannot encrypt ${file.name} for the draft's keys: ${err.message}`]);
      }
      const cause = err.cause as NodeJS.ErrnoException | undefined;
      const spoolSide = cause?.path !== undefined && cause.path !== file.path;
      throw new CliError(EXIT.failure, [
        spoolSide
          ? `bxchange: cannot write the encrypted spool of ${file.name} in ${dir} (${cause?.code ?? err.message})`
          : `bxchange: cannot read ${file.path} (${cause?.code ?? err.message})`,
      ]);
    }
    throw err;
  }
  if (result.plaintextSize !== file.size) {
    rmSync(spool, { force: true });
    throw new CliError(EXIT.failure, [`bxchange: ${file.path} changed while it was encrypted (${result.plaintextSize} bytes read, ${file.size} expected); run the command again`]);
  }
  Object.assign(entry, {
    spool,
    spoolSize: result.size,
    spoolSha256: result.sha256,
    plaintextSha256: result.plaintextSha256,
    keys: wanted,
    uploadUrl: null,
    done: false,
  });
  s.verified.add(entry);
  s.store.save(s.state);
  await progress.finish(`encrypted ${file.name} for ${keys.map((k) => k.mailbox).join(', ')}`);
}

async function uploadOne(s: Sending, file: LocalFile, entry: FileState): Promise<void> {
  const { Upload } = await import('tus-js-client');
  const spool = entry.spool!;
  const size = entry.spoolSize!;
  const name = `${file.name}${ENCRYPTED_SUFFIX}`;
  const progress = new Progress(s.ctx.io.stderr, name, size);
  const source = createReadStream(spool);
  source.on('error', () => {}); // tus reads through its own slices; their errors fail the request
  try {
    await new Promise<void>((resolve, reject) => {
      const upload = new Upload(source as never, {
        endpoint: s.endpoint,
        ...(entry.uploadUrl === null ? {} : { uploadUrl: entry.uploadUrl }),
        uploadSize: size,
        chunkSize: CHUNK_SIZE,
        retryDelays: RETRY_DELAYS,
        storeFingerprintForResuming: false,
        httpStack: tusHttpStack,
        headers: s.api.authorization(),
        metadata: {
          envelope: s.envelopeId,
          filename: name,
          filetype: ENCRYPTED_MEDIA_TYPE,
          plaintextSha256: entry.plaintextSha256!,
          ...(s.role === undefined ? {} : { role: s.role }),
        },
        onUploadUrlAvailable() {
          if (upload.url !== null && upload.url !== entry.uploadUrl) {
            entry.uploadUrl = upload.url;
            entry.done = false;
            s.store.save(s.state);
          }
        },
        onProgress: (sent) => progress.update(sent),
        onSuccess() {
          entry.done = true;
          s.store.save(s.state);
          resolve();
        },
        onError: reject,
      });
      upload.start();
    });
  } catch (err) {
    progress.abandon();
    throw uploadFailure(err, s.api, file, spool);
  } finally {
    source.destroy();
  }
  const from = progress.startedAt;
  const line =
    from >= size && size > 0
      ? `${name} was already sent (${bytes(size)})`
      : `sent ${name} (${size} bytes${from > 0 ? `, resumed at ${from}` : ''})`;
  await progress.finish(line);
}

async function envelope(api: ApiClient, id: string): Promise<EnvelopeJson> {
  return (await api.request('GET', `/api/v1/envelopes/${seg(id)}`)) as EnvelopeJson;
}

/** Encrypts (or reuses the spool of) and uploads every file, removes what is not ours, and checks what the server holds. */
async function sendFiles(s: Sending, files: LocalFile[], keys: PinnedKey[]): Promise<void> {
  const { state, api, envelopeId } = s;
  for (const [i, file] of files.entries()) {
    await prepareSpool(s, i, file, state.files[i]!, keys);
    await uploadOne(s, file, state.files[i]!);
  }

  let stored = await envelope(api, envelopeId);
  // The draft is this command's alone: any other file in it is a leftover (an upload created before its URL
  // was recorded, a creation retried by tus, an upload replaced by a re-encryption whose termination failed).
  const ours = new Set(state.files.map((f) => fileIdOf(f.uploadUrl)).filter((id) => id !== undefined));
  const strays = (stored.files ?? []).filter((f) => !ours.has(f.id));
  if (strays.length > 0 && ours.size === files.length) {
    for (const stray of strays) await terminate(s, `${s.endpoint}/${envelopeId}.${stray.id}`);
    stored = await envelope(api, envelopeId);
  }

  for (const [i, file] of files.entries()) {
    const entry = state.files[i]!;
    const id = fileIdOf(entry.uploadUrl);
    const held = (stored.files ?? []).find((f) => f.id === id);
    if (held === undefined || held.complete === false || held.sha256 === null) {
      throw new CliError(EXIT.unavailable, [
        `bxchange: the server does not hold ${file.name} completely`,
        'bxchange: run the same command again to resume',
      ]);
    }
    if (held.sha256 !== entry.spoolSha256 || held.size !== entry.spoolSize) {
      // The spool changed while it was sent: this upload can never be right. Send that file again.
      await terminate(s, entry.uploadUrl!);
      if (entry.spool !== null) rmSync(entry.spool, { force: true });
      Object.assign(entry, { spool: null, spoolSize: null, spoolSha256: null, plaintextSha256: null, keys: [], uploadUrl: null, done: false });
      s.store.save(state);
      throw new CliError(EXIT.failure, [
        `bxchange: the encrypted spool of ${file.name} changed while it was sent (the server received SHA-256 ${held.sha256});`,
        '  that upload was removed: run the same command again to encrypt and send the file again',
      ]);
    }
  }
}

/** Is this refusal the server's answer to a key rotation (the draft was re-pinned)? */
function rotationRefusal(err: unknown): boolean {
  return err instanceof CliError && err.status === 422;
}

export const sendCommand: Command = {
  args: ['FILE'],
  variadic: true,
  summary: "send files in a new envelope: draft, encryption for the draft's keys, resumable uploads, submission",
  details:
    'Creates a draft from --from to every --to, encrypts each FILE (OpenPGP, streamed) for the keys the draft pins\n' +
    "(every recipient mailbox's key and the sending mailbox's own) into an encrypted spool, uploads the spool with\n" +
    "tus as NAME.gpg (application/pgp-encrypted, with the plaintext's SHA-256), checks the SHA-256 the server\n" +
    'computed against the spool, submits, and prints the envelope. The plaintext never leaves this machine and\n' +
    'is never copied: files cannot be sent unencrypted.\n' +
    'Metadata: the JSON object of --meta, with --subject and --reference set on top (general.letter needs a subject).\n' +
    '\n' +
    'Interrupted? Run the same command again: it reuses the draft and the encrypted spools (checked unchanged)\n' +
    'and resumes every upload where the server stopped. The resume state is in $XDG_STATE_HOME/bxchange\n' +
    '(default ~/.local/state/bxchange), one file per command (server, addresses, type, metadata, role, and the\n' +
    "files' paths, sizes and modification times) with its spools in a folder beside it (owner only); both are\n" +
    'removed after the submission. Changing an argument or a file starts a new envelope.\n' +
    'If a recipient rotates its key before the submission, the server refuses it and pins the new key: send\n' +
    'then encrypts the affected files again for the new keys, uploads them and submits once more (automatically,\n' +
    'once).\n' +
    'Progress: a bar on stderr when it is a terminal, otherwise one line per file and step.',
  options: {
    from: { type: 'string', arg: 'ADDR', required: true, description: 'the sending mailbox, e.g. secretariat@ixelles' },
    to: { type: 'string', multiple: true, arg: 'ADDR', required: true, description: 'a recipient mailbox; repeatable' },
    type: { type: 'string', arg: 'TYPE', description: 'envelope type (default general.letter)' },
    subject: { type: 'string', arg: 'TEXT', description: 'metadata subject (general.letter)' },
    reference: { type: 'string', arg: 'TEXT', description: "metadata reference: the sender's reference (general.letter)" },
    meta: { type: 'string', arg: 'FILE.json', description: 'metadata as a JSON object in a file' },
    role: { type: 'string', arg: 'ROLE', description: 'the role of every file, as the envelope type names it' },
  },
  async run(ctx, values, paths) {
    const from = str(values, 'from')!;
    const to = list(values, 'to');
    const type = str(values, 'type') ?? 'general.letter';
    const role = str(values, 'role');
    const metadata = await readMetadata(values);
    const files = await localFiles(paths);
    const api = ctx.api();

    const key = createHash('sha256')
      .update(
        canonicalJson({
          v: 2,
          server: api.shown,
          from,
          to,
          type,
          metadata,
          role: role ?? null,
          files: files.map((f) => ({ path: f.path, size: f.size, mtimeMs: f.mtimeMs })),
        }),
      )
      .digest('hex');
    const store = new StateStore(stateDir(ctx.io.env), key, (text) => ctx.io.stderr.write(text));
    const release = store.lock();
    try {
      let state = store.load(files);
      let draft: EnvelopeJson | undefined;
      if (state !== null) {
        try {
          draft = await envelope(api, state.envelopeId);
        } catch (err) {
          if (!(err instanceof CliError && err.status === 404)) throw err;
        }
        if (draft?.status === 'submitted') {
          await ctx.note(`bxchange: envelope ${draft.id} was already submitted by the interrupted send\n`);
          await ctx.out(json(draft));
          store.remove();
          store.removeSpools();
          return;
        }
        if (draft?.status === 'draft') {
          await ctx.note(`bxchange: resuming the interrupted send of draft ${draft.id}\n`);
        } else {
          await ctx.note(`bxchange: the draft ${state.envelopeId} of the interrupted send is gone; starting over\n`);
          draft = undefined;
          state = null;
        }
      }
      if (state === null || draft === undefined) {
        store.removeSpools(); // of an earlier attempt whose draft is gone: never reused
        draft = (await api.request('POST', '/api/v1/envelopes', { type, from, to, metadata })) as EnvelopeJson;
        try {
          pinnedKeys(draft, api);
        } catch (err) {
          await api.request('DELETE', `/api/v1/envelopes/${seg(draft.id)}`).catch(() => {});
          throw err;
        }
        state = {
          version: 2,
          key,
          server: api.shown,
          envelopeId: draft.id,
          createdAt: new Date().toISOString(),
          spoolDir: store.spoolDir,
          files: files.map((f) => ({
            path: f.path,
            size: f.size,
            spool: null,
            spoolSize: null,
            spoolSha256: null,
            plaintextSha256: null,
            keys: [],
            uploadUrl: null,
            done: false,
          })),
        };
        store.save(state);
      }

      const sdk = await import('../sdk/index.ts');
      const endpoint = api.url(draft.uploadUrl ?? '/api/v1/uploads');
      const sending: Sending = { ctx, api, endpoint, envelopeId: draft.id, role, store, state, sdk, verified: new Set() };
      let submitted: unknown;
      for (let attempt = 0; ; attempt++) {
        await sendFiles(sending, files, pinnedKeys(draft, api));
        try {
          submitted = await api.request('POST', `/api/v1/envelopes/${seg(draft.id)}/submit`);
          break;
        } catch (err) {
          if (attempt > 0 || !rotationRefusal(err)) throw err;
          // The server re-pins a draft when a mailbox rotated its key: are there files to encrypt again?
          const again = await envelope(api, draft.id);
          const now = fingerprints(pinnedKeys(again, api));
          const stale = state.files.filter((f) => !sameKeys(f.keys, now)).length;
          if (stale === 0) throw err;
          const changed = (again.encryptionKeys ?? []).filter((k) => !(draft!.encryptionKeys ?? []).some((d) => d.fingerprint === k.fingerprint));
          await ctx.note(
            `bxchange: the submission was refused because ${changed.map((k) => k.mailbox).join(', ') || 'a mailbox'} rotated its key since the draft was made;\n` +
              `bxchange: encrypting ${stale} file${stale === 1 ? '' : 's'} again for the current keys and sending ${stale === 1 ? 'it' : 'them'} again\n`,
          );
          draft = again;
        }
      }
      store.remove();
      store.removeSpools();
      await ctx.out(json(submitted));
    } finally {
      release();
    }
  },
};
