/**
 * Web sessions: the browser door's credential (DESIGN §5, issue #9).
 *
 * A session is a row, so that any node can resolve it (DESIGN §8). The
 * browser holds a 256-bit random secret in an HttpOnly cookie; the row's id
 * is the SHA-256 of that secret, so a database dump does not hand out live
 * sessions. Each session carries its own anti-CSRF token, which the pages
 * read from GET /auth/session and send back in a header on every
 * state-changing request (the cookie alone never suffices to change state).
 *
 * A session ends at the first of: sign-out (revoked), the absolute lifetime
 * (`expires_at`, set at sign-in), `idleMs` without a request (`last_seen_at`,
 * written at most once a minute), or the principal's deactivation (checked at
 * every request, and the rows are revoked with it).
 *
 * Who may sign in: a principal whose `oidcSubject` is the identity provider's
 * `sub` (administrators set it), or, with the development sign-in, any active
 * principal by name. Unknown or deactivated principals get no session.
 * Sign-in and sign-out are audit entries.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { Caller, Principal } from './model.ts';
import type { AuditInput, Clock, DirectoryRepository } from './ports.ts';

export type SessionMethod = 'oidc' | 'dev';

export interface SessionRecord {
  /** SHA-256 (hex) of the cookie secret. */
  id: string;
  principalId: string;
  csrfToken: string;
  method: SessionMethod;
  idToken: string | null;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

/** Storage of sessions; sign-in and sign-out append their audit entry in the same transaction. */
export interface SessionRepository {
  create(session: Omit<SessionRecord, 'revokedAt'>, audit: AuditInput): Promise<void>;
  find(id: string): Promise<SessionRecord | null>;
  /** Sets last_seen_at to `at` unless it was written less than a minute before. */
  touch(id: string, at: Date): Promise<void>;
  /** Revokes the session (if not already); true when it existed. */
  revoke(id: string, at: Date, audit: AuditInput): Promise<boolean>;
  /** The id of the principal with this OIDC subject, or null. */
  principalIdBySubject(subject: string): Promise<string | null>;
  /** The id of the principal with this name, or null. */
  principalIdByName(name: string): Promise<string | null>;
}

export interface SessionsDeps {
  repository: SessionRepository;
  directory: Pick<DirectoryRepository, 'findPrincipal' | 'listPrincipals'>;
  clock: Clock;
  idleMs: number;
  maxMs: number;
  /** Whether the development sign-in is enabled (config). */
  devSignIn: boolean;
}

/** What the browser gets at sign-in: the cookie secret (shown once) and the session's CSRF token. */
export interface OpenedSession {
  secret: string;
  csrfToken: string;
  principal: Principal;
  method: SessionMethod;
  expiresAt: Date;
}

export interface ResolvedSession {
  session: SessionRecord;
  principal: Principal;
  /** When the session ends if unused: the earlier of the idle and absolute limits. */
  expiresAt: Date;
}

/** Where a sign-in or sign-out request came from, for the audit entry. */
export interface SessionOrigin {
  traceId?: string;
}

/** Why a sign-in was refused; the door words it for the user. */
export type SignInRefusal = 'unknownSubject' | 'unknownPrincipal' | 'deactivated';

export class SignInRefused extends AppError {
  readonly reason: SignInRefusal;
  constructor(reason: SignInRefusal, detail: string) {
    super('forbidden', detail);
    this.name = 'SignInRefused';
    this.reason = reason;
  }
}

/** What the development sign-in page lists: names only. */
export interface DevPrincipal {
  name: string;
  displayName: string | null;
  mailboxes: string[];
  admin: boolean;
}

