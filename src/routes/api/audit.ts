import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ForbiddenError } from '../../errors.ts';
import { callerIsAdmin } from '../../domain/model.ts';
import type { Services } from '../../services.ts';
import { problemResponses } from '../schemas.ts';

export default async function audit(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/audit/verify',
    {
      schema: {
        tags: ['operations'],
        security: [{ bearer: [] }],
        summary: 'Recompute the audit hash chain and report the first broken link (admin)',
        response: {
          200: Type.Object({
            valid: Type.Boolean(),
            rows: Type.Integer(),
            head: Type.Union([Type.String(), Type.Null()]),
            firstBroken: Type.Optional(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
          }),
          ...problemResponses(401, 403),
        },
      },
    },
    async (request) => {
      if (!callerIsAdmin(request.caller)) throw new ForbiddenError('Only an administrator may verify the audit chain');
      return services.auditLog.verify();
    },
  );
}
