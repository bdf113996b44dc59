/**
 * upload: one 1 GiB random file sent with tus-js-client (unlimited chunk)
 * into bxchange (authenticated draft, hashing, database bookkeeping, fsync)
 * versus two baselines, each server in its own process:
 *   - bare @tus/server + @tus/file-store mounted in Fastify the same way;
 *   - a bare node:http PUT streamed to a file.
 * The client is its own process too. Rounds alternate A, B, C, A, B, C…
 * Goal (issue): bxchange ≥ 0.95× bare @tus/server and ≥ 0.85× bare PUT.
 * The bxchange mailboxes publish OpenPGP keys first (a draft needs them); the
 * file is random bytes, never submitted: encryption is checked at submit only.
 * The same on S3: bench/upload-s3.ts (what both share: bench/upload/harness.ts).
 *
 * Environment: BENCH_UPLOAD_BYTES (default 1G; e.g. 64M for a smoke run),
 * BENCH_RUNS (default 3), BENCH_FSYNC_BASELINES=1 (baselines fsync too),
 * BENCH_MAX_OTHER_CPU (default 0.2 core: a run during which other processes
 * used more is disturbed and measured again), BENCH_MAX_REPEATS (default 5
 * extra attempts per run), BENCH_QUIET_TIMEOUT_S (default 90; 0 = do not
 * wait for an idle machine before a run), BENCH_DEBUG=1 (trace the children).
 * Only 1 GiB with ≥ 3 runs and no fsync variant is a reference run.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  GiB,
  MiB,
  formatBytes,
  machineInfo,
  onCleanup,
  ratioResult,
  syncDisks,
  type BenchResult,
  type JsonChild,
  dirBytes,
  emptyDir,
  randomFile,
  startServer,
  EMBEDDED_DEFAULT_ENV,
  freshDatabase,
} from './lib.ts';
import { loadConfig } from '../src/config.ts';
import {
  WARMUP_BYTES,
  bxchangeCandidate,
  installedVersions,
  loadNow,
  runRecords,
  runRounds,
  startBxchange,
  uploadCandidateResults,
  uploadNotes,
  uploadParams,
  type Candidate,
} from './upload/harness.ts';

export const title = 'tus upload throughput (1 GiB, unlimited chunk, loopback)';

/** With DATABASE_URL set, bxchange is measured a second time on PostgreSQL (a fresh database of that server, dropped at the end). */
const DATABASE = 'bx_bench_upload';

