/**
 * The short-lived cookie that carries an OpenID Connect sign-in from
 * GET /auth/login to GET /auth/callback: state, nonce, PKCE verifier and
 * where to go afterwards.
 *
 * Why a signed cookie and not a row: the flow must survive landing on
 * another node (DESIGN §8) and there is no table for half-done sign-ins. The
 * value is HMAC-SHA256-signed with a key derived (HKDF) from the OIDC client
 * secret, which every node already shares and which stays on the server, and
 * carries its own expiry; the signature is compared in constant time. The
 * secrets inside (state, nonce, verifier) are random per sign-in and useless
 * without the identity provider's answer to the same browser.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export const FLOW_COOKIE = 'bx_oidc';
/** A sign-in must come back from the identity provider within this time. */
export const FLOW_TTL_MS = 10 * 60_000;

export interface FlowState {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
}

interface Signed extends FlowState {
  /** Expiry, ms since the epoch. */
  exp: number;
}

export function flowKey(clientSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', clientSecret, 'bxchange', 'bxchange/web/oidc-flow-cookie/v1', 32));
}

function mac(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}

export function sealFlow(key: Buffer, flow: FlowState, now: number): string {
  const payload = Buffer.from(JSON.stringify({ ...flow, exp: now + FLOW_TTL_MS } satisfies Signed)).toString('base64url');
  return `${payload}.${mac(key, payload).toString('base64url')}`;
}

/** The flow of a cookie value, or null if it is missing, tampered with or expired. */
export function openFlow(key: Buffer, value: string | undefined, now: number): FlowState | null {
  if (value === undefined) return null;
  const dot = value.indexOf('.');
  if (dot <= 0) return null;
  const payload = value.slice(0, dot);
  const given = Buffer.from(value.slice(dot + 1), 'base64url');
  const expected = mac(key, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  let parsed: Partial<Signed>;
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<Signed>;
  } catch {
    return null;
  }
  const { state, nonce, codeVerifier, returnTo, exp } = parsed;
  if (typeof exp !== 'number' || exp <= now) return null;
  if (typeof state !== 'string' || typeof nonce !== 'string' || typeof codeVerifier !== 'string' || typeof returnTo !== 'string') return null;
  return { state, nonce, codeVerifier, returnTo };
}
