/**
 * tus 1.0 resumable uploads at /api/v1/uploads, with @tus/server embedded.
 *
 * This plugin is encapsulated (never wrapped in fastify-plugin): its
 * pass-through body parser only applies here. Authentication already ran in
 * the /api/v1 onRequest hook; the caller reaches tus's hooks through a
 * WeakMap keyed by the Web Request handed to tus. The domain is reached only
 * through its functions (beginUpload, findUpload, finishUpload,
 * abandonUpload), so tus and multipart uploads obey the same rules.
 *
 * Checksum extension (tus 1.0 §checksum), which @tus/server lacks: a PATCH
 * carrying `Upload-Checksum: sha256 <base64>` is staged to a temporary file
 * (never memory) while hashed; on mismatch it answers 460 and the chunk is
 * discarded without touching the store; on match the staged file is handed
 * to tus as the request body.
 *
 * Every answer, tus's included, carries the security headers and, on error,
 * an application/problem+json body from the catalogue (tus's own error text
 * for unknown errors would leak internals).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Server, type Upload } from '@tus/server';
import { NodeRequest, sendNodeResponse } from 'srvx/node';
import { AppError, toProblem, type ErrorCode } from '../../errors.ts';
import type { Caller } from '../../domain/model.ts';
import { UUID_PATTERN } from '../../domain/ids.ts';
import type { Services } from '../../services.ts';

const URL_ID = new RegExp(`^(${UUID_PATTERN.slice(1, -1)})\\.(${UUID_PATTERN.slice(1, -1)})$`);
const KEY = /^envelopes\/([0-9a-f-]{36})\/([0-9a-f-]{36})$/;
const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'",
  'cache-control': 'no-store',
};

function keyFromUrlId(urlId: string): string | undefined {
  const match = URL_ID.exec(urlId);
  return match ? `envelopes/${match[1]!.toLowerCase()}/${match[2]!.toLowerCase()}` : undefined;
}

function idsFromKey(key: string): { envelopeId: string; fileId: string } {
  const match = KEY.exec(key);
  if (match === null) throw new AppError('resourceNotFound', 'No such upload');
  return { envelopeId: match[1]!, fileId: match[2]! };
}

/** tus's own errors (fixed texts) → catalogue codes. */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'badRequest';
    case 403:
      return 'forbidden';
    case 404:
    case 410:
      return 'resourceNotFound';
    case 409:
      return 'conflict';
    case 412:
      return 'badRequest';
    case 413:
      return 'payloadTooLarge';
    case 415:
      return 'unsupportedMediaType';
    case 460:
      return 'checksumMismatch';
    default:
      return status >= 500 ? 'internalServerError' : 'badRequest';
  }
}

/**
 * The request body as a web stream for tus, without the copy Node's `Readable.toWeb` (used by srvx's
 * NodeRequest) makes of every chunk "to detach it from the pool": the chunks of an HTTP request body are
 * slices of the socket's own read buffers, never of Buffer's shared pool, so they can go as they are.
 * The profile of a 512 MiB PATCH showed that copy (and the garbage it makes: one more ArrayBuffer per
 * chunk, each counted as external memory, which triggers V8's full collections) among the largest costs.
 * Otherwise the same as Node's adapter: same backpressure (byte length, the request's high-water mark),
 * errors and premature close forwarded, cancel destroys the request.
 */
function requestBody(req: IncomingMessage): ReadableStream<Uint8Array> {
  let done = false;
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        req.pause();
        req.on('data', (chunk: Buffer) => {
          controller.enqueue(chunk);
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        });
        finished(req, { writable: false }).then(
          () => {
            if (!done) controller.close();
            done = true;
          },
          (err: Error) => {
            if (!done) controller.error(err);
            done = true;
          },
        );
      },
      pull() {
        req.resume();
      },
      cancel(reason) {
        done = true;
        req.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: req.readableHighWaterMark }),
  );
  return body;
}

function problemBody(err: AppError, instance: string, traceId: string): string {
  return JSON.stringify({ ...toProblem(err, instance), traceId });
}

