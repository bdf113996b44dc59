/**
 * Typed envelopes through the HTTP door on the seeded Brussels directory:
 * the types and their schemas, routing by sender entity, refusals, tutelle
 * deadlines on the Brussels calendar, extension, clock stop and complement,
 * late decisions, and the deadlines listing.
 *
 * End-to-end encryption is enforced (DESIGN §4c): the mailboxes the test uses
 * publish keys through the API, and every submitted file is ciphertext for
 * its draft's keys.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import * as openpgp from 'openpgp';
import { seedBrussels } from '../../src/domain/seed.ts';
import { forEachBackend, startApp, type TestApp } from '../helpers/backends.ts';
import { draftKeys, encryptFor } from '../helpers/e2e.ts';

const API = '/api/v1';

/**
 * Publishes, as the administrator, a key for each mailbox like the test
 * helper's (v4 ed25519/cv25519, user ID = the address) but dated 1 January
 * 2026: the server refuses a key dated after its clock, and this test's clock
 * runs in November and December 2026, whatever the real date.
 */
async function publishDatedKeys(api: TestApp, addresses: string[]): Promise<void> {
  for (const address of addresses) {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: address, email: address }],
      date: new Date('2026-01-01T00:00:00Z'),
      format: 'armored',
      config: { v6Keys: false, aeadProtect: false },
    });
    const res = await api.call('PUT', `${API}/mailboxes/${address}/key`, { body: { publicKey } });
    if (res.statusCode !== 200 && res.statusCode !== 201) throw new Error(`publishing the key of ${address}: ${res.statusCode} ${res.body}`);
  }
}

function form(files: Array<{ role: string; name: string; data: Buffer }>) {
  const boundary = `----bx${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const f of files) {
    chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="role"\r\n\r\n${f.role}\r\n`));
    chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${f.name}"\r\ncontent-type: application/octet-stream\r\n\r\n`), f.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

