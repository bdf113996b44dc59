/**
 * The server's Node flags (src/node-flags.ts): every way of starting the
 * server passes them, the flag does what it is there for in a real V8, and a
 * server started without them says so in its log.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { missingServerFlags, SERVER_NODE_FLAGS } from '../src/node-flags.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

t.test('npm start, the bxchange command and the Docker image pass the flags to node', async (t) => {
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.equal(pkg.scripts.start, `node ${SERVER_NODE_FLAGS.join(' ')} src/main.ts`, 'npm start');

  const shebang = (await readFile(path.join(ROOT, 'bin', 'bxchange.js'), 'utf8')).split('\n')[0];
  t.equal(shebang, `#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}`, 'bin/bxchange.js');

  const entrypoint = /^ENTRYPOINT (.+)$/m.exec(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'));
  t.ok(entrypoint, 'the Dockerfile has an ENTRYPOINT');
  t.same(JSON.parse(entrypoint![1]!), ['node', ...SERVER_NODE_FLAGS, 'bin/bxchange.js'], 'Docker ENTRYPOINT');
});

t.test('missingServerFlags reads the command line and NODE_OPTIONS', async (t) => {
  t.same(missingServerFlags([], ''), [...SERVER_NODE_FLAGS], 'none given');
  t.same(missingServerFlags([...SERVER_NODE_FLAGS], ''), [], 'on the command line');
  t.same(missingServerFlags(['--inspect'], `--enable-source-maps ${SERVER_NODE_FLAGS.join(' ')}`), [], 'in NODE_OPTIONS');
  t.same(missingServerFlags(SERVER_NODE_FLAGS.map((flag) => flag.replaceAll('-', '_').replace(/^__/, '--')), ''), [], 'V8 spelling with underscores');
  t.same(missingServerFlags(['--max-semi-space-size=16', '--heap-growing-percent=50'], ''), [...SERVER_NODE_FLAGS], 'other values are not the flags');
  t.same(missingServerFlags([SERVER_NODE_FLAGS[0]!], ''), SERVER_NODE_FLAGS.slice(1), 'only the missing ones');
});

t.test('with the flags, V8 keeps the young generation small under churn that grows it otherwise', async (t) => {
  // Survivors across young collections make V8 grow its new space (as a server's start-up does).
  const churn = `
    const v8 = require('node:v8');
    let max = 0;
    const keep = [];
    for (let i = 0; i < 300; i++) {
      const batch = [];
      for (let j = 0; j < 20000; j++) batch.push({ j, s: 'x' + j });
      keep.push(batch);
      if (keep.length > 20) keep.shift();
      max = Math.max(max, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    }
    process.stdout.write(String(max));`;
  const newSpace = (flags: readonly string[]) => {
    const run = spawnSync(process.execPath, [...flags, '-e', churn], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    t.equal(run.status, 0, run.stderr);
    return Number(run.stdout) / 2 ** 20;
  };
  const without = newSpace([]);
  const withFlags = newSpace(SERVER_NODE_FLAGS);
  t.ok(without > 64, `without the flags the new space grew to ${without} MiB`);
  t.ok(withFlags <= 32, `with the flags it stayed at ${withFlags} MiB`);
});

/** Starts the server (embedded default, a fresh data folder) with `nodeArgs`, returns its log lines once it listens. */
async function logUntilListening(t: Test, nodeArgs: readonly string[]): Promise<Array<{ msg?: string; missing?: string[] }>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-flags-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [...nodeArgs, 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', BXCHANGE_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const lines: Array<{ msg?: string; missing?: string[] }> = [];
  try {
    for await (const line of createInterface({ input: child.stdout! })) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { msg?: string; missing?: string[] };
      lines.push(entry);
      // The warnings come right after listen; the token banner (stdout, not JSON) or the embedded-default warning last.
      if (entry.msg?.startsWith('embedded default')) break;
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return lines;
}

t.test('a server started without the flags warns, one started like npm start does not', async (t) => {
  const [bare, started] = await Promise.all([logUntilListening(t, []), logUntilListening(t, SERVER_NODE_FLAGS)]);
  t.ok(
    bare.some((l) => l.msg?.startsWith('Server listening')),
    'the server without the flags runs',
  );
  const warning = bare.find((l) => l.msg?.startsWith('started without the Node flags'));
  t.ok(warning, 'it warns about the missing flags');
  t.same(warning?.missing, [...SERVER_NODE_FLAGS], 'and names them');
  t.ok(
    started.some((l) => l.msg?.startsWith('Server listening')),
    'the server with the flags runs',
  );
  t.notOk(
    started.some((l) => l.msg?.startsWith('started without the Node flags')),
    'and does not warn',
  );
});
