/**
 * A child process for test/storage/hashing-store.test.ts: one upload through a
 * HashingStore in the folder given as argument, its digest checked, and no
 * close(): the process must exit on its own once done.
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { LocalUploadStore } from '../../src/storage/local-upload-store.ts';
import { Upload } from '@tus/utils';
import { HashingStore, localPrefixReader } from '../../src/storage/hashing-store.ts';

const dir = process.argv[2]!;
const store = new HashingStore(new LocalUploadStore({ directory: dir }), {
  readPrefix: localPrefixReader((id) => path.join(dir, id)),
  onHashThreadLost: (error) => console.error('hash thread lost', error),
});
const data = randomBytes(3 * 1024 * 1024 + 1);
await store.create(new Upload({ id: 'x', size: data.length, offset: 0 }));
// Uneven chunks, one larger than a job's batches, so the PATCH waits for the worker at least once.
await store.write(Readable.from([data.subarray(0, 1_000_000), data.subarray(1_000_000)]), 'x', 0);
const digest = await store.digest('x', data.length);
console.log(digest === createHash('sha256').update(data).digest('hex') ? 'same' : `different: ${digest}`);
