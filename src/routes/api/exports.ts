/**
 * The datawarehouse feed's HTTP door (DESIGN §5). The rules (who may read,
 * what a record holds, the cursor that never skips) live in domain/exports.ts;
 * this file only negotiates the format and streams.
 *
 * Contract of `GET /api/v1/exports/envelopes?cursor=&limit=` (`export` capability; 401 without a token, 403 without the capability):
 * - Format: `Accept: text/csv` gives CSV (`text/csv; charset=utf-8; header=present`, RFC 4180: a header row,
 *   CRLF line ends, fields holding `,` `"` CR or LF quoted with `"` doubled; the nested `metadata`, `computed`,
 *   `recipients` and `files` are JSON texts in their cell, empty cells are null). Anything else gives NDJSON
 *   (`application/x-ndjson`): one JSON envelope per line, `\n`-terminated, and nothing else in the body.
 * - Position: the response header `Link: </api/v1/exports/envelopes?cursor=<next>[&limit=<limit>]>; rel="next"`
 *   is always present and is where to continue from (the cursor is opaque; without new rows it is the cursor
 *   you sent, or absent when nothing was ever served). `Bxchange-Feed-More: true` says more rows were already
 *   available (ask again at once); `false` says you are caught up (poll later from the same link).
 *   Store the next cursor only after reading the whole body: a body cut short (a broken stream) means the
 *   response must be asked again from the previous cursor.
 * - Order and repetition: envelopes come in change order; an envelope that changed after it was served comes
 *   again with its new state: upsert by `id`, the later record winning. A late-committing transaction is never
 *   skipped (the feed stays below the oldest running transaction).
 * - `limit`: 1-10000 envelopes per response (default 1000).
 * - Counts-only types (decoration.nomination) never appear here: see `GET /api/v1/exports/counts`, the
 *   number of submitted envelopes per type and Europe/Brussels month of submission (JSON `{items:[{type,
 *   exportFeed, month, envelopes}]}`, or CSV with `Accept: text/csv`).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ExportedEnvelope, MonthlyCount } from '../../domain/exports.ts';
import type { Services } from '../../services.ts';
import { problemResponses } from '../schemas.ts';
import { API } from '../views.ts';

const tags = ['exports'];
const StreamedText = Type.Unsafe<Readable>({ type: 'string' });
const security = [{ bearer: [] }];

export const NDJSON = 'application/x-ndjson';
export const CSV = 'text/csv; charset=utf-8; header=present';
export const MORE_HEADER = 'bxchange-feed-more';

/** Whether the client prefers text/csv over NDJSON (RFC 9110 §12.5.1 quality values; NDJSON wins ties). */
export function wantsCsv(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '') return false;
  let csv = 0;
  let ndjson = 0;
  for (const range of accept.split(',')) {
    const [mediaRange = '', ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!Number.isFinite(q)) continue;
    if (mediaRange === 'text/csv' || mediaRange === 'text/*') csv = Math.max(csv, q);
    if (mediaRange === 'application/x-ndjson' || mediaRange === 'application/*' || mediaRange === '*/*') ndjson = Math.max(ndjson, q);
  }
  return csv > ndjson;
}

/** One RFC 4180 field. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const csvRow = (fields: unknown[]) => `${fields.map(csvField).join(',')}\r\n`;

export const FEED_CSV_COLUMNS = [
  'id',
  'type',
  'typeVersion',
  'from',
  'status',
  'inReplyTo',
  'createdAt',
  'submittedAt',
  'deadline',
  'retainUntil',
  'purgedAt',
  'metadata',
  'computed',
  'recipients',
  'files',
] as const satisfies readonly (keyof ExportedEnvelope)[];

const COUNT_CSV_COLUMNS = ['type', 'exportFeed', 'month', 'envelopes'] as const satisfies readonly (keyof MonthlyCount)[];

async function* ndjsonLines(envelopes: AsyncIterable<ExportedEnvelope>): AsyncGenerator<string> {
  for await (const envelope of envelopes) yield `${JSON.stringify(envelope)}\n`;
}

async function* csvLines(envelopes: AsyncIterable<ExportedEnvelope>): AsyncGenerator<string> {
  yield csvRow([...FEED_CSV_COLUMNS]);
  for await (const envelope of envelopes) yield csvRow(FEED_CSV_COLUMNS.map((column) => envelope[column]));
}

export default async function exportsRoutes(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/exports/envelopes',
    {
      schema: {
        tags,
        security,
        summary: 'Datawarehouse change feed of submitted envelopes (export capability), NDJSON or CSV',
        description:
          'Streams one record per envelope (NDJSON, or CSV with Accept: text/csv). Continue from the Link rel="next" header; ' +
          'Bxchange-Feed-More tells whether more is already available. Upsert by id: a changed envelope comes again.',
        querystring: Type.Object(
          {
            cursor: Type.Optional(Type.String({ maxLength: 512 })),
            limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            description: 'One envelope per line (NDJSON), or CSV with a header row; Link rel="next" and Bxchange-Feed-More headers',
            // Documented as text; the handler sends a stream (never serialised, so never buffered).
            content: { [NDJSON]: { schema: StreamedText }, 'text/csv': { schema: StreamedText } },
          },
          ...problemResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const csv = wantsCsv(request.headers.accept);
      const { cursor, limit } = request.query;
      const feed = await services.exports.feed(request.caller, {
        ...(cursor === undefined ? {} : { cursor }),
        ...(limit === undefined ? {} : { limit: Number(limit) }),
        format: csv ? 'csv' : 'ndjson',
      });
      const params = new URLSearchParams();
      if (feed.next !== undefined) params.set('cursor', feed.next);
      if (limit !== undefined) params.set('limit', limit);
      const query = params.toString();
      reply
        .header('link', `<${API}/exports/envelopes${query === '' ? '' : `?${query}`}>; rel="next"`)
        .header(MORE_HEADER, String(feed.more))
        .header('cache-control', 'no-store')
        .header('vary', 'accept')
        .type(csv ? CSV : NDJSON);
      return reply.send(Readable.from(csv ? csvLines(feed.envelopes) : ndjsonLines(feed.envelopes)));
    },
  );

  app.get(
    '/exports/counts',
    {
      schema: {
        tags,
        security,
        summary: 'Submitted envelopes per type and Europe/Brussels month (export capability): the only trace of counts-only types',
        response: problemResponses(401, 403),
      },
    },
    async (request, reply) => {
      const counts = await services.exports.counts(request.caller);
      reply.header('cache-control', 'no-store').header('vary', 'accept');
      if (wantsCsv(request.headers.accept)) {
        return reply.type(CSV).send([csvRow([...COUNT_CSV_COLUMNS]), ...counts.map((c) => csvRow(COUNT_CSV_COLUMNS.map((k) => c[k])))].join(''));
      }
      return reply.type('application/json; charset=utf-8').send(JSON.stringify({ items: counts }));
    },
  );
}
