/**
 * The real `bxchange` CLI as a child process, for tests that drive it as a
 * back office does, and a TCP relay that makes an interrupted upload
 * deterministic (it stops forwarding after a set number of bytes, so the
 * upload is stuck part-way, for certain, until the test kills the CLI).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/bxchange.js', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `node bin/bxchange.js …` with only the environment given; `done` resolves when it exits. */
export function start(args: string[], env: Record<string, string>, cwd: string): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

/** Polls `probe` until it returns a value (bounded, so a broken CLI fails the test instead of hanging it). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 1200; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * A TCP relay in front of the server. Client-to-server bytes are counted;
 * once `limit` would be exceeded, nothing more is forwarded upstream (on any
 * connection) until `open()`; server-to-client bytes always pass.
 */
export class GateRelay {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #target: number;
  limit = Number.POSITIVE_INFINITY;
  forwarded = 0;
  stalled = false;

  constructor(targetPort: number) {
    this.#target = targetPort;
    this.#server = createNetServer((client) => this.#relay(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as AddressInfo).port;
  }

  #relay(client: Socket): void {
    const upstream = connect(this.#target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      if (this.stalled || this.forwarded + chunk.length > this.limit) {
        this.stalled = true;
        client.pause();
        return;
      }
      this.forwarded += chunk.length;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => {
          if (!this.stalled) client.resume();
        });
      }
    });
  }

  /** Cuts every connection (the server sees its requests end) and lets everything through from now on. */
  open(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.stalled = false;
    this.limit = Number.POSITIVE_INFINITY;
    this.forwarded = 0;
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}


/** Makes the app listen on 127.0.0.1 (a free port) for the CLI processes; returns the port. */
export async function listen(api: { app: { listen(o: { host: string; port: number }): Promise<unknown>; server: { address(): unknown } } }): Promise<number> {
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  return (api.app.server.address() as AddressInfo).port;
}

/** The passphrase the tests lock mailbox keys with (given to the CLI through the environment only). */
export const PASSPHRASE = 'correct horse battery staple';

type Caller = { call(method: 'POST', url: string, options?: { body?: unknown }): Promise<{ statusCode: number; body: string }> };

/**
 * Communes ixelles, uccle and evere with a `secretariat` mailbox each, a
 * machine principal per mailbox (ixelles: read, send, manage; uccle: read,
 * manage; evere: read, send, manage) with its token, and each mailbox's key
 * made and published by the real `bxchange keygen` (private key locked with
 * PASSPHRASE and deposited), as a back office would do it.
 */
export async function exchangeSetup(api: Caller, url: string, cwd: string): Promise<{ sender: string; recipient: string; stranger: string }> {
  const post = async (path: string, body: unknown) => {
    const res = await api.call('POST', path, { body });
    if (res.statusCode >= 300) throw new Error(`${path}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  for (const id of ['ixelles', 'uccle', 'evere']) {
    await post('/api/v1/entities', { id, kind: 'commune', name: { fr: id, nl: id } });
    await post(`/api/v1/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  const token = async (name: string, mailbox: string, roles: string[]) => {
    const principal = await post('/api/v1/principals', { name, kind: 'machine', memberships: [{ mailbox, roles }] });
    return (await post(`/api/v1/principals/${principal.id}/tokens`, {})).token as string;
  };
  const tokens = {
    sender: await token('ixelles-bo', 'secretariat@ixelles', ['read', 'send', 'manage']),
    recipient: await token('uccle-bo', 'secretariat@uccle', ['read', 'manage']),
    stranger: await token('evere-bo', 'secretariat@evere', ['read', 'send', 'manage']),
  };
  const owners: [string, string][] = [
    ['secretariat@ixelles', tokens.sender],
    ['secretariat@uccle', tokens.recipient],
    ['secretariat@evere', tokens.stranger],
  ];
  await Promise.all(
    owners.map(async ([mailbox, bearer]) => {
      const run = await start(['keygen', '--mailbox', mailbox], { BXCHANGE_URL: url, BXCHANGE_TOKEN: bearer, BXCHANGE_PASSPHRASE: PASSPHRASE }, cwd).done;
      if (run.code !== 0) throw new Error(`keygen ${mailbox}: ${run.code} ${run.stderr}`);
    }),
  );
  return tokens;
}
