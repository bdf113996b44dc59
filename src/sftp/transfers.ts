/**
 * Byte transfers of the SFTP door: uploads into a draft and downloads of
 * stored files, in the shape SFTP asks for them (WRITE and READ requests at
 * explicit offsets, many in flight).
 *
 * Uploads — design. An SFTP put is written straight into the resumable
 * upload store the tus door uses (`services.uploadStore`: @tus/file-store
 * with batched writes, or @tus/s3-store, wrapped in the HashingStore that
 * hashes the bytes as they pass, in a worker thread, and keeps the running
 * SHA-256 in memory between writes). We chose it over staging on local disk and copying into the BlobStore on close because:
 * - the bytes reach their final place as they arrive (no second copy of a
 *   10 GiB file when the client closes, no local disk the size of the file);
 * - a put cut by a dropped connection leaves a partial upload in the shared
 *   store, which `reput` resumes on any node (the hash continues in memory,
 *   or is rebuilt from the stored bytes at the end on another node), exactly
 *   as a tus client would (the same keys `envelopes/<envelope>/<file>`, the
 *   same expiry of abandoned uploads by the hygiene sweep);
 * - finishing is the tus door's: declare the length, let the store complete
 *   (S3 CompleteMultipartUpload / fsync of the local file), take the SHA-256
 *   from the running hash, then `envelopes.finishUpload`.
 * The length is unknown until CLOSE (SFTP never announces it), so uploads
 * are created with a deferred length.
 *
 * Offsets: every WRITE names its offset and is honoured or refused, never
 * appended elsewhere (OpenSSH's reput opens with SSH_FXF_APPEND: mapping
 * that to O_APPEND would ignore the offsets). The store takes bytes in
 * order; WRITEs ahead of the next offset (allowed by the protocol, rare in
 * practice) wait in a bounded reorder buffer; a WRITE behind it (rewriting
 * stored bytes) or a gap left at CLOSE is refused.
 *
 * Memory: WRITE payloads (32 KiB from OpenSSH) are copied into 1 MiB blocks
 * (fewer hand-offs to the hashing worker, and ssh2's packet buffers are not
 * retained); a block waits in a PassThrough of at most HIGH_WATER bytes, and
 * when it is full the status replies are held back, which stops the client
 * (it has a bounded number of requests in flight). Per upload: a few MiB.
 */
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { Upload } from '@tus/utils';
import { AppError } from '../errors.ts';
import type { Envelopes } from '../domain/envelopes.ts';
import type { FileRecord } from '../domain/ports.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { HashingStore } from '../storage/hashing-store.ts';
import { failure } from './status.ts';

const BLOCK = 1024 * 1024;
const HIGH_WATER = 4 * BLOCK;
/** Bytes of WRITEs ahead of the next offset kept while the gap fills. */
const MAX_REORDER = 16 * BLOCK;

export interface UploadDeps {
  uploadStore: HashingStore;
  blobStore: BlobStore;
  envelopes: Envelopes;
  maxUploadBytes: number;
}

/** Creates the store's upload for a new file row (deferred length). */
export async function createStoredUpload(deps: UploadDeps, file: FileRecord): Promise<void> {
  await deps.uploadStore.create(
    new Upload({
      id: file.storageKey,
      offset: 0,
      metadata: { envelope: file.envelopeId, filename: file.name, filetype: file.mediaType },
      creation_date: new Date().toISOString(),
    }),
  );
}

/** How many bytes of an unfinished upload the store holds; null when it holds none (expired, never created). */
export async function storedOffset(deps: UploadDeps, file: FileRecord): Promise<number | null> {
  try {
    return (await deps.uploadStore.getUpload(file.storageKey)).offset;
  } catch {
    return null;
  }
}

/** One open SFTP write handle on a draft's file. */
export class UploadSink {
  readonly file: FileRecord;
  /** The next offset the store will take. */
  offset: number;
  private readonly deps: UploadDeps;
  private readonly pass = new PassThrough({ highWaterMark: HIGH_WATER });
  private readonly writing: Promise<number>;
  private block = Buffer.allocUnsafe(BLOCK);
  private fill = 0;
  private blocked: Promise<void> | null = null;
  private failed: Error | null = null;
  private readonly ahead = new Map<number, Buffer>();
  private aheadBytes = 0;
  private ended = false;

  constructor(deps: UploadDeps, file: FileRecord, startOffset: number) {
    this.deps = deps;
    this.file = file;
    this.offset = startOffset;
    this.writing = deps.uploadStore.write(this.pass, file.storageKey, startOffset);
    this.writing.catch((err: Error) => {
      this.failed ??= err;
    });
  }

  /** Takes one WRITE; resolves when its status may be answered (backpressure), rejects to refuse it. */
  write(offset: number, data: Buffer): Promise<void> {
    if (this.failed !== null) return Promise.reject(failure('The upload failed; put the file again'));
    if (this.ended) return Promise.reject(failure('The file is closed'));
    const end = offset + data.length;
    if (end > this.deps.maxUploadBytes) {
      this.failed = new AppError('payloadTooLarge', `Files are limited to ${this.deps.maxUploadBytes} bytes`);
      return Promise.reject(this.failed);
    }
    if (offset < this.offset) {
      return Promise.reject(failure(`Bytes before offset ${this.offset} are already stored; the door writes each byte once, in order`));
    }
    if (offset > this.offset) {
      if (this.aheadBytes + data.length > MAX_REORDER) {
        return Promise.reject(failure(`A write at ${offset} leaves a gap from ${this.offset}; the door takes files written in order`));
      }
      this.ahead.set(offset, Buffer.from(data));
      this.aheadBytes += data.length;
      return this.blocked ?? Promise.resolve();
    }
    this.take(data);
    for (let next = this.ahead.get(this.offset); next !== undefined; next = this.ahead.get(this.offset)) {
      this.ahead.delete(this.offset);
      this.aheadBytes -= next.length;
      this.take(next);
    }
    return this.blocked ?? Promise.resolve();
  }

