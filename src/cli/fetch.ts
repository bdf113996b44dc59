/**
 * `bxchange fetch`: download the files of an envelope into a folder and
 * decrypt them (DESIGN §4c), or keep them encrypted with --raw.
 *
 * Each file's ciphertext streams to `<name>.part` (never held in memory),
 * hashed on the way; a `.part` left by an interrupted fetch is resumed with
 * `Range: bytes=<size>-`. Only bytes whose SHA-256 and size match the
 * envelope's go further; a mismatch after a resume starts that file over
 * once, otherwise nothing is kept. `envelope.json` (the envelope as the
 * server shows it after the downloads) is written beside the files.
 *
 * Decryption (the default). The mailbox's locked private keys come from the
 * server (`GET /api/v1/mailboxes/{address}/private-key`: the active key and
 * the retired ones, so files sent before a rotation stay readable) or from
 * local files (--key); the key whose IDs the file's header names is unlocked
 * with the passphrase (BXCHANGE_PASSPHRASE, or typed on a terminal; never an
 * argument, never printed). The SDK decrypts streaming into a temporary file
 * that becomes a hidden staging file only once the OpenPGP integrity check
 * (MDC) passed; the staging file becomes `<name>` (the server's name without
 * its `.gpg`, `.pgp` or `.asc`) only once its SHA-256 also matches the
 * sender's `plaintextSha256`, when the envelope has one. On any failure
 * nothing of the plaintext is left behind (temporary, staging and `.part`
 * are removed), the command exits non-zero with one line on stderr.
 * Temporary files of a fetch that was killed are removed by the next one.
 *
 * The local name is the server's name reduced to a plain name (last path
 * segment; `.`, `..`, control characters and empty names are replaced by
 * `file-<id>`), made unique within the envelope (and distinct from
 * envelope.json and every `.part`) by prefixing the file id. Existing files
 * are never overwritten without --force; one that already holds exactly the
 * expected bytes (a re-run after an interruption) is kept and not fetched
 * again (decrypted: only when the envelope has the plaintext's SHA-256).
 * `.part` files are opened with O_NOFOLLOW, and without --force a finished
 * file is put in place with link(2), which never replaces what appeared meanwhile.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream, readdirSync, rmSync } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError, EXIT, PASSPHRASE_ENV, UUID, json, list, passphraseFromEnv, promptHidden, seg, str, usageError, type ApiClient, type Command, type Context } from './common.ts';
import { Progress } from './progress.ts';
import { hashFile, type EnvelopeFile, type EnvelopeJson } from './send.ts';

type Sdk = typeof import('../sdk/index.ts');

const HELP = 'fetch';
const ENVELOPE_JSON = 'envelope.json';

/** The server's file name as a plain local name, or null when it cannot be one. */
export function plainName(name: unknown): string | null {
  if (typeof name !== 'string') return null;
  const last = (name.split(/[\\/]/).pop() ?? '').trim();
  if (last === '' || last === '.' || last === '..') return null;
  if (/[\u0000-\u001f\u007f]/.test(last) || Buffer.byteLength(last) > 200) return null;
  return last;
}

/** The name of the decrypted file: the server's name without its OpenPGP suffix (`act.pdf.gpg` → `act.pdf`). */
export function decryptedName(name: string): string {
  const stripped = name.replace(/\.(?:gpg|pgp|asc)$/i, '');
  return stripped === '' || stripped === '.' || stripped === '..' ? name : stripped;
}

/** file id → local name: plain, unique (case-insensitively), never envelope.json or another file's `.part`. */
function localNames(files: EnvelopeFile[], decrypt: boolean): Map<string, string> {
  const taken = new Set([ENVELOPE_JSON, `${ENVELOPE_JSON}.part`]);
  const free = (name: string) => !taken.has(name.toLowerCase()) && !taken.has(`${name}.part`.toLowerCase());
  const names = new Map<string, string>();
  for (const file of files) {
    const server = plainName(file.name);
    const plain = server === null ? null : decrypt ? decryptedName(server) : server;
    let name = plain ?? `file-${file.id}`;
    if (!free(name)) name = `${file.id}-${name}`;
    for (let n = 2; !free(name); n++) name = `file-${file.id}-${n}`;
    taken.add(name.toLowerCase());
    taken.add(`${name}.part`.toLowerCase());
    names.set(file.id, name);
  }
  return names;
}

