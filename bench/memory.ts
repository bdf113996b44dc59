/**
 * memory: how much a server's RSS grows while it receives uploads — one
 * upload of 64 MiB, 1 GiB and 4 GiB, then 20 uploads of 200 MiB at once —
 * for bxchange (embedded default) next to bare @tus/server + @tus/file-store
 * (the upload benchmark's server processes, bench/upload/server.ts).
 * Growth = peak RSS during the run (VmHWM, reset just before) − the RSS at
 * that moment (idle, after a warm-up upload). Goal (issue): flat, a single
 * upload grows the server by less than 64 MB whatever its size.
 *
 * The files are generated on disk once and streamed by bench/memory/client.ts
 * (node:http, an fs.ReadStream piped into one PATCH per upload: the client
 * never holds a file in memory). Every uploaded copy is deleted after its
 * run, then `sync`.
 *
 * Environment: BENCH_MEMORY_SIZES (default 64M,1G,4G; e.g. 16M,64M for a
 * smoke run), BENCH_MEMORY_CONCURRENT (default 20x200M; "none" to skip),
 * BENCH_MEMORY_CHUNK (bytes per PATCH, default: the whole file in one PATCH),
 * BENCH_MEMORY_SETTLE_S (default 12: the server's RSS must stay flat that
 * long before a run; 0 = no wait), BENCH_RUNS (default 3), BENCH_QUIET_TIMEOUT_S (default 90; 0 = do not wait
 * for an idle machine before a run), BENCH_DEBUG=1.
 * Only the defaults (settle ≥ 12 s) with ≥ 3 runs make a reference run.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runUploads, startTargets, type Target, type UploadRun } from './memory/targets.ts';
import {
  GiB,
  MiB,
  candidateResult,
  envInt,
  formatBytes,
  freeBytes,
  machineInfo,
  measureQuietly,
  noiseControlFromEnv,
  onCleanup,
  packageVersion,
  parseBytes,
  randomFile,
  round,
  syncDisks,
  type BenchResult,
  type Check,
  type QuietSample,
  type SourceFile,
} from './lib.ts';

export const title = 'server RSS growth while uploading (64 MiB, 1 GiB, 4 GiB, 20 × 200 MiB at once)';

const DEFAULT_SIZES = '64M,1G,4G';
const DEFAULT_CONCURRENT = '20x200M';
const WARMUP_BYTES = 16 * MiB;
/** The issue's budget, 64 MB (10^6 bytes), in MiB. */
const GOAL_MIB = 64e6 / MiB;

interface Case {
  label: string;
  size: number;
  count: number;
}

type Sample = UploadRun & QuietSample;

function parseConcurrent(raw: string): Case | null {
  if (/^\s*(none|0|off)\s*$/i.test(raw)) return null;
  const match = /^\s*(\d+)\s*[x×*]\s*(\S+)\s*$/i.exec(raw);
  if (match === null) throw new Error(`BENCH_MEMORY_CONCURRENT must look like 20x200M (or "none"), got "${raw}"`);
  const count = Number(match[1]);
  const size = parseBytes(match[2]!);
  if (count < 2) throw new Error('BENCH_MEMORY_CONCURRENT needs at least 2 uploads');
  return { label: `${count} × ${formatBytes(size)} at once`, size, count };
}

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v, 3) : v])) as T;
}

