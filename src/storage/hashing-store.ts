/**
 * A tus DataStore wrapper that computes each upload's SHA-256 while the
 * bytes stream in, so finishing an upload never re-reads the file.
 *
 * Design (hash across PATCHes, interruptions and restarts):
 * - The hash is node:crypto's SHA-256 (OpenSSL, SHA instructions: ≈ 0.55 s of
 *   CPU per GiB on this machine kind, against ≈ 2.7 s for the resumable
 *   WebAssembly hasher used before, whose state could be saved). It runs in a
 *   worker thread (sha256-thread.ts): the event loop only copies each chunk
 *   into a batch for it, with backpressure when it falls behind.
 * - Between two PATCHes of an upload the running hash stays in the worker,
 *   keyed by upload id; this store keeps the offset it covers (`running`).
 *   tus's locker serialises the requests of one upload, so one PATCH at a
 *   time uses it.
 * - A PATCH interrupted mid-stream leaves the store with fewer bytes than the
 *   hash saw (bytes in flight are lost). The worker keeps copies of the hash
 *   every CHECKPOINT bytes (`Hash.copy()`, a few hundred bytes); after an
 *   interruption the last checkpoint at or below the stored offset catches up
 *   by reading back only the bytes between them (at most CHECKPOINT) when the
 *   store can read an unfinished upload (the local folder can; S3 cannot read
 *   an unfinished multipart upload).
 * - When no running hash matches the stored bytes (a restart of the server,
 *   an S3 upload interrupted mid-part, a PATCH served by another node, an
 *   entry evicted after MAX_RUNNING idle uploads, a worker that died), the
 *   upload goes on without one and its hash is rebuilt from the stored object
 *   once complete, read back once (`digest` answers null): the fallback,
 *   logged, not the common path.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { DataStore, type Upload } from '@tus/utils';
import { Sha256Thread, type HashJob } from './sha256-thread.ts';

export const CHECKPOINT = 1024 * 1024;

/** Running hashes kept between PATCHes; beyond this the least recently used is dropped (and rebuilt at the end). */
export const MAX_RUNNING = 10_000;

/** Reads stored bytes [start, end) of an unfinished upload, or null when the store cannot. */
export type PrefixReader = (uploadId: string, start: number, end: number) => Promise<AsyncIterable<Buffer> | null>;

export interface HashingStoreOptions {
  readPrefix: PrefixReader;
  /** Told as a write's bytes pass through (the upload's offset reached so far), e.g. to start writing a local file back early. */
  progress?: (uploadId: string, offset: number) => void;
  /** Called after every write, with the offset stored (null when unknown), e.g. to fsync a local file once complete. */
  afterWrite?: (uploadId: string, offset: number | null) => Promise<void>;
  /** Deletes what the inner store's `remove` may leave behind (idempotent); runs even when `remove` fails. */
  removeSidecars?: (uploadId: string) => Promise<void>;
  /** Told when the hashing thread died and its running hashes were lost (those uploads fall back). */
  onHashThreadLost?: (error: unknown) => void;
}

/** Delegates everything to `inner`, hashing what `write` passes through. */
export class HashingStore extends DataStore {
  readonly inner: DataStore;
  /** The worker thread holding the running hashes. */
  readonly hasher: Sha256Thread;
  private readonly options: HashingStoreOptions;
  /** Upload id → the offset its running hash (in the worker) covers. */
  private readonly running = new Map<string, number>();

