/**
 * Sha256Thread on its own: a job's memory is bounded (it waits for the worker
 * instead of queueing more batches), an interrupted PATCH settles at a
 * checkpoint, and a digest matches node:crypto's.
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { BATCH, MAX_BATCHES_PER_JOB, Sha256Thread } from '../../src/storage/sha256-thread.ts';

const CHECKPOINT = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

t.test('a job holds at most its share of batches and waits for the worker beyond it', async (t) => {
  const thread = new Sha256Thread(CHECKPOINT, (error) => error === null || t.fail('the worker must not die'));
  t.teardown(() => thread.close());
  const data = randomBytes(10 * MAX_BATCHES_PER_JOB * BATCH + 17);
  const job = thread.job(null, 0);
  const waiting = job.update(data);
  t.ok(waiting instanceof Promise, 'a chunk larger than the share makes the PATCH wait');
  t.equal(job.held, MAX_BATCHES_PER_JOB, `no more than ${MAX_BATCHES_PER_JOB} batches of ${BATCH} bytes held`);
  let most = job.held;
  const watch = setInterval(() => (most = Math.max(most, job.held)), 1);
  await waiting;
  clearInterval(watch);
  t.ok(most <= MAX_BATCHES_PER_JOB, `still at most ${MAX_BATCHES_PER_JOB} while it drained (${most})`);
  t.equal(await job.settle(data.length), data.length, 'the hash covers every byte');
  t.equal(await job.keep('u', data.length), true);
  t.equal(await thread.digest('u', data.length), sha256(data));
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
