/**
 * Shared helpers of the benchmark suite: statistics, machine description,
 * /proc sampling (CPU time, peak RSS, steal), child processes speaking one
 * JSON object per line, and the results file / BENCHMARKS.md writers.
 *
 * Every figure is a ratio against a baseline measured in the same run, on
 * the same machine, alternating candidate and baselines round by round: the
 * machine kind (2 shared, noisy cores) makes absolute figures meaningless
 * from one day to the next.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { SERVER_NODE_FLAGS } from '../src/node-flags.ts';

export const BENCH_DIR = import.meta.dirname;
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');
export const BENCHMARKS_MD = path.join(BENCH_DIR, '..', 'BENCHMARKS.md');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

// ---------------------------------------------------------------- statistics

export interface Summary {
  median: number;
  min: number;
  max: number;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(values: number[]): Summary {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** a / b of the medians, and the spread of the round-by-round (paired) ratios. */
export function ratio(a: number[], b: number[]): { value: number; paired: Summary } {
  const pairs = a.slice(0, Math.min(a.length, b.length)).map((x, i) => x / b[i]!);
  return { value: median(a) / median(b), paired: summarize(pairs) };
}

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** "64M", "1G", "1GiB", "1048576" → bytes (binary multiples). */
export function parseBytes(raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(raw);
  if (match === null) throw new Error(`not a size: "${raw}" (e.g. 64M, 1G, 1048576)`);
  const unit = { '': 1, k: 1024, m: MiB, g: GiB }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(match[1]) * unit);
}

export function formatBytes(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes} B`;
}

export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be a whole number ≥ ${min}, got "${raw}"`);
  return value;
}

