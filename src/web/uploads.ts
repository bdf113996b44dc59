/**
 * The upload queue of a draft: each chosen file is encrypted once into an
 * OPFS spool, then the spool is uploaded with tus-js-client in 8 MiB chunks.
 *
 * Resumption (DESIGN §4c): the queue's state (per file: spool name, plaintext
 * SHA-256, tus upload URL, phase) is kept in localStorage under the draft's
 * id, and tus's upload URL is saved as soon as the server created it. After a
 * reload the draft page finds the jobs again and continues from the same
 * spool (a HEAD asks the server for the offset); a file whose encryption was
 * interrupted has no complete spool and must be chosen again (nothing of it
 * was uploaded yet, so re-encrypting it is harmless).
 *
 * Files go one after the other: encryption and upload of a single file
 * already keep a core busy, and a sequential queue keeps memory flat.
 */
import * as tus from 'tus-js-client';
import { csrfHeader } from './api.ts';
import { removeSpool, spoolHandle } from './spool.ts';

export type JobState = 'new' | 'encrypting' | 'encrypted' | 'uploading' | 'paused' | 'done' | 'error' | 'needsFile';

export interface Job {
  id: string;
  name: string;
  /** Plaintext size. */
  size: number;
  role: string | null;
  state: JobState;
  spool: string;
  encrypted: number;
  cipherSize?: number;
  uploaded: number;
  plaintextSha256?: string;
  uploadUrl?: string;
  error?: string;
  /** True once this page instance resumed the job from a spool written before a reload. */
  resumedFromSpool?: boolean;
}

interface StoredDraft {
  envelopeId: string;
  type: string;
  from: string;
  createdAt: string;
  jobs: Job[];
}

const STORAGE_KEY = 'bx.drafts';
const CHUNK_SIZE = 8 * 1024 * 1024;

function loadAll(): Record<string, StoredDraft> {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? '{}') as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, StoredDraft>) : {};
  } catch {
    return {};
  }
}

function saveAll(all: Record<string, StoredDraft>): void {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(all));
}

