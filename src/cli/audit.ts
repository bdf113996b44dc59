/**
 * `bxchange audit verify`: recomputes the audit hash chain and checks its
 * signed checkpoints, straight from the database like `migrate` (no server
 * needed, so it also works when the server is down or suspected).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../config.ts';
import type { AuditCheckpoint, ChainVerdict } from '../db/audit.ts';
import { CliError, EXIT, json, str, usageError, type Command } from './common.ts';

/** Database failures, without the URL (it may hold a password). */
function databaseError(err: unknown, postgresUrl: boolean): CliError {
  const e = err as Error & { code?: string };
  const where = postgresUrl ? 'DATABASE_URL' : 'the embedded database (BXCHANGE_DATA_DIR/db)';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'CONNECT_TIMEOUT', 'ECONNRESET'].includes(e.code ?? '')) {
    return new CliError(EXIT.unavailable, [`bxchange: cannot reach ${where} (${e.code})`]);
  }
  return new CliError(EXIT.failure, [`bxchange: audit verify failed on ${where}: ${e.message ?? String(err)}`]);
}

async function readText(file: string, option: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${option} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'audit verify');
  }
}

/** A checkpoint as GET /api/v1/audit/checkpoints/latest answers it. */
function parseCheckpoint(text: string, file: string): AuditCheckpoint {
  let value: { seq?: unknown; at?: unknown; head?: unknown; signature?: unknown };
  try {
    value = JSON.parse(text) as typeof value;
  } catch {
    throw usageError(`--checkpoint ${file} is not JSON`, 'audit verify');
  }
  if (typeof value?.seq !== 'number' || typeof value.head !== 'object' || value.head === null || typeof value.signature !== 'string') {
    throw usageError(`--checkpoint ${file} is not a checkpoint (as saved from GET /api/v1/audit/checkpoints/latest)`, 'audit verify');
  }
  return { seq: value.seq, at: new Date(String(value.at)), head: value.head as AuditCheckpoint['head'], signature: value.signature };
}

export function verdictLines(verdict: ChainVerdict): string[] {
  const lines: string[] = [];
  if (verdict.valid) {
    lines.push(`audit chain valid: ${verdict.rows} entries, head ${verdict.head ?? '(empty)'}`);
  } else {
    const at = verdict.firstBroken;
    lines.push(`audit chain BROKEN at entry #${at?.seq ?? '?'}: ${at?.reason ?? 'unknown reason'}`);
    lines.push(`  ${verdict.rows} entries verified before it`);
  }
  for (const cp of verdict.checkpoints ?? []) {
    const which = cp.source === 'given' ? 'given checkpoint' : 'latest checkpoint';
    const what = `${which} #${cp.seq} (entry #${cp.head.seq} at ${cp.head.time})`;
    if (!cp.valid) lines.push(`  ${what}: INVALID: ${cp.reason ?? 'invalid'}`);
    else if (cp.signatureChecked) lines.push(`  ${what}: valid, signed by ${cp.signer ?? 'the platform signer'}`);
    else lines.push(`  ${what}: matches the chain; signature NOT checked (no ca.pem)`);
  }
  if ((verdict.checkpoints ?? []).length === 0) lines.push('  no signed checkpoint yet: the chain alone cannot show a rewrite by someone with database access');
  return lines;
}

export const auditVerifyCommand: Command = {
  args: [],
  summary: 'recompute the audit hash chain and check its signed checkpoints (opens the database directly)',
  details:
    'Opens the database like "migrate": DATABASE_URL, or the embedded PGlite in BXCHANGE_DATA_DIR/db (only while the server is STOPPED).\n' +
    'Checks every entry against its predecessor, and the latest audit.checkpoint entry: its signature against ca.pem\n' +
    '(BXCHANGE_CERTS_DIR/ca.pem, or --ca) and that the entry it signed still has the signed hash.\n' +
    'With --checkpoint, also a checkpoint kept outside the database (saved from GET /api/v1/audit/checkpoints/latest):\n' +
    'the only way to detect entries removed after it together with the later checkpoints.\n' +
    'Entries after the latest checkpoint are protected by the hash chain only: a suffix dropped after it cannot be detected.\n' +
    'Exit status: 0 valid, 1 broken or invalid (or an unexpected failure), 2 usage or configuration error, 4 database unreachable.',
  options: {
    checkpoint: { type: 'string', arg: 'FILE', description: 'a checkpoint JSON kept outside the database, to check as well' },
    ca: { type: 'string', arg: 'FILE', description: 'trust anchor for checkpoint signatures (default: BXCHANGE_CERTS_DIR/ca.pem)' },
    json: { type: 'boolean', description: 'print the verdict as JSON instead of text' },
  },
  async run(ctx, values) {
    const config = loadConfig(ctx.io.env);
    const caOption = str(values, 'ca');
    let caCertPem: string | undefined;
    if (caOption !== undefined) caCertPem = await readText(caOption, '--ca');
    else caCertPem = await readFile(path.join(config.certsDir, 'ca.pem'), 'utf8').catch(() => undefined);
    const checkpointFile = str(values, 'checkpoint');
    const given = checkpointFile === undefined ? undefined : parseCheckpoint(await readText(checkpointFile, '--checkpoint'), checkpointFile);

    const { openDatabaseFor } = await import('../services.ts');
    const { verifyAuditChain } = await import('../db/audit.ts');
    let database: Awaited<ReturnType<typeof openDatabaseFor>>;
    try {
      database = await openDatabaseFor(config);
    } catch (err) {
      throw databaseError(err, config.databaseUrl !== undefined);
    }
    let verdict: ChainVerdict;
    try {
      verdict = await verifyAuditChain(database.db, {
        ...(caCertPem === undefined ? {} : { caCertPem }),
        ...(given === undefined ? {} : { checkpoint: given }),
      });
    } catch (err) {
      throw databaseError(err, config.databaseUrl !== undefined);
    } finally {
      await database.close().catch(() => {});
    }
    await ctx.out(values.json ? json(verdict) : `${verdictLines(verdict).join('\n')}\n`);
    return verdict.valid ? EXIT.ok : EXIT.failure;
  },
};

export const auditCommands: Record<string, Command> = { verify: auditVerifyCommand };
