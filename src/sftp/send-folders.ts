/**
 * The send folders (`/<mailbox>/send/<name>/`) of the SFTP door: the name an
 * operator gave with `mkdir`, the draft made when its envelope.json was
 * closed, the file hints it carried, and the outcome of the submission
 * (`<name>.submit/`), so that a batch script may create a draft in one
 * session, encrypt, and put the files or submit in another — on any node.
 *
 * Design: a folder is a small JSON record in the shared blob store under
 * `sftp/send/<hex mailbox>/<hex name>.json` (hex keeps the keys inside the
 * store's `[A-Za-z0-9._-]` alphabet whatever the name). It names a draft;
 * it holds no envelope state of its own (PostgreSQL stays the truth: a
 * record whose draft is gone is dropped when seen). It is door state, like
 * a tus upload's info file, and never holds personal data: metadata is
 * plaintext by design (DESIGN §3). A table would be the better home once a
 * migration can be made; the interface below is what would move.
 */
import { Readable } from 'node:stream';
import type { Problem } from '../errors.ts';
import type { BlobStore } from '../storage/blob-store.ts';

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
  /** The descriptor as the operator put it (served back as envelope.json). */
  descriptor: string | null;
  files: Record<string, FileHint>;
  /** The SubmissionAcceptance receipt, once submitted. */
  receiptId: string | null;
  /** The last refusal in this folder, served as ERROR.json. */
  error: Problem | null;
}

/** A folder name: one plain segment, never ending in .submit (which names the outcome). */
export const FOLDER_NAME = /^(?!.*\.submit$)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

const hex = (text: string) => Buffer.from(text, 'utf8').toString('hex');
const unhex = (text: string) => Buffer.from(text, 'hex').toString('utf8');

export interface SendFolders {
  get(mailbox: string, name: string): Promise<SendFolder | null>;
  put(folder: SendFolder): Promise<void>;
  remove(mailbox: string, name: string): Promise<void>;
  /** Every folder of a mailbox, by name. */
  list(mailbox: string): Promise<SendFolder[]>;
}

export function createSendFolders(blobStore: BlobStore): SendFolders {
  const prefix = (mailbox: string) => `sftp/send/${hex(mailbox)}/`;
  const keyOf = (mailbox: string, name: string) => `${prefix(mailbox)}${hex(name)}.json`;

  async function read(key: string): Promise<SendFolder | null> {
    let stream: Readable;
    try {
      stream = await blobStore.get(key);
    } catch (err) {
      if ((err as { code?: string }).code === 'blobNotFound') return null;
      throw err;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > 4 * 1024 * 1024) throw new Error(`send folder record ${key} is too large`);
      chunks.push(chunk as Buffer);
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as SendFolder;
  }

  return {
    get: (mailbox, name) => read(keyOf(mailbox, name)),
    async put(folder) {
      await blobStore.put(keyOf(folder.mailbox, folder.name), Readable.from([Buffer.from(JSON.stringify(folder))]), { contentType: 'application/json' });
    },
    remove: (mailbox, name) => blobStore.delete(keyOf(mailbox, name)),
    async list(mailbox) {
      const keys: string[] = [];
      for await (const object of blobStore.list(prefix(mailbox))) keys.push(object.key);
      const folders = await Promise.all(
        keys
          .filter((key) => /^[0-9a-f]+\.json$/.test(key.slice(prefix(mailbox).length)))
          .map((key) => read(key)),
      );
      return folders.filter((f): f is SendFolder => f !== null && unhex(hex(f.name)) === f.name).sort((a, b) => (a.name < b.name ? -1 : 1));
    },
  };
}
