/**
 * autocannon as the load generator of the api benchmark, in the runner's
 * process (its CPU is the runner's own, subtracted from "other CPU").
 *
 * Fixed rate. autocannon's `overallRate` splits the rate over the
 * connections, and each connection sends its share of the second back to
 * back as soon as the second starts, then waits for the next one: one
 * instance would hit the server with a burst of `connections` concurrent
 * requests at every second and leave it idle afterwards. So the rate R is
 * spread over `phases` instances started 1000/phases ms apart, each with
 * `overallRate` R/phases over `connectionsPerPhase` connections: a burst of
 * a few requests every few milliseconds, and at most
 * phases × connectionsPerPhase requests in flight (the rate is not reached,
 * and the run counts as not sustained, when the server is slower than that
 * allows).
 *
 * Latencies are the time from a request's write to its response, every 2xx
 * response recorded (our 'response' listener; percentiles by nearest rank
 * over all of them). autocannon's coordinated-omission correction is
 * switched off (`ignoreCoordinatedOmission`): it assumes an expected
 * interval of ceil(1 / per-connection rate) = 1 ms and back-fills 1, 2, …,
 * L−1 ms samples for a response of L ms, which pulls the percentiles down.
 */
import { createRequire } from 'node:module';

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

interface AutocannonInstance extends PromiseLike<AutocannonResult> {
  on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this;
  stop(): void;
}

interface AutocannonOptions {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  duration: number;
  overallRate?: number;
  ignoreCoordinatedOmission?: boolean;
  timeout?: number;
  renderProgressBar?: boolean;
  renderResultsTable?: boolean;
}

const require = createRequire(import.meta.url);
const autocannon = require('autocannon') as (options: AutocannonOptions) => AutocannonInstance;

export interface LoadResult {
  /** Requests per second asked for (null: as fast as the connections go). */
  offered: number | null;
  /** 2xx responses per second. */
  throughput: number;
  ok: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Connection errors + timeouts + non-2xx responses. */
  failures: number;
  /** ≥ 95% of the offered rate answered with 2xx, no failure. */
  sustained: boolean;
}

/** Nearest-rank percentile of ascending `sorted` values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

interface Options {
  url: string;
  headers: Record<string, string>;
  seconds: number;
}

function summarise(offered: number | null, latencies: number[], instances: AutocannonResult[]): LoadResult {
  latencies.sort((a, b) => a - b);
  const ok = instances.reduce((n, r) => n + r['2xx'], 0);
  const throughput = instances.reduce((sum, r) => sum + r['2xx'] / r.duration, 0);
  const total = instances.reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0);
  return {
    offered,
    throughput,
    ok,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? Number.NaN,
    failures: total,
    sustained: offered === null ? total === 0 : total === 0 && throughput >= 0.95 * offered,
  };
}

function start(options: AutocannonOptions, latencies: number[]): AutocannonInstance {
  const instance = autocannon({ ...options, timeout: 10, renderProgressBar: false, renderResultsTable: false });
  instance.on('response', (_client, statusCode, _bytes, ms) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(ms);
  });
  return instance;
}

/** `rate` requests per second for `seconds`, spread over `phases` staggered autocannon instances. */
export async function fixedRate(options: Options & { rate: number; phases: number; connectionsPerPhase: number }): Promise<LoadResult> {
  const { rate, phases, connectionsPerPhase } = options;
  const latencies: number[] = [];
  const runs: Array<Promise<AutocannonResult>> = [];
  for (let k = 0; k < phases; k++) {
    // The remainder goes to the first phases, so the shares add up to `rate`.
    const share = Math.floor(rate / phases) + (k < rate % phases ? 1 : 0);
    if (share === 0) continue;
    runs.push(
      new Promise<AutocannonResult>((resolve, reject) => {
        setTimeout(() => {
          Promise.resolve(
            start(
              {
                url: options.url,
                headers: options.headers,
                connections: Math.min(connectionsPerPhase, share),
                duration: options.seconds,
                overallRate: share,
                ignoreCoordinatedOmission: true,
              },
              latencies,
            ),
          ).then(resolve, reject);
        }, (k * 1000) / phases);
      }),
    );
  }
  return summarise(rate, latencies, await Promise.all(runs));
}

/** As many requests as `connections` keep-alive connections get answered in `seconds` (closed loop). */
export async function saturate(options: Options & { connections: number }): Promise<LoadResult> {
  const latencies: number[] = [];
  const result = await start({ url: options.url, headers: options.headers, connections: options.connections, duration: options.seconds }, latencies);
  return summarise(null, latencies, [result]);
}