export default async function uploads(app: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const { envelopes, uploadStore, blobStore, config } = services;
  const callers = new WeakMap<Request, { caller: Caller; log: FastifyRequest['log']; traceId: string }>();
  const created = new WeakMap<Request, { caller: Caller; fileId: string; envelopeId: string; storageKey: string }>();
  const stagingDir = path.join(config.dataDir, 'tmp', 'checksum');

  function who(req: Request) {
    const entry = callers.get(req);
    if (entry === undefined) throw new AppError('noAccessToken', 'This request needs an access token');
    return entry;
  }

  async function completeUpload(upload: Upload): Promise<void> {
    const { fileId } = idsFromKey(upload.id);
    const size = upload.size ?? upload.offset;
    const { sha256, rebuilt } = await uploadStore.completedSha256(upload.id, size, () => blobStore.get(upload.id));
    if (rebuilt) app.log.warn({ fileId }, 'upload hash rebuilt from the stored bytes');
    await envelopes.finishUpload(fileId, { size, sha256 });
  }

  const tus = new Server({
    path: '/api/v1/uploads',
    datastore: uploadStore,
    maxSize: config.maxUploadBytes,
    relativeLocation: true,
    // Explicit: no Access-Control-Allow-Origin unless the origin is configured (tus answers * otherwise).
    allowedOrigins: (origin: string) => config.allowedOrigins.includes(origin),
    respectForwardedHeaders: false,
    generateUrl: (_req, { path: base, id }) => {
      const { envelopeId, fileId } = idsFromKey(id);
      return `${base}/${envelopeId}.${fileId}`;
    },
    getFileIdFromRequest: (_req, lastPath) => (lastPath === undefined ? undefined : keyFromUrlId(lastPath)),
    // Creation: Upload-Metadata is validated by the domain, which registers the file row and gives the key.
    namingFunction: async (req, metadata) => {
      const { caller } = who(req);
      const meta = metadata ?? {};
      if (!meta.envelope) throw new AppError('badRequest', 'Upload-Metadata must name the envelope (envelope <id>)', { issues: [{ in: 'header', name: 'Upload-Metadata/envelope', detail: 'is required' }] });
      if (!new RegExp(UUID_PATTERN).test(meta.envelope)) throw new AppError('resourceNotFound', 'No such envelope');
      if (!meta.filename) throw new AppError('badRequest', 'Upload-Metadata must carry the filename', { issues: [{ in: 'header', name: 'Upload-Metadata/filename', detail: 'is required' }] });
      const length = req.headers.get('upload-length');
      const file = await envelopes.beginUpload(caller, {
        envelopeId: meta.envelope.toLowerCase(),
        filename: meta.filename,
        ...(meta.filetype ? { mediaType: meta.filetype } : {}),
        role: meta.role ?? null,
        plaintextSha256: meta.plaintextSha256 ?? null,
        ...(length === null ? {} : { size: Number(length) }),
      });
      created.set(req, { caller, fileId: file.id, envelopeId: file.envelopeId, storageKey: file.storageKey });
      return file.storageKey;
    },
    // Every other request: the caller must still be allowed to send this draft.
    onIncomingRequest: async (req, uploadId) => {
      if (req.method === 'POST') return;
      const { caller } = who(req);
      const { envelopeId, fileId } = idsFromKey(uploadId);
      await envelopes.findUpload(caller, envelopeId, fileId);
    },
    onUploadFinish: async (_req, upload) => {
      await completeUpload(upload);
      return {};
    },
    onResponseError: async (req, err) => {
      const entry = callers.get(req);
      const instance = new URL(req.url).pathname;
      if (err instanceof AppError) return { status_code: err.status, body: problemBody(err, instance, entry?.traceId ?? '') };
      const known = err as { status_code?: number; body?: string };
      if (typeof known.status_code === 'number' && known.status_code < 500 && typeof known.body === 'string') {
        const appError = new AppError(codeForStatus(known.status_code), known.body.trim());
        return { status_code: known.status_code, body: problemBody(appError, instance, entry?.traceId ?? '') };
      }
      entry?.log.error({ err }, 'upload failed');
      const appError = new AppError('internalServerError', 'The upload could not be processed; quote the trace id to the platform support');
      return { status_code: 500, body: problemBody(appError, instance, entry?.traceId ?? '') };
    },
  });

  /**
   * Stages a checksummed PATCH body on disk and verifies it; returns the
   * Request to hand to tus, or throws 460 (nothing reaches the store).
   */
  async function stageChecksummed(request: FastifyRequest, original: Request, header: string): Promise<{ request: Request; cleanup: () => Promise<void> }> {
    const match = /^(\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim());
    if (match === null) throw new AppError('badRequest', 'Upload-Checksum must be "<algorithm> <base64 digest>"', { issues: [{ in: 'header', name: 'Upload-Checksum', detail: 'malformed' }] });
    if (match[1]!.toLowerCase() !== 'sha256') {
      throw new AppError('badRequest', 'Only the sha256 checksum algorithm is supported', { issues: [{ in: 'header', name: 'Upload-Checksum', value: match[1], detail: 'unsupported algorithm' }] });
    }
    const urlId = new URL(original.url).pathname.split('/').pop() ?? '';
    const key = keyFromUrlId(urlId);
    if (key === undefined) throw new AppError('resourceNotFound', 'No such upload');
    const ids = idsFromKey(key);
    await envelopes.findUpload(request.caller, ids.envelopeId, ids.fileId);

    await mkdir(stagingDir, { recursive: true });
    const staged = path.join(stagingDir, randomUUID());
    const cleanup = () => rm(staged, { force: true });
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        request.raw,
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            size += chunk.length;
            if (size > config.maxUploadBytes) return done(new AppError('payloadTooLarge', 'The chunk is larger than the upload limit'));
            hash.update(chunk);
            done(null, chunk);
          },
        }),
        createWriteStream(staged, { flags: 'wx' }),
      );
    } catch (err) {
      await cleanup();
      throw err;
    }
    if (hash.digest('base64') !== match[2]) {
      await cleanup();
      throw new AppError('checksumMismatch', 'The chunk does not match its Upload-Checksum; it was discarded, send it again', {
        issues: [{ in: 'header', name: 'Upload-Checksum', detail: 'mismatch' }],
      });
    }
    const headers = new Headers(original.headers);
    headers.set('content-length', String(size));
    const body = Readable.toWeb(createReadStream(staged)) as ReadableStream<Uint8Array>;
    const replay = new Request(original.url, { method: 'PATCH', headers, body, duplex: 'half' } as RequestInit);
    return { request: replay, cleanup };
  }

  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  async function handle(request: FastifyRequest, reply: import('fastify').FastifyReply): Promise<void> {
    reply.hijack();
    const raw = reply.raw;
    let webRequest: Request = new NodeRequest({ req: request.raw as IncomingMessage, res: raw });
    let cleanup: (() => Promise<void>) | undefined;
    let response: Response;
    try {
      const checksum = request.method === 'PATCH' ? request.headers['upload-checksum'] : undefined;
      if (typeof checksum === 'string') {
        const staged = await stageChecksummed(request, webRequest, checksum);
        webRequest = staged.request;
        cleanup = staged.cleanup;
      } else if (request.method === 'PATCH' || request.method === 'POST') {
        // An own getter shadows NodeRequest's (see requestBody); like it, the stream is made on first use.
        let body: ReadableStream<Uint8Array> | undefined;
        Object.defineProperty(webRequest, 'body', { get: () => (body ??= requestBody(request.raw as IncomingMessage)) });
      }
      callers.set(webRequest, { caller: request.caller, log: request.log, traceId: request.id });
      response = await tus.handleWeb(webRequest);
      const made = created.get(webRequest);
      if (made !== undefined && response.status >= 400) {
        // Creation failed after the domain registered the file: forget it.
        const file = await services.envelopeRepository.findFile(made.fileId);
        if (file !== null) await envelopes.abandonUpload(made.caller, file);
      }
      if (request.method === 'DELETE' && response.status === 204) {
        const key = keyFromUrlId(new URL(webRequest.url).pathname.split('/').pop() ?? '');
        const file = key === undefined ? null : await services.envelopeRepository.findFile(idsFromKey(key).fileId);
        if (file !== null) await envelopes.abandonUpload(request.caller, file);
      }
    } catch (err) {
      const appError =
        err instanceof AppError ? err : new AppError('internalServerError', 'The upload could not be processed; quote the trace id to the platform support');
      if (!(err instanceof AppError)) request.log.error({ err }, 'upload failed');
      response = new Response(problemBody(appError, request.url.split('?')[0]!, request.id), {
        status: appError.status,
        headers: { 'tus-resumable': '1.0.0' },
      });
      // An unread request body would stall the connection: close it after answering.
      if (!request.raw.readableEnded) response.headers.set('connection', 'close');
    } finally {
      await cleanup?.();
    }
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
    headers.set('belgov-trace-id', request.id);
    if (request.method === 'OPTIONS') {
      headers.set('tus-checksum-algorithm', 'sha256');
      const extensions = headers.get('tus-extension');
      if (extensions !== null && !extensions.includes('checksum')) headers.set('tus-extension', `${extensions},checksum`);
    }
    let body: string | ReadableStream<Uint8Array> | null = response.body;
    if (response.status >= 400) {
      const text = await response.text();
      if (text.startsWith('{')) body = text;
      else {
        // Errors tus writes directly (412, invalid headers, not found): same problem format.
        body = problemBody(new AppError(codeForStatus(response.status), text.trim() || 'The upload request was refused'), request.url.split('?')[0]!, request.id);
      }
      headers.set('content-type', 'application/problem+json');
      headers.set('content-length', String(Buffer.byteLength(body)));
      if (response.status === 401) headers.set('www-authenticate', 'Bearer realm="bxchange"');
    }
    await sendNodeResponse(raw, new Response(body, { status: response.status, statusText: response.statusText, headers }));
  }

  app.all('/', { schema: { hide: true } }, handle);
  app.all('/:id', { schema: { hide: true } }, handle);
}
