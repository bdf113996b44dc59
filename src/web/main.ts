/**
 * bxchange web UI: entry point and router.
 *
 * No framework: a handful of screens rebuilt from data on each navigation,
 * with the History API for client-side routes under /app/ (the server answers
 * index.html for them). Heavy libraries (openpgp.js, pkijs) are loaded on
 * demand by the screens that need them.
 */
import { api, ApiError, getSession, offeredSignIn, onUnauthorized, type Session } from './api.ts';
import { clear, h, uid } from './dom.ts';
import { lang, setLang, t, type Lang } from './i18n.ts';
import { renderCompose } from './compose.ts';
import { renderDraft } from './draft.ts';
import { forgetSecrets, renderEnvelope } from './envelope.ts';
import { renderMailbox } from './mailbox.ts';
import { clearDownloads } from './spool.ts';
import { appState, loadState, mailboxesWith } from './state.ts';
import { errorBox, focusHeading, heading, setNavigate } from './ui.ts';

const header = document.getElementById('site-header')!;
const banner = document.getElementById('dev-banner')!;
const main = document.getElementById('main')!;
let session: Session | null = null;
let cleanup: () => void = () => {};
let renderSeq = 0;

function languageSwitch(): HTMLElement {
  const id = uid('lang');
  const select = h(
    'select',
    { id },
    h('option', { value: 'fr', lang: 'fr' }, 'Français'),
    h('option', { value: 'nl', lang: 'nl' }, 'Nederlands'),
  );
  select.value = lang();
  select.addEventListener('change', () => {
    setLang(select.value as Lang);
    renderChrome();
    void route();
  });
  return h('div', { class: 'lang' }, h('label', { for: id }, t('language')), select);
}

function renderChrome(): void {
  // Marked on every page, the landing included, whenever the server offers the development sign-in.
  banner.hidden = !(session?.devSignIn || session?.method === 'dev' || (session === null && offeredSignIn()?.dev === true));
  banner.textContent = t('devBanner');
  document.getElementById('skip-link')!.textContent = t('skipToContent');
  if (session === null) {
    clear(header, h('span', { class: 'brand' }, t('appName')), languageSwitch());
    return;
  }
  const inbox = mailboxesWith('read')[0];
  const signOut = h('button', { type: 'button', class: 'secondary' }, t('signOut'));
  signOut.addEventListener('click', () => void logout());
  clear(
    header,
    h('a', { href: '/app/', 'data-link': '', class: 'brand' }, t('appName')),
    h(
      'nav',
      { 'aria-label': t('mainNav') },
      h(
        'ul',
        null,
        h('li', null, h('a', { href: '/app/compose', 'data-link': '' }, t('navCompose'))),
        inbox ? h('li', null, h('a', { href: `/app/mailboxes/${encodeURIComponent(inbox)}/in`, 'data-link': '' }, t('navInbox'))) : null,
        inbox ? h('li', null, h('a', { href: `/app/mailboxes/${encodeURIComponent(inbox)}/out`, 'data-link': '' }, t('navOutbox'))) : null,
      ),
    ),
    h('span', { class: 'user' }, t('signedInAs', { name: session.principal.displayName || session.principal.name })),
    languageSwitch(),
    signOut,
  );
  for (const a of header.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (location.pathname.startsWith(new URL(a.href).pathname)) a.setAttribute('aria-current', 'page');
  }
}

async function logout(): Promise<void> {
  forgetSecrets();
  await clearDownloads();
  try {
    const result = await api<{ endSessionUrl?: string }>('POST', '/auth/logout');
    location.assign(result?.endSessionUrl ?? '/');
  } catch {
    location.assign('/');
  }
}

function renderLanding(): void {
  const returnTo = location.pathname.startsWith('/app/') ? location.pathname + location.search : '/app/';
  const signInLink = h('a', { href: `/auth/login?returnTo=${encodeURIComponent(returnTo)}`, class: 'button', id: 'sign-in' }, t('signIn'));
  const devLink = h('a', { href: `/auth/dev?returnTo=${encodeURIComponent(returnTo)}`, class: 'button secondary', id: 'dev-sign-in', hidden: true }, t('devSignIn'));
  clear(
    main,
    h(
      'section',
      { class: 'landing' },
      heading(t('signInTitle')),
      h('p', null, t('signInIntro')),
      h('p', { class: 'actions' }, signInLink, ' ', devLink),
    ),
  );
  // The development sign-in exists only on servers that enable it (older servers: ask HEAD /auth/dev).
  const offered = offeredSignIn();
  if (offered !== null) {
    devLink.hidden = !offered.dev;
    signInLink.hidden = !offered.oidc;
  } else {
    void fetch('/auth/dev', { method: 'HEAD', credentials: 'same-origin' }).then((r) => {
      devLink.hidden = !r.ok;
    });
  }
}

async function route(): Promise<void> {
  cleanup();
  cleanup = () => {};
  const seq = ++renderSeq;
  if (session === null) {
    renderLanding();
    focusHeading(main);
    return;
  }
  const path = location.pathname;
  const query = new URLSearchParams(location.search);
  const segments = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  for (const a of header.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (path.startsWith(new URL(a.href).pathname)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main, h('p', { class: 'loading', role: 'status' }, t('loading')));
  try {
    if (segments.length === 0 || (segments[0] === 'app' && segments.length === 1)) {
      const inbox = mailboxesWith('read')[0];
      navigateTo(inbox ? `/app/mailboxes/${encodeURIComponent(inbox)}/in` : '/app/compose', true);
      return;
    }
    const [app, screen, a, b] = segments;
    if (app !== 'app') throw new Error(t('notFound'));
    if (screen === 'compose') await renderCompose(main, query);
    else if (screen === 'drafts' && a) cleanup = await renderDraft(main, a);
    else if (screen === 'envelopes' && a) await renderEnvelope(main, a);
    else if (screen === 'mailboxes' && a && (b === 'in' || b === 'out')) await renderMailbox(main, a, b, query);
    else throw new Error(t('notFound'));
    if (seq === renderSeq) focusHeading(main);
  } catch (err) {
    if (seq !== renderSeq) return;
    if (err instanceof ApiError && err.status === 401) return;
    clear(main, heading(t('appName')), errorBox(err));
  }
}

function navigateTo(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  void route();
}

async function start(): Promise<void> {
  setNavigate(navigateTo);
  onUnauthorized(() => {
    session = null;
    forgetSecrets();
    renderChrome();
    renderLanding();
    main.prepend(h('p', { class: 'alert', role: 'alert' }, t('sessionEnded')));
  });
  document.addEventListener('click', (event) => {
    const target = (event.target as Element | null)?.closest('a[data-link]');
    if (!(target instanceof HTMLAnchorElement)) return;
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigateTo(target.pathname + target.search);
  });
  window.addEventListener('popstate', () => void route());
  try {
    session = await getSession();
    if (session !== null) await loadState(session);
  } catch (err) {
    renderChrome();
    clear(main, heading(t('appName')), errorBox(err));
    return;
  }
  if (session !== null) void appState();
  renderChrome();
  await route();
}

void start();
