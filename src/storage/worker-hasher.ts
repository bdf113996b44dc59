/**
 * The main-thread side of hash-worker.ts: a resumable SHA-256 whose work runs
 * in a worker thread. One worker per process, shared by every upload
 * (sessions); it keeps the process alive only while a session is open.
 *
 * Backpressure: bytes posted but not yet hashed are bounded (MAX_IN_FLIGHT);
 * `update` resolves at once below the bound and waits for the worker above
 * it, so memory stays flat whatever the upload size.
 */
import { Worker } from 'node:worker_threads';

// Per upload: 20 concurrent uploads with 16 MiB each held ~330 MiB more RSS (bench/memory); 1 MiB kept the same throughput.
const MAX_IN_FLIGHT = 1024 * 1024;

interface Pool {
  worker: Worker;
  sessions: Map<number, WorkerHasher>;
  tickets: Map<number, { resolve(state: Uint8Array): void; reject(err: Error): void }>;
  nextSession: number;
  nextTicket: number;
}

let pool: Pool | undefined;

function workerUrl(): URL {
  // Sources run as .ts (Node 24 type stripping), the build as .js.
  return new URL(import.meta.url.endsWith('.ts') ? './hash-worker.ts' : './hash-worker.js', import.meta.url);
}

function getPool(): Pool {
  if (pool !== undefined) return pool;
  const worker = new Worker(workerUrl());
  const created: Pool = { worker, sessions: new Map(), tickets: new Map(), nextSession: 1, nextTicket: 1 };
  worker.on('message', (message: { op: string; session?: number; bytes?: number; ticket?: number; state?: Uint8Array }) => {
    if (message.op === 'ack') created.sessions.get(message.session!)?.acknowledge(message.bytes!);
    else if (message.op === 'saved') {
      const waiter = created.tickets.get(message.ticket!);
      created.tickets.delete(message.ticket!);
      waiter?.resolve(message.state!);
    }
  });
  const fail = (err: Error) => {
    for (const waiter of created.tickets.values()) waiter.reject(err);
    created.tickets.clear();
    for (const session of created.sessions.values()) session.fail(err);
    if (pool === created) pool = undefined;
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`hash worker exited (${code})`)));
  // After the listeners: adding a 'message' listener refs the worker's port again.
  worker.unref();
  pool = created;
  return created;
}

export class WorkerHasher {
  private readonly pool: Pool;
  private readonly session: number;
  private inFlight = 0;
  private waiters: Array<{ resolve(): void; reject(err: Error): void }> = [];
  private failure: Error | undefined;

  constructor(state: Uint8Array | null) {
    this.pool = getPool();
    this.session = this.pool.nextSession++;
    // Keep the process alive while a hash is open (its answers are awaited); idle, the worker never does.
    if (this.pool.sessions.size === 0) this.pool.worker.ref();
    this.pool.sessions.set(this.session, this);
    this.pool.worker.postMessage({ op: 'open', session: this.session, state });
  }

  /** Feeds a copy of `chunk`; waits only when too many bytes are still being hashed. */
  async update(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    const copy = new Uint8Array(chunk.byteLength);
    copy.set(chunk);
    this.inFlight += copy.byteLength;
    this.pool.worker.postMessage({ op: 'update', session: this.session, data: copy }, [copy.buffer]);
    if (this.inFlight > MAX_IN_FLIGHT) {
      await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
  }

  /** The state after every byte fed so far (serialised, ~100 bytes). */
  save(): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    const ticket = this.pool.nextTicket++;
    return new Promise((resolve, reject) => {
      this.pool.tickets.set(ticket, { resolve, reject });
      this.pool.worker.postMessage({ op: 'save', session: this.session, ticket });
    });
  }

  close(): void {
    this.pool.sessions.delete(this.session);
    if (this.pool.sessions.size === 0) this.pool.worker.unref();
    this.pool.worker.postMessage({ op: 'close', session: this.session });
    this.release(new Error('hasher closed'));
  }

  /** @internal from the pool */
  acknowledge(bytes: number): void {
    this.inFlight -= bytes;
    if (this.inFlight <= MAX_IN_FLIGHT / 2) this.release();
  }

  /** @internal from the pool */
  fail(err: Error): void {
    this.failure = err;
    this.release(err);
  }

  private release(err?: Error): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) (err === undefined ? waiter.resolve() : waiter.reject(err));
  }
}
