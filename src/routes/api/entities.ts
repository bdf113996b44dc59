import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../../services.ts';
import { EntityInput, EntityPatchInput, EntityView, MailboxInput, MailboxView, PageQuery, Slug, listOf, problemResponses } from '../schemas.ts';
import { API, entityView, limitOf, mailboxView, pageView } from '../views.ts';

const tags = ['directory'];
const security = [{ bearer: [] }];

export default async function entities(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { directory } = services;
  const IdParams = Type.Object({ id: Slug });

  app.post(
    '/entities',
    {
      schema: {
        tags,
        security,
        summary: 'Create an entity (admin)',
        body: EntityInput,
        response: { 201: EntityView, ...problemResponses(400, 401, 403, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const entity = await directory.createEntity(request.caller, request.body);
      return reply.code(201).header('location', `${API}/entities/${entity.id}`).send(entityView(entity));
    },
  );

  app.get(
    '/entities',
    { schema: { tags, security, summary: 'List entities', querystring: PageQuery, response: { 200: listOf(EntityView), ...problemResponses(400, 401) } } },
    async (request) => {
      const page = await directory.listEntities(request.caller, { cursor: request.query.cursor, limit: limitOf(request.query) });
      return pageView(page, entityView, `${API}/entities`, request.query);
    },
  );

  app.get(
    '/entities/:id',
    { schema: { tags, security, summary: 'One entity', params: IdParams, response: { 200: EntityView, ...problemResponses(401, 404) } } },
    async (request) => entityView(await directory.getEntity(request.caller, request.params.id)),
  );

  app.patch(
    '/entities/:id',
    {
      schema: {
        tags,
        security,
        summary: 'Change an entity: names, enterprise number, validity dates (admin)',
        params: IdParams,
        body: EntityPatchInput,
        response: { 200: EntityView, ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => entityView(await directory.updateEntity(request.caller, request.params.id, request.body)),
  );

  app.post(
    '/entities/:id/mailboxes',
    {
      schema: {
        tags,
        security,
        summary: 'Create a mailbox name@entity (admin)',
        params: IdParams,
        body: MailboxInput,
        response: { 201: MailboxView, ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const mailbox = await directory.createMailbox(request.caller, request.params.id, request.body);
      return reply.code(201).header('location', `${API}/mailboxes/${mailbox.address}`).send(mailboxView(mailbox));
    },
  );
}
