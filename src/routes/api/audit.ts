import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createReceiptSigner } from '../../crypto/cms.ts';
import { checkpoint, checkpointContent, findCheckpoint, latestCheckpoint, verifyAuditChain, type AuditCheckpoint } from '../../db/audit.ts';
import { ForbiddenError, NotFoundError } from '../../errors.ts';
import { callerId, callerIsAdmin } from '../../domain/model.ts';
import { EVIDENCE_ISSUER, type Services } from '../../services.ts';
import { problemResponses } from '../schemas.ts';
import { API } from '../views.ts';

const tags = ['operations'];
const security = [{ bearer: [] }];
const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const Head = Type.Object({
  type: Type.String(),
  issuer: Type.String(),
  seq: Type.Integer({ description: 'the last audit entry when the checkpoint was made (0: none)' }),
  hash: nullable(Type.String()),
  time: Type.String({ format: 'date-time' }),
});

const CheckpointView = Type.Object({
  seq: Type.Integer({ description: 'the audit.checkpoint entry itself' }),
  at: Type.String({ format: 'date-time' }),
  head: Head,
  content: Type.String({ description: 'the exact signed bytes: RFC 8785 canonical JSON of head (write it without a final newline)' }),
  signature: Type.String({ description: 'detached CMS SignedData over content, DER, base64 (openssl cms -verify -binary -inform DER -CAfile ca.pem)' }),
  href: Type.String(),
});

const CheckpointVerdictView = Type.Object({
  source: Type.String(),
  seq: Type.Integer(),
  head: Type.Object({ seq: Type.Integer(), hash: nullable(Type.String()), time: Type.String() }),
  valid: Type.Boolean(),
  signatureChecked: Type.Boolean(),
  signer: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
});

const checkpointView = (cp: AuditCheckpoint) => ({
  seq: cp.seq,
  at: cp.at.toISOString(),
  head: cp.head,
  content: checkpointContent(cp.head).toString('utf8'),
  signature: cp.signature,
  href: `${API}/audit/checkpoints/${cp.seq}`,
});

function requireAdmin(caller: Parameters<typeof callerIsAdmin>[0], what: string): void {
  if (!callerIsAdmin(caller)) throw new ForbiddenError(`Only an administrator may ${what}`);
}

export default async function audit(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = services.database.db;
  let signer: ReturnType<typeof createReceiptSigner> | undefined;

  app.get(
    '/audit/verify',
    {
      schema: {
        tags,
        security,
        summary: 'Recompute the audit hash chain, check the latest signed checkpoint, and report the first broken link (admin)',
        response: {
          200: Type.Object({
            valid: Type.Boolean(),
            rows: Type.Integer(),
            head: Type.Union([Type.String(), Type.Null()]),
            firstBroken: Type.Optional(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
            checkpoints: Type.Optional(Type.Array(CheckpointVerdictView)),
          }),
          ...problemResponses(401, 403),
        },
      },
    },
    async (request) => {
      requireAdmin(request.caller, 'verify the audit chain');
      return verifyAuditChain(db, { caCertPem: services.pki.caCertPem });
    },
  );

  app.post(
    '/audit/checkpoints',
    {
      schema: {
        tags,
        security,
        summary: 'Sign the current head of the audit chain and append it as an audit.checkpoint entry (admin)',
        response: { 201: CheckpointView, ...problemResponses(401, 403) },
      },
    },
    async (request, reply) => {
      requireAdmin(request.caller, 'make audit checkpoints');
      signer ??= createReceiptSigner(services.pki);
      const { checkpoint: made } = await checkpoint(db, signer, {
        issuer: EVIDENCE_ISSUER,
        at: services.clock.now(),
        actor: callerId(request.caller),
        door: request.caller.via?.door ?? 'http',
        traceId: request.id,
      });
      const view = checkpointView(made);
      return reply.code(201).header('location', view.href).send(view);
    },
  );

  app.get(
    '/audit/checkpoints/latest',
    {
      schema: {
        tags,
        security,
        summary: 'The latest signed audit checkpoint; keep a copy outside the platform to detect a truncated chain later (admin)',
        response: { 200: CheckpointView, ...problemResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      requireAdmin(request.caller, 'read audit checkpoints');
      const latest = await latestCheckpoint(db);
      if (latest === null) throw new NotFoundError('No audit checkpoint has been made yet');
      return reply.header('cache-control', 'no-store').send(checkpointView(latest));
    },
  );

  app.get(
    '/audit/checkpoints/:seq',
    {
      schema: {
        tags,
        security,
        summary: 'One signed audit checkpoint, by the sequence number of its entry (admin)',
        params: Type.Object({ seq: Type.String({ pattern: '^[1-9][0-9]{0,15}$' }) }),
        response: { 200: CheckpointView, ...problemResponses(401, 403, 404) },
      },
    },
    async (request) => {
      requireAdmin(request.caller, 'read audit checkpoints');
      const found = await findCheckpoint(db, Number(request.params.seq));
      if (found === null) throw new NotFoundError(`No audit checkpoint #${request.params.seq}`);
      return checkpointView(found);
    },
  );
}
