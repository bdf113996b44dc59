/**
 * The local upload store's write path: the bytes of a tus PATCH gathered and
 * written in batches (one writev per batch, one in flight per upload), at
 * the upload's offset, with what an interrupted request carried kept and a
 * failed write ending the request without writing after the failure.
 * Everything runs on real files; the writev spy only counts the calls.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ERRORS, Upload } from '@tus/utils';
import t, { type Test } from 'tap';
import { LocalUploadStore, WRITE_BATCH } from '../../src/storage/local-upload-store.ts';

const CHUNK = 64 * 1024;

function catching(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  return undefined;
}

async function fixture(t: Test, batchBytes?: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bxchange-local-upload-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = new LocalUploadStore({ directory: dir, ...(batchBytes === undefined ? {} : { batchBytes }) });
  return { dir, store };
}

/**
 * A request body in CHUNK pieces, produced only when asked (highWaterMark 0): `produced` tells how far the
 * store has pulled it. With `failAt`, the body breaks (as a dropped connection) when asked for that chunk.
 */
function body(bytes: Buffer, failAt?: number, onProduced?: (produced: number) => void) {
  const state = { produced: 0 };
  let index = 0;
  const readable = new Readable({
    highWaterMark: 0,
    read() {
      if (failAt !== undefined && index === failAt) {
        this.destroy(new Error('connection reset'));
        return;
      }
      const at = index * CHUNK;
      if (at >= bytes.length) {
        this.push(null);
        return;
      }
      index += 1;
      const chunk = bytes.subarray(at, Math.min(at + CHUNK, bytes.length));
      state.produced += chunk.length;
      this.push(chunk);
      onProduced?.(state.produced);
    },
  });
  return { readable, state };
}

/** Counts the writev calls of every FileHandle (the real ones: the bytes are written) while `run` runs. */
async function countingWritev<T>(t: Test, run: (calls: number[], completed: () => number) => Promise<T>): Promise<T> {
  const handle = await open(os.devNull, 'r');
  const proto = Object.getPrototypeOf(handle) as FileHandle;
  await handle.close();
  const original = proto.writev;
  const calls: number[] = [];
  let done = 0;
  proto.writev = async function (this: FileHandle, buffers: NodeJS.ArrayBufferView[], position?: number) {
    calls.push(buffers.reduce((sum, b) => sum + b.byteLength, 0));
    const result = await original.call(this, buffers, position);
    done += result.bytesWritten;
    return result;
  } as FileHandle['writev'];
  t.teardown(() => void (proto.writev = original));
  try {
    return await run(calls, () => done);
  } finally {
    proto.writev = original;
  }
}

t.test('an upload is written byte for byte at its offsets, in batches of the configured size', async (t) => {
  const batch = 4 * CHUNK;
  const { dir, store } = await fixture(t, batch);
  const data = randomBytes(37 * CHUNK + 1234);
  await store.create(new Upload({ id: 'envelopes/e/a', size: data.length, offset: 0 }));
  const first = 13 * CHUNK + 17;
  const splits = (length: number) => [...Array<number>(Math.floor(length / batch)).fill(batch), ...(length % batch > 0 ? [length % batch] : [])];
  const calls = await countingWritev(t, async (calls) => {
    t.equal(await store.write(body(data.subarray(0, first)).readable, 'envelopes/e/a', 0), first, 'the first PATCH ends at its length');
    t.equal((await store.getUpload('envelopes/e/a')).offset, first, 'the offset tus reads back is the file size');
    t.equal(await store.write(body(data.subarray(first)).readable, 'envelopes/e/a', first), data.length, 'the second PATCH goes on from it');
    return calls;
  });
  t.ok(Buffer.compare(await readFile(path.join(dir, 'envelopes/e/a')), data) === 0, 'the file holds exactly the bytes sent');
  t.same(calls, [...splits(first), ...splits(data.length - first)], 'one write per batch, and one for the rest of each PATCH: not one per chunk');
});

