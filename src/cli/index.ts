/**
 * The `bxchange` command (DESIGN §7).
 *
 * `serve` and `migrate` run in this process from the configuration (they are
 * the only commands that open the database). Every other command is a thin
 * client of a running server's HTTP API (`BXCHANGE_URL`, `BXCHANGE_TOKEN`):
 * it translates arguments into API calls and their answers back, so the CLI
 * holds no rule the API does not (STYLE: doors only translate). The
 * administration commands are here; the exchange commands (send, inbox,
 * fetch, ack) in exchange.ts; what they share in common.ts.
 *
 * Exit status, the CLI's mapping of the error catalogue:
 *   0 success · 1 unexpected failure · 2 usage or configuration error ·
 *   3 the server refused the request (4xx) · 4 the server failed (5xx) or could not be reached.
 * A refusal prints one line on stderr, `bxchange: <title> (<status>): <detail>`,
 * then one indented line per problem issue. The token never appears in any message.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.ts';
import {
  CliError,
  EXIT,
  DEFAULT_URL,
  UUID,
  createApiClient,
  json,
  list,
  seg,
  str,
  usageError,
  write,
  type ApiClient,
  type CliIo,
  type Command,
  type Context,
  type OptionDef,
  type Values,
} from './common.ts';
import { exchangeCommands } from './exchange.ts';
import { seedCommands } from './seed.ts';
import { adminCommands } from './admin.ts';
import { sshKeyCommands } from './ssh-keys.ts';
import { auditCommands } from './audit.ts';
import { verifyReceiptCommand } from './verify-receipt.ts';
import { keygenCommand } from './keygen.ts';

export { EXIT, type CliIo } from './common.ts';

// ---------------------------------------------------------------- command table

/** `--valid-until ''` clears a field: the API takes null for "none". */
const nullable = (value: string | undefined) => (value === undefined ? undefined : value.trim() === '' ? null : value);

function setIfGiven(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

/** `secretariat@ixelles=read,send` → `{mailbox, roles}`. */
function parseMember(value: string, helpFor: string): { mailbox: string; roles: string[] } {
  const match = /^([^=\s]+)=(.*)$/.exec(value.trim());
  const roles = match?.[2]?.split(',').map((r) => r.trim()).filter(Boolean) ?? [];
  if (!match || roles.length === 0) {
    throw usageError(`--member must look like MAILBOX=ROLE[,ROLE…] (e.g. secretariat@ixelles=read,send), got "${value}"`, helpFor);
  }
  return { mailbox: match[1]!, roles };
}

/** A principal is named by its id (UUID) or, for convenience, by its unique name. */
async function principalId(ctx: Context, ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const principals = (await ctx.api().list('/api/v1/principals')) as { id: string; name: string }[];
  const found = principals.find((p) => p.name === ref);
  if (!found) throw new CliError(EXIT.refused, [`bxchange: no principal is named "${ref}"`]);
  return found.id;
}

const ENTITY_FIELDS: Record<string, OptionDef> = {
  'enterprise-number': { type: 'string', arg: 'KBO', description: "KBO/BCE enterprise number, e.g. 'BE 0207.373.429' (checked by the server)" },
  'nis-code': { type: 'string', arg: 'CODE', description: 'NIS code (communes), e.g. 21009' },
  parent: { type: 'string', arg: 'ID', description: 'parent entity id' },
  'valid-from': { type: 'string', arg: 'YYYY-MM-DD', description: 'first day of validity' },
  'valid-until': { type: 'string', arg: 'YYYY-MM-DD', description: 'last day of validity' },
};

function entityFields(values: Values): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  setIfGiven(body, 'enterpriseNumber', nullable(str(values, 'enterprise-number')));
  setIfGiven(body, 'nisCode', nullable(str(values, 'nis-code')));
  setIfGiven(body, 'parent', nullable(str(values, 'parent')));
  setIfGiven(body, 'validFrom', nullable(str(values, 'valid-from')));
  setIfGiven(body, 'validUntil', nullable(str(values, 'valid-until')));
  return body;
}

const MEMBER: OptionDef = {
  type: 'string',
  multiple: true,
  arg: 'MAILBOX=ROLES',
  description: 'membership, e.g. secretariat@ixelles=read,send (roles: read, send, manage); repeatable',
};
const CAPABILITY: OptionDef = { type: 'string', multiple: true, arg: 'CAP', description: 'platform capability: admin or export; repeatable' };

