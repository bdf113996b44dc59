/**
 * The browser UI: the static files built by `npm run build:web` into
 * `dist/web/` (BXCHANGE_WEB_DIR), served at `/` with a strict CSP (no inline
 * script or style; see docs/web-contract.md). Client-side routes live under
 * `/app/`: an unknown GET there answers index.html; `/api/` and `/auth/`
 * never do (their unknown paths answer the usual 404 problem). Without a
 * build, `/` and `/app/…` answer a 503 problem saying how to build.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../../errors.ts';
import type { Services } from '../../services.ts';

/**
 * Not helmet's `no-referrer`: under it Chromium sends `Origin: null` on a form
 * POST, which the same-origin check of POST /auth/dev must refuse.
 * `same-origin` still sends nothing to other sites.
 */
export const UI_REFERRER_POLICY = 'same-origin';

/** The Content-Security-Policy of the UI and of the server-rendered /auth pages. */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export default async function ui(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const root = path.resolve(services.config.webDir);
  const built = existsSync(path.join(root, 'index.html'));

  // Encapsulated: only the UI's answers get this policy (the API keeps helmet's).
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('content-security-policy', UI_CSP);
    reply.header('referrer-policy', UI_REFERRER_POLICY);
  });

  if (!built) {
    app.log.warn({ webDir: root }, 'web UI not built: run "npm run build:web" (the API works without it)');
    const missing = async () => {
      throw new AppError('serviceUnavailable', 'The web UI is not built on this server: run `npm run build:web`, then restart the server');
    };
    app.get('/', { schema: { hide: true } }, missing);
    app.get('/app', { schema: { hide: true } }, missing);
    app.get('/app/*', { schema: { hide: true } }, missing);
    return;
  }

  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: true,
    index: ['index.html'],
    // Revalidate everything (ETag / Last-Modified): the build does not promise hashed names.
    cacheControl: false,
    setHeaders: (reply: FastifyReply) => {
      reply.header('cache-control', 'no-cache');
    },
    serveDotFiles: false,
  });

  const index = (reply: FastifyReply) => reply.header('cache-control', 'no-cache').sendFile('index.html');
  app.get('/app', { schema: { hide: true } }, async (_request, reply) => index(reply));
  // A file of the build under /app/ is served as is; any other path is a client-side route.
  app.get<{ Params: { '*': string } }>('/app/*', { schema: { hide: true } }, async (request, reply) => {
    const wanted = path.resolve(root, 'app', request.params['*']);
    if (wanted.startsWith(root + path.sep)) {
      try {
        if (statSync(wanted).isFile()) return reply.header('cache-control', 'no-cache').sendFile(path.relative(root, wanted));
      } catch {
        // not a file of the build: a client-side route
      }
    }
    return index(reply);
  });
}