  private take(data: Buffer): void {
    let position = 0;
    while (position < data.length) {
      const n = Math.min(data.length - position, BLOCK - this.fill);
      data.copy(this.block, this.fill, position, position + n);
      this.fill += n;
      position += n;
      if (this.fill === BLOCK) this.flush();
    }
    this.offset += data.length;
  }

  private flush(): void {
    if (this.fill === 0) return;
    const chunk = this.fill === BLOCK ? this.block : this.block.subarray(0, this.fill);
    this.block = Buffer.allocUnsafe(BLOCK);
    this.fill = 0;
    if (!this.pass.write(chunk) && this.blocked === null) {
      const drained = once(this.pass, 'drain').then(() => undefined);
      const failed = this.writing.then(() => undefined);
      this.blocked = Promise.race([drained, failed]).then(() => {
        this.blocked = null;
        if (this.failed !== null) throw failure('The upload failed; put the file again');
      });
      this.blocked.catch(() => undefined);
    }
  }

  /** Ends the stream and waits for the store: the number of bytes it holds. */
  private async settle(): Promise<number> {
    if (!this.ended) {
      this.ended = true;
      this.flush();
      this.pass.end();
    }
    return this.writing;
  }

  /** CLOSE: completes the upload and the file row; nothing partial is ever completed. */
  async finish(): Promise<FileRecord> {
    if (this.failed !== null) throw this.failed instanceof AppError ? this.failed : failure('The upload failed; put the file again');
    if (this.ahead.size > 0) {
      await this.detach();
      throw failure(`The file has a gap at ${this.offset}; reput it to complete it`);
    }
    const size = await this.settle();
    if (size !== this.offset) throw failure(`The store holds ${size} of ${this.offset} bytes; reput the file to complete it`);
    const { uploadStore, blobStore, envelopes } = this.deps;
    const key = this.file.storageKey;
    await uploadStore.declareUploadLength(key, size);
    // An empty write at the end lets the store finish: S3 completes the multipart upload, the local folder fsyncs.
    await uploadStore.write(Readable.from([]), key, size);
    // The running hash, or the stored bytes read back once when none covers the file (as the tus door does).
    const { sha256 } = await uploadStore.completedSha256(key, size, () => blobStore.get(key));
    return envelopes.finishUpload(this.file.id, { size, sha256 });
  }

  /** The connection went away without CLOSE: store what arrived, keep the partial upload for reput. */
  async detach(): Promise<void> {
    await this.settle().catch(() => undefined);
  }

  /** Refused for good (size limit): forget the file, its row and bytes. */
  async abandon(deps: { abandon: () => Promise<void> }): Promise<void> {
    this.ended = true;
    this.pass.destroy();
    await this.writing.catch(() => undefined);
    await deps.abandon();
  }
}

/**
 * Serves READs of one stored file from a single sequential stream, opened at
 * the first READ (opening is what counts as a retrieval, as an HTTP GET); a
 * READ elsewhere than the stream's position reopens it at that offset (one
 * more audited read, like an HTTP Range request).
 */
export class DownloadReader {
  private readonly open: (start: number) => Promise<Readable>;
  readonly size: number;
  private stream: Readable | null = null;
  private position = 0;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(size: number, open: (start: number) => Promise<Readable>) {
    this.size = size;
    this.open = open;
  }

  /** Up to `length` bytes at `offset`; null at or past the end. */
  async read(offset: number, length: number): Promise<Buffer | null> {
    if (offset >= this.size || length === 0) return null;
    if (this.stream === null || offset !== this.position) await this.reopen(offset);
    while (this.buffered < length && !this.ended && this.error === null) {
      this.stream!.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.error !== null) throw this.error;
    return this.buffered === 0 ? null : this.take(length);
  }

  /**
   * The answer to a READ when it needs no waiting (the bytes are buffered, or
   * the end is reached); undefined otherwise. Most READs of a sequential get
   * are answered here, without a promise per 32 KiB request.
   */
  readNow(offset: number, length: number): Buffer | null | undefined {
    if (offset >= this.size || length === 0) return null;
    if (this.stream === null || offset !== this.position || this.error !== null) return undefined;
    if (this.buffered < length && !this.ended) return undefined;
    return this.buffered === 0 ? null : this.take(length);
  }

  private take(length: number): Buffer {
    const take = Math.min(length, this.buffered);
    let out: Buffer;
    const first = this.chunks[0]!;
    if (first.length >= take) {
      out = first.subarray(0, take);
      if (first.length === take) this.chunks.shift();
      else this.chunks[0] = first.subarray(take);
    } else {
      out = Buffer.allocUnsafe(take);
      let filled = 0;
      while (filled < take) {
        const chunk = this.chunks[0]!;
        const n = Math.min(chunk.length, take - filled);
        chunk.copy(out, filled, 0, n);
        filled += n;
        if (n === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(n);
      }
    }
    this.buffered -= take;
    this.position += take;
    if (this.buffered < HIGH_WATER) this.stream!.resume();
    return out;
  }

  private async reopen(offset: number): Promise<void> {
    this.close();
    this.chunks = [];
    this.buffered = 0;
    this.ended = false;
    this.error = null;
    this.position = offset;
    const stream = await this.open(offset);
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered >= HIGH_WATER) stream.pause();
      this.notify();
    });
    stream.on('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (err) => {
      this.error = err;
      this.notify();
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  close(): void {
    this.stream?.destroy();
    this.stream = null;
  }
}
