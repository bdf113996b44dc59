/**
 * `npm run bench` runs the default set (DEFAULT_SET below); `npm run bench -- <name> …`
 * only those named, `npm run bench -- all` every registered benchmark (an unknown
 * name exits with 2 before anything runs).
 * Each benchmark starts what it needs (servers, baselines as separate
 * processes), alternates candidate and baselines run by run, and returns a
 * result with medians, min, max and ratios against the baselines. The
 * runner appends it to bench/results/<YYYY-MM-DD>.json and regenerates the
 * results section of BENCHMARKS.md. Helpers live in ./lib.ts.
 */
import path from 'node:path';
import { markdownFor, saveResult, withNodeFlags, writeBenchmarksMd, type BenchResult } from './lib.ts';
import * as concurrency from './concurrency.ts';
import * as encryption from './encryption.ts';
import * as memory from './memory.ts';
import * as api from './api.ts';
import * as receipts from './receipts.ts';
import * as upload from './upload.ts';
import * as uploadS3 from './upload-s3.ts';
import * as sftp from './sftp.ts';

interface Benchmark {
  title: string;
  /** Why the benchmark cannot run here (e.g. no DATABASE_URL): reported as skipped, nothing saved. */
  skipReason?(): string | undefined;
  run(): Promise<BenchResult>;
}

const benchmarks: Record<string, Benchmark> = {
  upload,
  'upload-s3': uploadS3,
  receipts,
  memory,
  concurrency,
  api,
  encryption,
  sftp,
};

/**
 * `npm run bench` alone runs the default set (upload, its S3 variant when S3 is configured, receipts,
 * concurrency, api), meant to take under 15 minutes on a quiet machine of this kind. The long ones run
 * when named, or with `all`: memory (4 GiB uploads, and a wait for the server's RSS to settle 12 s before
 * each of its 24 runs: ≈ 10 minutes alone), encryption (1 GiB through openpgp.js and gpg), sftp (1 GiB
 * each way through OpenSSH).
 */
const DEFAULT_SET = ['upload', 'upload-s3', 'receipts', 'concurrency', 'api'];

const args = process.argv.slice(2).filter((arg) => arg !== '--');
const wanted = args.includes('all') ? Object.keys(benchmarks) : args;
const unknown = wanted.filter((name) => !Object.hasOwn(benchmarks, name));
if (unknown.length > 0) {
  console.error(`bxchange bench: unknown benchmark${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${Object.keys(benchmarks).join(', ')} (or all)`);
  process.exit(2);
}

const names = wanted.length > 0 ? wanted : DEFAULT_SET;
const began = performance.now();
const minutes = (since: number) => `${((performance.now() - since) / 60_000).toFixed(1)} min`;
let failed = false;
for (const name of names) {
  const bench = benchmarks[name]!;
  const start = performance.now();
  console.log(`\n== ${name}: ${bench.title}`);
  const skipped = bench.skipReason?.();
  if (skipped !== undefined) {
    console.log(`bench: ${name} skipped: ${skipped}`);
    continue;
  }
  try {
    const result = withNodeFlags(await bench.run());
    const file = await saveResult(result);
    await writeBenchmarksMd();
    console.log(`\n${markdownFor([result])}`);
    console.log(`bench: ${name} saved to ${path.relative(process.cwd(), file)}; BENCHMARKS.md updated (${minutes(start)})`);
  } catch (err) {
    failed = true;
    console.error(`bench: ${name} failed:`, err);
  }
}
console.log(`\nbench: ${names.join(', ')} in ${minutes(began)}${wanted.length === 0 ? ` (the default set; also: ${Object.keys(benchmarks).filter((n) => !DEFAULT_SET.includes(n)).join(', ')}, or all)` : ''}`);
if (failed) process.exitCode = 1;
