/**
 * A tus DataStore wrapper that computes each upload's SHA-256 while the
 * bytes stream in, so finishing an upload never re-reads the file.
 *
 * Design (hash across PATCHes, interruptions and restarts):
 * - The hash is node:crypto's SHA-256 (OpenSSL, SHA instructions: ≈ 0.55 s of
 *   CPU per GiB on this machine kind, against ≈ 2.7 s for the resumable
 *   WebAssembly hasher used before, whose state could be saved). It runs on
 *   the event loop, 64 KiB at a time.
 * - Between two PATCHes of an upload the running hash stays in this process
 *   (`running`, keyed by upload id, with the offset it covers). tus's locker
 *   serialises the requests of one upload, so one PATCH at a time uses it.
 * - A PATCH interrupted mid-stream leaves the store with fewer bytes than the
 *   hash saw (bytes in flight are lost). Copies of the hash are kept every
 *   CHECKPOINT bytes (`Hash.copy()`, a few hundred bytes); after an
 *   interruption the last checkpoint at or below the stored offset catches up
 *   by reading back only the bytes between them (at most CHECKPOINT) when the
 *   store can read an unfinished upload (the local folder can; S3 cannot read
 *   an unfinished multipart upload).
 * - When no running hash matches the stored bytes (a restart of the server,
 *   an S3 upload interrupted mid-part, a PATCH served by another node, an
 *   entry evicted after MAX_RUNNING idle uploads), the upload goes on without
 *   one and its hash is rebuilt from the stored object once complete, read
 *   back once (`digest` answers null): the fallback, logged, not the common path.
 */
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { DataStore, type Upload } from '@tus/utils';

export const CHECKPOINT = 1024 * 1024;

/** Running hashes kept between PATCHes; beyond this the least recently used is dropped (and rebuilt at the end). */
export const MAX_RUNNING = 10_000;

/** Reads stored bytes [start, end) of an unfinished upload, or null when the store cannot. */
export type PrefixReader = (uploadId: string, start: number, end: number) => Promise<AsyncIterable<Buffer> | null>;

export interface HashingStoreOptions {
  readPrefix: PrefixReader;
  /** Called after every confirmed write, e.g. to fsync a local file once complete. */
  afterWrite?: (uploadId: string, offset: number) => Promise<void>;
  /** Deletes what the inner store's `remove` may leave behind (idempotent); runs even when `remove` fails. */
  removeSidecars?: (uploadId: string) => Promise<void>;
}

interface Running {
  hash: Hash;
  /** The hash covers the upload's bytes [0, offset). */
  offset: number;
}

/** Delegates everything to `inner`, hashing what `write` passes through. */
export class HashingStore extends DataStore {
  readonly inner: DataStore;
  private readonly options: HashingStoreOptions;
  private readonly running = new Map<string, Running>();

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
    this.running.delete(id);
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
  digest(id: string, size: number): string | null {
    const running = this.running.get(id);
    this.running.delete(id);
    return running !== undefined && running.offset === size ? running.hash.digest('hex') : null;
  }

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const previous = this.running.get(id);
    this.running.delete(id);
    // The hash of [0, offset), or null when none can be had (then it is rebuilt at the end).
    const hash = offset === 0 ? createHash('sha256') : previous !== undefined && previous.offset === offset ? previous.hash : null;
    const checkpoints: Running[] = hash === null ? [] : [{ hash: hash.copy(), offset }];
    let seen = offset;
    let sinceCheckpoint = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (hash !== null) {
          // Split at checkpoint boundaries so a copy exists every CHECKPOINT bytes.
          let position = 0;
          while (position < chunk.length) {
            const take = Math.min(chunk.length - position, CHECKPOINT - sinceCheckpoint);
            hash.update(take === chunk.length ? chunk : chunk.subarray(position, position + take));
            position += take;
            sinceCheckpoint += take;
            if (sinceCheckpoint === CHECKPOINT) {
              checkpoints.push({ hash: hash.copy(), offset: seen + position });
              if (checkpoints.length > 4) checkpoints.shift();
              sinceCheckpoint = 0;
            }
          }
        }
        seen += chunk.length;
        done(null, chunk);
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
      if (hash !== null && stored !== undefined) {
        const kept = stored === seen ? { hash, offset: stored } : await this.fromCheckpoint(id, checkpoints, stored).catch(() => null);
        if (kept !== null) this.keep(id, kept);
      }
      if (stored !== undefined) await this.options.afterWrite?.(id, stored);
    }
  }

  private keep(id: string, running: Running): void {
    this.running.set(id, running);
    if (this.running.size > MAX_RUNNING) this.running.delete(this.running.keys().next().value!);
  }

  /** The hash of [0, stored) from the last checkpoint below it and the stored bytes after it; null when unreadable. */
  private async fromCheckpoint(id: string, checkpoints: Running[], stored: number): Promise<Running | null> {
    const base = checkpoints.findLast((c) => c.offset <= stored);
    if (base === undefined) return null;
    const bytes = await this.options.readPrefix(id, base.offset, stored);
    if (bytes === null) return null;
    let read = 0;
    for await (const chunk of bytes) {
      base.hash.update(chunk);
      read += chunk.length;
    }
    return read === stored - base.offset ? { hash: base.hash, offset: stored } : null;
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
