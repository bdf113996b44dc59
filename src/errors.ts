/**
 * The error catalogue: every failure a client can see has one stable code here,
 * an HTTP status and an RFC 9457 problem `type`. Domain code throws `AppError`
 * (or a subclass); each door (HTTP, SFTP, CLI) maps it once.
 *
 * Belgif problem types are used where the Belgian REST guidelines define one
 * (https://www.belgif.be/specification/rest/api-guide/#standardized-problem-types);
 * the others are `urn:problem-type:bxchange:<code>`.
 *
 * This module imports nothing local, so any layer may depend on it.
 */

/** One offending input, as in Belgif's `issues[]` (`in` names where the input was). */
export interface ProblemIssue {
  in?: 'body' | 'query' | 'path' | 'header';
  /** JSON pointer for body fields (`/name/fr`), parameter name otherwise. */
  name: string;
  value?: unknown;
  detail: string;
  type?: string;
}

interface CatalogueEntry {
  status: number;
  title: string;
  /** Full problem type URN; defaults to `urn:problem-type:bxchange:<code>`. */
  type?: string;
}

const BELGIF = 'urn:problem-type:belgif:';

export const catalogue = {
  badRequest: { status: 400, title: 'Bad Request', type: `${BELGIF}badRequest` },
  noAccessToken: { status: 401, title: 'No Access Token', type: `${BELGIF}noAccessToken` },
  invalidAccessToken: { status: 401, title: 'Invalid Access Token', type: `${BELGIF}invalidAccessToken` },
  forbidden: { status: 403, title: 'Forbidden' },
  csrf: { status: 403, title: 'Cross-Site Request Refused' },
  resourceNotFound: { status: 404, title: 'Resource Not Found', type: `${BELGIF}resourceNotFound` },
  methodNotAllowed: { status: 405, title: 'Method Not Allowed' },
  entityExists: { status: 409, title: 'Entity Already Exists' },
  mailboxExists: { status: 409, title: 'Mailbox Already Exists' },
  principalExists: { status: 409, title: 'Principal Already Exists' },
  conflict: { status: 409, title: 'Conflict' },
  payloadTooLarge: { status: 413, title: 'Payload Too Large', type: `${BELGIF}payloadTooLarge` },
  unsupportedMediaType: { status: 415, title: 'Unsupported Media Type' },
  tooManyRequests: { status: 429, title: 'Too Many Requests', type: `${BELGIF}tooManyRequests` },
  internalServerError: { status: 500, title: 'Internal Server Error', type: `${BELGIF}internalServerError` },
  serviceUnavailable: { status: 503, title: 'Service Unavailable', type: `${BELGIF}serviceUnavailable` },
  blobNotFound: { status: 404, title: 'Stored Object Not Found' },
  envelopeNotDraft: { status: 409, title: 'Envelope Is Not A Draft' },
  envelopeIncomplete: { status: 422, title: 'Envelope Incomplete' },
  unprocessable: { status: 422, title: 'Unprocessable Content' },
  rangeNotSatisfiable: { status: 416, title: 'Range Not Satisfiable' },
  checksumMismatch: { status: 460, title: 'Checksum Mismatch' },
  fileMissing: { status: 500, title: 'Stored File Missing' },
  filePurged: { status: 410, title: 'File Purged' },
  noMailboxKey: { status: 404, title: 'Mailbox Has No Key' },
  noPrivateKey: { status: 404, title: 'No Private Key Deposited' },
  mailboxWithoutKey: { status: 422, title: 'Mailbox Without Encryption Key' },
} satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof catalogue;

export function problemType(code: ErrorCode): string {
  const entry: CatalogueEntry = catalogue[code];
  return entry.type ?? `urn:problem-type:bxchange:${code}`;
}

export interface AppErrorOptions {
  issues?: ProblemIssue[];
  cause?: unknown;
  /** Extension members of the problem (RFC 9457 §3.2), e.g. the keys to re-encrypt for. */
  extensions?: Record<string, unknown>;
}

/** A failure with a stable code; its `message` is the human `detail` shown to clients. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly issues: ProblemIssue[] | undefined;
  readonly extensions: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, detail: string, options: AppErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = catalogue[code].status;
    this.issues = options.issues;
    this.extensions = options.extensions;
  }
}

/** Bad input: one problem naming every offending field. */
export class ValidationError extends AppError {
  constructor(issues: ProblemIssue[], detail = 'The input is not valid') {
    super('badRequest', detail, { issues });
    this.name = 'ValidationError';
  }

  /** Shorthand for a single body field. */
  static field(name: string, detail: string, value?: unknown): ValidationError {
    const issue: ProblemIssue = { in: 'body', name, detail };
    if (value !== undefined) issue.value = value;
    return new ValidationError([issue], detail);
  }
}

export class NotFoundError extends AppError {
  constructor(detail: string) {
    super('resourceNotFound', detail);
    this.name = 'NotFoundError';
  }
}

export class ForbiddenError extends AppError {
  constructor(detail: string) {
    super('forbidden', detail);
    this.name = 'ForbiddenError';
  }
}

export class ConflictError extends AppError {
  constructor(code: 'entityExists' | 'mailboxExists' | 'principalExists' | 'conflict' | 'envelopeNotDraft', detail: string, issues?: ProblemIssue[]) {
    super(code, detail, issues ? { issues } : {});
    this.name = 'ConflictError';
  }
}

/** RFC 9457 body. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: ErrorCode;
  issues?: ProblemIssue[];
  [extension: string]: unknown;
}

export function toProblem(err: AppError, instance?: string): Problem {
  const problem: Problem = {
    type: problemType(err.code),
    title: catalogue[err.code].title,
    status: err.status,
    detail: err.message,
    code: err.code,
  };
  if (instance !== undefined) problem.instance = instance;
  if (err.issues && err.issues.length > 0) problem.issues = err.issues;
  // Extensions never override the standard members.
  for (const [name, value] of Object.entries(err.extensions ?? {})) if (!(name in problem)) problem[name] = value;
  return problem;
}
