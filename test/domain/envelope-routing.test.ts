/**
 * Routing: each type decides its recipients from the sender's entity, or
 * lets the sender address it freely where the type allows; a sender whose
 * entity kind may not send the type is refused with a 403, a request that
 * must change with a 400.
 */
import t from 'tap';
import { findEnvelopeType, routeEnvelope, type RouteContext, type RouteResult, type SenderEntity } from '../../src/domain/envelope-types/index.ts';
import type { EntityKind } from '../../src/domain/model.ts';

const SENDERS: Record<EntityKind, SenderEntity> = {
  commune: { id: 'ixelles', kind: 'commune', parent: null },
  cpas: { id: 'cpas-ixelles', kind: 'cpas', parent: 'ixelles' },
  police_zone: { id: 'zp-5339', kind: 'police_zone', parent: null },
  regie: { id: 'regie-ixelles', kind: 'regie', parent: 'ixelles' },
  intercommunale: { id: 'interco', kind: 'intercommunale', parent: null },
  region: { id: 'bpl', kind: 'region', parent: null },
  regional_app: { id: 'paradigm', kind: 'regional_app', parent: null },
  other: { id: 'fabrique-saint-boniface', kind: 'other', parent: null },
};
const KINDS = Object.keys(SENDERS) as EntityKind[];
const UNDER_TUTELLE: EntityKind[] = ['commune', 'cpas', 'police_zone', 'regie', 'intercommunale'];

const METADATA: Record<string, Record<string, unknown>> = {
  'tutelle.act': { issuingBody: 'council', decisionDate: '2026-06-01', actCategory: 'other', subject: 'S', transmission: 'automatic' },
  'tutelle.actList': { period: { start: '2026-05-01', end: '2026-05-31' }, entries: [{ decisionDate: '2026-05-12', body: 'college', summary: 'S' }] },
  'tutelle.decision': { kind: 'annulment', legalBasis: 'art. 9', reasons: 'R' },
  'procurement.file': { stage: 'launch', procedureType: 'open', contractNature: 'works', estimatedValueExclVat: 1, cpvMain: '45000000-7' },
  'wepulse.dataset': { domain: 'hr', datasetCode: 'HR-1', period: '2026' },
  'wepulse.document': { domain: 'hr', subject: 'S' },
  'decoration.nomination': { proposedRank: 'Chevalier', posthumous: false },
  'general.letter': { subject: 'S' },
};

function route(typeName: string, kind: EntityKind, extra: Partial<RouteContext> = {}, metadata: Record<string, unknown> = {}): RouteResult {
  const sender = SENDERS[kind];
  return routeEnvelope(findEnvelopeType(typeName)!, {
    senderEntity: sender,
    from: `secretariat@${sender.id}`,
    to: [],
    metadata: { ...METADATA[typeName], ...metadata },
    ...extra,
  });
}

t.test('tutelle.act: entities under tutelle → tutelle@bpl; others refused with 403', async (t) => {
  for (const kind of KINDS) {
    if (UNDER_TUTELLE.includes(kind)) t.same(route('tutelle.act', kind), { recipients: ['tutelle@bpl'] }, `${kind} → tutelle@bpl`);
    else t.match(route('tutelle.act', kind), { refusal: { status: 403 } }, `${kind} refused`);
  }
});