const entityCommands: Record<string, Command> = {
  create: {
    args: [],
    summary: 'create an entity (admin)',
    options: {
      id: { type: 'string', arg: 'ID', required: true, description: 'slug, e.g. ixelles, cpas-ixelles, zp-5339' },
      kind: {
        type: 'string',
        arg: 'KIND',
        required: true,
        description: 'commune, cpas, police_zone, regie, intercommunale, region, regional_app or other',
      },
      fr: { type: 'string', arg: 'NAME', required: true, description: 'name in French' },
      nl: { type: 'string', arg: 'NAME', required: true, description: 'name in Dutch' },
      ...ENTITY_FIELDS,
    },
    async run(ctx, values) {
      const body = {
        id: str(values, 'id'),
        kind: str(values, 'kind'),
        name: { fr: str(values, 'fr'), nl: str(values, 'nl') },
        ...entityFields(values),
      };
      await ctx.out(json(await ctx.api().request('POST', '/api/v1/entities', body)));
    },
  },
  list: {
    args: [],
    summary: 'list every entity (all pages)',
    options: {},
    async run(ctx) {
      await ctx.out(json(await ctx.api().list('/api/v1/entities')));
    },
  },
  show: {
    args: ['ID'],
    summary: 'show one entity',
    options: {},
    async run(ctx, _values, [id]) {
      await ctx.out(json(await ctx.api().request('GET', `/api/v1/entities/${seg(id!)}`)));
    },
  },
  update: {
    args: ['ID'],
    summary: 'change the named fields of an entity (admin)',
    details: "Only the options given change. An empty value clears an optional field: --valid-until ''.",
    options: {
      fr: { type: 'string', arg: 'NAME', description: 'name in French' },
      nl: { type: 'string', arg: 'NAME', description: 'name in Dutch' },
      ...ENTITY_FIELDS,
    },
    async run(ctx, values, [id]) {
      const body = entityFields(values);
      const fr = str(values, 'fr');
      const nl = str(values, 'nl');
      if (fr !== undefined || nl !== undefined) {
        // The API replaces the bilingual name as a whole: keep the other language.
        let current = { fr, nl };
        if (fr === undefined || nl === undefined) {
          const entity = (await ctx.api().request('GET', `/api/v1/entities/${seg(id!)}`)) as { name: { fr: string; nl: string } };
          current = { fr: fr ?? entity.name.fr, nl: nl ?? entity.name.nl };
        }
        body.name = current;
      }
      if (Object.keys(body).length === 0) throw usageError('nothing to change: give at least one option', 'entity update');
      await ctx.out(json(await ctx.api().request('PATCH', `/api/v1/entities/${seg(id!)}`, body)));
    },
  },
};

const mailboxCommands: Record<string, Command> = {
  create: {
    args: ['ADDRESS'],
    summary: 'create the mailbox name@entity (admin)',
    options: {},
    async run(ctx, _values, [address]) {
      const at = address!.indexOf('@');
      if (at <= 0 || at === address!.length - 1 || address!.indexOf('@', at + 1) !== -1) {
        throw usageError(`a mailbox address looks like name@entity (e.g. secretariat@ixelles), got "${address}"`, 'mailbox create');
      }
      const name = address!.slice(0, at);
      const entity = address!.slice(at + 1);
      await ctx.out(json(await ctx.api().request('POST', `/api/v1/entities/${seg(entity)}/mailboxes`, { name })));
    },
  },
  list: {
    args: [],
    summary: 'list mailboxes (all pages): the caller’s own, or every one for an administrator',
    options: { entity: { type: 'string', arg: 'ID', description: 'only the mailboxes of this entity' } },
    async run(ctx, values) {
      const entity = str(values, 'entity');
      const query = entity === undefined ? '' : `?${new URLSearchParams({ entity }).toString()}`;
      await ctx.out(json(await ctx.api().list(`/api/v1/mailboxes${query}`)));
    },
  },
  show: {
    args: ['ADDRESS'],
    summary: 'show one mailbox',
    options: {},
    async run(ctx, _values, [address]) {
      await ctx.out(json(await ctx.api().request('GET', `/api/v1/mailboxes/${seg(address!)}`)));
    },
  },
};

