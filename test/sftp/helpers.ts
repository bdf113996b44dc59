/**
 * Drives the real OpenSSH `sftp` client in batch mode against the SFTP
 * door, and gpg/openssl as a back office would use them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import type { Test } from 'tap';
import { loadConfig } from '../../src/config.ts';
import { startSftpServer, sftpDeps, type SftpServer } from '../../src/sftp/server.ts';
import type { TestApp } from '../helpers/backends.ts';

export const run = promisify(execFile);

export interface SftpUser {
  name: string;
  keyFile: string;
}

export interface BatchResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the door on a free port for `api`'s services; stopped at teardown. */
export async function startDoor(t: Test, api: TestApp, dir: string, env: Record<string, string> = {}): Promise<SftpServer> {
  const config = loadConfig({ SFTP_PORT: '0', BXCHANGE_CERTS_DIR: path.join(dir, 'certs'), ...env }).sftp!;
  const quiet = { info() {}, warn() {}, error(obj: object, msg: string) { console.error(msg, obj); } };
  const door = await startSftpServer({ ...config, host: '127.0.0.1' }, sftpDeps(api.services, quiet));
  t.teardown(() => door.close());
  return door;
}

/** An Ed25519 key pair made by ssh-keygen (private key file; `.pub` beside it). */
export async function sshKey(dir: string, name: string): Promise<string> {
  const file = path.join(dir, `${name}_ed25519`);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@backoffice`, '-f', file]);
  return file;
}

export function sftpArgs(port: number, user: SftpUser, extra: string[] = []): string[] {
  return [
    '-b', '-',
    '-F', '/dev/null',
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'LogLevel=ERROR',
    '-i', user.keyFile,
    '-P', String(port),
    ...extra,
    `${user.name}@127.0.0.1`,
  ];
}

/** Spawns `sftp -b -` with `commands` on stdin, in its own process group (so a test can kill sftp and its ssh). */
export function spawnBatch(port: number, user: SftpUser, commands: string[], cwd: string, extra: string[] = []): { child: ChildProcess; done: Promise<BatchResult> } {
  const child = spawn('/usr/bin/sftp', sftpArgs(port, user, extra), { cwd, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(`${commands.join('\n')}\n`);
  const done = new Promise<BatchResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

/** Runs a batch; `sftp -b` stops at the first failing command and exits 1. */
export async function batch(port: number, user: SftpUser, commands: string[], cwd: string, extra: string[] = []): Promise<BatchResult> {
  return spawnBatch(port, user, commands, cwd, extra).done;
}

/** A batch that must succeed; fails the test with sftp's output otherwise. */
export async function ok(t: Test, port: number, user: SftpUser, commands: string[], cwd: string, extra: string[] = []): Promise<BatchResult> {
  const result = await batch(port, user, commands, cwd, extra);
  t.equal(result.code, 0, `sftp: ${commands.join(' ; ')}`, { stdout: result.stdout, stderr: result.stderr });
  return result;
}

/** A one-command batch that must fail. */
export async function refused(t: Test, port: number, user: SftpUser, command: string, cwd: string): Promise<BatchResult> {
  const result = await batch(port, user, [command], cwd);
  t.not(result.code, 0, `refused: ${command}`);
  return result;
}
