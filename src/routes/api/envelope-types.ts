import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NotFoundError } from '../../errors.ts';
import { describeEnvelopeType, findEnvelopeType, listEnvelopeTypes } from '../../domain/envelope-types/index.ts';
import type { Services } from '../../services.ts';
import { problemResponses } from '../schemas.ts';

const tags = ['envelope types'];
const security = [{ bearer: [] }];
const Described = Type.Object({}, { additionalProperties: true, description: 'A type version: rules, FR/NL labels and its JSON Schema' });

/** The envelope types with their JSON Schemas: forms, SDKs and validation derive from the same definition. */
export default async function envelopeTypes(fastify: FastifyInstance, _opts: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/envelope-types',
    { schema: { tags, security, summary: 'Every envelope type (latest version)', response: { 200: Type.Object({ items: Type.Array(Described) }), ...problemResponses(401) } } },
    async () => ({ items: listEnvelopeTypes().map(describeEnvelopeType) }),
  );
  app.get(
    '/envelope-types/:type',
    {
      schema: {
        tags,
        security,
        summary: 'One envelope type (latest version, or ?version=major.minor)',
        params: Type.Object({ type: Type.String({ pattern: '^[a-z]+\\.[a-zA-Z]+$', maxLength: 100 }) }),
        querystring: Type.Object({ version: Type.Optional(Type.String({ pattern: '^\\d+\\.\\d+$' })) }, { additionalProperties: false }),
        response: { 200: Described, ...problemResponses(401, 404) },
      },
    },
    async (request) => {
      const type = findEnvelopeType(request.params.type, request.query.version);
      if (type === undefined) throw new NotFoundError(`No envelope type ${request.params.type}${request.query.version ? ` ${request.query.version}` : ''}`);
      return describeEnvelopeType(type);
    },
  );
}
