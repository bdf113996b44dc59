/**
 * Writes a stream of chunks to a file in batches: one writev(2) per WRITE_BATCH bytes instead of one
 * write(2) per chunk.
 *
 * A request body arrives in 64 KiB chunks (the socket's reads). Written one by one (fs.WriteStream, or a
 * loop awaiting each write), a GiB costs 16,384 round trips to the libuv thread pool. On this machine
 * kind (2 vCPUs, a virtual machine) waking a pool thread and getting its answer back costs more than
 * copying the bytes: a bare node:http PUT doubled its throughput when it wrote the same bytes in 1 MiB
 * batches (BENCHMARKS.md, upload findings; 256 KiB and 4 MiB were both slower than 1 MiB).
 *
 * One write is in flight at a time while the next batch gathers; a full batch waits for the write before
 * it, which holds the source back (backpressure), so at most 2 × batch bytes wait in memory, whatever
 * the size of the stream.
 */
import type { FileHandle } from 'node:fs/promises';

export const WRITE_BATCH = 1024 * 1024;

export interface BatchedWriteResult {
  /** Bytes written from `position` on: every chunk the source gave, unless a write failed. */
  written: number;
  /** The first failure, of the source or of a write; null when the source ended and all was written. */
  error: unknown;
}

/** Writes all of `buffers` at `position`, again from where it stopped if the system wrote less. */
async function writeAllAt(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let rest = buffers;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await handle.writev(rest, at);
    at += bytesWritten;
    let skip = bytesWritten;
    while (rest.length > 0 && skip >= rest[0]!.byteLength) skip -= rest.shift()!.byteLength;
    if (skip > 0) rest = [rest[0]!.subarray(skip), ...rest.slice(1)];
  }
}

/**
 * Writes the chunks of `source` at `position` and on. When the source fails, what it gave before is still
 * written (a broken request keeps the bytes it carried). When a write fails, nothing is written after it
 * and the source is abandoned (a for-await loop left early destroys a stream). Never throws: the
 * caller decides what the failure means.
 */
export async function writeBatched(handle: FileHandle, source: AsyncIterable<Uint8Array>, position: number, batchBytes = WRITE_BATCH): Promise<BatchedWriteResult> {
  let next = position;
  let gathered: Uint8Array[] = [];
  let gatheredBytes = 0;
  let writing: Promise<void> | null = null;
  let error: unknown = null;
  let writeFailed = false;
  let written = 0;
  const flush = (): Promise<void> => {
    const buffers = gathered;
    const bytes = gatheredBytes;
    const at = next;
    next += bytes;
    gathered = [];
    gatheredBytes = 0;
    return writeAllAt(handle, buffers, at).then(
      () => void (written += bytes),
      (err: unknown) => {
        error ??= err;
        writeFailed = true;
      },
    );
  };
  try {
    for await (const chunk of source) {
      gathered.push(chunk);
      gatheredBytes += chunk.byteLength;
      if (gatheredBytes < batchBytes) continue;
      await writing;
      if (writeFailed) break;
      writing = flush();
    }
  } catch (err) {
    error ??= err;
  }
  await writing;
  if (!writeFailed && gatheredBytes > 0) await flush();
  return { written, error };
}