export function envNumber(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number ≥ ${min}, got "${raw}"`);
  return value;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- machine

export interface MachineInfo {
  cpuModel: string;
  /** Logical CPUs the OS reports (os.cpus()). */
  cpus: number;
  /** CPUs this process may use (nproc / os.availableParallelism()). */
  nproc: number;
  memoryGiB: number;
  node: string;
  os: string;
  hostname: string;
  /** 1-minute load average at the start and at the end of the benchmark. */
  loadavgStart: number;
  loadavgEnd?: number;
}

function nproc(): number {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    return os.availableParallelism();
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    nproc: nproc(),
    memoryGiB: round(os.totalmem() / GiB, 1),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    hostname: os.hostname(),
    loadavgStart: round(os.loadavg()[0]!),
  };
}

/** The installed version of a dependency (from its package.json), or "?". */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(BENCH_DIR, '..', 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------- /proc sampling

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** user + system CPU seconds in a /proc `stat` line (of a process or of one of its threads). */
function statCpuSeconds(stat: string): number {
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state(3) ... utime is field 14, stime 15 (1-based) → indices 11, 12 here.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** user + system CPU seconds consumed so far by a process (Linux). */
export function processCpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * user + system CPU seconds per thread kind of a process (Linux), keyed by thread name with digits
 * folded (`V8 DefaultWorke`, `libuv-worker`, the main thread's own name…): where a server's CPU goes.
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const byKind = new Map<string, number>();
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byKind;
  }
  for (const tid of tasks) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+/g, '#');
    byKind.set(name, (byKind.get(name) ?? 0) + statCpuSeconds(stat));
  }
  return byKind;
}

/** Per-kind CPU seconds spent between two `threadCpuSeconds` snapshots, largest first, as "name 1.23 s" text. */
export function threadCpuDelta(before: Map<string, number>, after: Map<string, number>): string {
  return [...after]
    .map(([name, seconds]) => [name, seconds - (before.get(name) ?? 0)] as const)
    .filter(([, seconds]) => seconds > 0.005)
    .sort((a, b) => b[1] - a[1])
    .map(([name, seconds]) => `${name} ${seconds.toFixed(2)} s`)
    .join(', ');
}

function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? round(Number(match[1]) / 1024, 1) : Number.NaN;
}

/** Peak resident set size (VmHWM) of a process, in MiB. */
export function peakRssMiB(pid: number): number {
  return statusMiB(pid, 'VmHWM');
}

/** Current resident set size (VmRSS) of a process, in MiB. */
export function rssMiB(pid: number): number {
  return statusMiB(pid, 'VmRSS');
}

/** Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux ≥ 4.0); false if refused. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until a process's RSS has stayed within `toleranceMiB` for `stableMs`, or `timeoutMs`:
 * after activity V8 keeps its garbage until the memory reducer runs (≈ 8 s later here, dropping
 * bxchange's RSS by ≈ 150 MiB), so an "idle" RSS read too early is inflated and would hide growth.
 */
export async function settleRss(
  pid: number,
  options: { stableMs?: number; timeoutMs?: number; toleranceMiB?: number; intervalMs?: number } = {},
): Promise<{ rss: number; waitedMs: number; settled: boolean }> {
  const { stableMs = 12_000, timeoutMs = 60_000, toleranceMiB = 1, intervalMs = 500 } = options;
  const t0 = performance.now();
  let reference = rssMiB(pid);
  let since = t0;
  while (performance.now() - t0 < timeoutMs) {
    await sleep(intervalMs);
    const rss = rssMiB(pid);
    if (Math.abs(rss - reference) > toleranceMiB) {
      reference = rss;
      since = performance.now();
    } else if (performance.now() - since >= stableMs) {
      return { rss, waitedMs: performance.now() - t0, settled: true };
    }
  }
  return { rss: rssMiB(pid), waitedMs: performance.now() - t0, settled: false };
}

/** Machine-wide CPU seconds (all cores) since boot: busy and stolen by the hypervisor. */
export function machineCpu(): { busy: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const hz = ticksPerSecond();
  return { busy: (user! + nice! + system! + irq! + softirq!) / hz, steal: steal! / hz };
}

/**
 * Measures what else ran on the machine during a window: machine-wide busy
 * CPU minus the CPU of the processes we know about (foreign = other users of
 * the 2 cores), and the time stolen by the hypervisor.
 */
export function cpuWindow(): { stop(known: number): { foreignCpuSeconds: number; stealSeconds: number; wallSeconds: number } } {
  const start = machineCpu();
  const self = process.cpuUsage();
  const t0 = performance.now();
  return {
    stop(known: number) {
      const end = machineCpu();
      const own = process.cpuUsage(self);
      const ownSeconds = (own.user + own.system) / 1e6;
      return {
        foreignCpuSeconds: round(Math.max(0, end.busy - start.busy - known - ownSeconds), 2),
        stealSeconds: round(end.steal - start.steal, 2),
        wallSeconds: (performance.now() - t0) / 1000,
      };
    },
  };
}

/**
 * Waits until the machine is quiet: machine-wide busy CPU below `threshold`
 * (fraction of all cores) for `windows` consecutive 1-second windows, or
 * gives up after `timeoutMs`. Other people's test runs share these cores.
 */
export async function waitForQuiet(options: { threshold?: number; windows?: number; timeoutMs?: number } = {}): Promise<{ waitedMs: number; quiet: boolean; busy: number }> {
  const { threshold = 0.1, windows = 2, timeoutMs = 90_000 } = options;
  const cores = os.cpus().length || 1;
  const t0 = performance.now();
  let calm = 0;
  let busy = 1;
  while (performance.now() - t0 < timeoutMs) {
    const a = machineCpu().busy;
    const w0 = performance.now();
    await sleep(1000);
    busy = (machineCpu().busy - a) / (((performance.now() - w0) / 1000) * cores);
    calm = busy < threshold ? calm + 1 : 0;
    if (calm >= windows) return { waitedMs: performance.now() - t0, quiet: true, busy };
  }
  return { waitedMs: performance.now() - t0, quiet: false, busy };
}

// ---------------------------------------------------------------- child processes

export interface JsonChild {
  child: ChildProcess;
  pid: number;
  /** Resolves with the next JSON line satisfying `test` (rejects if the child exits first). */
  next(test?: (message: any) => boolean, timeoutMs?: number): Promise<any>;
  send(line: string): void;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const DEBUG = process.env.BENCH_DEBUG === '1';
const children = new Set<ChildProcess>();
const cleanups = new Set<() => void>();

/** Registers a synchronous cleanup (temp dirs) run on normal exit and on SIGINT/SIGTERM. */
export function onCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

function emergencyCleanup(): void {
  for (const child of children) child.kill('SIGKILL');
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  cleanups.clear();
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping children and removing temporary files\n`);
    emergencyCleanup();
    process.exit(130);
  });
}
process.once('exit', emergencyCleanup);

