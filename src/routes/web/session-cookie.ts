/**
 * The web session cookie and the anti-CSRF rules, shared by the /auth door
 * and the /api/v1 authentication hook.
 *
 * CSRF: SameSite=Lax already keeps the cookie off cross-site sub-requests
 * in current browsers; on top of that, every request that may change state
 * (any method but GET, HEAD, OPTIONS) must carry `X-CSRF-Token` equal to the
 * session's token, which only pages of this origin can read (GET
 * /auth/session answers no CORS headers), and an `Origin` header, when
 * present, must be this server's origin.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../config.ts';
import { AppError } from '../../errors.ts';
import type { Caller } from '../../domain/model.ts';
import type { ResolvedSession, Sessions } from '../../domain/sessions.ts';

export const SESSION_COOKIE = 'bx_session';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyRequest {
    /** The web session the request was authenticated with, if any. */
    webSession: ResolvedSession | null;
  }
}

/** Secure cookies whenever users reach the server over HTTPS. */
export function secureCookies(config: Config, request: FastifyRequest): boolean {
  return config.tls !== undefined || config.publicUrl.startsWith('https:') || request.protocol === 'https';
}

export function setSessionCookie(reply: FastifyReply, config: Config, secret: string): void {
  reply.setCookie(SESSION_COOKIE, secret, { httpOnly: true, secure: secureCookies(config, reply.request), sameSite: 'lax', path: '/' });
}

export function clearSessionCookie(reply: FastifyReply, config: Config): void {
  reply.clearCookie(SESSION_COOKIE, { httpOnly: true, secure: secureCookies(config, reply.request), sameSite: 'lax', path: '/' });
}

/**
 * Whether `Origin` names this server: PUBLIC_URL's origin, or the origin the
 * request was addressed to (scheme + Host), which a cross-site page cannot
 * make the victim's browser forge.
 */
export function sameOrigin(request: FastifyRequest, config: Config, origin: string): boolean {
  try {
    const given = new URL(origin).origin; // "null" and garbage throw or give "null"
    if (given === 'null') return false;
    return given === new URL(config.publicUrl).origin || given === new URL(`${request.protocol}://${request.host}`).origin;
  } catch {
    return false;
  }
}

/** Refuses a request whose Origin header is present and foreign (403 csrf). */
export function checkOrigin(request: FastifyRequest, config: Config, required: boolean): void {
  const origin = request.headers.origin;
  if (origin === undefined) {
    if (required) throw new AppError('csrf', 'This request must come from a page of this site (no Origin header)');
    return;
  }
  if (!sameOrigin(request, config, origin)) throw new AppError('csrf', 'Requests from another site are refused');
}

/** Whether the request carries a session cookie (and no other credential takes precedence). */
export function sessionCookieOf(request: FastifyRequest): string | undefined {
  const value = request.cookies?.[SESSION_COOKIE];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The caller of a request authenticated by its session cookie; throws 401
 * when the session has ended and 403 (csrf) when a state-changing request
 * lacks the session's CSRF token or comes from another origin.
 */
export async function authenticateSession(request: FastifyRequest, sessions: Sessions, config: Config, secret: string): Promise<Caller> {
  const resolved = await sessions.resolve(secret);
  if (!SAFE_METHODS.has(request.method)) {
    checkOrigin(request, config, false);
    const presented = request.headers[CSRF_HEADER];
    if (!sessions.csrfMatches(resolved.session, typeof presented === 'string' ? presented : undefined)) {
      throw new AppError('csrf', 'This request needs the X-CSRF-Token header of the session (from GET /auth/session)');
    }
  }
  request.webSession = resolved;
  return sessions.callerOf(resolved, request.id);
}
