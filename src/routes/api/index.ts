/**
 * /api/v1: every route below needs a caller. Authentication runs in this
 * encapsulated plugin's onRequest hook, before any body is read, so an
 * anonymous request is refused without reading its payload.
 */
import type { FastifyInstance } from 'fastify';
import type { Caller } from '../../domain/model.ts';
import type { Services } from '../../services.ts';
import entities from './entities.ts';
import envelopes from './envelopes.ts';
import mailboxes from './mailboxes.ts';
import principals from './principals.ts';
import uploads from './uploads.ts';
import audit from './audit.ts';
import receipts from './receipts.ts';

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header);
  return match ? match[1] : '';
}

export default async function api(app: FastifyInstance, opts: { services: Services }): Promise<void> {
  const { directory } = opts.services;
  app.decorateRequest('caller', null as never);
  app.addHook('onRequest', async (request) => {
    const caller = await directory.authenticate(bearerToken(request.headers.authorization));
    caller.via = { door: request.url.startsWith('/api/v1/uploads') ? 'tus' : 'http', traceId: request.id };
    request.caller = caller;
  });
  const services = { services: opts.services };
  await app.register(entities, services);
  await app.register(mailboxes, services);
  await app.register(principals, services);
  await app.register(envelopes, services);
  await app.register(uploads, { ...services, prefix: '/uploads' });
  await app.register(audit, services);
  await app.register(receipts, services);
}