const principalCommands: Record<string, Command> = {
  create: {
    args: [],
    summary: 'create a user or machine principal with its memberships (admin)',
    options: {
      name: { type: 'string', arg: 'NAME', required: true, description: 'unique name (also the SFTP user name), e.g. ixelles-backoffice' },
      kind: { type: 'string', arg: 'KIND', required: true, description: 'user or machine' },
      'display-name': { type: 'string', arg: 'TEXT', description: 'human-readable name' },
      'oidc-subject': { type: 'string', arg: 'SUB', description: 'OIDC subject of a user' },
      capability: CAPABILITY,
      member: MEMBER,
    },
    async run(ctx, values) {
      const body: Record<string, unknown> = { name: str(values, 'name'), kind: str(values, 'kind') };
      setIfGiven(body, 'displayName', str(values, 'display-name'));
      setIfGiven(body, 'oidcSubject', str(values, 'oidc-subject'));
      if (list(values, 'capability').length > 0) body.capabilities = list(values, 'capability');
      const members = list(values, 'member').map((m) => parseMember(m, 'principal create'));
      if (members.length > 0) body.memberships = members;
      await ctx.out(json(await ctx.api().request('POST', '/api/v1/principals', body)));
    },
  },
  list: {
    args: [],
    summary: 'list every principal (all pages; admin)',
    options: {},
    async run(ctx) {
      await ctx.out(json(await ctx.api().list('/api/v1/principals')));
    },
  },
  show: {
    args: ['PRINCIPAL'],
    summary: 'show one principal, by id or name',
    options: {},
    async run(ctx, _values, [ref]) {
      await ctx.out(json(await ctx.api().request('GET', `/api/v1/principals/${seg(await principalId(ctx, ref!))}`)));
    },
  },
  update: {
    args: ['PRINCIPAL'],
    summary: 'change a principal, by id or name (admin)',
    details:
      'Only the options given change. --member replaces ALL memberships with the ones given (--no-members removes them all);\n' +
      '--capability replaces all capabilities (--no-capabilities removes them all).',
    options: {
      'display-name': { type: 'string', arg: 'TEXT', description: "human-readable name ('' clears it)" },
      member: MEMBER,
      'oidc-subject': { type: 'string', arg: 'SUB', description: "OIDC subject that signs in as this user on the web ('' clears it)" },
      'no-members': { type: 'boolean', description: 'remove every membership' },
      capability: CAPABILITY,
      'no-capabilities': { type: 'boolean', description: 'remove every capability' },
      deactivate: { type: 'boolean', description: 'deactivate: its tokens stop working' },
      activate: { type: 'boolean', description: 'activate again' },
    },
    async run(ctx, values, [ref]) {
      const helpFor = 'principal update';
      const body: Record<string, unknown> = {};
      setIfGiven(body, 'displayName', nullable(str(values, 'display-name')));
      const members = list(values, 'member');
      setIfGiven(body, 'oidcSubject', nullable(str(values, 'oidc-subject')));
      if (members.length > 0 && values['no-members']) throw usageError('--member and --no-members exclude each other', helpFor);
      if (members.length > 0) body.memberships = members.map((m) => parseMember(m, helpFor));
      if (values['no-members']) body.memberships = [];
      const capabilities = list(values, 'capability');
      if (capabilities.length > 0 && values['no-capabilities']) throw usageError('--capability and --no-capabilities exclude each other', helpFor);
      if (capabilities.length > 0) body.capabilities = capabilities;
      if (values['no-capabilities']) body.capabilities = [];
      if (values.activate && values.deactivate) throw usageError('--activate and --deactivate exclude each other', helpFor);
      if (values.activate) body.active = true;
      if (values.deactivate) body.active = false;
      if (Object.keys(body).length === 0) throw usageError('nothing to change: give at least one option', helpFor);
      const id = await principalId(ctx, ref!);
      await ctx.out(json(await ctx.api().request('PATCH', `/api/v1/principals/${seg(id)}`, body)));
    },
  },
};

