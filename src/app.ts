/**
 * The root Fastify application: external plugins (security headers, OpenAPI),
 * then the app's own (trace id, problem handler), then the routes. It is
 * built from already-composed services (see services.ts), so tests and
 * main.ts assemble the same app.
 */
import { randomUUID } from 'node:crypto';
import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import problemHandler from './plugins/problem-handler.ts';
import { chainPem } from './crypto/pki.ts';
import api from './routes/api/index.ts';
import health from './routes/health.ts';
import web from './routes/web/index.ts';
import { Problem } from './routes/schemas.ts';
import type { Services } from './services.ts';

export interface BuildAppOptions {
  services: Services;
  /** pino options, or false for no logs (tests). */
  logger?: FastifyServerOptions['logger'];
  https?: import('node:https').ServerOptions;
}

/** A caller-supplied BelGov-Trace-Id is kept when it looks like an id; otherwise one is made. */
const TRACE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const TRACE_HEADER = 'belgov-trace-id';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["upload-metadata"]',
  'res.headers["set-cookie"]',
  '*.token',
  '*.passphrase',
  '*.secret',
];

export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { services } = options;
  const { config } = services;
  const logger: FastifyServerOptions['logger'] =
    options.logger ?? { level: config.logLevel, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  const serverOptions: FastifyServerOptions & { https?: import('node:https').ServerOptions } = {
    logger,
    ...(options.https === undefined ? {} : { https: options.https }),
    bodyLimit: config.bodyLimit,
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers[TRACE_HEADER];
      return typeof incoming === 'string' && TRACE_ID.test(incoming) ? incoming : randomUUID();
    },
    ajv: {
      // Unknown properties are errors, not silently dropped; no type coercion of
      // JSON bodies ("12" is not 12); report every offending field at once.
      customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false },
    },
    return503OnClosing: true,
  };
  // The https variant only changes the raw server type, which the app never touches.
  const app = Fastify(serverOptions) as unknown as FastifyInstance;

  app.addSchema(Problem);
  app.addHook('onRequest', async (request, reply) => {
    reply.header(TRACE_HEADER, request.id);
  });

  await app.register(helmet, {
    // The API serves JSON; the /docs viewer needs its own inline styles.
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        upgradeInsecureRequests: config.tls === undefined ? null : [],
      },
    },
    strictTransportSecurity: config.tls !== undefined,
  });
  await app.register(problemHandler);
  // Cookie parsing for the web door's session (bx_session), read by /auth and the /api/v1 hook; no signing secret:
  // the session cookie is a random secret checked against its row, the sign-in cookie is signed by routes/web.
  await app.register(cookie);
  app.decorateRequest('webSession', null);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'bxchange API',
        version: '1.0.0',
        description:
          'Secure file exchange between the Brussels-Capital Region and its local authorities. Errors are application/problem+json (RFC 9457).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, logLevel: 'warn' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(health, { services });
  // Public: an auditor needs the CA to verify a receipt without an account.
  app.get(
    '/api/v1/pki/ca.pem',
    { schema: { tags: ['receipts'], summary: 'The CA certificate that verifies receipts (openssl cms -verify -CAfile)' } },
    async (_request, reply) => reply.type('application/x-pem-file').header('cache-control', 'public, max-age=3600').send(chainPem(services.pki)),
  );
  await app.register(api, { prefix: '/api/v1', services });
  await app.register(web, { services });
  return app;
}
