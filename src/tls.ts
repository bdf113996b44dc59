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

/**
 * HTTPS options for Fastify. With a client CA (TLS_CLIENT_CA), client
 * certificates are requested but not required: the handshake also succeeds
 * without one, or with one the CA did not issue, so that bearer-token
 * clients keep working on the same port. Whether a certificate counts is
 * decided per request by the API's authentication hook
 * (routes/api/index.ts): only when the socket verified it against this CA
 * (`socket.authorized`) and its fingerprint is a registered, active
 * credential of a machine principal. TLS_CLIENT_CA must hold the CA that
 * issues those certificates: the platform's `ca.pem` when the server issues
 * them (POST /api/v1/principals/{id}/client-certificates).
 */
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
