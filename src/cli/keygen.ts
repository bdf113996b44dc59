/**
 * `bxchange keygen --mailbox ADDR`: makes the mailbox's OpenPGP key pair on
 * this machine (SDK: v4 ed25519/cv25519, user ID naming the mailbox), locks
 * the private key with a passphrase, and publishes both in one call
 * (`PUT /api/v1/mailboxes/{address}/key` with `publicKey` and `privateKey`,
 * stored in one transaction, so a failure never leaves a published key whose
 * private key is nowhere). Prints the fingerprint on stdout.
 *
 * The passphrase never leaves this process: it comes from
 * BXCHANGE_KEY_PASSPHRASE or BXCHANGE_PASSPHRASE (automation; the same
 * secret `fetch` unlocks the key with) or is asked twice on the terminal
 * without echo; with neither the command refuses to run. It never appears
 * on the command line, where other users of the machine could read it.
 *
 * A mailbox that already has a key keeps it unless --rotate is given: the
 * old key then becomes retired (files sent to it stay readable with it).
 */
import { writeFile } from 'node:fs/promises';
import { CliError, EXIT, PASSPHRASE_ENV, passphraseFromEnv, promptHidden, seg, str, usageError, type Command, type Context } from './common.ts';

const HELP = 'keygen';
const KEY_PASSPHRASE_ENV = 'BXCHANGE_KEY_PASSPHRASE';

async function passphrase(ctx: Context, minLength: number): Promise<string> {
  const fromEnv = passphraseFromEnv(ctx.io.env);
  if (fromEnv !== undefined) return fromEnv;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw usageError(`no passphrase: set ${KEY_PASSPHRASE_ENV}, or run keygen on a terminal to type it (${PASSPHRASE_ENV} works too)`, HELP);
  }
  await ctx.note(`The private key is locked with a passphrase (at least ${minLength} characters) that never leaves this machine.\n`);
  const cancelled = 'bxchange: keygen cancelled; nothing was published';
  const first = await promptHidden('Passphrase: ', cancelled);
  const second = await promptHidden('Passphrase again: ', cancelled);
  if (first !== second) throw new CliError(EXIT.usage, ['bxchange: the two passphrases differ; nothing was published']);
  return first;
}

export const keygenCommand: Command = {
  args: [],
  summary: "make a mailbox's OpenPGP key pair and publish it, the private key locked (manage role)",
  details:
    'Generates an OpenPGP v4 Curve25519 key (ed25519 + cv25519) whose user ID names the mailbox, locks the private key\n' +
    `with a passphrase, and deposits the public key and the locked private key on the server in one call.\n` +
    `The passphrase comes from ${KEY_PASSPHRASE_ENV} (or ${PASSPHRASE_ENV}, which fetch reads) or is asked on the terminal (not echoed); it never reaches the server.\n` +
    'Members with the read role download the locked key and unlock it on their own device.\n' +
    'Prints the new key\'s fingerprint on stdout.',
  options: {
    mailbox: { type: 'string', arg: 'ADDRESS', required: true, description: 'the mailbox, e.g. secretariat@ixelles' },
    rotate: { type: 'boolean', description: 'replace the mailbox\'s current key (it becomes retired; files sent to it stay readable)' },
    'revocation-certificate': {
      type: 'string',
      arg: 'FILE',
      description: 'also write the key\'s revocation certificate there (mode 0600; keep it offline)',
    },
  },
  async run(ctx, values) {
    const address = str(values, 'mailbox')!;
    const revocationFile = str(values, 'revocation-certificate');
    const api = ctx.api();
    // Loaded here, not at start: the other commands need no OpenPGP.
    const sdk = await import('../sdk/index.ts');
    const secret = await passphrase(ctx, sdk.MIN_PASSPHRASE_LENGTH);
    if ([...secret].length < sdk.MIN_PASSPHRASE_LENGTH) {
      throw usageError(`the passphrase must have at least ${sdk.MIN_PASSPHRASE_LENGTH} characters`, HELP);
    }
    const existing = (await api.request('GET', `/api/v1/mailboxes/${seg(address)}/keys`)) as { items: { state: string; fingerprint: string }[] };
    const active = existing.items.find((k) => k.state === 'active');
    if (active !== undefined && !values.rotate) {
      throw new CliError(EXIT.usage, [
        `bxchange: ${address} already has the key ${active.fingerprint}; give --rotate to replace it (it becomes retired)`,
      ]);
    }
    let pair;
    try {
      pair = await sdk.generateMailboxKey({ address, passphrase: secret });
    } catch (err) {
      if (err instanceof sdk.SdkError) throw new CliError(EXIT.usage, [`bxchange: ${err.message}`]);
      throw err;
    }
    if (revocationFile !== undefined) {
      try {
        await writeFile(revocationFile, pair.revocationCertificate, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        throw new CliError(EXIT.failure, [`bxchange: cannot write ${revocationFile} (${(err as NodeJS.ErrnoException).code ?? 'error'}); nothing was published`]);
      }
    }
    const published = (await api.request('PUT', `/api/v1/mailboxes/${seg(address)}/key`, {
      publicKey: pair.publicKeyArmored,
      privateKey: pair.privateKeyArmored,
    })) as { fingerprint: string; keyId: string; retired: string | null };
    await ctx.out(`${published.fingerprint}\n`);
    await ctx.note(
      `bxchange: key ${published.keyId} published for ${address} with its locked private key` +
        `${published.retired ? `; the key ${published.retired} is now retired` : ''}\n`,
    );
  },
};
