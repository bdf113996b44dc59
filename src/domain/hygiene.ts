/**
 * Storage hygiene (DESIGN §6): PostgreSQL is the source of truth for what
 * exists.
 * - a draft older than the draft expiry is deleted with its files;
 * - an upload still unfinished after the upload expiry is abandoned and its
 *   bytes (and the upload store's sidecar objects) removed;
 * - an object under `envelopes/` without a file row, and older than the
 *   upload expiry, is garbage and is collected; an upload in progress always
 *   has its row, and its sidecars (`.json`, `.info`, `.part`) are judged by
 *   the key they belong to, so neither is ever touched;
 * - a complete file row whose object is missing is an error: reported (log
 *   and result), never hidden or "fixed" by deleting the row.
 */
import type { BlobStore } from '../storage/blob-store.ts';
import type { Clock, EnvelopeRecord, FileRecord } from './ports.ts';

export interface HygieneRepository {
  expiredDrafts(before: Date, limit: number): Promise<EnvelopeRecord[]>;
  staleUploads(before: Date, limit: number): Promise<FileRecord[]>;
  /** Complete file rows, by storage key, after `afterKey`. */
  completeFiles(afterKey: string, limit: number): Promise<Array<{ id: string; envelopeId: string; storageKey: string }>>;
  /** Which of these storage keys have a file row. */
  knownKeys(keys: string[]): Promise<Set<string>>;
  deleteDraft(id: string): Promise<boolean>;
  deleteFile(id: string): Promise<void>;
  /**
   * Deletes SFTP send folders made (mkdir) before `before` that never got an
   * envelope.json, hence no draft; returns how many. Folders with a draft go
   * with it (foreign key cascade).
   */
  deleteEmptySendFolders(before: Date): Promise<number>;
}

export interface HygieneDeps {
  repository: HygieneRepository;
  blobStore: BlobStore;
  /** Removes an upload from the tus store with its sidecars (idempotent). */
  removeUpload(storageKey: string): Promise<void>;
  clock: Clock;
  uploadExpiryMs: number;
  draftExpiryMs: number;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export interface SweepResult {
  expiredDrafts: number;
  emptySendFolders: number;
  abandonedUploads: number;
  orphansCollected: number;
  missingObjects: Array<{ fileId: string; envelopeId: string; storageKey: string }>;
}

const SIDECAR = /\.(json|info|part)$/;
const BATCH = 500;

export function createHygiene(deps: HygieneDeps) {
  const { repository, blobStore, clock } = deps;

  async function removeBytes(key: string): Promise<void> {
    await deps.removeUpload(key).catch(() => undefined);
    await blobStore.delete(key).catch(() => undefined);
  }

  return {
    async sweep(): Promise<SweepResult> {
      const now = clock.now().getTime();
      const result: SweepResult = { expiredDrafts: 0, emptySendFolders: 0, abandonedUploads: 0, orphansCollected: 0, missingObjects: [] };

      for (const draft of await repository.expiredDrafts(new Date(now - deps.draftExpiryMs), BATCH)) {
        if (await repository.deleteDraft(draft.id)) {
          for (const file of draft.files) await removeBytes(file.storageKey);
          result.expiredDrafts++;
        }
      }
      // A send folder that never became a draft expires like one.
      result.emptySendFolders = await repository.deleteEmptySendFolders(new Date(now - deps.draftExpiryMs));

      for (const file of await repository.staleUploads(new Date(now - deps.uploadExpiryMs), BATCH)) {
        await repository.deleteFile(file.id);
        await removeBytes(file.storageKey);
        result.abandonedUploads++;
      }

      // Objects without a row: collect the old ones.
      const present = new Set<string>();
      let pending: Array<{ key: string; owner: string; lastModified: Date }> = [];
      const flush = async () => {
        const known = await repository.knownKeys([...new Set(pending.map((p) => p.owner))]);
        for (const object of pending) {
          if (known.has(object.owner)) continue;
          if (now - object.lastModified.getTime() < deps.uploadExpiryMs) continue;
          await blobStore.delete(object.key).catch(() => undefined);
          result.orphansCollected++;
          deps.log.warn({ key: object.key }, 'collected an object without a file row');
        }
        pending = [];
      };
      for await (const object of blobStore.list('envelopes/')) {
        const owner = object.key.replace(SIDECAR, '');
        if (owner === object.key) present.add(object.key);
        pending.push({ key: object.key, owner, lastModified: object.lastModified });
        if (pending.length >= BATCH) await flush();
      }
      await flush();

      // Rows without an object: report.
      let after = '';
      for (;;) {
        const rows = await repository.completeFiles(after, BATCH);
        for (const row of rows) {
          if (!present.has(row.storageKey)) {
            result.missingObjects.push({ fileId: row.id, envelopeId: row.envelopeId, storageKey: row.storageKey });
            deps.log.error({ fileId: row.id, envelopeId: row.envelopeId, storageKey: row.storageKey }, 'a stored file is missing its object');
          }
        }
        if (rows.length < BATCH) break;
        after = rows[rows.length - 1]!.storageKey;
      }
      return result;
    },
  };
}

export type Hygiene = ReturnType<typeof createHygiene>;
