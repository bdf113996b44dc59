/** Upload hash states (storage/hashing-store.ts) kept with the file row, keyed by storage key. */
import { and, eq, isNull } from 'drizzle-orm';
import type { HashStates } from '../storage/hashing-store.ts';
import type { Db } from './client.ts';
import { files } from './schema.ts';

export function createHashStates(db: Db): HashStates {
  return {
    async load(uploadId) {
      const [row] = await db.select({ state: files.hashState, offset: files.hashOffset }).from(files).where(eq(files.storageKey, uploadId));
      if (row === undefined || row.state === null || row.offset === null) return null;
      return { state: row.state, offset: row.offset };
    },
    async save(uploadId, state, offset) {
      await db
        .update(files)
        .set({ hashState: state, hashOffset: offset })
        .where(and(eq(files.storageKey, uploadId), isNull(files.completedAt)));
    },
    async clear(uploadId) {
      await db.update(files).set({ hashState: null, hashOffset: null }).where(eq(files.storageKey, uploadId));
    },
  };
}
