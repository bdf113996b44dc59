/**
 * What the two upload benchmarks share (bench/upload.ts on the local folder,
 * bench/upload-s3.ts on S3): the parameters, the bxchange server with its
 * seeded sender and one fresh draft per run, one measured upload (client and
 * server in their own processes, CPU and peak RSS read from /proc), the
 * rounds that alternate the candidates and measure a disturbed run again,
 * and the result tables and notes built from the samples.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import {
  BENCH_DIR,
  GiB,
  MiB,
  api,
  candidateResult,
  cpuWindow,
  envInt,
  envNumber,
  formatBytes,
  packageVersion,
  parseBytes,
  peakRssMiB,
  processCpuSeconds,
  resetPeakRss,
  round,
  rssMiB,
  seedSenderDirectory,
  sleep,
  spawnJson,
  startServer,
  syncDisks,
  threadCpuDelta,
  threadCpuSeconds,
  waitForQuiet,
  type CandidateResult,
  type JsonChild,
  type SourceFile,
} from '../lib.ts';

const CLIENT = path.join(BENCH_DIR, 'upload', 'client.ts');
/** BENCH_THREADS=1: print where each server's CPU went, per thread kind, after every run. */
const THREADS = process.env.BENCH_THREADS === '1';
export const WARMUP_BYTES = 16 * MiB;

export interface Sample {
  mbps: number;
  seconds: number;
  serverCpu: number;
  clientCpu: number;
  /** CPU of the storage backend's processes (radosgw, OSD, monitor) during the run; 0 without one. */
  backendCpu: number;
  serverPeakRss: number;
  serverStartRss: number;
  otherCpu: number;
  steal: number;
  /** Seconds waited for a quiet machine before the run, and whether it came. */
  waitedS: number;
  quietBefore: boolean;
}

export interface Prepared {
  args: string[];
  verify(done: { url: string; bytes: number }): Promise<void>;
  cleanup(): Promise<void>;
}

export interface Candidate {
  name: string;
  role: 'candidate' | 'baseline';
  description: string;
  server: JsonChild;
  prepare(file: SourceFile, label: string): Promise<Prepared>;
  samples: Sample[];
}

export interface UploadParams {
  bytes: number;
  runs: number;
  /** Foreign CPU (in cores) above which a run counts as disturbed. */
  maxOther: number;
  /** Extra attempts of one run when it was disturbed. */
  maxRepeats: number;
  quietTimeoutS: number;
}

/** BENCH_UPLOAD_BYTES (default 1 GiB), BENCH_RUNS, BENCH_MAX_OTHER_CPU, BENCH_MAX_REPEATS, BENCH_QUIET_TIMEOUT_S. */
export function uploadParams(): UploadParams {
  const bytes = process.env.BENCH_UPLOAD_BYTES ? parseBytes(process.env.BENCH_UPLOAD_BYTES) : GiB;
  if (bytes < MiB) throw new Error('BENCH_UPLOAD_BYTES must be at least 1 MiB');
  return {
    bytes,
    runs: envInt('BENCH_RUNS', 3),
    maxOther: envNumber('BENCH_MAX_OTHER_CPU', 0.2),
    maxRepeats: envInt('BENCH_MAX_REPEATS', 5, 0),
    quietTimeoutS: envInt('BENCH_QUIET_TIMEOUT_S', 90, 0),
  };
}

// ---------------------------------------------------------------- bxchange

export interface BxchangeServer {
  server: JsonChild;
  base: string;
  /** The seeded machine principal's token (send on secretariat@ixelles). */
  token: string;
  /** JSON call to the API as that principal. */
  sender(method: string, url: string, body?: unknown, expect?: number[]): Promise<any>;
}

/**
 * Starts the real app (bench/upload/server.ts bxchange) in `dataDir` with `env` on top (database and
 * storage choice), then seeds the directory the uploads are sent in.
 */