export async function run(): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const sizesRaw = process.env.BENCH_MEMORY_SIZES?.trim() || DEFAULT_SIZES;
  const sizes = sizesRaw.split(',').map((s) => parseBytes(s));
  if (sizes.some((s) => s < MiB)) throw new Error('BENCH_MEMORY_SIZES: every size must be at least 1 MiB');
  const concurrentRaw = process.env.BENCH_MEMORY_CONCURRENT?.trim() || DEFAULT_CONCURRENT;
  const concurrent = parseConcurrent(concurrentRaw);
  const chunkSize = process.env.BENCH_MEMORY_CHUNK ? parseBytes(process.env.BENCH_MEMORY_CHUNK) : null;
  const runs = envInt('BENCH_RUNS', 3);
  const settleS = envInt('BENCH_MEMORY_SETTLE_S', 12, 0);
  const control = noiseControlFromEnv();
  const reference =
    sizes.join(',') === [64 * MiB, GiB, 4 * GiB].join(',') &&
    concurrent !== null &&
    concurrent.count === 20 &&
    concurrent.size === 200 * MiB &&
    chunkSize === null &&
    settleS >= 12 &&
    runs >= 3;

  const cases: Case[] = [...sizes.map((size) => ({ label: formatBytes(size), size, count: 1 })), ...(concurrent === null ? [] : [concurrent])];
  const distinct = [...new Set(cases.map((c) => c.size))];
  const largestRun = Math.max(...cases.map((c) => c.size * c.count));
  const need = distinct.reduce((a, b) => a + b, 0) + WARMUP_BYTES + largestRun + GiB;
  const tmp = os.tmpdir();
  const free = await freeBytes(tmp);
  if (free < need) {
    throw new Error(`memory: ${tmp} has ${formatBytes(free)} free, the benchmark needs ${formatBytes(need)} (source files + the largest run's copies + 1 GiB)`);
  }

  const work = await mkdtemp(path.join(tmp, 'bxchange-bench-memory-'));
  const forget = onCleanup(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  let stop = async () => {};
  try {
    console.log(`memory: ${cases.map((c) => c.label).join(', ')} × ${runs} runs per server, work dir ${work} (${(free / GiB).toFixed(1)} GiB free)`);
    const t0 = performance.now();
    const sources = new Map<number, SourceFile>();
    for (const size of distinct) sources.set(size, await randomFile(path.join(work, `source-${size}.bin`), size));
    const warmup = await randomFile(path.join(work, 'warmup.bin'), WARMUP_BYTES);
    syncDisks();
    console.log(`memory: source files written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const started = await startTargets(work, Math.max(2 * GiB, 2 * Math.max(...distinct)));
    stop = started.stop;
    const targets = started.targets;

    for (const target of targets) {
      const s = await runUploads(target, warmup, 1, 'warmup', chunkSize);
      if (s.failures > 0) throw new Error(`${target.name} warm-up failed: ${s.errors.join('; ')}`);
      console.log(`memory: warm-up ${target.name}: RSS ${s.idleRss.toFixed(0)} → peak ${s.peakRss.toFixed(0)} MiB on ${formatBytes(warmup.size)} (not counted)`);
    }

    // samples[case][target] = one Sample per run. Case by case (every single-upload size before the
    // concurrent case, whose burst may leave memory behind), runs alternating the servers.
    const samples = cases.map(() => targets.map((): Sample[] => []));
    for (const [ci, c] of cases.entries()) {
      for (let r = 1; r <= runs; r++) {
        for (const [ti, target] of targets.entries()) {
          const { kept } = await measureQuietly(
            control,
            () => runUploads(target, sources.get(c.size)!, c.count, `r${r}`, chunkSize, settleS * 1000),
            (s) =>
              console.log(
                `memory: ${c.label.padEnd(20)} run ${r}/${runs} ${target.name.padEnd(17)} RSS ${s.idleRss.toFixed(0)} → peak ${s.peakRss.toFixed(0)} MiB ` +
                  `(+${s.growth.toFixed(1)}), ${s.mbps.toFixed(0)} MB/s in ${s.seconds.toFixed(1)} s, server CPU ${s.serverCpu.toFixed(1)} s, ` +
                  `client peak RSS ${s.clientPeakRss.toFixed(0)} MiB, other CPU ${s.otherCpu.toFixed(1)} s` +
                  (s.failures > 0 ? `, **${s.failures} failed**: ${s.errors.join('; ')}` : '') +
                  (s.waitedS >= 3 ? `, waited ${s.waitedS.toFixed(0)} s for quiet` : '') +
                  `, RSS ${s.settled ? 'settled' : '**not settled**'} after ${s.settledS.toFixed(0)} s`,
              ),
            false,
          );
          samples[ci]![ti]!.push(kept);
        }
      }
    }

    const candidates = cases.flatMap((c, ci) =>
      targets.map((target, ti) => {
        const ss = samples[ci]![ti]!;
        return candidateResult(
          `${target.name} · ${c.label}`,
          target.role,
          target.description,
          ss.map((s) => s.growth),
          {
            'idle RSS': { unit: 'MiB', runs: ss.map((s) => s.idleRss) },
            'peak RSS': { unit: 'MiB', runs: ss.map((s) => s.peakRss) },
            throughput: { unit: 'MB/s', runs: ss.map((s) => s.mbps) },
            'server CPU': { unit: 's', runs: ss.map((s) => s.serverCpu) },
            'client peak RSS': { unit: 'MiB', runs: ss.map((s) => s.clientPeakRss) },
            'other CPU': { unit: 's', runs: ss.map((s) => s.otherCpu) },
          },
        );
      }),
    );

    const checks: Check[] = [];
    // Runs in the order measured: case by case, run by run.
    const firstIdle = (ti: number) => samples[0]![ti]![0]!.idleRss;
    const lastIdle = (ti: number) => samples.at(-1)![ti]!.at(-1)!.idleRss;
    const worst = (ss: Sample[]) => Math.max(...ss.map((s) => s.growth));
    for (const [ci, c] of cases.entries()) {
      for (const [ti, target] of targets.entries()) {
        const ss = samples[ci]![ti]!;
        const other = targets.find((t) => t !== target)!;
        const growth = round(worst(ss), 1);
        const check: Check = {
          label: `${target.name} · ${c.label}: RSS growth, worst run`,
          value: growth,
          unit: 'MiB',
          detail: `idle ${Math.min(...ss.map((s) => s.idleRss)).toFixed(0)}–${Math.max(...ss.map((s) => s.idleRss)).toFixed(0)} → peak ≤ ${Math.max(...ss.map((s) => s.peakRss)).toFixed(0)} MiB; ${other.name} +${worst(samples[ci]![targets.indexOf(other)]!).toFixed(1)}`,
        };
        // The goal is per single upload; the concurrent case is shown for information.
        if (c.count === 1) {
          check.goal = `< ${GOAL_MIB.toFixed(1)} MiB (64 MB)`;
          check.met = growth < GOAL_MIB;
        }
        checks.push(check);
      }
    }
    const all = samples.flat(2);
    const failures = targets.map((t, ti) => samples.reduce((sum, perCase) => sum + perCase[ti]!.reduce((n, s) => n + s.failures, 0), 0));
    for (const [ti, target] of targets.entries()) {
      const kept = samples.flatMap((perCase) => perCase[ti]!.map((s) => s.idleRss));
      checks.push({
        label: `${target.name}: idle RSS, first → last run (memory kept after runs)`,
        value: round(lastIdle(ti) - firstIdle(ti), 1),
        unit: 'MiB',
        detail: `${firstIdle(ti).toFixed(0)} → ${lastIdle(ti).toFixed(0)} MiB, highest ${Math.max(...kept).toFixed(0)}`,
      });
    }
    for (const [ti, target] of targets.entries()) {
      checks.push({ label: `${target.name}: failed uploads, all runs`, value: failures[ti]!, unit: '', goal: '= 0', met: failures[ti] === 0 });
    }
    const single = cases.filter((c) => c.count === 1);
    const bxWorst = single.map((c) => worst(samples[cases.indexOf(c)]![0]!));
    const unsettled = all.filter((s) => !s.settled).length;
    const notes = [
      `Growth = peak RSS (VmHWM, reset with clear_refs just before the run) − RSS at that moment ("idle RSS"); the goal is checked on the worst run of each size (64 MB = ${GOAL_MIB.toFixed(1)} MiB).` +
        ` Before the reset the server's RSS had to stay within 1 MiB for ${settleS} s (V8 frees garbage ≈ 8 s after activity; bxchange's RSS then drops by up to ≈ 150 MiB, and an idle RSS read earlier would hide growth)` +
        (unsettled > 0 ? `; **${unsettled} run(s) started without a settled RSS**` : '; every run started settled') +
        `. A ${formatBytes(WARMUP_BYTES)} warm-up upload per server precedes the runs; then case by case (the single sizes first, the concurrent case last), ${runs} run(s) each, alternating the servers.` +
        (single.length > 1 ? ` bxchange's worst growth by size: ${single.map((c, i) => `${c.label} +${bxWorst[i]!.toFixed(1)}`).join(', ')} MiB.` : ''),
      `Client: bench/memory/client.ts, a minimal tus client on node:http (creation POST, then ${chunkSize === null ? 'one PATCH per upload carrying the whole file' : `PATCHes of ${formatBytes(chunkSize)}`}) whose body is an fs.ReadStream piped into the request: the client never holds a file (its own peak RSS is in the table); ` +
        `not tus-js-client, which in Node buffers every finite chunk and takes an unlimited one only from a Buffer. Concurrent uploads start at once, one socket each, no retry.`,
      'Each upload is checked on the server side (bxchange: the envelope shows the file complete with the right size and SHA-256; bare tus: the stored size) and its copy deleted right after the run (bxchange: the drafts are deleted through the API), then `sync`.',
      `Idle RSS at the first run → the last: ${targets.map((t, ti) => `${t.name} ${firstIdle(ti).toFixed(0)} → ${lastIdle(ti).toFixed(0)} MiB`).join(', ')}. bxchange's base is mostly PGlite (the embedded WebAssembly PostgreSQL); the goal is about growth, not this base. ` +
        'An idle RSS that rises from run to run is memory a run kept after it ended: it is not counted as growth by the next run, hence the "idle RSS, first → last run" rows. ' +
        'Throughput is shown for context only (no repeat of disturbed runs); the upload and concurrency benchmarks measure it.',
      `Noise: before each run the runner waited up to ${control.quietTimeoutS} s for an idle machine; ${all.filter((s) => !s.quietBefore).length} run(s) started without one. RSS does not depend on other load the way throughput does, so disturbed runs are kept (other CPU is in the table).`,
    ];
    return {
      name: 'memory',
      title,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgEnd: round(os.loadavg()[0]!) },
      unit: 'MiB RSS growth',
      higherIsBetter: false,
      reference,
      params: {
        sizes: sizes.map(formatBytes).join(', '),
        concurrent: concurrent === null ? 'none' : `${concurrent.count} × ${formatBytes(concurrent.size)}`,
        chunk: chunkSize === null ? 'whole file (one PATCH)' : formatBytes(chunkSize),
        runs,
        quietTimeoutS: control.quietTimeoutS,
        settleS,
        warmup: formatBytes(WARMUP_BYTES),
        versions: ['fastify', '@tus/server', '@tus/file-store', '@electric-sql/pglite'].map((p) => `${p} ${packageVersion(p)}`).join(', '),
      },
      candidates,
      ratios: [],
      checks,
      notes,
      runs: cases.flatMap((c, ci) =>
        targets.flatMap((target: Target, ti) => samples[ci]![ti]!.map((s, i) => ({ round: i + 1, case: c.label, candidate: target.name, ...roundAll(s) }))),
      ),
    };
  } finally {
    await stop();
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    forget();
  }
}
