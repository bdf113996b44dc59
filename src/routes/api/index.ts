/**
 * /api/v1: every route below needs a caller. Authentication runs in this
 * encapsulated plugin's onRequest hook, before any body is read, so an
 * anonymous request is refused without reading its payload.
 *
 * Three credentials: the web session cookie (`bx_session`, see
 * routes/web/session-cookie.ts) when there is no Authorization header; a bearer token (`Authorization: Bearer …`), or, when the
 * server runs HTTPS with `TLS_CLIENT_CA` and the request carries no
 * Authorization header, the TLS client certificate of a machine principal.
 * The TLS layer requests a certificate but accepts the handshake without a
 * valid one (so that bearer clients need none); here a certificate counts
 * only if the socket says it verified against the client CA
 * (`socket.authorized`), and it must then be registered, by its SHA-256
 * fingerprint, as an active credential of an active machine principal.
 */
import { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { certificateFingerprint } from '../../crypto/pki.ts';
import { AppError } from '../../errors.ts';
import type { Caller } from '../../domain/model.ts';
import type { Services } from '../../services.ts';
import { authenticateSession, sessionCookieOf } from '../web/session-cookie.ts';
import entities from './entities.ts';
import envelopes from './envelopes.ts';
import mailboxes from './mailboxes.ts';
import principals from './principals.ts';
import uploads from './uploads.ts';
import audit from './audit.ts';
import receipts from './receipts.ts';
import exportsRoutes from './exports.ts';
import pki from './pki.ts';
import envelopeTypes from './envelope-types.ts';
import keys from './keys.ts';
import sshKeys from './ssh-keys.ts';

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

/**
 * The caller of a request without an Authorization header on a connection
 * that may carry a client certificate (mutual TLS).
 */
async function authenticateClientCertificate(request: FastifyRequest, directory: Services['directory']): Promise<Caller> {
  const socket = request.raw.socket;
  const peer = socket instanceof TLSSocket ? socket.getPeerCertificate() : undefined;
  if (peer === undefined || peer === null || peer.raw === undefined) {
    throw new AppError('noAccessToken', 'This request needs an access token (Authorization: Bearer …) or a client certificate');
  }
  if (!(socket as TLSSocket).authorized) {
    const reason = (socket as TLSSocket).authorizationError;
    throw new AppError('invalidAccessToken', `The client certificate is not trusted by this server${reason ? ` (${String(reason)})` : ''}`);
  }
  return directory.authenticateClientCertificate(certificateFingerprint(peer.raw));
}

export default async function api(app: FastifyInstance, opts: { services: Services }): Promise<void> {
  const { directory, sessions, config } = opts.services;
  const clientCertificates = opts.services.config.tls?.clientCaFile !== undefined;
  app.decorateRequest('caller', null as never);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    // The browser's session cookie counts only without an Authorization header (a bearer token always wins);
    // state-changing requests with it need the session's X-CSRF-Token (see routes/web/session-cookie.ts).
    const session = header === undefined ? sessionCookieOf(request) : undefined;
    if (session !== undefined) {
      request.caller = await authenticateSession(request, sessions, config, session);
      return;
    }
    const caller =
      header === undefined && clientCertificates
        ? await authenticateClientCertificate(request, directory)
        : await directory.authenticate(bearerToken(header));
    caller.via = { door: request.url.startsWith('/api/v1/uploads') ? 'tus' : 'http', traceId: request.id };
    request.caller = caller;
  });
  const services = { services: opts.services };
  await app.register(entities, services);
  await app.register(mailboxes, services);
  await app.register(principals, services);
  await app.register(pki, services);
  await app.register(envelopes, services);
  await app.register(uploads, { ...services, prefix: '/uploads' });
  await app.register(audit, services);
  await app.register(receipts, services);
  await app.register(exportsRoutes, services);
  await app.register(envelopeTypes, services);
  await app.register(keys, services);
  await app.register(sshKeys, services);
}