export function sessionIdOf(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of two strings (their SHA-256, so lengths never leak either). */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

const SECRET = /^[A-Za-z0-9_-]{43}$/;
const TOUCH_EVERY_MS = 60_000;
const DEV_LIST_MAX = 1000;

export function createSessions(deps: SessionsDeps) {
  const { repository, directory, clock, idleMs, maxMs } = deps;

  function audit(principal: Principal, action: string, origin: SessionOrigin, data: Record<string, unknown>): AuditInput {
    const input: AuditInput = { actor: principal.name, action, subject: principal.name, data, door: 'web' };
    if (origin.traceId !== undefined) input.traceId = origin.traceId;
    return input;
  }

  async function open(principal: Principal, method: SessionMethod, idToken: string | null, origin: SessionOrigin): Promise<OpenedSession> {
    const secret = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    const now = clock.now();
    const expiresAt = new Date(now.getTime() + maxMs);
    await repository.create(
      { id: sessionIdOf(secret), principalId: principal.id, csrfToken, method, idToken, createdAt: now, lastSeenAt: now, expiresAt },
      audit(principal, 'session.signIn', origin, { method, expiresAt }),
    );
    return { secret, csrfToken, principal, method, expiresAt };
  }

  async function activePrincipal(id: string | null, refusal: SignInRefusal, detail: string): Promise<Principal> {
    const principal = id === null ? null : await directory.findPrincipal(id);
    if (principal === null) throw new SignInRefused(refusal, detail);
    if (!principal.active) throw new SignInRefused('deactivated', `The account ${principal.name} is deactivated`);
    return principal;
  }

  return {
    devSignIn: deps.devSignIn,

    /** Opens a session for the principal whose OIDC subject is `subject`. */
    async signInWithOidc(subject: string, idToken: string | null, origin: SessionOrigin): Promise<OpenedSession> {
      const id = await repository.principalIdBySubject(subject);
      const principal = await activePrincipal(id, 'unknownSubject', 'No account is linked to this identity');
      return open(principal, 'oidc', idToken, origin);
    },

    /** The development sign-in: any active principal by name, when enabled. */
    async signInForDevelopment(name: string, origin: SessionOrigin): Promise<OpenedSession> {
      if (!deps.devSignIn) throw new AppError('resourceNotFound', 'The development sign-in is not enabled');
      const id = await repository.principalIdByName(name);
      const principal = await activePrincipal(id, 'unknownPrincipal', `No principal named ${name}`);
      return open(principal, 'dev', null, origin);
    },

    /** Active principals with their mailboxes, for the development sign-in page. */
    async listForDevelopment(): Promise<DevPrincipal[]> {
      if (!deps.devSignIn) throw new AppError('resourceNotFound', 'The development sign-in is not enabled');
      const result: DevPrincipal[] = [];
      let after: string | undefined;
      while (result.length < DEV_LIST_MAX) {
        const page = await directory.listPrincipals(after === undefined ? { limit: 200 } : { after, limit: 200 });
        for (const p of page) {
          if (!p.active) continue;
          result.push({ name: p.name, displayName: p.displayName, mailboxes: p.memberships.map((m) => m.mailbox), admin: p.capabilities.includes('admin') });
        }
        if (page.length < 200) break;
        after = page[page.length - 1]!.id;
      }
      return result.sort((a, b) => a.name.localeCompare(b.name));
    },

    /**
     * The live session of a cookie secret and its principal; throws 401
     * problems when there is none (unknown, revoked, expired, idle too long,
     * principal deactivated).
     */
    async resolve(secret: string): Promise<ResolvedSession> {
      const invalid = () => new AppError('invalidAccessToken', 'The session has ended: sign in again');
      if (!SECRET.test(secret)) throw invalid();
      const session = await repository.find(sessionIdOf(secret));
      const now = clock.now();
      if (
        session === null ||
        session.revokedAt !== null ||
        session.expiresAt <= now ||
        now.getTime() - session.lastSeenAt.getTime() >= idleMs
      ) {
        throw invalid();
      }
      const principal = await directory.findPrincipal(session.principalId);
      if (principal === null || !principal.active) throw invalid();
      if (now.getTime() - session.lastSeenAt.getTime() >= TOUCH_EVERY_MS) {
        await repository.touch(session.id, now);
        session.lastSeenAt = now;
      }
      const idleEnd = session.lastSeenAt.getTime() + idleMs;
      return { session, principal, expiresAt: new Date(Math.min(idleEnd, session.expiresAt.getTime())) };
    },

    /** The caller a resolved session acts as (no token id: the session is not a credential row). */
    callerOf(resolved: ResolvedSession, traceId: string): Caller {
      return { type: 'principal', principal: resolved.principal, tokenId: null, via: { door: 'web', traceId } };
    },

    /** Whether `presented` is the session's CSRF token (constant time). */
    csrfMatches(session: SessionRecord, presented: string | undefined): boolean {
      return presented !== undefined && presented !== '' && sameSecret(session.csrfToken, presented);
    },

    /** Sign-out: the session is revoked at once, on every node. */
    async signOut(resolved: ResolvedSession, origin: SessionOrigin): Promise<void> {
      await repository.revoke(
        resolved.session.id,
        clock.now(),
        audit(resolved.principal, 'session.signOut', origin, { method: resolved.session.method }),
      );
    },
  };
}

export type Sessions = ReturnType<typeof createSessions>;