t.test("tutelle.act: a CPAS's budget and accounts also go to its commune's secretariat", async (t) => {
  for (const category of ['budget', 'accounts']) {
    t.same(route('tutelle.act', 'cpas', {}, { actCategory: category, fiscalYear: 2027 }), { recipients: ['tutelle@bpl', 'secretariat@ixelles'] }, `CPAS ${category}`);
    t.same(route('tutelle.act', 'commune', {}, { actCategory: category, fiscalYear: 2027 }), { recipients: ['tutelle@bpl'] }, `commune ${category}: BPL only`);
    t.same(route('tutelle.act', 'regie', {}, { actCategory: category, fiscalYear: 2027 }), { recipients: ['tutelle@bpl'] }, `régie ${category}: BPL only, though it has a parent`);
  }
  t.same(route('tutelle.act', 'cpas', {}, { actCategory: 'staffStatute' }), { recipients: ['tutelle@bpl'] }, 'other CPAS acts: BPL only');
  t.same(
    route('tutelle.act', 'cpas', { to: ['secretariat@ixelles', 'tutelle@bpl'] }, { actCategory: 'budget', fiscalYear: 2027 }),
    { recipients: ['tutelle@bpl', 'secretariat@ixelles'] },
    'the client may repeat the routed recipients',
  );
  const orphan = routeEnvelope(findEnvelopeType('tutelle.act')!, {
    senderEntity: { id: 'cpas-nowhere', kind: 'cpas', parent: null },
    from: 'secretariat@cpas-nowhere',
    to: [],
    metadata: { ...METADATA['tutelle.act'], actCategory: 'budget', fiscalYear: 2027 },
  });
  t.match(orphan, { refusal: { status: 403, detail: /does not link cpas-nowhere to its commune/ } }, 'a CPAS without its commune in the directory cannot route its budget');
});

t.test('routed types refuse other recipients named by the client (400 on /to)', async (t) => {
  t.match(route('tutelle.act', 'commune', { to: ['secretariat@uccle'] }), { refusal: { status: 400, issues: [{ name: '/to' }] } });
  t.match(route('tutelle.act', 'commune', { to: ['tutelle@bpl', 'secretariat@uccle'] }), { refusal: { status: 400 } });
  t.match(route('decoration.nomination', 'commune', { to: ['secretariat@bpl'] }), { refusal: { status: 400, issues: [{ name: '/to' }] } });
  t.same(route('decoration.nomination', 'commune', { to: ['merite@bpl'] }), { recipients: ['merite@bpl'] });
});

t.test('tutelle.actList: the same senders → tutelle@bpl', async (t) => {
  for (const kind of KINDS) {
    if (UNDER_TUTELLE.includes(kind)) t.same(route('tutelle.actList', kind), { recipients: ['tutelle@bpl'] }, `${kind} → tutelle@bpl`);
    else t.match(route('tutelle.actList', kind), { refusal: { status: 403 } }, `${kind} refused`);
  }
});

t.test("tutelle.decision: from tutelle@bpl to the act's sender", async (t) => {
  const act = { id: '0190d3c4-0000-7000-8000-000000000001', type: 'tutelle.act', from: 'secretariat@cpas-ixelles' };
  for (const kind of KINDS) {
    const result = route('tutelle.decision', kind, { from: 'tutelle@bpl', inReplyTo: act });
    if (kind === 'region') t.same(result, { recipients: ['secretariat@cpas-ixelles'] }, 'BPL → the act sender');
    else t.match(result, { refusal: { status: 403 } }, `${kind} refused`);
  }
  t.match(route('tutelle.decision', 'region', { from: 'secretariat@bpl', inReplyTo: act }), { refusal: { status: 403, detail: /tutelle@bpl/ } }, 'another BPL mailbox');
  t.match(route('tutelle.decision', 'region', { from: 'tutelle@bpl' }), { refusal: { status: 400, issues: [{ name: '/inReplyTo' }] } }, 'no act');
  t.match(route('tutelle.decision', 'region', { from: 'tutelle@bpl', inReplyTo: { ...act, type: 'general.letter' } }), { refusal: { status: 400, issues: [{ name: '/inReplyTo' }] } });
  t.match(route('tutelle.decision', 'region', { from: 'tutelle@bpl', inReplyTo: act, to: ['secretariat@ixelles'] }), { refusal: { status: 400, issues: [{ name: '/to' }] } });
  t.same(route('tutelle.decision', 'region', { from: 'tutelle@bpl', inReplyTo: act, to: [act.from] }), { recipients: [act.from] });
});

