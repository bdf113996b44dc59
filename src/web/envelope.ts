/**
 * One envelope: metadata with the type's FR/NL labels, computed values,
 * per-recipient status, deadline (overdue in red), files (download, decrypt
 * in the browser, offered only after the integrity check), receipts (links
 * to evidence.json and signature.p7s, and a badge verified here with pkijs
 * against the platform CA), acknowledgement.
 */
import { api, fetchRaw, type Envelope, type EnvelopeTypeDescription, type FileView, type ReceiptRef } from './api.ts';
import { clear, formatBytes, h, uid } from './dom.ts';
import { eventLabel, formatDate, formatDateTime, label, statusLabel, t, todayInBrussels } from './i18n.ts';
import type { PrivateKey } from './pgp.ts';
import { meter, removeSpool, spoolHandle } from './spool.ts';
import { appState, envelopeType, rolesOn } from './state.ts';
import { errorBox, heading, link, messageOf } from './ui.ts';

/** Unlocked mailbox keys: in this page's memory only, gone on reload or sign-out. */
const unlockedKeys = new Map<string, PrivateKey[]>();
const objectUrls: string[] = [];

export function forgetSecrets(): void {
  unlockedKeys.clear();
  for (const url of objectUrls.splice(0)) URL.revokeObjectURL(url);
}