const tokenCommands: Record<string, Command> = {
  create: {
    args: ['PRINCIPAL'],
    summary: 'issue a bearer token for a principal, by id or name (admin)',
    details:
      'Prints ONLY the token on stdout (so TOKEN=$(bxchange token create …) works); its id and a reminder go to stderr.\n' +
      'The token is shown once: only its hash is kept by the server.',
    options: {
      'expires-at': { type: 'string', arg: 'ISO', description: 'expiry time, RFC 3339 (e.g. 2027-01-01T00:00:00Z); default: never' },
      label: { type: 'string', arg: 'TEXT', description: 'what the token is for, e.g. cron' },
    },
    async run(ctx, values, [ref]) {
      const body: Record<string, unknown> = {};
      setIfGiven(body, 'expiresAt', str(values, 'expires-at'));
      setIfGiven(body, 'label', str(values, 'label'));
      const id = await principalId(ctx, ref!);
      const issued = (await ctx.api().request('POST', `/api/v1/principals/${seg(id)}/tokens`, body)) as { id: string; token: string };
      await ctx.out(`${issued.token}\n`);
      await ctx.note(`bxchange: token ${issued.id} issued for principal ${id}; it is shown only once: store it now\n`);
    },
  },
  list: {
    args: ['PRINCIPAL'],
    summary: 'list the tokens of a principal, without their secrets',
    options: {},
    async run(ctx, _values, [ref]) {
      const id = await principalId(ctx, ref!);
      await ctx.out(json(await ctx.api().list(`/api/v1/principals/${seg(id)}/tokens`)));
    },
  },
  revoke: {
    args: ['PRINCIPAL', 'TOKEN_ID'],
    summary: 'revoke a token: it stops working at once',
    options: {},
    async run(ctx, _values, [ref, tokenId]) {
      const id = await principalId(ctx, ref!);
      await ctx.api().request('DELETE', `/api/v1/principals/${seg(id)}/tokens/${seg(tokenId!)}`);
      await ctx.note(`bxchange: token ${tokenId} revoked\n`);
    },
  },
};

const serveCommand: Command = {
  args: [],
  summary: 'run the server (configuration from the environment)',
  details:
    'Reads HOST, PORT, BXCHANGE_DATA_DIR, DATABASE_URL, S3_*, BXCHANGE_CERTS_DIR, BXCHANGE_ADMIN_TOKEN, TLS_* …\n' +
    'With the embedded PGlite, pending migrations are applied at start; with DATABASE_URL, run "bxchange migrate" first.',
  options: {},
  async run(ctx) {
    const config = loadConfig(ctx.io.env);
    const { serve } = await import('../main.ts');
    await serve(config);
    // The server runs until a signal; close-with-grace then ends the process.
    return new Promise<number>(() => {});
  },
};

const migrateCommand: Command = {
  args: [],
  summary: 'apply pending database migrations, then exit',
  details:
    'Opens the database directly: DATABASE_URL, or the embedded PGlite in BXCHANGE_DATA_DIR/db.\n' +
    'With the embedded PGlite, run it only while the server is STOPPED (one process at a time may open it).\n' +
    'With PostgreSQL it may run while servers are up; concurrent runs are serialised by an advisory lock.\n' +
    'Idempotent: prints "migrated: N/N migrations applied".',
  options: {},
  async run(ctx) {
    const config = loadConfig(ctx.io.env);
    const { openDatabaseFor } = await import('../services.ts');
    let database: Awaited<ReturnType<typeof openDatabaseFor>>;
    try {
      database = await openDatabaseFor(config);
    } catch (err) {
      throw databaseError(err, config.databaseUrl !== undefined);
    }
    try {
      await database.migrate();
      const { applied, known } = await database.migrationStatus();
      await ctx.out(`migrated: ${applied}/${known} migrations applied\n`);
    } catch (err) {
      throw databaseError(err, config.databaseUrl !== undefined);
    } finally {
      await database.close().catch(() => {});
    }
  },
};

/** Database failures of `migrate`, without the URL (it may hold a password). */
function databaseError(err: unknown, postgresUrl: boolean): CliError {
  const e = err as Error & { code?: string; errno?: string };
  const where = postgresUrl ? 'DATABASE_URL' : 'the embedded database (BXCHANGE_DATA_DIR/db)';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'CONNECT_TIMEOUT', 'ECONNRESET'].includes(e.code ?? '')) {
    return new CliError(EXIT.unavailable, [`bxchange: cannot reach ${where} (${e.code})`]);
  }
  return new CliError(EXIT.failure, [`bxchange: migrate failed on ${where}: ${e.message ?? String(err)}`]);
}

const whoamiCommand: Command = {
  args: [],
  summary: 'show the principal BXCHANGE_TOKEN authenticates as',
  options: {},
  async run(ctx) {
    await ctx.out(json(await ctx.api().request('GET', '/api/v1/me')));
  },
};

