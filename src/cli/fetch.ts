/**
 * `bxchange fetch`: download the files of an envelope into a folder.
 *
 * Each file streams to `<name>.part` (never held in memory), hashed on the
 * way; a `.part` left by an interrupted fetch is resumed with
 * `Range: bytes=<size>-`. Only a file whose SHA-256 and size match the
 * envelope's is moved to `<name>`; a mismatch after a resume starts that file
 * over once, otherwise nothing is kept. `envelope.json` (the envelope as the
 * server shows it after the downloads) is written beside the files.
 *
 * The local name is the server's name reduced to a plain name (last path
 * segment; `.`, `..`, control characters and empty names are replaced by
 * `file-<id>`), made unique within the envelope (and distinct from
 * envelope.json and every `.part`) by prefixing the file id. Existing files
 * are never overwritten without --force; one that already holds exactly the
 * expected bytes (a re-run after an interruption) is kept and not fetched again.
 * `.part` files are opened with O_NOFOLLOW, and without --force a finished file
 * is put in place with link(2), which never replaces what appeared meanwhile.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError, EXIT, UUID, json, seg, str, usageError, type ApiClient, type Command, type Context } from './common.ts';
import { Progress } from './progress.ts';
import { hashFile, type EnvelopeFile, type EnvelopeJson } from './send.ts';

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

/** file id → local name: plain, unique (case-insensitively), never envelope.json or another file's `.part`. */
function localNames(files: EnvelopeFile[]): Map<string, string> {
  const taken = new Set([ENVELOPE_JSON, `${ENVELOPE_JSON}.part`]);
  const free = (name: string) => !taken.has(name.toLowerCase()) && !taken.has(`${name}.part`.toLowerCase());
  const names = new Map<string, string>();
  for (const file of files) {
    const plain = plainName(file.name);
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

async function fetchFile(ctx: Context, api: ApiClient, envelopeId: string, file: EnvelopeFile, target: string, force: boolean): Promise<void> {
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
      await place(part, target, force);
      await progress.finish(`fetched ${name} (${got.size} bytes${got.resumedFrom > 0 ? `, resumed at ${got.resumedFrom}` : ''})`);
      return;
    }
    progress.abandon();
    await rm(part, { force: true });
    if (got.resumedFrom > 0 && attempt === 0) {
      await ctx.note(`bxchange: ${name}: the bytes kept from an earlier fetch do not match; fetching it again from the start\n`);
      continue;
    }
    throw new CliError(EXIT.failure, [
      `bxchange: ${name}: the bytes received do not match the envelope (SHA-256 ${got.sha256}, ${got.size} bytes;`,
      `  expected ${file.sha256}, ${file.size} bytes); nothing was kept`,
    ]);
  }
}

export const fetchCommand: Command = {
  args: ['ENVELOPE_ID'],
  summary: 'download the files of an envelope, checked against their SHA-256, with envelope.json',
  details:
    'Writes every file (or only --file) into --dir under its own name (reduced to a plain name), and envelope.json\n' +
    "beside. Each file streams to NAME.part and becomes NAME only once its SHA-256 matches the envelope's;\n" +
    'an interrupted fetch resumes its .part when run again. An existing file is never overwritten without\n' +
    '--force, except that one already holding exactly the expected bytes is kept as it is.\n' +
    'Prints a JSON summary: {envelope, dir, files: [{id, name, path, size, sha256, fetched}], envelopeJson}.',
  options: {
    dir: { type: 'string', arg: 'DIR', description: 'folder to write into (created if missing; default: the current folder)' },
    file: { type: 'string', arg: 'FILE_ID', description: 'only this file of the envelope' },
    force: { type: 'boolean', description: 'overwrite existing files' },
  },
  async run(ctx, values, [id]) {
    if (!UUID.test(id!)) throw usageError(`ENVELOPE_ID must be an envelope id (a UUID), got "${id}"`, HELP);
    const only = str(values, 'file');
    if (only !== undefined && !UUID.test(only)) throw usageError(`--file must be a file id (a UUID), got "${only}"`, HELP);
    const force = values.force === true;
    const dir = path.resolve(str(values, 'dir') ?? '.');
    const api = ctx.api();

    const envelope = (await api.request('GET', `/api/v1/envelopes/${seg(id!)}`)) as EnvelopeJson;
    const all = envelope.files ?? [];
    const names = localNames(all);
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
        if (existing.isFile() && existing.size === file.size && (await hashFile(target)) === file.sha256) present = true;
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

    const summary: Record<string, unknown>[] = [];
    for (const { file, target, present } of plan) {
      if (present) await ctx.note(`bxchange: ${path.basename(target)} is already there with the expected bytes\n`);
      else await fetchFile(ctx, api, envelope.id, file, target, force);
      summary.push({ id: file.id, name: file.name, path: target, size: file.size, sha256: file.sha256, fetched: !present });
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
