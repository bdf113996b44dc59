/**
 * sftp: put and get of one 1 GiB random file with the real OpenSSH `sftp`
 * client (batch mode, aes128-gcm on both sides) into and out of the bxchange
 * SFTP door — a send folder of a draft, embedded default (PGlite + local
 * folder), resumable SHA-256, fsync — versus OpenSSH's own sshd with
 * internal-sftp writing to a local folder, on another 127.0.0.1 port, in the
 * same run. Each server is its own process; runs alternate bxchange put,
 * sshd put, bxchange get, sshd get. The time is the whole `sftp -b` process
 * (the handshake, ~0.1 s, is the same for both).
 * Goal (issue #8): put ≥ 0.7× and get ≥ 0.9× sshd.
 *
 * Needs /usr/sbin/sshd (as root: apt-get install -y openssh-server), run as
 * root (sshd switches to the connecting user; the bench logs in as itself).
 * Environment: BENCH_SFTP_BYTES (default 1G; e.g. 64M for a smoke run),
 * BENCH_RUNS (default 3), BENCH_QUIET_TIMEOUT_S (default 90).
 * Only 1 GiB with ≥ 3 runs is a reference run.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  BENCH_DIR,
  GiB,
  api,
  bxchangeNodeArgs,
  candidateResult,
  envInt,
  formatBytes,
  machineInfo,
  onCleanup,
  packageVersion,
  parseBytes,
  processCpuSeconds,
  publishBenchKeysHttp,
  randomFile,
  ratioResult,
  sleep,
  spawnJson,
  syncDisks,
  waitForQuiet,
  type BenchResult,
  type JsonChild,
  EMBEDDED_DEFAULT_ENV,
} from './lib.ts';

export const title = 'SFTP put/get throughput (1 GiB, OpenSSH sftp client) vs OpenSSH sshd internal-sftp';

const SSHD = '/usr/sbin/sshd';
const SFTP = '/usr/bin/sftp';
const CIPHER = 'aes128-gcm@openssh.com';
const exec = promisify(execFile);

export function skipReason(): string | undefined {
  if (!existsSync(SFTP)) return `${SFTP} is not installed (apt-get install openssh-client)`;
  if (!existsSync(SSHD)) return `${SSHD} is not installed: as root, apt-get update && apt-get install -y openssh-server`;
  if (process.getuid?.() !== 0) return 'the sshd baseline must be started as root (it switches to the connecting user)';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** One `sftp -b` run; resolves with its wall time (s) and the server's CPU seconds meanwhile. */
