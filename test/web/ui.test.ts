/**
 * The web UI in a real Chromium against the real server (embedded default:
 * PGlite + local folder; the browser flow does not depend on the backend,
 * whose doors are tested on both elsewhere), signed in through a real OpenID
 * provider (oidc-provider, in-process).
 *
 * Issue #9's scenario: a commune clerk composes a tutelle.act, sees a field
 * error from the server next to its field, uploads a 200 MiB file encrypted
 * in the browser with progress, reloads mid-upload and the upload resumes
 * from the same OPFS spool, submits; a BPL clerk sees it in the inbox with
 * its deadline, downloads and decrypts it (bytes equal to the original),
 * verifies a receipt in the page and with openssl, acknowledges. Screenshots
 * of each main screen go to test-artifacts/screens/.
 *
 * BX_WEB_TEST_MIB changes the file size (default 200).
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page, Request } from 'playwright-core';
import t, { type Test } from 'tap';
import { buildWeb } from '../../scripts/build-web.ts';
import { seedBrussels } from '../../src/domain/seed.ts';
import { generateMailboxKey } from '../../src/sdk/openpgp.ts';
import { createFsBlobStore } from '../../src/storage/fs-blob-store.ts';
import { freshPglite, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor } from '../helpers/e2e.ts';
import { freePort, startOidcProvider, testClientSecret } from '../helpers/oidc.ts';
import { launchBrowser, withChromium } from './browser.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCREENS = path.join(root, 'test-artifacts', 'screens');
const MIB = Number(process.env.BX_WEB_TEST_MIB ?? 200);
const SENDER = 'secretariat@ixelles';
const TUTELLE = 'tutelle@bpl';
const PASSPHRASE = 'correct horse battery staple';

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `mib` MiB of random bytes written 1 MiB at a time; returns the SHA-256. */
async function randomFile(file: string, mib: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let i = 0; i < mib; i++) {
    const chunk = randomBytes(1024 * 1024);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest('hex');
}

async function json(res: { statusCode: number; body: string }, t: Test, expected: number, what: string): Promise<Record<string, unknown>> {
  if (res.statusCode !== expected) t.fail(`${what}: ${res.statusCode} ${res.body}`);
  return JSON.parse(res.body) as Record<string, unknown>;
}

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENS, `${name}.png`), fullPage: true });
}

/** Collects what would show a broken page: uncaught errors and CSP violations. */
function watchConsole(page: Page, problems: string[]): void {
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
}

/** Signs in through the identity provider's real pages (login form, then consent). */
async function signInWithOidc(page: Page, base: string, login: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.locator('#sign-in').click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any');
  await page.locator('button[type="submit"]').click();
  // Consent page ("Continue"), then back to /auth/callback and the app.
  await page.waitForURL((url) => url.href.startsWith(`${base}/`) || url.pathname.includes('consent') || url.pathname.includes('interaction'));
  if (!page.url().startsWith(`${base}/`)) await page.locator('button[type="submit"]').click();
  await page.waitForURL(`${base}/app/**`);
  await page.locator('h1').first().waitFor();
}

async function setUp(t: Test, env: Record<string, string>): Promise<TestApp> {
  const dataDir = await tempDir(t);
  const api = await startApp(t, { name: 'embedded', database: await freshPglite(t), blobStore: createFsBlobStore(path.join(dataDir, 'blobs')), dataDir, s3: undefined }, { env });
  await seedBrussels(api.services.directoryRepository);
  return api;
}

async function createUsers(t: Test, api: TestApp): Promise<void> {
  const users = [
    { name: 'clerk-ixelles', displayName: 'Clerk Ixelles', memberships: [{ mailbox: SENDER, roles: ['read', 'send', 'manage'] }] },
    { name: 'clerk-bpl', displayName: 'Clerk BPL', memberships: [{ mailbox: TUTELLE, roles: ['read', 'send', 'manage'] }] },
  ];
  for (const user of users) {
    await json(await api.call('POST', '/api/v1/principals', { body: { ...user, kind: 'user', oidcSubject: user.name } }), t, 201, `creating ${user.name}`);
  }
  // Both mailboxes get a key pair whose private key is deposited locked; the browser unlocks it.
  for (const address of [SENDER, TUTELLE]) {
    const key = await generateMailboxKey({ address, passphrase: PASSPHRASE });
    await json(
      await api.call('PUT', `/api/v1/mailboxes/${address}/key`, { body: { publicKey: key.publicKeyArmored, privateKey: key.privateKeyArmored } }),
      t,
      200,
      `publishing the key of ${address}`,
    );
  }
}

