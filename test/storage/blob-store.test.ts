/**
 * One conformance suite for every BlobStore: the local folder always, S3 when
 * configured (S3_* variables, see scripts/s3-test-server.sh), each S3 run in a
 * fresh bucket of its own.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import type { BlobStat, BlobStore } from '../../src/storage/blob-store.ts';
import { createFsBlobStore } from '../../src/storage/fs-blob-store.ts';
import { createS3BlobStore, createS3Client, PART_SIZE } from '../../src/storage/s3-blob-store.ts';
import { s3Service, withService } from '../helpers/services.ts';

const MiB = 1024 * 1024;

// ------------------------------------------------------------------ helpers

interface Generated {
  stream: Readable;
  /** SHA-256 of everything the stream produced (valid once it has ended). */
  digest(): string;
}

/** `size` random bytes generated chunk by chunk (never held whole in memory). */
function randomStream(size: number, chunkSize = 64 * 1024): Generated {
  const hash = createHash('sha256');
  let digest: string | undefined;
  async function* gen(): AsyncGenerator<Buffer> {
    let left = size;
    while (left > 0) {
      const chunk = randomBytes(Math.min(chunkSize, left));
      hash.update(chunk);
      left -= chunk.length;
      yield chunk;
    }
  }
  return {
    stream: Readable.from(gen(), { objectMode: false }),
    digest: () => (digest ??= hash.digest('hex')),
  };
}

/** Yields `before` random bytes, then fails. */
function failingStream(before: number, chunkSize = 64 * 1024): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    let left = before;
    while (left > 0) {
      const chunk = randomBytes(Math.min(chunkSize, left));
      left -= chunk.length;
      yield chunk;
    }
    throw new Error('body failed on purpose');
  }
  return Readable.from(gen(), { objectMode: false });
}

function bufferStream(buffer: Buffer): Readable {
  return Readable.from([buffer], { objectMode: false });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function hashStream(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
  }
  return { digest: hash.digest('hex'), size };
}

