/**
 * `bxchange send`: create a draft, upload each file with tus (tus-js-client,
 * streamed from disk in CHUNK_SIZE requests), check what the server holds,
 * submit, print the submitted envelope.
 *
 * Resume state. An interrupted send (killed, network lost, server restarted)
 * is finished by running the same command again. The command's identity is a
 * SHA-256 over the canonical JSON of {server URL, from, to, type, metadata,
 * role, and each file's absolute path, size and mtime}; its state lives in
 * `$XDG_STATE_HOME/bxchange/send-<hash>.json` (default ~/.local/state/bxchange):
 *   {version, key, server, envelopeId, createdAt, files: [{path, size, uploadUrl, done}]}
 * written (atomically, mode 0600) right after the draft is created, each time
 * tus hands out an upload URL (before any byte is sent) and when a file is
 * done. A re-run with the same arguments reuses the draft (if it is still a
 * draft; if it was submitted meanwhile, it is printed as the answer); tus asks
 * the server for each upload's offset (HEAD) and sends only the rest; a file
 * the server already holds completely costs one HEAD. After a successful
 * submission the state file is deleted. Changing any argument or touching a
 * file (mtime) makes a new identity, hence a new draft: the old one is left to
 * the server's draft expiry. A lock file beside the state (`.lock`, holding
 * the pid) keeps two runs of the same command from sending at once; a lock
 * whose process is gone is taken over.
 *
 * Before submitting, unfinished uploads of the draft that are not this
 * command's (a creation interrupted before its URL was recorded, a creation
 * retried by tus) are terminated, since they would block the submission, and
 * each file's SHA-256 as stored by the server is compared with the local file.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  complete?: boolean;
  href?: string;
}

export interface EnvelopeJson {
  id: string;
  status: string;
  from?: string;
  files?: EnvelopeFile[];
  uploadUrl?: string;
  recipients?: { address: string; status: string }[];
}

interface LocalFile {
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
  mediaType: string;
}

/** What the back office hands over is already encrypted (or meant as is): only OpenPGP files get their own type. */
export function mediaTypeFor(name: string): string {
  return /\.(?:gpg|pgp|asc)$/i.test(name) ? 'application/pgp-encrypted' : 'application/octet-stream';
}

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
    files.push({ path: absolute, name, size: info.size, mtimeMs: info.mtimeMs, mediaType: mediaTypeFor(name) });
  }
  return files;
}

// ---------------------------------------------------------------- resume state

interface FileState {
  path: string;
  size: number;
  uploadUrl: string | null;
  done: boolean;
}

interface SendState {
  version: 1;
  key: string;
  server: string;
  envelopeId: string;
  createdAt: string;
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

