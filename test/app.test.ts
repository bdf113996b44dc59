/** The HTTP application's cross-cutting behaviour: health, OpenAPI, trace ids, headers, errors, logs. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { hashSecret } from '../src/domain/directory.ts';
import { createServices } from '../src/services.ts';
import { createFsBlobStore } from '../src/storage/fs-blob-store.ts';
import { ADMIN_TOKEN, forEachBackend, freshPglite, startApp, tempDir, testPki } from './helpers/backends.ts';

forEachBackend(t, 'health', async (t, parts) => {
  const backend = await parts();
  const api = await startApp(t, backend);

  t.test('health is UP when the database and the store answer', async (t) => {
    const res = await api.call('GET', '/health', { token: null });
    t.equal(res.statusCode, 200);
    t.same(JSON.parse(res.body), {
      status: 'UP',
      details: {
        database: { status: 'UP', kind: backend.name === 'embedded' ? 'pglite' : 'postgres' },
        store: { status: 'UP', kind: backend.name === 'embedded' ? 'fs' : 's3' },
      },
    });
  });

  t.test('health is 503 DOWN once the database is gone', async (t) => {
    await backend.database.close();
    const res = await api.call('GET', '/health', { token: null });
    t.equal(res.statusCode, 503);
    t.match(JSON.parse(res.body), { status: 'DOWN', details: { database: { status: 'DOWN' }, store: { status: 'UP' } } });
  });
});

t.test('health is 503 when the blob store is unusable', async (t) => {
  const dir = await tempDir(t);
  const notAFolder = path.join(dir, 'blobs');
  await writeFile(notAFolder, 'a file where the store folder should be');
  const config = loadConfig({ BXCHANGE_DATA_DIR: dir, LOG_LEVEL: 'silent' });
  const services = await createServices(config, { database: await freshPglite(t), blobStore: createFsBlobStore(notAFolder), adminTokenHash: hashSecret(ADMIN_TOKEN), pki: await testPki() });
  const app = await buildApp({ services, logger: false });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/health' });
  t.equal(res.statusCode, 503);
  t.match(JSON.parse(res.body), { status: 'DOWN', details: { database: { status: 'UP' }, store: { status: 'DOWN' } } });
});

t.test('app conventions', async (t) => {
  const dir = await tempDir(t);
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const config = loadConfig({ BXCHANGE_DATA_DIR: dir });
  const services = await createServices(config, {
    database: await freshPglite(t),
    blobStore: createFsBlobStore(path.join(dir, 'blobs')),
    adminTokenHash: hashSecret(ADMIN_TOKEN),
    pki: await testPki(),
  });
  const app = await buildApp({ services, logger: { level: 'debug', stream } });
  app.get('/boom', async () => {
    throw new Error('SELECT secret FROM credentials: connection to 10.0.0.1 refused');
  });
  t.teardown(() => app.close());

  t.test('the OpenAPI document lists the routes with their schemas, and /docs serves its viewer', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    t.equal(res.statusCode, 200);
    const doc = JSON.parse(res.body);
    t.equal(doc.openapi, '3.1.0');
    for (const p of ['/health', '/api/v1/entities', '/api/v1/entities/{id}', '/api/v1/entities/{id}/mailboxes', '/api/v1/mailboxes', '/api/v1/principals', '/api/v1/principals/{id}/tokens', '/api/v1/principals/{id}/tokens/{tokenId}']) {
      t.ok(doc.paths[p], `documents ${p}`);
    }
    t.ok(doc.paths['/api/v1/entities'].post.requestBody.content['application/json'].schema.properties.enterpriseNumber, 'request schema from TypeBox');
    const docs = await app.inject({ method: 'GET', url: '/docs/' });
    t.equal(docs.statusCode, 200);
    t.match(docs.body, /swagger/i);
  });

  t.test('a BelGov-Trace-Id is echoed, or generated when absent', async (t) => {
    const echoed = await app.inject({ method: 'GET', url: '/health', headers: { 'belgov-trace-id': 'bpl-1234' } });
    t.equal(echoed.headers['belgov-trace-id'], 'bpl-1234');
    const generated = await app.inject({ method: 'GET', url: '/health' });
    t.match(generated.headers['belgov-trace-id'], /^[0-9a-f-]{36}$/);
    const hostile = await app.inject({ method: 'GET', url: '/health', headers: { 'belgov-trace-id': 'x\u0000'.repeat(3) + 'y'.repeat(300) } });
    t.not(hostile.headers['belgov-trace-id'], 'x'.repeat(300), 'an unusable id is replaced');
  });

  t.test('security headers are set', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/health' });
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    t.match(res.headers['content-security-policy'], /default-src 'self'/);
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
  });

  t.test('an unexpected error is a 500 problem without its internal message, logged with the trace id', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/boom', headers: { 'belgov-trace-id': 'trace-boom' } });
    t.equal(res.statusCode, 500);
    t.match(res.headers['content-type'], /^application\/problem\+json/);
    const body = JSON.parse(res.body);
    t.equal(body.type, 'urn:problem-type:belgif:internalServerError');
    t.equal(body.traceId, 'trace-boom');
    t.notMatch(res.body, /SELECT|10\.0\.0\.1|credentials/);
    t.ok(lines.some((l) => l.includes('trace-boom') && l.includes('SELECT secret')), 'the real error is in the log');
  });

  t.test('an unknown route is a 404 problem', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    t.equal(res.statusCode, 404);
    t.equal(JSON.parse(res.body).type, 'urn:problem-type:belgif:resourceNotFound');
  });

  t.test('tokens never reach the logs', async (t) => {
    await app.inject({ method: 'GET', url: '/api/v1/entities', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await app.inject({ method: 'GET', url: '/api/v1/entities', headers: { authorization: 'Bearer bxc_wrong_token_value' } });
    t.ok(lines.length > 4, 'requests were logged');
    t.notOk(lines.some((l) => l.includes(ADMIN_TOKEN) || l.includes('bxc_wrong_token_value')), 'no token in any log line');
  });
});