async function lstatOrNull(file: string) {
  try {
    return await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function localFailure(err: unknown, file: string): CliError {
  const e = err as NodeJS.ErrnoException;
  return new CliError(EXIT.failure, [`bxchange: cannot write ${file} (${e.code ?? e.message})`]);
}

interface Downloaded {
  size: number;
  sha256: string;
  /** Bytes that were already in the `.part` and kept. */
  resumedFrom: number;
}

/** Fills `part` with the file's bytes, resuming what is there; returns what it holds. */
async function download(api: ApiClient, href: string, file: EnvelopeFile, part: string, progress: Progress): Promise<Downloaded> {
  const expected = file.size ?? 0;
  const existing = await lstatOrNull(part);
  if (existing !== null && !existing.isFile()) throw new CliError(EXIT.usage, [`bxchange: ${part} is not a regular file: remove it`]);
  let have = existing === null || existing.size > expected ? 0 : existing.size;
  let hash = createHash('sha256');
  if (have > 0) {
    for await (const chunk of createReadStream(part, { start: 0, end: have - 1 })) hash.update(chunk as Buffer);
    if (have === expected) return { size: have, sha256: hash.digest('hex'), resumedFrom: have };
  }

  let answer = await api.stream(href, have > 0 ? { range: `bytes=${have}-` } : {});
  if (have > 0) {
    const range = /^bytes (\d+)-\d+\/\d+$/.exec(answer.headers.get('content-range') ?? '');
    if (answer.status !== 206 || range === null || Number(range[1]) !== have) {
      // Not the rest of the file: start over, with the whole file.
      have = 0;
      hash = createHash('sha256');
      if (answer.status === 206) {
        answer.body.destroy();
        answer = await api.stream(href);
      }
    }
  }

  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (have > 0 ? constants.O_APPEND : constants.O_TRUNC);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(part, flags, 0o666);
  } catch (err) {
    answer.body.destroy();
    throw localFailure(err, part);
  }
  let size = have;
  progress.update(size);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      progress.update(size);
      done(null, chunk);
    },
  });
  try {
    // The stream owns the handle: it flushes (fsync) and closes it at the end, or on error.
    await pipeline(answer.body, meter, handle.createWriteStream({ flush: true }));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.syscall !== undefined && ['write', 'fsync', 'open'].includes(e.syscall)) throw localFailure(err, part);
    const reason = e.name === 'TimeoutError' || e.cause instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : (e.code ?? e.message);
    throw new CliError(EXIT.unavailable, [
      `bxchange: the download of ${file.name} from BXCHANGE_URL ${api.shown} was cut short (${reason})`,
      'bxchange: run the same command again to resume',
    ]);
  }
  return { size, sha256: hash.digest('hex'), resumedFrom: have };
}

