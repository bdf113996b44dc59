/**
 * The datawarehouse feed through its HTTP door, on every backend: who may
 * read it, every submitted envelope exactly once across small pages, no
 * drafts, no nomination beyond counts, no personal data, changes served
 * again after the cursor, CSV that an independent RFC 4180 parser reads back,
 * and — on PostgreSQL, where two transactions can really interleave — a
 * transaction that commits after a younger one is never skipped.
 *
 * End-to-end encryption is enforced (DESIGN §4c): the mailboxes publish keys
 * through the API and the files sent through the HTTP door are ciphertext
 * for each draft's keys, so the digests the feed serves are the ciphertext's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { rowsOf } from '../../src/db/client.ts';
import { createExportRepository } from '../../src/db/export-repository.ts';
import { brusselsDate } from '../../src/domain/calendar.ts';
import { findEnvelopeType } from '../../src/domain/envelope-types/index.ts';
import { createExports } from '../../src/domain/exports.ts';
import { uuidv7 } from '../../src/domain/ids.ts';
import { forEachBackend, startApp, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const API = '/api/v1';
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** RFC 4180, written independently of the server's writer: CRLF records, quoted fields with doubled quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
      continue;
    }
    if (c === '"') {
      if (field !== '' || wasQuoted) throw new Error(`a quote inside an unquoted field at ${i}`);
      quoted = true;
      wasQuoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
      wasQuoted = false;
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      wasQuoted = false;
      i++;
    } else if (c === '\r' || c === '\n') throw new Error(`a bare line break outside quotes at ${i}`);
    else field += c;
  }
  if (quoted || field !== '' || row.length > 0) throw new Error('the last record does not end with CRLF');
  return rows;
}

interface FeedPage {
  res: LightMyRequestResponse;
  lines: any[];
  /** The Link rel="next" target, as the server wrote it. */
  nextUrl: string;
  cursor: string | undefined;
  more: boolean;
}