  constructor(dir: string, key: string, warn: (text: string) => void) {
    this.file = path.join(dir, `send-${key.slice(0, 32)}.json`);
    this.lockFile = path.join(dir, `send-${key.slice(0, 32)}.lock`);
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
      state.version === 1 &&
      state.key === this.#key &&
      typeof state.envelopeId === 'string' &&
      Array.isArray(state.files) &&
      state.files.length === files.length &&
      state.files.every((f, i) => f !== null && typeof f === 'object' && f.path === files[i]!.path && (f.uploadUrl === null || typeof f.uploadUrl === 'string'));
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

function uploadFailure(err: unknown, api: ApiClient, file: LocalFile): CliError {
  const e = err as Error & Partial<Pick<DetailedError, 'originalResponse' | 'causingError'>>;
  const resume = `bxchange: ${file.name} was not sent completely; run the same command again to resume`;
  const response = e.originalResponse;
  if (response) {
    const failure = httpError(response.getStatus(), '', response.getHeader('Content-Type') ?? '', response.getBody() ?? '', api.shown);
    return failure.exitCode === EXIT.unavailable ? new CliError(failure.exitCode, [...failure.lines, resume], failure.status) : failure;
  }
  const cause = (e.causingError ?? e) as NodeJS.ErrnoException;
  if (cause.path !== undefined || ['open', 'read', 'stat', 'fstat'].includes(cause.syscall ?? '')) {
    return new CliError(EXIT.failure, [`bxchange: cannot read ${file.path} (${cause.code ?? cause.message})`]);
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
}

async function uploadOne(s: Sending, file: LocalFile, entry: FileState): Promise<void> {
  const { Upload } = await import('tus-js-client');
  const progress = new Progress(s.ctx.io.stderr, file.name, file.size);
  const source = createReadStream(file.path);
  source.on('error', () => {}); // tus reads through its own slices; their errors fail the request
  try {
    await new Promise<void>((resolve, reject) => {
      const upload = new Upload(source as never, {
        endpoint: s.endpoint,
        ...(entry.uploadUrl === null ? {} : { uploadUrl: entry.uploadUrl }),
        chunkSize: CHUNK_SIZE,
        retryDelays: RETRY_DELAYS,
        storeFingerprintForResuming: false,
        httpStack: tusHttpStack,
        headers: s.api.authorization(),
        metadata: { envelope: s.envelopeId, filename: file.name, filetype: file.mediaType, ...(s.role === undefined ? {} : { role: s.role }) },
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
    throw uploadFailure(err, s.api, file);
  } finally {
    source.destroy();
  }
  const from = progress.startedAt;
  const line =
    from >= file.size && file.size > 0
      ? `${file.name} was already sent (${bytes(file.size)})`
      : `sent ${file.name} (${file.size} bytes${from > 0 ? `, resumed at ${from}` : ''})`;
  await progress.finish(line);
}

async function envelope(api: ApiClient, id: string): Promise<EnvelopeJson> {
  return (await api.request('GET', `/api/v1/envelopes/${seg(id)}`)) as EnvelopeJson;
}

export const sendCommand: Command = {
  args: ['FILE'],
  variadic: true,
  summary: 'send files in a new envelope: draft, resumable uploads, submission',
  details:
    'Creates a draft from --from to every --to, uploads each FILE with tus (resumable, streamed from disk),\n' +
    'checks the SHA-256 the server computed against the local file, submits, and prints the envelope.\n' +
    'Metadata: the JSON object of --meta, with --subject and --reference set on top (general.letter needs a subject).\n' +
    'The files are sent as they are (.gpg, .pgp and .asc as application/pgp-encrypted, others as application/octet-stream).\n' +
    '\n' +
    'Interrupted? Run the same command again: it reuses the draft and resumes every upload where the server\n' +
    'stopped. The resume state is in $XDG_STATE_HOME/bxchange (default ~/.local/state/bxchange), one file per\n' +
    'command (server, addresses, type, metadata, role, and the files\' paths, sizes and modification times);\n' +
    'it is removed after the submission. Changing an argument or a file starts a new envelope.\n' +
    'Progress: a bar on stderr when it is a terminal, otherwise one line per file.',
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
          v: 1,
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
        draft = (await api.request('POST', '/api/v1/envelopes', { type, from, to, metadata })) as EnvelopeJson;
        state = {
          version: 1,
          key,
          server: api.shown,
          envelopeId: draft.id,
          createdAt: new Date().toISOString(),
          files: files.map((f) => ({ path: f.path, size: f.size, uploadUrl: null, done: false })),
        };
        store.save(state);
      }

      // The local hashes are computed while the uploads run (disk and network work side by side).
      const local = (async () => {
        const hashes: string[] = [];
        for (const file of files) hashes.push(await hashFile(file.path));
        return hashes;
      })();
      local.catch(() => {});

      const endpoint = api.url(draft.uploadUrl ?? '/api/v1/uploads');
      const sending: Sending = { ctx, api, endpoint, envelopeId: draft.id, role, store, state };
      for (const [i, file] of files.entries()) await uploadOne(sending, file, state.files[i]!);

      let stored = await envelope(api, draft.id);
      const ours = new Set(state.files.map((f) => fileIdOf(f.uploadUrl)).filter((id) => id !== undefined));
      const strays = (stored.files ?? []).filter((f) => f.complete === false && !ours.has(f.id));
      if (strays.length > 0 && ours.size === files.length) {
        const { Upload } = await import('tus-js-client');
        for (const stray of strays) {
          await Upload.terminate(`${endpoint}/${draft.id}.${stray.id}`, { headers: api.authorization(), httpStack: tusHttpStack, retryDelays: [0, 1000] }).catch(() => {});
        }
        stored = await envelope(api, draft.id);
      }

      const hashes = await local.catch((err: NodeJS.ErrnoException) => {
        throw new CliError(EXIT.failure, [`bxchange: cannot read ${err.path ?? 'a file'} (${err.code ?? err.message})`]);
      });
      for (const [i, file] of files.entries()) {
        const id = fileIdOf(state.files[i]!.uploadUrl);
        const held = (stored.files ?? []).find((f) => (id === undefined ? f.name === file.name && f.size === file.size : f.id === id));
        if (held === undefined || held.complete === false || held.sha256 === null) {
          throw new CliError(EXIT.unavailable, [
            `bxchange: the server does not hold ${file.name} completely`,
            'bxchange: run the same command again to resume',
          ]);
        }
        if (held.sha256 !== hashes[i] || held.size !== file.size) {
          // The file changed while it was sent: this draft can never be right.
          store.remove();
          await api.request('DELETE', `/api/v1/envelopes/${seg(draft.id)}`).catch(() => {});
          throw new CliError(EXIT.failure, [
            `bxchange: ${file.path} changed while it was sent (the server received SHA-256 ${held.sha256}, the file now has ${hashes[i]});`,
            `  the draft ${draft.id} was deleted; run the command again to send the file as it is now`,
          ]);
        }
      }

      const submitted = await api.request('POST', `/api/v1/envelopes/${seg(draft.id)}/submit`);
      store.remove();
      await ctx.out(json(submitted));
    } finally {
      release();
    }
  },
};