/** Spawns `node <script> ...args` (same Node binary) whose stdout carries one JSON object per line. */
export function spawnJson(script: string, args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): JsonChild {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  children.add(child);
  const queue: any[] = [];
  const waiters: Array<{ test: (m: any) => boolean; resolve: (m: any) => void; reject: (e: Error) => void }> = [];
  let ended = false;
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    let message: any;
    try {
      message = JSON.parse(line);
    } catch {
      process.stderr.write(`[${path.basename(script)}] ${line}\n`);
      return;
    }
    if (DEBUG) process.stderr.write(`[debug ${path.basename(script)} ${child.pid}] ${line.slice(0, 300)}\n`);
    const index = waiters.findIndex((w) => w.test(message));
    if (index >= 0) waiters.splice(index, 1)[0]!.resolve(message);
    else queue.push(message);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      ended = true;
      children.delete(child);
      for (const w of waiters.splice(0)) w.reject(new Error(`${path.basename(script)} exited (${code ?? signal}) before answering`));
      resolve(code);
    }),
  );
  return {
    child,
    pid: child.pid!,
    exited,
    next(test = () => true, timeoutMs = 600_000) {
      const queued = queue.findIndex(test);
      if (queued >= 0) return Promise.resolve(queue.splice(queued, 1)[0]);
      if (ended) return Promise.reject(new Error(`${path.basename(script)} has exited`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${path.basename(script)}: no answer within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          test,
          resolve: (m) => (clearTimeout(timer), resolve(m)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
      });
    },
    send(line: string) {
      if (DEBUG) process.stderr.write(`[debug → ${path.basename(script)} ${child.pid}] ${line}\n`);
      child.stdin!.write(`${line}\n`);
    },
    async stop(graceMs = 10_000) {
      if (ended) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs `sync` so one run's writeback does not land in the next run. */
export function syncDisks(): void {
  try {
    execFileSync('sync');
  } catch {
    // not fatal
  }
}

// ---------------------------------------------------------------- files

export interface SourceFile {
  path: string;
  size: number;
  sha256: string;
}

/** Streams `size` random bytes to `file` (4 MiB at a time, never the whole file in memory), keeping its SHA-256. */
export async function randomFile(file: string, size: number): Promise<SourceFile> {
  const handle = await open(file, 'wx');
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(4 * MiB);
  try {
    let written = 0;
    while (written < size) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, size - written));
      randomFillSync(chunk);
      hash.update(chunk);
      let done = 0;
      while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
  return { path: file, size, sha256: hash.digest('hex') };
}

/** Bytes held under `dir` (files only). */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/** Removes everything inside `dir` (the folder itself stays). */
export async function emptyDir(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(path.join(dir, entry), { recursive: true, force: true });
}

/** Free bytes for an unprivileged user on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

// ---------------------------------------------------------------- noise control

export interface NoiseControl {
  /** Foreign CPU (in cores) above which a run counts as disturbed (BENCH_MAX_OTHER_CPU, default 0.2). */
  maxOther: number;
  /** Extra attempts of one run when it was disturbed (BENCH_MAX_REPEATS, default 5). */
  maxRepeats: number;
  /** Longest wait for an idle machine before a run (BENCH_QUIET_TIMEOUT_S, default 90; 0 = do not wait). */
  quietTimeoutS: number;
}

export function noiseControlFromEnv(): NoiseControl {
  return {
    maxOther: envNumber('BENCH_MAX_OTHER_CPU', 0.2),
    maxRepeats: envInt('BENCH_MAX_REPEATS', 5, 0),
    quietTimeoutS: envInt('BENCH_QUIET_TIMEOUT_S', 90, 0),
  };
}

export interface QuietSample {
  /** Seconds of the measured span and foreign CPU seconds during it (cpuWindow). */
  seconds: number;
  otherCpu: number;
  /** Seconds waited for a quiet machine before the run, and whether it came. */
  waitedS: number;
  quietBefore: boolean;
}

/**
 * One run under noise control: waits (bounded) for a quiet machine, measures, and measures again
 * (up to `maxRepeats` times) while other processes used more than `maxOther` cores during the run;
 * keeps the least disturbed attempt. `repeat: false` waits for quiet but never repeats.
 */
export async function measureQuietly<T extends { seconds: number; otherCpu: number }>(
  control: NoiseControl,
  measure: () => Promise<T>,
  log: (sample: T & QuietSample, disturbed: boolean) => void = () => {},
  repeat = true,
): Promise<{ kept: T & QuietSample; discarded: Array<T & QuietSample>; keptDisturbed: boolean }> {
  const load = (s: QuietSample) => s.otherCpu / s.seconds;
  const attempts: Array<T & QuietSample> = [];
  for (let attempt = 0; attempt <= (repeat ? control.maxRepeats : 0); attempt++) {
    const quiet = control.quietTimeoutS > 0 ? await waitForQuiet({ timeoutMs: control.quietTimeoutS * 1000 }) : { waitedMs: 0, quiet: true };
    const sample = { ...(await measure()), waitedS: quiet.waitedMs / 1000, quietBefore: quiet.quiet };
    attempts.push(sample);
    const disturbed = load(sample) > control.maxOther;
    log(sample, disturbed);
    if (!disturbed) break;
  }
  const kept = attempts.reduce((best, s) => (load(s) < load(best) ? s : best));
  return { kept, discarded: attempts.filter((s) => s !== kept), keptDisturbed: load(kept) > control.maxOther };
}

// ---------------------------------------------------------------- results

export interface Extra {
  unit: string;
  runs: number[];
  summary: Summary;
}

export interface CandidateResult {
  name: string;
  role: 'candidate' | 'baseline';
  description: string;
  /** The primary metric, one value per run, in the order run. */
  runs: number[];
  summary: Summary;
  /** Secondary measurements per run (CPU seconds, peak RSS, …). */
  extras: Record<string, Extra>;
}

export interface RatioResult {
  label: string;
  numerator: string;
  denominator: string;
  /** median(numerator) / median(denominator). */
  value: number;
  /** Spread of the round-by-round ratios (each pair measured back to back). */
  paired: Summary;
  goal?: number;
  met?: boolean;
}

export interface BenchResult {
  name: string;
  title: string;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  unit: string;
  higherIsBetter: boolean;
  /**
   * True when run with the benchmark's reference parameters (e.g. upload: 1 GiB, ≥ 3 runs). A smoke
   * run or a variant (smaller file, BENCH_FSYNC_BASELINES…) is kept in the results file but does not
   * replace the latest reference run in BENCHMARKS.md.
   */
  reference: boolean;
  params: Record<string, string | number | boolean>;
  candidates: CandidateResult[];
  ratios: RatioResult[];
  notes: string[];
  /** Raw per-run measurements kept in the results file (not rendered). */
  runs?: object[];
  /** Runs measured but left out (e.g. rounds disturbed by other load and repeated). */
  discarded?: object[];
  /** Absolute goals (not ratios), e.g. "RSS growth < 64 MB", "0 failed uploads"; rendered after the ratios. */
  checks?: Check[];
}

/** An absolute figure checked against a goal (or shown for information when `goal` is absent). */
export interface Check {
  label: string;
  value: number;
  unit: string;
  /** Human-readable goal, e.g. "< 61.0 MiB (64 MB)", "= 0". */
  goal?: string;
  met?: boolean;
  /** Context shown next to the value, e.g. the baseline's figure. */
  detail?: string;
}

export function candidateResult(
  name: string,
  role: CandidateResult['role'],
  description: string,
  runs: number[],
  extras: Record<string, { unit: string; runs: number[] }> = {},
): CandidateResult {
  return {
    name,
    role,
    description,
    runs: runs.map((v) => round(v, 2)),
    summary: mapSummary(summarize(runs), 2),
    extras: Object.fromEntries(
      Object.entries(extras).map(([key, { unit, runs: values }]) => [key, { unit, runs: values.map((v) => round(v, 2)), summary: mapSummary(summarize(values), 2) }]),
    ),
  };
}

export function ratioResult(label: string, numerator: CandidateResult, denominator: CandidateResult, higherIsBetter: boolean, goal?: number): RatioResult {
  const { value, paired } = ratio(numerator.runs, denominator.runs);
  const result: RatioResult = { label, numerator: numerator.name, denominator: denominator.name, value: round(value, 3), paired: mapSummary(paired, 3) };
  if (goal !== undefined) {
    result.goal = goal;
    result.met = higherIsBetter ? value >= goal : value <= goal;
  }
  return result;
}

function mapSummary(s: Summary, digits: number): Summary {
  return { median: round(s.median, digits), min: round(s.min, digits), max: round(s.max, digits) };
}

interface ResultsFile {
  date: string;
  /** Every run of the day, per benchmark, in order. */
  benchmarks: Record<string, BenchResult[]>;
}

function localDate(d = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/**
 * Appends the result to bench/results/<YYYY-MM-DD>.json (other benchmarks' entries are kept).
 * `resultsDir` replaces bench/results (tests use a temporary folder).
 */
export async function saveResult(result: BenchResult, resultsDir = RESULTS_DIR): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  const date = localDate(new Date(result.startedAt));
  const file = path.join(resultsDir, `${date}.json`);
  let data: ResultsFile = { date, benchmarks: {} };
  try {
    data = JSON.parse(await readFile(file, 'utf8')) as ResultsFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  (data.benchmarks[result.name] ??= []).push(result);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(data, null, 2)}\n`);
  await rename(tmp, file);
  return file;
}

/** The latest reference result of every benchmark across all results files; another run only when no reference run exists. */
async function latestResults(resultsDir = RESULTS_DIR): Promise<BenchResult[]> {
  let files: string[] = [];
  try {
    files = (await readdir(resultsDir)).filter((f) => /^\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const latest = new Map<string, BenchResult>();
  for (const file of files) {
    const data = JSON.parse(await readFile(path.join(resultsDir, file), 'utf8')) as ResultsFile;
    for (const [name, runs] of Object.entries(data.benchmarks)) {
      for (const run of runs) {
        const current = latest.get(name);
        // Files and runs are in chronological order: a later run replaces, except a non-reference run a reference one.
        if (current !== undefined && current.reference && !run.reference) continue;
        latest.set(name, run);
      }
    }
  }
  return [...latest.values()].sort((a, b) => a.name.localeCompare(b.name));
}

const START = '<!-- bench:results:start (generated by `npm run bench`; edit outside these markers) -->';
const END = '<!-- bench:results:end -->';

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');

export function markdownFor(results: BenchResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const m = r.machine;
    out.push(`### ${r.name}: ${r.title}${r.reference ? '' : ' (not the reference parameters: smoke run or variant)'}`, '');
    out.push(
      `${r.startedAt.replace('T', ' ').slice(0, 16)} UTC · ${m.cpuModel}, ${m.cpus} CPUs (nproc ${m.nproc}), ${m.memoryGiB} GiB · Node ${m.node} · ${m.os} · load average ${m.loadavgStart} → ${m.loadavgEnd ?? '?'}`,
      '',
    );
    out.push(`Parameters: ${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(', ')}`, '');
    const extraKeys = [...new Set(r.candidates.flatMap((c) => Object.keys(c.extras)))];
    const extraHead = extraKeys.map((k) => {
      const unit = r.candidates.find((c) => c.extras[k])?.extras[k]?.unit;
      return `${k}${unit ? ` (${unit})` : ''} median [min–max]`;
    });
    out.push(`| ${['candidate', 'role', `median ${r.unit}`, 'min', 'max', 'runs', ...extraHead].join(' | ')} |`);
    out.push(`|${['---', '---', '---:', '---:', '---:', '---', ...extraKeys.map(() => '---:')].join('|')}|`);
    for (const c of r.candidates) {
      const extras = extraKeys.map((k) => {
        const e = c.extras[k];
        const d = e?.unit === 'MiB' ? 0 : 2;
        return e === undefined ? '–' : `${fmt(e.summary.median, d)} [${fmt(e.summary.min, d)}–${fmt(e.summary.max, d)}]`;
      });
      out.push(`| ${[`**${c.name}**`, c.role, fmt(c.summary.median), fmt(c.summary.min), fmt(c.summary.max), c.runs.map((v) => fmt(v)).join(', '), ...extras].join(' | ')} |`);
    }
    out.push('');
    if (r.ratios.length > 0) {
      out.push('| ratio | median ratio | round-by-round min–max | goal | met |', '|---|---:|---:|---:|---|');
      for (const q of r.ratios) {
        out.push(
          `| ${q.label} | **${fmt(q.value, 3)}×** | ${fmt(q.paired.min, 3)}–${fmt(q.paired.max, 3)} | ${q.goal === undefined ? '–' : `${r.higherIsBetter ? '≥' : '≤'} ${q.goal}`} | ${q.met === undefined ? '–' : q.met ? 'yes' : '**no**'} |`,
        );
      }
      out.push('');
    }
    if (r.checks !== undefined && r.checks.length > 0) {
      out.push('| check | value | goal | met |', '|---|---:|---:|---|');
      for (const c of r.checks) {
        const value = `**${fmt(c.value, Number.isInteger(c.value) ? 0 : 1)}${c.unit ? ` ${c.unit}` : ''}**${c.detail ? ` (${c.detail})` : ''}`;
        out.push(`| ${c.label} | ${value} | ${c.goal ?? '–'} | ${c.met === undefined ? '–' : c.met ? 'yes' : '**no**'} |`);
      }
      out.push('');
    }
    for (const note of r.notes) out.push(`- ${note}`);
    if (r.notes.length > 0) out.push('');
  }
  return out.join('\n');
}