forEachBackend(t, 'export feed', async (t, parts) => {
  const backend = await parts();
  const api: TestApp = await startApp(t, backend);
  const repo = api.services.envelopeRepository;
  const exec = async <T>(query: string): Promise<T[]> => rowsOf<T>(await api.services.database.db.execute(sql.raw(query)));

  // ------------------------------------------------------------------ seed
  const post = async (url: string, body: unknown, token?: string) => {
    const res = await api.call('POST', url, { body, ...(token === undefined ? {} : { token }) });
    if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body);
  };
  await post(`${API}/entities`, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' }, nisCode: '21009' });
  await post(`${API}/entities`, { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' }, nisCode: '21016' });
  await post(`${API}/entities`, { id: 'bpl', kind: 'region', name: { fr: 'Bruxelles Pouvoirs locaux', nl: 'Brussel Plaatselijke Besturen' } });
  await post(`${API}/entities/ixelles/mailboxes`, { name: 'secretariat' });
  await post(`${API}/entities/uccle/mailboxes`, { name: 'secretariat' });
  await post(`${API}/entities/bpl/mailboxes`, { name: 'merite' });
  await publishKeys(api, ['secretariat@ixelles', 'secretariat@uccle', 'merite@bpl']);
  const principal = async (name: string, body: Record<string, unknown>) => {
    const p = await post(`${API}/principals`, { name, ...body });
    return { id: p.id as string, token: (await post(`${API}/principals/${p.id}/tokens`, {})).token as string };
  };
  const sender = await principal('ixelles-bo', { kind: 'machine', memberships: [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }] });
  const recipient = await principal('uccle-bo', { kind: 'machine', memberships: [{ mailbox: 'secretariat@uccle', roles: ['read'] }] });
  const exporter = await principal('bpl-datawarehouse', { kind: 'machine', capabilities: ['export'] });

  // ------------------------------------------------------------- envelopes
  const system = (subject: string) => ({ actor: 'test', action: 'test.insert', subject });
  /** An envelope written through the repository (volume, and types whose routing needs a directory the test does not build). */
  const direct = async (type: string, metadata: unknown, options: { submit: boolean; files?: string[] }) => {
    const id = uuidv7();
    await repo.create(
      { id, type, typeVersion: findEnvelopeType(type)!.version, from: 'secretariat@ixelles', metadata, inReplyTo: null, createdBy: sender.id, createdAt: new Date(), recipients: ['secretariat@uccle'] },
      system(id),
    );
    for (const name of options.files ?? []) {
      const fileId = uuidv7();
      await repo.addFile(
        { id: fileId, envelopeId: id, name, mediaType: 'application/pgp-encrypted', role: null, declaredSize: 64, plaintextSha256: sha256(`plain ${fileId}`), storageKey: `envelopes/${id}/${fileId}`, uploadedBy: sender.id, createdAt: new Date() },
        system(id),
      );
      await repo.completeFile(fileId, { size: 64, sha256: sha256(fileId) }, new Date());
    }
    if (options.submit && !(await repo.markSubmitted(id, new Date(), system(id), () => []))) throw new Error(`could not submit ${id}`);
    return id;
  };
  /** An envelope through the HTTP door: draft, multipart upload of each plaintext encrypted for the draft's keys, submit; the id and the bytes uploaded. */
  const viaHttp = async (body: Record<string, unknown>, files: Array<{ name: string; role?: string; plaintext: Buffer }>, submit = true) => {
    const draft = await post(`${API}/envelopes`, { from: 'secretariat@ixelles', ...body }, sender.token);
    const uploaded: Buffer[] = [];
    for (const plainFile of files) {
      const file = { ...plainFile, data: await encryptFor(draftKeys(draft), plainFile.plaintext) };
      uploaded.push(file.data);
      const boundary = `----bx${randomBytes(8).toString('hex')}`;
      const payload = Buffer.concat([
        ...(file.role === undefined ? [] : [Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="role"\r\n\r\n${file.role}\r\n`)]),
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${file.name}"\r\ncontent-type: application/pgp-encrypted\r\n\r\n`),
        file.data,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const res = await api.call('POST', `${API}/envelopes/${draft.id}/files`, { token: sender.token, body: payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
      if (res.statusCode !== 201) throw new Error(`upload: ${res.statusCode} ${res.body}`);
    }
    if (submit) {
      const res = await api.call('POST', `${API}/envelopes/${draft.id}/submit`, { token: sender.token });
      if (res.statusCode !== 200) throw new Error(`submit: ${res.statusCode} ${res.body}`);
    }
    return { id: draft.id as string, uploaded };
  };

  // A subject that needs every CSV quoting rule, and a file name that is personal data.
  const trickySubject = 'Convention "voirie", phase 2\r\nsuite; à signer';
  const letterSent = await viaHttp(
    { type: 'general.letter', to: ['secretariat@uccle'], metadata: { subject: trickySubject, reference: 'IX/2026/042' } },
    [{ name: 'Jean Dupont - dossier personnel.pdf.gpg', plaintext: randomBytes(3000) }],
  );
  const letterId = letterSent.id;
  /** The ciphertext the sender uploaded. */
  const letterBytes = letterSent.uploaded[0]!;
  const nominationMetadata = { proposedRank: 'Chevalier de l’Ordre de Léopold', posthumous: false, proposerReference: 'NOM-SECRET-7731' };
  const httpNomination = (await viaHttp({ type: 'decoration.nomination', metadata: nominationMetadata }, [{ name: 'proposition.pdf.gpg', role: 'nomination', plaintext: randomBytes(500) }])).id;
  const httpDraft = (await viaHttp({ type: 'general.letter', to: ['secretariat@uccle'], metadata: { subject: 'never sent' } }, [{ name: 'brouillon.gpg', plaintext: randomBytes(10) }], false)).id;

  const letters: string[] = [];
  for (let i = 0; i < 30; i++) letters.push(await direct('general.letter', { subject: `Lettre ${i}`, reference: `IX/${i}` }, { submit: true, files: i % 5 === 0 ? [`Mme Martin ${i}.gpg`] : [] }));
  const procurementId = await direct(
    'procurement.file',
    { stage: 'launch', procedureType: 'open', contractNature: 'works', estimatedValueExclVat: 100_000_00, cpvMain: '45000000-7' },
    { submit: true, files: ['cahier-des-charges.pdf.gpg'] },
  );
  const nominations = [httpNomination];
  for (let i = 0; i < 3; i++) nominations.push(await direct('decoration.nomination', { ...nominationMetadata, proposerReference: `NOM-SECRET-${i}` }, { submit: true, files: ['neutral.gpg'] }));
  const drafts = [httpDraft, await direct('general.letter', { subject: 'draft' }, { submit: false }), await direct('decoration.nomination', nominationMetadata, { submit: false })];
  const served = [letterId, ...letters, procurementId];

  // ---------------------------------------------------------------- helpers
  /** Waits until every envelope row lies below the horizon (other test files may hold a transaction open on the same cluster). */
  const settle = async () => {
    for (let i = 0; i < 400; i++) {
      const [row] = await exec<{ ok: boolean }>('SELECT coalesce(bool_and(feed_xid < pg_snapshot_xmin(pg_current_snapshot())), true) AS ok FROM envelopes');
      if (row!.ok) return;
      await sleep(25);
    }
    throw new Error('the feed horizon never passed the test rows');
  };
  const fetchFeed = async (url: string, options: { accept?: string; token?: string | null } = {}): Promise<FeedPage> => {
    const res = await api.call('GET', url, { token: options.token === undefined ? exporter.token : options.token, headers: options.accept === undefined ? {} : { accept: options.accept } });
    if (res.statusCode !== 200) return { res, lines: [], nextUrl: '', cursor: undefined, more: false };
    const link = /^<([^>]+)>; rel="next"$/.exec(String(res.headers.link));
    if (link === null) throw new Error(`no Link rel="next": ${String(res.headers.link)}`);
    const nextUrl = link[1]!;
    const csv = String(res.headers['content-type']).startsWith('text/csv');
    let lines: any[] = [];
    if (!csv) {
      if (res.body !== '' && !res.body.endsWith('\n')) throw new Error('an NDJSON body ends with a newline');
      lines = res.body === '' ? [] : res.body.slice(0, -1).split('\n').map((l) => JSON.parse(l));
    }
    return { res, lines, nextUrl, cursor: new URL(nextUrl, 'http://x').searchParams.get('cursor') ?? undefined, more: res.headers['bxchange-feed-more'] === 'true' };
  };
  const feedUrl = (cursor?: string, limit?: number) => {
    const q = new URLSearchParams();
    if (cursor !== undefined) q.set('cursor', cursor);
    if (limit !== undefined) q.set('limit', String(limit));
    const s = q.toString();
    return `${API}/exports/envelopes${s === '' ? '' : `?${s}`}`;
  };
  /** Follows Link rel="next" until caught up; every page's lines, and the link to poll next. */
  const drain = async (url: string) => {
    const pages: FeedPage[] = [];
    for (;;) {
      const page = await fetchFeed(url);
      if (page.res.statusCode !== 200) throw new Error(`feed: ${page.res.statusCode} ${page.res.body}`);
      pages.push(page);
      url = page.nextUrl;
      if (!page.more) return { pages, lines: pages.flatMap((p) => p.lines), url, cursor: page.cursor };
      if (pages.length > 1000) throw new Error('the feed never caught up');
    }
  };

  // ------------------------------------------------------------------ tests
  await t.test('only a principal with the export capability reads the feed', async (t) => {
    for (const url of [`${API}/exports/envelopes`, `${API}/exports/counts`]) {
      const anonymous = await api.call('GET', url, { token: null });
      t.equal(anonymous.statusCode, 401, `${url} without a token`);
      t.match(anonymous.headers['content-type'], /^application\/problem\+json/);
      for (const [who, token] of [['a mailbox member', sender.token], ['the bootstrap administrator', api.adminToken]] as const) {
        const res = await api.call('GET', url, { token });
        t.equal(res.statusCode, 403, `${url}: ${who} may not read it`);
        t.equal(JSON.parse(res.body).type, 'urn:problem-type:bxchange:forbidden');
      }
    }
    const ok = await api.call('GET', `${API}/exports/envelopes?limit=1`, { token: exporter.token });
    t.equal(ok.statusCode, 200);
    t.match(ok.headers['content-type'], /^application\/x-ndjson/);
    t.equal(ok.headers['cache-control'], 'no-store');
  });

  await t.test('bad cursors and limits are 400 problems', async (t) => {
    const forged = Buffer.from(JSON.stringify({ x: '1; DROP TABLE envelopes', i: letterId })).toString('base64url');
    const tooBig = Buffer.from(JSON.stringify({ x: '18446744073709551616', i: letterId })).toString('base64url');
    for (const url of [`${API}/exports/envelopes?cursor=garbage`, `${API}/exports/envelopes?cursor=${forged}`, `${API}/exports/envelopes?cursor=${tooBig}`, `${API}/exports/envelopes?limit=0`, `${API}/exports/envelopes?limit=10001`, `${API}/exports/envelopes?limit=-1`]) {
      const res = await api.call('GET', url, { token: exporter.token });
      t.equal(res.statusCode, 400, url);
      t.equal(JSON.parse(res.body).type, 'urn:problem-type:belgif:badRequest');
    }
  });

  let caughtUp = '';
  await t.test('pages of 7 serve every submitted envelope exactly once, and nothing else', async (t) => {
    await settle();
    const { pages, lines, url } = await drain(feedUrl(undefined, 7));
    caughtUp = url;
    const ids = lines.map((l) => l.id);
    t.equal(ids.length, new Set(ids).size, 'no envelope twice');
    t.same([...ids].sort(), [...served].sort(), 'every submitted envelope of a metadata type, once');
    t.ok(pages.every((p) => p.lines.length <= 7), 'no page exceeds the limit');
    t.equal(pages.length, Math.ceil(served.length / 7), 'the pages are full until the last, which says it is the last');
    for (const id of [...drafts, ...nominations]) t.notOk(ids.includes(id), `${id} is not in the feed`);
    const bodies = pages.map((p) => p.res.body).join('');
    t.notMatch(bodies, /decoration\.nomination|NOM-SECRET|Chevalier/, 'no trace of a nomination in the feed');
    t.notMatch(bodies, /Jean Dupont|Mme Martin/, 'no file name of a type whose files carry personal data');
    t.notMatch(bodies, /storageKey|createdBy|envelopes\//, 'no storage key nor creator');
    t.notMatch(bodies, new RegExp(sender.id), 'no principal id');

    const letter = lines.find((l) => l.id === letterId);
    t.match(letter, {
      type: 'general.letter',
      typeVersion: '1.0',
      from: 'secretariat@ixelles',
      status: 'submitted',
      metadata: { subject: trickySubject, reference: 'IX/2026/042' },
      recipients: [{ address: 'secretariat@uccle', status: 'delivered', retrievedAt: null, acknowledgedAt: null }],
    });
    t.match(letter.submittedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    t.equal(letter.files.length, 1);
    t.same(Object.keys(letter.files[0]).sort(), ['id', 'mediaType', 'plaintextSha256', 'role', 'sha256', 'size'], 'digests, no name');
    t.equal(letter.files[0].sha256, sha256(letterBytes), 'the digest of the bytes the sender uploaded');
    t.equal(letter.files[0].size, letterBytes.length);
    const procurement = lines.find((l) => l.id === procurementId);
    t.equal(procurement.files[0].name, 'cahier-des-charges.pdf.gpg', 'names are kept where the type carries no personal data');

    const again = await fetchFeed(caughtUp);
    t.same([again.lines.length, again.more, again.nextUrl], [0, false, caughtUp], 'caught up: nothing new, the same link');
  });

  await t.test('a window streamed in pages smaller than the window gives the same records', async (t) => {
    const exports = createExports({ repository: createExportRepository(api.services.database.db), pageRows: 3 });
    const caller = (await api.services.directory.authenticate(exporter.token));
    const feed = await exports.feed(caller, { limit: 20 });
    const ids: string[] = [];
    for await (const envelope of feed.envelopes) ids.push(envelope.id);
    const route = await fetchFeed(feedUrl(undefined, 20));
    t.same(ids, route.lines.map((l) => l.id));
    t.equal(ids.length, 20);
    t.ok(feed.more);

    // Over a real socket the body is streamed (chunked), never built whole first (which would give a Content-Length).
    await api.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (api.app.server.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}${feedUrl(undefined, 20)}`, { headers: { authorization: `Bearer ${exporter.token}` } });
    t.equal(res.headers.get('transfer-encoding'), 'chunked');
    t.equal(res.headers.get('content-length'), null);
    t.same((await res.text()).trim().split('\n').map((l) => JSON.parse(l).id), ids);
  });

  await t.test('counts are the only trace of nominations', async (t) => {
    const res = await api.call('GET', `${API}/exports/counts`, { token: exporter.token });
    t.equal(res.statusCode, 200);
    const { items } = JSON.parse(res.body);
    const month = brusselsDate(new Date()).slice(0, 7);
    t.same(items.find((i: any) => i.type === 'decoration.nomination'), { type: 'decoration.nomination', exportFeed: 'counts', month, envelopes: nominations.length });
    t.same(items.find((i: any) => i.type === 'general.letter'), { type: 'general.letter', exportFeed: 'metadata', month, envelopes: 1 + letters.length });
    t.notMatch(res.body, /NOM-SECRET|Chevalier|secretariat@/, 'counts only');
    const csv = await api.call('GET', `${API}/exports/counts`, { token: exporter.token, headers: { accept: 'text/csv' } });
    t.match(csv.headers['content-type'], /^text\/csv/);
    const rows = parseCsv(csv.body);
    t.same(rows[0], ['type', 'exportFeed', 'month', 'envelopes']);
    t.same(rows.find((r) => r[0] === 'decoration.nomination'), ['decoration.nomination', 'counts', month, String(nominations.length)]);
  });

  await t.test('an acknowledged envelope comes again after the cursor, with its new state', async (t) => {
    const ack = await api.call('POST', `${API}/envelopes/${letterId}/acknowledge`, { token: recipient.token });
    t.equal(ack.statusCode, 200, ack.body);
    await settle();
    const { lines, url } = await drain(caughtUp);
    t.same(lines.map((l) => l.id), [letterId], 'only the changed envelope');
    t.match(lines[0].recipients, [{ address: 'secretariat@uccle', status: 'acknowledged' }]);
    t.match(lines[0].recipients[0].acknowledgedAt, /Z$/);
    caughtUp = url;
    const full = await drain(feedUrl(undefined, 7));
    t.same(full.lines.map((l) => l.id).sort(), [...served].sort(), 'from the start: still each envelope once, in its latest state');
    t.equal(full.lines.find((l) => l.id === letterId).recipients[0].status, 'acknowledged');
  });

  await t.test('CSV: a header row and one parseable row per envelope', async (t) => {
    const page = await fetchFeed(feedUrl(undefined, 1000), { accept: 'text/csv' });
    t.equal(page.res.statusCode, 200);
    t.match(page.res.headers['content-type'], /^text\/csv; charset=utf-8; header=present/);
    const rows = parseCsv(page.res.body);
    const header = rows[0]!;
    t.same(header, ['id', 'type', 'typeVersion', 'from', 'status', 'inReplyTo', 'createdAt', 'submittedAt', 'deadline', 'retainUntil', 'purgedAt', 'metadata', 'computed', 'recipients', 'files']);
    const records = rows.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
    t.ok(rows.every((r) => r.length === header.length), 'every row has every column');
    t.same(records.map((r) => r.id).sort(), [...served].sort(), 'one row per envelope');
    const letter = records.find((r) => r.id === letterId)!;
    t.same(JSON.parse(letter.metadata!), { subject: trickySubject, reference: 'IX/2026/042' }, 'quotes, commas and line breaks survive');
    t.equal(JSON.parse(letter.recipients!)[0].status, 'acknowledged');
    t.equal(JSON.parse(letter.files!)[0].sha256, sha256(letterBytes));
    t.equal(letter.inReplyTo, '', 'null is an empty cell');
    t.notMatch(page.res.body, /NOM-SECRET|Jean Dupont/);
    const ndjson = await fetchFeed(feedUrl(undefined, 1000));
    t.equal(page.nextUrl, ndjson.nextUrl, 'the same position whatever the format');
  });

  if (backend.url !== undefined) {
    const url = backend.url;
    await t.test('out-of-order commits: an older transaction that commits last is served after it commits, never skipped', async (t) => {
      const [x, y] = [letters[10]!, letters[20]!];
      const a = postgres(url, { max: 1, onnotice: () => {} });
      const b = postgres(url, { max: 1, onnotice: () => {} });
      t.teardown(async () => {
        await a.unsafe('ROLLBACK').catch(() => undefined);
        await Promise.all([a.end({ timeout: 5 }), b.end({ timeout: 5 })]);
      });
      await settle();
      const start = await drain(caughtUp);
      t.same(start.lines, [], 'caught up before the race');

      await a.unsafe('BEGIN');
      await a.unsafe(`UPDATE envelopes SET computed = computed || '{"probe":"A"}'::jsonb WHERE id = $1`, [x]);
      const xidA = String((await a.unsafe('SELECT pg_current_xact_id()::text AS xid'))[0]!.xid);
      await b.unsafe('BEGIN');
      await b.unsafe(`UPDATE envelopes SET computed = computed || '{"probe":"B"}'::jsonb WHERE id = $1`, [y]);
      const xidB = String((await b.unsafe('SELECT pg_current_xact_id()::text AS xid'))[0]!.xid);
      await b.unsafe('COMMIT');
      t.ok(BigInt(xidA) < BigInt(xidB), `A (${xidA}) started before B (${xidB}) and is still running; B committed`);

      // A naive "feed_xid > cursor" feed would serve Y now and move past A's xid for good.
      const during = await drain(start.url);
      t.notOk(during.lines.some((l) => l.id === y), 'Y is held back while the older A runs');
      t.notOk(during.lines.some((l) => l.id === x), 'X is not visible yet');

      await a.unsafe('COMMIT');
      await settle();
      const after = await drain(during.url);
      t.same(after.lines.map((l) => l.id), [x, y], 'both, once each, in commit-independent xid order');
      t.equal(after.lines[0].computed.probe, 'A');
      t.equal(after.lines[1].computed.probe, 'B');
      const [stored] = await exec<{ x: string; y: string }>(`SELECT (SELECT feed_xid::text FROM envelopes WHERE id = '${x}') AS x, (SELECT feed_xid::text FROM envelopes WHERE id = '${y}') AS y`);
      t.same([stored!.x, stored!.y], [xidA, xidB], 'the triggers moved each envelope to the transaction that changed it');
      const later = await drain(after.url);
      t.same(later.lines, [], 'and never again');
    });
  }
});

