import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../../services.ts';
import { AppError } from '../../errors.ts';
import {
  IssuedTokenView,
  PageQuery,
  PrincipalInput,
  PrincipalPatchInput,
  PrincipalView,
  TokenInput,
  TokenView,
  Uuid,
  listOf,
  problemResponses,
} from '../schemas.ts';
import { API, limitOf, pageView, principalView, tokenView } from '../views.ts';

const tags = ['principals'];
const security = [{ bearer: [] }];

export default async function principals(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { directory } = services;
  const IdParams = Type.Object({ id: Uuid });

  app.get(
    '/me',
    { schema: { tags, security, summary: 'The authenticated principal', response: { 200: PrincipalView, ...problemResponses(401, 404) } } },
    async (request) => {
      const caller = request.caller;
      if (caller.type !== 'principal') {
        throw new AppError('resourceNotFound', 'The bootstrap administrator token is not a principal');
      }
      return principalView(caller.principal);
    },
  );

  app.post(
    '/principals',
    {
      schema: {
        tags,
        security,
        summary: 'Create a user or machine principal with its memberships (admin)',
        body: PrincipalInput,
        response: { 201: PrincipalView, ...problemResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const principal = await directory.createPrincipal(request.caller, request.body);
      return reply.code(201).header('location', `${API}/principals/${principal.id}`).send(principalView(principal));
    },
  );

  app.get(
    '/principals',
    { schema: { tags, security, summary: 'List principals (admin)', querystring: PageQuery, response: { 200: listOf(PrincipalView), ...problemResponses(400, 401, 403) } } },
    async (request) => {
      const page = await directory.listPrincipals(request.caller, { cursor: request.query.cursor, limit: limitOf(request.query) });
      return pageView(page, principalView, `${API}/principals`, request.query);
    },
  );

  app.get(
    '/principals/:id',
    { schema: { tags, security, summary: 'One principal (admin or itself)', params: IdParams, response: { 200: PrincipalView, ...problemResponses(401, 404) } } },
    async (request) => principalView(await directory.getPrincipal(request.caller, request.params.id)),
  );

  app.patch(
    '/principals/:id',
    {
      schema: {
        tags,
        security,
        summary: 'Change memberships (replaced as a whole), capabilities, the OIDC subject, or deactivate (admin)',
        params: IdParams,
        body: PrincipalPatchInput,
        response: { 200: PrincipalView, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => principalView(await directory.updatePrincipal(request.caller, request.params.id, request.body)),
  );

  app.post(
    '/principals/:id/tokens',
    {
      schema: {
        tags,
        security,
        summary: 'Issue a bearer token; the secret is shown once (admin)',
        params: IdParams,
        body: Type.Optional(TokenInput),
        response: { 201: IssuedTokenView, ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const issued = await directory.issueToken(request.caller, request.params.id, request.body ?? {});
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ id: issued.id, token: issued.token, label: issued.label, expiresAt: issued.expiresAt?.toISOString() ?? null });
    },
  );

  app.get(
    '/principals/:id/tokens',
    {
      schema: {
        tags,
        security,
        summary: 'The principal’s tokens, without secrets (admin or itself)',
        params: IdParams,
        response: { 200: Type.Object({ items: Type.Array(TokenView) }), ...problemResponses(401, 404) },
      },
    },
    async (request) => ({ items: (await directory.listTokens(request.caller, request.params.id)).map(tokenView) }),
  );

  app.delete(
    '/principals/:id/tokens/:tokenId',
    {
      schema: {
        tags,
        security,
        summary: 'Revoke a token; it stops working at once (admin or itself)',
        params: Type.Object({ id: Uuid, tokenId: Uuid }),
        response: { 204: Type.Null(), ...problemResponses(401, 404) },
      },
    },
    async (request, reply) => {
      await directory.revokeToken(request.caller, request.params.id, request.params.tokenId);
      return reply.code(204).send(null);
    },
  );
}
