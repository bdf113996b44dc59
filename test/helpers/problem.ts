/** Assertions on RFC 9457 answers, shared by the HTTP tests. */
import type { Test } from 'tap';
import type { LightMyRequestResponse } from 'fastify';

export function json(res: LightMyRequestResponse): any {
  return JSON.parse(res.body);
}

/**
 * Asserts an `application/problem+json` answer with this status and type, a
 * human detail, and no internals (stack frames, SQL, driver names, storage
 * keys); returns the parsed problem.
 */
export function problem(t: Test, res: LightMyRequestResponse, status: number, type: string): any {
  t.equal(res.statusCode, status, `status ${status}`);
  t.match(res.headers['content-type'], /^application\/problem\+json/, 'problem+json');
  const body = json(res);
  t.equal(body.status, status);
  t.equal(body.type, type);
  t.type(body.detail, 'string');
  t.ok(body.detail.length > 0, 'has a human detail');
  t.notMatch(res.body, /at .*\.ts:\d+|SELECT|INSERT|postgres|drizzle|(?<!v1\/)envelopes\/[0-9a-f-]{36}\/[0-9a-f-]{36}/i, 'no internals leak');
  return body;
}
