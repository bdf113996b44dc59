/**
 * SHA-256 of uploads off the event loop: one worker thread per store
 * (sha256-worker.ts) holds the running hashes, and the main thread only
 * copies each chunk into a ring shared with it (a SharedArrayBuffer) and
 * tells it, once per MiB, which job the bytes belong to.
 *
 * Why: node:crypto's SHA-256 costs ≈ 0.55 s of CPU per GiB on this machine
 * kind, about a third of the event loop's work during an upload (see
 * BENCHMARKS.md); the copy costs a small fraction of that, and the hash runs
 * on the other core.
 *
 * Why a shared ring, not buffers transferred to the worker: a transferred
 * ArrayBuffer is a new external allocation on each side, released only when
 * the detached one is collected, so a stream of 1 MiB transfers makes V8
 * start full collections (50 concurrent uploads cost 40 % more CPU that way).
 * The ring is allocated once, and messages carry only numbers.
 *
 * Bounds: RING_BYTES for the whole store whatever the number of uploads;
 * when the worker falls behind and the ring is full, writes wait for it
 * (backpressure), so memory stays flat whatever the uploads' sizes.
 *
 * Failure: if the worker dies, every running hash is lost; the store is told
 * (`onLost`), the jobs stop hashing, and the uploads are hashed again from
 * their stored bytes when they complete (the fallback). The next job starts
 * a new worker.
 *
 * The worker is unreferenced while nothing waits on it, so it never keeps a
 * process alive.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export type ToWorker =
  | { op: 'start'; job: number; resume: string | null; offset: number }
  /** Bytes in the ring, as [job, start, length] triples in order; answered by `consumed`. */
  | { op: 'data'; records: number[]; end: number }
  | { op: 'settle'; job: number; seq: number; stored: number }
  | { op: 'keep'; job: number; seq: number; id: string; offset: number }
  | { op: 'drop'; job: number }
  | { op: 'forget'; id: string }
  | { op: 'digest'; seq: number; id: string; size: number };

export type FromWorker = { op: 'consumed'; end: number } | { op: 'reply'; seq: number; value: number | string | null };

/** The ring shared with the worker: the most bytes waiting to be hashed, for all uploads together. */
export const RING_BYTES = 8 * 1024 * 1024;
/** Bytes copied into the ring before the worker is told (fewer messages: each costs tens of µs here). */
const POST_BYTES = 1024 * 1024;
/** Bytes copied but not yet announced are announced after this long anyway (a slow upload's tail). */
const POST_DELAY_MS = 2;

