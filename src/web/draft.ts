/**
 * The draft screen: computed recipients and the keys every file is encrypted
 * for, the files (chosen or dropped), their encryption and upload with
 * progress per file and overall, pause/resume, and submission.
 */
import { api, ApiError, type Envelope, type EncryptionKey } from './api.ts';
import { clear, formatBytes, h, uid, type Child } from './dom.ts';
import { label, roleLabel, statusLabel, t, type MessageKey } from './i18n.ts';
import { spoolAvailable } from './spool.ts';
import { envelopeType } from './state.ts';
import { errorBox, heading, messageOf, navigate } from './ui.ts';
import { forgetDraft, queueFor, rememberDraft, type JobState } from './uploads.ts';

/**
 * File roles the envelope types use (tutelle categories, procurement, We Pulse,
 * decorations), offered besides the draft's required roles (`requiredRoles` of
 * the envelope answer) for optional files such as annexes.
 */
const KNOWN_ROLES = ['deliberation', 'budget', 'budgetChange', 'accounts', 'regulation', 'decision', 'specifications', 'awardReport', 'annex', 'dataset', 'document', 'nomination'];

const STATE_KEYS: Record<JobState, MessageKey> = {
  new: 'stateNew',
  encrypting: 'stateEncrypting',
  encrypted: 'stateEncrypted',
  uploading: 'stateUploading',
  paused: 'statePaused',
  done: 'stateDone',
  error: 'stateError',
  needsFile: 'stateNeedsFile',
};

let encryptModule: Promise<typeof import('./pgp.ts')> | null = null;
function pgp() {
  encryptModule ??= import('./pgp.ts');
  return encryptModule;
}

