/**
 * The local upload store's early writeback: an fdatasync every so many bytes
 * while an upload arrives, one at a time per upload, awaited when the write
 * ends; and the HashingStore tells it the offsets as bytes pass.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { LocalUploadStore } from '../../src/storage/local-upload-store.ts';
import { Upload } from '@tus/utils';
import t from 'tap';
import { HashingStore, localPrefixReader } from '../../src/storage/hashing-store.ts';
import { earlyWriteback } from '../../src/storage/upload-store.ts';

t.test('a writeback starts every `every` bytes, never two at once for an upload, and settle waits for it', async (t) => {
  const started: string[] = [];
  const finish: Array<() => void> = [];
  const writeback = earlyWriteback((id) => {
    started.push(id);
    return new Promise<void>((resolve) => finish.push(resolve));
  }, 100);
  writeback.progress('a', 10); // the first bytes of a write: the next writeback is due at 110
  writeback.progress('a', 109);
  t.same(started, [], 'nothing before `every` bytes');
  writeback.progress('a', 120);
  t.same(started, ['a'], 'one at 120');
  writeback.progress('a', 400);
  t.same(started, ['a'], 'not a second while the first runs');
  writeback.progress('b', 0);
  writeback.progress('b', 100);
  t.same(started, ['a', 'b'], 'each upload has its own');

  let settled = false;
  const settling = writeback.settle('a').then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(settled, false, 'settle waits for the writeback in progress');
  finish[0]!();
  await settling;
  t.equal(settled, true);

  writeback.progress('a', 500); // a new write of the same upload starts over
  writeback.progress('a', 599);
  t.same(started, ['a', 'b']);
  writeback.progress('a', 600);
  t.same(started, ['a', 'b', 'a']);
});

t.test('a failed writeback is left to the final fsync', async (t) => {
  const writeback = earlyWriteback(() => Promise.reject(new Error('EIO')), 10);
  writeback.progress('a', 0);
  writeback.progress('a', 10);
  await t.resolves(writeback.settle('a'), 'settle does not throw');
  await t.resolves(writeback.settle('never-written'), 'nor for an upload without writes');
});

t.test('the HashingStore reports each write’s progress and its end', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-upload-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const progress: number[] = [];
  const ended: Array<number | null> = [];
  const store = new HashingStore(new LocalUploadStore({ directory: dir }), {
    readPrefix: localPrefixReader((id) => path.join(dir, id)),
    progress: (_id, offset) => progress.push(offset),
    afterWrite: async (_id, offset) => void ended.push(offset),
  });
  t.teardown(() => store.close());
  await store.create(new Upload({ id: 'u', size: 300_000, offset: 0 }));
  await store.write(Readable.from([Buffer.alloc(100_000), Buffer.alloc(100_000)]), 'u', 0);
  await store.write(Readable.from([Buffer.alloc(100_000)]), 'u', 200_000);
  t.same(progress, [100_000, 200_000, 300_000], 'offsets of the upload, across PATCHes');
  t.same(ended, [200_000, 300_000], 'the stored offset after each write');
});
