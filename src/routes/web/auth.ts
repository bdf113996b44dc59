/**
 * /auth: the sign-in door of the browser (issue #9, docs/web-contract.md).
 *
 * - GET  /auth/login?returnTo=/path  → the identity provider (OIDC code + PKCE),
 *   or the development sign-in when that is the configured way in;
 * - GET  /auth/callback               → session for the principal whose
 *   oidcSubject is the ID token's `sub`, cookie, redirect to returnTo;
 * - GET  /auth/dev, POST /auth/dev   → the development sign-in (when enabled);
 * - GET  /auth/session                → who is signed in, and the CSRF token;
 * - POST /auth/logout                 → ends the session (CSRF header required).
 *
 * Refusals that a person meets while navigating (unknown account,
 * deactivated, expired sign-in) answer a short HTML page; the JSON calls
 * answer problems. No session, cookie or token value is ever logged.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.ts';
import { SignInRefused, type OpenedSession } from '../../domain/sessions.ts';
import type { Services } from '../../services.ts';
import { FLOW_COOKIE, FLOW_TTL_MS, flowKey, openFlow, sealFlow } from './flow-cookie.ts';
import { createOidcRelyingParty } from './oidc-client.ts';
import { PAGE_CSS, devSignInPage, messagePage } from './pages.ts';
import { CSRF_HEADER, checkOrigin, clearSessionCookie, secureCookies, sessionCookieOf, setSessionCookie } from './session-cookie.ts';
import { UI_CSP, UI_REFERRER_POLICY } from './ui.ts';

/** Only a path of this site: `/…`, never `//host` or `/\host` (open redirects). */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value === '' || value.length > 2048) return '/';
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\') || /[\u0000-\u001f\\]/.test(value)) return '/';
  const base = 'http://bxchange.invalid';
  try {
    const parsed = new URL(value, base);
    if (parsed.origin !== base) return '/';
    return `${parsed.pathname}${parsed.search}${parsed.hash}`;
  } catch {
    return '/';
  }
}

function html(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-security-policy', UI_CSP)
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(body);
}

