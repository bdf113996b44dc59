/**
 * The only reader of process.env. Every variable of DESIGN §7 is read once,
 * validated, and turned into a typed `Config`; a wrong value throws a
 * `ConfigError` naming the variable, which `main.ts` prints on one line
 * before exiting non-zero.
 */
import path from 'node:path';

export interface S3Config {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  forcePathStyle: boolean;
}

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  clientCaFile: string | undefined;
}

export interface SftpConfig {
  host: string;
  port: number;
  /** The server's Ed25519 host key (OpenSSH format), generated on first start. */
  hostKeyFile: string;
  /** A session with no request for this long is closed (ms). */
  idleTimeoutMs: number;
  /** Concurrent SFTP sessions per principal on one node. */
  maxSessionsPerPrincipal: number;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** PostgreSQL URL; undefined means the embedded PGlite in `<dataDir>/db`. */
  databaseUrl: string | undefined;
  /** S3 store; undefined means the local folder `<dataDir>/blobs`. */
  s3: S3Config | undefined;
  certsDir: string;
  /** Bootstrap administrator token; undefined means generate one at first start. */
  adminToken: string | undefined;
  maxUploadBytes: number;
  tls: TlsConfig | undefined;
  /** The SFTP door (SFTP_PORT); undefined means off. */
  sftp: SftpConfig | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest JSON request body accepted (bytes). */
  bodyLimit: number;
  /** An upload not finished this long after its creation expires (ms). */
  uploadExpiryMs: number;
  /** A draft not submitted this long after its creation expires with its files (ms). */
  draftExpiryMs: number;
  /** How often the storage hygiene sweep runs (ms). */
  sweepIntervalMs: number;
  /** Origins allowed to call the upload endpoint from a browser (CORS); none by default. */
  allowedOrigins: string[];
  /** The URL users reach the server at (scheme, host, port, no path): redirect URIs and the same-origin check. */
  publicUrl: string;
  /** OpenID Connect sign-in of the web door; undefined means not configured. */
  oidc: OidcConfig | undefined;
  /**
   * The development sign-in (pick any principal, no password). Never with
   * OIDC; on by default only in the embedded default on a loopback address.
   */
  devSignIn: boolean;
  /** A web session unused this long ends (ms). */
  sessionIdleMs: number;
  /** A web session ends this long after sign-in, however used (ms). */
  sessionMaxMs: number;
  /** The built browser UI (`npm run build:web`), served at `/`. */
  webDir: string;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Where the identity provider sends the browser back: `<PUBLIC_URL>/auth/callback` by default. */
  redirectUri: string;
  /** Space-separated scopes asked for; `openid` is always among them. */
  scope: string;
}

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

type Env = Record<string, string | undefined>;

const GiB = 1024 ** 3;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${raw}`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
  }
  return raw;
}

function s3Config(env: Env): S3Config | undefined {
  const names = ['S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'S3_FORCE_PATH_STYLE'];
  if (names.every((name) => read(env, name) === undefined)) return undefined;
  const endpoint = url(env, 'S3_ENDPOINT', ['http:', 'https:']);
  const bucket = read(env, 'S3_BUCKET');
  if (bucket === undefined) throw new ConfigError('S3_BUCKET', 'is required when any S3_* variable is set');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError('S3_BUCKET', `"${bucket}" is not a valid bucket name`);
  }
  const accessKeyId = read(env, 'S3_ACCESS_KEY_ID');
  const secretAccessKey = read(env, 'S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(
      accessKeyId === undefined ? 'S3_ACCESS_KEY_ID' : 'S3_SECRET_ACCESS_KEY',
      'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together',
    );
  }
  return {
    endpoint,
    region: read(env, 'S3_REGION') ?? 'us-east-1',
    bucket,
    accessKeyId,
    secretAccessKey,
    // Self-hosted S3 servers (Ceph RGW, MinIO) want path-style addressing.
    forcePathStyle: boolean(env, 'S3_FORCE_PATH_STYLE', endpoint !== undefined),
  };
}

function tlsConfig(env: Env): TlsConfig | undefined {
  const certFile = read(env, 'TLS_CERT');
  const keyFile = read(env, 'TLS_KEY');
  const clientCaFile = read(env, 'TLS_CLIENT_CA');
  if (certFile === undefined && keyFile === undefined) {
    if (clientCaFile !== undefined) throw new ConfigError('TLS_CLIENT_CA', 'needs TLS_CERT and TLS_KEY');
    return undefined;
  }
  if (certFile === undefined) throw new ConfigError('TLS_CERT', 'is required with TLS_KEY');
  if (keyFile === undefined) throw new ConfigError('TLS_KEY', 'is required with TLS_CERT');
  return { certFile, keyFile, clientCaFile };
}

function origins(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined) return [];
  return raw.split(',').map((origin) => {
    const value = origin.trim();
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new ConfigError(name, `"${value}" is not an origin (https://host[:port])`);
    }
    if (parsed.origin !== value) throw new ConfigError(name, `"${value}" is not an origin (https://host[:port])`);
    return value;
  });
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function publicUrlOf(env: Env, host: string, port: number, tls: boolean): string {
  const given = url(env, 'PUBLIC_URL', ['http:', 'https:']);
  if (given === undefined) {
    const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    return `${tls ? 'https' : 'http'}://${shown}:${port}`;
  }
  const parsed = new URL(given);
  if (parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
    throw new ConfigError('PUBLIC_URL', 'must be an origin without path, query or credentials (https://host[:port])');
  }
  return parsed.origin;
}

