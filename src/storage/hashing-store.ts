/**
 * A tus DataStore wrapper that computes each upload's SHA-256 while the
 * bytes stream in, so finishing an upload never re-reads the file.
 *
 * Design (hash across PATCHes, interruptions and restarts):
 * - The hash is node:crypto's SHA-256 (OpenSSL, SHA instructions), run in a
 *   worker thread (hash-worker.ts) so it uses another core than the event
 *   loop: the event loop only copies each chunk into a 1 MiB buffer and
 *   transfers the buffer (no copy) to the worker, which sends it back for
 *   reuse. At most IN_FLIGHT buffers per upload are out, which bounds memory
 *   and makes a slow hash slow the upload down instead of queueing bytes.
 * - The worker keeps the running hash of an upload between its PATCHes
 *   (tus's locker serialises an upload's requests); this side mirrors the
 *   offset it covers and its checkpoints, so it never has to ask.
 * - A PATCH interrupted mid-stream leaves the store with fewer bytes than the
 *   hash saw (bytes in flight are lost). The worker keeps copies of the hash
 *   every CHECKPOINT bytes (`Hash.copy()`); after an interruption the hash
 *   goes back to the last checkpoint at or below the stored offset and
 *   catches up by reading back only the bytes between them (at most
 *   CHECKPOINT) when the store can read an unfinished upload (the local
 *   folder can; S3 cannot read an unfinished multipart upload).
 * - When no running hash matches the stored bytes (a restart of the server,
 *   an S3 upload interrupted mid-part, a PATCH served by another node, the
 *   hash worker lost, an entry evicted after MAX_RUNNING idle uploads), the
 *   upload goes on without one and its hash is rebuilt from the stored
 *   object once complete, read back once (`digest` answers null): the
 *   fallback, logged, not the common path.
 */
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { DataStore, type Upload } from '@tus/utils';
import type { HashMessage } from './hash-worker.ts';

export const CHECKPOINT = 1024 * 1024;

/** Running hashes kept between PATCHes; beyond this the least recently used is dropped (and rebuilt at the end). */
export const MAX_RUNNING = 10_000;

/** Buffers (of CHECKPOINT bytes) an upload may have at the hash worker at once. */
const IN_FLIGHT = 2;
/** Returned buffers kept for reuse, across uploads. */
const POOL_MAX = 16;

/** Reads stored bytes [start, end) of an unfinished upload, or null when the store cannot. */
export type PrefixReader = (uploadId: string, start: number, end: number) => Promise<AsyncIterable<Buffer> | null>;

export interface HashingStoreOptions {
  readPrefix: PrefixReader;
  /** Called after every confirmed write, e.g. to fsync a local file once complete. */
  afterWrite?: (uploadId: string, offset: number) => Promise<void>;
  /** Deletes what the inner store's `remove` may leave behind (idempotent); runs even when `remove` fails. */
  removeSidecars?: (uploadId: string) => Promise<void>;
}

function workerUrl(): URL {
  // Sources run as .ts (Node 24 type stripping), the build as .js.
  return new URL(import.meta.url.endsWith('.ts') ? './hash-worker.ts' : './hash-worker.js', import.meta.url);
}

/**
 * The hash worker of one HashingStore and the buffers going to it and back.
 * A lost worker (crash) loses every running hash: `onLost` is told, and the
 * next use starts a new worker.
 */
class HashWorker {
  private worker: Worker | undefined;
  private readonly pool: ArrayBuffer[] = [];
  private readonly inFlight = new Map<string, number>();
  private readonly waiters = new Map<string, () => void>();
  private readonly tickets = new Map<number, (hex: string | null) => void>();
  private nextTicket = 1;
  private pending = 0;
  private readonly onLost: () => void;

  constructor(onLost: () => void) {
    this.onLost = onLost;
  }