/**
 * Regenerates the results section of BENCHMARKS.md (the text outside the markers is kept).
 * `options` replace bench/results and BENCHMARKS.md (tests use temporary ones).
 */
export async function writeBenchmarksMd(options: { resultsDir?: string; file?: string } = {}): Promise<void> {
  const markdownFile = options.file ?? BENCHMARKS_MD;
  const results = await latestResults(options.resultsDir);
  const section = `${START}\n\n${results.length === 0 ? '_No results yet._\n' : markdownFor(results)}\n${END}`;
  let text: string;
  try {
    text = await readFile(markdownFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    text = `# Benchmarks\n\n\`npm run bench\` runs every benchmark, \`npm run bench -- <name>\` one.\n\n## Latest results\n\n${START}\n${END}\n`;
  }
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const updated =
    start >= 0 && end > start ? `${text.slice(0, start)}${section}${text.slice(end + END.length)}` : `${text.trimEnd()}\n\n## Latest results\n\n${section}\n`;
  await writeFile(markdownFile, updated);
}

/** The upload servers of the upload, memory and concurrency benchmarks (bench/upload/server.ts). */
export const UPLOAD_SERVER = path.join(BENCH_DIR, 'upload', 'server.ts');

/**
 * The Node flags a bxchange server of the benchmarks runs with: the product's own (SERVER_NODE_FLAGS, as
 * `npm start`, `bxchange serve` and the Docker image pass them), so a benchmark measures what a user runs.
 * BENCH_BXCHANGE_NODE_ARGS replaces them (space-separated, empty for none) for an A/B experiment.
 */
export function bxchangeNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.BENCH_BXCHANGE_NODE_ARGS;
  return override === undefined ? [...SERVER_NODE_FLAGS] : splitFlags(override);
}

