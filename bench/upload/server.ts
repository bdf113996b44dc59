/**
 * One upload server of the upload benchmark, as its own process:
 *   node bench/upload/server.ts bxchange   the real app (createServices + buildApp), embedded default
 *                                          (PGlite in <dir>/db, local folder <dir>/blobs); configured by
 *                                          the BXCHANGE_* environment like `bxchange serve`
 *   node bench/upload/server.ts bare-tus <dir>   @tus/server + @tus/file-store in Fastify, nothing else
 *   node bench/upload/server.ts bare-put <dir>   node:http, PUT /upload/<name> streamed to <dir>/<name>
 * Listens on 127.0.0.1, a free port, and prints {"ready":true,"port":N} on stdout.
 * BENCH_FSYNC_BASELINES=1 makes the two bare servers fsync a finished file
 * (as bxchange does), to separate the cost of durability from the rest.
 */
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const [kind, dir] = process.argv.slice(2);
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

let close: () => Promise<void>;
let port: number;

if (kind === 'bxchange') {
  const { loadConfig } = await import('../../src/config.ts');
  const { createServices } = await import('../../src/services.ts');
  const { buildApp } = await import('../../src/app.ts');
  const config = loadConfig();
  const services = await createServices(config);
  if (services.database.kind === 'pglite') await services.database.migrate();
  const app = await buildApp({ services });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
  close = async () => {
    await app.close();
    await services.close();
  };
} else if (kind === 'bare-tus') {
  if (dir === undefined) throw new Error('bare-tus needs a directory');
  const { default: Fastify } = await import('fastify');
  const { Server } = await import('@tus/server');
  const { FileStore } = await import('@tus/file-store');
  const tus = new Server({
    path: '/files',
    datastore: new FileStore({ directory: dir }),
    ...(fsyncBaselines
      ? {
          onUploadFinish: async (_req: Request, upload: { id: string }) => {
            await fsyncFile(path.join(dir, upload.id));
            return {};
          },
        }
      : {}),
  });
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
  port = (app.server.address() as { port: number }).port;
  close = () => app.close();
} else if (kind === 'bare-put') {
  if (dir === undefined) throw new Error('bare-put needs a directory');
  const server: HttpServer = createServer((req, res) => {
    const match = /^\/upload\/([A-Za-z0-9-]{1,64})$/.exec(req.url ?? '');
    if (req.method !== 'PUT' || match === null) {
      res.writeHead(404, { 'content-length': '0', connection: 'close' }).end();
      return;
    }
    const file = path.join(dir, match[1]!);
    pipeline(req, createWriteStream(file, { flush: fsyncBaselines })).then(
      () => res.writeHead(201, { 'content-length': '0' }).end(),
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end(err.message);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  close = () => new Promise<void>((resolve) => server.close(() => resolve()));
} else {
  throw new Error(`unknown server kind "${kind}" (bxchange, bare-tus <dir>, bare-put <dir>)`);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    const timer = setTimeout(() => process.exit(1), 8000);
    timer.unref();
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
say({ ready: true, port, pid: process.pid });
