/**
 * The real gpg binary as an independent OpenPGP implementation for interop
 * tests: each test gets its own GNUPGHOME (a temporary folder), gpg runs in
 * batch mode with loopback pinentry, and the gpg-agent it starts is stopped
 * at teardown. Without gpg a newcomer's run skips the gpg tests by name;
 * CI=true fails them (see helpers/services.ts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import type { ServiceProbe } from '../helpers/services.ts';

const run = promisify(execFile);

export function gpgService(): ServiceProbe<string> {
  try {
    const version = execFileSync('gpg', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? 'gpg';
    return { name: 'gpg', value: version, reason: '' };
  } catch {
    return { name: 'gpg', value: undefined, reason: 'the gpg binary is not installed (apt-get install gnupg)' };
  }
}

export interface Gpg {
  home: string;
  /** Runs `gpg --batch --yes --pinentry-mode loopback …args`; rejects on a non-zero exit, with gpg's stderr. */
  run(args: string[], options?: { passphrase?: string }): Promise<{ stdout: string; stderr: string }>;
  /** Imports an armored key (public or, with `passphrase`, secret). */
  importKey(armored: string, file: string, passphrase?: string): Promise<void>;
  /** The `--with-colons` records of a key file, without importing it. */
  showKeys(file: string): Promise<string[][]>;
}

export async function gpgHome(t: Test): Promise<Gpg> {
  // Short path: gpg-agent's socket path must stay under the 108-byte limit.
  const home = await mkdtemp(path.join(os.tmpdir(), 'gpg-'));
  const env = { ...process.env, GNUPGHOME: home };
  t.teardown(async () => {
    await run('gpgconf', ['--kill', 'all'], { env }).catch(() => {});
    await rm(home, { recursive: true, force: true });
  });
  const gpg: Gpg = {
    home,
    async run(args, options = {}) {
      const pass = options.passphrase === undefined ? [] : ['--passphrase', options.passphrase];
      try {
        return await run('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', ...pass, ...args], { env, maxBuffer: 64 * 1024 * 1024 });
      } catch (err) {
        const e = err as Error & { stderr?: string };
        throw new Error(`gpg ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
      }
    },
    async importKey(armored, file, passphrase) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(file, armored);
      await gpg.run(['--import', file], passphrase === undefined ? {} : { passphrase });
    },
    async showKeys(file) {
      const { stdout } = await gpg.run(['--with-colons', '--fixed-list-mode', '--show-keys', file]);
      return stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(':'));
    },
  };
  return gpg;
}

/** The encryption-capable subkey IDs of a key as gpg lists them (`sub` records with the `e` capability), lowercase. */
export function gpgEncryptionSubkeyIds(records: string[][]): string[] {
  return records.filter((r) => r[0] === 'sub' && (r[11] ?? '').includes('e')).map((r) => r[4]!.toLowerCase());
}

/** The primary fingerprint of a key as gpg lists it, lowercase. */
export function gpgFingerprint(records: string[][]): string {
  const pub = records.findIndex((r) => r[0] === 'pub' || r[0] === 'sec');
  const fpr = records.slice(pub).find((r) => r[0] === 'fpr');
  return (fpr?.[9] ?? '').toLowerCase();
}