/** Node flags of the baseline servers: none, or BENCH_SERVER_NODE_ARGS (space-separated) for an experiment. */
export function baselineNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  return splitFlags(env.BENCH_SERVER_NODE_ARGS ?? '');
}

const splitFlags = (flags: string) => flags.split(' ').filter((arg) => arg !== '');

/**
 * Records the servers' Node flags in a result's parameters. A run whose bxchange servers did not run with
 * the product's flags, or whose baselines ran with extra flags, is an experiment: not a reference run.
 */
export function withNodeFlags(result: BenchResult, env: NodeJS.ProcessEnv = process.env): BenchResult {
  const bxchange = bxchangeNodeArgs(env).join(' ');
  const baselines = baselineNodeArgs(env).join(' ');
  const products = bxchange === SERVER_NODE_FLAGS.join(' ');
  const experiment = !products || baselines !== '';
  return {
    ...result,
    reference: result.reference && !experiment,
    params: { ...result.params, bxchangeNodeFlags: bxchange === '' ? 'none' : bxchange, ...(baselines === '' ? {} : { baselineNodeFlags: baselines }) },
    notes: experiment
      ? [
          ...result.notes,
          `Experiment, not a reference run: bxchange's servers ran with Node flags "${bxchange || 'none'}" (the product's: "${SERVER_NODE_FLAGS.join(' ')}"), the baselines with "${baselines || 'none'}".`,
        ]
      : result.notes,
  };
}

