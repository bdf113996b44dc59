/**
 * Coalesces the SFTP channel's outgoing bytes into full SSH packets.
 *
 * ssh2 sends every SFTP reply as its own SSH CHANNEL_DATA packet: a 28-byte
 * STATUS for each 32 KiB WRITE of a put, and for a get each 32 KiB DATA reply
 * (13-byte header + 32,768 bytes) split in two packets, because OpenSSH's
 * maximum packet size is 32,768. Without ssh2's optional native binding (not
 * built here: `allowScripts` keeps ssh2's install script off) each packet costs
 * a new AES-GCM cipher object, an allocation and a socket write: in the CPU
 * profile of a put, STATUS replies took ~27% of the main thread.
 *
 * SFTP is a byte stream inside the channel, so replies may share packets:
 * this wraps the channel's view of the connection (`sftp._protocol`) so that
 * `channelData` only queues bytes; full packets (the peer's maximum packet
 * size) go out at once, the remainder at the end of the current I/O phase
 * (setImmediate), when typically dozens of replies are queued. Any other
 * message the channel sends (EOF, close, window adjust) first flushes what is
 * queued, so the order on the wire is unchanged. Flow control is untouched:
 * ssh2 has already counted the bytes against the peer's window before
 * `channelData` is called.
 */
import type { SFTPWrapper } from 'ssh2';

interface ChannelProtocol {
  channelData(chan: number, data: Buffer): void;
}

interface SftpInternals {
  _protocol: ChannelProtocol;
  outgoing: { id: number; packetSize: number; state: string };
}

/** Bytes queued before a flush is forced within the I/O phase (bounded anyway by the peer's window, 2 MiB for OpenSSH). */
const FLUSH_AT = 1024 * 1024;

/**
 * `socket` (the connection's TCP socket, when reachable) is corked while a batch
 * is sent: ssh2's JavaScript AES-GCM writes each packet in three pieces (length,
 * ciphertext, tag), each its own send(2) with TCP_NODELAY; corked, a batch of
 * packets leaves in one writev.
 */
export function coalesceReplies(sftp: SFTPWrapper, socket?: { cork(): void; uncork(): void }): void {
  const channel = sftp as unknown as SftpInternals;
  const real = channel._protocol;
  if (typeof real?.channelData !== 'function' || typeof channel.outgoing?.packetSize !== 'number') return; // not the ssh2 we know
  let chunks: Buffer[] = [];
  let queued = 0;
  let scheduled = false;

  /** Sends the first `n` queued bytes as one packet. */
  const send = (n: number): void => {
    const first = chunks[0]!;
    let packet: Buffer;
    if (first.length === n) {
      packet = first;
      chunks.shift();
    } else if (first.length > n) {
      packet = first.subarray(0, n);
      chunks[0] = first.subarray(n);
    } else {
      packet = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = chunks[0]!;
        const take = Math.min(chunk.length, n - filled);
        packet.set(take === chunk.length ? chunk : chunk.subarray(0, take), filled);
        filled += take;
        if (take === chunk.length) chunks.shift();
        else chunks[0] = chunk.subarray(take);
      }
    }
    queued -= n;
    real.channelData(channel.outgoing.id, packet);
  };

  const flush = (): void => {
    if (queued === 0) return;
    if (channel.outgoing.state !== 'open') {
      chunks = [];
      queued = 0;
      return;
    }
    const max = channel.outgoing.packetSize;
    socket?.cork();
    try {
      while (queued > 0) send(Math.min(queued, max));
    } finally {
      socket?.uncork();
    }
  };

  const onImmediate = (): void => {
    scheduled = false;
    flush();
  };

  const channelData = (chan: number, data: Buffer): void => {
    if (chan !== channel.outgoing.id || !Buffer.isBuffer(data)) {
      flush();
      return real.channelData(chan, data);
    }
    chunks.push(data);
    queued += data.length;
    if (queued >= FLUSH_AT) return flush();
    if (!scheduled) {
      scheduled = true;
      setImmediate(onImmediate);
    }
  };

  channel._protocol = new Proxy(real as object, {
    get(target, property) {
      if (property === 'channelData') return channelData;
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        flush();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
    set(target, property, value) {
      return Reflect.set(target, property, value, target);
    },
  }) as ChannelProtocol;
}
