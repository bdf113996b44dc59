import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../../services.ts';
import { ReceiptView, Uuid, problemResponses } from '../schemas.ts';
import { receiptView } from '../views.ts';

const tags = ['receipts'];
const security = [{ bearer: [] }];

/** Signed receipts: the exact signed bytes and the detached CMS signature, for the sender and the concerned recipient. */
export default async function receipts(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const IdParams = Type.Object({ id: Uuid });

  app.get(
    '/receipts/:id',
    { schema: { tags, security, summary: 'A receipt with its evidence', params: IdParams, response: { 200: ReceiptView, ...problemResponses(401, 404) } } },
    async (request) => {
      const { evidence } = await services.envelopes.getReceipt(request.caller, request.params.id);
      return { ...receiptView(evidence), evidence: JSON.parse(evidence.canonical.toString('utf8')) as Record<string, unknown> };
    },
  );

  app.get(
    '/receipts/:id/evidence.json',
    { schema: { tags, security, summary: 'The exact signed bytes (RFC 8785 canonical JSON)', params: IdParams, response: problemResponses(401, 404) } },
    async (request, reply) => {
      const { evidence } = await services.envelopes.getReceipt(request.caller, request.params.id);
      return reply
        .type('application/json')
        .header('content-disposition', `attachment; filename="evidence-${evidence.id}.json"`)
        .send(evidence.canonical);
    },
  );

  app.get(
    '/receipts/:id/signature.p7s',
    { schema: { tags, security, summary: 'Detached CMS SignedData over evidence.json (DER)', params: IdParams, response: problemResponses(401, 404) } },
    async (request, reply) => {
      const { evidence } = await services.envelopes.getReceipt(request.caller, request.params.id);
      return reply
        .type('application/pkcs7-signature')
        .header('content-disposition', `attachment; filename="signature-${evidence.id}.p7s"`)
        .send(evidence.signature);
    },
  );
}
