/**
 * The relying party side of OpenID Connect (authorization code + PKCE), with
 * openid-client v6. Discovery happens at the first sign-in, not at start, so
 * that the server starts (and the API serves machines) while the identity
 * provider is unreachable; a failed discovery is retried at the next sign-in.
 */
import * as client from 'openid-client';
import type { OidcConfig } from '../../config.ts';

export interface OidcRelyingParty {
  /** The URL to send the browser to, and the secrets to keep until it comes back. */
  start(): Promise<{ url: string; state: string; nonce: string; codeVerifier: string }>;
  /** Exchanges the code of the callback URL; returns the verified ID token's subject and the raw ID token. */
  finish(callbackUrl: URL, checks: { state: string; nonce: string; codeVerifier: string }): Promise<{ subject: string; idToken: string | null }>;
  /** The identity provider's RP-initiated sign-out URL, if it has one. */
  endSessionUrl(idToken: string | null, postLogoutRedirectUri: string): Promise<string | undefined>;
}

export function createOidcRelyingParty(config: OidcConfig): OidcRelyingParty {
  let discovered: Promise<client.Configuration> | undefined;
  const insecure = new URL(config.issuer).protocol === 'http:'; // config.ts allows it only on loopback

  function configuration(): Promise<client.Configuration> {
    discovered ??= client
      .discovery(new URL(config.issuer), config.clientId, undefined, client.ClientSecretBasic(config.clientSecret), {
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
        timeout: 10,
      })
      .catch((err: unknown) => {
        discovered = undefined;
        throw err;
      });
    return discovered;
  }

  return {
    async start() {
      const rp = await configuration();
      const codeVerifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(rp, {
        redirect_uri: config.redirectUri,
        scope: config.scope,
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, state, nonce, codeVerifier };
    },

    async finish(callbackUrl, checks) {
      const rp = await configuration();
      const tokens = await client.authorizationCodeGrant(rp, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      if (claims === undefined || typeof claims.sub !== 'string' || claims.sub === '') throw new Error('the ID token has no subject');
      return { subject: claims.sub, idToken: tokens.id_token ?? null };
    },

    async endSessionUrl(idToken, postLogoutRedirectUri) {
      const rp = await configuration();
      if (rp.serverMetadata().end_session_endpoint === undefined) return undefined;
      const parameters: Record<string, string> = { post_logout_redirect_uri: postLogoutRedirectUri, client_id: config.clientId };
      if (idToken !== null) parameters.id_token_hint = idToken;
      return client.buildEndSessionUrl(rp, parameters).href;
    },
  };
}