function oidcConfig(env: Env, publicUrl: string): OidcConfig | undefined {
  const issuer = url(env, 'OIDC_ISSUER', ['http:', 'https:']);
  const clientId = read(env, 'OIDC_CLIENT_ID');
  const clientSecret = read(env, 'OIDC_CLIENT_SECRET');
  if (issuer === undefined) {
    for (const name of ['OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_REDIRECT_URI', 'OIDC_SCOPE']) {
      if (read(env, name) !== undefined) throw new ConfigError(name, 'needs OIDC_ISSUER');
    }
    return undefined;
  }
  // Plain HTTP only to an identity provider on this machine (tests, a local Keycloak).
  if (new URL(issuer).protocol === 'http:' && !isLoopback(new URL(issuer).hostname)) {
    throw new ConfigError('OIDC_ISSUER', 'must use https: (plain http only for a loopback address)');
  }
  if (clientId === undefined) throw new ConfigError('OIDC_CLIENT_ID', 'is required with OIDC_ISSUER');
  // A confidential client: the secret also keys the short-lived sign-in cookie (see routes/web/flow-cookie.ts).
  if (clientSecret === undefined) throw new ConfigError('OIDC_CLIENT_SECRET', 'is required with OIDC_ISSUER');
  if (clientSecret.length < 16) throw new ConfigError('OIDC_CLIENT_SECRET', 'must be at least 16 characters long');
  const redirectUri = url(env, 'OIDC_REDIRECT_URI', ['http:', 'https:']) ?? `${publicUrl}/auth/callback`;
  const scope = read(env, 'OIDC_SCOPE') ?? 'openid profile';
  if (!scope.split(/\s+/).includes('openid')) throw new ConfigError('OIDC_SCOPE', 'must include openid');
  return { issuer, clientId, clientSecret, redirectUri, scope };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function sftpConfig(env: Env, host: string, certsDir: string): SftpConfig | undefined {
  if (read(env, 'SFTP_PORT') === undefined) {
    for (const name of ['SFTP_HOST', 'SFTP_IDLE_TIMEOUT_SECONDS', 'SFTP_MAX_SESSIONS']) {
      if (read(env, name) !== undefined) throw new ConfigError(name, 'needs SFTP_PORT (the SFTP door is off without it)');
    }
    return undefined;
  }
  return {
    host: read(env, 'SFTP_HOST') ?? host,
    port: integer(env, 'SFTP_PORT', 0, 0, 65535),
    hostKeyFile: path.join(certsDir, 'sftp-host-ed25519.key'),
    idleTimeoutMs: integer(env, 'SFTP_IDLE_TIMEOUT_SECONDS', 600, 10, 86400) * 1000,
    maxSessionsPerPrincipal: integer(env, 'SFTP_MAX_SESSIONS', 8, 1, 1000),
  };
}

/** Reads and validates the configuration; throws `ConfigError` naming the first bad variable. */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const host = read(env, 'HOST') ?? '127.0.0.1';
  const port = integer(env, 'PORT', 8080, 0, 65535);
  const dataDir = path.resolve(cwd, read(env, 'BXCHANGE_DATA_DIR') ?? 'data');
  const certsDir = path.resolve(cwd, read(env, 'BXCHANGE_CERTS_DIR') ?? 'certs');
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const adminToken = read(env, 'BXCHANGE_ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 32) {
    throw new ConfigError('BXCHANGE_ADMIN_TOKEN', 'must be at least 32 characters long');
  }
  const logLevel = (read(env, 'LOG_LEVEL') ?? 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const tls = tlsConfig(env);
  const publicUrl = publicUrlOf(env, host, port, tls !== undefined);
  const oidc = oidcConfig(env, publicUrl);
  // The development sign-in lets anyone be anyone: never beside OIDC, and on by default only where a
  // newcomer tries the embedded default on their own machine (no DATABASE_URL, loopback address).
  const devSignInDefault = oidc === undefined && databaseUrl === undefined && isLoopback(host);
  const devSignIn = boolean(env, 'BXCHANGE_DEV_SIGNIN', devSignInDefault);
  if (devSignIn && oidc !== undefined) {
    throw new ConfigError('BXCHANGE_DEV_SIGNIN', 'the development sign-in cannot be enabled while OIDC_ISSUER is configured');
  }
  const sessionIdleMs = integer(env, 'BXCHANGE_SESSION_IDLE_MINUTES', 8 * 60, 1, 7 * 24 * 60) * 60_000;
  const sessionMaxMs = integer(env, 'BXCHANGE_SESSION_MAX_HOURS', 12, 1, 30 * 24) * 3600_000;
  return {
    host,
    port,
    dataDir,
    databaseUrl,
    s3: s3Config(env),
    certsDir,
    adminToken,
    maxUploadBytes: integer(env, 'BXCHANGE_MAX_UPLOAD_BYTES', 10 * GiB, 1, Number.MAX_SAFE_INTEGER),
    tls,
    sftp: sftpConfig(env, host, certsDir),
    logLevel,
    bodyLimit: integer(env, 'BXCHANGE_BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    uploadExpiryMs: integer(env, 'BXCHANGE_UPLOAD_EXPIRY_HOURS', 24, 1, 24 * 365) * 3600_000,
    draftExpiryMs: integer(env, 'BXCHANGE_DRAFT_EXPIRY_DAYS', 30, 1, 3650) * 86400_000,
    sweepIntervalMs: integer(env, 'BXCHANGE_SWEEP_MINUTES', 15, 1, 24 * 60) * 60_000,
    allowedOrigins: origins(env, 'BXCHANGE_ALLOWED_ORIGINS'),
    publicUrl,
    oidc,
    devSignIn,
    sessionIdleMs,
    sessionMaxMs,
    webDir: path.resolve(cwd, read(env, 'BXCHANGE_WEB_DIR') ?? path.join('dist', 'web')),
  };
}
