/**
 * Process entry: read the configuration, compose the services, build the app,
 * listen, and close gracefully on SIGTERM/SIGINT.
 */
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createReceiptSigner } from './crypto/cms.ts';
import { checkpoint } from './db/audit.ts';
import { createServices, EVIDENCE_ISSUER, resolveAdminToken } from './services.ts';
import { missingServerFlags } from './node-flags.ts';
import { readTlsOptions } from './tls.ts';
import { sftpDeps, startSftpServer, type SftpServer } from './sftp/server.ts';

export async function serve(config: Config): Promise<void> {
  const admin = await resolveAdminToken(config);
  let log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void } | undefined;
  const services = await createServices(config, {
    adminTokenHash: admin.hash,
    log: { warn: (obj, msg) => log?.warn(obj, msg), error: (obj, msg) => log?.error(obj, msg) },
  });
  const app = await buildApp({ services, ...(config.tls ? { https: await readTlsOptions(config.tls) } : {}) });
  const embedded = services.database.kind === 'pglite';
  if (embedded) {
    await services.database.migrate();
  } else {
    const { applied, known } = await services.database.migrationStatus();
    if (applied < known) {
      await services.close();
      throw new ConfigError('DATABASE_URL', `the database schema is behind (${applied}/${known} migrations): run "bxchange migrate" first`);
    }
  }
  log = app.log;
  // Storage hygiene in-process (expired drafts and uploads, orphans, missing objects).
  const sweep = () =>
    services.hygiene.sweep().then(
      (result) => app.log.info({ ...result, missingObjects: result.missingObjects.length }, 'storage hygiene sweep'),
      (err: unknown) => app.log.error({ err }, 'storage hygiene sweep failed'),
    );
  // Retention purge in-process, on the same interval, after the sweep (so the sweep never sees a purge half done and
  // reports its files missing): files past their retainUntil (Brussels date) are deleted, digests and evidence kept.
  const purge = () =>
    services.purge.run().then(
      (result) => app.log.info({ ...result, failed: result.failed.length }, 'retention purge'),
      (err: unknown) => app.log.error({ err }, 'retention purge failed'),
    );
  const sweeper = setInterval(() => void sweep().then(purge), config.sweepIntervalMs);
  sweeper.unref();
  // A signed checkpoint of the audit chain on the sweep's schedule; skipped when the last entry is already one
  // (an idle platform, or another node that just made it), so checkpoints never pile up.
  const checkpointSigner = createReceiptSigner(services.pki);
  const checkpointAudit = () =>
    checkpoint(services.database.db, checkpointSigner, { issuer: EVIDENCE_ISSUER, at: services.clock.now(), onlyIfChanged: true }).then(
      ({ checkpoint: made, created }) => {
        if (created) app.log.info({ seq: made.seq, headSeq: made.head.seq }, 'audit checkpoint');
      },
      (err: unknown) => app.log.error({ err }, 'audit checkpoint failed'),
    );
  const checkpointer = setInterval(() => void checkpointAudit(), config.sweepIntervalMs);
  checkpointer.unref();
  let sftp: SftpServer | undefined;
  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    if (err) app.log.error({ err }, 'closing after an error');
    else app.log.info({ signal }, 'closing');
    clearInterval(sweeper);
    clearInterval(checkpointer);
    await sftp?.close();
    await app.close();
    await services.close();
  });
  await app.listen({ host: config.host, port: config.port });
  // The SFTP door (SFTP_PORT): same services, same domain; off when unset.
  if (config.sftp !== undefined) sftp = await startSftpServer(config.sftp, sftpDeps(services, app.log));
  void sweep().then(purge);
  void checkpointAudit();
  const missingFlags = missingServerFlags();
  if (missingFlags.length > 0) {
    app.log.warn(
      { missing: missingFlags },
      'started without the Node flags the server needs to stream uploads cheaply (uploads cost about twice the CPU, see src/node-flags.ts): start it with npm start, bxchange serve or the Docker image, or pass them to node',
    );
  }
  if (embedded || services.blobStore.kind === 'fs') {
    app.log.warn(
      { database: services.database.kind, store: services.blobStore.kind, dataDir: config.dataDir },
      'embedded default: one node only (PGlite and/or a local folder); set DATABASE_URL and S3_* to scale out',
    );
  }
  if (admin.generated !== undefined) {
    // Printed once, on stdout rather than in the logs, so log shipping never carries it.
    process.stdout.write(
      `\nbxchange: generated the bootstrap administrator token (shown only now; only its hash is kept):\n\n  BXCHANGE_ADMIN_TOKEN=${admin.generated}\n\n`,
    );
  }
}

export async function main(): Promise<void> {
  try {
    await serve(loadConfig());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`bxchange: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

if (import.meta.main) await main();
