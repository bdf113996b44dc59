/**
 * BlobStore on an S3 bucket (AWS, Ceph radosgw, MinIO...). Uploads stream
 * through `@aws-sdk/lib-storage` in parts of PART_SIZE bytes, at most
 * QUEUE_SIZE in flight, so memory stays bounded whatever the object size; a
 * body that fails aborts the multipart upload, and S3 never shows a partial
 * object under the key (the previous one, if any, stays).
 *
 * S3 error texts never go into an AppError: only "not found" and "range not
 * satisfiable" become AppErrors, with our own words; anything else is
 * rethrown as is and shown to clients as a bare 5xx by the HTTP layer.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { S3Config } from '../config.ts';
import { AppError } from '../errors.ts';
import type { BlobStat, BlobStore, ByteRange } from './blob-store.ts';
import { assertValidKey, assertValidPrefix, assertValidRange } from './fs-blob-store.ts';

const MiB = 1024 * 1024;
/** S3 wants parts of at least 5 MiB (but the last). Memory ≈ (QUEUE_SIZE + 1) × PART_SIZE per upload. */
export const PART_SIZE = 8 * MiB;
const QUEUE_SIZE = 2;

/**
 * An S3 client configured for our servers: checksums only when an operation
 * requires them (radosgw answers `411 MissingContentLength` to the SDK's
 * default streaming checksums), path-style addressing when configured.
 */
export function createS3Client(config: S3Config): S3Client {
  const options: S3ClientConfig = {
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (config.endpoint !== undefined) options.endpoint = config.endpoint;
  if (config.accessKeyId !== undefined && config.secretAccessKey !== undefined) {
    options.credentials = { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey };
  }
  return new S3Client(options);
}

interface S3ErrorShape {
  name?: unknown;
  Code?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function s3Status(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as S3ErrorShape).$metadata?.httpStatusCode : undefined;
}

function s3Code(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { name, Code } = err as S3ErrorShape;
  if (typeof Code === 'string') return Code;
  return typeof name === 'string' ? name : undefined;
}

function notFound(cause: unknown): AppError {
  return new AppError('blobNotFound', 'The stored object does not exist', { cause });
}

export function createS3BlobStore(config: S3Config): BlobStore {
  const client = createS3Client(config);
  const Bucket = config.bucket;

  async function stat(key: string): Promise<BlobStat | null> {
    assertValidKey(key);
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
      return { key, size: head.ContentLength ?? 0, lastModified: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (s3Status(err) === 404) return null;
      throw err;
    }
  }

  return {
    kind: 's3',

    async put(key: string, body: Readable, options?: { contentType?: string }): Promise<BlobStat> {
      assertValidKey(key);
      const upload = new Upload({
        client,
        params: {
          Bucket,
          Key: key,
          Body: body,
          ...(options?.contentType === undefined ? {} : { ContentType: options.contentType }),
        },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false, // abort the multipart upload when the body or a part fails
      });
      try {
        await upload.done();
      } catch (err) {
        if (!body.destroyed) body.destroy();
        throw err;
      }
      const result = await stat(key);
      if (result === null) throw new Error(`S3 object ${key} is missing right after its upload`);
      return result;
    },

    async get(key: string, range?: ByteRange): Promise<Readable> {
      assertValidKey(key);
      assertValidRange(range);
      const Range = range === undefined ? undefined : `bytes=${range.start}-${range.end ?? ''}`;
      try {
        const out = await client.send(new GetObjectCommand({ Bucket, Key: key, ...(Range === undefined ? {} : { Range }) }));
        const body = out.Body;
        if (body instanceof Readable) return body;
        if (body === undefined) return Readable.from([]);
        throw new Error('Unexpected S3 body type (not a Node.js stream)');
      } catch (err) {
        const code = s3Code(err);
        if (code === 'NoSuchKey' || (s3Status(err) === 404 && code !== 'NoSuchBucket')) throw notFound(err);
        if (code === 'InvalidRange' || s3Status(err) === 416) {
          throw new AppError('badRequest', 'The byte range is not satisfiable', { cause: err });
        }
        throw err;
      }
    },

    stat,

    async delete(key: string): Promise<void> {
      assertValidKey(key);
      try {
        await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
      } catch (err) {
        if (s3Status(err) === 404 && s3Code(err) !== 'NoSuchBucket') return;
        throw err;
      }
    },

    async *list(prefix: string): AsyncIterable<BlobStat> {
      assertValidPrefix(prefix);
      let ContinuationToken: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({
            Bucket,
            ...(prefix === '' ? {} : { Prefix: prefix }),
            ...(ContinuationToken === undefined ? {} : { ContinuationToken }),
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined) continue;
          yield { key: object.Key, size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) };
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken !== undefined);
    },

    async ping(): Promise<void> {
      await client.send(new HeadBucketCommand({ Bucket }));
    },

    async close(): Promise<void> {
      client.destroy();
    },
  };
}
