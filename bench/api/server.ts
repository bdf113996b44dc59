/**
 * One HTTP server of the api benchmark, as its own process:
 *   node bench/api/server.ts bxchange          the real app (createServices + buildApp) on DATABASE_URL
 *                                              (the benchmark's database, already migrated and seeded),
 *                                              configured by the BXCHANGE_* environment like `bxchange serve`
 *   node bench/api/server.ts bare <payloads>   Fastify with one JSON route, GET /api/v1/mailboxes/:address/envelopes,
 *                                              answering the body stored for the request URL in the
 *                                              <payloads> JSON file ({ url: body text }) as it is, nothing else
 * Listens on 127.0.0.1, a free port, and prints {"ready":true,"port":N} on stdout.
 */
import { readFile } from 'node:fs/promises';

const [kind, payloadFile] = process.argv.slice(2);
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

let close: () => Promise<void>;
let port: number;

if (kind === 'bxchange') {
  const { loadConfig } = await import('../../src/config.ts');
  const { createServices } = await import('../../src/services.ts');
  const { buildApp } = await import('../../src/app.ts');
  const config = loadConfig();
  if (config.databaseUrl === undefined) throw new Error('bench/api/server.ts bxchange needs DATABASE_URL');
  const services = await createServices(config);
  const app = await buildApp({ services });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
  close = async () => {
    await app.close();
    await services.close();
  };
} else if (kind === 'bare') {
  if (payloadFile === undefined) throw new Error('bare needs a payload file');
  const payloads = new Map(Object.entries(JSON.parse(await readFile(payloadFile, 'utf8')) as Record<string, string>));
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  app.get('/api/v1/mailboxes/:address/envelopes', async (request, reply) => {
    const body = payloads.get(request.url);
    if (body === undefined) return reply.code(404).send({ title: 'no payload for this URL' });
    return reply.type('application/json; charset=utf-8').send(body);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
  close = () => app.close();
} else {
  throw new Error(`unknown server kind "${kind}" (bxchange, bare <payloads.json>)`);
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