/** `local`: the group's commands open the database from the configuration instead of calling a server. */
const groups: Record<string, { summary: string; commands: Record<string, Command>; local?: boolean }> = {
  entity: { summary: 'organisations of the directory', commands: entityCommands },
  mailbox: { summary: 'mailboxes name@entity', commands: mailboxCommands },
  principal: { summary: 'users and machines, their memberships and capabilities', commands: principalCommands },
  token: { summary: 'bearer tokens of principals', commands: tokenCommands },
  admin: { summary: 'TLS client certificates (mutual TLS) and SSH keys (SFTP) of principals', commands: { ...adminCommands, ...sshKeyCommands } },
  audit: { summary: 'the audit hash chain and its signed checkpoints (opens the database directly)', commands: auditCommands, local: true },
  seed: { summary: 'reference data of the directory (opens the database directly)', commands: seedCommands, local: true },
};

const topCommands: Record<string, Command> = {
  serve: serveCommand,
  migrate: migrateCommand,
  whoami: whoamiCommand,
  keygen: keygenCommand,
  'verify-receipt': verifyReceiptCommand,
  ...exchangeCommands,
};

/** Commands that call no server: their help does not describe BXCHANGE_URL and BXCHANGE_TOKEN. */
const NO_SERVER = new Set(['serve', 'migrate', 'audit verify', 'verify-receipt', 'seed brussels']);

// ---------------------------------------------------------------- help

const ENVIRONMENT = `Environment of the commands that call a server:
  BXCHANGE_URL     the server's base URL (default ${DEFAULT_URL})
  BXCHANGE_TOKEN   bearer token to call it with (falls back to BXCHANGE_ADMIN_TOKEN);
                   read from the environment only, never from an argument

Output: JSON on stdout; a list holds every item (all pages are fetched).
Exit status: 0 success, 1 unexpected failure, 2 usage or configuration error,
  3 refused by the server (4xx), 4 server failure (5xx) or server unreachable.`;

function usageLine(path: string, command: Command): string {
  const required = Object.entries(command.options)
    .filter(([, o]) => o.required)
    .map(([name, o]) => `--${name} ${o.arg ?? ''}`.trimEnd());
  const optional = Object.values(command.options).some((o) => !o.required) ? ['[options]'] : [];
  const args = command.variadic ? [...command.args.slice(0, -1), `${command.args.at(-1)}…`] : command.args;
  return ['bxchange', path, ...args, ...required, ...optional].join(' ');
}

function commandHelp(path: string, command: Command): string {
  const lines = [`Usage: ${usageLine(path, command)}`, '', `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`];
  if (command.details) lines.push('', command.details);
  const options = Object.entries(command.options);
  lines.push('', 'Options:');
  const labels = options.map(([name, o]) => `--${name}${o.arg ? ` ${o.arg}` : ''}`);
  const width = Math.max(12, ...labels.map((l) => l.length)) + 2;
  options.forEach(([, o], i) => lines.push(`  ${labels[i]!.padEnd(width)}${o.description}${o.required ? ' (required)' : ''}`));
  lines.push(`  ${'-h, --help'.padEnd(width)}show this help`);
  if (!NO_SERVER.has(path)) lines.push('', ENVIRONMENT);
  return `${lines.join('\n')}\n`;
}

function groupHelp(name: string): string {
  const group = groups[name]!;
  const lines = [`Usage: bxchange ${name} <command> [options]`, '', `${group.summary[0]!.toUpperCase()}${group.summary.slice(1)}.`, '', 'Commands:'];
  for (const [sub, command] of Object.entries(group.commands)) lines.push(`  ${usageLine(`${name} ${sub}`, command)}`, `      ${command.summary}`);
  lines.push('', `Run "bxchange ${name} <command> --help" for its options.`);
  if (!group.local) lines.push('', ENVIRONMENT);
  return `${lines.join('\n')}\n`;
}

