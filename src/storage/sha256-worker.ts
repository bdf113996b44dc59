/**
 * The worker thread behind Sha256Thread (sha256-thread.ts): it owns every
 * running SHA-256 of its store, so hashing uploads costs the event loop only
 * a copy of each chunk into the shared ring. Order is guaranteed by the
 * single message port: a `data` message says which job each range of the
 * ring belongs to, and is answered with the ring position hashed up to.
 *
 * A job is one PATCH's hash. It keeps a copy of its state every `checkpoint`
 * bytes (`Hash.copy()`), so an interrupted PATCH can settle at an offset
 * below the bytes it saw. Between PATCHes a settled hash waits in `running`,
 * keyed by upload id.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { FromWorker, ToWorker } from './sha256-thread.ts';

interface State {
  hash: Hash;
  /** The hash covers the upload's bytes [0, offset). */
  offset: number;
}

interface Job extends State {
  /** True when the job cannot hash (its resumed state was missing, or no checkpoint fits): it answers null. */
  broken: boolean;
  checkpoints: State[];
  sinceCheckpoint: number;
}

const { checkpoint, ring } = workerData as { checkpoint: number; ring: Uint8Array };
const port = parentPort!;
const jobs = new Map<number, Job>();
const running = new Map<string, State>();

function send(message: FromWorker): void {
  port.postMessage(message);
}

function update(job: Job, bytes: Uint8Array): void {
  let position = 0;
  while (position < bytes.length) {
    const take = Math.min(bytes.length - position, checkpoint - job.sinceCheckpoint);
    job.hash.update(take === bytes.length ? bytes : bytes.subarray(position, position + take));
    position += take;
    job.offset += take;
    job.sinceCheckpoint += take;
    if (job.sinceCheckpoint === checkpoint) {
      job.checkpoints.push({ hash: job.hash.copy(), offset: job.offset });
      if (job.checkpoints.length > 4) job.checkpoints.shift();
      job.sinceCheckpoint = 0;
    }
  }
}

function start(resume: string | null, offset: number): Job {
  const state = resume === null ? (offset === 0 ? { hash: createHash('sha256'), offset } : undefined) : running.get(resume);
  if (resume !== null) running.delete(resume);
  if (state === undefined || state.offset !== offset) {
    return { hash: createHash('sha256'), offset, broken: true, checkpoints: [], sinceCheckpoint: 0 };
  }
  return { ...state, broken: false, checkpoints: [{ hash: state.hash.copy(), offset }], sinceCheckpoint: offset % checkpoint };
}

port.on('message', (message: ToWorker) => {
  switch (message.op) {
    case 'start':
      jobs.set(message.job, start(message.resume, message.offset));
      break;
    case 'data': {
      const { records } = message;
      for (let i = 0; i < records.length; i += 3) {
        const job = jobs.get(records[i]!);
        if (job !== undefined && !job.broken) update(job, ring.subarray(records[i + 1]!, records[i + 1]! + records[i + 2]!));
      }
      send({ op: 'consumed', end: message.end });
      break;
    }
    case 'settle': {
      // The state covering exactly [0, stored) or the last checkpoint below it (the caller catches up from there).
      const job = jobs.get(message.job);
      let offset: number | null = null;
      if (job !== undefined && !job.broken) {
        const base = job.offset === message.stored ? { hash: job.hash, offset: job.offset } : job.checkpoints.findLast((c) => c.offset <= message.stored);
        if (base === undefined) job.broken = true;
        else {
          Object.assign(job, { hash: base.hash, offset: base.offset, checkpoints: [], sinceCheckpoint: base.offset % checkpoint });
          offset = base.offset;
        }
      }
      send({ op: 'reply', seq: message.seq, value: offset });
      break;
    }
    case 'keep': {
      const job = jobs.get(message.job);
      jobs.delete(message.job);
      const kept = job !== undefined && !job.broken && job.offset === message.offset;
      if (kept) running.set(message.id, { hash: job.hash, offset: job.offset });
      send({ op: 'reply', seq: message.seq, value: kept ? job.offset : null });
      break;
    }
    case 'drop':
      jobs.delete(message.job);
      break;
    case 'forget':
      running.delete(message.id);
      break;
    case 'digest': {
      const state = running.get(message.id);
      running.delete(message.id);
      send({ op: 'reply', seq: message.seq, value: state !== undefined && state.offset === message.size ? state.hash.digest('hex') : null });
      break;
    }
  }
});
