/**
 * The tus DataStore for resumable uploads, chosen like the BlobStore: S3
 * (@tus/s3-store) when configured, the local folder otherwise (@tus/file-store
 * with a batched write path, local-upload-store.ts). Both write to the same
 * place the BlobStore reads from, under the same keys
 * (`envelopes/<envelopeId>/<fileId>`), so a finished upload is a stored object
 * without any copy. Wrapped in HashingStore.
 */
import { open } from 'node:fs/promises';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { S3Store } from '@tus/s3-store';
import type { S3Config } from '../config.ts';
import { HashingStore, localPrefixReader } from './hashing-store.ts';
import { LocalUploadStore } from './local-upload-store.ts';
import { createS3Client } from './s3-blob-store.ts';

export interface UploadStoreOptions {
  /** Local folder root (same as the fs BlobStore's), when S3 is not configured. */
  blobRoot: string;
  s3: S3Config | undefined;
  /** Abandoned uploads older than this are expired (tus expiration extension). */
  expirationMs: number;
  /**
   * The largest upload. An upload of deferred length (tus creation-defer-length, every SFTP put) is sized by
   * @tus/s3-store as if it could reach `maxUploadSize` (5 TiB by default): ~550 MB parts, spooled whole to the
   * temp folder and invisible in the upload's offset until each completes. With the real limit (10 GiB by
   * default) the parts stay at S3_PART_SIZE.
   */
  maxUploadBytes?: number;
  /** Told when the hashing thread died (its uploads fall back to hashing their stored bytes at the end). */
  onHashThreadLost?: (error: unknown) => void;
}

export const S3_PART_SIZE = 8 * 1024 * 1024;

/** A local upload is written back to disk every this many bytes while it arrives (see `earlyWriteback`). */
export const WRITEBACK_BYTES = 64 * 1024 * 1024;

async function fsyncFile(file: string, dataOnly = false): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await (dataOnly ? handle.datasync() : handle.sync());
  } finally {
    await handle.close();
  }
}

/**
 * Writes a local upload back to disk while it arrives: an fdatasync (on the libuv thread pool) every
 * WRITEBACK_BYTES, at most one at a time per upload, so the disk works during the transfer. Without it the
 * kernel keeps a whole upload in the page cache (its background writeback starts at 10 % of RAM) and the
 * final fsync, which the client waits for, writes it all: 0.65–0.87 s per GiB on this machine kind.
 * Failures are left to the final fsync, which reports them.
 */
export function earlyWriteback(sync: (uploadId: string) => Promise<void>, every = WRITEBACK_BYTES) {
  const uploads = new Map<string, { next: number; running: Promise<void> | null }>();
  return {
    progress(id: string, offset: number): void {
      const entry = uploads.get(id);
      if (entry === undefined) {
        uploads.set(id, { next: offset + every, running: null });
        return;
      }
      if (offset < entry.next || entry.running !== null) return;
      entry.next = offset + every;
      entry.running = sync(id)
        .catch(() => undefined)
        .finally(() => (entry.running = null));
    },
    /** The write ended: waits for its writeback in progress and forgets it. */
    async settle(id: string): Promise<void> {
      const entry = uploads.get(id);
      uploads.delete(id);
      await entry?.running;
    },
  };
}

export function createUploadStore(options: UploadStoreOptions): HashingStore {
  if (options.s3 !== undefined) {
    const s3 = options.s3;
    const inner = new S3Store({
      partSize: S3_PART_SIZE,
      expirationPeriodInMilliseconds: options.expirationMs,
      s3ClientConfig: {
        bucket: s3.bucket,
        region: s3.region,
        forcePathStyle: s3.forcePathStyle,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(s3.endpoint === undefined ? {} : { endpoint: s3.endpoint }),
        ...(s3.accessKeyId === undefined || s3.secretAccessKey === undefined
          ? {}
          : { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }),
      },
    });
    if (options.maxUploadBytes !== undefined) (inner as { maxUploadSize: number }).maxUploadSize = options.maxUploadBytes;
    const client = createS3Client(s3);
    return new HashingStore(inner, {
      onHashThreadLost: options.onHashThreadLost,
      // An unfinished multipart upload cannot be read back: no catch-up on S3.
      readPrefix: async () => null,
      // @tus/s3-store's remove leaves the `.part` of an unfinished upload (an incomplete last part), and for a
      // finished upload stops at the failed abort of its (completed) multipart upload, leaving its `.info`.
      async removeSidecars(id) {
        for (const key of [`${id}.info`, `${id}.part`]) await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
      },
    });
  }
  const inner = new LocalUploadStore({ directory: options.blobRoot, expirationPeriodInMilliseconds: options.expirationMs });
  const resolve = (id: string) => inner.filePath(id);
  const writeback = earlyWriteback((id) => fsyncFile(resolve(id), true));
  return new HashingStore(inner, {
    onHashThreadLost: options.onHashThreadLost,
    readPrefix: localPrefixReader(resolve),
    progress: writeback.progress,
    async afterWrite(id, offset) {
      await writeback.settle(id);
      if (offset === null) return;
      // The file store does not fsync: make a finished upload durable before it is reported complete.
      const upload = await inner.getUpload(id);
      if (upload.size !== undefined && upload.size === offset) await fsyncFile(resolve(id));
    },
  });
}
