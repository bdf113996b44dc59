/**
 * The SFTP door (issue #8): an SSH server (ssh2) that speaks SFTP v3 to
 * OpenSSH's sftp, WinSCP and the like, and hands every request to the
 * gateway (gateway.ts), which calls the domain. This file only does SSH:
 * the host key, public-key authentication against the principals' SSH
 * keys, per-principal session limits, the idle timeout, handles, and the
 * mapping of errors to status codes (status.ts).
 *
 * ssh2 traps (../shared/FACTS.md): the SFTP channel is ended when the client
 * ends it (or OpenSSH's sftp hangs at exit); OPEN with SSH_FXF_APPEND (reput)
 * still writes at the offsets given; SETSTAT/FSETSTAT answer OK (or `put -p`
 * fails). ChaCha20-Poly1305 is not offered: ssh2 runs it in JavaScript, AES-GCM
 * runs in OpenSSL (get at 138 vs 303 MB/s measured).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, SFTPWrapper } from 'ssh2';
import type { SftpConfig } from '../config.ts';
import type { Caller } from '../domain/model.ts';
import type { SshKeys } from '../domain/ssh-keys.ts';
import { createGateway, OPEN, type Attrs, type Entry, type Gateway, type GatewayDeps, type ReadHandle, type WriteHandle } from './gateway.ts';
import { coalesceReplies } from './coalesce.ts';
import { createSendFolders, type SendFolderRepository } from './send-folders.ts';
import { STATUS, statusOf, unsupported } from './status.ts';
import { normalize } from './tree.ts';

const { Server, utils } = ssh2;

export interface SftpLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SftpServerDeps extends Omit<GatewayDeps, 'sendFolders'> {
  sendFolderRepository: SendFolderRepository;
  sshKeys: SshKeys;
  log: SftpLogger;
}

export interface SftpServer {
  /** The port listened on (useful with SFTP_PORT=0). */
  readonly port: number;
  /** Stops accepting, ends every session (open uploads are kept for reput), resolves when all are gone. */
  close(): Promise<void>;
}

