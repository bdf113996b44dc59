/** Opaque cursors and page sizes shared by every list. */
import { ValidationError } from '../errors.ts';

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

function invalidCursor(): ValidationError {
  return new ValidationError([{ in: 'query', name: 'cursor', detail: 'The cursor is not one this server issued' }], 'Invalid cursor');
}

export function encodeCursorValue(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The value inside a cursor; undefined for no cursor; a 400 problem for garbage. */
export function decodeCursorValue(cursor: string | undefined): unknown {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (value !== null && typeof value === 'object') return value;
  } catch {
    // fall through
  }
  throw invalidCursor();
}

/** Cursor over a single string sort key. */
export function encodeCursor(after: string): string {
  return encodeCursorValue({ a: after });
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  const value = decodeCursorValue(cursor) as { a?: unknown } | undefined;
  if (value === undefined) return undefined;
  if (typeof value.a === 'string') return value.a;
  throw invalidCursor();
}

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new ValidationError([{ in: 'query', name: 'limit', value: limit, detail: `limit must be between 1 and ${MAX_PAGE}` }]);
  }
  return limit;
}
