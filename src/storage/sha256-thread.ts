/**
 * SHA-256 of uploads off the event loop: one worker thread per store
 * (sha256-worker.ts) holds the running hashes, and the main thread only
 * copies each chunk into a batch and posts it (transferred, not cloned).
 *
 * Why: node:crypto's SHA-256 costs ≈ 0.55 s of CPU per GiB on this machine
 * kind, about a third of the event loop's work during an upload (see
 * BENCHMARKS.md); a copy costs a fraction of that, and the hash runs on the
 * other core.
 *
 * Bounds: a job (one PATCH) holds at most MAX_BATCHES_PER_JOB batches of
 * BATCH bytes, the one it fills and those the worker has not hashed yet; when
 * the worker falls behind, the PATCH waits for a batch to come back
 * (backpressure), so memory stays flat whatever the upload's size.
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
  | { op: 'update'; job: number; buffer: ArrayBuffer; length: number }
  | { op: 'settle'; job: number; seq: number; stored: number }
  | { op: 'keep'; job: number; seq: number; id: string; offset: number }
  | { op: 'drop'; job: number }
  | { op: 'forget'; id: string }
  | { op: 'digest'; seq: number; id: string; size: number };

export type FromWorker = { op: 'free'; job: number; buffer: ArrayBuffer } | { op: 'reply'; seq: number; value: number | string | null };

/** Bytes per message to the worker. */
export const BATCH = 1024 * 1024;
/** Batches one job may hold at once (filling + queued): 1 MiB per PATCH in flight. */
export const MAX_BATCHES_PER_JOB = 3;
/** Returned batches kept for reuse across jobs. */
const MAX_FREE = 16;

// The worker sits beside this module: .ts when the sources run directly, .js in the compiled dist/.
const WORKER_URL = new URL(`./sha256-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export class Sha256Thread {
  private worker: Worker | null = null;
  private nextJob = 1;
  private nextSeq = 1;
  private readonly jobs = new Map<number, HashJob>();
  private readonly replies = new Map<number, (value: number | string | null) => void>();
  private readonly free: ArrayBuffer[] = [];
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

  /** @internal */
  post(message: ToWorker, transfer?: ArrayBuffer[]): void {
    this.start().postMessage(message, transfer);
  }

  /** @internal A request whose answer comes back as a reply; null if the worker dies first. */
  request(message: (seq: number) => ToWorker): Promise<number | string | null> {
    const seq = this.nextSeq++;
    const answer = new Promise<number | string | null>((resolve) => this.replies.set(seq, resolve));
    this.post(message(seq));
    this.refresh();
    return answer;
  }

  /** @internal A batch for `job`, or null when it already holds its share (it then waits for one back). */
  take(job: HashJob): ArrayBuffer | null {
    if (job.held >= MAX_BATCHES_PER_JOB) return null;
    job.held++;
    return this.free.pop() ?? new ArrayBuffer(BATCH);
  }

  /** @internal A batch the job will not send. */
  give(job: HashJob, buffer: ArrayBuffer): void {
    job.held--;
    if (this.free.length < MAX_FREE) this.free.push(buffer);
  }

  /** @internal */
  end(job: HashJob): void {
    this.jobs.delete(job.id);
    this.refresh();
  }

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(WORKER_URL, { workerData: { checkpoint: this.checkpoint }, name: 'bxchange-sha256' });
    worker.on('message', (message: FromWorker) => {
      if (message.op === 'free') {
        const job = this.jobs.get(message.job);
        if (job === undefined) {
          if (this.free.length < MAX_FREE) this.free.push(message.buffer);
        } else {
          this.give(job, message.buffer);
          job.wake();
        }
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
    this.jobs.clear();
    this.replies.clear();
    this.free.length = 0;
    for (const job of jobs) job.break();
    for (const resolve of replies) resolve(null);
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
  /** Batches held: the one being filled and those posted but not yet back. */
  held = 0;
  private readonly thread: Sha256Thread;
  private batch: Buffer | null = null;
  private filled = 0;
  private broken = false;
  /** Bumped by settle: an update still waiting for a batch from before it must not send its rest. */
  private epoch = 0;
  private waiter: (() => void) | null = null;

  constructor(thread: Sha256Thread, id: number) {
    this.thread = thread;
    this.id = id;
  }

  /** Hashes `chunk` after the bytes before it; a promise only when it must wait for a batch (backpressure). */
  update(chunk: Uint8Array): Promise<void> | undefined {
    const epoch = this.epoch;
    let position = 0;
    while (position < chunk.length && !this.broken) {
      if (this.batch === null) {
        const buffer = this.thread.take(this);
        if (buffer === null) {
          const rest = chunk.subarray(position);
          return new Promise<void>((resolve) => (this.waiter = resolve)).then(() => {
            if (this.epoch === epoch) return this.update(rest);
          });
        }
        this.batch = Buffer.from(buffer);
        this.filled = 0;
      }
      const copied = Math.min(chunk.length - position, this.batch.length - this.filled);
      this.batch.set(copied === chunk.length ? chunk : chunk.subarray(position, position + copied), this.filled);
      this.filled += copied;
      position += copied;
      if (this.filled === this.batch.length) this.flush();
    }
    return undefined;
  }

  /**
   * Brings the hash to `stored` bytes: the offset it now covers, `stored` itself or a checkpoint below it
   * (the caller then updates it with the bytes in between), or null when it cannot.
   */
  async settle(stored: number): Promise<number | null> {
    this.epoch++;
    this.wake();
    this.flush();
    if (this.broken) return null;
    return (await this.thread.request((seq) => ({ op: 'settle', job: this.id, seq, stored }))) as number | null;
  }

  /** Keeps the hash, which must cover `offset` bytes, as the upload's running hash; false if it could not. */
  async keep(id: string, offset: number): Promise<boolean> {
    this.flush();
    const kept = this.broken ? null : await this.thread.request((seq) => ({ op: 'keep', job: this.id, seq, id, offset }));
    this.thread.end(this);
    return kept === offset;
  }

  drop(): void {
    this.epoch++;
    this.wake();
    if (this.batch !== null) this.thread.give(this, this.batch.buffer as ArrayBuffer);
    this.batch = null;
    if (!this.broken) this.thread.post({ op: 'drop', job: this.id });
    this.broken = true;
    this.thread.end(this);
  }

  /** @internal The worker returned one of this job's batches. */
  wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  /** @internal The worker died: the job hashes nothing more and settles at null. */
  break(): void {
    this.broken = true;
    this.batch = null;
    this.wake();
  }

  private flush(): void {
    const batch = this.batch;
    this.batch = null;
    if (batch === null || this.broken) return;
    const buffer = batch.buffer as ArrayBuffer;
    if (this.filled === 0) this.thread.give(this, buffer);
    else this.thread.post({ op: 'update', job: this.id, buffer, length: this.filled }, [buffer]);
  }
}
