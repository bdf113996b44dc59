/**
 * The Node (V8) flags the server process runs with. Every way of starting
 * the server passes them on Node's command line (the heap is configured when
 * the process starts): `npm start` (package.json), the `bxchange` command
 * (bin/bxchange.js's first line) and the Docker image (Dockerfile's
 * ENTRYPOINT); test/node-flags.test.ts holds the three to this list, and
 * `bxchange serve` logs a warning when started without them.
 *
 * Why: while a file streams in, V8 kept starting a full (concurrent) marking
 * of the whole heap every 50–100 ms although almost nothing survived. V8
 * starts marking as soon as the old generation's headroom (its allocation
 * limit minus its size) is no larger than the young generation, since one
 * young collection could promote all of it. The server's start-up makes V8
 * grow the young generation to its maximum (new space up to 128 MiB on this
 * Node), larger than the headroom V8 then grants a ≈ 35–45 MB heap; an
 * upload, allocating little but steadily, then re-triggers marking the
 * moment the previous one ends. Measured on a 1 GiB upload (2 vCPUs):
 * ≈ 80 full collections, ≈ 3.3 s of GC-thread CPU of ≈ 8.9 s in all.
 *
 * - --max-semi-space-size=8 (MiB; new space then stays under ≈ 18 MiB): the
 *   young generation can no longer outgrow the headroom.
 * - --heap-growing-percent=300: the old generation's limit is 4× its live
 *   size after each full collection (V8 picks 1.1–4× by itself), so the
 *   headroom stays well above the young generation for the smaller heap of a
 *   server on PostgreSQL too. Each flag alone was not enough: with the first
 *   only, the embedded default still collected continuously; with the second
 *   only, a server on PostgreSQL still did.
 *
 * With both, a 1 GiB upload costs ≈ 0.01–0.15 s of GC-thread CPU and ≈ 2.5 s
 * in all. A smaller young generation (1–4 MiB) fixes uploads too but costs the
 * API listing 15–20 % of its throughput under saturation (more young
 * collections, more promotion); 8 MiB costs it nothing measurable. Memory
 * (the growing flag alone, an experiment): a 4 GiB upload grew the server's
 * RSS by < 1 MiB. See BENCHMARKS.md (upload) for the A/B runs.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=300'];

/** The server flags missing from this process's command line and NODE_OPTIONS. */
export function missingServerFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map((flag) => flag.replaceAll('_', '-')));
  return SERVER_NODE_FLAGS.filter((flag) => !given.has(flag));
}
