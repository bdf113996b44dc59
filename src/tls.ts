import { readFile } from 'node:fs/promises';
import type { TlsConfig } from './config.ts';
import { ConfigError } from './config.ts';

async function readNamed(variable: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch {
    throw new ConfigError(variable, `cannot read ${file}`);
  }
}

/** HTTPS options for Fastify; with a client CA, client certificates are requested (mTLS), not yet required. */
export async function readTlsOptions(tls: TlsConfig) {
  const options: { cert: Buffer; key: Buffer; ca?: Buffer; requestCert?: boolean; rejectUnauthorized?: boolean } = {
    cert: await readNamed('TLS_CERT', tls.certFile),
    key: await readNamed('TLS_KEY', tls.keyFile),
  };
  if (tls.clientCaFile !== undefined) {
    options.ca = await readNamed('TLS_CLIENT_CA', tls.clientCaFile);
    options.requestCert = true;
    options.rejectUnauthorized = false;
  }
  return options;
}