t.test('procurement.file: marches@bpl for entities under tutelle, free addressing for a joint purchase', async (t) => {
  for (const kind of KINDS) {
    const result = route('procurement.file', kind);
    if (UNDER_TUTELLE.includes(kind)) t.same(result, { recipients: ['marches@bpl'] }, `${kind} → marches@bpl`);
    else if (kind === 'regional_app') t.match(result, { refusal: { status: 403 } }, 'a regional application is no contracting authority');
    else t.match(result, { refusal: { status: 400, issues: [{ name: '/metadata/jointPurchasing' }] } }, `${kind}: only as a joint purchase`);
  }
  const joint = { jointPurchasing: { centralPurchasingBody: 'bpl', participants: ['ixelles', 'uccle'] } };
  const to = ['secretariat@uccle', 'marches@bpl'];
  t.same(route('procurement.file', 'commune', { to }, joint), { recipients: to }, 'a participant addresses its partners');
  t.same(route('procurement.file', 'region', { to }, joint), { recipients: to }, 'the central purchasing body too');
  t.match(route('procurement.file', 'cpas', { to }, joint), { refusal: { status: 400, issues: [{ name: '/metadata/jointPurchasing/participants' }] } }, 'a stranger to the purchase');
  t.match(route('procurement.file', 'commune', {}, joint), { refusal: { status: 400, issues: [{ name: '/to' }] } }, 'free addressing needs recipients');
  t.match(route('procurement.file', 'regional_app', { to }, joint), { refusal: { status: 403 } });
});

t.test('wepulse.dataset: datawarehouse@bpl, or named We Pulse mailboxes, from any entity', async (t) => {
  for (const kind of KINDS) t.same(route('wepulse.dataset', kind), { recipients: ['datawarehouse@bpl'] }, `${kind} → datawarehouse@bpl`);
  t.same(route('wepulse.dataset', 'regional_app', { to: ['wepulse@bpl', 'wepulse@ixelles'] }), { recipients: ['wepulse@bpl', 'wepulse@ixelles'] });
  t.same(route('wepulse.dataset', 'commune', { to: ['datawarehouse@bpl'] }), { recipients: ['datawarehouse@bpl'] });
  t.match(route('wepulse.dataset', 'commune', { to: ['wepulse@bpl', 'secretariat@uccle'] }), { refusal: { status: 400, issues: [{ name: '/to/1' }] } });
});

t.test('wepulse.document: free addressing among We Pulse mailboxes', async (t) => {
  for (const kind of KINDS) t.same(route('wepulse.document', kind, { to: ['wepulse@bpl'] }), { recipients: ['wepulse@bpl'] }, `${kind} may send`);
  t.match(route('wepulse.document', 'commune'), { refusal: { status: 400, issues: [{ name: '/to' }] } }, 'needs recipients');
  t.match(route('wepulse.document', 'commune', { to: ['secretariat@uccle'] }), { refusal: { status: 400, issues: [{ name: '/to/0' }] } }, 'not a We Pulse mailbox');
});

t.test('decoration.nomination: merite@bpl only, from proposing authorities', async (t) => {
  for (const kind of KINDS) {
    if (UNDER_TUTELLE.includes(kind)) t.same(route('decoration.nomination', kind), { recipients: ['merite@bpl'] }, `${kind} → merite@bpl`);
    else t.match(route('decoration.nomination', kind), { refusal: { status: 403 } }, `${kind} refused`);
  }
});

t.test('general.letter: free addressing from any entity', async (t) => {
  for (const kind of KINDS) {
    t.same(route('general.letter', kind, { to: ['secretariat@uccle', 'secretariat@uccle', 'tutelle@bpl'] }), { recipients: ['secretariat@uccle', 'tutelle@bpl'] }, `${kind}: de-duplicated`);
  }
  t.match(route('general.letter', 'commune'), { refusal: { status: 400, issues: [{ name: '/to' }] } });
  t.match(route('general.letter', 'commune', { to: ['not-an-address'] }), { refusal: { status: 400, issues: [{ name: '/to/0' }] } });
});