/** Starts one of bench/upload/server.ts's servers and waits until it listens. */
export async function startServer(kind: string, args: string[], env: Record<string, string> = {}): Promise<{ server: JsonChild; base: string }> {
  const nodeArgs = kind === 'bxchange' ? bxchangeNodeArgs() : baselineNodeArgs();
  const server = spawnJson(UPLOAD_SERVER, [kind, ...args], env, nodeArgs);
  const ready = await server.next((m) => m.ready === true, 120_000);
  return { server, base: `http://127.0.0.1:${ready.port}` };
}

/** JSON call to the bxchange API; throws on an unexpected status. */
export async function api(base: string, token: string, method: string, url: string, body?: unknown, expect = [200, 201, 204]): Promise<any> {
  const res = await fetch(`${base}/api/v1${url}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!expect.includes(res.status)) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 500)}`);
  return text === '' ? null : JSON.parse(text);
}

// --- End-to-end encryption (DESIGN §4c) -------------------------------------------------------
// The server refuses a draft unless every recipient mailbox and the sender's own has a published
// OpenPGP key, and refuses at submit any file that is not an OpenPGP message encrypted for all the
// keys the draft pins (`encryptionKeys` in its answer). Benchmarks publish keys the way a real
// deployment does, through `PUT /api/v1/mailboxes/{address}/key`, and a benchmark that submits
// uploads real ciphertext. (bench/ does not import from test/: this mirrors test/helpers/e2e.ts.)

