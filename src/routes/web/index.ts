/**
 * The web door's server side: /auth (sign-in, sessions, sign-out) and the
 * static UI at `/`. The API's session-cookie authentication lives in
 * session-cookie.ts, called from the /api/v1 hook.
 */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.ts';
import auth from './auth.ts';
import ui from './ui.ts';

export default async function web(app: FastifyInstance, opts: { services: Services }): Promise<void> {
  await app.register(auth, { ...opts, prefix: '/auth' });
  await app.register(ui, opts);
}
