/**
 * What the memory and concurrency benchmarks share: the two upload servers
 * of the upload benchmark (bench/upload/server.ts, each its own process:
 * bxchange on the embedded default, bare @tus/server + @tus/file-store),
 * the bxchange directory they upload as (two communes whose mailboxes publish
 * OpenPGP keys, a machine principal with a bearer token, a fresh draft per
 * upload), and one measured run: N
 * uploads of one source file at once by the streaming client
 * (bench/memory/client.ts), with the server's idle RSS, peak RSS (VmHWM
 * reset just before), CPU, and every upload checked on the server side.
 *
 * The uploaded files are random bytes, not ciphertext: the server checks
 * encryption only at submit (DESIGN §4c), which these benchmarks never do; an
 * upload benchmark measures the upload path. Drafts do need published keys.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ClientSpec, ClientUpload, ClientUploadResult } from './client.ts';
import {
  BENCH_DIR,
  MiB,
  cpuWindow,
  dirBytes,
  emptyDir,
  formatBytes,
  peakRssMiB,
  processCpuSeconds,
  resetPeakRss,
  rssMiB,
  settleRss,
  sleep,
  spawnJson,
  syncDisks,
  threadCpuDelta,
  threadCpuSeconds,
  type JsonChild,
  type SourceFile,
  api,
  startServer,
  EMBEDDED_DEFAULT_ENV,
  seedSenderDirectory,
} from '../lib.ts';

const CLIENT = path.join(BENCH_DIR, 'memory', 'client.ts');

interface Prepared {
  uploads: ClientUpload[];
  /** Checks what the server stored for each successful upload; returns one message per upload that is wrong. */
  verify(results: ClientUploadResult[]): Promise<string[]>;
  cleanup(): Promise<void>;
}

export interface Target {
  name: string;
  role: 'candidate' | 'baseline';
  description: string;
  server: JsonChild;
  /** `count` uploads of `file` (a fresh draft each for bxchange). */
  prepare(file: SourceFile, count: number, label: string): Promise<Prepared>;
}



/**
 * Starts bxchange (embedded default: PGlite in <work>/bxchange/db, blobs in <work>/bxchange/blobs,
 * whatever the caller's environment says) and bare @tus/server (files in <work>/bare-tus), one after
 * the other, and creates the directory bxchange uploads need. `stop()` stops both.
 */
