/**
 * The composer (like tusd's cli/composer.go): the one place where concrete
 * adapters are chosen from the configuration and wired into the domain.
 * Tests call it with their own database and blob store.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.ts';
import { openDatabase, type Database } from './db/client.ts';
import { createDirectoryRepository } from './db/directory-repository.ts';
import { CREDENTIALS_CHANNEL, cacheCredentials, type CredentialCache } from './db/credential-cache.ts';
import { createEnvelopeRepository } from './db/envelope-repository.ts';
import { createEnvelopes, type Envelopes } from './domain/envelopes.ts';
import { createKeys, type Keys } from './domain/keys.ts';
import { createKeyRepository } from './db/key-repository.ts';
import { createSshKeys, type SshKeys } from './domain/ssh-keys.ts';
import { createSshKeyRepository } from './db/ssh-key-repository.ts';
import { OPENPGP_HEADER_BYTES, messageRecipientKeyIds } from './crypto/openpgp-header.ts';
import { createHygiene, type Hygiene } from './domain/hygiene.ts';
import { createHygieneRepository } from './db/hygiene-repository.ts';
import { createExports, type Exports } from './domain/exports.ts';
import { createExportRepository } from './db/export-repository.ts';
import { createPurge, type Purge } from './domain/purge.ts';
import { createPurgeRepository } from './db/purge-repository.ts';
import { createSessionRepository } from './db/session-repository.ts';
import { createSessions, type Sessions } from './domain/sessions.ts';
import { createSendFolderRepository } from './db/send-folder-repository.ts';
import type { SendFolderRepository } from './sftp/send-folders.ts';
import { verifyAuditChain, type ChainVerdict } from './db/audit.ts';
import { createReceiptSigner } from './crypto/cms.ts';
import { ensureDevPki, type Pki } from './crypto/pki.ts';
import type { EvidenceContext } from './domain/evidence.ts';

/** The `issuer` named in every receipt. */
export const EVIDENCE_ISSUER = 'bxchange';
import type { DirectoryRepository, EnvelopeRepository } from './domain/ports.ts';
import { createDirectory, generateToken, hashSecret, type Directory } from './domain/directory.ts';
import { systemClock, type Clock } from './domain/ports.ts';
import type { BlobStore } from './storage/blob-store.ts';
import { createFsBlobStore } from './storage/fs-blob-store.ts';
import type { HashingStore } from './storage/hashing-store.ts';
import { createUploadStore } from './storage/upload-store.ts';
import { createS3BlobStore } from './storage/s3-blob-store.ts';

export interface Services {
  config: Config;
  database: Database;
  blobStore: BlobStore;
  directory: Directory;
  /** Token lookups cached until a credential, principal or membership changes (db/credential-cache.ts). */
  directoryRepository: DirectoryRepository;
  credentialCache: CredentialCache;
  envelopes: Envelopes;
  envelopeRepository: EnvelopeRepository;
  /** Mailbox OpenPGP keys: active and retired public keys, locked private keys (DESIGN §4c). */
  keys: Keys;
  /** SSH public keys of principals: the SFTP door's credentials. */
  sshKeys: SshKeys;
  /** The tus DataStore (S3 or local folder), hashing as bytes arrive. */
  uploadStore: HashingStore;
  hygiene: Hygiene;
  /** The datawarehouse export feed (export capability). */
  exports: Exports;
  /** The retention purge (scheduled beside the hygiene sweep). */
  purge: Purge;
  /** Web sessions of the browser door (sign-in, sign-out, cookie resolution). */
  sessions: Sessions;
  /** The SFTP door's send folders (rows of sftp_send_folders). */
  sendFolderRepository: SendFolderRepository;
  auditLog: { verify(): Promise<ChainVerdict> };
  pki: Pki;
  clock: Clock;
  close(): Promise<void>;
}

export interface ServiceOverrides {
  database?: Database;
  blobStore?: BlobStore;
  clock?: Clock;
  /** SHA-256 of the admin token when it is not in the config (see resolveAdminToken). */
  adminTokenHash?: string;
  log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** Receipt issuer and signer; by default from the PKI in BXCHANGE_CERTS_DIR (generated on first start). */
  evidence?: EvidenceContext;
  pki?: Pki;
}

/**
 * Without BXCHANGE_ADMIN_TOKEN, a token is generated at first start and only
 * its hash is kept (`<dataDir>/admin-token.sha256`, mode 0600); the caller
 * prints the token once. Later starts reuse the stored hash.
 */
