/**
 * `bxchange admin add-ssh-key | list-ssh-keys | revoke-ssh-key`: SSH public
 * keys of principals for the SFTP door, through the HTTP API. The SFTP user
 * name is the principal's name.
 */
import fs from 'node:fs/promises';
import { CliError, EXIT, UUID, json, seg, str, usageError, type Command, type Context } from './common.ts';

/** A principal is named by its id (UUID) or by its unique name. */
async function principalId(ctx: Context, ref: string): Promise<{ id: string; name: string | undefined }> {
  if (UUID.test(ref)) return { id: ref, name: undefined };
  const principals = (await ctx.api().list('/api/v1/principals')) as { id: string; name: string }[];
  const found = principals.find((p) => p.name === ref);
  if (!found) throw new CliError(EXIT.refused, [`bxchange: no principal is named "${ref}"`]);
  return { id: found.id, name: found.name };
}

const addSshKey: Command = {
  args: ['PRINCIPAL', 'KEY'],
  summary: 'register an SSH public key for the SFTP door: KEY is a .pub file or "-" for stdin (admin)',
  details:
    'KEY holds one OpenSSH public key line (ssh-keygen -t ed25519 -f backoffice makes backoffice.pub).\n' +
    'The principal then logs in with sftp -i backoffice <principal-name>@<host> -P <SFTP_PORT>.\n' +
    'Prints the registered key (id, fingerprint as ssh-keygen -l shows it) as JSON.',
  options: {
    label: { type: 'string', arg: 'TEXT', description: 'what the key is for (default: the key comment)' },
  },
  async run(ctx, values, [ref, file]) {
    const helpFor = 'admin add-ssh-key';
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await fs.readFile(file!, 'utf8');
    } catch (err) {
      throw usageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, helpFor);
    }
    if (/PRIVATE KEY/.test(text)) throw usageError(`${file} is a private key: give the .pub file`, helpFor);
    const body: Record<string, unknown> = { publicKey: text.trim() };
    const label = str(values, 'label');
    if (label !== undefined) body.label = label;
    const principal = await principalId(ctx, ref!);
    const key = (await ctx.api().request('POST', `/api/v1/principals/${seg(principal.id)}/ssh-keys`, body)) as { id: string; fingerprint: string };
    await ctx.out(json(key));
    await ctx.note(`bxchange: SSH key ${key.fingerprint} registered${principal.name === undefined ? '' : `; SFTP user name: ${principal.name}`}\n`);
  },
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > 65536) throw new Error('too long');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const listSshKeys: Command = {
  args: ['PRINCIPAL'],
  summary: 'list the SSH keys of a principal, by id or name, with their state',
  options: {},
  async run(ctx, _values, [ref]) {
    const { id } = await principalId(ctx, ref!);
    await ctx.out(json(await ctx.api().list(`/api/v1/principals/${seg(id)}/ssh-keys`)));
  },
};

const revokeSshKey: Command = {
  args: ['PRINCIPAL', 'KEY_ID'],
  summary: 'revoke an SSH key: new SFTP logins with it are refused at once',
  options: {},
  async run(ctx, _values, [ref, keyId]) {
    const { id } = await principalId(ctx, ref!);
    await ctx.api().request('DELETE', `/api/v1/principals/${seg(id)}/ssh-keys/${seg(keyId!)}`);
    await ctx.note(`bxchange: SSH key ${keyId} revoked\n`);
  },
};

export const sshKeyCommands: Record<string, Command> = {
  'add-ssh-key': addSshKey,
  'list-ssh-keys': listSshKeys,
  'revoke-ssh-key': revokeSshKey,
};