/** Drafts this browser is preparing (for the "continue" list). */
export function pendingDrafts(): StoredDraft[] {
  return Object.values(loadAll()).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export function rememberDraft(envelopeId: string, type: string, from: string): void {
  const all = loadAll();
  all[envelopeId] ??= { envelopeId, type, from, createdAt: new Date().toISOString(), jobs: [] };
  saveAll(all);
}

/** Forgets a draft and removes its spool files (after submit or deletion). */
export async function forgetDraft(envelopeId: string): Promise<void> {
  const all = loadAll();
  const draft = all[envelopeId];
  delete all[envelopeId];
  saveAll(all);
  queues.get(envelopeId)?.stop();
  queues.delete(envelopeId);
  for (const job of draft?.jobs ?? []) await removeSpool('uploads', job.spool);
}

type Encrypt = (file: File, keys: string[], target: FileSystemFileHandle, onProgress: (bytes: number) => void) => Promise<{ plaintextSha256: string; size: number }>;

/** One queue per draft for the page's lifetime: it survives re-rendering the screen (a language switch). */
export class UploadQueue {
  readonly envelopeId: string;
  jobs: Job[];
  private files = new Map<string, File>();
  private listeners = new Set<() => void>();
  private current: tus.Upload | null = null;
  private running = false;
  private pausedByUser = false;
  private keys: string[] = [];
  private recovered = false;

  constructor(envelopeId: string) {
    this.envelopeId = envelopeId;
    const stored = loadAll()[envelopeId];
    this.jobs = (stored?.jobs ?? []).map((job) => ({ ...job }));
  }

  /** After a reload: which jobs can continue from their spool, which need their file again. */
  async recover(): Promise<void> {
    if (this.recovered) return;
    this.recovered = true;
    for (const job of this.jobs) {
      if (job.state === 'done' || job.state === 'new') continue;
      if (job.state === 'encrypting' || job.state === 'needsFile' || job.cipherSize === undefined) {
        job.state = this.files.has(job.id) ? 'new' : 'needsFile';
        continue;
      }
      const handle = await spoolHandle('uploads', job.spool, false);
      const spooled = handle === null ? null : await handle.getFile();
      if (spooled === null || spooled.size !== job.cipherSize) {
        job.state = 'needsFile';
        job.uploadUrl = undefined;
        job.uploaded = 0;
        continue;
      }
      job.resumedFromSpool = true;
      if (job.state === 'uploading' || job.state === 'error') job.state = 'paused';
    }
    this.persist();
    this.emit();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }

  private persist(): void {
    const all = loadAll();
    const draft = all[this.envelopeId];
    if (draft === undefined) return;
    draft.jobs = this.jobs.map(({ resumedFromSpool: _r, ...job }) => job);
    saveAll(all);
  }

  addFiles(files: File[], role: string | null): void {
    for (const file of files) {
      const id = crypto.randomUUID();
      this.files.set(id, file);
      this.jobs.push({ id, name: file.name, size: file.size, role, state: 'new', spool: `${this.envelopeId}-${id}.pgp`, encrypted: 0, uploaded: 0 });
    }
    this.persist();
    this.emit();
  }

  /** Gives the file of a job whose encryption was interrupted by a reload. */
  provideFile(jobId: string, file: File): void {
    const job = this.jobs.find((j) => j.id === jobId);
    if (job === undefined) return;
    this.files.set(jobId, file);
    Object.assign(job, { name: file.name, size: file.size, state: 'new', encrypted: 0, uploaded: 0, cipherSize: undefined, uploadUrl: undefined, error: undefined });
    this.persist();
    this.emit();
  }

  setRole(jobId: string, role: string | null): void {
    const job = this.jobs.find((j) => j.id === jobId);
    if (job === undefined || job.uploadUrl !== undefined) return;
    job.role = role;
    this.persist();
  }

  async remove(jobId: string): Promise<void> {
    const job = this.jobs.find((j) => j.id === jobId);
    if (job === undefined) return;
    if (this.running && (job.state === 'uploading' || job.state === 'encrypting')) await this.pause();
    this.jobs = this.jobs.filter((j) => j.id !== jobId);
    this.files.delete(jobId);
    this.persist();
    if (job.uploadUrl !== undefined && job.state !== 'done') {
      await tus.Upload.terminate(job.uploadUrl, { headers: csrfHeader() }).catch(() => {});
    }
    await removeSpool('uploads', job.spool);
    this.emit();
  }

  get pending(): boolean {
    return this.jobs.some((j) => j.state !== 'done');
  }

  get isRunning(): boolean {
    return this.running;
  }

  get isPaused(): boolean {
    return this.pausedByUser;
  }

  /** Overall progress: uploaded ciphertext bytes over all ciphertext bytes (plaintext size until encrypted). */
  progress(): { done: number; total: number } {
    let done = 0;
    let total = 0;
    for (const job of this.jobs) {
      const size = job.cipherSize ?? job.size;
      total += size;
      done += job.state === 'done' ? size : job.uploaded;
    }
    return { done, total };
  }

  /** Runs the queue until every job is done, paused or failed. */
  async start(keys: string[], encrypt: Encrypt): Promise<void> {
    this.keys = keys;
    this.pausedByUser = false;
    if (this.running) return;
    this.running = true;
    this.emit();
    try {
      for (;;) {
        const job = this.jobs.find((j) => j.state === 'new' || j.state === 'encrypted' || j.state === 'paused' || (j.state === 'error' && j.cipherSize !== undefined));
        if (job === undefined || this.pausedByUser) break;
        if (job.state === 'new') await this.encryptJob(job, encrypt);
        if (this.pausedByUser) break;
        if (job.state === 'encrypted' || job.state === 'paused' || job.state === 'error') await this.uploadJob(job);
        if (job.state === 'error') break;
      }
    } finally {
      this.running = false;
      this.emit();
    }
  }

  async pause(): Promise<void> {
    this.pausedByUser = true;
    const upload = this.current;
    if (upload !== null) await upload.abort(false);
    this.emit();
  }

  stop(): void {
    this.pausedByUser = true;
    void this.current?.abort(false);
  }

  private async encryptJob(job: Job, encrypt: Encrypt): Promise<void> {
    const file = this.files.get(job.id);
    if (file === undefined) {
      job.state = 'needsFile';
      this.persist();
      return;
    }
    job.state = 'encrypting';
    job.encrypted = 0;
    this.persist();
    this.emit();
    try {
      const handle = await spoolHandle('uploads', job.spool, true);
      if (handle === null) throw new Error('no spool');
      let last = 0;
      const result = await encrypt(file, this.keys, handle, (bytes) => {
        job.encrypted = bytes;
        if (bytes - last >= 1024 * 1024 || bytes === file.size) {
          last = bytes;
          this.emit();
        }
      });
      job.plaintextSha256 = result.plaintextSha256;
      job.cipherSize = result.size;
      job.encrypted = file.size;
      job.state = 'encrypted';
      this.files.delete(job.id);
    } catch (err) {
      job.state = 'error';
      job.error = (err as Error).message;
      await removeSpool('uploads', job.spool);
    }
    this.persist();
    this.emit();
  }

  private async uploadJob(job: Job): Promise<void> {
    const handle = await spoolHandle('uploads', job.spool, false);
    if (handle === null) {
      job.state = 'needsFile';
      this.persist();
      this.emit();
      return;
    }
    const spooled = await handle.getFile();
    job.state = 'uploading';
    job.error = undefined;
    this.persist();
    this.emit();
    await new Promise<void>((resolve) => {
      const metadata: Record<string, string> = {
        envelope: this.envelopeId,
        filename: `${job.name}.pgp`,
        filetype: 'application/pgp-encrypted',
      };
      if (job.plaintextSha256 !== undefined) metadata.plaintextSha256 = job.plaintextSha256;
      if (job.role !== null && job.role !== '') metadata.role = job.role;
      const upload: tus.Upload = new tus.Upload(spooled, {
        endpoint: new URL('/api/v1/uploads', location.href).href,
        uploadUrl: job.uploadUrl ?? null,
        chunkSize: CHUNK_SIZE,
        retryDelays: [0, 1000, 3000, 5000, 10000],
        metadata,
        // The upload URL is kept with the job (below), not in tus-js-client's own store.
        storeFingerprintForResuming: false,
        onBeforeRequest: (req) => {
          if (req.getMethod() !== 'HEAD') for (const [name, value] of Object.entries(csrfHeader())) req.setHeader(name, value);
        },
        onUploadUrlAvailable: () => {
          job.uploadUrl = upload.url ?? undefined;
          this.persist();
        },
        onProgress: (sent) => {
          job.uploaded = sent;
          this.emit();
        },
        onSuccess: () => {
          job.state = 'done';
          job.uploaded = spooled.size;
          this.current = null;
          void removeSpool('uploads', job.spool);
          resolve();
        },
        onError: (err) => {
          job.state = 'error';
          job.error = err.message.split('\n')[0] ?? err.message;
          this.current = null;
          resolve();
        },
      });
      this.current = upload;
      // Paused (abort without termination): resolve now; start() will resume from the server's offset.
      const abort = upload.abort.bind(upload);
      upload.abort = async (terminate?: boolean) => {
        await abort(terminate);
        if (job.state === 'uploading') job.state = 'paused';
        this.current = null;
        resolve();
      };
      upload.start();
    });
    this.persist();
    this.emit();
  }
}

const queues = new Map<string, UploadQueue>();

export function queueFor(envelopeId: string): UploadQueue {
  let queue = queues.get(envelopeId);
  if (queue === undefined) {
    queue = new UploadQueue(envelopeId);
    queues.set(envelopeId, queue);
  }
  return queue;
}
