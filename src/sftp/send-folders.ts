/**
 * The send folders (`/<mailbox>/send/<name>/`) of the SFTP door: the name an
 * operator gave with `mkdir`, the draft made when its envelope.json was
 * closed, the file hints it carried, and the outcome of the submission
 * (`<name>.submit/`), so that a batch script may create a draft in one
 * session, encrypt, and put the files or submit in another — on any node.
 *
 * Design: a folder is a row of `sftp_send_folders` (src/db/schema.ts),
 * reached through the SendFolderRepository declared here and implemented in
 * src/db/. It names a draft and holds no envelope state of its own; the
 * foreign key deletes it with its draft (deleteDraft through any door, the
 * hygiene sweep), in the same transaction. It never holds personal data:
 * metadata is plaintext by design (DESIGN §3).
 *
 * Concurrency (two sessions, two nodes): `put` of a folder this store did not
 * hand out (mkdir's new one) is an insert that the primary key (mailbox,
 * name) lets only one session win; the loser gets an SFTP failure. `put` of a
 * folder read through `get` that changes its draft or state is applied only
 * if the row still has the draft and state it was read with (a compare and
 * set), so a session never overwrites another's draft or submission; the
 * loser gets a ConflictError. A `put` that only changes the last error
 * (ERROR.json) is last-writer-wins, and is dropped if the folder is gone.
 *
 * At most one draft per folder: a session that closes an envelope.json first
 * claims the folder (`claim`: a compare and set from "no draft, no
 * descriptor" to "this descriptor, no draft yet"), only then creates the
 * draft, and names it in the folder (`attach`, applied only while its claim
 * stands). A second session's claim fails before it creates anything. A
 * refused draft gives the claim up (`release`); a draft that cannot be
 * attached (the folder was removed meanwhile) is deleted by the gateway. The
 * claim is the descriptor itself, so two claims made with the same bytes are
 * not told apart: the draft attached is then one made from those bytes. A
 * claim left by a node that stopped between `claim` and `attach` shows as an
 * envelope.json without draft.json; `rmdir` of the folder clears it.
 */
import { ConflictError, type Problem } from '../errors.ts';
import { failure } from './status.ts';

/** Per-file hints from the envelope.json `files` member, matched by file name at upload. */
export interface FileHint {
  role?: string;
  mediaType?: string;
  plaintextSha256?: string;
}

export interface SendFolder {
  mailbox: string;
  name: string;
  createdAt: string;
  /** The draft, once envelope.json was accepted. */
  envelopeId: string | null;
  /** `editing` shows as send/<name>/, the others as send/<name>.submit/. */
  state: 'editing' | 'submitted' | 'refused';
  /** The descriptor as the operator put it (served back as envelope.json); set without a draft while a session claims the folder to make it. */
  descriptor: string | null;
  files: Record<string, FileHint>;
  /** The SubmissionAcceptance receipt, once submitted. */
  receiptId: string | null;
  /** The last refusal in this folder, served as ERROR.json. */
  error: Problem | null;
}

/** A folder name: one plain segment, never ending in .submit (which names the outcome). */
export const FOLDER_NAME = /^(?!.*\.submit$)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** What a folder's compare-and-set compares: its draft and its state as read. */
export interface FolderVersion {
  envelopeId: string | null;
  state: SendFolder['state'];
}

/** Persistence of send folders (implemented in src/db/send-folder-repository.ts). */
export interface SendFolderRepository {
  find(mailbox: string, name: string): Promise<SendFolder | null>;
  /** Every folder of a mailbox, by name (code-unit order). */
  list(mailbox: string): Promise<SendFolder[]>;
  /** Inserts the folder; false (nothing written) when the mailbox already has a folder of that name. */
  create(folder: SendFolder): Promise<boolean>;
  /** Writes every field but the key and createdAt, only if the row still has `expected`; false otherwise (changed or gone). */
  update(folder: SendFolder, expected: FolderVersion): Promise<boolean>;
  /** Writes only the last error; false when the folder is gone. */
  setError(mailbox: string, name: string, error: Problem | null): Promise<boolean>;
  /** Deletes the folder (idempotent). */
  remove(mailbox: string, name: string): Promise<void>;
  /** Sets the descriptor of an editing folder that has neither a draft nor a descriptor (a claim); false otherwise (claimed, has a draft, or gone). */
  claim(mailbox: string, name: string, descriptor: string): Promise<boolean>;
  /** Names the draft (with its file hints, the last error cleared) in a folder still claimed with `descriptor` and without a draft; false otherwise. */
  attach(mailbox: string, name: string, descriptor: string, draft: { envelopeId: string; files: Record<string, FileHint> }): Promise<boolean>;
  /** Clears the descriptor of a folder still claimed with `descriptor` and without a draft (nothing otherwise). */
  release(mailbox: string, name: string, descriptor: string): Promise<void>;
}

