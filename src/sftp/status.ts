/**
 * Domain errors → SFTP status codes (draft-ietf-secsh-filexfer-02 §7, the
 * version OpenSSH speaks), mapped once for the whole door. The message is the
 * domain's `detail` (never a stack, SQL, S3 or crypto text); clients such as
 * OpenSSH's sftp only print the code's standard text, which is why the send
 * folders also carry an ERROR.json with the whole problem.
 */
import { AppError, type ErrorCode } from '../errors.ts';

export const STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  OP_UNSUPPORTED: 8,
} as const;

export type StatusCode = (typeof STATUS)[keyof typeof STATUS];

/** A refusal of the SFTP door itself (a path outside the tree, an operation it does not offer). */
export class SftpError extends Error {
  readonly status: StatusCode;
  constructor(status: StatusCode, message: string) {
    super(message);
    this.name = 'SftpError';
    this.status = status;
  }
}

export const noSuchFile = (what = 'No such file or directory') => new SftpError(STATUS.NO_SUCH_FILE, what);
export const denied = (why: string) => new SftpError(STATUS.PERMISSION_DENIED, why);
export const unsupported = (what: string) => new SftpError(STATUS.OP_UNSUPPORTED, `${what} is not supported by the bxchange SFTP door`);
export const failure = (why: string) => new SftpError(STATUS.FAILURE, why);

const BY_CODE: Partial<Record<ErrorCode, StatusCode>> = {
  resourceNotFound: STATUS.NO_SUCH_FILE,
  blobNotFound: STATUS.NO_SUCH_FILE,
  noMailboxKey: STATUS.NO_SUCH_FILE,
  filePurged: STATUS.NO_SUCH_FILE,
  forbidden: STATUS.PERMISSION_DENIED,
  noAccessToken: STATUS.PERMISSION_DENIED,
  invalidAccessToken: STATUS.PERMISSION_DENIED,
  methodNotAllowed: STATUS.OP_UNSUPPORTED,
  badRequest: STATUS.BAD_MESSAGE,
};

/** The status and message an error answers with; `internal` is true when it must be logged (not a known refusal). */
export function statusOf(err: unknown): { status: StatusCode; message: string; internal: boolean } {
  if (err instanceof SftpError) return { status: err.status, message: err.message, internal: false };
  if (err instanceof AppError) {
    const internal = err.status >= 500;
    return { status: BY_CODE[err.code] ?? STATUS.FAILURE, message: internal ? 'Internal error; the platform operators have been alerted' : err.message, internal };
  }
  return { status: STATUS.FAILURE, message: 'Internal error; the platform operators have been alerted', internal: true };
}
