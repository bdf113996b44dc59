/**
 * Bearer tokens already checked, kept in memory, so that an API request
 * costs one database round trip (its own statement), not two (issue #4: on
 * this machine kind each round trip wakes a PostgreSQL backend, and the token
 * lookup was a third of the database's work per listing request).
 *
 * What is kept is exactly what `findTokenBySecretHash` returned (token,
 * principal, memberships); the domain still checks revocation, expiry and
 * the principal's state on every request, against the clock. Forgetting:
 * - every write through this repository (any method but the find/list
 *   lookups and touchToken) empties the cache when it completes;
 * - any change by anyone else (another node, the admin CLI, plain SQL)
 *   reaches every node as a notification on `bx_credentials`, sent at commit
 *   by the triggers of migration 0012 on credentials, principals and
 *   memberships; it empties the cache;
 * - while notifications are not known to flow (before the listening
 *   connection is up, from the moment it drops until it is back), nothing is
 *   kept or served: every request reads the database, as without a cache;
 * - as a last bound, should notifications stop without the connection being
 *   seen to close, an entry is read again after `maxAgeMs` (60 s).
 * A lookup that began before a change and ends after it is not kept (a
 * generation counter), so a revoked token is never put back. Unknown
 * secrets are never kept (no memory for guessing), and at most `maxEntries`
 * tokens are (the oldest go first).
 */
import type { ChannelHandlers } from './client.ts';
import type { DirectoryRepository } from '../domain/ports.ts';

export const CREDENTIALS_CHANNEL = 'bx_credentials';

type Found = NonNullable<Awaited<ReturnType<DirectoryRepository['findTokenBySecretHash']>>>;

export interface CredentialCacheOptions {
  maxEntries?: number;
  maxAgeMs?: number;
  /** Monotonic milliseconds (tests); performance.now by default. */
  now?: () => number;
}

export interface CredentialCache {
  repository: DirectoryRepository;
  /** Handlers for Database.listen(CREDENTIALS_CHANNEL, …). */
  handlers: ChannelHandlers;
  /** Tokens kept now, whether the cache serves (notifications flowing), counters, the last notification's payload (every notification empties the cache, whatever it says). */
  stats(): { entries: number; active: boolean; hits: number; misses: number; notifications: number; lastNotification: string | undefined };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

export function cacheCredentials(inner: DirectoryRepository, options: CredentialCacheOptions = {}): CredentialCache {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxAgeMs = options.maxAgeMs ?? 60_000;
  const now = options.now ?? (() => performance.now());
  type Entry = { found: Found; lastUsedAt: Date | null; storedAt: number };
  const entries = new Map<string, Entry>();
  /** The same entries by token id, for touchToken. */
  const byTokenId = new Map<string, Entry>();
  let active = false;
  let generation = 0;
  let hits = 0;
  let misses = 0;
  let notifications = 0;
  let lastNotification: string | undefined;

  const forget = () => {
    generation++;
    entries.clear();
    byTokenId.clear();
  };

  const repository: DirectoryRepository = { ...inner };
  for (const name of Object.keys(inner) as Array<keyof DirectoryRepository>) {
    if (name.startsWith('find') || name.startsWith('list') || name === 'existingMailboxes' || name === 'touchToken') continue;
    const method = inner[name] as (...args: unknown[]) => Promise<unknown>;
    (repository as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      forget();
      try {
        return await method.apply(inner, args);
      } finally {
        forget();
      }
    };
  }

  repository.findTokenBySecretHash = async (secretHash) => {
    const kept = active ? entries.get(secretHash) : undefined;
    if (kept !== undefined && now() - kept.storedAt < maxAgeMs) {
      hits++;
      // A fresh object around the shared, frozen principal: the token's last use changes.
      return { token: { ...kept.found.token, lastUsedAt: kept.lastUsedAt }, principal: kept.found.principal };
    }
    misses++;
    const started = generation;
    const found = await inner.findTokenBySecretHash(secretHash);
    if (found !== null && active && generation === started) {
      entries.delete(secretHash);
      if (entries.size >= maxEntries) {
        const [oldest, entry] = entries.entries().next().value!;
        entries.delete(oldest);
        byTokenId.delete(entry.found.token.id);
      }
      const entry: Entry = { found: deepFreeze({ token: { ...found.token }, principal: found.principal }), lastUsedAt: found.token.lastUsedAt, storedAt: now() };
      entries.set(secretHash, entry);
      byTokenId.set(found.token.id, entry);
    }
    return found;
  };

  repository.touchToken = async (tokenId, at) => {
    await inner.touchToken(tokenId, at);
    const kept = byTokenId.get(tokenId);
    if (kept !== undefined) kept.lastUsedAt = at;
  };

  return {
    repository,
    handlers: {
      notify(payload) {
        notifications++;
        lastNotification = payload;
        forget();
      },
      listening() {
        forget();
        active = true;
      },
      lost() {
        active = false;
        forget();
      },
    },
    stats: () => ({ entries: entries.size, active, hits, misses, notifications, lastNotification }),
  };
}