export async function run(): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const params = uploadParams();
  const { bytes, runs } = params;
  const fsyncBaselines = process.env.BENCH_FSYNC_BASELINES === '1';
  const reference = bytes === GiB && runs >= 3 && !fsyncBaselines;

  const tmp = os.tmpdir();
  const fs = await statfs(tmp);
  const need = 2 * bytes + WARMUP_BYTES + GiB;
  if (fs.bavail * fs.bsize < need) {
    throw new Error(`upload: ${tmp} has ${formatBytes(fs.bavail * fs.bsize)} free, the benchmark needs ${formatBytes(need)} (source file + one upload + margin)`);
  }
  const work = await mkdtemp(path.join(tmp, 'bxchange-bench-upload-'));
  // Retries: a child killed a moment ago may still be writing into its folder.
  const forget = onCleanup(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  const servers: JsonChild[] = [];
  const databaseUrl = loadConfig().databaseUrl;
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  try {
    console.log(`upload: ${formatBytes(bytes)} × ${runs} runs per candidate, work dir ${work}`);
    const t0 = performance.now();
    const source = await randomFile(path.join(work, 'source.bin'), bytes);
    const warmup = await randomFile(path.join(work, 'warmup.bin'), Math.min(WARMUP_BYTES, bytes));
    syncDisks();
    console.log(`upload: random source file written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // --- servers (one process each, started one after the other)
    const bxDir = path.join(work, 'bxchange');
    const bxPgDir = path.join(work, 'bxchange-pg');
    const tusDir = path.join(work, 'bare-tus');
    const putDir = path.join(work, 'bare-put');
    for (const dir of [bxDir, bxPgDir, tusDir, putDir]) mkdirSync(dir);
    // The embedded default, whatever the caller's environment says.
    const bx = await startBxchange(bxDir, bytes, EMBEDDED_DEFAULT_ENV);
    servers.push(bx.server);
    // The production database, when there is one: PostgreSQL, blobs still in the local folder.
    if (databaseUrl !== undefined) database = await freshDatabase(databaseUrl, DATABASE);
    const bxPg = database === undefined ? undefined : await startBxchange(bxPgDir, bytes, { ...EMBEDDED_DEFAULT_ENV, DATABASE_URL: database.url });
    if (bxPg !== undefined) servers.push(bxPg.server);
    const blobFolderEmptied = (dir: string, name: string) => ({
      async verify() {},
      async cleanup() {
        const left = await dirBytes(path.join(dir, 'blobs')).catch(() => 0);
        if (left > MiB) throw new Error(`${name}: ${formatBytes(left)} left in the blob folder after deleting the draft`);
      },
    });
    const baselineEnv = { BENCH_FSYNC_BASELINES: fsyncBaselines ? '1' : '0' };
    const tus = await startServer('bare-tus', [tusDir], baselineEnv);
    servers.push(tus.server);
    const put = await startServer('bare-put', [putDir], baselineEnv);
    servers.push(put.server);

    const candidates: Candidate[] = [
      bxchangeCandidate(bx, 'bxchange /api/v1/uploads, embedded default: bearer token, draft check, SHA-256 as bytes arrive (node:crypto), PGlite bookkeeping, fsync at the end', blobFolderEmptied(bxDir, 'bxchange')),
      ...(bxPg === undefined
        ? []
        : [bxchangeCandidate(bxPg, `bxchange /api/v1/uploads, PostgreSQL (fresh database ${DATABASE} on DATABASE_URL's server) + local folder: the same work, database in its own process`, blobFolderEmptied(bxPgDir, 'bxchange · PostgreSQL'), 'bxchange · PostgreSQL')]),
      {
        name: 'bare @tus/server',
        role: 'baseline',
        description: `@tus/server + @tus/file-store in Fastify (passthrough parser, hijack, tus.handle)${fsyncBaselines ? ', fsync at the end' : ', no fsync'}`,
        server: tus.server,
        samples: [],
        async prepare(file) {
          return {
            args: ['tus', `${tus.base}/files`, file.path],
            async verify({ url }) {
              const id = new URL(url, tus.base).pathname.split('/').pop() ?? '';
              const size = (await stat(path.join(tusDir, id))).size;
              if (size !== file.size) throw new Error(`bare tus stored ${size} bytes, expected ${file.size}`);
            },
            cleanup: () => emptyDir(tusDir),
          };
        },
      },
      {
        name: 'bare PUT',
        role: 'baseline',
        description: `node:http PUT piped to a file${fsyncBaselines ? ', fsync at the end' : ', no fsync'}`,
        server: put.server,
        samples: [],
        async prepare(file, label) {
          return {
            args: ['put', `${put.base}/upload/${label}`, file.path],
            async verify() {
              const size = (await stat(path.join(putDir, label))).size;
              if (size !== file.size) throw new Error(`bare PUT stored ${size} bytes, expected ${file.size}`);
            },
            cleanup: () => emptyDir(putDir),
          };
        },
      },
    ];

    const outcome = await runRounds('upload', candidates, { source, warmup }, params);
    const results = uploadCandidateResults(candidates);
    const byName = (name: string) => results.find((r) => r.name === name)!;
    const [bxResult, tusResult, putResult] = [byName('bxchange'), byName('bare @tus/server'), byName('bare PUT')];
    const pgResult = results.find((r) => r.name === 'bxchange · PostgreSQL');
    return {
      name: 'upload',
      title,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgEnd: loadNow() },
      unit: 'MB/s',
      higherIsBetter: true,
      reference,
      params: {
        size: formatBytes(bytes),
        runs,
        fsyncBaselines,
        maxOtherCpu: params.maxOther,
        quietTimeoutS: params.quietTimeoutS,
        warmup: formatBytes(warmup.size),
        database: database === undefined ? 'PGlite' : 'PGlite and PostgreSQL',
        versions: installedVersions(['fastify', '@tus/server', '@tus/file-store', 'tus-js-client', '@electric-sql/pglite', ...(database === undefined ? [] : ['postgres'])]),
      },
      candidates: results,
      ratios: [
        ratioResult('bxchange / bare @tus/server', bxResult, tusResult, true, 0.95),
        ratioResult('bxchange / bare PUT', bxResult, putResult, true, 0.85),
        ...(pgResult === undefined
          ? []
          : [ratioResult('bxchange · PostgreSQL / bare @tus/server', pgResult, tusResult, true, 0.95), ratioResult('bxchange · PostgreSQL / bare PUT', pgResult, putResult, true, 0.85)]),
        ratioResult('bare @tus/server / bare PUT (reference)', tusResult, putResult, true),
      ],
      notes: uploadNotes(candidates, params, outcome, {
        answer: 'its hash digest, database update and fsync',
        extra: [
          `Baselines ${fsyncBaselines ? 'fsync the finished file, like bxchange' : 'do not fsync (their bytes stay in the page cache, deleted before writeback); bxchange fsyncs every finished upload'}.`,
        ],
      }),
      ...runRecords(candidates, outcome),
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await database?.drop().catch((err: unknown) => console.error(`upload: could not drop ${DATABASE}: ${String(err)}`));
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    forget();
  }
}