async function collect(iterable: AsyncIterable<BlobStat>): Promise<BlobStat[]> {
  const out: BlobStat[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

// ------------------------------------------------------------------ the suite

interface SuiteOptions {
  /** Runs after each successful or failed put (e.g. no temp files left behind). */
  afterPut?: (t: Test) => Promise<void>;
  /** Runs after a put whose body failed after more than one S3 part. */
  afterFailedMultipart?: (t: Test) => Promise<void>;
}

async function conformance(t: Test, store: BlobStore, options: SuiteOptions = {}): Promise<void> {
  const afterPut = options.afterPut ?? (async () => {});

  await t.test('ping resolves', async (t) => {
    await t.resolves(store.ping());
  });

  await t.test('put then get returns identical bytes (3 MiB stream)', async (t) => {
    const size = 3 * MiB + 12345;
    const source = randomStream(size);
    const stat = await store.put('roundtrip/small.bin', source.stream, { contentType: 'application/octet-stream' });
    t.equal(stat.key, 'roundtrip/small.bin');
    t.equal(stat.size, size);
    t.ok(stat.lastModified instanceof Date && !Number.isNaN(stat.lastModified.getTime()), 'lastModified is a date');
    const read = await hashStream(await store.get('roundtrip/small.bin'));
    t.equal(read.size, size);
    t.equal(read.digest, source.digest(), 'same SHA-256');
    await afterPut(t);
  });

  await t.test('a file larger than one S3 part (multipart)', async (t) => {
    const size = 12 * MiB + 7;
    t.ok(size > PART_SIZE, 'bigger than one part');
    const source = randomStream(size, 100_000);
    const stat = await store.put('roundtrip/large.bin', source.stream);
    t.equal(stat.size, size);
    const read = await hashStream(await store.get('roundtrip/large.bin'));
    t.equal(read.size, size);
    t.equal(read.digest, source.digest(), 'same SHA-256');
    const again = await store.stat('roundtrip/large.bin');
    t.equal(again?.size, size);
    await afterPut(t);
  });

  await t.test('ranged reads are inclusive', async (t) => {
    const data = randomBytes(300_000);
    const key = 'range/data.bin';
    await store.put(key, bufferStream(data));
    const last = data.length - 1;
    const cases: Array<[string, { start: number; end?: number }, Buffer]> = [
      ['first byte', { start: 0, end: 0 }, data.subarray(0, 1)],
      ['middle slice', { start: 1000, end: 70_000 }, data.subarray(1000, 70_001)],
      ['to the end', { start: 250_000 }, data.subarray(250_000)],
      ['last byte', { start: last, end: last }, data.subarray(last)],
      ['last byte, open end', { start: last }, data.subarray(last)],
      ['end past the size is clamped', { start: 299_990, end: 10_000_000 }, data.subarray(299_990)],
      ['whole object as a range', { start: 0, end: last }, data],
    ];
    for (const [name, range, expected] of cases) {
      const got = await readAll(await store.get(key, range));
      t.equal(got.length, expected.length, `${name}: length`);
      t.ok(got.equals(expected), `${name}: bytes`);
    }
    const whole = await readAll(await store.get(key));
    t.ok(whole.equals(data), 'no range: whole object');
    await t.rejects(store.get(key, { start: 10, end: 9 }), { code: 'badRequest' }, 'end before start');
    await t.rejects(store.get(key, { start: -1 }), { code: 'badRequest' }, 'negative start');
    await t.rejects(store.get(key, { start: 1.5 }), { code: 'badRequest' }, 'fractional start');
    await t.rejects(store.get(key, { start: data.length }), { code: 'badRequest' }, 'start past the end');
  });

  await t.test('stat gives the size, null when missing', async (t) => {
    await store.put('stat/five.txt', bufferStream(Buffer.from('hello')));
    const stat = await store.stat('stat/five.txt');
    t.equal(stat?.key, 'stat/five.txt');
    t.equal(stat?.size, 5);
    t.equal(await store.stat('stat/missing.txt'), null);
    t.equal(await store.stat('stat'), null, 'a "folder" of keys is no object');
    t.equal(await store.stat('nothing/at/all'), null);
  });

  await t.test('get of a missing key rejects with blobNotFound', async (t) => {
    await t.rejects(store.get('missing/key.bin'), { code: 'blobNotFound' });
    await t.rejects(store.get('missing/key.bin', { start: 0, end: 10 }), { code: 'blobNotFound' });
    await store.put('missing/present/x', bufferStream(Buffer.from('x')));
    await t.rejects(store.get('missing/present'), { code: 'blobNotFound' }, 'a "folder" of keys is no object');
  });

  await t.test('overwrite replaces the content', async (t) => {
    const key = 'overwrite/file.bin';
    await store.put(key, bufferStream(Buffer.from('first version, rather long')));
    const stat = await store.put(key, bufferStream(Buffer.from('second')));
    t.equal(stat.size, 6);
    t.equal((await readAll(await store.get(key))).toString(), 'second');
    t.equal((await store.stat(key))?.size, 6);
    t.same((await collect(store.list('overwrite/'))).map((s) => s.key), [key], 'still one object');
    await afterPut(t);
  });

  await t.test('a body that fails midway rejects and leaves the previous object intact', async (t) => {
    const key = 'failing/existing.bin';
    const previous = randomBytes(100_000);
    await store.put(key, bufferStream(previous));
    await t.rejects(store.put(key, failingStream(1 * MiB)), /body failed on purpose/);
    const got = await readAll(await store.get(key));
    t.ok(got.equals(previous), 'previous bytes intact');
    t.equal((await store.stat(key))?.size, previous.length);
    await afterPut(t);
  });

  await t.test('a body that fails leaves no object when there was none', async (t) => {
    await t.rejects(store.put('failing/new-small.bin', failingStream(200_000)), /body failed on purpose/);
    t.equal(await store.stat('failing/new-small.bin'), null);
    await t.rejects(store.get('failing/new-small.bin'), { code: 'blobNotFound' });
    await afterPut(t);
  });

  await t.test('a body that fails after more than one S3 part leaves nothing, previous intact', async (t) => {
    const fresh = 'failing/new-large.bin';
    await t.rejects(store.put(fresh, failingStream(PART_SIZE + 2 * MiB)), /body failed on purpose/);
    t.equal(await store.stat(fresh), null);
    const key = 'failing/existing-large.bin';
    const source = randomStream(PART_SIZE + MiB);
    await store.put(key, source.stream);
    await t.rejects(store.put(key, failingStream(2 * PART_SIZE + MiB)), /body failed on purpose/);
    const read = await hashStream(await store.get(key));
    t.equal(read.size, PART_SIZE + MiB);
    t.equal(read.digest, source.digest(), 'previous bytes intact');
    t.same((await collect(store.list('failing/'))).map((s) => s.key), ['failing/existing-large.bin', 'failing/existing.bin']);
    await afterPut(t);
    if (options.afterFailedMultipart) await options.afterFailedMultipart(t);
  });

  await t.test('delete is idempotent', async (t) => {
    const key = 'delete/a/b.txt';
    await store.put(key, bufferStream(Buffer.from('bye')));
    await store.put('delete/a/keep.txt', bufferStream(Buffer.from('stay')));
    await t.resolves(store.delete(key));
    t.equal(await store.stat(key), null);
    await t.rejects(store.get(key), { code: 'blobNotFound' });
    await t.resolves(store.delete(key), 'second delete');
    await t.resolves(store.delete('delete/never/existed'), 'never existed');
    t.equal((await store.stat('delete/a/keep.txt'))?.size, 4, 'sibling untouched');
    await store.delete('delete/a/keep.txt');
    t.same(await collect(store.list('delete/')), []);
    await store.put(key, bufferStream(Buffer.from('back')));
    t.equal((await readAll(await store.get(key))).toString(), 'back', 'a key can be written again after delete');
  });

  await t.test('list by prefix, in lexicographic order', async (t) => {
    const sizes: Record<string, number> = {
      'list/b/1': 3,
      'list/a/2': 2,
      'list/a-x': 5,
      'list/a/1': 1,
      'list/a.y': 4,
      'list/a/sub/deep': 6,
      'list/c': 7,
      'lis': 8,
      'other/list/a': 9,
    };
    for (const [key, size] of Object.entries(sizes)) await store.put(key, bufferStream(Buffer.alloc(size, 1)));

    const all = await collect(store.list('list/'));
    t.same(
      all.map((s) => s.key),
      ['list/a-x', 'list/a.y', 'list/a/1', 'list/a/2', 'list/a/sub/deep', 'list/b/1', 'list/c'],
      'byte order: "-" and "." sort before "/"',
    );
    for (const s of all) t.equal(s.size, sizes[s.key], `size of ${s.key}`);
    t.ok(all.every((s) => s.lastModified instanceof Date), 'lastModified are dates');

    t.same((await collect(store.list('list/a'))).map((s) => s.key), ['list/a-x', 'list/a.y', 'list/a/1', 'list/a/2', 'list/a/sub/deep'], 'partial segment');
    t.same((await collect(store.list('list/a/'))).map((s) => s.key), ['list/a/1', 'list/a/2', 'list/a/sub/deep']);
    t.same((await collect(store.list('list/b'))).map((s) => s.key), ['list/b/1']);
    t.same((await collect(store.list('lis'))).map((s) => s.key).filter((k) => !k.startsWith('list/')), ['lis']);
    t.same(await collect(store.list('nope/')), []);
    t.same(await collect(store.list('list/zzz')), []);

    const everything = (await collect(store.list(''))).map((s) => s.key);
    t.ok(everything.includes('other/list/a') && everything.includes('list/c'), 'empty prefix lists everything');
    t.same(everything, [...everything].sort(), 'whole listing sorted');
    t.notOk(everything.some((k) => k.startsWith('.')), 'no internal files listed');
  });

  await t.test('invalid keys are rejected with badRequest', async (t) => {
    const before = (await collect(store.list(''))).map((s) => s.key);
    const bad = ['../x', '/abs', 'a//b', 'a/./b', '', 'a/', 'a/../b', '..', '.', 'a b', 'a\\b', 'é', `a/${'x'.repeat(256)}`];
    for (const key of bad) {
      const body = bufferStream(Buffer.from('x'));
      await t.rejects(store.put(key, body), { code: 'badRequest' }, `put ${JSON.stringify(key)}`);
      body.destroy();
      await t.rejects(store.get(key), { code: 'badRequest' }, `get ${JSON.stringify(key)}`);
      await t.rejects(store.stat(key), { code: 'badRequest' }, `stat ${JSON.stringify(key)}`);
      await t.rejects(store.delete(key), { code: 'badRequest' }, `delete ${JSON.stringify(key)}`);
    }
    for (const prefix of ['../', '/abs', 'a//', 'a/../', 'a b']) {
      await t.rejects(collect(store.list(prefix)), { code: 'badRequest' }, `list ${JSON.stringify(prefix)}`);
    }
    t.same((await collect(store.list(''))).map((s) => s.key), before, 'nothing was written');
  });

  await t.test('a zero-byte object', async (t) => {
    const key = 'empty/zero.bin';
    const stat = await store.put(key, Readable.from([], { objectMode: false }));
    t.equal(stat.size, 0);
    t.equal((await store.stat(key))?.size, 0);
    const got = await readAll(await store.get(key));
    t.equal(got.length, 0);
    const listed = await collect(store.list('empty/'));
    t.same(listed.map((s) => [s.key, s.size]), [[key, 0]]);
    await afterPut(t);
  });
}

// ------------------------------------------------------------------ the stores

t.test('blob store conformance [fs]', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'bx-blobs-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const store = createFsBlobStore(root);
  t.teardown(() => store.close());
  t.equal(store.kind, 'fs');

  async function noTempFiles(t: Test): Promise<void> {
    let left: string[] = [];
    try {
      left = await readdir(path.join(root, '.tmp'));
    } catch {
      left = [];
    }
    t.same(left, [], 'no temp files left in .tmp');
  }

  await conformance(t, store, { afterPut: noTempFiles });

  await t.test('fs: objects are files under the root, written with private permissions', async (t) => {
    await store.put('fs/layout/file.txt', bufferStream(Buffer.from('on disk')));
    const files = await readdir(path.join(root, 'fs', 'layout'));
    t.same(files, ['file.txt']);
    t.equal((await stat(path.join(root, 'fs', 'layout', 'file.txt'))).mode & 0o777, 0o600);
  });

  await t.test('fs: the reserved .tmp folder is neither a key nor listed', async (t) => {
    await t.rejects(store.put('.tmp/x', bufferStream(Buffer.from('x'))), { code: 'badRequest' });
    await writeFile(path.join(root, '.tmp', 'stray.part'), 'stray');
    const everything = (await collect(store.list(''))).map((s) => s.key);
    t.notOk(everything.some((k) => k.startsWith('.tmp')), '.tmp not listed');
    t.same(await collect(store.list('.tm')), []);
    await rm(path.join(root, '.tmp', 'stray.part'));
  });

  await t.test('fs: delete removes the folders it emptied', async (t) => {
    await store.put('fs/prune/deep/one', bufferStream(Buffer.from('1')));
    await store.delete('fs/prune/deep/one');
    t.same(await readdir(path.join(root, 'fs')), ['layout'], 'emptied folders removed');
  });

  await t.test('fs: ping rejects when the root is not a usable folder', async (t) => {
    const file = path.join(root, 'not-a-folder');
    await writeFile(file, 'x');
    const broken = createFsBlobStore(file);
    await t.rejects(broken.ping());
    await rm(file);
  });
});

async function emptyBucket(client: ReturnType<typeof createS3Client>, Bucket: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket }));
    const keys = (page.Contents ?? []).map((o) => o.Key).filter((k): k is string => k !== undefined);
    if (keys.length === 0) break;
    for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket, Key }));
  }
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket }));
  for (const u of uploads.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId }));
  }
}

t.test('S3', async (t) => {
  await withService(t, s3Service(), 'blob store conformance', async (t, config) => {
    const bucket = `bx-test-${randomBytes(6).toString('hex')}`;
    const admin = createS3Client(config);
    t.teardown(() => admin.destroy());
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    t.teardown(async () => {
      await emptyBucket(admin, bucket);
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
    });

    const store = createS3BlobStore({ ...config, bucket });
    t.teardown(() => store.close());
    t.equal(store.kind, 's3');

    await conformance(t, store, {
      afterFailedMultipart: async (t) => {
        const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        t.same(uploads.Uploads ?? [], [], 'the failed multipart uploads were aborted');
      },
    });

    await t.test('s3: ping rejects on a missing bucket', async (t) => {
      const missing = createS3BlobStore({ ...config, bucket: `bx-missing-${randomBytes(6).toString('hex')}` });
      await t.rejects(missing.ping());
      await missing.close();
    });
  });
});
