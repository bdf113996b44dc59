/**
 * Inbox and outbox of a mailbox, newest first, with filters: type and status
 * (asked of the server), deadline (on the page, from each list item's
 * `deadline`; overdue as the server says: past and no final decision).
 */
import { api, type EnvelopeSummary, type Page } from './api.ts';
import { clear, h, uid } from './dom.ts';
import { formatDate, formatDateTime, label, statusLabel, t, todayInBrussels } from './i18n.ts';
import { envelopeTypes, mailboxesWith } from './state.ts';
import { heading, link, navigate } from './ui.ts';

const IN_STATUSES = ['delivered', 'retrieved', 'acknowledged'];
const OUT_STATUSES = ['draft', 'submitted'];

function addDays(isoDate: string, days: number): string {
  const d = new Date(`${isoDate}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

export async function renderMailbox(main: HTMLElement, address: string, direction: 'in' | 'out', query: URLSearchParams): Promise<void> {
  const readable = mailboxesWith('read');
  const types = await envelopeTypes();
  const typeFilter = query.get('type') ?? '';
  const statusFilter = query.get('status') ?? '';
  const deadlineFilter = query.get('deadline') ?? '';
  const title = heading(t(direction === 'in' ? 'inboxTitle' : 'outboxTitle', { mailbox: address }));

  const mailboxId = uid('mb');
  const typeId = uid('ft');
  const statusId = uid('fs');
  const deadlineId = uid('fd');
  const mailboxSelect = h('select', { id: mailboxId, name: 'mailbox' }, readable.map((a) => h('option', { value: a }, a)));
  mailboxSelect.value = address;
  const typeSelect = h(
    'select',
    { id: typeId, name: 'type' },
    h('option', { value: '' }, t('all')),
    types.map((type) => h('option', { value: type.name }, label(type.title, type.name))),
  );
  typeSelect.value = typeFilter;
  const statusSelect = h(
    'select',
    { id: statusId, name: 'status' },
    h('option', { value: '' }, t('all')),
    (direction === 'in' ? IN_STATUSES : OUT_STATUSES).map((s) => h('option', { value: s }, statusLabel(s))),
  );
  statusSelect.value = statusFilter;
  const deadlineSelect = h(
    'select',
    { id: deadlineId, name: 'deadline' },
    h('option', { value: '' }, t('all')),
    h('option', { value: 'any' }, t('deadlineAny')),
    h('option', { value: 'week' }, t('deadlineWeek')),
    h('option', { value: 'overdue' }, t('deadlineOverdue')),
  );
  deadlineSelect.value = deadlineFilter;
  const filters = h(
    'form',
    { class: 'filters', role: 'search' },
    h('div', { class: 'field' }, h('label', { for: mailboxId }, t('mailbox')), mailboxSelect),
    h('div', { class: 'field' }, h('label', { for: typeId }, t('filterType')), typeSelect),
    h('div', { class: 'field' }, h('label', { for: statusId }, t('filterStatus')), statusSelect),
    h('div', { class: 'field' }, h('label', { for: deadlineId }, t('filterDeadline')), deadlineSelect),
    h('button', { type: 'submit' }, t('applyFilters')),
  );
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (typeSelect.value) params.set('type', typeSelect.value);
    if (statusSelect.value) params.set('status', statusSelect.value);
    if (deadlineSelect.value) params.set('deadline', deadlineSelect.value);
    const qs = params.toString();
    navigate(`/app/mailboxes/${encodeURIComponent(mailboxSelect.value)}/${direction}${qs ? `?${qs}` : ''}`);
  });

  const today = todayInBrussels();
  // Same rule as the envelope screen: a submitted envelope whose deadline (a Brussels date) has passed.
  const deadlineOf = (e: EnvelopeSummary): { date: string; overdue: boolean } | null =>
    typeof e.deadline === 'string' ? { date: e.deadline, overdue: e.overdue ?? (e.deadline < today && e.envelopeStatus === 'submitted') } : null;
  const keep = (e: EnvelopeSummary): boolean => {
    if (deadlineFilter === '') return true;
    const d = deadlineOf(e);
    if (d === null) return false;
    if (deadlineFilter === 'overdue') return d.overdue;
    if (deadlineFilter === 'week') return !d.overdue && d.date <= addDays(today, 7);
    return true;
  };

  const rows = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true }, t('noEnvelopes'));
  const moreButton = h('button', { type: 'button', class: 'secondary', hidden: true }, t('more'));
  const typeTitle = (name: string) => label(types.find((x) => x.name === name)?.title, name);
  let shown = 0;

  async function loadPage(path: string) {
    const page = await api<Page<EnvelopeSummary>>('GET', path);
    for (const e of page.items.filter(keep)) {
      const d = deadlineOf(e);
      const subject = typeof e.metadata.subject === 'string' ? e.metadata.subject : '';
      rows.append(
        h(
          'tr',
          { 'data-envelope': e.id },
          h('td', null, formatDateTime(e.submittedAt ?? e.createdAt)),
          h('td', null, typeTitle(e.type)),
          h('td', null, direction === 'in' ? e.from : e.recipients.map((r) => r.address).join(', ')),
          h('th', { scope: 'row' }, link(e.envelopeStatus === 'draft' ? `/app/drafts/${e.id}` : `/app/envelopes/${e.id}`, subject || t('open'))),
          h('td', null, h('span', { class: `badge status-${e.status}` }, statusLabel(e.status))),
          h('td', { class: d?.overdue ? 'deadline overdue' : 'deadline', 'data-deadline': d?.date ?? null }, d === null ? '—' : [formatDate(d.date), d.overdue ? h('strong', null, ` (${t('overdue')})`) : null]),
        ),
      );
      shown += 1;
    }
    empty.hidden = shown > 0;
    moreButton.hidden = page.next === undefined;
    moreButton.onclick = page.next === undefined ? null : () => void loadPage(page.next!);
  }

  const params = new URLSearchParams({ direction });
  if (typeFilter) params.set('type', typeFilter);
  if (statusFilter) params.set('status', statusFilter);
  const table = h(
    'table',
    { class: 'envelopes' },
    h('caption', { class: 'visually-hidden' }, title.textContent ?? ''),
    h(
      'thead',
      null,
      h('tr', null, [t('colDate'), t('colType'), direction === 'in' ? t('colFrom') : t('colTo'), t('colSubject'), t('colStatus'), t('colDeadline')].map((c) => h('th', { scope: 'col' }, c))),
    ),
    rows,
  );
  clear(main, title, filters, table, empty, moreButton);
  await loadPage(`/api/v1/mailboxes/${encodeURIComponent(address)}/envelopes?${params.toString()}`);
}
