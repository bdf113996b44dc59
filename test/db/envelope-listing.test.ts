/**
 * The mailbox listing formats its instants in SQL (to_char … AT TIME ZONE
 * 'UTC'), not through JavaScript dates. These tests pin the text the contract
 * promises, ISO-8601 UTC with milliseconds as Date.toISOString writes it:
 * stored instants with 0 ms, with microseconds (truncated, as a Date
 * truncates them), across a day and year boundary, read by a session whose
 * time zone is not UTC and whose DateStyle is not ISO; and a listed item says the same as the whole
 * envelope (formatted by JavaScript dates) for every field they share. The
 * API's listing has PostgreSQL write each item as JSON: its page must be the
 * page the domain's records make (the overdue rule included, on its edge
 * cases, and metadata with every kind of character JSON escapes).
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import fastJson from 'fast-json-stringify';
import t from 'tap';
import { openDatabase, rowsOf, type Db } from '../../src/db/client.ts';
import { createEnvelopeRepository } from '../../src/db/envelope-repository.ts';
import { EnvelopeSummaryView, listOf } from '../../src/routes/schemas.ts';
import { json } from '../helpers/problem.ts';
import { forEachBackend, startApp } from '../helpers/backends.ts';
import { brusselsDate } from '../../src/domain/calendar.ts';
import { envelopeSummaryView, pageView } from '../../src/routes/views.ts';

const API = '/api/v1';

/** The overdue rule's "final decision taken", written out here: a decisions array holding a final kind. */
const decidedByHand = (computed: unknown) => {
  const decisions = (computed as { decisions?: unknown }).decisions;
  return Array.isArray(decisions) && decisions.some((d) => typeof d === 'object' && d !== null && ['suspension', 'annulment', 'approval', 'refusal'].includes((d as { kind?: unknown }).kind as string));
};

/** Stored instants (PostgreSQL literals) and the text the contract shows for each, written out by hand. */
const CASES = [
  // created_at and delivered_at are timestamp(3) (storage rounds them to ms); the others keep microseconds, which the text truncates.
  { created: '2026-03-02 09:00:00+00', submitted: '2026-03-02 09:00:00+00', delivered: '2026-03-02 09:00:00+00', retrieved: '2026-03-02 09:30:00.5+00', acknowledged: null },
  { created: '2026-03-02 09:00:00.120+00', submitted: '2026-03-02 09:00:01.123456+00', delivered: '2026-03-02 10:15:30.999+00', retrieved: '2026-03-03 08:00:00.999999+00', acknowledged: '2026-03-03 08:00:00.000001+00' },
  // Already the next day and year in Kathmandu (UTC+05:45), still the previous one in St John's (UTC-03:30).
  { created: '2026-12-31 23:30:00.007+00', submitted: '2026-12-31 23:59:59.999+00', delivered: '2027-01-01 02:00:00.010+05:45', retrieved: null, acknowledged: '2027-01-01 00:00:00+00' },
] as const;
const EXPECTED = [
  { createdAt: '2026-03-02T09:00:00.000Z', submittedAt: '2026-03-02T09:00:00.000Z', deliveredAt: '2026-03-02T09:00:00.000Z', retrievedAt: '2026-03-02T09:30:00.500Z', acknowledgedAt: null },
  { createdAt: '2026-03-02T09:00:00.120Z', submittedAt: '2026-03-02T09:00:01.123Z', deliveredAt: '2026-03-02T10:15:30.999Z', retrievedAt: '2026-03-03T08:00:00.999Z', acknowledgedAt: '2026-03-03T08:00:00.000Z' },
  { createdAt: '2026-12-31T23:30:00.007Z', submittedAt: '2026-12-31T23:59:59.999Z', deliveredAt: '2026-12-31T20:15:00.010Z', retrievedAt: null, acknowledgedAt: '2027-01-01T00:00:00.000Z' },
];

