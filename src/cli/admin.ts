/**
 * `bxchange admin …`: TLS client certificates of machine principals (mutual
 * TLS), through the HTTP API like the other administration commands. The
 * server issues the certificate from the platform CA and answers the private
 * key once; `issue-client-cert` writes both to files only the current user
 * can read, and never prints the key.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CliError, EXIT, UUID, json, seg, str, usageError, type Command, type Context } from './common.ts';

/** A principal is named by its id (UUID) or by its unique name. */
async function principalId(ctx: Context, ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const principals = (await ctx.api().list('/api/v1/principals')) as { id: string; name: string }[];
  const found = principals.find((p) => p.name === ref);
  if (!found) throw new CliError(EXIT.refused, [`bxchange: no principal is named "${ref}"`]);
  return found.id;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** Creates `file` with mode 0600; never replaces an existing file (O_EXCL, no symlink followed). */
async function writePrivate(file: string, text: string): Promise<void> {
  const handle = await fs.open(file, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
  try {
    await handle.writeFile(text);
    await handle.chmod(0o600); // the umask may have narrowed it; never widened
    await handle.sync();
  } finally {
    await handle.close();
  }
}

interface IssuedCertificate {
  id: string;
  label: string | null;
  fingerprint: string;
  serialNumber: string;
  expiresAt: string;
  certificate: string;
  privateKey: string;
}

const issueClientCert: Command = {
  args: ['PRINCIPAL'],
  summary: 'issue a TLS client certificate for a machine principal, by id or name, into --out DIR (admin)',
  details:
    'The server issues it from the platform CA (CN = the principal name, EKU clientAuth) and registers its fingerprint;\n' +
    'it needs the CA key (ca.key in the server\'s BXCHANGE_CERTS_DIR). Writes DIR/cert.pem and DIR/key.pem, mode 0600\n' +
    '(DIR is created with mode 0700 if missing; existing files are never replaced). The private key is not kept by the\n' +
    'server and is never printed: if writing fails, revoke the certificate and issue another.\n' +
    'Then, against a server with TLS_CLIENT_CA: curl --cert DIR/cert.pem --key DIR/key.pem --cacert ca.pem https://…/api/v1/me\n' +
    'Prints the certificate\'s id, fingerprint and expiry as JSON.',
  options: {
    out: { type: 'string', arg: 'DIR', required: true, description: 'folder to write cert.pem and key.pem into' },
    label: { type: 'string', arg: 'TEXT', description: 'what the certificate is for, e.g. backoffice-prod' },
    days: { type: 'string', arg: 'N', description: 'validity in days (default 365, at most 825; never beyond the CA)' },
  },
  async run(ctx, values, [ref]) {
    const helpFor = 'admin issue-client-cert';
    const dir = path.resolve(str(values, 'out')!);
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    for (const file of [certFile, keyFile]) {
      if (await exists(file)) throw usageError(`${file} already exists: choose another --out folder or move it away`, helpFor);
    }
    const body: Record<string, unknown> = {};
    const label = str(values, 'label');
    if (label !== undefined) body.label = label;
    const days = str(values, 'days');
    if (days !== undefined) {
      if (!/^\d{1,4}$/.test(days)) throw usageError(`--days must be a whole number of days, got "${days}"`, helpFor);
      body.days = Number(days);
    }
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new CliError(EXIT.usage, [`bxchange: cannot create ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    const id = await principalId(ctx, ref!);
    const issued = (await ctx.api().request('POST', `/api/v1/principals/${seg(id)}/client-certificates`, body)) as IssuedCertificate;
    try {
      await writePrivate(keyFile, issued.privateKey);
      await writePrivate(certFile, issued.certificate);
    } catch (err) {
      throw new CliError(EXIT.failure, [
        `bxchange: certificate ${issued.id} was issued but could not be written to ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        `  its private key is lost: revoke it with "bxchange admin revoke-client-cert ${id} ${issued.id}" and issue another`,
      ]);
    }
    await ctx.out(
      json({ id: issued.id, principal: id, label: issued.label, fingerprint: issued.fingerprint, serialNumber: issued.serialNumber, expiresAt: issued.expiresAt, certificate: certFile, privateKey: keyFile }),
    );
    await ctx.note(`bxchange: client certificate ${issued.id} written to ${certFile}, its private key to ${keyFile} (mode 0600; the server keeps no copy)\n`);
  },
};

const listClientCerts: Command = {
  args: ['PRINCIPAL'],
  summary: 'list the client certificates of a principal, by id or name, with their state',
  options: {},
  async run(ctx, _values, [ref]) {
    const id = await principalId(ctx, ref!);
    await ctx.out(json(await ctx.api().list(`/api/v1/principals/${seg(id)}/client-certificates`)));
  },
};

const revokeClientCert: Command = {
  args: ['PRINCIPAL', 'CERT_ID'],
  summary: 'revoke a client certificate: requests with it are refused at once',
  options: {},
  async run(ctx, _values, [ref, certId]) {
    const id = await principalId(ctx, ref!);
    await ctx.api().request('DELETE', `/api/v1/principals/${seg(id)}/client-certificates/${seg(certId!)}`);
    await ctx.note(`bxchange: client certificate ${certId} revoked\n`);
  },
};

export const adminCommands: Record<string, Command> = {
  'issue-client-cert': issueClientCert,
  'list-client-certs': listClientCerts,
  'revoke-client-cert': revokeClientCert,
};
