/**
 * A real OpenID provider (`oidc-provider` v9) in-process on 127.0.0.1, for
 * the web door's sign-in tests: API-level tests drive it with `fetch`
 * (see `signInThroughProvider`), browser tests with Chromium.
 *
 * Its development interactions are on: the login form accepts any login and
 * password, and the signed-in account's `sub` is the login typed (claims
 * from `accounts` when listed there); a consent page with one "Continue"
 * button follows. No inline script is needed on our side.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import type { Test } from 'tap';

export interface OidcTestClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post';
}

export interface StartedOidcProvider {
  /** The issuer URL (`http://127.0.0.1:<port>`), for OIDC_ISSUER. */
  issuer: string;
  provider: InstanceType<typeof Provider>;
  server: Server;
}

/** A free TCP port on 127.0.0.1 (to know a server's URL before starting it, e.g. for redirect URIs). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A client secret long enough for the server's config (≥ 16 characters). */
export function testClientSecret(): string {
  return randomBytes(24).toString('base64url');
}

export async function startOidcProvider(
  t: Test,
  options: { clients: OidcTestClient[]; accounts?: Record<string, Record<string, unknown>>; port?: number },
): Promise<StartedOidcProvider> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const accounts = options.accounts ?? {};
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    async findAccount(_ctx: unknown, id: string) {
      return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
    },
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    pkce: { required: () => true },
    // Tests may run long: the default 1 h would do, but sessions at the IdP must not outlive the test anyway.
    ttl: { Session: 3600, Interaction: 3600, Grant: 3600, AuthorizationCode: 600, IdToken: 3600, AccessToken: 3600 },
  } as never);
  // The dev interactions and dev signing keys each print a warning once; they are what a test wants.
  server.on('request', provider.callback());
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { issuer, provider, server };
}

/** A minimal cookie jar per origin (names only; the tests never rely on paths or expiry). */
export class CookieJar {
  private readonly byOrigin = new Map<string, Map<string, string>>();

  /** Records the Set-Cookie headers of a response from `origin`. */
  store(origin: string, setCookies: string[] | string | undefined): void {
    const list = setCookies === undefined ? [] : Array.isArray(setCookies) ? setCookies : [setCookies];
    const jar = this.byOrigin.get(origin) ?? new Map<string, string>();
    for (const header of list) {
      const [pair, ...attributes] = header.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    this.byOrigin.set(origin, jar);
  }

  get(origin: string, name: string): string | undefined {
    return this.byOrigin.get(origin)?.get(name);
  }

  set(origin: string, name: string, value: string): void {
    const jar = this.byOrigin.get(origin) ?? new Map<string, string>();
    jar.set(name, value);
    this.byOrigin.set(origin, jar);
  }

  header(origin: string): string | undefined {
    const jar = this.byOrigin.get(origin);
    if (jar === undefined || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** The first form of an HTML page: its action and its fields (inputs with a name, hidden included). */
export function parseForm(html: string): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form === null) throw new Error(`no form in page: ${html.slice(0, 300)}`);
  const fields: Record<string, string> = {};
  for (const input of form[2]!.matchAll(/<input([^>]*)>/gi)) {
    const name = /name="([^"]*)"/.exec(input[1]!)?.[1];
    const value = /value="([^"]*)"/.exec(input[1]!)?.[1] ?? '';
    if (name !== undefined) fields[name] = value.replace(/&amp;/g, '&');
  }
  return { action: form[1]!.replace(/&amp;/g, '&'), fields };
}

/**
 * Follows the identity provider's pages with `fetch` from `authorizationUrl`
 * (where GET /auth/login sent the browser), signing in as `login`, through
 * the consent page, until the provider redirects to a URL starting with
 * `redirectUriPrefix`; returns that URL (the callback with code and state).
 */
export async function signInThroughProvider(jar: CookieJar, authorizationUrl: string, login: string, redirectUriPrefix: string): Promise<URL> {
  let next: { url: string; method: 'GET' | 'POST'; body?: URLSearchParams } = { url: authorizationUrl, method: 'GET' };
  for (let step = 0; step < 20; step++) {
    const url = new URL(next.url);
    if (url.href.startsWith(redirectUriPrefix)) return url;
    const headers: Record<string, string> = {};
    const cookie = jar.header(url.origin);
    if (cookie !== undefined) headers.cookie = cookie;
    if (next.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method: next.method, headers, redirect: 'manual', ...(next.body === undefined ? {} : { body: next.body }) });
    jar.store(url.origin, res.headers.getSetCookie());
    if (res.status >= 300 && res.status < 400) {
      next = { url: new URL(res.headers.get('location')!, url).href, method: 'GET' };
      continue;
    }
    const page = await res.text();
    if (res.status !== 200) throw new Error(`identity provider answered ${res.status}: ${page.slice(0, 500)}`);
    const form = parseForm(page);
    const fields = { ...form.fields };
    if ('login' in fields) {
      fields.login = login;
      fields.password = 'any';
    }
    next = { url: new URL(form.action, url).href, method: 'POST', body: new URLSearchParams(fields) };
  }
  throw new Error('the identity provider did not redirect back');
}