/** The host key in OpenSSH format: read, or generated (Ed25519, mode 0600) on first start. */
export async function ensureHostKey(file: string): Promise<string> {
  try {
    const existing = await readFile(file, 'utf8');
    const parsed = utils.parseKey(existing);
    if (parsed instanceof Error) throw new Error(`the SFTP host key ${file} is not usable (${parsed.message}): replace or remove it`);
    return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // ssh2 1.17's generator writes a key its own parser refuses about once in 200 ("Malformed OpenSSH private
  // key", measured 10 in 2,000): keep the first one that parses.
  let pair = utils.generateKeyPairSync('ed25519', { comment: 'bxchange sftp host key' });
  for (let attempt = 0; attempt < 20 && utils.parseKey(pair.private) instanceof Error; attempt++) {
    pair = utils.generateKeyPairSync('ed25519', { comment: 'bxchange sftp host key' });
  }
  if (utils.parseKey(pair.private) instanceof Error) throw new Error('could not generate a usable SFTP host key');
  await mkdir(path.dirname(file), { recursive: true });
  try {
    await writeFile(file, pair.private, { mode: 0o600, flag: 'wx' });
    await writeFile(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
  } catch (err) {
    // Another node or process generated it meanwhile: use that one.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFile(file, 'utf8');
    throw err;
  }
  return pair.private;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The `ls -l` line OpenSSH shows for an entry. */
function longname(entry: Entry): string {
  const { mode, size, mtime } = entry.attrs;
  const bits = ['r', 'w', 'x'];
  let perms = (mode & 0o170000) === 0o040000 ? 'd' : '-';
  for (let i = 8; i >= 0; i--) perms += mode & (1 << i) ? bits[(8 - i) % 3] : '-';
  const date = `${MONTHS[mtime.getUTCMonth()]} ${String(mtime.getUTCDate()).padStart(2, ' ')} ${String(mtime.getUTCHours()).padStart(2, '0')}:${String(mtime.getUTCMinutes()).padStart(2, '0')}`;
  return `${perms}    1 bxchange bxchange ${String(size).padStart(12, ' ')} ${date} ${entry.name}`;
}

const sftpAttrs = (a: Attrs) => {
  const seconds = Math.floor(a.mtime.getTime() / 1000);
  return { mode: a.mode, uid: 0, gid: 0, size: a.size, atime: seconds, mtime: seconds };
};

type Handle =
  | { kind: 'dir'; entries: AsyncIterator<Entry>; attrs: Attrs }
  | { kind: 'read'; reader: ReadHandle; queue: Promise<unknown>; waiting: number }
  | { kind: 'write'; writer: WriteHandle; written: number };

const CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'] as const;
const READDIR_BATCH = 64;
const CALLER_TTL_MS = 5_000;

export async function startSftpServer(config: SftpConfig, deps: SftpServerDeps): Promise<SftpServer> {
  const hostKey = await ensureHostKey(config.hostKeyFile);
  const gateway: Gateway = createGateway({ ...deps, sendFolders: createSendFolders(deps.sendFolderRepository) });
  const { log, sshKeys } = deps;
  const sessionsByPrincipal = new Map<string, number>();
  const connections = new Set<Connection>();
  const ended = new Set<Promise<void>>();

  const server = new Server(
    { hostKeys: [hostKey], algorithms: { cipher: [...CIPHERS] }, ident: 'bxchange' },
    (client) => {
      connections.add(client);
      // Nagle would hold each small STATUS reply back until the client's previous segment is acknowledged
      // (delayed ACK, up to 40 ms): the client's window of WRITEs drains. Measured with a bare ssh2 server,
      // 256 MiB put: 36 MB/s without, 135–208 MB/s with.
      (client as Connection & { setNoDelay(noDelay: boolean): void }).setNoDelay(true);
      const sessionId = randomBytes(8).toString('hex');
      let caller: Caller | null = null;
      let refreshedAt = 0;
      let counted = false;
      const handles = new Map<number, Handle>();
      let nextHandle = 1;
      // Idle timeout: a timestamp per request (no timer re-armed for every 32 KiB WRITE), checked periodically.
      let lastActivity = Date.now();
      const touch = () => {
        lastActivity = Date.now();
      };
      const idle = setInterval(() => {
        if (Date.now() - lastActivity < config.idleTimeoutMs) return;
        log.info({ sessionId, principal: caller?.type === 'principal' ? caller.principal.name : undefined }, 'sftp session idle: closed');
        client.end();
      }, Math.max(1000, Math.floor(config.idleTimeoutMs / 10)));
      idle.unref();

      let finished!: () => void;
      const done = new Promise<void>((resolve) => (finished = resolve));
      ended.add(done);
      client.on('error', (err) => log.warn({ sessionId, err: { message: err.message } }, 'sftp connection error'));
      client.on('close', () => {
        clearInterval(idle);
        connections.delete(client);
        if (counted && caller?.type === 'principal') {
          const id = caller.principal.id;
          sessionsByPrincipal.set(id, (sessionsByPrincipal.get(id) ?? 1) - 1);
          if (sessionsByPrincipal.get(id)! <= 0) sessionsByPrincipal.delete(id);
        }
        // Uploads cut short keep what the store received, for reput; readers are released.
        const pending: Promise<void>[] = [];
        for (const handle of handles.values()) {
          if (handle.kind === 'write') pending.push(handle.writer.detach().catch(() => undefined));
          if (handle.kind === 'read') handle.reader.close();
        }
        handles.clear();
        void Promise.all(pending).then(() => {
          ended.delete(done);
          finished();
        });
      });

      client.on('authentication', (ctx: AuthContext) => {
        if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
        const { key, signature, blob, hashAlgo } = ctx;
        sshKeys.authenticate(ctx.username, key.algo, key.data).then(
          (found) => {
            if (found === null) return ctx.reject(['publickey']);
            if (signature === undefined || blob === undefined) return ctx.accept(); // the client asks whether the key would do
            const parsed = utils.parseKey(`${key.algo} ${key.data.toString('base64')}`);
            if (parsed instanceof Error || parsed.verify(blob, signature, hashAlgo) !== true) return ctx.reject(['publickey']);
            caller = { ...found, via: { door: 'sftp', traceId: sessionId } };
            refreshedAt = Date.now();
            ctx.accept();
          },
          (err: unknown) => {
            log.error({ sessionId, err }, 'sftp authentication failed');
            ctx.reject(['publickey']);
          },
        );
      });

      client.on('ready', () => {
        if (caller?.type !== 'principal') return client.end();
        const id = caller.principal.id;
        const count = sessionsByPrincipal.get(id) ?? 0;
        if (count >= config.maxSessionsPerPrincipal) {
          log.warn({ sessionId, principal: caller.principal.name, limit: config.maxSessionsPerPrincipal }, 'sftp session refused: too many sessions');
          return client.end();
        }
        sessionsByPrincipal.set(id, count + 1);
        counted = true;
        log.info({ sessionId, principal: caller.principal.name }, 'sftp session');
        client.on('session', (acceptSession) => {
          const session = acceptSession();
          session.on('sftp', (acceptSftp) => serve(acceptSftp()));
          // Only SFTP: no shell, no exec, no forwarding.
          session.on('pty', (_accept, reject) => reject?.());
          session.on('shell', (_accept, reject) => reject?.());
          session.on('exec', (_accept, reject) => reject?.());
        });
      });

      /** The caller as it is now: memberships and deactivation apply within CALLER_TTL_MS. */
      async function current(): Promise<Caller> {
        if (caller?.type !== 'principal') throw unsupported('An unauthenticated request');
        if (Date.now() - refreshedAt > CALLER_TTL_MS) {
          const principal = await sshKeys.refresh(caller.principal.id);
          if (principal === null) {
            log.info({ sessionId, principal: caller.principal.name }, 'sftp session ended: principal deactivated');
            client.end();
            throw unsupported('A deactivated principal');
          }
          caller = { ...caller, principal };
          refreshedAt = Date.now();
        }
        return caller;
      }

      function serve(sftp: SFTPWrapper): void {
        // Trap: end our side when the client ends, or OpenSSH's sftp waits forever at exit.
        sftp.on('end', () => sftp.end());
        coalesceReplies(sftp, (client as unknown as { _sock?: { cork(): void; uncork(): void } })._sock);
        sftp.on('error', (err: Error) => log.warn({ sessionId, err: { message: err.message } }, 'sftp channel error'));

        const fail = (reqid: number, err: unknown) => {
          const { status, message, internal } = statusOf(err);
          if (internal) log.error({ sessionId, err }, 'sftp request failed');
          sftp.status(reqid, status, message);
        };
        const run = (reqid: number, work: () => Promise<void>) => {
          touch();
          work().catch((err: unknown) => fail(reqid, err));
        };
        const newHandle = (handle: Handle): Buffer => {
          const id = nextHandle++;
          handles.set(id, handle);
          const buffer = Buffer.alloc(4);
          buffer.writeUInt32BE(id);
          return buffer;
        };
        const handleOf = (buffer: Buffer): [number, Handle | undefined] => {
          const id = buffer.length === 4 ? buffer.readUInt32BE(0) : -1;
          return [id, handles.get(id)];
        };

        sftp.on('REALPATH', (reqid, raw) =>
          run(reqid, async () => {
            const resolved = normalize(raw);
            sftp.name(reqid, [{ filename: resolved, longname: resolved, attrs: sftpAttrs({ mode: 0o040500, size: 0, mtime: new Date(0) }) }]);
          }),
        );
        const stat = (reqid: number, raw: string) => run(reqid, async () => sftp.attrs(reqid, sftpAttrs(await gateway.stat(await current(), raw))));
        sftp.on('STAT', stat);
        sftp.on('LSTAT', stat);
        sftp.on('FSTAT', (reqid, buffer) =>
          run(reqid, async () => {
            const [, handle] = handleOf(buffer);
            if (handle === undefined) return sftp.status(reqid, STATUS.FAILURE, 'Invalid handle');
            if (handle.kind === 'dir') return sftp.attrs(reqid, sftpAttrs(handle.attrs));
            const size = handle.kind === 'read' ? handle.reader.size : handle.written;
            sftp.attrs(reqid, sftpAttrs({ mode: handle.kind === 'read' ? 0o100400 : 0o100600, size, mtime: new Date() }));
          }),
        );
        // Modes and times are not kept (the store's are authoritative); answering OK lets `put -p` and `get -p` work.
        sftp.on('SETSTAT', (reqid, raw) => run(reqid, async () => void (await gateway.stat(await current(), raw), sftp.status(reqid, STATUS.OK))));
        sftp.on('FSETSTAT', (reqid, buffer) =>
          run(reqid, async () => {
            const [, handle] = handleOf(buffer);
            sftp.status(reqid, handle === undefined ? STATUS.FAILURE : STATUS.OK);
          }),
        );

        sftp.on('OPENDIR', (reqid, raw) =>
          run(reqid, async () => {
            const who = await current();
            const attrs = await gateway.stat(who, raw);
            const entries = await gateway.list(who, raw);
            sftp.handle(reqid, newHandle({ kind: 'dir', entries: entries[Symbol.asyncIterator](), attrs }));
          }),
        );
        sftp.on('READDIR', (reqid, buffer) =>
          run(reqid, async () => {
            const [, handle] = handleOf(buffer);
            if (handle?.kind !== 'dir') return sftp.status(reqid, STATUS.FAILURE, 'Invalid handle');
            const batch: Entry[] = [];
            while (batch.length < READDIR_BATCH) {
              const next = await handle.entries.next();
              if (next.done === true) break;
              batch.push(next.value);
            }
            if (batch.length === 0) return sftp.status(reqid, STATUS.EOF);
            sftp.name(reqid, batch.map((e) => ({ filename: e.name, longname: longname(e), attrs: sftpAttrs(e.attrs) })));
          }),
        );

        sftp.on('OPEN', (reqid, raw, flags) =>
          run(reqid, async () => {
            const who = await current();
            if ((flags & OPEN.WRITE) !== 0) {
              const writer = await gateway.openWrite(who, raw, flags);
              sftp.handle(reqid, newHandle({ kind: 'write', writer, written: 0 }));
            } else {
              const reader = await gateway.openRead(who, raw);
              sftp.handle(reqid, newHandle({ kind: 'read', reader, queue: Promise.resolve(), waiting: 0 }));
            }
          }),
        );
        sftp.on('READ', (reqid, buffer, offset, length) => {
          touch();
          const [, handle] = handleOf(buffer);
          if (handle?.kind !== 'read') return sftp.status(reqid, STATUS.FAILURE, 'Invalid handle');
          // READs of one handle are answered in order from one sequential stream; at once when the bytes are there.
          if (handle.waiting === 0) {
            const now = handle.reader.readNow(offset, length);
            if (now !== undefined) return void (now === null ? sftp.status(reqid, STATUS.EOF) : sftp.data(reqid, now));
          }
          handle.waiting++;
          handle.queue = handle.queue.then(() =>
            handle.reader.read(offset, length).then(
              (data) => (data === null ? sftp.status(reqid, STATUS.EOF) : sftp.data(reqid, data)),
              (err: unknown) => fail(reqid, err),
            ).finally(() => handle.waiting--),
          );
        });
        sftp.on('WRITE', (reqid, buffer, offset, data) => {
          touch();
          const [, handle] = handleOf(buffer);
          if (handle?.kind !== 'write') return sftp.status(reqid, STATUS.FAILURE, 'Invalid handle');
          handle.written = Math.max(handle.written, offset + data.length);
          // Called synchronously, so the gateway sees WRITEs in the order they arrived.
          handle.writer.write(offset, data).then(
            () => sftp.status(reqid, STATUS.OK),
            (err: unknown) => fail(reqid, err),
          );
        });
        sftp.on('CLOSE', (reqid, buffer) =>
          run(reqid, async () => {
            const [id, handle] = handleOf(buffer);
            if (handle === undefined) return sftp.status(reqid, STATUS.FAILURE, 'Invalid handle');
            handles.delete(id);
            if (handle.kind === 'read') {
              await handle.queue;
              handle.reader.close();
            }
            if (handle.kind === 'write') await handle.writer.close();
            sftp.status(reqid, STATUS.OK);
          }),
        );

        sftp.on('MKDIR', (reqid, raw) => run(reqid, async () => void (await gateway.mkdir(await current(), raw), sftp.status(reqid, STATUS.OK))));
        sftp.on('RMDIR', (reqid, raw) => run(reqid, async () => void (await gateway.rmdir(await current(), raw), sftp.status(reqid, STATUS.OK))));
        sftp.on('REMOVE', (reqid, raw) => run(reqid, async () => void (await gateway.remove(await current(), raw), sftp.status(reqid, STATUS.OK))));
        sftp.on('RENAME', (reqid, from, to) => run(reqid, async () => void (await gateway.rename(await current(), from, to), sftp.status(reqid, STATUS.OK))));
        sftp.on('READLINK', (reqid) => run(reqid, async () => fail(reqid, unsupported('Reading links'))));
        sftp.on('SYMLINK', (reqid) => run(reqid, async () => fail(reqid, unsupported('Making links'))));
        sftp.on('EXTENDED', (reqid, name) => run(reqid, async () => fail(reqid, unsupported(`The ${String(name)} extension`))));
      }
    },
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  server.on('error', (err: Error) => log.error({ err }, 'sftp server error'));
  log.info({ host: config.host, port }, 'sftp door listening');
  return {
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const client of connections) client.end();
      });
      await Promise.all([...ended]);
    },
  };
}

/** The door's dependencies taken from the composed services (main.ts, tests, bench). */
export function sftpDeps(services: import('../services.ts').Services, log: SftpLogger): SftpServerDeps {
  return {
    envelopes: services.envelopes,
    uploadStore: services.uploadStore,
    blobStore: services.blobStore,
    sshKeys: services.sshKeys,
    sendFolderRepository: services.sendFolderRepository,
    maxUploadBytes: services.config.maxUploadBytes,
    bodyLimit: services.config.bodyLimit,
    now: () => services.clock.now(),
    log,
  };
}
