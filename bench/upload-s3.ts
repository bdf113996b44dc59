/**
 * upload-s3: the upload benchmark on S3. One 1 GiB random file sent over
 * loopback (tus-js-client, unlimited chunk; a streamed PUT for the raw one)
 * to three servers, each its own process, storing into the S3_* bucket:
 *   - bxchange on its S3 store (authenticated draft, hashing, database
 *     bookkeeping on PostgreSQL when DATABASE_URL is set — in a fresh
 *     database of that server, bx_bench_upload_s3 — else PGlite embedded);
 *   - bare @tus/server + @tus/s3-store mounted in Fastify the same way, with
 *     bxchange's part size and S3 client options;
 *   - a node:http PUT piped into an @aws-sdk/lib-storage multipart Upload
 *     (the raw SDK), same part size.
 * Rounds alternate A, B, C, A, B, C… (bench/upload/harness.ts, shared with
 * bench/upload.ts). Every run is verified (bxchange: the envelope shows the
 * file complete with the right size and SHA-256, and the object is in the
 * bucket with that size; the baselines: the object's size), and what it
 * stored is deleted at once, unfinished multipart uploads aborted, and
 * radosgw's garbage collection forced when the S3 server is the local test
 * server (bench/upload/s3.ts says why).
 * Goal (issue #4): bxchange ≥ 0.95× bare @tus/s3-store, and as close to the
 * raw SDK as the part size allows (FACTS: bare s3-store ≈ 0.86× raw).
 *
 * Skipped without S3_* (decided by src/config.ts's loadConfig, as the app
 * does). Environment: as bench/upload.ts (BENCH_UPLOAD_BYTES, BENCH_RUNS,
 * BENCH_MAX_OTHER_CPU, BENCH_MAX_REPEATS, BENCH_QUIET_TIMEOUT_S,
 * BENCH_DEBUG), plus BENCH_S3_CEPH_CONF (the test server's ceph.conf, for the
 * forced garbage collection; default $S3_TEST_DIR/ceph.conf or .s3-ceph/).
 * Only 1 GiB with ≥ 3 runs is a reference run.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HeadBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { loadConfig } from '../src/config.ts';
import { createS3Client } from '../src/storage/s3-blob-store.ts';
import { S3_PART_SIZE } from '../src/storage/upload-store.ts';
import {
  GiB,
  PLAIN_HTTP_ENV,
  formatBytes,
  freshDatabase,
  machineInfo,
  onCleanup,
  randomFile,
  ratioResult,
  startServer,
  syncDisks,
  type BenchResult,
  type Check,
  type JsonChild,
} from './lib.ts';
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
import { forceRadosGc, localCephConf, removeUnder, s3ServerPids, type Removed } from './upload/s3.ts';

export const title = 'tus upload throughput on S3 (1 GiB, unlimited chunk, loopback)';

/** The database bxchange gets on DATABASE_URL's server: made fresh, dropped at the end. */
const DATABASE = 'bx_bench_upload_s3';

export function skipReason(): string | undefined {
  let configured: boolean;
  try {
    configured = loadConfig().s3 !== undefined;
  } catch {
    return undefined; // run() reports the configuration error
  }
  return configured ? undefined : 'no S3_* variable is set (bash scripts/s3-test-server.sh start prints a local S3 server\'s exports)';
}

function radosgwVersion(): string | undefined {
  try {
    return /ceph version (\S+)/.exec(execFileSync('radosgw', ['--version'], { encoding: 'utf8', timeout: 10_000 }))?.[1];
  } catch {
    return undefined;
  }
}