forEachBackend(t, 'mailbox listing instants', async (t, parts) => {
  const backend = await parts();
  const api = await startApp(t, backend);
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  await post(`${API}/entities`, { id: 'ixelles', kind: 'commune', name: { fr: 'Ixelles', nl: 'Elsene' } });
  await post(`${API}/entities`, { id: 'uccle', kind: 'commune', name: { fr: 'Uccle', nl: 'Ukkel' } });
  await post(`${API}/entities/ixelles/mailboxes`, { name: 'secretariat' });
  await post(`${API}/entities/uccle/mailboxes`, { name: 'secretariat' });
  await post(`${API}/entities/uccle/mailboxes`, { name: 'archives' });
  /** A user principal with these memberships, and a bearer token of theirs. */
  const member = async (name: string, memberships: Array<{ mailbox: string; roles: string[] }>) => {
    const principal = await post(`${API}/principals`, { name, kind: 'user', memberships });
    return { principal, token: (await post(`${API}/principals/${principal.id}/tokens`, {})).token as string };
  };
  const { token } = await member('uccle-clerk', [
    { mailbox: 'secretariat@uccle', roles: ['read'] },
    { mailbox: 'archives@uccle', roles: ['read'] },
  ]);
  const { principal: sender, token: senderToken } = await member('ixelles-clerk', [{ mailbox: 'secretariat@ixelles', roles: ['read', 'send'] }]);

  // Oldest first, so the listing (newest first) shows them in reverse. Each goes to both uccle mailboxes;
  // archives@uccle keeps the same instants, secretariat@uccle's are the case's.
  const db = api.services.database.db;
  const ids: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const id = randomUUID();
    ids.push(id);
    await db.execute(sql`INSERT INTO envelopes (id, type, type_version, from_mailbox, status, metadata, created_by, created_at, submitted_at, deadline)
      VALUES (${id}, 'general.letter', '1.0', 'secretariat@ixelles', 'submitted', ${JSON.stringify({ subject: `Lettre n° ${i} — été`, reference: `IX/${i}` })}::jsonb,
              ${sender.id}, ${c.created}::timestamptz, ${c.submitted}::timestamptz, ${i === 1 ? '2026-04-01' : null}::date)`);
    for (const mailbox of ['secretariat@uccle', 'archives@uccle']) {
      await db.execute(sql`INSERT INTO envelope_recipients (envelope_id, mailbox_address, status, delivered_at, retrieved_at, acknowledged_at)
        VALUES (${id}, ${mailbox}, ${c.acknowledged !== null ? 'acknowledged' : c.retrieved !== null ? 'retrieved' : 'delivered'},
                ${c.delivered}::timestamptz, ${c.retrieved}::timestamptz, ${c.acknowledged}::timestamptz)`);
    }
  }
  const newestFirst = [...EXPECTED.keys()].reverse();

  t.test('a listed item shows every instant as ISO-8601 UTC with milliseconds, truncated like a Date', async (t) => {
    const page = json(await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=in`, { token }));
    t.same(page.items.map((e: any) => e.id), newestFirst.map((i) => ids[i]), 'newest delivery first');
    for (const [n, i] of newestFirst.entries()) {
      const item = page.items[n];
      const e = EXPECTED[i]!;
      t.same(
        { createdAt: item.createdAt, submittedAt: item.submittedAt },
        { createdAt: e.createdAt, submittedAt: e.submittedAt },
        `envelope ${i}: createdAt, submittedAt`,
      );
      t.same(
        item.recipients,
        ['archives@uccle', 'secretariat@uccle'].map((address) => ({ address, status: item.status, deliveredAt: e.deliveredAt, retrievedAt: e.retrievedAt, acknowledgedAt: e.acknowledgedAt })),
        `envelope ${i}: its recipients, in address order`,
      );
    }
  });

  t.test('a listed item says, byte for byte, what the whole envelope says for the fields they share', async (t) => {
    const shared = ['id', 'type', 'from', 'metadata', 'createdAt', 'submittedAt', 'deadline', 'recipients'];
    const pick = (o: Record<string, unknown>) => JSON.stringify(Object.fromEntries(shared.map((k) => [k, o[k]])));
    for (const [address, query, who] of [
      ['secretariat@uccle', 'direction=in', token],
      ['secretariat@ixelles', 'direction=out', senderToken],
    ] as const) {
      const page = json(await api.call('GET', `${API}/mailboxes/${address}/envelopes?${query}`, { token: who }));
      t.equal(page.items.length, CASES.length, `${address} ${query}`);
      for (const item of page.items) {
        const whole = json(await api.call('GET', `${API}/envelopes/${item.id}`, { token: who }));
        t.equal(pick(item), pick(whole), `${address} ${query}: ${item.id}`);
        t.equal(item.envelopeStatus, whole.status);
      }
    }
  });

  t.test("a listing's body holds exactly what the response schema's serialiser makes of it", async (t) => {
    // PostgreSQL writes the items (spaces around ':' and after ','); fast-json-stringify on the published
    // schema is the reference for which keys, in which order, with which types: re-serialised compactly,
    // the body must be what the schema's serialiser makes of the same values (nothing extra, nothing missing).
    const bySchema = fastJson(listOf(EnvelopeSummaryView) as object);
    for (const [address, query, who] of [
      ['secretariat@uccle', 'direction=in', token],
      ['secretariat@uccle', 'direction=in&limit=1', token],
      ['secretariat@uccle', 'direction=in&status=acknowledged&type=general.letter', token],
      ['secretariat@ixelles', 'direction=out', senderToken],
    ] as const) {
      const res = await api.call('GET', `${API}/mailboxes/${address}/envelopes?${query}`, { token: who });
      t.equal(res.statusCode, 200);
      t.equal(res.headers['content-type'], 'application/json; charset=utf-8', `${query}: content type`);
      const body = JSON.parse(res.body);
      t.ok(body.items.length > 0, `${query}: items`);
      t.equal(JSON.stringify(body), bySchema(body), `${address} ${query}: the schema's keys, order and types`);
      t.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body), `${query}: content length`);
    }
    t.ok(json(await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=in&limit=1`, { token })).next, 'a page with a next link was among them');
    t.match(json(await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=in`, { token })).items[1].metadata, { subject: 'Lettre n° 1 — été' }, 'non-ASCII metadata');
  });

  t.test("the API's page (items written by PostgreSQL) is the page the domain's records make, overdue rule included", async (t) => {
    // Two more mailboxes, so that the pages above keep their three envelopes.
    await post(`${API}/entities/ixelles/mailboxes`, { name: 'legal' });
    await post(`${API}/entities/uccle/mailboxes`, { name: 'legal' });
    const { principal: reader, token: readerToken } = await member('legal-reader', [
      { mailbox: 'legal@uccle', roles: ['read'] },
      { mailbox: 'legal@ixelles', roles: ['read'] },
    ]);
    const today = brusselsDate(api.services.clock.now());
    const day = (offset: number) => new Date(Date.parse(`${today}T12:00:00Z`) + offset * 86_400_000).toISOString().slice(0, 10);
    // [status, deadline, computed]: the overdue rule's cases, each with the answer isOverdue gives.
    const cases: Array<[string, string | null, unknown]> = [
      ['submitted', day(-30), {}],
      ['submitted', day(-30), { decisions: [{ kind: 'approval' }] }],
      ['submitted', day(-30), { decisions: [{ kind: 'observation' }, { kind: 'annulment', on: day(-2) }] }],
      ['submitted', day(-30), { decisions: [{ kind: 'observation' }] }],
      ['submitted', day(-30), { decisions: { kind: 'approval' } }],
      ['submitted', day(-30), { decisions: ['approval', 5, [], { kind: 5 }, {}] }],
      ['submitted', day(-30), { decisions: 'approval' }],
      ['submitted', day(-1), { warnings: ['late'] }],
      ['submitted', today, {}],
      ['submitted', day(1), {}],
      ['submitted', null, {}],
      ['draft', day(-30), {}],
    ];
    const metadata = [
      { subject: 'Guillemets " et barre \\ oblique', n: 1.5, big: 12345678901234, neg: -7, ok: true, none: null, list: [1, 'deux', { trois: [3] }] },
      { subject: 'Contrôle \u0001\u001f, tab\t, ligne\n, retour\r, U+2028 \u2028 et U+2029 \u2029', emoji: '📎 Ω é ß', empty: {}, nested: { a: { b: { c: '' } } } },
      { subject: '<script>alert(1)</script> & \'apostrophe\'', clé: 'valeur', 'key with spaces': [] },
    ];
    const ids: string[] = [];
    for (const [i, [status, deadline, computed]] of cases.entries()) {
      const id = randomUUID();
      ids.push(id);
      await db.execute(sql`INSERT INTO envelopes (id, type, type_version, from_mailbox, status, metadata, computed, created_by, created_at, submitted_at, deadline)
        VALUES (${id}, 'tutelle.act', '1.0', 'legal@ixelles', ${status}, ${JSON.stringify(metadata[i % metadata.length])}::jsonb, ${JSON.stringify(computed)}::jsonb,
                ${sender.id}, ${`2026-05-01T10:00:00.${String(i).padStart(3, '0')}Z`}::timestamptz, ${status === 'draft' ? null : `2026-05-01T10:00:01.${String(i).padStart(3, '0')}Z`}::timestamptz, ${deadline}::date)`);
      if (status === 'submitted') {
        await db.execute(sql`INSERT INTO envelope_recipients (envelope_id, mailbox_address, status, delivered_at)
          VALUES (${id}, 'legal@uccle', ${i % 2 === 0 ? 'delivered' : 'retrieved'}, ${`2026-05-01T10:00:02.${String(i).padStart(3, '0')}Z`}::timestamptz)`);
        // A second recipient the reader cannot read: shown in the item's recipients all the same.
        await db.execute(sql`INSERT INTO envelope_recipients (envelope_id, mailbox_address, status, delivered_at)
          VALUES (${id}, 'archives@uccle', 'delivered', ${`2026-05-01T10:00:02.${String(i).padStart(3, '0')}Z`}::timestamptz)`);
      }
    }
    const caller = { type: 'principal' as const, principal: (await api.services.directoryRepository.findPrincipal(reader.id))!, tokenId: null };
    const expectedOverdue = cases.map(([status, deadline, computed]) => status === 'submitted' && deadline !== null && today > deadline && !decidedByHand(computed));
    t.same(expectedOverdue, [true, false, false, true, true, true, true, true, false, false, false, false], 'the cases cover both answers');
    let seen = 0;
    for (const [address, query] of [
      ['legal@uccle', { direction: 'in', limit: '4' }],
      ['legal@uccle', { direction: 'in', limit: '3', status: 'retrieved', type: 'tutelle.act' }],
      ['legal@ixelles', { direction: 'out', limit: '5' }],
      ['legal@ixelles', { direction: 'out', status: 'draft' }],
    ] as const) {
      const path = `${API}/mailboxes/${address}/envelopes`;
      let url: string | undefined = `${path}?${new URLSearchParams(query)}`;
      let cursor: string | undefined;
      let pages = 0;
      while (url !== undefined) {
        const res = await api.call('GET', url, { token: readerToken });
        t.equal(res.statusCode, 200, url);
        const body = JSON.parse(res.body);
        const page = await api.services.envelopes.listMailbox(caller, address, {
          direction: query.direction,
          ...('type' in query ? { type: query.type } : {}),
          ...('status' in query ? { status: query.status } : {}),
          ...(cursor === undefined ? {} : { cursor }),
          ...('limit' in query ? { limit: Number(query.limit) } : {}),
        });
        const expected = pageView(page, (item) => envelopeSummaryView(item.envelope, query.direction === 'in' ? address : undefined, item.overdue), path, query);
        t.same(body, JSON.parse(JSON.stringify(expected)), `${url}: the same page`);
        for (const item of body.items) t.equal(item.overdue, expectedOverdue[ids.indexOf(item.id)], `${url}: ${item.id} overdue`);
        seen += body.items.length;
        cursor = page.nextCursor;
        url = body.next;
        pages++;
      }
      t.ok(pages >= (address === 'legal@ixelles' && !('status' in query) ? 3 : 1), `${address} ${JSON.stringify(query)}: ${pages} page(s)`);
    }
    t.equal(seen, 11 + 5 + 12 + 1, 'every envelope listed where it belongs (inbox, retrieved ones, outbox, drafts)');
  });

  t.test('on PostgreSQL the listings run on sessions of their own that use generic plans only', async (t) => {
    const database = api.services.database;
    const mode = async (on: Db) => rowsOf<{ mode: string }>(await on.execute(sql`SELECT current_setting('plan_cache_mode') AS mode`))[0]?.mode;
    if (database.kind === 'pglite') {
      t.equal(database.listingDb, database.db, 'PGlite has one session: the listings run on it');
      return;
    }
    t.equal(await mode(database.listingDb), 'force_generic_plan', 'listing sessions');
    t.equal(await mode(database.db), 'auto', 'every other statement keeps the default');
    const name = rowsOf<{ name: string }>(await database.listingDb.execute(sql`SELECT current_setting('application_name') AS name`))[0]?.name;
    t.equal(name, 'bxchange', 'named like the main pool (monitoring, the api benchmark)');
    // A filtered listing (the shape the plan cache planned again at every run) answers through them.
    const res = await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=in&status=acknowledged&type=general.letter`, { token });
    t.equal(res.statusCode, 200);
    t.equal(json(res).items.length, 2);
  });

  t.test('a session in another time zone and DateStyle lists the same text, and the same sort instants', async (t) => {
    // PGlite has one session: the app's own. On PostgreSQL a new pool opens sessions with the database's default.
    const zones = ['Asia/Kathmandu', 'America/St_Johns'];
    for (const zone of zones) {
      let zoned: Db;
      if (backend.url === undefined) {
        await db.execute(sql.raw(`SET TimeZone = '${zone}'`));
        await db.execute(sql.raw(`SET DateStyle = 'SQL, DMY'`));
        zoned = db;
      } else {
        const name = new URL(backend.url).pathname.slice(1);
        await db.execute(sql.raw(`ALTER DATABASE ${name} SET TimeZone = '${zone}'`));
        await db.execute(sql.raw(`ALTER DATABASE ${name} SET DateStyle = 'SQL, DMY'`));
        const other = await openDatabase({ url: backend.url });
        t.teardown(() => other.close());
        zoned = other.db;
      }
      const shown = rowsOf<{ tz: string }>(await zoned.execute(sql`SELECT current_setting('TimeZone') AS tz`))[0]?.tz;
      t.equal(shown, zone, `the session runs in ${zone}`);
      const repository = createEnvelopeRepository(zoned);
      for (const direction of ['in', 'out'] as const) {
        const address = direction === 'in' ? 'secretariat@uccle' : 'secretariat@ixelles';
        const items = await repository.listMailbox({ address, direction, limit: 10 });
        const order = direction === 'in' ? newestFirst : [2, 1, 0];
        t.same(items.map((x) => x.envelope.id), order.map((i) => ids[i]), `${zone} ${direction}: order`);
        for (const [n, i] of order.entries()) {
          const { envelope, sortTime } = items[n]!;
          const e = EXPECTED[i]!;
          t.same([envelope.createdAt, envelope.submittedAt], [e.createdAt, e.submittedAt], `${zone} ${direction} ${i}: envelope instants`);
          t.same(
            envelope.recipients.map((r) => [r.deliveredAt, r.retrievedAt, r.acknowledgedAt]),
            [0, 1].map(() => [e.deliveredAt, e.retrievedAt, e.acknowledgedAt]),
            `${zone} ${direction} ${i}: recipient instants`,
          );
          t.equal(sortTime.toISOString(), direction === 'in' ? e.deliveredAt : e.createdAt, `${zone} ${direction} ${i}: sort instant`);
        }
      }
      // The API's listing, written as JSON by this session: the same instants, and the deadline as YYYY-MM-DD whatever the DateStyle.
      const written = await repository.listMailboxJson({ address: 'secretariat@uccle', direction: 'in', limit: 10 }, { today: '2026-01-01', finalDecisions: [], hrefPrefix: '/x/' });
      t.same(written.map((row) => row.id), newestFirst.map((i) => ids[i]), `${zone}: JSON rows in order`);
      for (const [n, i] of newestFirst.entries()) {
        const item = JSON.parse(written[n]!.json);
        const e = EXPECTED[i]!;
        t.same([item.createdAt, item.submittedAt, item.deadline], [e.createdAt, e.submittedAt, i === 1 ? '2026-04-01' : null], `${zone} JSON ${i}: instants and deadline`);
        t.same(item.recipients.map((r: any) => [r.deliveredAt, r.retrievedAt, r.acknowledgedAt]), [0, 1].map(() => [e.deliveredAt, e.retrievedAt, e.acknowledgedAt]), `${zone} JSON ${i}: recipient instants`);
        t.equal(written[n]!.sortTime, e.deliveredAt, `${zone} JSON ${i}: sort instant`);
        t.equal(item.href, `/x/${ids[i]}`);
      }
      // A cursor taken from this session continues the listing exactly.
      const first = await repository.listMailbox({ address: 'secretariat@uccle', direction: 'in', limit: 1 });
      const rest = await repository.listMailbox({ address: 'secretariat@uccle', direction: 'in', limit: 10, after: { time: first[0]!.sortTime, id: first[0]!.envelope.id } });
      t.same(rest.map((x) => x.envelope.id), newestFirst.slice(1).map((i) => ids[i]), `${zone}: the cursor continues after the first item`);
    }
    if (backend.url !== undefined) {
      await db.execute(sql.raw(`ALTER DATABASE ${new URL(backend.url).pathname.slice(1)} RESET TimeZone`));
      await db.execute(sql.raw(`ALTER DATABASE ${new URL(backend.url).pathname.slice(1)} RESET DateStyle`));
    } else {
      await db.execute(sql`RESET TimeZone`);
      await db.execute(sql`RESET DateStyle`);
    }
  });

  t.test('the listed recipients follow every change to the recipient rows, whoever makes it, in whatever time zone', async (t) => {
    /** The API's item for envelope i in secretariat@uccle's inbox. */
    const listed = async (i: number) => {
      const page = json(await api.call('GET', `${API}/mailboxes/secretariat@uccle/envelopes?direction=in`, { token }));
      return page.items.find((x: any) => x.id === ids[i]);
    };
    /** What the whole envelope (the domain, from the recipient rows) says of its recipients. */
    const whole = async (i: number) => json(await api.call('GET', `${API}/envelopes/${ids[i]}`, { token })).recipients;
    // Plain SQL from a session in Kathmandu with another DateStyle, as an operator might run it; one statement
    // changes two envelopes at once.
    await db.transaction(async (tx) => {
      await tx.execute(sql`SET LOCAL TimeZone = 'Asia/Kathmandu'`);
      await tx.execute(sql`SET LOCAL DateStyle = 'SQL, DMY'`);
      await tx.execute(sql`UPDATE envelope_recipients SET status = 'acknowledged', acknowledged_at = '2026-05-05 10:00:00.123456+00'
        WHERE envelope_id = ${ids[0]} AND mailbox_address = 'archives@uccle'`);
      await tx.execute(sql`UPDATE envelope_recipients SET retrieved_at = '2026-06-01 00:00:00+00'
        WHERE mailbox_address = 'secretariat@uccle' AND envelope_id IN (${ids[1]}, ${ids[2]})`);
    });
    const first = await listed(0);
    t.same(first.recipients.find((r: any) => r.address === 'archives@uccle'), {
      address: 'archives@uccle',
      status: 'acknowledged',
      deliveredAt: EXPECTED[0]!.deliveredAt,
      retrievedAt: EXPECTED[0]!.retrievedAt,
      acknowledgedAt: '2026-05-05T10:00:00.123Z',
    });
    for (const i of [1, 2]) {
      t.equal((await listed(i)).recipients.find((r: any) => r.address === 'secretariat@uccle').retrievedAt, '2026-06-01T00:00:00.000Z', `envelope ${i}: one statement, both envelopes`);
    }
    await db.execute(sql`DELETE FROM envelope_recipients WHERE envelope_id = ${ids[2]} AND mailbox_address = 'archives@uccle'`);
    t.same((await listed(2)).recipients.map((r: any) => r.address), ['secretariat@uccle'], 'a removed recipient is gone');
    for (const i of [0, 1, 2]) t.same((await listed(i)).recipients, await whole(i), `envelope ${i}: the listing says what the recipient rows say`);
    const stale = rowsOf<{ n: number | string }>(
      await db.execute(sql`SELECT count(*) AS n FROM envelopes WHERE coalesce(recipients_json, '[]'::json)::text IS DISTINCT FROM bx_envelope_recipients_json(id)::text`),
    );
    t.equal(Number(stale[0]!.n), 0, 'no envelope keeps recipients that are not its rows');
  });
});
