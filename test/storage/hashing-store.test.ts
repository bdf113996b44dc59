/**
 * HashingStore over the real @tus/file-store: the running SHA-256 follows the
 * stored bytes across PATCHes and interruptions, and says when it cannot
 * (a new process), so the caller rebuilds it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LocalUploadStore } from '../../src/storage/local-upload-store.ts';
import { Upload } from '@tus/utils';
import t, { type Test } from 'tap';
import { CHECKPOINT, HashingStore, localPrefixReader } from '../../src/storage/hashing-store.ts';

const execFileAsync = promisify(execFile);
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function fixture(t: Test) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-hashing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const make = () => {
    const store = new HashingStore(new LocalUploadStore({ directory: dir }), { readPrefix: localPrefixReader((id) => path.join(dir, id)) });
    t.teardown(() => store.close());
    return store;
  };
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
  t.equal(await store.digest('a', data.length), sha256(data), 'digest = SHA-256 of the whole file');
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
  t.equal(await store.digest('b', data.length), sha256(data));
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
  t.equal(await after.digest('c', data.length), null, 'no digest from a partial hash');
  t.equal(await before.digest('c', data.length), null, 'nor from a hash that does not cover the size');
});

t.test('completedSha256: the running hash, the empty file, or the stored bytes read back once', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-hashing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = new HashingStore(new LocalUploadStore({ directory: dir }), { readPrefix: localPrefixReader((id) => path.join(dir, id)) });
  t.teardown(() => store.close());
  const data = randomBytes(2 * CHECKPOINT + 77);
  let reads = 0;
  const readStored = (id: string) => async () => {
    reads += 1;
    return Readable.from([await readFile(path.join(dir, id))]);
  };
  await store.create(new Upload({ id: 'h', size: data.length, offset: 0 }));
  await store.write(body(data), 'h', 0);
  t.same(await store.completedSha256('h', data.length, readStored('h')), { sha256: sha256(data), rebuilt: false }, 'from the running hash');
  t.equal(reads, 0, 'without reading the file');
  t.same(await store.completedSha256('h', data.length, readStored('h')), { sha256: sha256(data), rebuilt: true }, 'digested once: then rebuilt');
  t.equal(reads, 1, 'from the stored bytes, read once');
  t.same(await store.completedSha256('empty', 0, readStored('empty')), { sha256: sha256(Buffer.alloc(0)), rebuilt: false }, 'an empty file needs no store');
  t.equal(reads, 1);
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
  t.same(await Promise.all(files.map((data, i) => store.digest(`p${i}`, data.length))), files.map(sha256));
});

t.test('the hash runs in a worker thread that dies without losing the upload: its hash is rebuilt instead', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-hashing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lost: unknown[] = [];
  const store = new HashingStore(new LocalUploadStore({ directory: dir }), {
    readPrefix: localPrefixReader((id) => path.join(dir, id)),
    onHashThreadLost: (error) => lost.push(error),
  });
  t.teardown(() => store.close());
  const data = randomBytes(4 * CHECKPOINT + 333);
  await store.create(new Upload({ id: 'w', size: data.length, offset: 0 }));
  const half = await store.write(body(data.subarray(0, 2 * CHECKPOINT)), 'w', 0);
  const first = store.hasher.threadId;
  t.ok(first !== null && first > 0, `the hash runs in worker thread ${first}`);
  t.equal(store.hashedOffset('w'), half);

  // Crash the worker mid-upload: a malformed message makes it throw.
  const rest = new Readable({ read() {} });
  const writing = store.write(rest, 'w', half);
  rest.push(data.subarray(half, half + CHECKPOINT));
  store.hasher.post({ op: 'data', records: null as unknown as number[], end: 0 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  rest.push(data.subarray(half + CHECKPOINT));
  rest.push(null);
  t.equal(await writing, data.length, 'the upload still completes');
  t.equal(lost.length, 1, 'the store is told the thread died');
  t.match(String(lost[0]), /TypeError/, 'with its error');
  t.equal(store.hashedOffset('w'), null, 'its running hash is gone');
  t.equal(await store.digest('w', data.length), null, 'so the caller rebuilds it from the stored bytes');
  const stored = await readFile(path.join(dir, 'w'));
  t.ok(stored.equals(data), 'the stored bytes are intact');

  // The next upload starts a new worker and hashes normally.
  const next = randomBytes(CHECKPOINT + 5);
  await store.create(new Upload({ id: 'n', size: next.length, offset: 0 }));
  await store.write(body(next), 'n', 0);
  t.not(store.hasher.threadId, first, 'a new worker thread');
  t.equal(await store.digest('n', next.length), sha256(next));
});

t.test('an idle store does not keep the process alive, and a busy one finishes before it exits', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-hashing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const child = new URL('../helpers/hash-once.ts', import.meta.url);
  const { stdout } = await execFileAsync(process.execPath, [fileURLToPath(child), dir], { timeout: 120_000 });
  t.equal(stdout.trim(), 'same', 'the digest came back and the process exited on its own (no close())');
});
