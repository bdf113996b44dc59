/**
 * The virtual tree a principal sees over SFTP, and the only parser of its
 * paths. Nothing outside it exists: a path is split into plain segments,
 * `..` anywhere is refused (never resolved against a real directory),
 * control characters and backslashes are refused, and every mailbox segment
 * must be one of the principal's memberships (others do not exist for it).
 *
 *   /                                     the principal's mailboxes
 *   /<mailbox>/inbox/                     envelopes delivered, not yet acknowledged
 *   /<mailbox>/inbox/.ack/                acknowledged ones; rename inbox/<id> here to acknowledge
 *   /<mailbox>/inbox/<id>/                envelope.json, the files, receipts/<type>-<id>.json|.p7s
 *   /<mailbox>/outbox/<id>/               the same, for envelopes sent (read-only)
 *   /<mailbox>/send/<name>/               a draft being composed (mkdir, put envelope.json, put files)
 *   /<mailbox>/send/<name>.submit/        its submission: receipt.json + receipt.p7s, or ERROR.json
 */
import { UUID_PATTERN } from '../domain/ids.ts';
import { denied, noSuchFile } from './status.ts';

export type Box = 'inbox' | 'outbox';

export type TreePath =
  | { kind: 'root' }
  | { kind: 'mailbox'; mailbox: string }
  | { kind: 'box'; mailbox: string; box: Box; acknowledged: boolean }
  | { kind: 'sendRoot'; mailbox: string }
  /** `rest`: [] the folder, [name] an entry, ['receipts' | 'keys', name?] inside a subfolder. */
  | { kind: 'envelope'; mailbox: string; box: Box; id: string; acknowledged: boolean; rest: string[] }
  | { kind: 'folder'; mailbox: string; name: string; submit: boolean; rest: string[] };

export const ACK_FOLDER = '.ack';
const UUID = new RegExp(UUID_PATTERN, 'i');
const MAX_DEPTH = 8;

/** The plain segments of a client path (relative paths are relative to the root, the home). */
export function segments(raw: string): string[] {
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) throw denied('The path has control characters or backslashes');
  const parts = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw denied('Paths with ".." are refused: name every folder from the root');
  if (parts.length > MAX_DEPTH) throw noSuchFile();
  return parts;
}

/** REALPATH only (e.g. `cd ..`): `..` folds lexically, and never climbs above the root. */
export function normalize(raw: string): string {
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) throw denied('The path has control characters or backslashes');
  const out: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

/** Parses a path against the principal's mailboxes; NO_SUCH_FILE for anything outside the tree. */
export function parsePath(raw: string, mailboxes: ReadonlySet<string>): TreePath {
  const parts = segments(raw);
  if (parts.length === 0) return { kind: 'root' };
  const mailbox = parts[0]!;
  if (!mailboxes.has(mailbox)) throw noSuchFile();
  if (parts.length === 1) return { kind: 'mailbox', mailbox };
  const area = parts[1]!;
  if (area === 'inbox' || area === 'outbox') {
    let rest = parts.slice(2);
    let acknowledged = false;
    if (area === 'inbox' && rest[0] === ACK_FOLDER) {
      acknowledged = true;
      rest = rest.slice(1);
    }
    if (rest.length === 0) return { kind: 'box', mailbox, box: area, acknowledged };
    const id = rest[0]!;
    if (!UUID.test(id)) throw noSuchFile();
    return { kind: 'envelope', mailbox, box: area, id: id.toLowerCase(), acknowledged, rest: rest.slice(1) };
  }
  if (area === 'send') {
    if (parts.length === 2) return { kind: 'sendRoot', mailbox };
    const folder = parts[2]!;
    const submit = folder.endsWith('.submit');
    const name = submit ? folder.slice(0, -'.submit'.length) : folder;
    return { kind: 'folder', mailbox, name, submit, rest: parts.slice(3) };
  }
  throw noSuchFile();
}