/** A mailbox key made for a benchmark; the private key stays unlocked in this process's memory only. */
export interface BenchKey {
  address: string;
  publicKey: string;
  privateKey: string;
  fingerprint: string;
}

/** openpgp.js, loaded only by the benchmarks that encrypt (the runner and the other benches never pay for it). */
const openpgpModule = () => import('openpgp');

/**
 * A v4 ed25519/cv25519 key whose user ID is `address`, without SEIPDv2 (AEAD) and without expiry:
 * what `bxchange keygen` and `gpg --quick-gen-key ADDRESS future-default` make, and what the server accepts.
 */
export async function benchKey(address: string): Promise<BenchKey> {
  const openpgp = await openpgpModule();
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: address, email: address }],
    format: 'armored',
    config: { v6Keys: false, aeadProtect: false },
  });
  const parsed = await openpgp.readKey({ armoredKey: publicKey });
  return { address, publicKey, privateKey, fingerprint: parsed.getFingerprint().toLowerCase() };
}

/**
 * Makes a key for each mailbox and publishes it with `put(url, body)` (a `PUT /api/v1/mailboxes/{address}/key`
 * as an administrator or a member with the manage role); returns the keys by address.
 */
export async function publishBenchKeys(addresses: string[], put: (url: string, body: { publicKey: string }) => Promise<unknown>): Promise<Map<string, BenchKey>> {
  const keys = new Map<string, BenchKey>();
  for (const address of addresses) {
    const key = await benchKey(address);
    await put(`/api/v1/mailboxes/${address}/key`, { publicKey: key.publicKey });
    keys.set(address, key);
  }
  return keys;
}

/** `publishBenchKeys` over HTTP against a running server at `base`, as the bearer of `token`. */
export function publishBenchKeysHttp(base: string, token: string, addresses: string[]): Promise<Map<string, BenchKey>> {
  return publishBenchKeys(addresses, (url, body) => api(base, token, 'PUT', url.replace(/^\/api\/v1/, ''), body, [200, 201]));
}

