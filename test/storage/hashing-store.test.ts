/**
 * HashingStore over the real @tus/file-store: the running SHA-256 follows the
 * stored bytes across PATCHes and interruptions, and says when it cannot
 * (a new process), so the caller rebuilds it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import { Upload } from '@tus/utils';
import t, { type Test } from 'tap';
import { CHECKPOINT, HashingStore, localPrefixReader } from '../../src/storage/hashing-store.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function fixture(t: Test) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-hashing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const make = () => new HashingStore(new FileStore({ directory: dir }), { readPrefix: localPrefixReader((id) => path.join(dir, id)) });
  return { make };
}

/** A PATCH body of `bytes` sent in 64 KiB chunks; with `failAfter`, the connection drops after that many bytes. */
function body(bytes: Buffer, failAfter?: number): Readable {
  return Readable.from(
    (async function* () {
      for (let at = 0; at < bytes.length; at += 64 * 1024) {
        if (failAfter !== undefined && at >= failAfter) throw new Error('connection reset');
        yield bytes.subarray(at, Math.min(at + 64 * 1024, bytes.length));
      }
    })(),
    { objectMode: false },
  );
}

t.test('the running hash covers the stored bytes across PATCHes and gives the file SHA-256', async (t) => {
  const { make } = await fixture(t);
  const store = make();
  const data = randomBytes(5 * CHECKPOINT + 12345);
  await store.create(new Upload({ id: 'a', size: data.length, offset: 0 }));
  const first = await store.write(body(data.subarray(0, 2 * CHECKPOINT + 7)), 'a', 0);
  t.equal(first, 2 * CHECKPOINT + 7);
  t.equal(store.hashedOffset('a'), first, 'after a complete PATCH the hash covers what is stored');
  const second = await store.write(body(data.subarray(first)), 'a', first);
  t.equal(second, data.length);
  t.equal(store.digest('a', data.length), sha256(data), 'digest = SHA-256 of the whole file');
  t.equal(store.hashedOffset('a'), null, 'the running hash is forgotten once digested');
});

t.test('an interrupted PATCH catches up from a checkpoint to the exact stored offset', async (t) => {
  const { make } = await fixture(t);
  const store = make();
  const data = randomBytes(6 * CHECKPOINT + 999);
  await store.create(new Upload({ id: 'b', size: data.length, offset: 0 }));
  await t.rejects(store.write(body(data, 3 * CHECKPOINT + 5 * 64 * 1024), 'b', 0), 'the store reports the broken PATCH');
  const stored = (await store.getUpload('b')).offset;
  t.ok(stored > 0 && stored < data.length, `part of the file is stored (${stored} bytes)`);
  t.equal(store.hashedOffset('b'), stored, 'the hash was brought to the stored offset, not the bytes seen');
  const end = await store.write(body(data.subarray(stored)), 'b', stored);
  t.equal(end, data.length);
  t.equal(store.digest('b', data.length), sha256(data));
});

t.test('a new process has no running hash: digest is null, so the caller rebuilds from the stored bytes', async (t) => {
  const { make } = await fixture(t);
  const before = make();
  const data = randomBytes(3 * CHECKPOINT);
  await before.create(new Upload({ id: 'c', size: data.length, offset: 0 }));
  const half = await before.write(body(data.subarray(0, CHECKPOINT)), 'c', 0);
  const after = make(); // a restart: same folder, nothing in memory
  t.equal(after.hashedOffset('c'), null);
  await after.write(body(data.subarray(half)), 'c', half);
  t.equal(after.digest('c', data.length), null, 'no digest from a partial hash');
  t.equal(before.digest('c', data.length), null, 'nor from a hash that does not cover the size');
});

t.test('remove forgets the running hash', async (t) => {
  const { make } = await fixture(t);
  const store = make();
  await store.create(new Upload({ id: 'd', size: 10, offset: 0 }));
  await store.write(body(Buffer.alloc(4)), 'd', 0);
  t.equal(store.hashedOffset('d'), 4);
  await store.remove('d');
  t.equal(store.hashedOffset('d'), null);
});

t.test('uploads written at the same time each get their own hash', async (t) => {
  const { make } = await fixture(t);
  const store = make();
  const files = Array.from({ length: 6 }, (_, i) => randomBytes(3 * CHECKPOINT + i * 4099));
  await Promise.all(files.map((data, i) => store.create(new Upload({ id: `p${i}`, size: data.length, offset: 0 }))));
  await Promise.all(files.map((data, i) => store.write(body(data), `p${i}`, 0)));
  t.same(
    files.map((data, i) => store.digest(`p${i}`, data.length)),
    files.map(sha256),
  );
});
