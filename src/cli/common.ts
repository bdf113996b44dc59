/**
 * What every `bxchange` command shares: exit statuses, the error that ends a
 * command, output helpers, the HTTP client of the API and the command table's
 * types. See index.ts for the exit-status contract.
 */
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
}

export const EXIT = { ok: 0, failure: 1, usage: 2, refused: 3, unavailable: 4 } as const;

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const REQUEST_TIMEOUT_MS = 60_000;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A failure that ends the command with `exitCode` after printing `lines` on stderr. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly lines: string[];
  /** The HTTP status when the server refused or failed the request. */
  readonly status: number | undefined;
  constructor(exitCode: number, lines: string[], status?: number) {
    super(lines[0] ?? 'failed');
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.lines = lines;
    this.status = status;
  }
}

/** Exit 2, with a pointer to the help of `helpFor` (a command path, '' for the top level). */
export function usageError(message: string, helpFor: string): CliError {
  const help = ['bxchange', helpFor, '--help'].filter(Boolean).join(' ');
  return new CliError(EXIT.usage, [`bxchange: ${message}`, `Run "${help}" for usage.`]);
}

// ---------------------------------------------------------------- output

export function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  // Wait for the write to be handed over: the bin script calls process.exit()
  // right after run() returns, which would otherwise cut a piped output short.
  return new Promise((resolve, reject) => {
    stream.write(text, (err?: Error | null) => (err ? reject(err) : resolve()));
  });
}

export const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

// ---------------------------------------------------------------- HTTP client

export interface Problem {
  title?: unknown;
  status?: unknown;
  detail?: unknown;
  issues?: unknown;
}

/** A streamed answer: its status and headers, and a body that fails if the server falls silent. */
export interface StreamedResponse {
  status: number;
  headers: Headers;
  body: Readable;
}

export interface ApiClient {
  /** The base URL as it may be shown: no user name or password. */
  readonly shown: string;
  /** The absolute URL of an API path (or of an absolute link, unchanged). */
  url(path: string): string;
  /** The headers that authenticate a call; for clients of their own (tus). Never printed. */
  authorization(): Record<string, string>;
  request(method: string, path: string, body?: unknown): Promise<unknown>;
  /** GETs `path` and follows every `next` link; returns all items of all pages. */
  list(path: string): Promise<unknown[]>;
  /**
   * GETs `path` and resolves once the headers arrived (refusals throw as in
   * `request`). The body is streamed, never buffered; it errors when no byte
   * arrives for REQUEST_TIMEOUT_MS.
   */
  stream(path: string, headers?: Record<string, string>): Promise<StreamedResponse>;
}

/** The URL as it may be shown: no user name or password. */
function displayUrl(url: URL): string {
  const shown = new URL(url);
  shown.username = '';
  shown.password = '';
  return shown.toString().replace(/\/$/, '');
}

export function problemLines(status: number, body: Problem): string[] {
  const title = typeof body.title === 'string' ? body.title : `HTTP ${status}`;
  const detail = typeof body.detail === 'string' && body.detail !== '' ? `: ${body.detail}` : '';
  const lines = [`bxchange: ${title} (${status})${detail}`];
  if (Array.isArray(body.issues)) {
    for (const issue of body.issues as { name?: unknown; detail?: unknown }[]) {
      lines.push(`  ${String(issue?.name ?? '?')}: ${String(issue?.detail ?? 'is invalid')}`);
    }
  }
  return lines;
}

