/**
 * A tus DataStore wrapper that computes each upload's SHA-256 while the
 * bytes stream in, so finishing an upload never re-reads the file.
 *
 * Design (hash state across resumes, restarts and nodes):
 * - node:crypto's Hash cannot be serialised, hash-wasm's can (`save()` /
 *   `load()`, ~100 bytes). It runs in a worker thread (worker-hasher.ts):
 *   WebAssembly SHA-256 costs ~2.6 s of CPU per GiB, kept off the event loop. The state is saved in the database together with
 *   the offset it covers, and only at an offset the store has confirmed
 *   (the offset `write` returned), so any node can continue it.
 * - A PATCH interrupted mid-stream leaves the store with fewer bytes than
 *   the hasher saw (bytes in flight are lost). We keep in-memory checkpoints
 *   of the state every CHECKPOINT bytes; after an interruption we take the
 *   last checkpoint at or below the stored offset and catch up by reading
 *   only the bytes between them back from the store (at most CHECKPOINT
 *   bytes), when the store can read a range of an unfinished upload (the
 *   local folder can; S3 cannot read an unfinished multipart upload).
 * - When no usable state exists (an S3 upload interrupted mid-part, a crash
 *   between write and save), the state is dropped and the hash is rebuilt
 *   from the stored object once complete: the fallback, not the common path.
 */
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { DataStore, type Upload } from '@tus/utils';
import { createSHA256, type IHasher } from 'hash-wasm';
import { WorkerHasher } from './worker-hasher.ts';

export const CHECKPOINT = 1024 * 1024;

export interface HashStates {
  load(uploadId: string): Promise<{ state: Buffer; offset: number } | null>;
  save(uploadId: string, state: Buffer, offset: number): Promise<void>;
  /** Forgets a state that no longer matches the stored bytes. */
  clear(uploadId: string): Promise<void>;
}

/** Reads stored bytes [start, end) of an unfinished upload, or null when the store cannot. */
export type PrefixReader = (uploadId: string, start: number, end: number) => Promise<AsyncIterable<Buffer> | null>;

export interface HashingStoreOptions {
  states: HashStates;
  readPrefix: PrefixReader;
  /** Called after every confirmed write, e.g. to fsync a local file once complete. */
  afterWrite?: (uploadId: string, offset: number) => Promise<void>;
}

async function hasherFrom(state: Buffer | null): Promise<IHasher> {
  const hasher = await createSHA256();
  hasher.init();
  if (state !== null) hasher.load(new Uint8Array(state));
  return hasher;
}

/** Delegates everything to `inner`, hashing what `write` passes through. */
export class HashingStore extends DataStore {
  readonly inner: DataStore;
  private readonly options: HashingStoreOptions;

  constructor(inner: DataStore, options: HashingStoreOptions) {
    super();
    this.inner = inner;
    this.options = options;
    this.extensions = inner.extensions;
  }

  override create(upload: Upload): Promise<Upload> {
    return this.inner.create(upload);
  }
  override remove(id: string): Promise<void> {
    return this.inner.remove(id);
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

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const { states } = this.options;
    const saved = offset === 0 ? null : await states.load(id);
    // The state at `offset`, or undefined when none can be had (the fallback then rebuilds at the end).
    let initial: Uint8Array | undefined;
    if (offset === 0) initial = (await hasherFrom(null)).save();
    else if (saved !== null && saved.offset === offset) initial = new Uint8Array(saved.state);
    else if (saved !== null && saved.offset < offset) initial = (await this.catchUp(id, await hasherFrom(saved.state), saved.offset, offset))?.save();

    // Hashing runs in a worker thread (worker-hasher.ts); checkpoints are states requested every
    // CHECKPOINT bytes, kept as promises (the worker answers in order).
    const hasher = initial === undefined ? null : new WorkerHasher(initial);
    const checkpoints: Array<{ offset: number; state: Promise<Uint8Array> }> = initial === undefined ? [] : [{ offset, state: Promise.resolve(initial) }];
    let seen = offset;
    let sinceCheckpoint = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const feed = async () => {
          if (hasher !== null) {
            // Split at checkpoint boundaries so a state exists every CHECKPOINT bytes.
            let position = 0;
            while (position < chunk.length) {
              const take = Math.min(chunk.length - position, CHECKPOINT - sinceCheckpoint);
              await hasher.update(chunk.subarray(position, position + take));
              position += take;
              sinceCheckpoint += take;
              if (sinceCheckpoint === CHECKPOINT) {
                const state = hasher.save();
                state.catch(() => undefined); // awaited (or dropped) later; never an unhandled rejection
                checkpoints.push({ offset: seen + position, state });
                if (checkpoints.length > 4) checkpoints.shift();
                sinceCheckpoint = 0;
              }
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
      if (stored === undefined) {
        stored = await this.inner.getUpload(id).then(
          (upload) => upload.offset,
          () => undefined,
        );
      }
      await this.commit(id, hasher, seen, stored, checkpoints).catch(() => states.clear(id));
      hasher?.close();
      if (stored !== undefined) await this.options.afterWrite?.(id, stored);
    }
  }

  /** Saves the state matching what the store holds, or clears it when none can be had. */
  private async commit(
    id: string,
    hasher: WorkerHasher | null,
    seen: number,
    stored: number | undefined,
    checkpoints: Array<{ offset: number; state: Promise<Uint8Array> }>,
  ): Promise<void> {
    const { states } = this.options;
    if (hasher === null || stored === undefined) return states.clear(id);
    if (stored === seen) return states.save(id, Buffer.from(await hasher.save()), stored);
    const base = [...checkpoints].reverse().find((c) => c.offset <= stored);
    if (base === undefined) return states.clear(id);
    const caught = await this.catchUp(id, await hasherFrom(Buffer.from(await base.state)), base.offset, stored);
    if (caught === null) return states.clear(id);
    return states.save(id, Buffer.from(caught.save()), stored);
  }

  /** Feeds the stored bytes [from, to) into `hasher`; null when the store cannot read them. */
  private async catchUp(id: string, hasher: IHasher, from: number, to: number): Promise<IHasher | null> {
    if (to - from > 64 * CHECKPOINT) return null;
    const bytes = await this.options.readPrefix(id, from, to);
    if (bytes === null) return null;
    let read = 0;
    for await (const chunk of bytes) {
      hasher.update(chunk);
      read += chunk.length;
    }
    return read === to - from ? hasher : null;
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

/** Finishes the hash from a saved state, or null when there is none for the full size. */
export async function digestFromState(saved: { state: Buffer; offset: number } | null, size: number): Promise<string | null> {
  if (saved === null || saved.offset !== size) return null;
  const hasher = await hasherFrom(saved.state);
  return hasher.digest('hex');
}
