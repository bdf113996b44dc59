/**
 * The retention purge (DESIGN §4 retention classes, §3 evidence): once the
 * last day of an envelope's retention (`retainUntil`, inclusive) is past in
 * Europe/Brussels, its stored files go.
 *
 * What goes: every stored object of the envelope (the files' bytes and the
 * upload store's sidecars, everything under `envelopes/<envelopeId>/`).
 * What stays: the envelope row and its metadata (never personal data, by
 * design), the recipients and their statuses, the file rows with their
 * digests (size, SHA-256 of the stored bytes, the sender's plaintext SHA-256),
 * the evidence (signed receipts) and the audit chain: the proof of what was
 * exchanged outlives the bytes. `envelopes.purged_at` marks the state; the
 * storage hygiene does not report a purged envelope's rows as missing objects.
 *
 * Order: bytes first, then the mark (with its audit entry, one transaction).
 * A crash in between leaves an envelope still due whose bytes are partly or
 * wholly gone: the next run deletes again (idempotent) and marks it. The
 * reverse order could leave bytes nobody would ever delete again. The mark is
 * conditional (still due, not yet purged), so two nodes purging at once write
 * one audit entry.
 */
import type { BlobStore } from '../storage/blob-store.ts';
import { brusselsDate, type IsoDate } from './calendar.ts';
import { findEnvelopeType } from './envelope-types/index.ts';
import type { AuditInput, Clock } from './ports.ts';
import { isRetentionClass, type RetentionClass } from './retention.ts';

/** A submitted envelope past its retention, not yet purged. */
export interface PurgeCandidate {
  id: string;
  type: string;
  typeVersion: string;
  retainUntil: IsoDate;
  /** The type's computed values; `retentionClass` there (a nomination's outcome) overrides the type's. */
  computed: unknown;
  files: Array<{ id: string; storageKey: string; size: number | null; sha256: string | null; plaintextSha256: string | null }>;
}

export interface PurgeRepository {
  /**
   * Submitted envelopes not yet purged whose retain_until is before `today`,
   * by (retain_until, id) after `after`, at most `limit`, with their files.
   */
  due(today: IsoDate, after: { retainUntil: IsoDate; id: string } | null, limit: number): Promise<PurgeCandidate[]>;
  /**
   * Sets purged_at and appends `audit`, in one transaction, when the
   * envelope is still due on `today` and not yet purged; false otherwise.
   */
  markPurged(id: string, today: IsoDate, at: Date, audit: AuditInput): Promise<boolean>;
  /** When the envelope was purged (null: not purged, or no such envelope). */
  purgedAt(id: string): Promise<Date | null>;
}

export interface PurgeDeps {
  repository: PurgeRepository;
  blobStore: BlobStore;
  /** Removes an upload from the tus store with its sidecars (idempotent). */
  removeUpload(storageKey: string): Promise<void>;
  clock: Clock;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export interface PurgeResult {
  /** The Europe/Brussels date the run judged retention against. */
  today: IsoDate;
  purged: number;
  objectsDeleted: number;
  /** Envelopes whose bytes could not all be deleted: left unmarked, retried by the next run. */
  failed: Array<{ envelopeId: string }>;
}

const BATCH = 100;

export function envelopePrefix(envelopeId: string): string {
  return `envelopes/${envelopeId}/`;
}

function retentionClassOf(candidate: PurgeCandidate): RetentionClass | null {
  const computed = candidate.computed as { retentionClass?: unknown } | null;
  if (computed !== null && typeof computed === 'object' && isRetentionClass(computed.retentionClass)) return computed.retentionClass;
  return findEnvelopeType(candidate.type, candidate.typeVersion)?.retentionClass ?? null;
}

export function createPurge(deps: PurgeDeps) {
  const { repository, blobStore, clock } = deps;

  /** Deletes every stored object of the envelope; throws when one could not be deleted. */
  async function deleteBytes(candidate: PurgeCandidate): Promise<number> {
    // The tus store knows its own sidecars (.info / .json); a file uploaded in one request has none, hence the catch.
    for (const file of candidate.files) await deps.removeUpload(file.storageKey).catch(() => undefined);
    let deleted = 0;
    const keys: string[] = [];
    for await (const object of blobStore.list(envelopePrefix(candidate.id))) keys.push(object.key);
    for (const key of keys) {
      await blobStore.delete(key);
      deleted++;
    }
    for (const file of candidate.files) {
      if ((await blobStore.stat(file.storageKey)) !== null) throw new Error(`the object ${file.storageKey} is still there`);
    }
    return deleted;
  }

  return {
    /** One run: purges every envelope due today (Europe/Brussels date of the clock). Safe to run again. */
    async run(): Promise<PurgeResult> {
      const now = clock.now();
      const today = brusselsDate(now);
      const result: PurgeResult = { today, purged: 0, objectsDeleted: 0, failed: [] };
      let after: { retainUntil: IsoDate; id: string } | null = null;
      for (;;) {
        const batch = await repository.due(today, after, BATCH);
        for (const candidate of batch) {
          let objects: number;
          try {
            objects = await deleteBytes(candidate);
          } catch (err) {
            result.failed.push({ envelopeId: candidate.id });
            deps.log.error({ envelopeId: candidate.id, err }, 'retention purge: could not delete the stored files; retried next run');
            continue;
          }
          result.objectsDeleted += objects;
          const marked = await repository.markPurged(candidate.id, today, now, {
            actor: 'system',
            action: 'envelope.purge',
            subject: candidate.id,
            door: 'system',
            data: {
              reason: 'retention period over',
              retentionClass: retentionClassOf(candidate),
              retainUntil: candidate.retainUntil,
              purgedOn: today,
              type: candidate.type,
              typeVersion: candidate.typeVersion,
              // What was deleted, by digest: the rows keep these, the bytes are gone.
              files: candidate.files.map((f) => ({ id: f.id, size: f.size, sha256: f.sha256 })),
              objectsDeleted: objects,
            },
          });
          if (marked) result.purged++;
          else deps.log.warn({ envelopeId: candidate.id }, 'retention purge: the envelope was purged by another run or is no longer due');
        }
        if (batch.length < BATCH) break;
        const last = batch[batch.length - 1]!;
        after = { retainUntil: last.retainUntil, id: last.id };
      }
      return result;
    },

    /** When the envelope's files were purged, null if they were not. */
    purgedAt: (envelopeId: string) => repository.purgedAt(envelopeId),
  };
}

export type Purge = ReturnType<typeof createPurge>;
