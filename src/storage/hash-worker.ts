/**
 * Worker thread running the SHA-256 of uploads (node:crypto), so hashing —
 * ≈ 0.75 s of CPU per GiB on this machine kind, the largest cost bxchange
 * adds to an upload — runs on another core than the event loop. The main
 * side is hashing-store.ts (HashPool); it mirrors every offset below, so
 * this side never has to answer anything but digests.
 *
 * Protocol (messages are handled in order):
 *   {op:'open', id, fresh}             a PATCH begins: with `fresh`, a new hash (offset 0); either way keep a
 *                                      copy of the state at the current offset (the PATCH's first checkpoint)
 *   {op:'feed', id, buffer, length, checkpoint}
 *                                      hash buffer[0, length); with `checkpoint`, keep a copy of the state
 *                                      afterwards (the last 4); the buffer is sent back: {op:'free', id, buffer}
 *   {op:'rewind', id, to}              go back to the copy kept at offset `to`
 *   {op:'digest', id, ticket}          answer {op:'digest', ticket, hex} and forget the upload
 *   {op:'drop', id}                    forget the upload
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export type HashMessage =
  | { op: 'open'; id: string; fresh: boolean }
  | { op: 'feed'; id: string; buffer: ArrayBuffer; length: number; checkpoint: boolean }
  | { op: 'rewind'; id: string; to: number }
  | { op: 'digest'; id: string; ticket: number }
  | { op: 'drop'; id: string };

interface Running {
  hash: Hash;
  offset: number;
  checkpoints: Array<{ offset: number; hash: Hash }>;
}

const running = new Map<string, Running>();

/** Keeps a copy of the state at the current offset (the last 4; the main side mirrors the same rule). */
function keep(entry: Running): void {
  entry.checkpoints.push({ offset: entry.offset, hash: entry.hash.copy() });
  if (entry.checkpoints.length > 4) entry.checkpoints.shift();
}

parentPort!.on('message', (message: HashMessage) => {
  switch (message.op) {
    case 'open': {
      let entry = running.get(message.id);
      if (message.fresh || entry === undefined) {
        entry = { hash: createHash('sha256'), offset: 0, checkpoints: [] };
        running.set(message.id, entry);
      }
      keep(entry);
      break;
    }
    case 'feed': {
      const entry = running.get(message.id);
      if (entry !== undefined) {
        entry.hash.update(new Uint8Array(message.buffer, 0, message.length));
        entry.offset += message.length;
        if (message.checkpoint) keep(entry);
      }
      parentPort!.postMessage({ op: 'free', id: message.id, buffer: message.buffer }, [message.buffer]);
      break;
    }
    case 'rewind': {
      const entry = running.get(message.id);
      const base = entry?.checkpoints.find((c) => c.offset === message.to);
      if (entry === undefined || base === undefined) running.delete(message.id);
      else {
        entry.hash = base.hash.copy();
        entry.offset = base.offset;
        entry.checkpoints = entry.checkpoints.filter((c) => c.offset <= base.offset);
      }
      break;
    }
    case 'digest': {
      const entry = running.get(message.id);
      running.delete(message.id);
      parentPort!.postMessage({ op: 'digest', ticket: message.ticket, hex: entry?.hash.digest('hex') ?? null });
      break;
    }
    case 'drop':
      running.delete(message.id);
      break;
  }
});