export async function renderDraft(main: HTMLElement, id: string): Promise<() => void> {
  const envelope = await api<Envelope>('GET', `/api/v1/envelopes/${encodeURIComponent(id)}`);
  if (envelope.status !== 'draft') {
    await forgetDraft(id);
    navigate(`/app/envelopes/${id}`, true);
    return () => {};
  }
  rememberDraft(envelope.id, envelope.type, envelope.from);
  const type = await envelopeType(envelope.type).catch(() => null);
  const keys: EncryptionKey[] = envelope.encryptionKeys ?? [];
  const queue = queueFor(id);
  await queue.recover();
  // Starts fetching openpgp.js while the user picks files.
  void pgp();

  const title = heading(t('draftTitle'));
  const message = h('div', { role: 'status', 'aria-live': 'polite', class: 'status-line' });
  const problem = h('div', { role: 'alert', class: 'alert error', tabindex: '-1', hidden: true });

  const recipients = h(
    'section',
    { 'aria-labelledby': 'recipients-title' },
    h('h2', { id: 'recipients-title' }, t('recipients')),
    h(
      'ul',
      { class: 'recipients' },
      envelope.recipients.map((r) => h('li', null, r.address, ' ', h('span', { class: 'badge' }, statusLabel(r.status)))),
    ),
    h('h3', null, t('encryptedFor')),
    keys.length === 0
      ? h('p', { class: 'alert error' }, t('noEncryptionKeys'))
      : h(
          'ul',
          { class: 'keys' },
          keys.map((k) => h('li', null, k.mailbox, ' — ', h('code', null, k.fingerprint.replace(/(.{4})/g, '$1 ').trim()))),
        ),
  );

  // ----- file choice -----
  const inputId = uid('files');
  const fileInput = h('input', { id: inputId, type: 'file', multiple: true });
  // Roles: the draft's required ones first (from the server), then the others, or none.
  const requiredRoles = envelope.requiredRoles ?? [];
  const serverFiles = envelope.files.filter((f) => f.complete);
  /** Required roles no file has yet (uploaded, or queued here with that role). */
  const missingRoles = (): string[] => {
    const covered = new Set<string | null>([...serverFiles.map((f) => f.role), ...queue.jobs.map((j) => j.role)]);
    return requiredRoles.filter((r) => !covered.has(r));
  };
  const roleSelect = (id: string, current: string | null, attrs: Record<string, string | ((event: Event) => void)> = {}): HTMLSelectElement => {
    const others = KNOWN_ROLES.filter((r) => !requiredRoles.includes(r));
    // A role kept from before (another page version) stays selectable.
    if (current !== null && current !== '' && !requiredRoles.includes(current) && !others.includes(current)) others.push(current);
    const option = (r: string, text: string): Child => h('option', { value: r }, text);
    const select = h(
      'select',
      { id, ...attrs },
      requiredRoles.length === 0
        ? null
        : h('optgroup', { label: t('requiredRolesGroup') }, requiredRoles.map((r) => option(r, t('requiredMark', { role: roleLabel(r) })))),
      h('optgroup', { label: t('otherRolesGroup') }, others.map((r) => option(r, roleLabel(r)))),
      option('', t('noRole')),
    );
    select.value = current ?? '';
    return select;
  };
  const roleId = uid('role');
  const roleInput = roleSelect(roleId, null);
  /** Pre-selects the first required role still without a file (none when all are covered). */
  const preselectRole = () => {
    roleInput.value = missingRoles()[0] ?? '';
  };
  preselectRole();
  const dropZone = h(
    'div',
    { class: 'dropzone' },
    h('div', { class: 'field' }, h('label', { for: roleId }, t('newFilesRole')), roleInput),
    h('div', { class: 'field' }, h('label', { for: inputId }, t('chooseFiles')), fileInput),
    h('p', { class: 'hint' }, t('dropHere')),
  );
  const addFiles = (files: File[]) => {
    if (files.length === 0) return;
    // Several files at once under a required role: each takes the next required role still uncovered.
    const chosen = roleInput.value || null;
    for (const file of files) {
      const missing = missingRoles();
      const role = chosen !== null && requiredRoles.includes(chosen) ? (missing.includes(chosen) ? chosen : (missing[0] ?? null)) : chosen;
      queue.addFiles([file], role);
    }
    fileInput.value = '';
    preselectRole();
    update();
  };
  fileInput.addEventListener('change', () => addFiles([...(fileInput.files ?? [])]));
  dropZone.addEventListener('dragover', (event) => {
    event.preventDefault();
    dropZone.classList.add('dragging');
  });
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
  dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropZone.classList.remove('dragging');
    addFiles([...(event.dataTransfer?.files ?? [])]);
  });

  // ----- job table -----
  const rows = h('tbody');
  const table = h(
    'table',
    { class: 'jobs' },
    h('caption', null, t('files')),
    h('thead', null, h('tr', null, [t('colName'), t('colRole'), t('colSize'), t('encrypting'), t('uploading'), t('colStatus'), t('colActions')].map((c) => h('th', { scope: 'col' }, c)))),
    rows,
  );
  const overallId = uid('overall');
  const overall = h('progress', { id: overallId, max: 1, value: 0 });
  const overallText = h('span', { class: 'progress-text' });
  const startButton = h('button', { type: 'button' }, t('startUpload'));
  const pauseButton = h('button', { type: 'button', class: 'secondary' }, t('pause'));
  const rolesStatusId = uid('roles-status');
  const rolesStatus = h('p', { id: rolesStatusId, class: 'roles-status', 'aria-live': 'polite', 'data-testid': 'missing-roles', hidden: requiredRoles.length === 0 });
  const submitButton = h('button', { type: 'button', 'aria-describedby': requiredRoles.length === 0 ? null : rolesStatusId }, t('submit'));
  const deleteButton = h('button', { type: 'button', class: 'danger' }, t('deleteDraft'));

  const rowElements = new Map<string, { row: HTMLTableRowElement; enc: HTMLProgressElement; up: HTMLProgressElement; state: HTMLElement; upText: HTMLElement }>();

  function renderRows() {
    rows.replaceChildren();
    rowElements.clear();
    for (const job of queue.jobs) {
      const enc = h('progress', { max: Math.max(job.size, 1), value: 0, 'aria-label': `${t('encrypting')} ${job.name}` });
      const up = h('progress', { max: Math.max(job.cipherSize ?? job.size, 1), value: 0, 'aria-label': `${t('uploading')} ${job.name}` });
      const state = h('span', { class: 'job-state' });
      const upText = h('span', { class: 'progress-text' });
      const roleCellId = uid('jobrole');
      const roleCell =
        job.uploadUrl === undefined && job.state !== 'done'
          ? h(
              'td',
              null,
              h('label', { for: roleCellId, class: 'visually-hidden' }, t('fileRole', { name: job.name })),
              roleSelect(roleCellId, job.role, {
                onchange: (event: Event) => {
                  queue.setRole(job.id, (event.target as HTMLSelectElement).value || null);
                  update();
                },
              }),
            )
          : h('td', { 'data-role': job.role ?? '' }, job.role ? roleLabel(job.role) : t('noRole'));
      const actions = h('td', null);
      if (job.state === 'needsFile') {
        const again = uid('again');
        actions.append(
          h('label', { for: again, class: 'visually-hidden' }, t('chooseFiles')),
          h('input', {
            id: again,
            type: 'file',
            onchange: (event: Event) => {
              const file = (event.target as HTMLInputElement).files?.[0];
              if (file) queue.provideFile(job.id, file);
            },
          }),
        );
      }
      if (job.state !== 'done') {
        actions.append(h('button', { type: 'button', class: 'secondary', onclick: () => void queue.remove(job.id) }, t('remove')));
      }
      const row = h(
        'tr',
        { 'data-job': job.id },
        h('th', { scope: 'row' }, job.name),
        roleCell,
        h('td', null, formatBytes(job.size)),
        h('td', null, enc),
        h('td', null, up, ' ', upText),
        h('td', null, state),
        actions,
      );
      rows.append(row);
      rowElements.set(job.id, { row, enc, up, state, upText });
    }
    update();
  }

  let lastCount = -1;
  let lastStates = '';
  function update() {
    const states = queue.jobs.map((j) => `${j.id}:${j.state}:${j.uploadUrl !== undefined}`).join(',');
    if (queue.jobs.length !== lastCount || states !== lastStates) {
      lastCount = queue.jobs.length;
      lastStates = states;
      // A job's state or upload changed: rebuild the rows (a created upload's role is no longer editable).
      renderRows();
      return;
    }
    for (const job of queue.jobs) {
      const el = rowElements.get(job.id);
      if (el === undefined) continue;
      el.enc.value = job.cipherSize !== undefined || job.state === 'done' ? el.enc.max : job.encrypted;
      el.up.max = Math.max(job.cipherSize ?? job.size, 1);
      el.up.value = job.state === 'done' ? el.up.max : job.uploaded;
      el.upText.textContent = `${Math.floor((100 * el.up.value) / el.up.max)} %`;
      el.state.textContent = t(STATE_KEYS[job.state]) + (job.error ? ` — ${job.error}` : '') + (job.resumedFromSpool && job.state !== 'done' ? ` — ${t('resumedFromSpool')}` : '');
      el.row.dataset.state = job.state;
    }
    const { done, total } = queue.progress();
    overall.max = Math.max(total, 1);
    overall.value = done;
    overallText.textContent = `${Math.floor((100 * done) / Math.max(total, 1))} % (${formatBytes(done)} / ${formatBytes(total)})`;
    const hasWork = queue.jobs.some((j) => j.state === 'new' || j.state === 'encrypted' || j.state === 'paused' || j.state === 'error');
    startButton.disabled = queue.isRunning || !hasWork || keys.length === 0;
    startButton.textContent = queue.jobs.some((j) => j.state === 'paused') ? t('resume') : t('startUpload');
    pauseButton.disabled = !queue.isRunning;
    const missing = missingRoles();
    if (requiredRoles.length > 0) {
      const text = missing.length > 0 ? t('missingRoles', { roles: missing.map(roleLabel).join(', ') }) : t('rolesCovered', { roles: requiredRoles.map(roleLabel).join(', ') });
      if (rolesStatus.textContent !== text) rolesStatus.textContent = text;
      rolesStatus.className = missing.length > 0 ? 'roles-status alert' : 'roles-status';
      rolesStatus.dataset.missing = missing.join(' ');
    }
    submitButton.disabled = queue.isRunning || queue.pending || missing.length > 0 || (queue.jobs.length === 0 && envelope.files.length === 0);
  }

  const stopListening = queue.onChange(update);
  startButton.addEventListener('click', () => void queue.start(keys.map((k) => k.publicKey), async (...args) => (await pgp()).encryptToSpool(...args)));
  pauseButton.addEventListener('click', () => void queue.pause());
  submitButton.addEventListener('click', () => {
    void (async () => {
      problem.hidden = true;
      submitButton.disabled = true;
      try {
        await api<Envelope>('POST', `/api/v1/envelopes/${id}/submit`);
        await forgetDraft(id);
        message.textContent = t('submitted');
        navigate(`/app/envelopes/${id}`);
      } catch (err) {
        problem.hidden = false;
        clear(problem,
          h('p', null, t('submitRefused', { message: err instanceof ApiError ? (err.problem.detail ?? err.message) : messageOf(err) })),
          err instanceof ApiError && (err.problem.issues ?? []).length > 0
            ? h('ul', null, (err.problem.issues ?? []).map((i) => h('li', null, `${i.name ?? ''}: ${i.detail ?? ''}${i.value !== undefined ? ` (${String(i.value)})` : ''}`)))
            : null,
        );
        problem.focus();
        update();
      }
    })();
  });
  deleteButton.addEventListener('click', () => {
    void (async () => {
      try {
        await queue.pause();
        await api('DELETE', `/api/v1/envelopes/${id}`);
        await forgetDraft(id);
        navigate('/app/compose');
      } catch (err) {
        problem.hidden = false;
        problem.replaceChildren(errorBox(err));
      }
    })();
  });

  clear(
    main,
    title,
    h('p', { class: 'lead' }, `${type ? label(type.title, envelope.type) : envelope.type} — ${envelope.from}`),
    problem,
    spoolAvailable() ? null : h('p', { class: 'alert error' }, t('noOpfs')),
    recipients,
    h(
      'section',
      { 'aria-labelledby': 'files-title' },
      h('h2', { id: 'files-title' }, t('files')),
      serverFiles.length === 0
        ? null
        : h('div', null, h('h3', null, t('uploadedFiles')), h('ul', null, serverFiles.map((f) => h('li', null, `${f.name} (${formatBytes(f.size)})${f.role ? ` — ${roleLabel(f.role)}` : ''}`)))),
      dropZone,
      table,
      h('div', { class: 'field' }, h('label', { for: overallId }, t('overall')), overall, ' ', overallText),
      h('div', { class: 'actions' }, startButton, pauseButton),
    ),
    rolesStatus,
    h('div', { class: 'actions submit' }, submitButton, deleteButton),
    message,
  );
  renderRows();
  // After a reload: continue the uploads whose spool survived, without asking again.
  if (queue.jobs.some((j) => j.resumedFromSpool && (j.state === 'paused' || j.state === 'encrypted')) && !queue.isRunning && !queue.isPaused && keys.length > 0) {
    void queue.start(keys.map((k) => k.publicKey), async (...args) => (await pgp()).encryptToSpool(...args));
  }
  return stopListening;
}
