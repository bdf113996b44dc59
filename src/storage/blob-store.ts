import type { Readable } from 'node:stream';

/**
 * Where envelope files live: ciphertext only, addressed by keys such as
 * `envelopes/<envelopeId>/<fileId>`. Two implementations pass one conformance
 * suite (test/storage/blob-store.test.ts): a local folder and S3.
 *
 * Contract:
 * - keys are relative, `/`-separated, made of `[A-Za-z0-9._-]` segments, never
 *   `.` or `..`, never empty; an invalid key throws `AppError('badRequest')`
 *   before anything is touched (keys come from the domain, never from a client,
 *   but the check keeps a bug from escaping the store's root);
 * - `put` streams: it never buffers the whole body; when it resolves the object
 *   is durable and complete (fs: temp file + fsync + rename; S3: completed
 *   upload). If the body stream fails, nothing is left under `key` and a
 *   previous object under `key` is untouched;
 * - `get` of a missing key rejects with `AppError('blobNotFound')`; a range is
 *   inclusive (`start`..`end`, like HTTP), `end` defaulting to the last byte;
 * - `delete` is idempotent; `list` yields every object whose key starts with
 *   `prefix`, in lexicographic key order.
 */
export interface BlobStore {
  readonly kind: 'fs' | 's3';
  put(key: string, body: Readable, options?: { contentType?: string }): Promise<BlobStat>;
  get(key: string, range?: ByteRange): Promise<Readable>;
  stat(key: string): Promise<BlobStat | null>;
  delete(key: string): Promise<void>;
  list(prefix: string): AsyncIterable<BlobStat>;
  /** Cheap reachability check for /health; rejects when the store is unusable. */
  ping(): Promise<void>;
  /** Releases sockets / handles. */
  close(): Promise<void>;
}

export interface ByteRange {
  start: number;
  /** Inclusive; omitted means to the end of the object. */
  end?: number;
}

export interface BlobStat {
  key: string;
  size: number;
  lastModified: Date;
}
