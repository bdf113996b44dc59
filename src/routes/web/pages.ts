/**
 * The few server-rendered pages of the web door (sign-in refused, the
 * development sign-in form). Plain HTML, no script, one stylesheet of this
 * origin, so they pass the same strict CSP as the UI. Every value is escaped.
 */
import type { DevPrincipal } from '../../domain/sessions.ts';

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const PAGE_CSS = `body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}
.banner{background:#fff3cd;border:2px solid #b58100;padding:.5rem 1rem;font-weight:bold}
fieldset{border:1px solid #888;padding:1rem}label{display:block;margin:.25rem 0}
.small{color:#555;font-size:.9rem}button,a.button{font-size:1rem;padding:.4rem 1rem;margin-top:1rem}
:focus-visible{outline:3px solid #0b5fff;outline-offset:2px}`;

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — bxchange</title>
<link rel="stylesheet" href="/auth/page.css">
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

/** A page that explains why there is no session, with what to do next. */
export function messagePage(title: string, paragraphs: string[], link?: { href: string; text: string }): string {
  const text = paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join('\n');
  const action = link === undefined ? '' : `\n<p><a class="button" href="${escapeHtml(link.href)}">${escapeHtml(link.text)}</a></p>`;
  return layout(title, text + action);
}

export function devSignInPage(principals: DevPrincipal[], returnTo: string): string {
  const banner = `<p class="banner" role="alert">Development sign-in: no password is asked. Never use this mode with real data.</p>`;
  if (principals.length === 0) {
    return layout(
      'Development sign-in',
      `${banner}\n<p>There is no active principal yet. Create one with the bootstrap administrator token, for example:</p>
<pre>npx bxchange principal create --name clerk --kind user --member secretariat@ixelles=read,send,manage</pre>`,
    );
  }
  const options = principals
    .map((p, i) => {
      const id = `p${i}`;
      const details = [p.displayName, p.mailboxes.length > 0 ? p.mailboxes.join(', ') : 'no mailbox', p.admin ? 'administrator' : null]
        .filter((x): x is string => x !== null && x !== '')
        .join(' · ');
      return `<label for="${id}"><input type="radio" id="${id}" name="principal" value="${escapeHtml(p.name)}"${i === 0 ? ' checked' : ''}> <strong>${escapeHtml(p.name)}</strong> <span class="small">${escapeHtml(details)}</span></label>`;
    })
    .join('\n');
  return layout(
    'Development sign-in',
    `${banner}
<form method="post" action="/auth/dev">
<fieldset>
<legend>Sign in as</legend>
${options}
</fieldset>
<input type="hidden" name="returnTo" value="${escapeHtml(returnTo)}">
<button type="submit">Sign in</button>
</form>`,
  );
}