  constructor(inner: DataStore, options: HashingStoreOptions) {
    super();
    this.inner = inner;
    this.options = options;
    this.extensions = inner.extensions;
    this.hasher = new Sha256Thread(CHECKPOINT, (error) => {
      this.running.clear();
      if (error !== null) options.onHashThreadLost?.(error);
    });
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

  /** Stops the hashing thread; uploads still in progress then rebuild their hash when they complete. */
  close(): Promise<void> {
    return this.hasher.close();
  }

  /** The offset the running hash of an upload covers, or null when it has none (it will be rebuilt). */
  hashedOffset(id: string): number | null {
    return this.running.get(id) ?? null;
  }

  /**
   * The SHA-256 (hex) of a complete upload of `size` bytes from its running hash, which is then
   * forgotten; null when no running hash covers exactly `size` bytes (the caller rebuilds it).
   */
  async digest(id: string, size: number): Promise<string | null> {
    const offset = this.running.get(id);
    this.running.delete(id);
    if (offset === undefined) return null;
    if (offset === size) return this.hasher.digest(id, size);
    this.hasher.forget(id);
    return null;
  }

  /**
   * The SHA-256 (hex) of a complete upload of `size` bytes, for every door that completes one: the running
   * hash when it covers the file, else the fallback, the stored object read back once through `readStored`
   * (`rebuilt` tells the caller, which logs it).
   */
  async completedSha256(id: string, size: number, readStored: () => Promise<AsyncIterable<unknown>>): Promise<{ sha256: string; rebuilt: boolean }> {
    const running = size === 0 ? createHash('sha256').digest('hex') : await this.digest(id, size);
    if (running !== null) return { sha256: running, rebuilt: false };
    const hash = createHash('sha256');
    for await (const chunk of await readStored()) hash.update(chunk as Buffer);
    return { sha256: hash.digest('hex'), rebuilt: true };
  }

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const previous = this.running.get(id);
    this.running.delete(id);
    // The hash of [0, offset) goes on in a job, or none can be had (then it is rebuilt at the end).
    const resumable = offset === 0 || previous === offset;
    if (!resumable && previous !== undefined) this.hasher.forget(id);
    const job = resumable ? this.hasher.job(offset === 0 ? null : id, offset) : null;
    const progress = this.options.progress;
    let seen = offset;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        seen += chunk.length;
        progress?.(id, seen);
        const waiting = job?.update(chunk);
        if (waiting === undefined) done(null, chunk);
        else waiting.then(() => done(null, chunk), done);
      },
    });
    readable.on('error', (err) => tap.destroy(err));
    readable.pipe(tap);

    let stored: number | undefined;
    try {
      stored = await this.inner.write(tap, id, offset);
      return stored;
    } finally {
      if (stored === undefined) {
        stored = await this.inner.getUpload(id).then(
          (upload) => upload.offset,
          () => undefined,
        );
      }
      if (job !== null) {
        if (stored === undefined) job.drop();
        else if (await this.settle(job, id, stored).catch(() => false)) this.keep(id, stored);
      }
      await this.options.afterWrite?.(id, stored ?? null);
    }
  }

  private forget(id: string): void {
    if (this.running.delete(id)) this.hasher.forget(id);
  }

  private keep(id: string, offset: number): void {
    this.running.set(id, offset);
    if (this.running.size > MAX_RUNNING) this.forget(this.running.keys().next().value!);
  }

  /**
   * Brings the job's hash to [0, stored) — from the last checkpoint below it and the stored bytes after it
   * when the PATCH broke off — and keeps it for the upload; false when it cannot (the upload falls back).
   */
  private async settle(job: HashJob, id: string, stored: number): Promise<boolean> {
    let caughtUp = false;
    try {
      const base = await job.settle(stored);
      caughtUp = base !== null && (base === stored || (await this.catchUp(job, id, base, stored)));
    } finally {
      if (!caughtUp) job.drop();
    }
    return caughtUp ? job.keep(id, stored) : false;
  }

  /** Feeds the job the stored bytes [from, to); false when the store cannot read them all. */
  private async catchUp(job: HashJob, id: string, from: number, to: number): Promise<boolean> {
    const bytes = await this.options.readPrefix(id, from, to);
    if (bytes === null) return false;
    let read = 0;
    for await (const chunk of bytes) {
      await job.update(chunk);
      read += chunk.length;
    }
    return read === to - from;
  }
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
