/**
 * @tus/file-store with its `write` replaced by a batched file write (batched-write.ts).
 *
 * FileStore pipes an upload's bytes through a Transform into an fs.WriteStream: one write(2) per 64 KiB
 * chunk of the request body, each a round trip to the libuv thread pool. Here the chunks are gathered
 * and written with one writev(2) per WRITE_BATCH bytes, at most one write in flight per upload and at
 * most 2 × WRITE_BATCH bytes in memory.
 *
 * Everything else (creation, the `.json` sidecar, offsets from the file's size, expiry, removal) is
 * FileStore's own. An interrupted request keeps every byte received before the interruption, as
 * FileStore does: the chunks gathered are written before the error goes up.
 */
import type { Readable } from 'node:stream';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { FileStore } from '@tus/file-store';
import { ERRORS, isPathInsideDirectory } from '@tus/utils';
import { WRITE_BATCH, writeBatched } from './batched-write.ts';

export { WRITE_BATCH };

export class LocalUploadStore extends FileStore {
  readonly batchBytes: number;

  constructor(options: ConstructorParameters<typeof FileStore>[0] & { batchBytes?: number }) {
    super(options);
    this.batchBytes = options.batchBytes ?? WRITE_BATCH;
  }

  /** The file of an upload, inside the directory (FileStore's own `resolve` is private). */
  filePath(id: string): string {
    const file = path.join(this.directory, id);
    if (!isPathInsideDirectory(this.directory, file)) throw ERRORS.FILE_NOT_FOUND;
    return file;
  }

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const handle = await open(this.filePath(id), 'r+').catch(() => {
      // As FileStore's stream would: the upload's file is gone (removed, expired), the request is not read.
      readable.destroy();
      throw ERRORS.FILE_WRITE_ERROR;
    });
    const result = await writeBatched(handle, readable, offset, this.batchBytes);
    const closed = await handle.close().then(
      () => true,
      () => false,
    );
    // As FileStore: any failure is tus's "could not receive the file"; the offset is read back from the file.
    if (result.error !== null || !closed) throw ERRORS.FILE_WRITE_ERROR;
    return offset + result.written;
  }
}