async function sftpRun(port: number, user: string, keyFile: string, commands: string[], cwd: string, serverPid: number): Promise<{ seconds: number; serverCpu: number }> {
  const args = ['-b', '-', '-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-o', `Ciphers=${CIPHER}`, '-i', keyFile, '-P', String(port), `${user}@127.0.0.1`];
  const cpu0 = processCpuSeconds(serverPid);
  const t0 = performance.now();
  const child = spawn(SFTP, args, { cwd, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(`${commands.join('\n')}\n`);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`sftp ${commands.join('; ')} failed (${code}): ${stderr.trim()}`);
  return { seconds, serverCpu: processCpuSeconds(serverPid) - cpu0 };
}

interface Side {
  name: string;
  description: string;
  port: number;
  pid: number;
  user: string;
  /** Remote path of run i's file. */
  remote(i: number): string;
  put: { mbps: number[]; cpu: number[] };
  get: { mbps: number[]; cpu: number[] };
}

export async function run(): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const bytes = process.env.BENCH_SFTP_BYTES ? parseBytes(process.env.BENCH_SFTP_BYTES) : GiB;
  const runs = envInt('BENCH_RUNS', 3);
  const quietTimeoutS = envInt('BENCH_QUIET_TIMEOUT_S', 90, 0);
  const reference = bytes === GiB && runs >= 3;
  const tmp = os.tmpdir();
  const fs = await statfs(tmp);
  const need = (runs + 3) * bytes + GiB;
  if (fs.bavail * fs.bsize < need) throw new Error(`sftp: ${tmp} has ${formatBytes(fs.bavail * fs.bsize)} free, the benchmark needs ${formatBytes(need)}`);
  const work = await mkdtemp(path.join(tmp, 'bxchange-bench-sftp-'));
  const forget = onCleanup(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  const children: JsonChild[] = [];
  let sshd: ReturnType<typeof spawn> | undefined;
  try {
    console.log(`sftp: ${formatBytes(bytes)} × ${runs} runs per side, work dir ${work}`);
    await randomFile(path.join(work, 'source.bin'), bytes);
    const keyFile = path.join(work, 'client_ed25519');
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const publicKey = (await readFile(`${keyFile}.pub`, 'utf8')).trim();

    // --- bxchange: embedded default, the SFTP door, a principal with the key, a draft's send folder
    const bxDir = path.join(work, 'bxchange');
    await mkdir(bxDir);
    const adminToken = `bxc_bench_admin_${randomBytes(24).toString('hex')}`;
    const bx = spawnJson(path.join(BENCH_DIR, 'sftp-server.ts'), [], {
      BXCHANGE_DATA_DIR: bxDir,
      BXCHANGE_CERTS_DIR: path.join(bxDir, 'certs'),
      BXCHANGE_ADMIN_TOKEN: adminToken,
      BXCHANGE_MAX_UPLOAD_BYTES: String(Math.max(2 * GiB, 2 * bytes)),
      LOG_LEVEL: 'warn',
      SFTP_PORT: '0',
      ...EMBEDDED_DEFAULT_ENV,
    }, bxchangeNodeArgs());
    children.push(bx);
    const ready = await bx.next((m) => m.ready === true, 120_000);
    const base = `http://127.0.0.1:${ready.port}`;
    const call = (method: string, url: string, body?: unknown) => api(base, adminToken, method, url, body);
    await call('POST', '/entities', { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
    await call('POST', '/entities', { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
    await call('POST', '/entities/ixelles/mailboxes', { name: 'secretariat' });
    await call('POST', '/entities/uccle/mailboxes', { name: 'secretariat' });
    await publishBenchKeysHttp(base, adminToken, ['secretariat@ixelles', 'secretariat@uccle']);
    const principal = await call('POST', '/principals', { name: 'bench-backoffice', kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
    await call('POST', `/principals/${principal.id}/ssh-keys`, { publicKey });
    await writeFile(path.join(work, 'envelope.json'), JSON.stringify({ type: 'general.letter', to: ['secretariat@uccle'], metadata: { subject: 'sftp benchmark' } }));
    const folder = '/secretariat@ixelles/send/bench';
    await sftpRun(ready.sftpPort, 'bench-backoffice', keyFile, [`mkdir ${folder}`, `put envelope.json ${folder}/envelope.json`], work, bx.pid);

    // --- OpenSSH sshd with internal-sftp, on another port, files in a local folder
    const sshdDir = path.join(work, 'sshd');
    const sshdFiles = path.join(work, 'sshd-files');
    await mkdir(sshdDir);
    await mkdir(sshdFiles);
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(sshdDir, 'host_ed25519')]);
    await writeFile(path.join(sshdDir, 'authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
    const sshdPort = await freePort();
    const user = os.userInfo().username;
    await writeFile(
      path.join(sshdDir, 'sshd_config'),
      [
        `Port ${sshdPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(sshdDir, 'host_ed25519')}`,
        `AuthorizedKeysFile ${path.join(sshdDir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        `PidFile ${path.join(sshdDir, 'sshd.pid')}`,
        `Ciphers ${CIPHER}`,
        'Subsystem sftp internal-sftp',
        'ForceCommand internal-sftp',
        '',
      ].join('\n'),
    );
    await mkdir('/run/sshd', { recursive: true }); // privilege separation directory
    sshd = spawn(SSHD, ['-D', '-e', '-f', path.join(sshdDir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let sshdErr = '';
    sshd.stderr!.on('data', (d: Buffer) => (sshdErr += d.toString()));
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((resolve) => net.connect(sshdPort, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); resolve(true); }).once('error', () => resolve(false)));
      if (up) break;
      if (sshd.exitCode !== null) throw new Error(`sshd exited: ${sshdErr}`);
      await sleep(100);
    }

    const sides: Side[] = [
      { name: 'bxchange', description: 'bxchange SFTP door (ssh2): a draft\'s send folder, upload store + resumable SHA-256 + PGlite, fsync', port: ready.sftpPort, pid: bx.pid, user: 'bench-backoffice', remote: (i) => `${folder}/run-${i}.bin`, put: { mbps: [], cpu: [] }, get: { mbps: [], cpu: [] } },
      { name: 'openssh-sshd', description: `OpenSSH sshd internal-sftp to a local folder (${CIPHER})`, port: sshdPort, pid: sshd.pid!, user, remote: (i) => path.join(sshdFiles, `run-${i}.bin`), put: { mbps: [], cpu: [] }, get: { mbps: [], cpu: [] } },
    ];
    const mb = bytes / 1e6;
    for (let i = 1; i <= runs; i++) {
      for (const op of ['put', 'get'] as const) {
        for (const side of sides) {
          if (quietTimeoutS > 0) await waitForQuiet({ timeoutMs: quietTimeoutS * 1000 });
          // sshd forks a process per session: its CPU is not on the listener's pid, so only bxchange's is reported.
          const local = path.join(work, `got-${side.name}.bin`);
          const command = op === 'put' ? `put source.bin ${side.remote(i)}` : `get ${side.remote(i)} ${local}`;
          const { seconds, serverCpu } = await sftpRun(side.port, side.user, keyFile, [command], work, side.pid);
          side[op].mbps.push(mb / seconds);
          side[op].cpu.push(serverCpu);
          console.log(`sftp: run ${i} ${op} ${side.name}: ${(mb / seconds).toFixed(1)} MB/s (${seconds.toFixed(2)} s)`);
          if (op === 'get') await rm(local, { force: true });
          if (op === 'get' && side.name === 'openssh-sshd') await rm(side.remote(i), { force: true });
          syncDisks();
          await sleep(1000);
        }
      }
    }
    const [bxSide, sshSide] = sides as [Side, Side];
    const candidates = [
      candidateResult('bxchange put', 'candidate', bxSide.description, bxSide.put.mbps, { serverCpuSeconds: { unit: 's', runs: bxSide.put.cpu } }),
      candidateResult('sshd put', 'baseline', sshSide.description, sshSide.put.mbps),
      candidateResult('bxchange get', 'candidate', bxSide.description, bxSide.get.mbps, { serverCpuSeconds: { unit: 's', runs: bxSide.get.cpu } }),
      candidateResult('sshd get', 'baseline', sshSide.description, sshSide.get.mbps),
    ];
    const [bxPut, sshPut, bxGet, sshGet] = candidates as [typeof candidates[0], typeof candidates[0], typeof candidates[0], typeof candidates[0]];
    return {
      name: 'sftp',
      title,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      unit: 'MB/s',
      higherIsBetter: true,
      reference,
      params: { bytes, runs, cipher: CIPHER, ssh2: packageVersion('ssh2'), openssh: (await exec('ssh', ['-V']).then((r) => r.stderr.trim(), () => 'unknown')) },
      candidates,
      ratios: [ratioResult('put: bxchange / sshd', bxPut, sshPut, true, 0.7), ratioResult('get: bxchange / sshd', bxGet, sshGet, true, 0.9)],
      notes: [
        'bxchange put: ssh2 decrypts in OpenSSL (AES-GCM) but parses SFTP packets and answers each 32 KiB WRITE in JavaScript; the bytes are copied into 1 MiB blocks, hashed as they pass (SHA-256 in a worker thread, fed through a shared ring), written with one writev per block (LocalUploadStore) and fsynced at CLOSE; sshd writes straight to the page cache.',
        'bxchange get: one stream from the blob store per handle, 32 KiB DATA answers built by ssh2 in JavaScript; sshd uses sendfile-like read loops in C.',
        'The get reads a complete file of a draft (the sender reads its own draft): the same domain download path (prepareDownload, audit entry) as an inbox file.',
        `Server CPU: bxchange's process only (sshd forks one process per session). Medians of ${runs} runs, alternated.`,
      ],
    };
  } finally {
    for (const child of children) await child.stop().catch(() => undefined);
    if (sshd !== undefined && sshd.exitCode === null) {
      sshd.kill('SIGTERM');
      await new Promise((resolve) => sshd!.once('exit', resolve));
    }
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    forget();
  }
}

