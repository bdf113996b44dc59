import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError, ValidationError } from '../../errors.ts';
import type { FileRecord } from '../../domain/ports.ts';
import type { Services } from '../../services.ts';
import { etagMatches, parseRange } from '../http-range.ts';
import { EnvelopeInput, EnvelopeSummaryView, EnvelopeView, FileView, MailboxAddress, Uuid, listOf, problemResponses } from '../schemas.ts';
import { API, envelopeSummaryView, envelopeView, fileView, listedEnvelope, nextLink, receiptRef } from '../views.ts';

const tags = ['envelopes'];
const security = [{ bearer: [] }];

/** Content-Disposition with an RFC 6266/8187 filename (the name is the client's, so it is encoded, never trusted). */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export default async function envelopes(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const domain = services.envelopes;
  const IdParams = Type.Object({ id: Uuid });

  await app.register(multipart, {
    limits: { fileSize: services.config.maxUploadBytes, files: 20, fields: 10, fieldSize: 1024, parts: 40 },
    throwFileSizeLimit: true,
  });

  app.post(
    '/envelopes',
    {
      schema: {
        tags,
        security,
        summary: 'Create a draft envelope',
        body: EnvelopeInput,
        response: { 201: EnvelopeView, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const envelope = await domain.createDraft(request.caller, request.body);
      return reply.code(201).header('location', `${API}/envelopes/${envelope.id}`).send(envelopeView(envelope));
    },
  );

  app.get(
    '/envelopes/:id',
    { schema: { tags, security, summary: 'The envelope as the caller may see it', params: IdParams, response: { 200: EnvelopeView, ...problemResponses(401, 404) } } },
    async (request) => {
      const envelope = await domain.getEnvelope(request.caller, request.params.id);
      return envelopeView(envelope, await domain.listReceipts(request.caller, envelope));
    },
  );

  app.delete(
    '/envelopes/:id',
    { schema: { tags, security, summary: 'Delete a draft and its files', params: IdParams, response: { 204: Type.Null(), ...problemResponses(401, 403, 404, 409) } } },
    async (request, reply) => {
      await domain.deleteDraft(request.caller, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/envelopes/:id/submit',
    {
      schema: {
        tags,
        security,
        summary: 'Check and submit a draft: it is delivered to every recipient mailbox',
        params: IdParams,
        response: { 200: EnvelopeView, ...problemResponses(401, 403, 404, 409, 422) },
      },
    },
    async (request) => {
      const envelope = await domain.submit(request.caller, request.params.id);
      const receipts = await domain.listReceipts(request.caller, envelope);
      const acceptance = receipts.find((r) => r.eventType === 'SubmissionAcceptance');
      return { ...envelopeView(envelope, receipts), ...(acceptance === undefined ? {} : { receipt: receiptRef(acceptance) }) };
    },
  );

  app.post(
    '/envelopes/:id/acknowledge',
    {
      schema: {
        tags,
        security,
        summary: 'A recipient confirms receipt',
        params: IdParams,
        // No body at all is fine (`curl -X POST`): Fastify validates an absent body as null.
        body: Type.Union([Type.Object({ mailbox: Type.Optional(MailboxAddress) }, { additionalProperties: false }), Type.Null()]),
        response: { 200: EnvelopeView, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const envelope = await domain.acknowledge(request.caller, request.params.id, request.body?.mailbox);
      return envelopeView(envelope, await domain.listReceipts(request.caller, envelope));
    },
  );

  app.get(
    '/mailboxes/:address/envelopes',
    {
      schema: {
        tags,
        security,
        summary: 'Inbox (direction=in) or outbox (direction=out), newest first',
        params: Type.Object({ address: MailboxAddress }),
        querystring: Type.Object(
          {
            direction: Type.Optional(Type.Union([Type.Literal('in'), Type.Literal('out')])),
            type: Type.Optional(Type.String({ maxLength: 100 })),
            status: Type.Optional(Type.String({ maxLength: 20 })),
            cursor: Type.Optional(Type.String({ maxLength: 512 })),
            limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: listOf(EnvelopeSummaryView), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { address } = request.params;
      const query = request.query;
      const page = await domain.listMailboxJson(
        request.caller,
        address,
        {
          direction: query.direction ?? 'in',
          ...(query.type === undefined ? {} : { type: query.type }),
          ...(query.status === undefined ? {} : { status: query.status }),
          ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
          ...(query.limit === undefined ? {} : { limit: Number(query.limit) }),
        },
        `${API}/envelopes/`,
      );
      // The items come from PostgreSQL already written as the schema's JSON (one text per item): the
      // page is put together here instead of parsing and serialising 50 objects again, which was a
      // third of a listing's CPU (issue #4). test/db/envelope-listing.test.ts holds it to the schema
      // and to the same page built from the domain's records.
      const next = page.nextCursor === undefined ? '' : `,"next":${JSON.stringify(nextLink(`${API}/mailboxes/${address}/envelopes`, query, page.nextCursor))}`;
      // A string is sent as it is (the schema's serialiser applies to objects only).
      return reply.type('application/json; charset=utf-8').send(`{"items":[${page.items.join(',')}]${next}}` as never);
    },
  );

  app.get(
    '/mailboxes/:address/deadlines',
    {
      schema: {
        tags,
        security,
        summary: 'Open tutelle acts sent or received by the mailbox, by due date (overdue flagged)',
        params: Type.Object({ address: MailboxAddress }),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({ envelope: EnvelopeSummaryView, deadline: Type.String(), overdue: Type.Boolean(), daysLeft: Type.Integer() }),
            ),
          }),
          ...problemResponses(401, 403, 404),
        },
      },
    },
    async (request) => ({
      items: (await domain.deadlines(request.caller, request.params.address)).map((d) => ({
        envelope: envelopeSummaryView(listedEnvelope(d.envelope)),
        deadline: d.envelope.deadline!,
        overdue: d.overdue,
        daysLeft: d.daysLeft,
      })),
    }),
  );

  app.get(
    '/envelopes/:id/files/:fileId',
    {
      schema: {
        tags,
        security,
        summary: 'The stored (encrypted) bytes, with Range and ETag; a recipient’s first download records the retrieval',
        params: Type.Object({ id: Uuid, fileId: Uuid }),
        response: problemResponses(401, 403, 404, 409, 410, 416),
      },
    },
    async (request, reply) => {
      const download = await domain.prepareDownload(request.caller, request.params.id, request.params.fileId);
      const { file } = download;
      const etag = `"${file.sha256}"`;
      reply.header('etag', etag).header('accept-ranges', 'bytes').header('cache-control', 'private, no-cache');
      if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
      const range = parseRange(request.headers.range, file.size);
      if (range.kind === 'unsatisfiable') {
        reply.header('content-range', `bytes */${file.size}`);
        throw new AppError('rangeNotSatisfiable', `The file has ${file.size} bytes`);
      }
      reply.type(file.mediaType).header('content-disposition', contentDisposition(file.name));
      // HEAD answers the headers without opening the file: it reads no bytes, so it records no retrieval.
      // (An empty stream, not undefined: Fastify's HEAD handler would reset Content-Length to 0.)
      const head = request.method === 'HEAD';
      if (range.kind === 'range') {
        reply
          .code(206)
          .header('content-range', `bytes ${range.start}-${range.end}/${file.size}`)
          .header('content-length', range.end - range.start + 1);
        return reply.send(head ? Readable.from([]) : await download.open({ start: range.start, end: range.end }));
      }
      reply.header('content-length', file.size);
      return reply.send(head ? Readable.from([]) : await download.open());
    },
  );

  app.delete(
    '/envelopes/:id/files/:fileId',
    {
      schema: {
        tags,
        security,
        summary: 'Remove a file from a draft (e.g. to upload it again encrypted for rotated keys)',
        params: Type.Object({ id: Uuid, fileId: Uuid }),
        response: { 204: Type.Null(), ...problemResponses(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await domain.removeFile(request.caller, request.params.id, request.params.fileId);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/envelopes/:id/files',
    {
      schema: {
        tags,
        security,
        summary: 'Simple upload (multipart/form-data; fields role and plaintextSha256 before the file part)',
        params: IdParams,
        consumes: ['multipart/form-data'],
        response: { 201: Type.Object({ files: Type.Array(FileView) }), ...problemResponses(400, 401, 403, 404, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) throw new AppError('unsupportedMediaType', 'Send the file as multipart/form-data');
      const fields: Record<string, string> = {};
      const stored: FileRecord[] = [];
      try {
        for await (const part of request.parts()) {
          if (part.type === 'field') {
            if (part.fieldname !== 'role' && part.fieldname !== 'plaintextSha256') {
              throw new ValidationError([{ in: 'body', name: part.fieldname, detail: 'Unknown form field (allowed: role, plaintextSha256, file)' }]);
            }
            fields[part.fieldname] = String(part.value);
            continue;
          }
          const file = await domain.uploadFile(
            request.caller,
            {
              envelopeId: request.params.id,
              filename: part.filename,
              mediaType: part.mimetype,
              role: fields.role ?? null,
              plaintextSha256: fields.plaintextSha256 ?? null,
            },
            part.file,
          );
          stored.push(file);
          delete fields.role;
          delete fields.plaintextSha256;
        }
        if (stored.length === 0) throw new ValidationError([{ in: 'body', name: 'file', detail: 'No file part in the form' }], 'No file was sent');
      } catch (err) {
        // A refused form keeps none of its files: a problem answer means nothing was stored.
        for (const file of stored) await domain.abandonUpload(request.caller, file);
        throw err;
      }
      return reply.code(201).send({ files: stored.map(fileView) });
    },
  );
}
