/**
 * The tus DataStore for resumable uploads, chosen like the BlobStore: S3
 * (@tus/s3-store) when configured, the local folder (@tus/file-store)
 * otherwise. Both write to the same place the BlobStore reads from, under
 * the same keys (`envelopes/<envelopeId>/<fileId>`), so a finished upload is
 * a stored object without any copy. Wrapped in HashingStore.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import { FileStore } from '@tus/file-store';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { S3Store } from '@tus/s3-store';
import type { S3Config } from '../config.ts';
import { HashingStore, localPrefixReader } from './hashing-store.ts';
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
}

export const S3_PART_SIZE = 8 * 1024 * 1024;

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
      // An unfinished multipart upload cannot be read back: no catch-up on S3.
      readPrefix: async () => null,
      // @tus/s3-store's remove leaves the `.part` of an unfinished upload (an incomplete last part), and for a
      // finished upload stops at the failed abort of its (completed) multipart upload, leaving its `.info`.
      async removeSidecars(id) {
        for (const key of [`${id}.info`, `${id}.part`]) await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
      },
    });
  }
  const inner = new FileStore({ directory: options.blobRoot, expirationPeriodInMilliseconds: options.expirationMs });
  const resolve = (id: string) => path.join(options.blobRoot, id);
  return new HashingStore(inner, {
    readPrefix: localPrefixReader(resolve),
    async afterWrite(id, offset) {
      // FileStore does not fsync: make a finished upload durable before it is reported complete.
      const upload = await inner.getUpload(id);
      if (upload.size !== undefined && upload.size === offset) await fsyncFile(resolve(id));
    },
  });
}