/** Moves the finished `.part` to its name; without --force never replaces a file that appeared meanwhile. */
async function place(part: string, target: string, force: boolean): Promise<void> {
  if (force) {
    await rename(part, target);
    return;
  }
  try {
    await link(part, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') throw new CliError(EXIT.usage, [`bxchange: ${target} appeared meanwhile: not overwritten (use --force)`]);
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'].includes(code)) throw err;
    if ((await lstatOrNull(target)) !== null) throw new CliError(EXIT.usage, [`bxchange: ${target} appeared meanwhile: not overwritten (use --force)`]);
    await rename(part, target);
    return;
  }
  await unlink(part);
}

// ---------------------------------------------------------------- decryption

/** A private key of the mailbox (or a --key file) that may decrypt the envelope's files. */
interface KeyEntry {
  /** For messages: "the active key of secretariat@uccle", "the key in uccle.asc". */
  label: string;
  fingerprint: string;
  /** The key ID and every subkey ID (16 lowercase hex digits). */
  keyIds: string[];
  armored: string;
  unlocked?: import('../sdk/index.ts').UnlockedPrivateKey;
}

const WILDCARD_KEY_ID = '0000000000000000';

/**
 * The keys to decrypt with: the --key files, or every locked private key the
 * caller may download from the mailboxes the envelope involves (its
 * recipients and its sender, those the caller reads; --mailbox picks one).
 */
async function loadKeys(ctx: Context, api: ApiClient, sdk: Sdk, envelope: EnvelopeJson & { recipients?: { address: string }[] }, values: import('./common.ts').Values): Promise<KeyEntry[]> {
  const entries: KeyEntry[] = [];
  const describe = async (armored: string, label: string) => {
    try {
      const ids = await sdk.privateKeyIds(armored);
      entries.push({ label, fingerprint: ids.fingerprint, keyIds: ids.keyIds, armored });
    } catch (err) {
      if (err instanceof sdk.SdkError) throw new CliError(EXIT.usage, [`bxchange: ${label} is not an armored OpenPGP private key`]);
      throw err;
    }
  };
  const files = list(values, 'key');
  if (files.length > 0) {
    for (const file of files) {
      let armored: string;
      try {
        armored = await readFile(file, 'utf8');
      } catch (err) {
        throw usageError(`cannot read --key ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, HELP);
      }
      await describe(armored, `the key in ${file}`);
    }
    return entries;
  }

  const involved = [...new Set([...(envelope.recipients ?? []).map((r) => r.address), ...(envelope.from ? [envelope.from] : [])])];
  let mailboxes: string[];
  const chosen = str(values, 'mailbox');
  if (chosen !== undefined) {
    mailboxes = [chosen];
  } else {
    let readable: string[] | undefined;
    try {
      const me = (await api.request('GET', '/api/v1/me')) as { memberships?: { mailbox: string; roles: string[] }[] };
      readable = (me.memberships ?? []).filter((m) => m.roles.includes('read')).map((m) => m.mailbox);
    } catch (err) {
      if (!(err instanceof CliError && err.status !== undefined && err.status < 500)) throw err;
    }
    const mine = readable === undefined ? [] : involved.filter((m) => readable!.includes(m));
    mailboxes = mine.length > 0 ? mine : involved;
  }
  const why: string[] = [];
  for (const mailbox of mailboxes) {
    let items: { fingerprint: string; state: string; privateKey: string }[];
    try {
      items = ((await api.request('GET', `/api/v1/mailboxes/${seg(mailbox)}/private-key`)) as { items: typeof items }).items ?? [];
    } catch (err) {
      if (err instanceof CliError && (err.status === 403 || err.status === 404)) {
        why.push(`${mailbox}: ${err.status === 404 ? 'no private key deposited (or not your mailbox)' : 'you may not read its private key'}`);
        continue;
      }
      throw err;
    }
    for (const item of items) await describe(item.privateKey, `the ${item.state} key ${item.fingerprint} of ${mailbox}`);
  }
  if (entries.length === 0) {
    throw new CliError(EXIT.refused, [
      `bxchange: no private key to decrypt with (${why.join('; ') || 'none found'}); give --mailbox, --key FILE, or --raw to keep the files encrypted`,
    ]);
  }
  return entries;
}

/** Where the passphrase comes from: the environment, or the terminal (asked once, up front). */
async function obtainPassphrase(ctx: Context): Promise<{ passphrase: string; canAsk: boolean }> {
  const fromEnv = passphraseFromEnv(ctx.io.env);
  const canAsk = process.stdin.isTTY === true && process.stderr.isTTY === true;
  if (fromEnv !== undefined) return { passphrase: fromEnv, canAsk: false };
  if (!canAsk) {
    throw usageError(`no passphrase to unlock the private key: set ${PASSPHRASE_ENV}, run fetch on a terminal to type it, or give --raw`, HELP);
  }
  return { passphrase: await promptHidden("Passphrase of the mailbox's private key: ", 'bxchange: fetch cancelled'), canAsk };
}

class Decryptor {
  readonly #sdk: Sdk;
  readonly #keys: KeyEntry[];
  readonly #secret: { passphrase: string; canAsk: boolean };
  readonly #ctx: Context;

  constructor(ctx: Context, sdk: Sdk, keys: KeyEntry[], secret: { passphrase: string; canAsk: boolean }) {
    this.#ctx = ctx;
    this.#sdk = sdk;
    this.#keys = keys;
    this.#secret = secret;
  }

  async #unlock(key: KeyEntry): Promise<import('../sdk/index.ts').UnlockedPrivateKey> {
    if (key.unlocked !== undefined) return key.unlocked;
    try {
      key.unlocked = await this.#sdk.unlockPrivateKey(key.armored, this.#secret.passphrase);
    } catch (err) {
      if (!(err instanceof this.#sdk.SdkError && err.code === 'wrongPassphrase')) throw err;
      if (!this.#secret.canAsk) {
        throw new CliError(EXIT.failure, [`bxchange: the passphrase (${PASSPHRASE_ENV}) does not unlock ${key.label}; nothing was decrypted with it`]);
      }
      // A retired key may have been locked with an earlier passphrase.
      const other = await promptHidden(`Passphrase of ${key.label}: `, 'bxchange: fetch cancelled');
      try {
        key.unlocked = await this.#sdk.unlockPrivateKey(key.armored, other);
      } catch {
        throw new CliError(EXIT.failure, [`bxchange: that passphrase does not unlock ${key.label} either`]);
      }
    }
    return key.unlocked;
  }

  /** The keys the file's header names (every key when it hides its recipients), in the keyring's order. */
  async #candidates(ciphertext: string, name: string): Promise<KeyEntry[]> {
    const handle = await open(ciphertext, 'r');
    let header: Buffer;
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(this.#sdk.HEADER_BYTES), 0, this.#sdk.HEADER_BYTES, 0);
      header = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
    let ids: string[];
    try {
      ids = await this.#sdk.recipientKeyIds(header);
    } catch {
      await rm(ciphertext, { force: true });
      throw new CliError(EXIT.failure, [`bxchange: ${name} is not an OpenPGP encrypted message: nothing was decrypted (fetch it with --raw to keep it as it is)`]);
    }
    if (ids.includes(WILDCARD_KEY_ID)) return this.#keys;
    const matching = this.#keys.filter((k) => k.keyIds.some((id) => ids.includes(id)));
    if (matching.length === 0) {
      throw new CliError(EXIT.failure, [
        `bxchange: ${name} is encrypted for the key IDs ${ids.join(', ')}, none of which is a key you hold (${this.#keys.map((k) => k.fingerprint).join(', ')}); nothing was decrypted`,
      ]);
    }
    return matching;
  }

  /**
   * Decrypts the verified ciphertext into `target`, through a hidden staging
   * file that takes the target's name only once the integrity check and the
   * plaintext SHA-256 passed. Removes the ciphertext once decrypted, or when
   * it can never be (not OpenPGP, integrity or plaintext SHA-256 failure); a
   * key or passphrase problem keeps it for the next run.
   */
  async decrypt(ciphertext: string, target: string, file: EnvelopeFile, force: boolean): Promise<{ size: number; sha256: string }> {
    const name = path.basename(target);
    const staging = stagingPath(target);
    const progress = new Progress(this.#ctx.io.stderr, `${name} (decrypting)`, file.size ?? 0);
    const stopWatching = removeOnSignal(() => [staging, ...leftovers(staging)]);
    let discard = false;
    try {
      await sweep(staging);
      let result: { size: number; sha256: string } | undefined;
      for (const key of await this.#candidates(ciphertext, file.name)) {
        const unlocked = await this.#unlock(key);
        try {
          result = await this.#sdk.decryptFile(ciphertext, staging, unlocked, '', { onProgress: (n) => progress.update(n) });
          break;
        } catch (err) {
          if (err instanceof this.#sdk.SdkError && err.code === 'noMatchingKey') continue;
          if (err instanceof this.#sdk.SdkError && (err.code === 'integrityCheckFailed' || err.code === 'notOpenPgp')) discard = true;
          if (err instanceof this.#sdk.SdkError && err.code === 'integrityCheckFailed') {
            throw new CliError(EXIT.failure, [
              `bxchange: ${file.name} failed the OpenPGP integrity check (damaged, truncated or tampered with): nothing was decrypted`,
            ]);
          }
          if (err instanceof this.#sdk.SdkError && err.code === 'notOpenPgp') {
            throw new CliError(EXIT.failure, [`bxchange: ${file.name} is not an OpenPGP encrypted message: nothing was decrypted (fetch it with --raw)`]);
          }
          if (err instanceof this.#sdk.SdkError) throw new CliError(EXIT.failure, [`bxchange: cannot decrypt ${file.name}: ${err.message}`]);
          throw err;
        }
      }
      if (result === undefined) {
        throw new CliError(EXIT.failure, [`bxchange: none of your keys decrypts ${file.name}: nothing was decrypted`]);
      }
      const expected = file.plaintextSha256?.toLowerCase();
      if (expected && result.sha256 !== expected) {
        discard = true;
        throw new CliError(EXIT.failure, [
          `bxchange: ${name}: the decrypted bytes do not match the sender's plaintext SHA-256 (${result.sha256}, expected ${expected}); nothing was kept`,
        ]);
      }
      discard = true;
      await place(staging, target, force);
      await progress.finish(`decrypted ${name} (${result.size} bytes${expected ? ', plaintext SHA-256 verified' : ''})`);
      return result;
    } catch (err) {
      progress.abandon();
      await rm(staging, { force: true });
      await sweep(staging);
      throw err;
    } finally {
      stopWatching();
      if (discard) await rm(ciphertext, { force: true });
    }
  }
}

/** The hidden file a decryption lands in before it takes the target's name. */
const stagingPath = (target: string) => path.join(path.dirname(target), `.${path.basename(target)}.bxchange-decrypted`);

/** The SDK's temporary files for `staging` (`.<basename>.part-<random>`), e.g. left by a killed fetch. */
function leftovers(staging: string): string[] {
  const prefix = `.${path.basename(staging)}.part-`;
  try {
    return readdirSync(path.dirname(staging))
      .filter((n) => n.startsWith(prefix))
      .map((n) => path.join(path.dirname(staging), n));
  } catch {
    return [];
  }
}

async function sweep(staging: string): Promise<void> {
  for (const file of leftovers(staging)) await rm(file, { force: true });
}

/** Until the returned function is called, Ctrl-C or a TERM removes `paths()` (unauthenticated plaintext) before exiting. */
function removeOnSignal(paths: () => string[]): () => void {
  const handler = (signal: NodeJS.Signals) => {
    for (const file of paths()) rmSync(file, { force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

// ---------------------------------------------------------------- the command

async function fetchFile(
  ctx: Context,
  api: ApiClient,
  envelopeId: string,
  file: EnvelopeFile,
  target: string,
  force: boolean,
  decryptor: Decryptor | undefined,
): Promise<{ size: number; sha256: string } | undefined> {
  const href = file.href ?? `/api/v1/envelopes/${seg(envelopeId)}/files/${seg(file.id)}`;
  const part = `${target}.part`;
  const name = path.basename(target);
  for (let attempt = 0; ; attempt++) {
    const progress = new Progress(ctx.io.stderr, name, file.size ?? 0);
    let got: Downloaded;
    try {
      got = await download(api, href, file, part, progress);
    } catch (err) {
      progress.abandon();
      throw err;
    }
    if (got.sha256 === file.sha256 && got.size === file.size) {
      const line = `fetched ${decryptor === undefined ? name : file.name} (${got.size} bytes${got.resumedFrom > 0 ? `, resumed at ${got.resumedFrom}` : ''})`;
      if (decryptor === undefined) {
        await place(part, target, force);
        await progress.finish(line);
        return undefined;
      }
      await progress.finish(line);
      return decryptor.decrypt(part, target, file, force);
    }
    progress.abandon();
    await rm(part, { force: true });
    if (got.resumedFrom > 0 && attempt === 0) {
      await ctx.note(`bxchange: ${name}: the bytes kept from an earlier fetch do not match; fetching it again from the start\n`);
      continue;
    }
    throw new CliError(EXIT.failure, [
      `bxchange: ${file.name}: the bytes received do not match the envelope (SHA-256 ${got.sha256}, ${got.size} bytes;`,
      `  expected ${file.sha256}, ${file.size} bytes); nothing was kept`,
    ]);
  }
}

export const fetchCommand: Command = {
  args: ['ENVELOPE_ID'],
  summary: 'download and decrypt the files of an envelope, checked against their SHA-256, with envelope.json',
  details:
    'Writes every file (or only --file) into --dir, and envelope.json beside. Each file\'s ciphertext streams to\n' +
    "NAME.part and goes further only once its SHA-256 matches the envelope's; an interrupted fetch resumes its\n" +
    '.part when run again. It is then decrypted (streaming) with the private key its header names: a locked\n' +
    "key of the mailbox from the server (active or retired) or from --key, unlocked with the passphrase from\n" +
    `${PASSPHRASE_ENV} or typed on the terminal. The decrypted file (the server's name without .gpg/.pgp/.asc)\n` +
    "appears only after the OpenPGP integrity check passed and its SHA-256 matched the sender's plaintextSha256\n" +
    '(when given); otherwise nothing of it is left and the command exits non-zero.\n' +
    '--raw keeps the files encrypted, under their server names (for gpg --decrypt).\n' +
    'An existing file is never overwritten without --force, except that one already holding exactly the\n' +
    'expected bytes is kept as it is.\n' +
    'Prints a JSON summary: {envelope, dir, files: [{id, name, path, size, sha256, fetched, decrypted, plaintextSha256}], envelopeJson}.',
  options: {
    dir: { type: 'string', arg: 'DIR', description: 'folder to write into (created if missing; default: the current folder)' },
    file: { type: 'string', arg: 'FILE_ID', description: 'only this file of the envelope' },
    force: { type: 'boolean', description: 'overwrite existing files' },
    raw: { type: 'boolean', description: 'keep the files encrypted as the server holds them; no key or passphrase needed' },
    mailbox: { type: 'string', arg: 'ADDR', description: 'decrypt with the private keys of this mailbox (default: the ones of yours the envelope involves)' },
    key: { type: 'string', multiple: true, arg: 'FILE.asc', description: 'decrypt with this locked private key file instead of the server\'s; repeatable' },
  },
  async run(ctx, values, [id]) {
    if (!UUID.test(id!)) throw usageError(`ENVELOPE_ID must be an envelope id (a UUID), got "${id}"`, HELP);
    const only = str(values, 'file');
    if (only !== undefined && !UUID.test(only)) throw usageError(`--file must be a file id (a UUID), got "${only}"`, HELP);
    const force = values.force === true;
    const raw = values.raw === true;
    if (raw && (str(values, 'mailbox') !== undefined || list(values, 'key').length > 0)) {
      throw usageError('--raw keeps the files encrypted: it takes no --mailbox or --key', HELP);
    }
    const dir = path.resolve(str(values, 'dir') ?? '.');
    const api = ctx.api();

    const envelope = (await api.request('GET', `/api/v1/envelopes/${seg(id!)}`)) as EnvelopeJson;
    const all = envelope.files ?? [];
    const names = localNames(all, !raw);
    const selected = only === undefined ? all : all.filter((f) => f.id.toLowerCase() === only.toLowerCase());
    if (only !== undefined && selected.length === 0) {
      throw new CliError(EXIT.refused, [`bxchange: envelope ${envelope.id} has no file ${only}`]);
    }
    for (const file of selected) {
      if (file.complete === false || file.sha256 === null || file.size === null) {
        throw new CliError(EXIT.refused, [`bxchange: ${file.name} (${file.id}) is still being uploaded: it cannot be fetched yet`]);
      }
    }
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw localFailure(err, dir);
    }

    // Plan before fetching anything: refuse at once rather than half-way.
    const plan: { file: EnvelopeFile; target: string; present: boolean }[] = [];
    const conflicts: string[] = [];
    for (const file of selected) {
      const target = path.join(dir, names.get(file.id)!);
      const existing = await lstatOrNull(target);
      let present = false;
      if (existing !== null) {
        const expected = raw ? file.sha256 : (file.plaintextSha256 ?? null);
        if (existing.isFile() && expected !== null && (!raw || existing.size === file.size) && (await hashFile(target)) === expected) present = true;
        else if (existing.isDirectory()) throw new CliError(EXIT.usage, [`bxchange: ${target} is a folder: not overwritten`]);
        else if (!force) conflicts.push(target);
      }
      plan.push({ file, target, present });
    }
    const envelopePath = path.join(dir, ENVELOPE_JSON);
    const existingJson = await lstatOrNull(envelopePath);
    if (existingJson !== null && !force) {
      // envelope.json of this very envelope (an earlier fetch) is refreshed; anything else is kept.
      let same = false;
      try {
        same = existingJson.isFile() && (JSON.parse(await readFile(envelopePath, 'utf8')) as { id?: unknown }).id === envelope.id;
      } catch {
        same = false;
      }
      if (!same) conflicts.push(envelopePath);
    }
    if (conflicts.length > 0) {
      throw new CliError(EXIT.usage, [
        `bxchange: not overwriting ${conflicts.length === 1 ? 'an existing file' : `${conflicts.length} existing files`}:`,
        ...conflicts.map((c) => `  ${c}`),
        'Use --force to overwrite, or --dir DIR to fetch elsewhere.',
      ]);
    }

    // Keys and passphrase before the first byte is downloaded: a missing one fails now, not after a long download.
    let decryptor: Decryptor | undefined;
    if (!raw && plan.some((p) => !p.present)) {
      const sdk = await import('../sdk/index.ts');
      const keys = await loadKeys(ctx, api, sdk, envelope, values);
      decryptor = new Decryptor(ctx, sdk, keys, await obtainPassphrase(ctx));
    }

    const summary: Record<string, unknown>[] = [];
    for (const { file, target, present } of plan) {
      let plaintext: { size: number; sha256: string } | undefined;
      if (present) await ctx.note(`bxchange: ${path.basename(target)} is already there with the expected bytes\n`);
      else plaintext = await fetchFile(ctx, api, envelope.id, file, target, force, decryptor);
      summary.push({
        id: file.id,
        name: file.name,
        path: target,
        size: file.size,
        sha256: file.sha256,
        fetched: !present,
        decrypted: !raw,
        plaintextSha256: raw ? (file.plaintextSha256 ?? null) : (plaintext?.sha256 ?? file.plaintextSha256 ?? null),
      });
    }

    // The envelope as it stands now (the downloads recorded the retrieval).
    const after = await api.request('GET', `/api/v1/envelopes/${seg(envelope.id)}`);
    const temporary = `${envelopePath}.part`;
    try {
      await rm(temporary, { force: true });
      await writeFile(temporary, json(after), { flag: 'wx', mode: 0o666 });
      await rename(temporary, envelopePath);
    } catch (err) {
      await rm(temporary, { force: true });
      throw localFailure(err, envelopePath);
    }
    await ctx.out(json({ envelope: envelope.id, dir, files: summary, envelopeJson: envelopePath }));
  },
};
