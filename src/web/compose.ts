/**
 * Compose: from mailbox, envelope type, the type's metadata form, optional
 * recipients (free addressing) and reply reference. "Prepare" creates the
 * draft on the server (which routes it and pins the keys to encrypt for) and
 * moves on to the draft screen; a refused draft shows each issue next to its
 * field.
 */
import { api, ApiError, type Envelope, type EnvelopeTypeDescription } from './api.ts';
import { clear, h, uid } from './dom.ts';
import { label, t } from './i18n.ts';
import { metadataForm, type MetadataForm } from './schema-form.ts';
import { envelopeType, envelopeTypes, mailboxesWith } from './state.ts';
import { errorBox, heading, link, messageOf, navigate } from './ui.ts';
import { pendingDrafts, rememberDraft } from './uploads.ts';

export async function renderCompose(main: HTMLElement, query: URLSearchParams): Promise<void> {
  const senders = mailboxesWith('send');
  const types = await envelopeTypes();
  const title = heading(t('composeTitle'));
  if (senders.length === 0) {
    clear(main, title, h('p', { class: 'alert' }, t('noSendMailbox')));
    return;
  }

  const pending = pendingDrafts();
  const pendingList =
    pending.length === 0
      ? null
      : h(
          'section',
          { class: 'pending', 'aria-labelledby': 'pending-title' },
          h('h2', { id: 'pending-title' }, t('pendingDrafts')),
          h(
            'ul',
            null,
            pending.map((d) => h('li', null, `${d.type} — ${d.from} — ${d.jobs.length} `, link(`/app/drafts/${d.envelopeId}`, t('continueDraft')))),
          ),
        );

  const summary = h('div', { id: 'form-summary', role: 'alert', class: 'alert error', tabindex: '-1', hidden: true });
  const fromId = uid('from');
  const fromError = h('p', { class: 'field-error', id: uid('err'), hidden: true });
  const fromSelect = h(
    'select',
    { id: fromId, name: 'from', 'aria-describedby': fromError.id },
    senders.map((address) => h('option', { value: address }, address)),
  );
  const initialFrom = query.get('from');
  if (initialFrom !== null && senders.includes(initialFrom)) fromSelect.value = initialFrom;

  const typeId = uid('type');
  const typeSelect = h(
    'select',
    { id: typeId, name: 'type' },
    h('option', { value: '' }, t('chooseType')),
    types.map((type) => h('option', { value: type.name }, `${label(type.title, type.name)} (${type.name})`)),
  );
  const initialType = query.get('type');
  if (initialType !== null) typeSelect.value = initialType;

  const toId = uid('to');
  const toError = h('p', { class: 'field-error', id: uid('err'), hidden: true });
  const toInput = h('input', { id: toId, name: 'to', type: 'text', autocomplete: 'off', 'aria-describedby': toError.id });
  const toField = h('div', { class: 'field', hidden: true }, h('label', { for: toId }, t('to')), toInput, toError);

  const replyId = uid('reply');
  const replyError = h('p', { class: 'field-error', id: uid('err'), hidden: true });
  const replyInput = h('input', { id: replyId, name: 'inReplyTo', type: 'text', autocomplete: 'off', 'aria-describedby': replyError.id });
  const replyField = h('div', { class: 'field', hidden: true }, h('label', { for: replyId }, t('inReplyTo')), replyInput, replyError);

  const metadataBox = h('div', { class: 'metadata' });
  const submitButton = h('button', { type: 'submit' }, t('createDraft'));
  let form: MetadataForm | null = null;
  let description: EnvelopeTypeDescription | null = null;

  const outer: Array<{ error: HTMLElement; control: HTMLElement }> = [
    { error: fromError, control: fromSelect },
    { error: toError, control: toInput },
    { error: replyError, control: replyInput },
  ];
  function clearIssues() {
    summary.hidden = true;
    summary.replaceChildren();
    form?.clearIssues();
    for (const { error, control } of outer) {
      error.hidden = true;
      error.textContent = '';
      control.removeAttribute('aria-invalid');
    }
  }
  function showOuter(which: { error: HTMLElement; control: HTMLElement }, message: string) {
    which.error.hidden = false;
    which.error.textContent = which.error.textContent ? `${which.error.textContent} ${message}` : message;
    which.control.setAttribute('aria-invalid', 'true');
  }

  async function selectType(name: string) {
    form = null;
    description = null;
    metadataBox.replaceChildren();
    if (name === '') return;
    try {
      description = await envelopeType(name);
    } catch (err) {
      metadataBox.replaceChildren(errorBox(err));
      return;
    }
    if (typeSelect.value !== name) return;
    form = metadataForm(description);
    toField.hidden = description.addressing === 'routed';
    replyField.hidden = description.inReplyTo === null;
    metadataBox.replaceChildren(h('fieldset', null, h('legend', null, label(description.title, description.name)), form.element));
  }
  typeSelect.addEventListener('change', () => void selectType(typeSelect.value));

  const formElement = h(
    'form',
    { novalidate: true, class: 'compose' },
    summary,
    h('div', { class: 'field' }, h('label', { for: fromId }, t('from')), fromSelect, fromError),
    h('div', { class: 'field' }, h('label', { for: typeId }, t('type')), typeSelect),
    toField,
    replyField,
    metadataBox,
    h('div', { class: 'actions' }, submitButton),
  );

  formElement.addEventListener('submit', (event) => {
    event.preventDefault();
    void (async () => {
      clearIssues();
      if (form === null || description === null) {
        typeSelect.focus();
        return;
      }
      const read = form.read();
      if (!read.ok) {
        formElement.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
        return;
      }
      const body: Record<string, unknown> = { type: description.name, from: fromSelect.value, metadata: read.value };
      const to = toInput.value.split(/[,;\s]+/).filter((s) => s !== '');
      if (!toField.hidden && to.length > 0) body.to = to;
      if (!replyField.hidden && replyInput.value.trim() !== '') body.inReplyTo = replyInput.value.trim();
      submitButton.disabled = true;
      try {
        const draft = await api<Envelope>('POST', '/api/v1/envelopes', body);
        rememberDraft(draft.id, draft.type, draft.from);
        navigate(`/app/drafts/${draft.id}`);
      } catch (err) {
        submitButton.disabled = false;
        showProblem(err);
      }
    })();
  });

  function showProblem(err: unknown) {
    const unplaced: string[] = [];
    let first: HTMLElement | null = null;
    if (err instanceof ApiError) {
      for (const issue of err.problem.issues ?? []) {
        const name = issue.name ?? '';
        const detail = issue.detail ?? '';
        if (name.startsWith('/metadata') && form !== null) {
          const slot = form.showIssue(name.slice('/metadata'.length), detail);
          first ??= slot.control;
        } else if (name === '/from') {
          showOuter(outer[0]!, detail);
          first ??= fromSelect;
        } else if (name.startsWith('/to')) {
          showOuter(outer[1]!, detail);
          first ??= toInput;
        } else if (name === '/inReplyTo') {
          showOuter(outer[2]!, detail);
          first ??= replyInput;
        } else {
          unplaced.push(`${name} ${detail}`.trim());
        }
      }
    }
    summary.hidden = false;
    clear(summary,
      h('p', null, err instanceof ApiError && (err.problem.issues ?? []).length > 0 ? t('formHasErrors') : messageOf(err)),
      err instanceof ApiError && err.problem.detail ? h('p', null, err.problem.detail) : null,
      unplaced.length > 0 ? h('ul', null, unplaced.map((u) => h('li', null, u))) : null,
    );
    (first ?? summary).focus();
  }

  clear(main, title, pendingList, formElement);
  if (typeSelect.value !== '') await selectType(typeSelect.value);
}
