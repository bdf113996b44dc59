/**
 * PostgreSQL implementation of the SFTP door's SendFolderRepository
 * (src/sftp/send-folders.ts) over `sftp_send_folders`. Drizzle; same code on
 * postgres.js and PGlite. Every write is one statement, so it needs no
 * transaction of its own; a folder goes with its draft by the foreign key's
 * ON DELETE CASCADE, inside whichever transaction deletes the envelope.
 */
import { and, eq, isNull } from 'drizzle-orm';
import type { Problem } from '../errors.ts';
import type { FileHint, FolderVersion, SendFolder, SendFolderRepository } from '../sftp/send-folders.ts';
import type { Db } from './client.ts';
import { sftpSendFolders } from './schema.ts';

type Row = typeof sftpSendFolders.$inferSelect;

function toFolder(row: Row): SendFolder {
  return {
    mailbox: row.mailboxAddress,
    name: row.name,
    createdAt: row.createdAt.toISOString(),
    envelopeId: row.envelopeId,
    state: row.state as SendFolder['state'],
    descriptor: row.descriptor,
    files: row.fileHints as Record<string, FileHint>,
    receiptId: row.receiptId,
    error: row.lastError as Problem | null,
  };
}

const at = (mailbox: string, name: string) => and(eq(sftpSendFolders.mailboxAddress, mailbox), eq(sftpSendFolders.name, name));

export function createSendFolderRepository(db: Db): SendFolderRepository {
  return {
    async find(mailbox, name) {
      const [row] = await db.select().from(sftpSendFolders).where(at(mailbox, name));
      return row === undefined ? null : toFolder(row);
    },

    async list(mailbox) {
      const rows = await db.select().from(sftpSendFolders).where(eq(sftpSendFolders.mailboxAddress, mailbox));
      // Sorted here rather than by ORDER BY: the order must not depend on the database's collation.
      return rows.map(toFolder).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    async create(folder) {
      // The primary key decides between two sessions (or nodes) making the same name: the second inserts nothing.
      const rows = await db
        .insert(sftpSendFolders)
        .values({
          mailboxAddress: folder.mailbox,
          name: folder.name,
          envelopeId: folder.envelopeId,
          state: folder.state,
          descriptor: folder.descriptor,
          fileHints: folder.files,
          receiptId: folder.receiptId,
          lastError: folder.error,
          createdAt: new Date(folder.createdAt),
        })
        .onConflictDoNothing()
        .returning({ name: sftpSendFolders.name });
      return rows.length === 1;
    },

    async update(folder, expected: FolderVersion) {
      const rows = await db
        .update(sftpSendFolders)
        .set({
          envelopeId: folder.envelopeId,
          state: folder.state,
          descriptor: folder.descriptor,
          fileHints: folder.files,
          receiptId: folder.receiptId,
          lastError: folder.error,
        })
        .where(
          and(
            at(folder.mailbox, folder.name),
            expected.envelopeId === null ? isNull(sftpSendFolders.envelopeId) : eq(sftpSendFolders.envelopeId, expected.envelopeId),
            eq(sftpSendFolders.state, expected.state),
          ),
        )
        .returning({ name: sftpSendFolders.name });
      return rows.length === 1;
    },

    async setError(mailbox, name, error) {
      const rows = await db
        .update(sftpSendFolders)
        .set({ lastError: error })
        .where(at(mailbox, name))
        .returning({ name: sftpSendFolders.name });
      return rows.length === 1;
    },

    async remove(mailbox, name) {
      await db.delete(sftpSendFolders).where(at(mailbox, name));
    },

    async claim(mailbox, name, descriptor) {
      // One statement: of two sessions claiming the same folder, the second finds the descriptor set and updates nothing.
      const rows = await db
        .update(sftpSendFolders)
        .set({ descriptor })
        .where(and(at(mailbox, name), isNull(sftpSendFolders.envelopeId), isNull(sftpSendFolders.descriptor), eq(sftpSendFolders.state, 'editing')))
        .returning({ name: sftpSendFolders.name });
      return rows.length === 1;
    },

    async attach(mailbox, name, descriptor, draft) {
      const rows = await db
        .update(sftpSendFolders)
        .set({ envelopeId: draft.envelopeId, fileHints: draft.files, lastError: null })
        .where(and(at(mailbox, name), isNull(sftpSendFolders.envelopeId), eq(sftpSendFolders.descriptor, descriptor), eq(sftpSendFolders.state, 'editing')))
        .returning({ name: sftpSendFolders.name });
      return rows.length === 1;
    },

    async release(mailbox, name, descriptor) {
      await db
        .update(sftpSendFolders)
        .set({ descriptor: null })
        .where(and(at(mailbox, name), isNull(sftpSendFolders.envelopeId), eq(sftpSendFolders.descriptor, descriptor)));
    },
  };
}