/** The built UI, an identity provider and the app listening on a free port, with both clerks and keys. */
async function startWithOidc(t: Test, work: string): Promise<{ api: TestApp; base: string }> {
  const webDir = await buildWeb({ outDir: path.join(work, 'web') });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const clientSecret = testClientSecret();
  const idp = await startOidcProvider(t, {
    clients: [{ client_id: 'bxchange', client_secret: clientSecret, redirect_uris: [`${base}/auth/callback`], post_logout_redirect_uris: [`${base}/`] }],
    accounts: { 'clerk-ixelles': { name: 'Clerk Ixelles' }, 'clerk-bpl': { name: 'Clerk BPL' } },
  });
  const api = await setUp(t, {
    BXCHANGE_WEB_DIR: webDir,
    PUBLIC_URL: base,
    OIDC_ISSUER: idp.issuer,
    OIDC_CLIENT_ID: 'bxchange',
    OIDC_CLIENT_SECRET: clientSecret,
    BXCHANGE_DEV_SIGNIN: 'false',
  });
  await api.app.listen({ host: '127.0.0.1', port });
  await createUsers(t, api);
  return { api, base };
}

t.test('web UI', async (t) => {
  await withChromium(t, 'a tutelle act goes from a commune clerk to a BPL clerk through the browser', async (t) => {
    const work = await tempDir(t, 'bx-web-');
    const { api, base } = await startWithOidc(t, work);

    const original = path.join(work, 'deliberation.bin');
    const originalSha = await randomFile(original, MIB);
    const downloads = path.join(work, 'downloads');
    await mkdir(downloads, { recursive: true });

    /* ---------- the commune clerk ---------- */
    const sender: BrowserContext = await launchBrowser(t, downloads);
    const page = sender.pages()[0] ?? (await sender.newPage());
    const problems: string[] = [];
    watchConsole(page, problems);

    await page.goto(`${base}/`);
    await page.locator('#sign-in').waitFor();
    t.equal(await page.locator('#dev-sign-in').isHidden(), true, 'no development sign-in beside OIDC');
    await screenshot(page, '01-sign-in');
    await signInWithOidc(page, base, 'clerk-ixelles');
    t.match(await page.locator('.site-header .user').textContent(), /Clerk Ixelles/, 'signed in through the identity provider');
    t.equal(await page.locator('#dev-banner').isHidden(), true, 'no development banner after an OIDC sign-in');

    // Compose a tutelle.act with a decision date in the future: the server refuses that field.
    await page.getByRole('link', { name: 'Nouvel envoi' }).click();
    await page.getByLabel("Type d'envoi").selectOption('tutelle.act');
    await page.getByLabel('Organe').selectOption('council');
    const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
    await page.getByLabel('Date de la décision').fill(tomorrow);
    await page.getByLabel("Catégorie d'acte").selectOption('other');
    await page.getByLabel('Objet').fill('Règlement de travail — modification');
    await page.getByLabel('Transmission').selectOption('automatic');
    await page.getByRole('button', { name: 'Préparer l’envoi' }).click();
    const dateInput = page.locator('[data-pointer="/decisionDate"]');
    await page.locator('[data-pointer="/decisionDate"][aria-invalid="true"]').waitFor();
    const errorId = (await dateInput.getAttribute('aria-describedby'))!.split(' ')[0]!;
    t.match(await page.locator(`#${errorId}`).textContent(), /future/, 'the server’s issue is shown under the decision date');
    t.equal(await page.locator('[data-pointer="/subject"]').getAttribute('aria-invalid'), null, 'other fields are not marked');
    await screenshot(page, '02-compose-field-error');

    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Brussels' }).format(new Date());
    await dateInput.fill(today);
    await page.getByRole('button', { name: 'Préparer l’envoi' }).click();
    await page.waitForURL(`${base}/app/drafts/**`);
    const envelopeId = page.url().split('/').pop()!;
    t.match(await page.locator('ul.recipients').textContent(), /tutelle@bpl/, 'the computed recipient is shown');
    t.equal(await page.locator('ul.keys li').count(), 2, 'encrypted for the recipient and the sender mailbox');

    // File roles come from the server: a tutelle act of category "other" needs a deliberation.
    const draftAnswer = (await (await page.request.get(`${base}/api/v1/envelopes/${envelopeId}`)).json()) as { requiredRoles?: string[] };
    t.same(draftAnswer.requiredRoles, ['deliberation'], 'the server lists the required role of the draft');
    const newFilesRole = page.getByLabel('Rôle des fichiers ajoutés');
    const offered = await newFilesRole
      .locator('optgroup')
      .first()
      .locator('option')
      .evaluateAll((options) => options.map((o) => (o as unknown as { value: string }).value));
    t.same(offered, draftAnswer.requiredRoles, 'the page offers the required roles the server listed');
    t.equal(await newFilesRole.inputValue(), 'deliberation', 'the required role with no file yet is pre-selected');
    const missingRoles = page.locator('[data-testid="missing-roles"]');
    t.match(await missingRoles.textContent(), /Rôles obligatoires sans fichier : Délibération/, 'the page says which required role has no file yet');
    t.equal(await page.getByRole('button', { name: 'Envoyer', exact: true }).isDisabled(), true, 'submission waits for the required roles');

    // Upload: let a few 8 MiB chunks through, then hold the next PATCH and reload mid-upload.
    const through = MIB >= 64 ? 3 : 1;
    let patches = 0;
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const uploadMetadata: string[] = [];
    await page.route('**/api/v1/uploads**', async (route) => {
      if (route.request().method() === 'POST') uploadMetadata.push(route.request().headers()['upload-metadata'] ?? '');
      if (route.request().method() === 'PATCH' && ++patches > through) {
        await held;
        await route.abort().catch(() => {});
        return;
      }
      await route.continue();
    });
    await page.getByLabel('Choisir des fichiers').setInputFiles(original);
    t.equal(await page.getByLabel('Rôle du fichier « deliberation.bin »').inputValue(), 'deliberation', 'the chosen file takes the required role');
    t.match(await missingRoles.textContent(), /Chaque rôle obligatoire \(Délibération\) a un fichier/, 'no required role is left without a file');
    t.equal(await newFilesRole.inputValue(), '', 'no required role is left to pre-select');
    await page.getByRole('button', { name: 'Chiffrer et envoyer' }).click();
    // (The tests' tsconfig has no DOM library: the page's globals are typed by hand.)
    await page.waitForFunction(
      (min) => {
        const page = globalThis as unknown as { document: { querySelector(s: string): { value: number } | null } };
        return (page.document.querySelector('tr[data-job] td:nth-child(5) progress')?.value ?? 0) >= min;
      },
      through * 8 * 1024 * 1024,
      { timeout: 120_000 },
    );
    const before = await page.locator('tr[data-job] td:nth-child(5) progress').evaluate((el) => {
      const bar = el as unknown as { value: number; max: number };
      return { value: bar.value, max: bar.max };
    });
    t.ok(before.value < before.max, `reloading mid-upload (${Math.round(before.value / 2 ** 20)} of ${Math.round(before.max / 2 ** 20)} MiB sent)`);
    await screenshot(page, '03-upload-progress');

    const afterReload: Request[] = [];
    let reloaded = false;
    page.on('request', (request) => {
      if (reloaded && request.url().includes('/api/v1/uploads')) afterReload.push(request);
    });
    await page.unroute('**/api/v1/uploads**');
    release();
    const roleMetadata = (uploadMetadata[0] ?? '')
      .split(',')
      .map((pair) => pair.trim().split(' '))
      .find(([key]) => key === 'role');
    t.equal(uploadMetadata.length, 1, 'one upload was created');
    t.equal(Buffer.from(roleMetadata?.[1] ?? '', 'base64').toString('utf8'), 'deliberation', 'the file is uploaded with tus metadata role=deliberation');
    // After the reload the resumed upload is held once more, to pause it and resume it by hand.
    let releaseAgain: () => void = () => {};
    const heldAgain = new Promise<void>((resolve) => {
      releaseAgain = resolve;
    });
    await page.route('**/api/v1/uploads/**', async (route) => {
      if (route.request().method() === 'PATCH') {
        await heldAgain;
        await route.abort().catch(() => {});
        return;
      }
      await route.continue();
    });
    reloaded = true;
    await page.reload();
    await page.locator('tr[data-job][data-state="uploading"]').waitFor({ timeout: 60_000 });
    t.match(await page.locator('tr[data-job] .job-state').textContent(), /Reprise depuis le fichier chiffré/, 'the page says it resumes from the kept ciphertext');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('tr[data-job][data-state="paused"]').waitFor();
    t.pass('paused');
    releaseAgain();
    await page.unroute('**/api/v1/uploads/**');
    await page.getByRole('button', { name: 'Reprendre' }).click();
    await page.locator('tr[data-job][data-state="done"]').waitFor({ timeout: 180_000 });
    t.equal(afterReload.some((r) => r.method() === 'POST'), false, 'no new upload was created after the reload');
    t.equal(afterReload[0]?.method(), 'HEAD', 'the upload resumed from the server’s offset');
    t.match(await page.locator('tr[data-job] .job-state').textContent(), /envoyé/, 'the file shows as sent');

    await page.getByRole('button', { name: 'Envoyer', exact: true }).click();
    await page.waitForURL(`${base}/app/envelopes/${envelopeId}`);
    await page.locator('[data-verified="true"]').first().waitFor({ timeout: 30_000 });
    t.pass('the submission receipt is verified in the browser');
    const sent = (await (await page.request.get(`${base}/api/v1/envelopes/${envelopeId}`)).json()) as { files: Array<{ role: string | null }> };
    t.same(sent.files.map((f) => f.role), ['deliberation'], 'the server holds the file under the required role');
    await screenshot(page, '04-sent-envelope');
    t.same(problems, [], 'no page error or CSP violation on the sender’s side');

    /* ---------- the BPL clerk (another browser profile: another person) ---------- */
    const receiver = await launchBrowser(t, downloads);
    const page2 = receiver.pages()[0] ?? (await receiver.newPage());
    const problems2: string[] = [];
    watchConsole(page2, problems2);
    const listRequests: string[] = [];
    page2.on('request', (request) => {
      if (request.url().includes('/api/v1/mailboxes/')) listRequests.push(new URL(request.url()).pathname);
    });
    await signInWithOidc(page2, base, 'clerk-bpl');
    await page2.waitForURL(`${base}/app/mailboxes/${encodeURIComponent(TUTELLE)}/in`);
    const row = page2.locator(`tr[data-envelope="${envelopeId}"]`);
    await row.waitFor();
    const inbox = (await (await page2.request.get(`${base}/api/v1/mailboxes/${encodeURIComponent(TUTELLE)}/envelopes?direction=in`)).json()) as {
      items: Array<{ id: string; deadline: string | null }>;
    };
    const listed = inbox.items.find((item) => item.id === envelopeId)?.deadline ?? '';
    t.match(listed, /^\d{4}-\d{2}-\d{2}$/, 'the inbox item carries its deadline');
    const [y, m, d] = listed.split('-');
    t.equal((await row.locator('td.deadline').textContent())?.trim(), `${d}/${m}/${y}`, 'the inbox row shows the deadline of the list item');
    t.equal(await row.locator('td.deadline').getAttribute('data-deadline'), listed, 'the row’s deadline is the list item’s');
    t.equal(listRequests.some((p) => p.endsWith('/deadlines')), false, 'the inbox no longer asks for the mailbox’s deadlines');
    await screenshot(page2, '05-inbox');

    // The deadline filter works on the items' deadlines: a deadline ahead is not overdue.
    const deadlineFilter = async (value: string) => {
      await page2.getByLabel('Échéance', { exact: true }).selectOption(value);
      await page2.getByRole('button', { name: 'Filtrer' }).click();
      await page2.waitForURL((url) => (url.searchParams.get('deadline') ?? '') === value);
      await page2.locator('table.envelopes').waitFor();
    };
    await deadlineFilter('overdue');
    await page2.getByText('Aucun envoi.').waitFor();
    t.equal(await row.count(), 0, 'filtered on overdue: the act whose deadline is ahead is not listed');
    await deadlineFilter('any');
    await row.waitFor();
    t.pass('filtered on “with a deadline”: the act is listed');
    await deadlineFilter('');
    await row.waitFor();

    // Language: Dutch, remembered across a reload.
    await page2.getByLabel('Langue').selectOption('nl');
    await page2.reload();
    await page2.locator('h1', { hasText: 'Ontvangen' }).waitFor();
    t.equal(await page2.evaluate(() => localStorage.getItem('bx.lang')), 'nl', 'the language choice is kept');
    await page2.getByLabel('Taal').selectOption('fr');

    await row.getByRole('link').click();
    await page2.waitForURL(`${base}/app/envelopes/${envelopeId}`);
    t.match(await page2.locator('[data-testid="deadline"]').textContent(), /\d{2}\/\d{2}\/\d{4}/, 'the envelope shows its deadline');

    await page2.getByRole('button', { name: 'Télécharger et déchiffrer' }).click();
    await page2.getByLabel(`Phrase secrète de la boîte ${TUTELLE}`).fill('wrong passphrase!!');
    await page2.getByRole('button', { name: 'Déverrouiller' }).click();
    await page2.getByText('Phrase secrète incorrecte.').waitFor();
    await page2.getByLabel(`Phrase secrète de la boîte ${TUTELLE}`).fill(PASSPHRASE);
    await page2.getByRole('button', { name: 'Déverrouiller' }).click();
    const save = page2.locator('a[data-kind="plaintext"]');
    await save.waitFor({ timeout: 180_000 });
    const [download] = await Promise.all([page2.waitForEvent('download'), save.click()]);
    const saved = path.join(work, 'decrypted.bin');
    await download.saveAs(saved);
    t.equal(download.suggestedFilename(), 'deliberation.bin', 'the file keeps its name from inside the encrypted payload');
    t.equal(await sha256File(saved), originalSha, 'the decrypted bytes equal the original');
    await screenshot(page2, '06-envelope-decrypted');

    // Receipts: verified in the page, and by openssl from the files the page offers.
    await page2.locator('[data-verified="true"]').first().waitFor({ timeout: 30_000 });
    const receiptRow = page2.locator('tr[data-receipt]').first();
    const [evidenceDownload] = await Promise.all([page2.waitForEvent('download'), receiptRow.locator('a[data-kind="evidence"]').click()]);
    const [signatureDownload] = await Promise.all([page2.waitForEvent('download'), receiptRow.locator('a[data-kind="signature"]').click()]);
    const evidenceFile = path.join(work, 'evidence.json');
    const signatureFile = path.join(work, 'signature.p7s');
    await evidenceDownload.saveAs(evidenceFile);
    await signatureDownload.saveAs(signatureFile);
    const caFile = path.join(work, 'ca.pem');
    await writeFile(caFile, (await api.call('GET', '/api/v1/pki/ca.pem', { token: null })).body);
    const verify = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', signatureFile, '-content', evidenceFile, '-CAfile', caFile, '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
    t.equal(verify.status, 0, `openssl verifies the receipt the browser downloaded: ${verify.stderr.trim()}`);

    await page2.getByRole('button', { name: /Accuser réception/ }).click();
    await page2.getByText('Réception accusée.').waitFor();
    await screenshot(page2, '07-envelope-acknowledged');
    t.same(problems2, [], 'no page error or CSP violation on the receiver’s side');
  });

  await withChromium(t, 'a file that fails its integrity check is never offered', async (t) => {
    const work = await tempDir(t, 'bx-web-integrity-');
    const { api, base } = await startWithOidc(t, work);
    // A back-office application of the commune sends through the API: one file whose ciphertext was
    // damaged after encryption (the header stays valid, so the server accepts it), one whose declared
    // plaintext SHA-256 is not that of its content.
    const app = await json(
      await api.call('POST', '/api/v1/principals', { body: { name: 'ixelles-app', kind: 'machine', memberships: [{ mailbox: SENDER, roles: ['read', 'send'] }] } }),
      t,
      201,
      'creating ixelles-app',
    );
    const { token } = (await json(await api.call('POST', `/api/v1/principals/${String(app.id)}/tokens`, { body: {} }), t, 201, 'token')) as { token: string };
    const draft = await json(
      await api.call('POST', '/api/v1/envelopes', { token, body: { type: 'general.letter', from: SENDER, to: [TUTELLE], metadata: { subject: 'Integrity' } } }),
      t,
      201,
      'draft',
    );
    const keys = draftKeys(draft as { encryptionKeys?: Array<{ publicKey: string }> });
    const content = randomBytes(256 * 1024);
    const damaged = await encryptFor(keys, content);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
    const mislabelled = await encryptFor(keys, content);
    const upload = async (name: string, bytes: Buffer, plaintextSha256: string) => {
      const form = new FormData();
      form.append('plaintextSha256', plaintextSha256);
      form.append('file', new Blob([new Uint8Array(bytes)], { type: 'application/pgp-encrypted' }), name);
      const res = await fetch(`${base}/api/v1/envelopes/${String(draft.id)}/files`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
      t.equal(res.status, 201, `${name} uploaded`);
    };
    const sha = createHash('sha256').update(content).digest('hex');
    await upload('damaged.bin.pgp', damaged, sha);
    await upload('mislabelled.bin.pgp', mislabelled, createHash('sha256').update('something else').digest('hex'));
    await json(await api.call('POST', `/api/v1/envelopes/${String(draft.id)}/submit`, { token }), t, 200, 'submit');

    const context = await launchBrowser(t, work);
    const page = context.pages()[0] ?? (await context.newPage());
    await signInWithOidc(page, base, 'clerk-bpl');
    await page.goto(`${base}/app/envelopes/${String(draft.id)}`);
    const fileRow = (name: string) => page.locator('tr[data-file]', { hasText: name });
    await fileRow('damaged.bin.pgp').getByRole('button', { name: 'Télécharger et déchiffrer' }).click();
    await page.getByLabel(`Phrase secrète de la boîte ${TUTELLE}`).fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Déverrouiller' }).click();
    await fileRow('damaged.bin.pgp').getByText('Contrôle d’intégrité échoué', { exact: false }).waitFor({ timeout: 60_000 });
    t.equal(await fileRow('damaged.bin.pgp').locator('a[data-kind="plaintext"]').count(), 0, 'a damaged ciphertext gives no file to save');

    await fileRow('mislabelled.bin.pgp').getByRole('button', { name: 'Télécharger et déchiffrer' }).click();
    await fileRow('mislabelled.bin.pgp').getByText('ne correspond pas', { exact: false }).waitFor({ timeout: 60_000 });
    t.equal(await fileRow('mislabelled.bin.pgp').locator('a[data-kind="plaintext"]').count(), 0, 'a plaintext whose SHA-256 differs from the declared one is not offered');
    t.pass('the passphrase was asked once for both files');

    // Nothing decrypted stays in the browser's private file system.
    const left = await page.evaluate(async () => {
      interface Dir {
        getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<Dir>;
        keys(): AsyncIterable<string>;
      }
      const storage = (globalThis as unknown as { navigator: { storage: { getDirectory(): Promise<Dir> } } }).navigator.storage;
      const names: string[] = [];
      const downloads = await (await storage.getDirectory()).getDirectoryHandle('downloads', { create: true });
      for await (const name of downloads.keys()) names.push(name);
      return names;
    });
    t.same(left, [], 'no plaintext or ciphertext spool is left in OPFS');
    await screenshot(page, '09-integrity-refused');
  });

  await withChromium(t, 'the development sign-in is marked on every page', async (t) => {
    const work = await tempDir(t, 'bx-web-dev-');
    const webDir = await buildWeb({ outDir: path.join(work, 'web') });
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const api = await setUp(t, { BXCHANGE_WEB_DIR: webDir, PUBLIC_URL: base, BXCHANGE_DEV_SIGNIN: 'true' });
    await api.app.listen({ host: '127.0.0.1', port });
    await json(
      await api.call('POST', '/api/v1/principals', { body: { name: 'clerk-uccle', kind: 'user', memberships: [{ mailbox: 'secretariat@uccle', roles: ['read', 'send'] }] } }),
      t,
      201,
      'creating clerk-uccle',
    );
    const context = await launchBrowser(t, work);
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${base}/`);
    await page.locator('#dev-sign-in').waitFor();
    t.equal(await page.locator('#sign-in').isHidden(), true, 'no OIDC sign-in link where OIDC is not configured');
    t.equal(await page.locator('#dev-banner').isVisible(), true, 'the landing is marked too');
    await page.locator('#dev-sign-in').click();
    await page.locator('input[name="principal"][value="clerk-uccle"]').check();
    await page.locator('button[type="submit"]').click();
    await page.waitForURL(`${base}/app/**`);
    for (const path_ of ['/app/compose', `/app/mailboxes/secretariat@uccle/out`]) {
      await page.goto(`${base}${path_}`);
      await page.locator('h1').first().waitFor();
      t.equal(await page.locator('#dev-banner').isVisible(), true, `the banner is shown on ${path_}`);
    }
    await screenshot(page, '08-dev-sign-in-banner');
    await page.getByRole('button', { name: 'Se déconnecter' }).click();
    await page.locator('#dev-sign-in').waitFor();
    t.equal(await page.locator('#dev-banner').isVisible(), true, 'signed out: the landing, still marked');
    t.equal((await (await page.request.get(`${base}/auth/session`)).status()), 401, 'the session has ended');
  });
});