export default async function auth(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { config, sessions } = services;
  const oidc = config.oidc === undefined ? undefined : createOidcRelyingParty(config.oidc);
  const key = config.oidc === undefined ? undefined : flowKey(config.oidc.clientSecret);
  const tags = ['web sign-in'];

  // HTML forms post urlencoded; only here.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  // Every /auth answer: see UI_REFERRER_POLICY (a dev sign-in form POST must carry its real Origin).
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('referrer-policy', UI_REFERRER_POLICY);
  });

  app.addHook('onReady', async () => {
    if (config.devSignIn) {
      app.log.warn('development sign-in is ENABLED: anyone reaching this server can sign in as any principal (BXCHANGE_DEV_SIGNIN)');
    }
  });

  function opened(request: FastifyRequest, reply: FastifyReply, session: OpenedSession, returnTo: string): FastifyReply {
    request.log.info({ principal: session.principal.name, method: session.method }, 'web sign-in');
    setSessionCookie(reply, config, session.secret);
    return reply.code(303).header('cache-control', 'no-store').redirect(returnTo, 303);
  }

  function refused(request: FastifyRequest, reply: FastifyReply, err: SignInRefused, subject?: string): FastifyReply {
    request.log.warn({ reason: err.reason, ...(subject === undefined ? {} : { subject }) }, 'web sign-in refused');
    if (err.reason === 'deactivated') {
      return html(reply, 403, messagePage('Account deactivated', ['Your bxchange account is deactivated.', 'Ask an administrator of the platform if you need access again.']));
    }
    if (err.reason === 'unknownSubject') {
      return html(
        reply,
        403,
        messagePage('No bxchange account for this identity', [
          'You signed in with the identity provider, but no bxchange account is linked to your identity.',
          `Ask an administrator to link your identity to your account (its subject is “${subject ?? ''}”).`,
        ]),
      );
    }
    return html(reply, 403, messagePage('Unknown account', [err.message]));
  }

  app.get('/page.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(PAGE_CSS),
  );

  app.get<{ Querystring: { returnTo?: string } }>(
    '/login',
    { schema: { tags, summary: 'Start a sign-in (redirects to the identity provider, or to the development sign-in)' } },
    async (request, reply) => {
      const returnTo = safeReturnTo(request.query.returnTo);
      if (oidc === undefined || key === undefined) {
        if (config.devSignIn) return reply.redirect(`/auth/dev?returnTo=${encodeURIComponent(returnTo)}`, 303);
        return html(reply, 503, messagePage('Sign-in is not configured', ['This server has no identity provider configured (OIDC_ISSUER). The API remains available with tokens.']));
      }
      let started: Awaited<ReturnType<typeof oidc.start>>;
      try {
        started = await oidc.start();
      } catch (err) {
        request.log.error({ err }, 'OIDC discovery failed');
        return html(reply, 503, messagePage('Sign-in unavailable', ['The identity provider cannot be reached right now. Try again in a moment.']));
      }
      reply.setCookie(FLOW_COOKIE, sealFlow(key, { state: started.state, nonce: started.nonce, codeVerifier: started.codeVerifier, returnTo }, Date.now()), {
        httpOnly: true,
        secure: secureCookies(config, request),
        sameSite: 'lax',
        path: '/auth',
        maxAge: FLOW_TTL_MS / 1000,
      });
      return reply.header('cache-control', 'no-store').redirect(started.url, 303);
    },
  );

  app.get('/callback', { schema: { tags, summary: 'Where the identity provider sends the browser back' } }, async (request, reply) => {
    if (oidc === undefined || key === undefined) throw new AppError('resourceNotFound', 'OIDC sign-in is not configured');
    const flow = openFlow(key, request.cookies[FLOW_COOKIE], Date.now());
    reply.clearCookie(FLOW_COOKIE, { httpOnly: true, secure: secureCookies(config, request), sameSite: 'lax', path: '/auth' });
    const again = { href: '/auth/login', text: 'Sign in again' };
    if (flow === null) {
      return html(reply, 400, messagePage('Sign-in expired', ['This sign-in took too long or was started in another browser.'], again));
    }
    const callbackUrl = new URL(config.oidc!.redirectUri);
    callbackUrl.search = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    let identity: { subject: string; idToken: string | null };
    try {
      identity = await oidc.finish(callbackUrl, flow);
    } catch (err) {
      // The provider's error code (access_denied…) is safe to log; tokens never reach the log.
      const code = (err as { error?: unknown }).error;
      request.log.warn({ error: typeof code === 'string' ? code : (err as Error).name, detail: (err as Error).message }, 'OIDC callback refused');
      return html(reply, 400, messagePage('Sign-in failed', ['The identity provider did not confirm your sign-in, or it was cancelled.'], again));
    }
    try {
      const session = await sessions.signInWithOidc(identity.subject, identity.idToken, { traceId: request.id });
      return opened(request, reply, session, flow.returnTo);
    } catch (err) {
      if (err instanceof SignInRefused) return refused(request, reply, err, identity.subject);
      throw err;
    }
  });

  app.get<{ Querystring: { returnTo?: string } }>('/dev', { schema: { tags, summary: 'The development sign-in page (when enabled)' } }, async (request, reply) => {
    const principals = await sessions.listForDevelopment(); // 404 when disabled
    return html(reply, 200, devSignInPage(principals, safeReturnTo(request.query.returnTo)));
  });

  app.post<{ Body: Record<string, string> | undefined }>(
    '/dev',
    { schema: { tags, summary: 'Open a development session for a principal (form: principal, returnTo)' } },
    async (request, reply) => {
      if (!sessions.devSignIn) throw new AppError('resourceNotFound', 'The development sign-in is not enabled');
      checkOrigin(request, config, true);
      const name = request.body?.principal;
      if (typeof name !== 'string' || name === '') throw new AppError('badRequest', 'Choose a principal');
      try {
        const session = await sessions.signInForDevelopment(name, { traceId: request.id });
        return opened(request, reply, session, safeReturnTo(request.body?.returnTo));
      } catch (err) {
        if (err instanceof SignInRefused) return refused(request, reply, err);
        throw err;
      }
    },
  );

  app.get('/session', { schema: { tags, summary: 'The signed-in principal and the CSRF token for state-changing requests' } }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    // The 401 says which ways in this server offers, so the landing page needs no probe.
    const signIn = { oidc: oidc !== undefined, dev: config.devSignIn };
    const secret = sessionCookieOf(request);
    if (secret === undefined) throw new AppError('noAccessToken', 'Not signed in', { extensions: { signIn } });
    let resolved: Awaited<ReturnType<typeof sessions.resolve>>;
    try {
      resolved = await sessions.resolve(secret);
    } catch (err) {
      if (err instanceof AppError && err.status === 401) throw new AppError(err.code, err.message, { extensions: { signIn } });
      throw err;
    }
    const { principal, session } = resolved;
    return {
      principal: { id: principal.id, name: principal.name, displayName: principal.displayName },
      csrfToken: session.csrfToken,
      method: session.method,
      devSignIn: config.devSignIn,
      expiresAt: resolved.expiresAt.toISOString(),
    };
  });

  app.post('/logout', { schema: { tags, summary: 'Sign out: the session ends on every node (X-CSRF-Token required)' } }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const secret = sessionCookieOf(request);
    let resolved: Awaited<ReturnType<typeof sessions.resolve>> | undefined;
    if (secret !== undefined) {
      try {
        resolved = await sessions.resolve(secret);
      } catch (err) {
        if (!(err instanceof AppError) || err.status !== 401) throw err;
      }
    }
    // Signing out of a session that already ended only clears the cookie.
    if (resolved === undefined) {
      clearSessionCookie(reply, config);
      return {};
    }
    checkOrigin(request, config, false);
    const presented = request.headers[CSRF_HEADER];
    if (!sessions.csrfMatches(resolved.session, typeof presented === 'string' ? presented : undefined)) {
      throw new AppError('csrf', 'Signing out needs the X-CSRF-Token header of the session');
    }
    await sessions.signOut(resolved, { traceId: request.id });
    request.log.info({ principal: resolved.principal.name }, 'web sign-out');
    clearSessionCookie(reply, config);
    if (oidc === undefined || resolved.session.method !== 'oidc') return {};
    try {
      const endSessionUrl = await oidc.endSessionUrl(resolved.session.idToken, `${config.publicUrl}/`);
      return endSessionUrl === undefined ? {} : { endSessionUrl };
    } catch (err) {
      request.log.warn({ err }, 'OIDC end-session URL unavailable');
      return {};
    }
  });
}
