/** The worker-thread SHA-256: same digest as node:crypto, resumable from any saved state, bounded in memory. */
import { createHash, randomBytes } from 'node:crypto';
import { createSHA256 } from 'hash-wasm';
import t from 'tap';
import { WorkerHasher } from '../../src/storage/worker-hasher.ts';

async function digestOf(state: Uint8Array): Promise<string> {
  const hasher = await createSHA256();
  hasher.init();
  hasher.load(state);
  return hasher.digest('hex');
}

async function emptyState(): Promise<Uint8Array> {
  const hasher = await createSHA256();
  hasher.init();
  return hasher.save();
}

t.test('hashing in the worker gives the SHA-256 of the bytes, across a save and a resume', async (t) => {
  const parts = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 7919));
  const whole = createHash('sha256').update(Buffer.concat(parts)).digest('hex');

  const first = new WorkerHasher(await emptyState());
  for (const part of parts.slice(0, 17)) await first.update(part);
  const middle = await first.save();
  first.close();
  t.equal(await digestOf(middle), createHash('sha256').update(Buffer.concat(parts.slice(0, 17))).digest('hex'), 'the saved state covers what was fed');

  // A resume on a fresh hasher (another request, another node) from the saved state.
  const second = new WorkerHasher(middle);
  for (const part of parts.slice(17)) await second.update(part);
  t.equal(await digestOf(await second.save()), whole);
  second.close();
});

t.test('many concurrent sessions do not mix their bytes', async (t) => {
  const inputs = Array.from({ length: 8 }, () => randomBytes(300_000));
  const hashers = await Promise.all(inputs.map(async () => new WorkerHasher(await emptyState())));
  for (let offset = 0; offset < 300_000; offset += 50_000) {
    await Promise.all(hashers.map((h, i) => h.update(inputs[i]!.subarray(offset, offset + 50_000))));
  }
  const digests = await Promise.all(hashers.map(async (h) => digestOf(await h.save())));
  hashers.forEach((h) => h.close());
  t.same(digests, inputs.map((b) => createHash('sha256').update(b).digest('hex')));
});

t.test('feeding far more than the in-flight bound completes (backpressure releases)', async (t) => {
  const hasher = new WorkerHasher(await emptyState());
  const chunk = randomBytes(1024 * 1024);
  const reference = createHash('sha256');
  for (let i = 0; i < 96; i++) {
    await hasher.update(chunk);
    reference.update(chunk);
  }
  t.equal(await digestOf(await hasher.save()), reference.digest('hex'));
  hasher.close();
});