/** The CliError for a refused or failed answer: the problem document's lines, or one line. */
export function httpError(status: number, statusText: string, contentType: string, text: string, shown: string): CliError {
  const exitCode = status >= 500 ? EXIT.unavailable : EXIT.refused;
  let parsed: unknown;
  if (/^application\/(?:problem\+)?json\b/i.test(contentType) && text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (parsed !== null && typeof parsed === 'object') return new CliError(exitCode, problemLines(status, parsed as Problem), status);
  const reason = statusText ? ` ${statusText}` : '';
  return new CliError(exitCode, [`bxchange: HTTP ${status}${reason} from BXCHANGE_URL ${shown}`], status);
}

export function unreachable(shown: string, reason: string): CliError {
  return new CliError(EXIT.unavailable, [`bxchange: cannot reach BXCHANGE_URL ${shown} (${reason})`]);
}

export function createApiClient(env: CliIo['env']): ApiClient {
  const rawUrl = env.BXCHANGE_URL?.trim() || DEFAULT_URL;
  let base: URL;
  try {
    base = new URL(rawUrl);
  } catch {
    throw new CliError(EXIT.usage, ['bxchange: BXCHANGE_URL is not a valid URL']);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new CliError(EXIT.usage, [`bxchange: BXCHANGE_URL must use http: or https:, got ${base.protocol}`]);
  }
  const token = env.BXCHANGE_TOKEN?.trim() || env.BXCHANGE_ADMIN_TOKEN?.trim();
  if (!token) {
    throw new CliError(EXIT.usage, ['bxchange: no token: set BXCHANGE_TOKEN (or BXCHANGE_ADMIN_TOKEN) to a bearer token']);
  }
  // The server answers paths and `next` links from `/api/v1`; a base URL with a
  // path (a reverse proxy's prefix) is kept in front of them.
  const prefix = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
  const resolve = (path: string) => (/^https?:\/\//i.test(path) ? path : `${prefix}${path}`);
  const shown = displayUrl(base);

  async function send(method: string, path: string, init: { headers: Record<string, string>; body?: string; signal: AbortSignal }): Promise<Response> {
    try {
      return await fetch(resolve(path), {
        method,
        headers: { authorization: `Bearer ${token}`, ...init.headers },
        ...(init.body === undefined ? {} : { body: init.body }),
        signal: init.signal,
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const reason =
        e.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw unreachable(shown, reason);
    }
  }

  async function request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await send(method, path, {
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const type = response.headers.get('content-type') ?? '';
    const isJson = /^application\/(?:problem\+)?json\b/i.test(type);
    let text: string;
    try {
      text = await response.text();
    } catch {
      throw new CliError(EXIT.unavailable, [`bxchange: the answer from BXCHANGE_URL ${shown} was cut short`]);
    }
    if (!response.ok) throw httpError(response.status, response.statusText, type, text, shown);
    if (response.status === 204 || text === '') return undefined;
    let parsed: unknown;
    if (isJson) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (parsed === undefined) {
      throw new CliError(EXIT.unavailable, [`bxchange: BXCHANGE_URL ${shown} did not answer JSON: is it a bxchange server?`]);
    }
    return parsed;
  }

  async function stream(path: string, headers: Record<string, string> = {}): Promise<StreamedResponse> {
    const controller = new AbortController();
    const silence = () => controller.abort(Object.assign(new Error(`no data within ${REQUEST_TIMEOUT_MS / 1000} s`), { name: 'TimeoutError' }));
    const timer = setTimeout(silence, REQUEST_TIMEOUT_MS);
    let response: Response;
    try {
      response = await send('GET', path, { headers, signal: controller.signal });
    } catch (err) {
      clearTimeout(timer);
      throw err;
    }
    if (!response.ok) {
      const text = await response.text().catch(() => '');
      clearTimeout(timer);
      throw httpError(response.status, response.statusText, response.headers.get('content-type') ?? '', text, shown);
    }
    if (response.body === null) {
      clearTimeout(timer);
      return { status: response.status, headers: response.headers, body: Readable.from([]) };
    }
    // Every chunk pushes the deadline back: a slow download is fine, a silent one is not.
    const watchdog = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        timer.refresh();
        done(null, chunk);
      },
    });
    const source = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
    const body = pipeline(source, watchdog, () => clearTimeout(timer));
    return { status: response.status, headers: response.headers, body };
  }

  return {
    shown,
    url: resolve,
    authorization: () => ({ authorization: `Bearer ${token}` }),
    request,
    stream,
    async list(path) {
      const items: unknown[] = [];
      const seen = new Set<string>();
      let next: string | undefined = path;
      while (next !== undefined) {
        if (seen.has(next)) throw new CliError(EXIT.unavailable, ['bxchange: the server returned the same page twice']);
        seen.add(next);
        const page = (await request('GET', next)) as { items?: unknown[]; next?: unknown } | undefined;
        if (!page || !Array.isArray(page.items)) {
          throw new CliError(EXIT.unavailable, [`bxchange: BXCHANGE_URL ${shown} did not answer a list`]);
        }
        items.push(...page.items);
        next = typeof page.next === 'string' && page.next !== '' ? page.next : undefined;
      }
      return items;
    },
  };
}

// ---------------------------------------------------------------- command table

export interface OptionDef {
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** Placeholder shown in help, e.g. `ID`. */
  arg?: string;
  required?: boolean;
  description: string;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Context {
  io: CliIo;
  /** Created on first use: serve and migrate need no URL or token. */
  api(): ApiClient;
  out(text: string): Promise<void>;
  note(text: string): Promise<void>;
}

export interface Command {
  /** Positional argument names, all required, e.g. `['ID']`. */
  args: string[];
  /** The last positional argument takes one or more values (`FILE…`). */
  variadic?: boolean;
  summary: string;
  /** Extra paragraphs for --help. */
  details?: string;
  options: Record<string, OptionDef>;
  run(ctx: Context, values: Values, args: string[]): Promise<number | void>;
}

export const str = (values: Values, name: string): string | undefined => values[name] as string | undefined;
export const list = (values: Values, name: string): string[] => (values[name] as string[] | undefined) ?? [];

export const seg = encodeURIComponent;

// ---------------------------------------------------------------- passphrases

/**
 * The passphrase of a mailbox's private key, for automation: the same secret
 * locks the key (keygen) and unlocks it (fetch). Read from the environment
 * only, never from an argument (other users of the machine can read those),
 * and never printed. BXCHANGE_KEY_PASSPHRASE is keygen's first name for it.
 */
export const PASSPHRASE_ENV = 'BXCHANGE_PASSPHRASE';

export function passphraseFromEnv(env: CliIo['env']): string | undefined {
  for (const name of [PASSPHRASE_ENV, 'BXCHANGE_KEY_PASSPHRASE']) {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

/** Reads one line from the terminal without echoing it (raw mode); Ctrl-C cancels. */
export function promptHidden(prompt: string, cancelled: string): Promise<string> {
  const stdin = process.stdin;
  const tty = process.stderr;
  tty.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (result: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      tty.write('\n');
      result();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish(() => resolve(value));
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) {
          return finish(() => reject(new CliError(EXIT.failure, [cancelled])));
        }
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

