import { spawnSync } from 'node:child_process';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.ts';

function refused(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, '/srv/bx');
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

t.test('with no variables the embedded default is chosen', async (t) => {
  const config = loadConfig({}, '/srv/bx');
  t.match(config, {
    host: '127.0.0.1',
    port: 8080,
    dataDir: '/srv/bx/data',
    certsDir: '/srv/bx/certs',
    databaseUrl: undefined,
    s3: undefined,
    adminToken: undefined,
    maxUploadBytes: 10 * 1024 ** 3,
    tls: undefined,
  });
});

t.test('S3 and PostgreSQL settings are read and typed', async (t) => {
  const config = loadConfig(
    {
      DATABASE_URL: 'postgres://u@db.example:5432/bx',
      S3_ENDPOINT: 'http://127.0.0.1:7480',
      S3_BUCKET: 'bxchange',
      S3_ACCESS_KEY_ID: 'AK',
      S3_SECRET_ACCESS_KEY: 'SK',
      PORT: '9000',
      BXCHANGE_MAX_UPLOAD_BYTES: '1048576',
    },
    '/srv/bx',
  );
  t.equal(config.databaseUrl, 'postgres://u@db.example:5432/bx');
  t.same(config.s3, { endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', bucket: 'bxchange', accessKeyId: 'AK', secretAccessKey: 'SK', forcePathStyle: true });
  t.equal(config.port, 9000);
  t.equal(config.maxUploadBytes, 1048576);
});

t.test('each wrong value names its variable', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ S3_ENDPOINT: 'http://127.0.0.1:7480' }, 'S3_BUCKET'],
    [{ S3_ENDPOINT: 'not a url', S3_BUCKET: 'b1b' }, 'S3_ENDPOINT'],
    [{ S3_BUCKET: 'UPPER_case' }, 'S3_BUCKET'],
    [{ S3_BUCKET: 'bucket', S3_ACCESS_KEY_ID: 'AK' }, 'S3_SECRET_ACCESS_KEY'],
    [{ S3_BUCKET: 'bucket', S3_FORCE_PATH_STYLE: 'maybe' }, 'S3_FORCE_PATH_STYLE'],
    [{ DATABASE_URL: 'mysql://x/y' }, 'DATABASE_URL'],
    [{ BXCHANGE_MAX_UPLOAD_BYTES: '-1' }, 'BXCHANGE_MAX_UPLOAD_BYTES'],
    [{ BXCHANGE_MAX_UPLOAD_BYTES: '10GB' }, 'BXCHANGE_MAX_UPLOAD_BYTES'],
    [{ BXCHANGE_ADMIN_TOKEN: 'short' }, 'BXCHANGE_ADMIN_TOKEN'],
    [{ TLS_CERT: '/x.pem' }, 'TLS_KEY'],
    [{ TLS_CLIENT_CA: '/ca.pem' }, 'TLS_CLIENT_CA'],
    [{ LOG_LEVEL: 'chatty' }, 'LOG_LEVEL'],
  ];
  for (const [env, variable] of cases) {
    const err = refused(env);
    t.equal(err.variable, variable, `${JSON.stringify(env)} → ${variable}`);
    t.match(err.message, new RegExp(`^${variable}: `));
  }
});

t.test('the server refuses to start on a wrong value, with one line naming it and a non-zero exit', async (t) => {
  const result = spawnSync(process.execPath, ['src/main.ts'], {
    env: { PATH: process.env.PATH ?? '', PORT: 'abc' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(result.status, 2);
  const lines = result.stderr.trim().split('\n');
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], /^bxchange: configuration error: PORT: must be a whole number/);
  t.equal(result.stdout, '', 'nothing started');
});