export async function run(): Promise<BenchResult> {
  const config = loadConfig();
  const s3 = config.s3;
  if (s3 === undefined) throw new Error('upload-s3: no S3_* variable is set');
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const params = uploadParams();
  const { bytes, runs } = params;
  const reference = bytes === GiB && runs >= 3;

  const client = createS3Client(s3);
  const Bucket = s3.bucket;
  try {
    await client.send(new HeadBucketCommand({ Bucket }));
  } catch (err) {
    client.destroy();
    throw new Error(`upload-s3: bucket ${Bucket} at ${s3.endpoint ?? 'AWS'} does not answer (${(err as Error).name}); is the S3 server up (bash scripts/s3-test-server.sh start)?`);
  }
  const cephConf = localCephConf(s3);
  const backendPids = s3ServerPids(s3);
  /** Frees what radosgw queued for collection (every deleted part), when the S3 server is the local test server. */
  const collect = async () => {
    if (cephConf !== undefined) await forceRadosGc(cephConf);
  };
  if (cephConf === undefined) console.log('upload-s3: no local radosgw-admin and ceph.conf: deleted objects are freed by the S3 server\'s own garbage collection (radosgw: after 2 hours)');

  const tmp = os.tmpdir();
  const fs = await statfs(tmp);
  // Source + warm-up + @tus/s3-store's spooled parts (os.tmpdir, at most 60 parts in flight) + margin.
  const need = bytes + WARMUP_BYTES + GiB;
  if (fs.bavail * fs.bsize < need) {
    client.destroy();
    throw new Error(`upload-s3: ${tmp} has ${formatBytes(fs.bavail * fs.bsize)} free, the benchmark needs ${formatBytes(need)}`);
  }
  const work = await mkdtemp(path.join(tmp, 'bxchange-bench-upload-s3-'));
  const forget = onCleanup(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  /** Key prefix of everything the two baselines store in this benchmark (bxchange stores under envelopes/<draft>/). */
  const runPrefix = `bench-upload-s3-${randomBytes(6).toString('hex')}-`;
  const servers: JsonChild[] = [];
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  try {
    console.log(`upload-s3: ${formatBytes(bytes)} × ${runs} runs per candidate, bucket ${Bucket} at ${s3.endpoint ?? 'AWS'}, part size ${formatBytes(S3_PART_SIZE)}, work dir ${work}`);
    const source = await randomFile(path.join(work, 'source.bin'), bytes);
    const warmup = await randomFile(path.join(work, 'warmup.bin'), Math.min(WARMUP_BYTES, bytes));
    syncDisks();

    // --- servers (one process each). bxchange inherits the S3_* environment; its database is chosen here.
    const bxDir = path.join(work, 'bxchange');
    mkdirSync(bxDir);
    if (config.databaseUrl !== undefined) database = await freshDatabase(config.databaseUrl, DATABASE);
    const databaseLabel = database === undefined ? 'PGlite (embedded, in the temporary data folder)' : `${database.server} (fresh database ${DATABASE} on DATABASE_URL's server)`;
    console.log(`upload-s3: bxchange database: ${databaseLabel}`);
    const bx = await startBxchange(bxDir, bytes, { DATABASE_URL: database?.url ?? '', ...PLAIN_HTTP_ENV });
    servers.push(bx.server);
    const tusPrefix = `${runPrefix}tus-`;
    const rawPrefix = `${runPrefix}raw-`;
    const tus = await startServer('bare-s3', [tusPrefix]);
    servers.push(tus.server);
    const raw = await startServer('raw-s3', [rawPrefix]);
    servers.push(raw.server);

    const storedSize = async (Key: string) => (await client.send(new HeadObjectCommand({ Bucket, Key }))).ContentLength;
    const expectSize = async (who: string, key: string, size: number) => {
      const stored = await storedSize(key);
      if (stored !== size) throw new Error(`${who}: object ${key} holds ${stored} bytes, expected ${size}`);
    };
    /** Removes what a run left under `prefix` and frees it in radosgw at once. */
    const clear = async (prefix: string) => {
      const removed = await removeUnder(client, Bucket, prefix);
      await collect();
      return removed;
    };
    const bxLeft: Removed = { objects: 0, bytes: 0, uploads: 0, keys: [] };

    const part = formatBytes(S3_PART_SIZE);
    const candidates: Candidate[] = [
      bxchangeCandidate(bx, `bxchange /api/v1/uploads on S3: bearer token, draft check, SHA-256 as bytes arrive, ${database === undefined ? 'PGlite' : 'PostgreSQL'} bookkeeping; @tus/s3-store, ${part} parts, expiration tags`, {
        async verify(draftId, url, file) {
          // The upload URL ends with <envelopeId>.<fileId>; the object is envelopes/<envelopeId>/<fileId>.
          const [envelopeId, fileId] = (new URL(url, bx.base).pathname.split('/').pop() ?? '').split('.');
          if (envelopeId !== draftId || fileId === undefined) throw new Error(`bxchange: unexpected upload URL ${url} for draft ${draftId}`);
          await expectSize('bxchange', `envelopes/${envelopeId}/${fileId}`, file.size);
        },
        async cleanup(draftId) {
          // Deleting the draft should have removed everything under its prefix; anything left is counted (a check) and removed.
          const left = await clear(`envelopes/${draftId}/`);
          bxLeft.objects += left.objects;
          bxLeft.bytes += left.bytes;
          bxLeft.uploads += left.uploads;
          bxLeft.keys.push(...left.keys);
          if (left.keys.length > 0) console.log(`upload-s3: bxchange left ${left.keys.join(', ')} after deleting draft ${draftId} (removed)`);
        },
      }),
      {
        name: 'bare @tus/s3-store',
        role: 'baseline',
        description: `@tus/server + @tus/s3-store in Fastify (passthrough parser, hijack, tus.handle), ${part} parts, bxchange's S3 client options, no expiration`,
        server: tus.server,
        samples: [],
        async prepare(file) {
          return {
            args: ['tus', `${tus.base}/files`, file.path],
            async verify({ url }) {
              await expectSize('bare @tus/s3-store', new URL(url, tus.base).pathname.split('/').pop() ?? '', file.size);
            },
            cleanup: async () => void (await clear(tusPrefix)),
          };
        },
      },
      {
        name: 'raw SDK multipart',
        role: 'baseline',
        description: `node:http PUT piped into @aws-sdk/lib-storage Upload (${part} parts, 4 in flight), bxchange's S3 client`,
        server: raw.server,
        samples: [],
        async prepare(file, label) {
          return {
            args: ['put', `${raw.base}/upload/${label}`, file.path],
            verify: () => expectSize('raw SDK multipart', `${rawPrefix}${label}`, file.size),
            cleanup: async () => void (await clear(rawPrefix)),
          };
        },
      },
    ];

    const outcome = await runRounds('upload-s3', candidates, { source, warmup }, params, backendPids);
    const results = uploadCandidateResults(candidates, backendPids.length > 0);
    const [bxResult, tusResult, rawResult] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]];
    const checks: Check[] = [
      {
        label: 'objects left in the bucket by bxchange after deleting the draft (all runs; removed by the benchmark)',
        value: bxLeft.objects + bxLeft.uploads,
        unit: '',
        detail: `${formatBytes(bxLeft.bytes)} in ${bxLeft.objects} object(s), ${bxLeft.uploads} unfinished multipart upload(s)${bxLeft.keys.length > 0 ? `, e.g. ${bxLeft.keys[0]!.replace(/^envelopes\/[^/]+\//, 'envelopes/<draft>/')}` : ''}`,
        goal: '= 0',
        met: bxLeft.objects + bxLeft.uploads === 0,
      },
    ];
    const rgw = radosgwVersion();
    return {
      name: 'upload-s3',
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
        partSize: part,
        database: database === undefined ? 'PGlite' : 'PostgreSQL',
        s3: `${s3.endpoint ?? 'AWS'}${backendPids.length > 0 && rgw !== undefined ? ` (radosgw ${rgw})` : ''}`,
        maxOtherCpu: params.maxOther,
        quietTimeoutS: params.quietTimeoutS,
        warmup: formatBytes(warmup.size),
        versions: installedVersions(['fastify', '@tus/server', '@tus/s3-store', '@aws-sdk/client-s3', '@aws-sdk/lib-storage', 'tus-js-client', database === undefined ? '@electric-sql/pglite' : 'postgres']),
      },
      candidates: results,
      ratios: [
        ratioResult('bxchange / bare @tus/s3-store', bxResult, tusResult, true, 0.95),
        ratioResult('bxchange / raw SDK multipart (issue: as close as the part size allows)', bxResult, rawResult, true),
        ratioResult('bare @tus/s3-store / raw SDK multipart (reference; FACTS: 0.86)', tusResult, rawResult, true),
      ],
      checks,
      notes: uploadNotes(candidates, params, outcome, {
        answer: 'its hash digest, database update and the completion of the multipart upload; the baselines after completing theirs',
        backend: backendPids.length > 0 ? 'the local S3 server (radosgw, ceph-osd, ceph-mon)' : undefined,
        extra: [
          `S3: bucket ${Bucket} at ${s3.endpoint ?? 'AWS'}${rgw !== undefined && backendPids.length > 0 ? `, Ceph radosgw ${rgw} with a RAM-backed (memstore) OSD on this machine` : ''}; path-style ${s3.forcePathStyle}, checksums only when required (requestChecksumCalculation/responseChecksumValidation WHEN_REQUIRED) for all three.`,
          `Part size ${part} for all three (bxchange's S3_PART_SIZE). @tus/s3-store spools each part to ${tmp} and uploads up to 60 parts at once; lib-storage buffers each part in memory, 4 in flight.`,
          `bxchange database: ${databaseLabel}.`,
          backendPids.length > 0
            ? `S3 server CPU: radosgw + ceph-osd + ceph-mon (pids ${backendPids.join(', ')}), including whatever else used the S3 server during the run (other test suites share it).`
            : 'S3 server CPU: not measured (the S3 server is not on this machine).',
          `Cleanup after every run: the draft deleted through the API (bxchange), the baselines' objects deleted, unfinished multipart uploads aborted; ${cephConf === undefined ? 'radosgw\'s garbage collection NOT forced (no local radosgw-admin and ceph.conf)' : `radosgw's garbage collection forced (radosgw-admin gc process --include-all; -c ${cephConf}), as the memstore OSD keeps deleted parts in RAM until collected`}.`,
        ],
      }),
      ...runRecords(candidates, outcome),
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    // Whatever a failed run left behind under this benchmark's prefix.
    await removeUnder(client, Bucket, runPrefix).catch((err: unknown) => console.error(`upload-s3: could not remove ${runPrefix}*: ${String(err)}`));
    await collect().catch((err: unknown) => console.error(`upload-s3: radosgw gc failed: ${String(err)}`));
    client.destroy();
    await database?.drop().catch((err: unknown) => console.error(`upload-s3: could not drop ${DATABASE}: ${String(err)}`));
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    forget();
  }
}