export async function startTargets(work: string, maxUploadBytes: number): Promise<{ targets: [Target, Target]; stop(): Promise<void> }> {
  const bxDir = path.join(work, 'bxchange');
  const tusDir = path.join(work, 'bare-tus');
  for (const dir of [bxDir, tusDir]) mkdirSync(dir);
  const servers: JsonChild[] = [];
  const stop = () => Promise.all(servers.map((s) => s.stop())).then(() => undefined);
  try {
    const adminToken = `bxc_bench_admin_${randomBytes(24).toString('hex')}`;
    const bx = await startServer('bxchange', [], {
      BXCHANGE_DATA_DIR: bxDir,
      BXCHANGE_ADMIN_TOKEN: adminToken,
      LOG_LEVEL: 'warn',
      BXCHANGE_MAX_UPLOAD_BYTES: String(maxUploadBytes),
      ...EMBEDDED_DEFAULT_ENV,
    });
    servers.push(bx.server);
    const tus = await startServer('bare-tus', [tusDir], { BENCH_FSYNC_BASELINES: '0' });
    servers.push(tus.server);

    const token = await seedSenderDirectory(bx.base, adminToken);
    const sender = (method: string, url: string, body?: unknown, expect?: number[]) => api(bx.base, token, method, url, body, expect);

    const bxTarget: Target = {
      name: 'bxchange',
      role: 'candidate',
      description: 'bxchange /api/v1/uploads on the embedded default: bearer token, a fresh draft per upload, SHA-256 while streaming, PGlite bookkeeping, fsync at the end',
      server: bx.server,
      async prepare(file, count, label) {
        const drafts: string[] = [];
        for (let i = 0; i < count; i++) {
          const draft = await sender('POST', '/envelopes', {
            type: 'general.letter',
            from: 'secretariat@ixelles',
            to: ['secretariat@uccle'],
            metadata: { subject: `Benchmark ${label} ${i + 1}` },
          });
          drafts.push(draft.id as string);
        }
        return {
          uploads: drafts.map((envelope, i) => ({
            label: `${label}-${i + 1}`,
            endpoint: `${bx.base}/api/v1/uploads`,
            file: file.path,
            headers: { authorization: `Bearer ${token}` },
            metadata: { filename: path.basename(file.path), filetype: 'application/octet-stream', envelope },
          })),
          async verify(results) {
            const wrong: string[] = [];
            for (const [i, result] of results.entries()) {
              if (!result.ok) continue;
              try {
                const stored = (await sender('GET', `/envelopes/${drafts[i]}`)).files?.[0];
                if (stored?.complete !== true || stored.size !== file.size || stored.sha256 !== file.sha256) {
                  wrong.push(`${result.label}: bxchange stored ${JSON.stringify(stored)}, expected ${file.size} bytes with SHA-256 ${file.sha256}`);
                }
              } catch (err) {
                wrong.push(`${result.label}: ${String(err)}`);
              }
            }
            return wrong;
          },
          async cleanup() {
            for (const id of drafts) await sender('DELETE', `/envelopes/${id}`, undefined, [204, 404]);
            const left = await dirBytes(path.join(bxDir, 'blobs')).catch(() => 0);
            if (left > MiB) throw new Error(`bxchange: ${formatBytes(left)} left in the blob folder after deleting the drafts`);
          },
        };
      },
    };
    const tusTarget: Target = {
      name: 'bare @tus/server',
      role: 'baseline',
      description: '@tus/server + @tus/file-store in Fastify (passthrough parser, hijack, tus.handle), no fsync: the upload benchmark\'s baseline process',
      server: tus.server,
      async prepare(file, count, label) {
        return {
          uploads: Array.from({ length: count }, (_, i) => ({
            label: `${label}-${i + 1}`,
            endpoint: `${tus.base}/files`,
            file: file.path,
            metadata: { filename: path.basename(file.path), filetype: 'application/octet-stream' },
          })),
          async verify(results) {
            const wrong: string[] = [];
            for (const result of results) {
              if (!result.ok) continue;
              const id = new URL(result.url ?? '', tus.base).pathname.split('/').pop() ?? '';
              const size = await stat(path.join(tusDir, id)).then((s) => s.size, () => -1);
              if (size !== file.size) wrong.push(`${result.label}: bare tus stored ${size} bytes, expected ${file.size}`);
            }
            return wrong;
          },
          cleanup: () => emptyDir(tusDir),
        };
      },
    };
    return { targets: [bxTarget, tusTarget], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface UploadRun {
  uploads: number;
  /** Client-timed span: first request to last answer. */
  seconds: number;
  /** Bytes of the uploads that succeeded (and were verified). */
  bytes: number;
  /** Aggregate MB/s (10^6 bytes/s) of the verified uploads over the span. */
  mbps: number;
  /** Uploads that failed in the client or whose stored bytes were wrong. */
  failures: number;
  errors: string[];
  /** Server RSS just before the run (after VmHWM reset), its peak during the run, and the difference (MiB). */
  idleRss: number;
  peakRss: number;
  growth: number;
  serverCpu: number;
  clientCpu: number;
  clientPeakRss: number;
  /** Per-upload spans (s): fastest and slowest. */
  fastestS: number;
  slowestS: number;
  otherCpu: number;
  steal: number;
  /** Seconds waited for the server's RSS to settle before the run, and whether it did. */
  settledS: number;
  settled: boolean;
}

/**
 * `count` uploads of `file` into `target` at once; the uploaded copies are deleted afterwards, then
 * `sync`. With `settleMs` > 0 the server's RSS must first stay flat that long (settleRss) before the
 * idle RSS is read and VmHWM reset, so garbage left by earlier activity does not inflate the idle figure.
 */
export async function runUploads(target: Target, file: SourceFile, count: number, label: string, chunkSize: number | null, settleMs = 0): Promise<UploadRun> {
  const prepared = await target.prepare(file, count, label);
  const spec: ClientSpec = { chunkSize, uploads: prepared.uploads };
  const client = spawnJson(CLIENT, [JSON.stringify(spec)]);
  try {
    const ready = await client.next((m) => m.event === 'ready');
    if (ready.uploads !== count) throw new Error(`${target.name} client: ready for ${ready.uploads} uploads, not ${count}`);
    const pid = target.server.pid;
    const settle = settleMs > 0 ? await settleRss(pid, { stableMs: settleMs, timeoutMs: Math.max(60_000, 4 * settleMs) }) : { waitedMs: 0, settled: true };
    if (!(await resetPeakRss(pid))) throw new Error(`cannot reset the peak RSS of ${target.name} (/proc/${pid}/clear_refs refused)`);
    const idleRss = rssMiB(pid);
    const cpu0 = processCpuSeconds(pid);
    const threads0 = process.env.BENCH_THREADS === '1' ? threadCpuSeconds(pid) : undefined;
    const window = cpuWindow();
    client.send('go');
    const done = await client.next((m) => m.event === 'done', 1_800_000);
    const serverCpu = processCpuSeconds(pid) - cpu0;
    // BENCH_THREADS=1: where the server's CPU went, per thread kind (as in the upload benchmarks).
    if (threads0 !== undefined) console.error(`${label} ${target.name} server threads: ${threadCpuDelta(threads0, threadCpuSeconds(pid))}`);
    const peakRss = peakRssMiB(pid);
    const machine = window.stop(serverCpu + done.cpuSeconds);
    await client.exited;
    const results = done.uploads as ClientUploadResult[];
    const wrong = await prepared.verify(results);
    const failed = results.filter((r) => !r.ok);
    const errors = [...failed.map((r) => `${r.label}: ${r.error}`), ...wrong];
    const bytes = done.bytes - wrong.length * file.size;
    return {
      uploads: count,
      seconds: done.seconds,
      bytes,
      mbps: bytes / 1e6 / done.seconds,
      failures: failed.length + wrong.length,
      errors: errors.slice(0, 5),
      idleRss,
      peakRss,
      growth: peakRss - idleRss,
      serverCpu,
      clientCpu: done.cpuSeconds,
      clientPeakRss: done.peakRssMiB,
      fastestS: Math.min(...results.map((r) => r.seconds)),
      slowestS: Math.max(...results.map((r) => r.seconds)),
      otherCpu: machine.foreignCpuSeconds,
      steal: machine.stealSeconds,
      settledS: settle.waitedMs / 1000,
      settled: settle.settled,
    };
  } finally {
    await client.stop();
    await prepared.cleanup();
    // Settle the disk between runs: no writeback from one run lands in the next.
    syncDisks();
    await sleep(1000);
  }
}