function valueText(description: EnvelopeTypeDescription | null, pointer: string, value: unknown): string {
  const labels = description?.valueLabels?.[pointer];
  if (typeof value === 'string' && labels?.[value] !== undefined) return label(labels[value], value);
  if (typeof value === 'boolean') return value ? t('yes') : t('no');
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return formatDate(value);
  if (typeof value === 'number' && description !== null) {
    const schema = description.schema.properties?.[pointer.slice(1)];
    if (schema?.type === 'integer' && /euro cents/i.test(schema.description ?? '')) {
      return new Intl.NumberFormat('fr-BE', { style: 'currency', currency: 'EUR' }).format(value / 100);
    }
  }
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** The mailbox whose key decrypts for this user: a recipient mailbox they read, else the sending one. */
function decryptingMailbox(envelope: Envelope): string | null {
  const recipient = envelope.recipients.find((r) => rolesOn(r.address).includes('read'));
  if (recipient !== undefined) return recipient.address;
  return rolesOn(envelope.from).length > 0 ? envelope.from : null;
}

export async function renderEnvelope(main: HTMLElement, id: string): Promise<void> {
  const envelope = await api<Envelope>('GET', `/api/v1/envelopes/${encodeURIComponent(id)}`);
  const description = await envelopeType(envelope.type).catch(() => null);
  const typeTitle = description ? label(description.title, envelope.type) : envelope.type;
  const title = heading(t('envelopeTitle', { type: typeTitle }));
  const today = todayInBrussels();
  // A final tutelle decision (approval, refusal, annulment, suspension) closes the clock: never overdue then.
  const decisions = (envelope.computed as { decisions?: Array<{ kind?: string }> } | undefined)?.decisions;
  const decided = Array.isArray(decisions) && decisions.some((d) => ['suspension', 'annulment', 'approval', 'refusal'].includes(d.kind ?? ''));
  const overdue = typeof envelope.deadline === 'string' && envelope.deadline < today && envelope.status === 'submitted' && !decided;
  const status = h('div', { role: 'status', 'aria-live': 'polite', class: 'status-line' });

  const facts = h(
    'dl',
    { class: 'facts' },
    h('dt', null, t('envelopeId')),
    h('dd', null, h('code', null, envelope.id)),
    h('dt', null, t('colType')),
    h('dd', null, `${typeTitle} (${envelope.type} ${envelope.typeVersion})`),
    h('dt', null, t('sender')),
    h('dd', null, envelope.from),
    h('dt', null, t('status')),
    h('dd', null, statusLabel(envelope.status)),
    h('dt', null, t('submittedAt')),
    h('dd', null, formatDateTime(envelope.submittedAt)),
    envelope.deadline
      ? [
          h('dt', null, t('deadline')),
          h('dd', { class: overdue ? 'overdue' : null, 'data-testid': 'deadline' }, formatDate(envelope.deadline), overdue ? h('strong', null, ` (${t('overdue')})`) : null),
        ]
      : null,
  );

  const metadata = h(
    'dl',
    { class: 'facts' },
    Object.entries(envelope.metadata).map(([key, value]) => [
      h('dt', null, label(description?.fieldLabels?.[`/${key}`], description?.schema.properties?.[key]?.title ?? key)),
      h('dd', null, valueText(description, `/${key}`, value)),
    ]),
  );

  const recipients = h(
    'table',
    { class: 'recipients' },
    h('caption', null, t('recipientStatus')),
    h('thead', null, h('tr', null, [t('colRecipient'), t('colStatus'), t('colDelivered'), t('colRetrieved'), t('colAcknowledged')].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      null,
      envelope.recipients.map((r) =>
        h(
          'tr',
          null,
          h('th', { scope: 'row' }, r.address),
          h('td', null, h('span', { class: `badge status-${r.status}` }, statusLabel(r.status))),
          h('td', null, formatDateTime(r.deliveredAt)),
          h('td', null, formatDateTime(r.retrievedAt)),
          h('td', null, formatDateTime(r.acknowledgedAt)),
        ),
      ),
    ),
  );

  const mailbox = decryptingMailbox(envelope);
  const keyArea = h('div', { class: 'key-area' });
  const files = h(
    'table',
    { class: 'files' },
    h('caption', null, t('files')),
    h('thead', null, h('tr', null, [t('colName'), t('colRole'), t('colSize'), t('colActions')].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      null,
      envelope.files.map((file) => {
        const cell = h('td', { class: 'file-actions' });
        const button = h('button', { type: 'button' }, t('downloadDecrypt'));
        button.addEventListener('click', () => void downloadAndDecrypt(envelope, file, mailbox, cell, button, keyArea));
        cell.append(button);
        return h('tr', { 'data-file': file.id }, h('th', { scope: 'row' }, file.name), h('td', null, file.role ?? '—'), h('td', null, formatBytes(file.size)), cell);
      }),
    ),
  );

  const receipts = h(
    'table',
    { class: 'receipts' },
    h('caption', null, t('receipts')),
    h('thead', null, h('tr', null, [t('colEvent'), t('colRecipient'), t('colTime'), t('colSignature'), t('colActions')].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      null,
      (envelope.receipts ?? []).map((r) => receiptRow(r)),
    ),
  );

  const ackMailbox = envelope.status === 'submitted' ? envelope.recipients.find((r) => rolesOn(r.address).includes('read') && r.status !== 'acknowledged') : undefined;
  const ackButton =
    ackMailbox === undefined
      ? null
      : h('button', { type: 'button', 'data-action': 'acknowledge' }, `${t('acknowledge')} (${ackMailbox.address})`);
  ackButton?.addEventListener('click', () => {
    void (async () => {
      ackButton.disabled = true;
      try {
        await api('POST', `/api/v1/envelopes/${envelope.id}/acknowledge`, { mailbox: ackMailbox!.address });
        await renderEnvelope(main, id);
        main.querySelector<HTMLElement>('.status-line')!.textContent = t('acknowledged');
      } catch (err) {
        ackButton.disabled = false;
        status.replaceChildren(errorBox(err));
      }
    })();
  });

  const backLinks = appState().mailboxes.length > 0 && mailbox !== null
    ? h('p', { class: 'back' }, link(`/app/mailboxes/${encodeURIComponent(mailbox)}/${mailbox === envelope.from ? 'out' : 'in'}`, mailbox === envelope.from ? t('navOutbox') : t('navInbox')))
    : null;

  clear(
    main,
    backLinks,
    title,
    status,
    h('section', { 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title', class: 'visually-hidden' }, t('envelopeId')), facts),
    h('section', { 'aria-labelledby': 'md-title' }, h('h2', { id: 'md-title' }, t('metadata')), metadata),
    h('section', null, recipients),
    h('section', null, keyArea, files),
    h('section', null, receipts),
    ackButton ? h('div', { class: 'actions' }, ackButton) : null,
  );
}

function receiptRow(r: ReceiptRef): HTMLTableRowElement {
  const badge = h('span', { class: 'badge pending', 'data-verified': 'pending' }, t('verifying'));
  void (async () => {
    try {
      const [{ verifyReceipt }, evidence, signature, ca] = await Promise.all([
        import('./receipts.ts'),
        fetchRaw(`/api/v1/receipts/${r.id}/evidence.json`).then((res) => res.arrayBuffer()),
        fetchRaw(`/api/v1/receipts/${r.id}/signature.p7s`).then((res) => res.arrayBuffer()),
        fetchRaw('/api/v1/pki/ca.pem').then((res) => res.text()),
      ]);
      const result = await verifyReceipt(evidence, signature, ca);
      badge.className = `badge ${result.ok ? 'ok' : 'bad'}`;
      badge.dataset.verified = result.ok ? 'true' : 'false';
      badge.textContent = result.ok ? `✓ ${t('verified')}` : `✗ ${t('notVerified')}`;
      if (!result.ok && result.reason) badge.title = result.reason;
    } catch (err) {
      badge.className = 'badge bad';
      badge.dataset.verified = 'false';
      badge.textContent = `✗ ${t('notVerified')}`;
      badge.title = messageOf(err);
    }
  })();
  return h(
    'tr',
    { 'data-receipt': r.id },
    h('th', { scope: 'row' }, eventLabel(r.eventType), ' ', h('small', { class: 'hint' }, `(${r.eventType})`)),
    h('td', null, r.recipient ?? '—'),
    h('td', null, formatDateTime(r.eventTime)),
    h('td', null, badge),
    h(
      'td',
      null,
      h('a', { href: `/api/v1/receipts/${r.id}/evidence.json`, download: `evidence-${r.id}.json`, 'data-kind': 'evidence' }, 'evidence.json'),
      ' · ',
      h('a', { href: `/api/v1/receipts/${r.id}/signature.p7s`, download: `signature-${r.id}.p7s`, 'data-kind': 'signature' }, 'signature.p7s'),
    ),
  );
}

/** Asks for the passphrase (once per mailbox and page) and unlocks the mailbox's private keys. */
function askPassphrase(mailbox: string, armored: string[], area: HTMLElement): Promise<PrivateKey[]> {
  return new Promise((resolve, reject) => {
    const id = uid('pass');
    const error = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    const input = h('input', { id, type: 'password', autocomplete: 'off', 'aria-describedby': error.id });
    const cancel = h('button', { type: 'button', class: 'secondary' }, '×');
    const form = h(
      'form',
      { class: 'passphrase' },
      h('div', { class: 'field' }, h('label', { for: id }, t('passphraseFor', { mailbox })), input, h('small', { class: 'hint' }, t('keyStaysHere')), error),
      h('button', { type: 'submit' }, t('unlock')),
    );
    cancel.setAttribute('aria-label', 'Cancel');
    form.append(cancel);
    cancel.addEventListener('click', () => {
      area.replaceChildren();
      reject(new Error(t('wrongPassphrase')));
    });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void (async () => {
        const { unlockKeys } = await import('./pgp.ts');
        try {
          const keys = await unlockKeys(armored, input.value);
          input.value = '';
          area.replaceChildren();
          resolve(keys);
        } catch {
          error.hidden = false;
          error.textContent = t('wrongPassphrase');
          input.setAttribute('aria-invalid', 'true');
          input.select();
        }
      })();
    });
    area.replaceChildren(form);
    input.focus();
  });
}

async function keysFor(mailbox: string, area: HTMLElement): Promise<PrivateKey[]> {
  const known = unlockedKeys.get(mailbox);
  if (known !== undefined) return known;
  const deposit = await api<{ items: Array<{ privateKey: string }> }>('GET', `/api/v1/mailboxes/${encodeURIComponent(mailbox)}/private-key`);
  if (deposit.items.length === 0) throw new Error(t('noPrivateKey', { mailbox }));
  const keys = await askPassphrase(mailbox, deposit.items.map((i) => i.privateKey), area);
  unlockedKeys.set(mailbox, keys);
  return keys;
}

function plainName(file: FileView, fromPacket: string | null): string {
  const candidate = fromPacket ?? file.name.replace(/\.(pgp|gpg|asc)$/i, '');
  return candidate.replace(/[\\/]/g, '_') || 'file';
}

async function downloadAndDecrypt(envelope: Envelope, file: FileView, mailbox: string | null, cell: HTMLElement, button: HTMLButtonElement, keyArea: HTMLElement): Promise<void> {
  button.disabled = true;
  const progressDownload = h('progress', { max: Math.max(file.size, 1), value: 0, 'aria-label': `${t('downloading')} ${file.name}` });
  const progressDecrypt = h('progress', { max: Math.max(file.size, 1), value: 0, 'aria-label': `${t('decrypting')} ${file.name}` });
  const note = h('span', { class: 'file-note', role: 'status' });
  cell.replaceChildren(progressDownload, ' ', progressDecrypt, ' ', note);
  const cipherName = `${envelope.id}-${file.id}.pgp`;
  const plainSpool = `${envelope.id}-${file.id}.plain`;
  try {
    if (mailbox === null) throw new Error(t('noPrivateKey', { mailbox: envelope.from }));
    const keys = await keysFor(mailbox, keyArea);
    // 1. ciphertext → OPFS, streamed, SHA-256 checked against the stored file's.
    const response = await fetchRaw(`/api/v1/envelopes/${envelope.id}/files/${file.id}`);
    if (response.body === null) throw new Error('empty response');
    const cipherHandle = await spoolHandle('downloads', cipherName, true);
    const counted = meter((bytes) => {
      progressDownload.value = bytes;
    });
    await response.body.pipeThrough(counted.stream).pipeTo(await cipherHandle!.createWritable({ keepExistingData: false }));
    if (counted.digest() !== file.sha256) throw new Error(t('integrityFailed'));
    // 2. decrypt → another OPFS file, published only if the stream ended cleanly.
    const { decryptToSpool } = await import('./pgp.ts');
    const plainHandle = await spoolHandle('downloads', plainSpool, true);
    let result;
    try {
      result = await decryptToSpool(await cipherHandle!.getFile(), keys, plainHandle!, (bytes) => {
        progressDecrypt.value = Math.min(bytes, progressDecrypt.max);
      });
    } catch (err) {
      await removeSpool('downloads', plainSpool);
      throw new Error(`${t('integrityFailed')} (${(err as Error).message})`);
    } finally {
      await removeSpool('downloads', cipherName);
    }
    progressDecrypt.value = progressDecrypt.max;
    if (file.plaintextSha256 !== null && result.sha256 !== file.plaintextSha256) {
      await removeSpool('downloads', plainSpool);
      throw new Error(t('hashMismatch'));
    }
    const plain = await plainHandle!.getFile();
    const url = URL.createObjectURL(plain);
    objectUrls.push(url);
    const name = plainName(file, result.filename);
    cell.replaceChildren(
      h('a', { href: url, download: name, class: 'button', 'data-kind': 'plaintext' }, t('save', { name })),
      ' ',
      h('span', { class: 'badge ok' }, `✓ ${t('integrityOk')}`),
    );
    cell.querySelector<HTMLElement>('a')?.focus();
  } catch (err) {
    button.disabled = false;
    cell.replaceChildren(button, h('p', { class: 'field-error', role: 'alert' }, messageOf(err)));
  }
}