export async function startBxchange(dataDir: string, bytes: number, env: Record<string, string>): Promise<BxchangeServer> {
  const adminToken = `bxc_bench_admin_${randomBytes(24).toString('hex')}`;
  const { server, base } = await startServer('bxchange', [], {
    BXCHANGE_DATA_DIR: dataDir,
    BXCHANGE_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'warn',
    BXCHANGE_MAX_UPLOAD_BYTES: String(Math.max(2 * GiB, 2 * bytes)),
    ...env,
  });
  try {
    // Two communes, a mailbox each with its published OpenPGP key (a draft needs the keys of its
    // recipients and of its sender), a sending machine principal with a token.
    const token = await seedSenderDirectory(base, adminToken);
    return { server, base, token, sender: (method, url, body, expect) => api(base, token, method, url, body, expect) };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** What a bxchange candidate checks and removes in its storage, beyond the envelope the API shows. */
export interface StoredCheck {
  /** After the envelope showed the file complete: `url` is the upload URL the client got. */
  verify(draftId: string, url: string, file: SourceFile): Promise<void>;
  /** After the draft was deleted through the API. */
  cleanup(draftId: string): Promise<void>;
}

/**
 * The bxchange candidate: a fresh draft per run (not timed), the upload to /api/v1/uploads as the seeded
 * principal, then the envelope must show the file complete with the right size and SHA-256; the draft
 * (and so the file) is deleted through the API afterwards.
 */
export function bxchangeCandidate(bx: BxchangeServer, description: string, stored: StoredCheck, name = 'bxchange'): Candidate {
  return {
    name,
    role: 'candidate',
    description,
    server: bx.server,
    samples: [],
    async prepare(file) {
      // The uploaded file stays random bytes, not ciphertext: the server checks encryption at
      // submit, which this benchmark never does; an upload benchmark measures the upload path.
      const draft = await bx.sender('POST', '/envelopes', {
        type: 'general.letter',
        from: 'secretariat@ixelles',
        to: ['secretariat@uccle'],
        metadata: { subject: 'Benchmark' },
      });
      return {
        args: ['tus', `${bx.base}/api/v1/uploads`, file.path, bx.token, draft.id],
        async verify({ url }) {
          const envelope = await bx.sender('GET', `/envelopes/${draft.id}`);
          const file0 = envelope.files?.[0];
          if (file0?.complete !== true || file0.size !== file.size || file0.sha256 !== file.sha256) {
            throw new Error(`bxchange stored ${JSON.stringify(file0)}, expected ${file.size} bytes with SHA-256 ${file.sha256}`);
          }
          await stored.verify(draft.id, url, file);
        },
        async cleanup() {
          await bx.sender('DELETE', `/envelopes/${draft.id}`, undefined, [204, 404]);
          await stored.cleanup(draft.id);
        },
      };
    },
  };
}

// ---------------------------------------------------------------- one run, and the rounds

async function measure(candidate: Candidate, file: SourceFile, label: string, backendPids: number[]): Promise<Omit<Sample, 'waitedS' | 'quietBefore'>> {
  const prepared = await candidate.prepare(file, label);
  const client = spawnJson(CLIENT, prepared.args);
  const backendSeconds = () => backendPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  try {
    const ready = await client.next((m) => m.event === 'ready' || m.event === 'error');
    if (ready.event !== 'ready') throw new Error(`${candidate.name} client: ${ready.message}`);
    const pid = candidate.server.pid;
    await resetPeakRss(pid);
    const serverStartRss = rssMiB(pid);
    const cpu0 = processCpuSeconds(pid);
    const threads0 = THREADS ? threadCpuSeconds(pid) : undefined;
    const backend0 = backendSeconds();
    const window = cpuWindow();
    client.send('go');
    const done = await client.next((m) => m.event === 'done' || m.event === 'error');
    const serverCpu = processCpuSeconds(pid) - cpu0;
    if (threads0 !== undefined) console.error(`${label} ${candidate.name} server threads: ${threadCpuDelta(threads0, threadCpuSeconds(pid))}`);
    const backendCpu = backendSeconds() - backend0;
    const serverPeakRss = peakRssMiB(pid);
    if (done.event !== 'done') throw new Error(`${candidate.name} upload failed: ${done.message}`);
    const machine = window.stop(serverCpu + backendCpu + done.cpuSeconds);
    await client.exited;
    if (done.bytes !== file.size) throw new Error(`${candidate.name}: the client sent ${done.bytes} bytes, not ${file.size}`);
    await prepared.verify(done);
    return {
      mbps: file.size / 1e6 / done.seconds,
      seconds: done.seconds,
      serverCpu,
      clientCpu: done.cpuSeconds,
      backendCpu,
      serverPeakRss,
      serverStartRss,
      otherCpu: machine.foreignCpuSeconds,
      steal: machine.stealSeconds,
    };
  } finally {
    await client.stop();
    await prepared.cleanup();
    // Settle the disk between runs: no writeback from one run lands in the next.
    syncDisks();
    await sleep(1000);
  }
}

export interface RoundsOutcome {
  /** Attempts measured again because other processes disturbed them. */
  discarded: Array<Sample & { round: number; candidate: string }>;
  repeated: number;
  /** Runs kept although disturbed (every attempt was). */
  keptDisturbed: number;
}

/**
 * One warm-up upload per candidate (not counted), then rounds A, B, C, A, B, C… Before each run, wait
 * (bounded) for the shared machine to be quiet. A run during which other processes used more than
 * `maxOther` cores is discarded and measured again at once, within its round (bounded); if every attempt
 * is disturbed, the least disturbed one is kept and reported. `backendPids`: processes whose CPU counts
 * as the storage backend's, not as someone else's (radosgw and its OSD on this machine).
 */
export async function runRounds(
  name: string,
  candidates: Candidate[],
  files: { source: SourceFile; warmup: SourceFile },
  params: UploadParams,
  backendPids: number[] = [],
): Promise<RoundsOutcome> {
  const { runs, maxOther, maxRepeats, quietTimeoutS } = params;
  for (const c of candidates) {
    const s = await measure(c, files.warmup, 'warmup', backendPids);
    console.log(`${name}: warm-up ${c.name}: ${s.mbps.toFixed(0)} MB/s on ${formatBytes(files.warmup.size)} (not counted)`);
  }
  const describe = (s: Sample) =>
    `${s.mbps.toFixed(1).padStart(6)} MB/s (${s.seconds.toFixed(2)} s)  server CPU ${s.serverCpu.toFixed(2)} s, client CPU ${s.clientCpu.toFixed(2)} s, ` +
    (backendPids.length > 0 ? `S3 server CPU ${s.backendCpu.toFixed(2)} s, ` : '') +
    `server RSS ${s.serverStartRss.toFixed(0)} → peak ${s.serverPeakRss.toFixed(0)} MiB, other CPU ${s.otherCpu.toFixed(2)} s (${(s.otherCpu / s.seconds).toFixed(2)} core), steal ${s.steal.toFixed(2)} s` +
    (s.waitedS >= 3 ? `, waited ${s.waitedS.toFixed(0)} s for quiet` : '');
  const load = (s: Sample) => s.otherCpu / s.seconds;
  const outcome: RoundsOutcome = { discarded: [], repeated: 0, keptDisturbed: 0 };
  for (let r = 1; r <= runs; r++) {
    for (const c of candidates) {
      const attempts: Sample[] = [];
      for (let attempt = 0; attempt <= maxRepeats; attempt++) {
        const quiet = quietTimeoutS > 0 ? await waitForQuiet({ timeoutMs: quietTimeoutS * 1000 }) : { waitedMs: 0, quiet: true };
        const s: Sample = { ...(await measure(c, files.source, `run-${r}`, backendPids)), waitedS: quiet.waitedMs / 1000, quietBefore: quiet.quiet };
        attempts.push(s);
        const disturbed = load(s) > maxOther;
        console.log(`${name}: round ${r}/${runs} ${c.name.padEnd(17)} ${describe(s)}${disturbed ? '  [disturbed]' : ''}`);
        if (!disturbed) break;
      }
      const kept = attempts.reduce((best, s) => (load(s) < load(best) ? s : best));
      if (load(kept) > maxOther) outcome.keptDisturbed++;
      for (const s of attempts) if (s !== kept) outcome.discarded.push({ round: r, candidate: c.name, ...s });
      outcome.repeated += attempts.length - 1;
      c.samples.push(kept);
    }
  }
  return outcome;
}

// ---------------------------------------------------------------- results

/** The candidates' tables: MB/s per run, with CPU, RSS and disturbance as extras (S3 server CPU when measured). */
export function uploadCandidateResults(candidates: Candidate[], withBackend = false): CandidateResult[] {
  return candidates.map((c) =>
    candidateResult(
      c.name,
      c.role,
      c.description,
      c.samples.map((s) => s.mbps),
      {
        'server CPU': { unit: 's', runs: c.samples.map((s) => s.serverCpu) },
        'client CPU': { unit: 's', runs: c.samples.map((s) => s.clientCpu) },
        ...(withBackend ? { 'S3 server CPU': { unit: 's', runs: c.samples.map((s) => s.backendCpu) } } : {}),
        'server RSS before': { unit: 'MiB', runs: c.samples.map((s) => s.serverStartRss) },
        'server peak RSS': { unit: 'MiB', runs: c.samples.map((s) => s.serverPeakRss) },
        'other CPU': { unit: 's', runs: c.samples.map((s) => s.otherCpu) },
        steal: { unit: 's', runs: c.samples.map((s) => s.steal) },
      },
    ),
  );
}

/**
 * The notes both upload benchmarks print: what MB/s spans (`answer`: what bxchange does before answering
 * the PATCH), the client, then `extra`, then memory, disturbance and noise control.
 */
export function uploadNotes(candidates: Candidate[], params: UploadParams, outcome: RoundsOutcome, options: { answer: string; extra: string[]; backend?: string }): string[] {
  const all = candidates.flatMap((c) => c.samples);
  const worstOther = Math.max(...all.map((s) => s.otherCpu / s.seconds));
  const worstSteal = Math.max(...all.map((s) => s.steal / s.seconds));
  return [
    `MB/s = 10^6 bytes per second of the client-timed span: creation POST + the single PATCH (PUT) + the server's answer (bxchange answers after ${options.answer}).`,
    `Client: tus-js-client ${packageVersion('tus-js-client')} with chunkSize Infinity on a Buffer holding the whole file (the client reads the file into memory before the timer starts); the PUT client sends the same Buffer the same way.`,
    ...options.extra,
    `Server peak RSS: VmHWM reset (clear_refs) just before each run; "server RSS before" is the RSS at that moment.`,
    `Other CPU: machine-wide busy CPU during the run minus server, client${options.backend === undefined ? '' : `, ${options.backend}`} and runner, i.e. other users of the shared cores plus unattributed kernel work (writeback); worst ${(worstOther * 100).toFixed(0)}% of one core; steal worst ${(worstSteal * 100).toFixed(0)}% of one core.`,
    `Noise control: before each run the runner waited up to ${params.quietTimeoutS} s for the machine to be idle (< 10% busy for 2 s); ` +
      `a run with more than ${params.maxOther} core of other CPU was discarded and measured again within its round (up to ${params.maxRepeats} times): ${outcome.repeated} discarded` +
      (outcome.keptDisturbed > 0 ? `, **${outcome.keptDisturbed} run(s) kept although disturbed (every attempt was)**` : '') +
      `; ${all.filter((s) => !s.quietBefore).length} run(s) started without a quiet machine.`,
  ];
}

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v, 3) : v])) as T;
}

/** The raw per-run records of the results file: every kept run, and the runs discarded as disturbed. */
export function runRecords(candidates: Candidate[], outcome: RoundsOutcome): { runs: object[]; discarded: object[] } {
  return {
    runs: candidates.flatMap((c) => c.samples.map((sample, i) => ({ round: i + 1, candidate: c.name, ...roundAll(sample) }))),
    discarded: outcome.discarded.map(roundAll),
  };
}

/** "name version, …" of the packages among `names` that are installed (a dependency dropped since is left out). */
export function installedVersions(names: string[]): string {
  return names
    .map((name) => ({ name, version: packageVersion(name) }))
    .filter((p) => p.version !== '?')
    .map((p) => `${p.name} ${p.version}`)
    .join(', ');
}

/** The 1-minute load average now (for `machine.loadavgEnd`). */
export const loadNow = () => round(os.loadavg()[0]!);