  private get(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(workerUrl());
    worker.on('message', (message: { op: 'free'; id: string; buffer: ArrayBuffer } | { op: 'digest'; ticket: number; hex: string | null }) => {
      if (message.op === 'free') {
        if (this.pool.length < POOL_MAX) this.pool.push(message.buffer);
        const left = (this.inFlight.get(message.id) ?? 1) - 1;
        if (left === 0) this.inFlight.delete(message.id);
        else this.inFlight.set(message.id, left);
        this.waiters.get(message.id)?.();
      } else {
        const answer = this.tickets.get(message.ticket);
        this.tickets.delete(message.ticket);
        answer?.(message.hex);
      }
      this.settled();
    });
    const lost = () => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const answer of this.tickets.values()) answer(null);
      this.tickets.clear();
      this.inFlight.clear();
      for (const wake of this.waiters.values()) wake();
      this.pending = 0;
      this.onLost();
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    // Referenced only while an answer or a buffer is awaited (see settled).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settled(): void {
    if (--this.pending === 0) this.worker?.unref();
  }

  private post(message: HashMessage, transfer: ArrayBuffer[] = []): void {
    const worker = this.get();
    if (this.pending++ === 0) worker.ref();
    worker.postMessage(message, transfer);
    if (message.op !== 'feed' && message.op !== 'digest') this.settled();
  }

  /** Only posted: the worker handles messages in order. */
  send(message: Exclude<HashMessage, { op: 'feed' } | { op: 'digest' }>): void {
    this.post(message);
  }

  /** A 1 MiB buffer for upload `id`, waiting while it has IN_FLIGHT of them at the worker. */
  async buffer(id: string): Promise<Uint8Array> {
    while ((this.inFlight.get(id) ?? 0) >= IN_FLIGHT) {
      await new Promise<void>((resolve) => this.waiters.set(id, resolve));
      this.waiters.delete(id);
    }
    return new Uint8Array(this.pool.pop() ?? new ArrayBuffer(CHECKPOINT));
  }

  feed(id: string, buffer: Uint8Array, length: number, checkpoint: boolean): void {
    this.inFlight.set(id, (this.inFlight.get(id) ?? 0) + 1);
    const bytes = buffer.buffer as ArrayBuffer;
    this.post({ op: 'feed', id, buffer: bytes, length, checkpoint }, [bytes]);
  }

  digest(id: string): Promise<string | null> {
    const ticket = this.nextTicket++;
    return new Promise((resolve) => {
      this.tickets.set(ticket, resolve);
      this.post({ op: 'digest', id, ticket });
    });
  }
}

interface Running {
  /** The worker's hash covers the upload's bytes [0, offset). */
  offset: number;
  /** Offsets of the copies the worker keeps (the same rule: the last 4). */
  checkpoints: number[];
}

/** Delegates everything to `inner`, hashing what `write` passes through. */
export class HashingStore extends DataStore {
  readonly inner: DataStore;
  private readonly options: HashingStoreOptions;
  private readonly running = new Map<string, Running>();
  private readonly hasher = new HashWorker(() => this.running.clear());

  constructor(inner: DataStore, options: HashingStoreOptions) {
    super();
    this.inner = inner;
    this.options = options;
    this.extensions = inner.extensions;
  }

  override create(upload: Upload): Promise<Upload> {
    return this.inner.create(upload);
  }
  override async remove(id: string): Promise<void> {
    this.forget(id);
    try {
      await this.inner.remove(id);
    } finally {
      await this.options.removeSidecars?.(id);
    }
  }
  override getUpload(id: string): Promise<Upload> {
    return this.inner.getUpload(id);
  }
  override declareUploadLength(id: string, length: number): Promise<void> {
    return this.inner.declareUploadLength(id, length);
  }
  override deleteExpired(): Promise<number> {
    return this.inner.deleteExpired();
  }
  override getExpiration(): number {
    return this.inner.getExpiration();
  }
  // GET of uploads is not served (downloads go through the envelope API).
  read(id: string): unknown {
    return (this.inner as unknown as { read(id: string): unknown }).read(id);
  }

  /** The offset the running hash of an upload covers, or null when it has none (it will be rebuilt). */
  hashedOffset(id: string): number | null {
    return this.running.get(id)?.offset ?? null;
  }

  /**
   * The SHA-256 (hex) of a complete upload of `size` bytes from its running hash, which is then
   * forgotten; null when no running hash covers exactly `size` bytes (the caller rebuilds it).
   */
  async digest(id: string, size: number): Promise<string | null> {
    const running = this.running.get(id);
    this.running.delete(id);
    if (running === undefined) return null;
    if (running.offset !== size) {
      this.hasher.send({ op: 'drop', id });
      return null;
    }
    return this.hasher.digest(id);
  }

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const previous = this.running.get(id);
    this.running.delete(id);
    // The hash of [0, offset) is at the worker, or none can be had (then it is rebuilt at the end).
    let hashing = offset === 0 || (previous !== undefined && previous.offset === offset);
    const checkpoints = offset === 0 ? [] : (previous?.checkpoints ?? []);
    if (hashing) {
      this.hasher.send({ op: 'open', id, fresh: offset === 0 });
      keep(checkpoints, offset);
    } else if (previous !== undefined) this.hasher.send({ op: 'drop', id });

