/**
 * Spool files in the Origin Private File System (OPFS): the ciphertext of an
 * upload is written there once, so a resumed upload (after a pause, a network
 * loss or a page reload) sends the very same bytes (re-encrypting would give
 * different ones: new session key). Downloads land there too, and their
 * plaintext is released only once decryption ended cleanly.
 *
 * Writes go through `createWritable()`, which stages into a swap file and
 * publishes it only on close(): an aborted stream (a failed integrity check)
 * leaves no partial file.
 */
import { sha256 } from '@noble/hashes/sha2.js';

export type SpoolArea = 'uploads' | 'downloads';

export function spoolAvailable(): boolean {
  return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function';
}

export async function spoolDir(area: SpoolArea): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(area, { create: true });
}

export async function spoolHandle(area: SpoolArea, name: string, create: boolean): Promise<FileSystemFileHandle | null> {
  try {
    return await (await spoolDir(area)).getFileHandle(name, { create });
  } catch (err) {
    if ((err as DOMException).name === 'NotFoundError') return null;
    throw err;
  }
}

export async function removeSpool(area: SpoolArea, name: string): Promise<void> {
  try {
    await (await spoolDir(area)).removeEntry(name);
  } catch {
    /* already gone */
  }
}

/** Removes download spool files left by earlier visits (plaintext must not linger). */
export async function clearDownloads(): Promise<void> {
  try {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry('downloads', { recursive: true });
  } catch {
    /* nothing there */
  }
}

export interface Meter {
  /** Pass-through that counts (and optionally hashes) the bytes flowing by. */
  stream: TransformStream<Uint8Array, Uint8Array>;
  /** Lowercase hex SHA-256 of everything that went through (call once, at the end). */
  digest(): string;
}

/** Counts bytes (and hashes them with SHA-256, incrementally: the file is never held in memory). */
export function meter(onBytes: (total: number) => void): Meter {
  const hash = sha256.create();
  let total = 0;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      total += chunk.byteLength;
      onBytes(total);
      controller.enqueue(chunk);
    },
  });
  return {
    stream,
    digest: () => Array.from(hash.digest(), (b) => b.toString(16).padStart(2, '0')).join(''),
  };
}