// The worker sits beside this module: .ts when the sources run directly, .js in the compiled dist/.
const WORKER_URL = new URL(`./sha256-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export class Sha256Thread {
  private worker: Worker | null = null;
  private nextJob = 1;
  private nextSeq = 1;
  private readonly jobs = new Map<number, HashJob>();
  private readonly replies = new Map<number, (value: number | string | null) => void>();
  private readonly ring = new Uint8Array(new SharedArrayBuffer(RING_BYTES));
  /** Bytes ever copied into the ring, and ever hashed by the worker (positions modulo RING_BYTES). */
  private written = 0;
  private consumed = 0;
  /** Bytes copied but not yet announced to the worker (those after `announced`), as [job, start, length] triples. */
  private records: number[] = [];
  private announced = 0;
  private announceTimer: NodeJS.Timeout | null = null;
  private spaceWaiters: Array<() => void> = [];
  private readonly checkpoint: number;
  private readonly onLost: (error: unknown) => void;

  /** `onLost` runs when the worker died (or was closed) and took every running hash with it. */
  constructor(checkpoint: number, onLost: (error: unknown) => void) {
    this.checkpoint = checkpoint;
    this.onLost = onLost;
  }

  /** A job hashing one PATCH from `offset`: a new hash at 0, else the running hash kept under `resume`. */
  job(resume: string | null, offset: number): HashJob {
    const job = new HashJob(this, this.nextJob++);
    this.jobs.set(job.id, job);
    this.post({ op: 'start', job: job.id, resume, offset });
    return job;
  }

  /** The hex digest of the running hash kept under `id` if it covers `size` bytes, else null; it is forgotten. */
  digest(id: string, size: number): Promise<string | null> {
    return this.request((seq) => ({ op: 'digest', seq, id, size })) as Promise<string | null>;
  }

  forget(id: string): void {
    if (this.worker !== null) this.post({ op: 'forget', id });
  }

  /** Stops the worker (running hashes are lost: completions then rebuild them). */
  async close(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    this.lost(worker, null);
    await worker.terminate();
  }

  /** The worker's thread id, or null when none runs (for tests). */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  /** Bytes in the ring not yet hashed (for tests: never more than RING_BYTES). */
  get buffered(): number {
    return this.written - this.consumed;
  }

  /** @internal Copies `chunk` into the ring for `job`; a promise only when it must wait for room (backpressure). */
  copy(job: HashJob, chunk: Uint8Array, epoch: number): Promise<void> | undefined {
    let position = 0;
    while (position < chunk.length) {
      if (!job.live(epoch)) return undefined;
      const room = RING_BYTES - (this.written - this.consumed);
      if (room === 0) {
        this.announce();
        const rest = chunk.subarray(position);
        return new Promise<void>((resolve) => this.spaceWaiters.push(resolve)).then(() => this.copy(job, rest, epoch));
      }
      const at = this.written % RING_BYTES;
      const n = Math.min(chunk.length - position, room, RING_BYTES - at);
      this.ring.set(n === chunk.length ? chunk : chunk.subarray(position, position + n), at);
      this.records.push(job.id, at, n);
      this.written += n;
      position += n;
      if (this.written - this.announced >= POST_BYTES) this.announce();
    }
    if (this.written > this.announced) this.announceTimer ??= setTimeout(() => this.announce(), POST_DELAY_MS);
    return undefined;
  }

  /** @internal Control messages follow the bytes copied before them. */
  post(message: ToWorker): void {
    this.announce();
    this.start().postMessage(message);
  }

  /** @internal A request whose answer comes back as a reply; null if the worker dies first. */
  request(message: (seq: number) => ToWorker): Promise<number | string | null> {
    const seq = this.nextSeq++;
    const answer = new Promise<number | string | null>((resolve) => this.replies.set(seq, resolve));
    this.post(message(seq));
    this.refresh();
    return answer;
  }

  /** @internal */
  end(job: HashJob): void {
    this.jobs.delete(job.id);
    this.refresh();
  }

  /** Tells the worker about the bytes copied since the last time. */
  private announce(): void {
    if (this.announceTimer !== null) clearTimeout(this.announceTimer);
    this.announceTimer = null;
    if (this.records.length === 0) return;
    const message: ToWorker = { op: 'data', records: this.records, end: this.written };
    this.records = [];
    this.announced = this.written;
    this.start().postMessage(message);
  }

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(WORKER_URL, { workerData: { checkpoint: this.checkpoint, ring: this.ring }, name: 'bxchange-sha256' });
    worker.on('message', (message: FromWorker) => {
      if (this.worker !== worker) return;
      if (message.op === 'consumed') {
        this.consumed = message.end;
        const waiters = this.spaceWaiters;
        this.spaceWaiters = [];
        for (const wake of waiters) wake();
        return;
      }
      const resolve = this.replies.get(message.seq);
      this.replies.delete(message.seq);
      resolve?.(message.value);
      this.refresh();
    });
    worker.on('error', (error) => this.lost(worker, error));
    worker.on('exit', (code) => this.lost(worker, new Error(`the SHA-256 worker exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private lost(worker: Worker, error: unknown): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const jobs = [...this.jobs.values()];
    const replies = [...this.replies.values()];
    const waiters = this.spaceWaiters;
    this.jobs.clear();
    this.replies.clear();
    this.spaceWaiters = [];
    if (this.announceTimer !== null) clearTimeout(this.announceTimer);
    this.announceTimer = null;
    this.records = [];
    this.written = this.consumed = this.announced = 0;
    for (const job of jobs) job.break();
    for (const resolve of replies) resolve(null);
    for (const wake of waiters) wake();
    this.onLost(error);
  }

  /** Referenced only while a job or a request waits on the worker. */
  private refresh(): void {
    if (this.worker === null) return;
    if (this.jobs.size > 0 || this.replies.size > 0) this.worker.ref();
    else this.worker.unref();
  }
}

/** One PATCH's hash: chunks in order, then settle at the stored offset and keep (or drop). */
export class HashJob {
  readonly id: number;
  private readonly thread: Sha256Thread;
  private broken = false;
  /** Bumped by settle and drop: a copy still waiting for room from before must not go on. */
  private epoch = 0;

  constructor(thread: Sha256Thread, id: number) {
    this.thread = thread;
    this.id = id;
  }

  /** Hashes `chunk` after the bytes before it; a promise only when it must wait for room (backpressure). */
  update(chunk: Uint8Array): Promise<void> | undefined {
    return this.broken ? undefined : this.thread.copy(this, chunk, this.epoch);
  }

  /**
   * Brings the hash to `stored` bytes: the offset it now covers, `stored` itself or a checkpoint below it
   * (the caller then updates it with the bytes in between), or null when it cannot.
   */
  async settle(stored: number): Promise<number | null> {
    this.epoch++;
    if (this.broken) return null;
    return (await this.thread.request((seq) => ({ op: 'settle', job: this.id, seq, stored }))) as number | null;
  }

  /** Keeps the hash, which must cover `offset` bytes, as the upload's running hash; false if it could not. */
  async keep(id: string, offset: number): Promise<boolean> {
    const kept = this.broken ? null : await this.thread.request((seq) => ({ op: 'keep', job: this.id, seq, id, offset }));
    this.thread.end(this);
    return kept === offset;
  }

  drop(): void {
    this.epoch++;
    if (!this.broken) this.thread.post({ op: 'drop', job: this.id });
    this.broken = true;
    this.thread.end(this);
  }

  /** @internal Whether a copy started at `epoch` may go on. */
  live(epoch: number): boolean {
    return !this.broken && this.epoch === epoch;
  }

  /** @internal The worker died: the job hashes nothing more and settles at null. */
  break(): void {
    this.broken = true;
  }
}
