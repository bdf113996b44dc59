/**
 * Worker thread that runs the resumable SHA-256 (hash-wasm) of uploads, so
 * hashing — the costliest step of an upload in the CPU profile, ~2.6 s per
 * GiB in WebAssembly — runs beside the event loop instead of on it.
 *
 * Protocol (messages are processed in order, per worker):
 *   {op:'open', session, state|null}        start a hasher, from a saved state or empty
 *   {op:'update', session, data}            feed bytes (the buffer is transferred); answered {op:'ack', session, bytes}
 *   {op:'save', session, ticket}            answered {op:'saved', ticket, state} (the state after every byte fed so far)
 *   {op:'close', session}                   forget the hasher
 */
import { parentPort } from 'node:worker_threads';
import { createSHA256, type IHasher } from 'hash-wasm';

type Message =
  | { op: 'open'; session: number; state: Uint8Array | null }
  | { op: 'update'; session: number; data: Uint8Array }
  | { op: 'save'; session: number; ticket: number }
  | { op: 'close'; session: number };

const hashers = new Map<number, IHasher>();
const opening = new Map<number, Promise<IHasher>>();

async function hasherOf(session: number): Promise<IHasher> {
  const ready = hashers.get(session);
  if (ready !== undefined) return ready;
  const pending = opening.get(session);
  if (pending === undefined) throw new Error(`unknown hash session ${session}`);
  return pending;
}

// Messages are handled strictly in order, even while a hasher is being created.
let queue: Promise<void> = Promise.resolve();

parentPort!.on('message', (message: Message) => {
  queue = queue.then(async () => {
    switch (message.op) {
      case 'open': {
        const created = createSHA256().then((hasher) => {
          hasher.init();
          if (message.state !== null) hasher.load(message.state);
          hashers.set(message.session, hasher);
          opening.delete(message.session);
          return hasher;
        });
        opening.set(message.session, created);
        await created;
        break;
      }
      case 'update': {
        (await hasherOf(message.session)).update(message.data);
        parentPort!.postMessage({ op: 'ack', session: message.session, bytes: message.data.byteLength });
        break;
      }
      case 'save': {
        const state = (await hasherOf(message.session)).save();
        parentPort!.postMessage({ op: 'saved', ticket: message.ticket, state }, [state.buffer as ArrayBuffer]);
        break;
      }
      case 'close':
        hashers.delete(message.session);
        break;
    }
  });
});
