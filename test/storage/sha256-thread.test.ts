/**
 * Sha256Thread on its own: its memory is bounded (a write waits for the
 * worker when the shared ring is full), an interrupted PATCH settles at a
 * checkpoint, and a digest matches node:crypto's.
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { RING_BYTES, Sha256Thread } from '../../src/storage/sha256-thread.ts';

const CHECKPOINT = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

t.test('the bytes waiting for the worker never exceed the ring; beyond it a write waits', async (t) => {
  const thread = new Sha256Thread(CHECKPOINT, (error) => error === null || t.fail('the worker must not die'));
  t.teardown(() => thread.close());
  const data = randomBytes(3 * RING_BYTES + 17);
  const other = randomBytes(RING_BYTES / 2);
  const job = thread.job(null, 0);
  const second = thread.job(null, 0);
  const waiting = job.update(data);
  t.ok(waiting instanceof Promise, 'a chunk larger than the ring makes the PATCH wait');
  t.equal(thread.buffered, RING_BYTES, `the ring (${RING_BYTES} bytes) is full, no more`);
  let most = thread.buffered;
  const watch = setInterval(() => (most = Math.max(most, thread.buffered)), 1);
  await Promise.all([waiting, second.update(other)]);
  clearInterval(watch);
  t.ok(most <= RING_BYTES, `at most the ring while it drained (${most})`);
  t.equal(await job.settle(data.length), data.length, 'the hash covers every byte');
  t.equal(await second.settle(other.length), other.length);
  t.equal(await job.keep('u', data.length), true);
  t.equal(await second.keep('o', other.length), true);
  t.equal(thread.buffered, 0, 'all hashed');
  t.equal(await thread.digest('u', data.length), sha256(data));
  t.equal(await thread.digest('o', other.length), sha256(other), 'interleaved uploads keep their own bytes');
  t.equal(await thread.digest('u', data.length), null, 'a digest is given once');
});

t.test('settling below the bytes seen starts from the last checkpoint at or below it', async (t) => {
  const thread = new Sha256Thread(CHECKPOINT, (error) => error === null || t.fail('the worker must not die'));
  t.teardown(() => thread.close());
  const data = randomBytes(3 * CHECKPOINT + 1000);
  const job = thread.job(null, 0);
  await job.update(data);
  const stored = 2 * CHECKPOINT + 500;
  t.equal(await job.settle(stored), 2 * CHECKPOINT, 'the checkpoint below the stored offset');
  await job.update(data.subarray(2 * CHECKPOINT, stored));
  t.equal(await job.keep('v', stored), true);
  t.equal(await thread.digest('v', stored), sha256(data.subarray(0, stored)), 'the hash of exactly the stored bytes');

  const resumed = thread.job('missing', 4096);
  await resumed.update(data.subarray(0, 10));
  t.equal(await resumed.settle(4106), null, 'a job resuming a hash the worker does not hold cannot settle');
  resumed.drop();
  t.equal(await thread.digest('v', stored), null);
});

t.test('a digest is refused when the hash does not cover the size', async (t) => {
  const thread = new Sha256Thread(CHECKPOINT, () => undefined);
  t.teardown(() => thread.close());
  const job = thread.job(null, 0);
  await job.update(Buffer.from('abc'));
  t.equal(await job.settle(3), 3);
  t.equal(await job.keep('w', 3), true);
  t.equal(await thread.digest('w', 4), null);
});