/** The armored public keys a draft's answer pins (`encryptionKeys[].publicKey`): what its files must be encrypted for. */
export function draftPublicKeys(draft: { encryptionKeys?: Array<{ publicKey: string }> }): string[] {
  if (!Array.isArray(draft.encryptionKeys) || draft.encryptionKeys.length === 0) throw new Error('the draft answer carries no encryptionKeys');
  return draft.encryptionKeys.map((k) => k.publicKey);
}

/** `data` encrypted for every armored public key (binary OpenPGP, SEIPDv1: what the server's header check reads). */
export async function encryptForKeys(publicKeys: string[], data: Uint8Array | string): Promise<Buffer> {
  const openpgp = await openpgpModule();
  const encryptionKeys = await Promise.all(publicKeys.map((armoredKey) => openpgp.readKey({ armoredKey })));
  const message = await openpgp.createMessage({ binary: typeof data === 'string' ? Buffer.from(data) : data });
  const encrypted = await openpgp.encrypt({ message, encryptionKeys, format: 'binary', config: { aeadProtect: false } });
  return Buffer.from(encrypted as Uint8Array);
}

/** Environment for a benchmarked server that must speak plain HTTP, whatever the caller's environment says. */
export const PLAIN_HTTP_ENV: Readonly<Record<string, string>> = {
  TLS_CERT: '',
  TLS_KEY: '',
  TLS_CLIENT_CA: '',
};

/**
 * Environment for a benchmarked server that must run on the embedded default
 * (PGlite + local folder, plain HTTP), whatever the caller's environment says.
 */
export const EMBEDDED_DEFAULT_ENV: Readonly<Record<string, string>> = {
  DATABASE_URL: '',
  S3_ENDPOINT: '',
  S3_REGION: '',
  S3_BUCKET: '',
  S3_ACCESS_KEY_ID: '',
  S3_SECRET_ACCESS_KEY: '',
  S3_FORCE_PATH_STYLE: '',
  ...PLAIN_HTTP_ENV,
};

/**
 * A fresh, empty PostgreSQL database `name` on the server of `baseUrl` (dropped first if it exists), for a
 * benchmark that must not write into the shared database `baseUrl` names (other people's tests use it);
 * `drop()` removes it. Only CREATE/DROP DATABASE are issued from `baseUrl`'s own database.
 */
export async function freshDatabase(baseUrl: string, name: string): Promise<{ url: string; server: string; drop(): Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`freshDatabase: "${name}" is not a plain lowercase identifier`);
  const url = new URL(baseUrl);
  if (decodeURIComponent(url.pathname.slice(1)) === name) throw new Error(`DATABASE_URL names ${name} itself; point it at another database of the server: the benchmark creates ${name} there`);
  url.pathname = `/${name}`;
  const { default: postgres } = await import('postgres');
  const admin = () => postgres(baseUrl, { max: 1, onnotice: () => {} });
  const sql = admin();
  let server: string;
  try {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await sql.unsafe(`CREATE DATABASE ${name}`);
    server = `PostgreSQL ${(await sql<{ v: string }[]>`SELECT current_setting('server_version') AS v`)[0]!.v}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  return {
    url: url.toString(),
    server,
    async drop() {
      const sql = admin();
      try {
        await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}

/**
 * The directory the upload benchmarks send in: communes ixelles and uccle with
 * a `secretariat` mailbox each and its published OpenPGP key (a draft needs
 * the keys of its recipients and of its sender, DESIGN §4c), and a machine
 * principal with `read` + `send` on secretariat@ixelles. Returns its token.
 */
export async function seedSenderDirectory(base: string, adminToken: string): Promise<string> {
  const admin = (method: string, url: string, body?: unknown) => api(base, adminToken, method, url, body);
  for (const id of ['ixelles', 'uccle']) {
    await admin('POST', '/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
    await admin('POST', `/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  await publishBenchKeysHttp(base, adminToken, ['secretariat@ixelles', 'secretariat@uccle']);
  const principal = await admin('POST', '/principals', {
    name: 'ixelles-bench',
    kind: 'machine',
    memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }],
  });
  return (await admin('POST', `/principals/${principal.id}/tokens`, {})).token as string;
}
