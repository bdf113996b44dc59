/**
 * S3 helpers of the upload-s3 benchmark (bench/upload-s3.ts and its servers
 * in bench/upload/server.ts): the client options bxchange gives
 * @tus/s3-store, the removal of what a run stored (objects, unfinished
 * multipart uploads), and, on the Ceph test server of
 * scripts/s3-test-server.sh, its garbage collection forced at once and the
 * pids of its daemons (their CPU is the S3 server's, not someone else's).
 *
 * Why force the collection: radosgw does not free a deleted object's data;
 * it queues the tail objects (every part of a multipart upload) for its
 * garbage collector, which frees them only after `rgw_gc_obj_min_wait`
 * (2 hours by default). The test server keeps its objects in RAM (a
 * memstore OSD of 4 GiB by default, shared with the test suites), so a few
 * 1 GiB runs would fill it. `radosgw-admin gc process --include-all` frees
 * them at once (≈ 0.1 s).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { S3Config } from '../../src/config.ts';

const exec = promisify(execFile);

/**
 * The `s3ClientConfig` bxchange gives @tus/s3-store (src/storage/upload-store.ts): the configured bucket,
 * region, endpoint and keys, path-style addressing as configured, checksums only when an operation
 * requires them (radosgw answers `411 MissingContentLength` to the SDK's default streaming checksums).
 */
export function tusS3ClientConfig(s3: S3Config): S3ClientConfig & { bucket: string } {
  const { bucket, region, endpoint, forcePathStyle, accessKeyId, secretAccessKey } = s3;
  const credentials = accessKeyId !== undefined && secretAccessKey !== undefined ? { accessKeyId, secretAccessKey } : undefined;
  return { bucket, region, endpoint, forcePathStyle, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' };
}

/** What `removeUnder` found and removed. */
export interface Removed {
  objects: number;
  bytes: number;
  /** Unfinished multipart uploads aborted. */
  uploads: number;
  /** The keys removed (objects and uploads), for a message. */
  keys: string[];
}

/** Deletes every object whose key starts with `prefix` and aborts every unfinished multipart upload there. */
export async function removeUnder(client: S3Client, bucket: string, prefix: string): Promise<Removed> {
  if (prefix === '') throw new Error('removeUnder: an empty prefix would empty the whole bucket');
  const removed: Removed = { objects: 0, bytes: 0, uploads: 0, keys: [] };
  let ContinuationToken: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
    const objects = (page.Contents ?? []).filter((o) => o.Key !== undefined);
    if (objects.length > 0) {
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects.map((o) => ({ Key: o.Key! })), Quiet: true } }));
      removed.objects += objects.length;
      removed.bytes += objects.reduce((sum, o) => sum + (o.Size ?? 0), 0);
      removed.keys.push(...objects.map((o) => o.Key!));
    }
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken !== undefined);
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker, UploadIdMarker }));
    for (const upload of page.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined) continue;
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
      removed.uploads++;
      removed.keys.push(`${upload.Key} (unfinished upload)`);
    }
    if (!page.IsTruncated) break;
    KeyMarker = page.NextKeyMarker;
    UploadIdMarker = page.NextUploadIdMarker;
  }
  return removed;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** The endpoint is on this machine (its S3 server's processes then share the cores with the benchmark). */
export function isLocalEndpoint(s3: S3Config): boolean {
  return s3.endpoint !== undefined && LOOPBACK.test(new URL(s3.endpoint).hostname);
}

/**
 * The Ceph configuration of scripts/s3-test-server.sh (BENCH_S3_CEPH_CONF, else $S3_TEST_DIR/ceph.conf,
 * else .s3-ceph/ceph.conf in the repository), when the endpoint is local and `radosgw-admin` is installed.
 */
export function localCephConf(s3: S3Config): string | undefined {
  if (!isLocalEndpoint(s3)) return undefined;
  const candidates = [process.env.BENCH_S3_CEPH_CONF, process.env.S3_TEST_DIR && path.join(process.env.S3_TEST_DIR, 'ceph.conf'), path.join(import.meta.dirname, '..', '..', '.s3-ceph', 'ceph.conf')];
  const conf = candidates.find((file): file is string => typeof file === 'string' && file !== '' && existsSync(file));
  if (conf === undefined) return undefined;
  const hasAdmin = (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && existsSync(path.join(dir, 'radosgw-admin')));
  return hasAdmin ? conf : undefined;
}

/** Frees at once what radosgw queued for garbage collection (deleted objects, aborted uploads). */
export async function forceRadosGc(conf: string): Promise<void> {
  await exec('radosgw-admin', ['-c', conf, 'gc', 'process', '--include-all'], { timeout: 120_000 });
}

/** Pids of the local S3 server's processes (radosgw, ceph-osd, ceph-mon), found by command name in /proc. */
export function s3ServerPids(s3: S3Config): number[] {
  if (!isLocalEndpoint(s3)) return [];
  const names = new Set(['radosgw', 'ceph-osd', 'ceph-mon']);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (names.has(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