export interface SendFolders {
  get(mailbox: string, name: string): Promise<SendFolder | null>;
  /**
   * Creates a new folder (an object not obtained from `get`/`list`; fails
   * with an SFTP failure when the name is taken), or saves one read before
   * (ConflictError when another session changed its draft or state meanwhile).
   */
  put(folder: SendFolder): Promise<void>;
  remove(mailbox: string, name: string): Promise<void>;
  /** Every folder of a mailbox, by name. */
  list(mailbox: string): Promise<SendFolder[]>;
  /**
   * Claims a folder read through `get`/`list` for the draft this session is
   * about to create from `descriptor`: false (nothing written) when the
   * folder has a draft, another session's claim, or is gone. The object is
   * left as read (an ERROR.json may still be put with it).
   */
  claim(folder: SendFolder, descriptor: string): Promise<boolean>;
  /** Names the draft in the folder this session claimed (ConflictError when the claim is gone: the folder was removed meanwhile). */
  attach(folder: SendFolder, envelopeId: string, files: Record<string, FileHint>): Promise<void>;
  /** Gives the claim up (the draft was refused): the folder has no descriptor again. */
  release(folder: SendFolder): Promise<void>;
}

export function createSendFolders(repository: SendFolderRepository): SendFolders {
  // The version each folder object was read at, by identity: the gateway mutates the
  // object it got and puts it back, and a folder it built itself (mkdir) has none.
  const versions = new WeakMap<SendFolder, FolderVersion>();
  const track = (folder: SendFolder) => {
    versions.set(folder, { envelopeId: folder.envelopeId, state: folder.state });
    return folder;
  };
  // The descriptor each folder object was claimed with.
  const claims = new WeakMap<SendFolder, string>();

  return {
    async get(mailbox, name) {
      const folder = await repository.find(mailbox, name);
      return folder === null ? null : track(folder);
    },

    async put(folder) {
      const read = versions.get(folder);
      if (read === undefined) {
        if (!(await repository.create(folder))) throw failure(`send/${folder.name} exists (or was submitted as send/${folder.name}.submit)`);
        track(folder);
        return;
      }
      if (read.envelopeId === folder.envelopeId && read.state === folder.state) {
        // Only ERROR.json can change without a new draft or state: last writer wins, nothing to keep if the folder is gone.
        await repository.setError(folder.mailbox, folder.name, folder.error);
        return;
      }
      if (!(await repository.update(folder, read))) {
        throw new ConflictError('conflict', `send/${folder.name} was changed or removed by another session meanwhile; list the folder and start again`);
      }
      track(folder);
    },

    remove: (mailbox, name) => repository.remove(mailbox, name),

    async list(mailbox) {
      return (await repository.list(mailbox)).map(track);
    },

    async claim(folder, descriptor) {
      const read = versions.get(folder);
      if (read === undefined || read.envelopeId !== null || read.state !== 'editing') return false;
      if (!(await repository.claim(folder.mailbox, folder.name, descriptor))) return false;
      claims.set(folder, descriptor);
      return true;
    },

    async attach(folder, envelopeId, files) {
      const descriptor = claims.get(folder);
      if (descriptor === undefined || !(await repository.attach(folder.mailbox, folder.name, descriptor, { envelopeId, files }))) {
        throw new ConflictError('conflict', `send/${folder.name} was changed or removed by another session meanwhile; list the folder and start again`);
      }
      claims.delete(folder);
      Object.assign(folder, { envelopeId, descriptor, files, error: null });
      track(folder);
    },

    async release(folder) {
      const descriptor = claims.get(folder);
      if (descriptor === undefined) return;
      claims.delete(folder);
      await repository.release(folder.mailbox, folder.name, descriptor);
    },
  };
}