t.test('the store pulls at most two batches (and a chunk) ahead of what reached the file', async (t) => {
  const batch = 4 * CHUNK;
  const { store } = await fixture(t, batch);
  const data = randomBytes(64 * CHUNK);
  await store.create(new Upload({ id: 'b', size: data.length, offset: 0 }));
  let ahead = 0;
  await countingWritev(t, async (_calls, completed) => {
    const source = body(data, undefined, (produced) => (ahead = Math.max(ahead, produced - completed())));
    await store.write(source.readable, 'b', 0);
  });
  t.ok(ahead > 0, 'some bytes waited in memory');
  t.ok(ahead <= 2 * batch + CHUNK, `at most ${2 * batch + CHUNK} bytes in memory, seen ${ahead}`);
});

t.test('a request broken off keeps every byte it carried, and the error goes up', async (t) => {
  const { dir, store } = await fixture(t);
  const data = randomBytes(40 * CHUNK);
  await store.create(new Upload({ id: 'c', size: data.length, offset: 0 }));
  // 5 chunks, less than a batch: nothing had been written when the body broke.
  const source = body(data, 5);
  t.equal(await store.write(source.readable, 'c', 0).catch((err: unknown) => err), ERRORS.FILE_WRITE_ERROR, 'the write fails as tus expects');
  t.equal(source.state.produced, 5 * CHUNK);
  t.equal((await store.getUpload('c')).offset, 5 * CHUNK, 'the 5 chunks received are stored');
  t.ok(Buffer.compare(await readFile(path.join(dir, 'c')), data.subarray(0, 5 * CHUNK)) === 0, 'and they are the right bytes');
  // Resumed from there, as a tus client does after asking the offset.
  t.equal(await store.write(body(data.subarray(5 * CHUNK)).readable, 'c', 5 * CHUNK), data.length);
  t.ok(Buffer.compare(await readFile(path.join(dir, 'c')), data) === 0, 'the resumed upload is whole');
});

t.test('a failed write ends the request: no write after it, and the body is not read to its end', async (t) => {
  const { dir, store } = await fixture(t, 2 * CHUNK);
  await store.create(new Upload({ id: 'd', size: 100 * CHUNK, offset: 0 }));
  // A FIFO in place of the upload's file: opening it succeeds, a positioned write fails (ESPIPE).
  const file = path.join(dir, 'd');
  await rm(file);
  await promisify(execFile)('mkfifo', [file]);
  const source = body(randomBytes(100 * CHUNK));
  const calls = await countingWritev(t, async (calls) => {
    t.equal(await store.write(source.readable, 'd', 0).catch((err: unknown) => err), ERRORS.FILE_WRITE_ERROR, 'the write fails as tus expects');
    return calls;
  });
  t.same(calls, [2 * CHUNK], 'the failed write was the only one');
  t.ok(source.state.produced <= 5 * CHUNK, `the body was abandoned after ${source.state.produced / CHUNK} chunks`);
  t.ok(source.readable.destroyed, 'and destroyed (the request is not read any more)');
});

t.test('a write to an upload whose file is gone fails as tus expects and does not read the request', async (t) => {
  const { dir, store } = await fixture(t);
  await store.create(new Upload({ id: 'e', size: 10 * CHUNK, offset: 0 }));
  await rm(path.join(dir, 'e'));
  const source = body(randomBytes(10 * CHUNK));
  t.equal(await store.write(source.readable, 'e', 0).catch((err: unknown) => err), ERRORS.FILE_WRITE_ERROR);
  t.equal(source.state.produced, 0, 'nothing was read');
  t.ok(source.readable.destroyed, 'the request body is let go');
});

t.test('the default batch is 1 MiB', async (t) => {
  t.equal(WRITE_BATCH, 1024 * 1024);
  const { store } = await fixture(t);
  t.equal(store.batchBytes, WRITE_BATCH);
});

t.test('an upload id cannot leave the folder', async (t) => {
  const { store } = await fixture(t);
  t.equal(catching(() => store.filePath('../outside')), ERRORS.FILE_NOT_FOUND);
});
