import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../services.ts';

const CHECK_TIMEOUT_MS = 3000;

async function check(probe: () => Promise<void>): Promise<'UP' | 'DOWN'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return 'UP';
  } catch {
    return 'DOWN';
  } finally {
    clearTimeout(timer);
  }
}

const Status = Type.Union([Type.Literal('UP'), Type.Literal('DOWN')]);
const HealthView = Type.Object({
  status: Status,
  details: Type.Object({
    database: Type.Object({ status: Status, kind: Type.String() }),
    store: Type.Object({ status: Status, kind: Type.String() }),
  }),
});

/** Liveness and readiness (Belgif health format): 503 when the database or the store is unreachable. */
export default async function health(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/health',
    { schema: { tags: ['operations'], summary: 'Liveness and readiness', response: { 200: HealthView, 503: HealthView } } },
    async (_request, reply) => {
      const [database, store] = await Promise.all([check(() => services.database.ping()), check(() => services.blobStore.ping())]);
      const status = database === 'UP' && store === 'UP' ? 'UP' : 'DOWN';
      return reply
        .code(status === 'UP' ? 200 : 503)
        .header('cache-control', 'no-store')
        .send({
          status,
          details: {
            database: { status: database, kind: services.database.kind },
            store: { status: store, kind: services.blobStore.kind },
          },
        });
    },
  );
}