    const hasher = this.hasher;
    let seen = offset;
    // The bytes since the last checkpoint, copied into one buffer (CHECKPOINT long) sent at each checkpoint.
    let buffer: Uint8Array | null = null;
    let filled = 0;
    // Set when the PATCH is over: a chunk still waiting for a buffer then feeds nothing more.
    let closed = false;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (!hashing) {
          seen += chunk.length;
          return done(null, chunk);
        }
        const feed = async () => {
          let position = 0;
          while (position < chunk.length) {
            buffer ??= await hasher.buffer(id);
            if (closed) return;
            const take = Math.min(chunk.length - position, CHECKPOINT - filled);
            chunk.copy(buffer, filled, position, position + take);
            position += take;
            filled += take;
            if (filled === CHECKPOINT) {
              hasher.feed(id, buffer, filled, true);
              keep(checkpoints, seen + position);
              buffer = null;
              filled = 0;
            }
          }
          seen += chunk.length;
        };
        feed().then(
          () => done(null, chunk),
          (err: Error) => done(err),
        );
      },
    });
    readable.on('error', (err) => tap.destroy(err));
    readable.pipe(tap);

    let stored: number | undefined;
    try {
      stored = await this.inner.write(tap, id, offset);
      return stored;
    } finally {
      closed = true;
      if (hashing && buffer !== null && filled > 0) hasher.feed(id, buffer, filled, false);
      if (stored === undefined) {
        stored = await this.inner.getUpload(id).then(
          (upload) => upload.offset,
          () => undefined,
        );
      }
      if (hashing && stored !== undefined && stored !== seen) hashing = await this.catchUp(id, checkpoints, stored).catch(() => false);
      if (hashing && stored !== undefined) this.keepRunning(id, { offset: stored, checkpoints });
      else if (hashing) this.hasher.send({ op: 'drop', id });
      if (stored !== undefined) await this.options.afterWrite?.(id, stored);
    }
  }

  private forget(id: string): void {
    if (this.running.delete(id)) this.hasher.send({ op: 'drop', id });
  }

  private keepRunning(id: string, running: Running): void {
    this.running.set(id, running);
    if (this.running.size > MAX_RUNNING) this.forget(this.running.keys().next().value!);
  }

  /** Brings the worker's hash to `stored` from the last checkpoint below it and the stored bytes after it; false when unreadable. */
  private async catchUp(id: string, checkpoints: number[], stored: number): Promise<boolean> {
    const base = checkpoints.findLast((c) => c <= stored);
    const bytes = base === undefined ? null : await this.options.readPrefix(id, base, stored);
    if (base === undefined || bytes === null) {
      this.hasher.send({ op: 'drop', id });
      return false;
    }
    this.hasher.send({ op: 'rewind', id, to: base });
    checkpoints.splice(0, checkpoints.length, ...checkpoints.filter((c) => c <= base));
    let read = 0;
    for await (const chunk of bytes) {
      const buffer = await this.hasher.buffer(id);
      buffer.set(chunk);
      this.hasher.feed(id, buffer, chunk.length, false);
      read += chunk.length;
    }
    if (read !== stored - base) {
      this.hasher.send({ op: 'drop', id });
      return false;
    }
    return true;
  }
}

/** Records a checkpoint offset with the worker's rule (the last 4). */
function keep(checkpoints: number[], offset: number): void {
  checkpoints.push(offset);
  if (checkpoints.length > 4) checkpoints.shift();
}

/** Reads a byte range of a local upload file, for catch-up. */
export function localPrefixReader(resolve: (uploadId: string) => string): PrefixReader {
  return async (uploadId, start, end) => {
    if (end <= start) return (async function* () {})();
    const handle = await open(resolve(uploadId), 'r');
    return (async function* () {
      try {
        const buffer = Buffer.alloc(Math.min(CHECKPOINT, end - start));
        let position = start;
        while (position < end) {
          const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position), position);
          if (bytesRead === 0) break;
          yield Buffer.from(buffer.subarray(0, bytesRead));
          position += bytesRead;
        }
      } finally {
        await handle.close();
      }
    })();
  };
}