forEachBackend(t, 'typed envelopes', async (t, parts) => {
  // Monday 2 November 2026, 10:00 Brussels (09:00 UTC).
  let now = new Date('2026-11-02T09:00:00Z');
  const api: TestApp = await startApp(t, await parts(), { clock: { now: () => now } });
  const seeded = await seedBrussels(api.services.directoryRepository);
  t.equal(seeded.entitiesCreated, 45, '19 communes, 19 CPAS, 6 zones, BPL');
  const again = await seedBrussels(api.services.directoryRepository);
  t.same([again.entitiesCreated, again.mailboxesCreated], [0, 0], 'seeding twice creates nothing');
  // The mailboxes this test drafts from or to (seeding publishes no key).
  await publishDatedKeys(api, ['secretariat@cpas-ixelles', 'secretariat@ixelles', 'secretariat@uccle', 'secretariat@zp-5339', 'tutelle@bpl', 'merite@bpl']);

  const post = async (url: string, body: unknown, token?: string) => api.call('POST', url, { body, ...(token ? { token } : {}) });
  const member = async (name: string, mailbox: string) => {
    const p = JSON.parse((await post(`${API}/principals`, { name, kind: 'machine', memberships: [{ mailbox, roles: ['read', 'send'] }] })).body);
    return JSON.parse((await post(`${API}/principals/${p.id}/tokens`, {})).body).token as string;
  };
  const cpas = await member('cpas-ixelles-bo', 'secretariat@cpas-ixelles');
  const commune = await member('ixelles-bo', 'secretariat@ixelles');
  const tutelle = await member('bpl-tutelle', 'tutelle@bpl');
  const zone = await member('zp-bo', 'secretariat@zp-5339');

  const act = (overrides: Record<string, unknown> = {}) => ({
    issuingBody: 'council',
    decisionDate: '2026-10-20',
    actCategory: 'budget',
    fiscalYear: 2027,
    subject: 'Budget 2027',
    transmission: 'automatic',
    ...overrides,
  });
  const draft = async (token: string, body: Record<string, unknown>) => post(`${API}/envelopes`, body, token);
  /** Uploads a file per role (100 random bytes encrypted for the draft's keys), then submits. */
  const submitWith = async (token: string, created: { id: string; encryptionKeys: Array<{ publicKey: string }> }, files: Array<{ role: string; name: string }>) => {
    const f = form(await Promise.all(files.map(async (file) => ({ ...file, data: await encryptFor(draftKeys(created), randomBytes(100)) }))));
    const up = await api.call('POST', `${API}/envelopes/${created.id}/files`, { token, body: f.body, headers: f.headers });
    if (up.statusCode !== 201) throw new Error(up.body);
    return api.call('POST', `${API}/envelopes/${created.id}/submit`, { token });
  };

  t.test('the eight types are served with their JSON Schemas', async (t) => {
    const list = JSON.parse((await api.call('GET', `${API}/envelope-types`, { token: commune })).body);
    t.same(list.items.map((i: any) => i.name).sort(), [
      'decoration.nomination',
      'general.letter',
      'procurement.file',
      'tutelle.act',
      'tutelle.actList',
      'tutelle.decision',
      'wepulse.dataset',
      'wepulse.document',
    ]);
    const one = JSON.parse((await api.call('GET', `${API}/envelope-types/tutelle.act`, { token: commune })).body);
    t.equal(one.schema.type, 'object');
    t.ok(one.schema.properties.actCategory, 'the schema lists the fields');
    t.equal(one.schema.additionalProperties, false);
    t.equal((await api.call('GET', `${API}/envelope-types/no.such`, { token: commune })).statusCode, 404);
  });

  t.test("a CPAS's budget goes to tutelle@bpl and to its commune's secretariat", async (t) => {
    const res = await draft(cpas, { type: 'tutelle.act', from: 'secretariat@cpas-ixelles', metadata: act() });
    t.equal(res.statusCode, 201, res.body);
    t.same(JSON.parse(res.body).recipients.map((r: any) => r.address).sort(), ['secretariat@ixelles', 'tutelle@bpl']);
  });

  t.test('validation names the failing field; routing refuses the wrong sender or recipient', async (t) => {
    const noYear = await draft(commune, { type: 'tutelle.act', from: 'secretariat@ixelles', metadata: act({ fiscalYear: undefined }) });
    t.equal(noYear.statusCode, 400);
    t.match(JSON.parse(noYear.body).issues, [{ name: '/metadata/fiscalYear' }]);
    const future = await draft(commune, { type: 'tutelle.act', from: 'secretariat@ixelles', metadata: act({ decisionDate: '2026-12-01' }) });
    t.match(JSON.parse(future.body).issues, [{ name: '/metadata/decisionDate' }]);
    const extra = await draft(commune, { type: 'tutelle.act', from: 'secretariat@ixelles', metadata: act({ mayorName: 'X' }) });
    t.match(JSON.parse(extra.body).issues, [{ name: '/metadata/mayorName' }]);
    const decisionFromCommune = await draft(commune, { type: 'tutelle.decision', from: 'secretariat@ixelles', metadata: { kind: 'approval', legalBasis: 'art. 13' } });
    t.equal(decisionFromCommune.statusCode, 403, 'only the tutelle authority decides');
    const nominationElsewhere = await draft(commune, { type: 'decoration.nomination', from: 'secretariat@ixelles', to: ['secretariat@uccle'], metadata: { proposedRank: 'Chevalier', posthumous: false } });
    t.equal(nominationElsewhere.statusCode, 400, 'a nomination goes to merite@bpl only');
    const nomination = await draft(commune, { type: 'decoration.nomination', from: 'secretariat@ixelles', metadata: { proposedRank: 'Chevalier', posthumous: false } });
    t.same(JSON.parse(nomination.body).recipients.map((r: any) => r.address), ['merite@bpl']);
  });

  t.test('deadline: receipt + 30 days on the Brussels calendar; extension, clock stop and complement', async (t) => {
    // Submitted Monday 2 Nov 2026: +30 = Wednesday 2 Dec 2026 (a working day).
    const created = JSON.parse((await draft(zone, { type: 'tutelle.act', from: 'secretariat@zp-5339', metadata: act({ issuingBody: 'policeCouncil', actCategory: 'procurementDecision', fiscalYear: undefined }) })).body);
    t.ok(created.id, JSON.stringify(created));
    const submitted = await submitWith(zone, created, [
      { role: 'deliberation', name: 'deliberation.pdf.gpg' },
      { role: 'procurementDocuments', name: 'docs.pdf.gpg' },
    ]);
    const body = JSON.parse(submitted.body);
    if (submitted.statusCode !== 200) {
      // The required roles are data: show what the category asked for.
      t.fail(`submit: ${submitted.body}`);
      return;
    }
    t.equal(body.deadline, '2026-12-02');
    t.match(body.retainUntil, /^2036-11-0[2-3]$/, 'ten years');

    // An extension decided on 10 Nov: next working day on or after 2 Nov + 45 = 17 Dec 2026 (Thursday).
    now = new Date('2026-11-10T09:00:00Z');
    const extension = JSON.parse((await draft(tutelle, { type: 'tutelle.decision', from: 'tutelle@bpl', inReplyTo: created.id, metadata: { kind: 'extension', legalBasis: 'art. 13', reasons: 'complex file' } })).body);
    t.same(extension.recipients.map((r: any) => r.address), ['secretariat@zp-5339'], 'a decision goes back to the act’s sender');
    t.equal((await submitWith(tutelle, extension, [{ role: 'decision', name: 'decision.pdf.gpg' }])).statusCode, 200);
    t.equal(JSON.parse((await api.call('GET', `${API}/envelopes/${created.id}`, { token: zone })).body).deadline, '2026-12-17');

    // A second extension is refused at submit, with a signed rejection.
    const second = JSON.parse((await draft(tutelle, { type: 'tutelle.decision', from: 'tutelle@bpl', inReplyTo: created.id, metadata: { kind: 'extension', legalBasis: 'art. 13', reasons: 'again' } })).body);
    const refused = await submitWith(tutelle, second, [{ role: 'decision', name: 'decision2.pdf.gpg' }]);
    t.equal(refused.statusCode, 422);
    t.match(JSON.parse(refused.body).issues, [{ name: '/metadata/kind' }]);

    // A document request stops the clock: the act leaves the deadlines list's running clocks.
    const request = JSON.parse((await draft(tutelle, { type: 'tutelle.decision', from: 'tutelle@bpl', inReplyTo: created.id, metadata: { kind: 'documentRequest', legalBasis: 'art. 13', reasons: 'missing annex' } })).body);
    t.equal((await submitWith(tutelle, request, [{ role: 'decision', name: 'request.pdf.gpg' }])).statusCode, 200);
    t.equal(JSON.parse((await api.call('GET', `${API}/envelopes/${created.id}`, { token: zone })).body).deadline, null, 'clock stopped');

    // The complement, accepted Friday 20 Nov: +30 = Sunday 20 Dec → Monday 21 Dec 2026.
    now = new Date('2026-11-20T09:00:00Z');
    const complement = JSON.parse((await draft(zone, { type: 'tutelle.act', from: 'secretariat@zp-5339', inReplyTo: request.id, metadata: act({ issuingBody: 'policeCouncil', actCategory: 'procurementDecision', fiscalYear: undefined, subject: 'Complement' }) })).body);
    t.ok(complement.id, JSON.stringify(complement));
    t.equal((await submitWith(zone, complement, [{ role: 'deliberation', name: 'c.pdf.gpg' }, { role: 'procurementDocuments', name: 'd.pdf.gpg' }])).statusCode, 200);
    t.equal(JSON.parse((await api.call('GET', `${API}/envelopes/${created.id}`, { token: zone })).body).deadline, '2026-12-21', 'the clock restarted from the complement');

    // A decision after the deadline is flagged late; the deadlines listing flags overdue acts first.
    now = new Date('2026-12-22T09:00:00Z');
    const listing = JSON.parse((await api.call('GET', `${API}/mailboxes/tutelle@bpl/deadlines`, { token: tutelle })).body);
    const mine = listing.items.find((i: any) => i.envelope.id === created.id);
    t.match(mine, { deadline: '2026-12-21', overdue: true });
    const inboxItem = async () =>
      JSON.parse((await api.call('GET', `${API}/mailboxes/tutelle@bpl/envelopes?direction=in`, { token: tutelle })).body).items.find((i: any) => i.id === created.id);
    t.match(await inboxItem(), { deadline: '2026-12-21', overdue: true }, 'the inbox item says so too');
    const late = JSON.parse((await draft(tutelle, { type: 'tutelle.decision', from: 'tutelle@bpl', inReplyTo: created.id, metadata: { kind: 'approval', legalBasis: 'art. 13' } })).body);
    const decided = JSON.parse((await submitWith(tutelle, late, [{ role: 'decision', name: 'approval.pdf.gpg' }])).body);
    t.equal(decided.computed.late, true, 'a decision after the deadline is flagged');
    const after = JSON.parse((await api.call('GET', `${API}/mailboxes/tutelle@bpl/deadlines`, { token: tutelle })).body);
    t.notOk(after.items.some((i: any) => i.envelope.id === created.id), 'a decided act leaves the deadlines list');
    t.match(await inboxItem(), { deadline: '2026-12-21', overdue: false }, 'a decided act is no longer overdue in the inbox');
  });
});
