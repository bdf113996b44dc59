/**
 * The API as the page uses it: same-origin fetches carrying the `bx_session`
 * cookie, the CSRF token on every state-changing request
 * (docs/web-contract.md), and problem+json answers turned into ApiError.
 */
export interface Issue {
  in?: string;
  name?: string;
  value?: unknown;
  detail?: string;
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  issues?: Issue[];
  traceId?: string;
  [key: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
    this.name = 'ApiError';
    this.status = problem.status;
    this.problem = problem;
  }
}

export interface Session {
  principal: { id: string; name: string; displayName?: string | null };
  csrfToken: string;
  method: 'oidc' | 'dev';
  devSignIn: boolean;
  expiresAt?: string;
}

export interface Mailbox {
  address: string;
  entity: string;
  name: string;
  roles?: string[];
}

export interface Recipient {
  address: string;
  status: string;
  deliveredAt?: string | null;
  retrievedAt?: string | null;
  acknowledgedAt?: string | null;
}

export interface FileView {
  id: string;
  name: string;
  mediaType: string;
  role: string | null;
  size: number;
  sha256: string;
  plaintextSha256: string | null;
  complete: boolean;
  href: string;
}

export interface ReceiptRef {
  id: string;
  eventType: string;
  eventTime: string;
  recipient?: string | null;
  href: string;
}

export interface EncryptionKey {
  mailbox: string;
  fingerprint: string;
  keyId?: string;
  encryptionKeyIds?: string[];
  publicKey: string;
}

export interface Envelope {
  id: string;
  type: string;
  typeVersion: string;
  from: string;
  status: string;
  metadata: Record<string, unknown>;
  inReplyTo?: string | null;
  createdAt: string;
  submittedAt: string | null;
  deadline?: string | null;
  computed?: Record<string, unknown> | null;
  recipients: Recipient[];
  files: FileView[];
  receipts?: ReceiptRef[];
  encryptionKeys?: EncryptionKey[];
  /** The file roles the type asks for given the metadata; each needs a file uploaded with that role. */
  requiredRoles?: string[];
  href: string;
}

export interface EnvelopeSummary {
  id: string;
  type: string;
  from: string;
  status: string;
  envelopeStatus: string;
  metadata: Record<string, unknown>;
  recipients: Recipient[];
  createdAt: string;
  submittedAt: string | null;
  deadline?: string | null;
  /** Computed by the server: the deadline passed without a final decision. */
  overdue?: boolean;
  href: string;
}

export interface Label {
  fr: string;
  nl: string;
}

export interface EnvelopeTypeDescription {
  name: string;
  version: string;
  title: Label;
  description: string;
  senders: string[] | 'any';
  addressing: 'free' | 'routed' | 'routed-or-free';
  deadline: string | null;
  inReplyTo: { required: boolean; types: string[] } | null;
  fieldLabels?: Record<string, Label>;
  valueLabels?: Record<string, Record<string, Label>>;
  schema: JsonSchema;
}

export interface JsonSchema {
  type?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

let csrfToken = '';
let unauthorized: () => void = () => {};

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

export function csrfHeader(): Record<string, string> {
  return csrfToken === '' ? {} : { 'X-CSRF-Token': csrfToken };
}

/** Called when the API answers 401: the session ended (expiry, sign-out elsewhere). */
export function onUnauthorized(handler: () => void): void {
  unauthorized = handler;
}

async function problemOf(response: Response): Promise<Problem> {
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('json')) {
    try {
      const body = (await response.json()) as Problem;
      return { ...body, status: body.status ?? response.status };
    } catch {
      /* fall through */
    }
  }
  return { status: response.status, title: response.statusText || `HTTP ${response.status}` };
}

/** A JSON call; throws ApiError on any non-2xx answer. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
  if (method !== 'GET' && method !== 'HEAD') Object.assign(headers, csrfHeader());
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && !path.startsWith('/auth/')) unauthorized();
    throw new ApiError(problem);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** A raw GET (downloads): the Response, or ApiError. */
export async function fetchRaw(path: string): Promise<Response> {
  const response = await fetch(path, { credentials: 'same-origin' });
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) unauthorized();
    throw new ApiError(problem);
  }
  return response;
}

/** Every page of a paginated list (small lists: mailboxes, types). */
export async function allPages<T>(path: string): Promise<T[]> {
  const items: T[] = [];
  let next: string | undefined = path;
  while (next !== undefined) {
    const page: Page<T> = await api<Page<T>>('GET', next);
    items.push(...page.items);
    next = page.next;
  }
  return items;
}

/** Which sign-in methods the server offers (from the 401 of /auth/session); null when it did not say. */
export interface SignInMethods {
  oidc: boolean;
  dev: boolean;
}
let signInMethods: SignInMethods | null = null;

export function offeredSignIn(): SignInMethods | null {
  return signInMethods;
}

export async function getSession(): Promise<Session | null> {
  try {
    const session = await api<Session>('GET', '/auth/session');
    setCsrfToken(session.csrfToken);
    return session;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
      const offered = err.problem.signIn as Partial<SignInMethods> | undefined;
      signInMethods = offered !== undefined && typeof offered === 'object' ? { oidc: offered.oidc === true, dev: offered.dev === true } : null;
      return null;
    }
    throw err;
  }
}