function topHelp(): string {
  const row = (name: string, summary: string) => `  ${name.padEnd(16)}${summary}`;
  return [
    'Usage: bxchange <command> [options]',
    '',
    'bxchange, the secure file exchange of the Brussels-Capital Region’s local authorities.',
    '',
    'Server (read the configuration from the environment):',
    row('serve', serveCommand.summary),
    row('migrate', `${migrateCommand.summary} (embedded PGlite: only while the server is stopped)`),
    ...Object.entries(groups)
      .filter(([, g]) => g.local)
      .map(([name, g]) => row(name, `${Object.keys(g.commands).join(' | ')}: ${g.summary}`)),
    '',
    'Administration (calls a running server over HTTP):',
    ...Object.entries(groups)
      .filter(([, g]) => !g.local)
      .map(([name, g]) => row(name, `${Object.keys(g.commands).join(' | ')}: ${g.summary}`)),
    row('whoami', whoamiCommand.summary),
    row('keygen', keygenCommand.summary),
    '',
    'Exchange (calls a running server over HTTP):',
    ...Object.entries(exchangeCommands).map(([name, command]) => row(name, command.summary)),
    '',
    'Offline (no server, no database):',
    row('verify-receipt', verifyReceiptCommand.summary),
    '',
    'Run "bxchange <command> --help" for a command\'s usage.',
    '',
    ENVIRONMENT,
    '',
  ].join('\n');
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------- dispatch

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h';

function parse(path: string, command: Command, argv: string[]): { values: Values; args: string[] } | 'help' {
  let parsed: { values: Values; positionals: string[] };
  try {
    const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
    for (const [name, o] of Object.entries(command.options)) options[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] };
  } catch (err) {
    const e = err as Error;
    const unknown = /Unknown option '([^']+)'/.exec(e.message);
    const message = unknown ? `unknown option ${unknown[1]}` : e.message.replace(/^Option /, 'option ');
    throw usageError(message, path);
  }
  if (parsed.values.help) return 'help';
  for (const [name, o] of Object.entries(command.options)) {
    if (o.required && (parsed.values[name] === undefined || parsed.values[name] === '')) throw usageError(`missing --${name}`, path);
  }
  if (parsed.positionals.length < command.args.length) {
    throw usageError(`missing ${command.args.slice(parsed.positionals.length).join(' ')}`, path);
  }
  if (parsed.positionals.length > command.args.length && !command.variadic) {
    throw usageError(`unexpected argument "${parsed.positionals[command.args.length]}"`, path);
  }
  return { values: parsed.values, args: parsed.positionals };
}

/**
 * Runs the command line `argv` (without the node and script paths) and
 * resolves to the exit status. `serve` never resolves: the server runs until a signal.
 */
export async function run(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const cio: CliIo = { stdout: io.stdout ?? process.stdout, stderr: io.stderr ?? process.stderr, env: io.env ?? process.env };
  let api: ApiClient | undefined;
  const ctx: Context = {
    io: cio,
    api: () => (api ??= createApiClient(cio.env)),
    out: (text) => write(cio.stdout, text),
    note: (text) => write(cio.stderr, text),
  };
  try {
    const [first, second, ...rest] = argv;
    if (first === undefined) {
      await ctx.note(topHelp());
      return EXIT.usage;
    }
    if (isHelp(first) || (first === 'help' && second === undefined)) {
      await ctx.out(topHelp());
      return EXIT.ok;
    }
    if (first === '--version' || first === '-V') {
      await ctx.out(`${version()}\n`);
      return EXIT.ok;
    }
    if (first === 'help' && second !== undefined) return run([second, ...rest, '--help'], cio);
    const top = topCommands[first];
    let path: string;
    let command: Command;
    let args: string[];
    if (top !== undefined) {
      path = first;
      command = top;
      args = second === undefined ? rest : [second, ...rest];
    } else {
      const group = groups[first];
      if (group === undefined) throw usageError(`unknown command "${first}"`, '');
      if (second === undefined) {
        await ctx.note(groupHelp(first));
        return EXIT.usage;
      }
      if (isHelp(second)) {
        await ctx.out(groupHelp(first));
        return EXIT.ok;
      }
      const sub = group.commands[second];
      if (sub === undefined) throw usageError(`unknown command "${first} ${second}"`, first);
      path = `${first} ${second}`;
      command = sub;
      args = rest;
    }
    const parsed = parse(path, command, args);
    if (parsed === 'help') {
      await ctx.out(commandHelp(path, command));
      return EXIT.ok;
    }
    return (await command.run(ctx, parsed.values, parsed.args)) ?? EXIT.ok;
  } catch (err) {
    if (err instanceof CliError) {
      await ctx.note(`${err.lines.join('\n')}\n`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      await ctx.note(`bxchange: configuration error: ${err.message}\n`);
      return EXIT.usage;
    }
    const e = err as Error;
    await ctx.note(`bxchange: unexpected failure: ${e?.message ?? String(err)}\n`);
    return EXIT.failure;
  }
}

// `node src/cli/index.ts migrate` (the npm "migrate" script) runs this file directly.
if (import.meta.main) process.exit(await run(process.argv.slice(2)));
