/**
 * One upload server of the upload benchmarks, as its own process:
 *   node bench/upload/server.ts bxchange   the real app (createServices + buildApp), migrated at start,
 *                                          configured by the BXCHANGE_*, DATABASE_URL and S3_* environment
 *                                          like `bxchange serve` (the local variant passes the embedded
 *                                          default: PGlite in <dir>/db, local folder <dir>/blobs)
 *   node bench/upload/server.ts bare-tus <dir>      @tus/server + @tus/file-store in Fastify, nothing else
 *   node bench/upload/server.ts bare-put <dir>      node:http, PUT /upload/<name> streamed to <dir>/<name>
 *   node bench/upload/server.ts bare-s3 <prefix>    @tus/server + @tus/s3-store in Fastify, nothing else:
 *                                                   bxchange's part size and S3 client options, on the
 *                                                   S3_* bucket, upload ids <prefix><random hex>
 *   node bench/upload/server.ts raw-s3 <prefix>     node:http, PUT /upload/<name> piped into an
 *                                                   @aws-sdk/lib-storage multipart Upload to <prefix><name>,
 *                                                   same part size, bxchange's S3 client
 * Listens on 127.0.0.1, a free port, and prints {"ready":true,"port":N} on stdout.
 * BENCH_FSYNC_BASELINES=1 makes the two bare local servers fsync a finished
 * file (as bxchange does), to separate the cost of durability from the rest.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DataStore, ServerOptions } from '@tus/server';

const [kind, where] = process.argv.slice(2);
const fsyncBaselines = process.env.BENCH_FSYNC_BASELINES === '1';
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The S3 configuration, read by the app's own loader (the same S3_* variables bxchange reads). */
async function s3Config() {
  const { loadConfig } = await import('../../src/config.ts');
  const s3 = loadConfig().s3;
  if (s3 === undefined) throw new Error(`${kind} needs the S3_* environment (S3_BUCKET at least)`);
  return s3;
}

/** @tus/server at /files mounted in Fastify the way bxchange mounts it: pass-through parser, hijack, tus.handle. */
async function serveTus(datastore: DataStore, options: Partial<ServerOptions> = {}): Promise<{ port: number; close: () => Promise<void> }> {
  const { default: Fastify } = await import('fastify');
  const { Server } = await import('@tus/server');
  const tus = new Server({ path: '/files', datastore, ...options });
  const app = Fastify({ logger: false });
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/offset+octet-stream', (_request, _payload, done) => done(null));
    const handler = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
      reply.hijack();
      await tus.handle(request.raw, reply.raw);
    };
    scope.all('/files', handler);
    scope.all('/files/*', handler);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { port: (app.server.address() as { port: number }).port, close: () => app.close() };
}

/** node:http answering PUT /upload/<name> by `store(name, body)`: 201 once stored, 500 with the error otherwise. */
async function servePut(store: (name: string, body: IncomingMessage) => Promise<void>): Promise<{ port: number; close: () => Promise<void> }> {
  const server: HttpServer = createServer((req, res) => {
    const match = /^\/upload\/([A-Za-z0-9-]{1,64})$/.exec(req.url ?? '');
    if (req.method !== 'PUT' || match === null) {
      res.writeHead(404, { 'content-length': '0', connection: 'close' }).end();
      return;
    }
    store(match[1]!, req).then(
      () => res.writeHead(201, { 'content-length': '0' }).end(),
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end(err.message);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

let served: { port: number; close: () => Promise<void> };

if (kind === 'bxchange') {
  const { loadConfig } = await import('../../src/config.ts');
  const { createServices } = await import('../../src/services.ts');
  const { buildApp } = await import('../../src/app.ts');
  const config = loadConfig();
  const services = await createServices(config);
  // Migrated here as `bxchange serve` does for the embedded default and `bxchange migrate` for PostgreSQL
  // (the upload-s3 benchmark hands it a fresh database).
  await services.database.migrate();
  const app = await buildApp({ services });
  await app.listen({ host: '127.0.0.1', port: 0 });
  served = {
    port: (app.server.address() as { port: number }).port,
    close: async () => {
      await app.close();
      await services.close();
    },
  };
} else if (kind === 'bare-tus') {
  if (where === undefined) throw new Error('bare-tus needs a directory');
  const dir = where;
  const { FileStore } = await import('@tus/file-store');
  served = await serveTus(
    new FileStore({ directory: dir }),
    fsyncBaselines
      ? {
          onUploadFinish: async (_req: Request, upload: { id: string }) => {
            await fsyncFile(path.join(dir, upload.id));
            return {};
          },
        }
      : {},
  );
} else if (kind === 'bare-put') {
  if (where === undefined) throw new Error('bare-put needs a directory');
  const dir = where;
  served = await servePut((name, body) => pipeline(body, createWriteStream(path.join(dir, name), { flush: fsyncBaselines })));
} else if (kind === 'bare-s3') {
  if (where === undefined) throw new Error('bare-s3 needs a key prefix');
  const prefix = where;
  const { S3Store } = await import('@tus/s3-store');
  const { S3_PART_SIZE } = await import('../../src/storage/upload-store.ts');
  const { tusS3ClientConfig } = await import('./s3.ts');
  // No expiration (bxchange sets one, which tags the .info object twice per upload): the bare store's defaults.
  const store = new S3Store({ partSize: S3_PART_SIZE, s3ClientConfig: tusS3ClientConfig(await s3Config()) });
  // A plain id (no '/', so tus's default URLs work) under the benchmark's prefix, so that leftovers are recognisable.
  served = await serveTus(store, { namingFunction: () => `${prefix}${randomBytes(16).toString('hex')}` });
} else if (kind === 'raw-s3') {
  if (where === undefined) throw new Error('raw-s3 needs a key prefix');
  const prefix = where;
  const s3 = await s3Config();
  const { Upload } = await import('@aws-sdk/lib-storage');
  const { createS3Client } = await import('../../src/storage/s3-blob-store.ts');
  const { S3_PART_SIZE } = await import('../../src/storage/upload-store.ts');
  const client = createS3Client(s3);
  served = await servePut(async (name, body) => {
    // lib-storage's default queue (4 parts in flight, each buffered in memory); a failed body aborts the upload.
    await new Upload({ client, params: { Bucket: s3.bucket, Key: `${prefix}${name}`, Body: body }, partSize: S3_PART_SIZE, leavePartsOnError: false }).done();
  });
} else {
  throw new Error(`unknown server kind "${kind}" (bxchange, bare-tus <dir>, bare-put <dir>, bare-s3 <prefix>, raw-s3 <prefix>)`);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    const timer = setTimeout(() => process.exit(1), 8000);
    timer.unref();
    served.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
say({ ready: true, port: served.port, pid: process.pid });
