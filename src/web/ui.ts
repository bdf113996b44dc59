/** Shared bits of the screens: navigation, messages, problem display. */
import { ApiError } from './api.ts';
import { h, type Child } from './dom.ts';
import { t } from './i18n.ts';

type Navigate = (path: string, replace?: boolean) => void;
let navigateImpl: Navigate = (path) => {
  location.assign(path);
};

export function setNavigate(fn: Navigate): void {
  navigateImpl = fn;
}

export function navigate(path: string, replace = false): void {
  navigateImpl(path, replace);
}

/** An in-app link (handled by the router, a real href for keyboard, middle click and screen readers). */
export function link(path: string, ...children: Child[]): HTMLAnchorElement {
  return h('a', { href: path, 'data-link': '' }, ...children);
}

export function messageOf(err: unknown): string {
  if (err instanceof ApiError) {
    const issues = (err.problem.issues ?? []).map((i) => `${i.name ?? ''} ${i.detail ?? ''}`.trim()).filter(Boolean);
    return [err.problem.detail ?? err.problem.title ?? `HTTP ${err.status}`, ...issues].join(' — ');
  }
  return err instanceof Error ? err.message : String(err);
}

export function errorBox(err: unknown): HTMLElement {
  return h('p', { class: 'alert error', role: 'alert' }, t('error', { message: messageOf(err) }));
}

/** Sets the page title and moves focus to the heading (screen-reader users hear the new screen). */
export function heading(text: string): HTMLHeadingElement {
  document.title = `${text} — bxchange`;
  return h('h1', { tabindex: '-1', id: 'page-title' }, text);
}

export function focusHeading(container: HTMLElement): void {
  container.querySelector<HTMLElement>('h1')?.focus();
}
