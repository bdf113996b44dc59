/**
 * concurrency: 50 uploads of 50 MiB at once, aggregate throughput of
 * bxchange (embedded default) vs bare @tus/server + @tus/file-store under the
 * same load (the upload benchmark's server processes), with zero failed
 * uploads required. Runs alternate bxchange, bare, bxchange, bare…; medians
 * and the ratio of the medians.
 *
 * One client process (bench/memory/client.ts: node:http, each file streamed
 * from an fs.ReadStream in one PATCH, no retry) starts every upload at once,
 * a fresh bxchange draft each. Aggregate MB/s = bytes of the uploads that
 * succeeded and were verified on the server / client-timed span (first
 * request to last answer). A failed upload (client error, or wrong bytes on
 * the server) is counted; any failure makes the benchmark's check fail.
 *
 * Environment: BENCH_CONCURRENCY_UPLOADS (default 50), BENCH_CONCURRENCY_BYTES
 * (default 50M), BENCH_CONCURRENCY_CHUNK (bytes per PATCH; default the whole
 * file), BENCH_RUNS (default 3), BENCH_MAX_OTHER_CPU, BENCH_MAX_REPEATS,
 * BENCH_QUIET_TIMEOUT_S (noise control as in upload), BENCH_DEBUG=1.
 * Only 50 × 50 MiB, one PATCH each, ≥ 3 runs is a reference run.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runUploads, startTargets, type UploadRun } from './memory/targets.ts';
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
  ratioResult,
  round,
  syncDisks,
  type BenchResult,
  type Check,
  type QuietSample,
} from './lib.ts';

export const title = 'aggregate throughput of 50 concurrent 50 MiB tus uploads (loopback)';

const WARMUP_BYTES = 16 * MiB;

type Sample = UploadRun & QuietSample;

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v, 3) : Array.isArray(v) ? v.slice(0, 3) : v])) as T;
}

export async function run(): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const count = envInt('BENCH_CONCURRENCY_UPLOADS', 50);
  const bytes = process.env.BENCH_CONCURRENCY_BYTES ? parseBytes(process.env.BENCH_CONCURRENCY_BYTES) : 50 * MiB;
  const chunkSize = process.env.BENCH_CONCURRENCY_CHUNK ? parseBytes(process.env.BENCH_CONCURRENCY_CHUNK) : null;
  const runs = envInt('BENCH_RUNS', 3);
  const control = noiseControlFromEnv();
  const reference = count === 50 && bytes === 50 * MiB && chunkSize === null && runs >= 3;
  if (bytes < MiB) throw new Error('BENCH_CONCURRENCY_BYTES must be at least 1 MiB');

  const tmp = os.tmpdir();
  const need = bytes + WARMUP_BYTES + count * bytes + GiB;
  const free = await freeBytes(tmp);
  if (free < need) throw new Error(`concurrency: ${tmp} has ${formatBytes(free)} free, the benchmark needs ${formatBytes(need)} (source file + one run's copies + 1 GiB)`);

  const work = await mkdtemp(path.join(tmp, 'bxchange-bench-concurrency-'));
  const forget = onCleanup(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  let stop = async () => {};
  try {
    console.log(`concurrency: ${count} × ${formatBytes(bytes)} at once × ${runs} runs per server, work dir ${work}`);
    const source = await randomFile(path.join(work, 'source.bin'), bytes);
    const warmup = await randomFile(path.join(work, 'warmup.bin'), WARMUP_BYTES);
    syncDisks();
    const started = await startTargets(work, Math.max(2 * GiB, 2 * bytes));
    stop = started.stop;
    const targets = started.targets;

    for (const target of targets) {
      const s = await runUploads(target, warmup, 1, 'warmup', chunkSize);
      if (s.failures > 0) throw new Error(`${target.name} warm-up failed: ${s.errors.join('; ')}`);
      console.log(`concurrency: warm-up ${target.name}: ${s.mbps.toFixed(0)} MB/s on ${formatBytes(warmup.size)} (not counted)`);
    }

    const samples = targets.map((): Sample[] => []);
    const discarded: Array<Sample & { round: number; candidate: string }> = [];
    /** Failed uploads in every attempt, kept or discarded. */
    const failures = targets.map(() => 0);
    const errors: string[] = [];
    let keptDisturbed = 0;
    for (let r = 1; r <= runs; r++) {
      for (const [ti, target] of targets.entries()) {
        const outcome = await measureQuietly(
          control,
          () => runUploads(target, source, count, `r${r}`, chunkSize),
          (s, disturbed) => {
            failures[ti]! += s.failures;
            errors.push(...s.errors.map((e) => `${target.name} round ${r}: ${e}`));
            console.log(
              `concurrency: round ${r}/${runs} ${target.name.padEnd(17)} ${s.mbps.toFixed(1).padStart(6)} MB/s (${s.seconds.toFixed(2)} s, uploads ${s.fastestS.toFixed(1)}–${s.slowestS.toFixed(1)} s) ` +
                `server CPU ${s.serverCpu.toFixed(1)} s, RSS ${s.idleRss.toFixed(0)} → peak ${s.peakRss.toFixed(0)} MiB, client CPU ${s.clientCpu.toFixed(1)} s, other CPU ${s.otherCpu.toFixed(2)} s (${(s.otherCpu / s.seconds).toFixed(2)} core)` +
                (s.failures > 0 ? `, **${s.failures} failed**: ${s.errors.join('; ')}` : '') +
                (s.waitedS >= 3 ? `, waited ${s.waitedS.toFixed(0)} s for quiet` : '') +
                (disturbed ? '  [disturbed]' : ''),
            );
          },
        );
        samples[ti]!.push(outcome.kept);
        discarded.push(...outcome.discarded.map((s) => ({ round: r, candidate: target.name, ...s })));
        if (outcome.keptDisturbed) keptDisturbed++;
      }
    }

    const results = targets.map((target, ti) => {
      const ss = samples[ti]!;
      return candidateResult(
        target.name,
        target.role,
        target.description,
        ss.map((s) => s.mbps),
        {
          'failed uploads': { unit: '', runs: ss.map((s) => s.failures) },
          'slowest upload': { unit: 's', runs: ss.map((s) => s.slowestS) },
          'server CPU': { unit: 's', runs: ss.map((s) => s.serverCpu) },
          'client CPU': { unit: 's', runs: ss.map((s) => s.clientCpu) },
          'server RSS before': { unit: 'MiB', runs: ss.map((s) => s.idleRss) },
          'server peak RSS': { unit: 'MiB', runs: ss.map((s) => s.peakRss) },
          'other CPU': { unit: 's', runs: ss.map((s) => s.otherCpu) },
        },
      );
    });
    const [bxResult, tusResult] = results as [(typeof results)[0], (typeof results)[0]];
    const checks: Check[] = targets.map((target, ti) => ({
      label: `${target.name}: failed uploads, every attempt (${samples[ti]!.length + discarded.filter((d) => d.candidate === target.name).length} runs × ${count})`,
      value: failures[ti]!,
      unit: '',
      goal: '= 0',
      met: failures[ti] === 0,
    }));
    const all = samples.flat();
    const worstOther = Math.max(...all.map((s) => s.otherCpu / s.seconds));
    const notes = [
      `Aggregate MB/s = 10^6 bytes per second: bytes of the uploads that succeeded and were verified on the server, over the client-timed span from the first creation POST to the last answer; all ${count} uploads start at once.`,
      `Client: one process, bench/memory/client.ts (node:http, keep-alive agent without a socket limit, creation POST then ${chunkSize === null ? 'one PATCH per upload carrying the whole file' : `PATCHes of ${formatBytes(chunkSize)}`}, body streamed from an fs.ReadStream of one shared source file; no retry). bxchange gets a fresh draft per upload (created before the timer starts).`,
      'Verification per upload: bxchange, the envelope shows the file complete with the right size and SHA-256; bare tus, the stored size. Copies are deleted after each run, then `sync`. bxchange fsyncs every finished upload, the bare server does not.',
      `Failures are counted in every attempt, discarded ones included${errors.length > 0 ? `; first errors: ${errors.slice(0, 3).join(' | ')}` : ''}.`,
      `Noise control: before each run the runner waited up to ${control.quietTimeoutS} s for an idle machine; a run with more than ${control.maxOther} core of other CPU was measured again (up to ${control.maxRepeats} times): ${discarded.length} discarded` +
        (keptDisturbed > 0 ? `, **${keptDisturbed} run(s) kept although disturbed**` : '') +
        `; worst kept ${(worstOther * 100).toFixed(0)}% of one core.`,
    ];
    return {
      name: 'concurrency',
      title,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgEnd: round(os.loadavg()[0]!) },
      unit: 'MB/s',
      higherIsBetter: true,
      reference,
      params: {
        uploads: count,
        size: formatBytes(bytes),
        chunk: chunkSize === null ? 'whole file (one PATCH)' : formatBytes(chunkSize),
        runs,
        maxOtherCpu: control.maxOther,
        quietTimeoutS: control.quietTimeoutS,
        warmup: formatBytes(WARMUP_BYTES),
        versions: ['fastify', '@tus/server', '@tus/file-store', '@electric-sql/pglite'].map((p) => `${p} ${packageVersion(p)}`).join(', '),
      },
      candidates: results,
      ratios: [ratioResult('bxchange / bare @tus/server', bxResult, tusResult, true)],
      checks,
      notes,
      runs: targets.flatMap((target, ti) => samples[ti]!.map((s, i) => ({ round: i + 1, candidate: target.name, ...roundAll(s) }))),
      discarded: discarded.map(roundAll),
    };
  } finally {
    await stop();
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    forget();
  }
}
