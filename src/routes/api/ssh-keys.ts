/**
 * SSH public keys of principals, for the SFTP door (DESIGN §5): register
 * (admin), list (admin or itself), revoke (admin or itself). The SFTP user
 * name is the principal's name; the rules live in domain/ssh-keys.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SshKeyInfo } from '../../domain/ssh-keys.ts';
import type { Services } from '../../services.ts';
import { Uuid, problemResponses } from '../schemas.ts';
import { API } from '../views.ts';

const tags = ['principals'];
const security = [{ bearer: [] }];
const DateTime = Type.String({ format: 'date-time' });
const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const SshKeyInput = Type.Object(
  {
    publicKey: Type.String({ minLength: 1, maxLength: 16384, description: 'one OpenSSH public key line: ssh-ed25519 AAAA… comment' }),
    label: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 100, description: 'defaults to the key comment' }))),
  },
  { additionalProperties: false },
);

const SshKeyView = Type.Object({
  id: Type.String(),
  algorithm: Type.String(),
  publicKey: Type.String(),
  fingerprint: Type.String({ description: 'SHA256:<base64>, as ssh-keygen -l prints it' }),
  label: nullable(Type.String()),
  createdAt: DateTime,
  revokedAt: nullable(DateTime),
  lastUsedAt: nullable(DateTime),
  href: Type.String(),
});

const hrefOf = (k: SshKeyInfo) => `${API}/principals/${k.principalId}/ssh-keys/${k.id}`;

const view = (k: SshKeyInfo) => ({
  id: k.id,
  algorithm: k.algorithm,
  publicKey: k.publicKey,
  fingerprint: k.fingerprint,
  label: k.label,
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt?.toISOString() ?? null,
  lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  href: hrefOf(k),
});

export default async function sshKeys(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const IdParams = Type.Object({ id: Uuid });

  app.post(
    '/principals/:id/ssh-keys',
    {
      schema: {
        tags,
        security,
        summary: 'Register an SSH public key for the SFTP door; the SFTP user name is the principal name (admin)',
        params: IdParams,
        body: SshKeyInput,
        response: { 201: SshKeyView, ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const key = await services.sshKeys.register(request.caller, request.params.id, request.body);
      return reply.code(201).header('location', hrefOf(key)).send(view(key));
    },
  );

  app.get(
    '/principals/:id/ssh-keys',
    {
      schema: {
        tags,
        security,
        summary: 'The principal’s SSH keys, with their state (admin or itself)',
        params: IdParams,
        response: { 200: Type.Object({ items: Type.Array(SshKeyView) }), ...problemResponses(401, 404) },
      },
    },
    async (request) => ({ items: (await services.sshKeys.list(request.caller, request.params.id)).map(view) }),
  );

  app.delete(
    '/principals/:id/ssh-keys/:keyId',
    {
      schema: {
        tags,
        security,
        summary: 'Revoke an SSH key; new SFTP logins with it are refused at once (admin or itself)',
        params: Type.Object({ id: Uuid, keyId: Uuid }),
        response: { 204: Type.Null(), ...problemResponses(401, 404) },
      },
    },
    async (request, reply) => {
      await services.sshKeys.revoke(request.caller, request.params.id, request.params.keyId);
      return reply.code(204).send(null);
    },
  );
}
