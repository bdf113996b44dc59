import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../../services.ts';
import { MailboxAddress, MailboxView, PageQuery, Slug, listOf, problemResponses } from '../schemas.ts';
import { API, limitOf, mailboxView, pageView } from '../views.ts';

const tags = ['directory'];
const security = [{ bearer: [] }];

export default async function mailboxes(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { directory } = services;

  app.get(
    '/mailboxes',
    {
      schema: {
        tags,
        security,
        summary: 'The mailboxes the caller belongs to, with its roles (administrators: all)',
        querystring: Type.Object({ ...PageQuery.properties, entity: Type.Optional(Slug) }, { additionalProperties: false }),
        response: { 200: listOf(MailboxView), ...problemResponses(400, 401) },
      },
    },
    async (request) => {
      const { cursor, entity } = request.query;
      const page = await directory.listMailboxes(request.caller, { cursor, limit: limitOf(request.query), entity });
      return pageView(page, mailboxView, `${API}/mailboxes`, request.query);
    },
  );

  app.get(
    '/mailboxes/:address',
    {
      schema: {
        tags,
        security,
        summary: 'One mailbox (members and administrators)',
        params: Type.Object({ address: MailboxAddress }),
        response: { 200: MailboxView, ...problemResponses(401, 404) },
      },
    },
    async (request) => mailboxView(await directory.getMailbox(request.caller, request.params.address)),
  );
}