export async function resolveAdminToken(config: Config): Promise<{ hash: string; generated?: string }> {
  if (config.adminToken !== undefined) return { hash: hashSecret(config.adminToken) };
  const file = path.join(config.dataDir, 'admin-token.sha256');
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{64}$/.test(stored)) return { hash: stored };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const generated = generateToken();
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(file, `${hashSecret(generated)}\n`, { mode: 0o600, flag: 'wx' });
  return { hash: hashSecret(generated), generated };
}

export async function openDatabaseFor(config: Config): Promise<Database> {
  return config.databaseUrl !== undefined
    ? openDatabase({ url: config.databaseUrl })
    : openDatabase({ pgliteDir: path.join(config.dataDir, 'db') });
}

/** The local folder of the embedded default; the fs BlobStore and the tus FileStore share it. */
export function blobRootFor(config: Config): string {
  return path.join(config.dataDir, 'blobs');
}

export function openBlobStore(config: Config): BlobStore {
  return config.s3 !== undefined ? createS3BlobStore(config.s3) : createFsBlobStore(blobRootFor(config));
}

export async function createServices(config: Config, overrides: ServiceOverrides = {}): Promise<Services> {
  const database = overrides.database ?? (await openDatabaseFor(config));
  const blobStore = overrides.blobStore ?? openBlobStore(config);
  const clock = overrides.clock ?? systemClock;
  const adminTokenHash = overrides.adminTokenHash ?? (config.adminToken === undefined ? undefined : hashSecret(config.adminToken));
  const credentialCache = cacheCredentials(createDirectoryRepository(database.db));
  const directoryRepository = credentialCache.repository;
  const stopListening = await database.listen(CREDENTIALS_CHANNEL, credentialCache.handlers);
  const directory = createDirectory({ repository: directoryRepository, clock, adminTokenHash });
  const envelopeRepository = createEnvelopeRepository(database.db, database.listingDb);
  const keyRepository = createKeyRepository(database.db);
  const sshKeys = createSshKeys({ repository: createSshKeyRepository(database.db), directory: directoryRepository, clock });
  const keys = createKeys({ repository: keyRepository, directory: directoryRepository, clock });
  // The development PKI is generated on first start (embedded default) and loaded afterwards;
  // production provides its own files in BXCHANGE_CERTS_DIR (see certs/README.md).
  const pki = overrides.pki ?? (await ensureDevPki(config.certsDir));
  const evidence = overrides.evidence ?? { issuer: EVIDENCE_ISSUER, signer: createReceiptSigner(pki) };
  const log = overrides.log ?? { warn: (o, m) => console.warn(m, o), error: (o, m) => console.error(m, o) };
  const uploadStore = createUploadStore({
    blobRoot: blobRootFor(config),
    s3: config.s3,
    expirationMs: config.uploadExpiryMs,
    maxUploadBytes: config.maxUploadBytes,
    onHashThreadLost: (err) => log.error({ err }, 'the upload hashing thread died; uploads in progress will be hashed again from their stored bytes'),
  });
  const envelopes = createEnvelopes({
    removeUpload: (key) => uploadStore.remove(key),
    evidence,
    envelopes: envelopeRepository,
    directory: directoryRepository,
    blobStore,
    clock,
    maxUploadBytes: config.maxUploadBytes,
    keys: keyRepository,
    readRecipientKeyIds: messageRecipientKeyIds,
    headerBytes: OPENPGP_HEADER_BYTES,
  });
  const hygiene = createHygiene({
    repository: createHygieneRepository(database.db, envelopeRepository),
    blobStore,
    removeUpload: (key) => uploadStore.remove(key),
    clock,
    uploadExpiryMs: config.uploadExpiryMs,
    draftExpiryMs: config.draftExpiryMs,
    log,
  });
  const exports = createExports({ repository: createExportRepository(database.db) });
  const purge = createPurge({
    repository: createPurgeRepository(database.db),
    blobStore,
    removeUpload: (key) => uploadStore.remove(key),
    clock,
    log,
  });
  const sessions = createSessions({
    repository: createSessionRepository(database.db),
    directory: directoryRepository,
    clock,
    idleMs: config.sessionIdleMs,
    maxMs: config.sessionMaxMs,
    devSignIn: config.devSignIn,
  });
  return {
    config,
    database,
    blobStore,
    directory,
    directoryRepository,
    credentialCache,
    envelopes,
    envelopeRepository,
    keys,
    sshKeys,
    uploadStore,
    hygiene,
    exports,
    purge,
    sessions,
    sendFolderRepository: createSendFolderRepository(database.db),
    auditLog: { verify: () => verifyAuditChain(database.db) },
    pki,
    clock,
    async close() {
      await stopListening().catch(() => {});
      await Promise.allSettled([blobStore.close(), database.close(), uploadStore.close()]);
    },
  };
}
