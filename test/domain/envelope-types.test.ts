/**
 * Envelope types: the registry by name and version, each type's metadata
 * validation (every refusal names the offending field as a JSON pointer under
 * /metadata), the values the server computes, and the published description.
 */
import fc from 'fast-check';
import t from 'tap';
import { Type } from 'typebox';
import {
  BUILT_IN_TYPES,
  checkMetadata,
  createEnvelopeTypeRegistry,
  describeEnvelopeType,
  findEnvelopeType,
  inReplyToIssues,
  listEnvelopeTypes,
  listEnvelopeTypeVersions,
  metadataIssues,
  missingRoleIssues,
  assertMetadata,
  compareVersions,
  type EnvelopeType,
} from '../../src/domain/envelope-types/index.ts';
import { generalLetter } from '../../src/domain/envelope-types/general-letter.ts';
import { ENTITY_KINDS } from '../../src/domain/model.ts';
import { RETENTION_CLASSES } from '../../src/domain/retention.ts';
import { TUTELLE_CATEGORIES } from '../../src/domain/tutelle-categories.ts';

const TODAY = '2026-06-15';
const type = (name: string) => findEnvelopeType(name)!;
const names = (issues: { name: string }[]) => issues.map((i) => i.name);
const without = (object: Record<string, unknown>, key: string) => Object.fromEntries(Object.entries(object).filter(([k]) => k !== key));

const VALID: Record<string, Record<string, unknown>> = {
  'general.letter': { subject: 'Convocation', reference: 'R-1' },
  'tutelle.act': { issuingBody: 'council', decisionDate: '2026-06-01', actCategory: 'budget', fiscalYear: 2027, subject: 'Budget 2027', transmission: 'automatic' },
  'tutelle.actList': {
    period: { start: '2026-05-01', end: '2026-05-31' },
    entries: [{ decisionDate: '2026-05-12', body: 'college', summary: 'Approbation du PV de la séance' }],
  },
  'tutelle.decision': { kind: 'annulment', legalBasis: 'Ordonnance du 14 mai 1998, art. 9', reasons: 'The act violates the law' },
  'procurement.file': {
    stage: 'launch',
    procedureType: 'open',
    contractNature: 'works',
    estimatedValueExclVat: 120_000_000,
    cpvMain: '45000000-7',
    cpvAdditional: ['45210000-2'],
    lots: [{ number: 1, title: 'Gros œuvre', estimatedValueExclVat: 120_000_000 }],
    publications: [{ journal: 'bda', reference: '2026-512345' }],
  },
  'wepulse.dataset': { domain: 'finance', datasetCode: 'FIN-BUDGET-EXEC', period: '2026-Q1', accountingFramework: 'communal' },
  'wepulse.document': { domain: 'hr', subject: 'Guide de la plateforme RH' },
  'decoration.nomination': { proposedRank: 'Chevalier', posthumous: false, proposerReference: 'DEC-2026-04' },
};

t.test('the registry lists the eight types at their latest version', async (t) => {
  t.same(
    listEnvelopeTypes().map((x) => x.name),
    ['decoration.nomination', 'general.letter', 'procurement.file', 'tutelle.act', 'tutelle.actList', 'tutelle.decision', 'wepulse.dataset', 'wepulse.document'],
  );
  t.equal(findEnvelopeType('general.letter'), generalLetter, 'by name: the latest');
  t.equal(findEnvelopeType('general.letter', '1.0'), generalLetter, 'by name and version');
  t.equal(findEnvelopeType('general.letter', '9.0'), undefined, 'an unknown version');
  t.equal(findEnvelopeType('no.such'), undefined);
  t.equal(listEnvelopeTypeVersions().length, BUILT_IN_TYPES.length);
  for (const x of BUILT_IN_TYPES) {
    t.ok((RETENTION_CLASSES as readonly string[]).includes(x.retentionClass), `${x.name}: a known retention class`);
    if (x.senders !== 'any') t.ok(x.senders.every((k) => (ENTITY_KINDS as readonly string[]).includes(k)), `${x.name}: known sender kinds`);
    t.ok(VALID[x.name], `${x.name} has a valid example in this test`);
  }
});

t.test('old envelopes keep validating against the version they were made with', async (t) => {
  const v1_1: EnvelopeType = { ...generalLetter, version: '1.1', schema: Type.Object({ subject: Type.String(), reference: Type.Optional(Type.String()), urgent: Type.Optional(Type.Boolean()) }, { additionalProperties: false }) };
  const v2: EnvelopeType = { ...generalLetter, version: '2.0', schema: Type.Object({ title: Type.String() }, { additionalProperties: false }) };
  const registry = createEnvelopeTypeRegistry([v2, generalLetter, v1_1]);
  t.equal(registry.find('general.letter'), v2, 'the latest by major then minor');
  t.equal(registry.find('general.letter', '1.1'), v1_1);
  t.same(registry.versions('general.letter').map((x) => x.version), ['1.0', '1.1', '2.0']);
  t.same(registry.list().map((x) => x.version), ['2.0']);
  const old = { subject: 'Sent under 1.0' };
  t.same(metadataIssues(registry.find('general.letter', '1.0')!, old), [], 'valid against its own version');
  t.same(names(metadataIssues(registry.find('general.letter')!, old)).sort(), ['/metadata/subject', '/metadata/title'], 'not against the new major');
  t.throws(() => createEnvelopeTypeRegistry([generalLetter, generalLetter]), /registered twice/);
  t.throws(() => createEnvelopeTypeRegistry([{ ...generalLetter, version: '1' }]), /major.minor/);
  t.ok(compareVersions('1.10', '1.9') > 0, 'versions compare as numbers');
  t.ok(compareVersions('2.0', '10.0') < 0);
});

t.test('every type accepts its valid example and refuses unknown properties by name', async (t) => {
  for (const x of listEnvelopeTypes()) {
    const example = VALID[x.name]!;
    t.same(checkMetadata(x, example, { today: TODAY }).issues, [], `${x.name}: valid`);
    t.same(names(metadataIssues(x, { ...example, colour: 'blue' }, { today: TODAY })), ['/metadata/colour'], `${x.name}: unknown property named`);
    t.ok(metadataIssues(x, null, { today: TODAY }).length > 0, `${x.name}: null refused`);
    t.throws(() => assertMetadata(x, { ...example, colour: 'blue' }, { today: TODAY }), { name: 'ValidationError' });
  }
});

t.test('general.letter behaves as before', async (t) => {
  const letter = type('general.letter');
  t.same(names(metadataIssues(letter, { reference: 'R', colour: 'blue' })).sort(), ['/metadata/colour', '/metadata/subject']);
  t.same(names(metadataIssues(letter, { subject: '' })), ['/metadata/subject']);
  t.same(letter.requiredRoles({ subject: 's' }), []);
});

t.test('tutelle.act: fiscal year, decision date, the 20-day warning, computed tutelle values', async (t) => {
  const act = type('tutelle.act');
  const base = VALID['tutelle.act']!;
  for (const category of ['budget', 'accounts', 'budgetChange']) {
    t.same(names(metadataIssues(act, without({ ...base, actCategory: category }, 'fiscalYear'), { today: TODAY })), ['/metadata/fiscalYear'], `fiscalYear required for ${category}`);
  }
  t.same(metadataIssues(act, without({ ...base, actCategory: 'other' }, 'fiscalYear'), { today: TODAY }), [], 'not required for other categories');
  t.same(names(metadataIssues(act, { ...base, decisionDate: '2026-06-16' }, { today: TODAY })), ['/metadata/decisionDate'], 'tomorrow is in the future');
  t.same(metadataIssues(act, { ...base, decisionDate: TODAY }, { today: TODAY }), [], 'today is not');
  t.same(names(metadataIssues(act, { ...base, decisionDate: '2026-02-30' }, { today: TODAY })), ['/metadata/decisionDate'], 'not a date');
  t.same(names(metadataIssues(act, { ...base, actCategory: 'lottery' }, { today: TODAY })), ['/metadata/actCategory']);
  t.same(names(metadataIssues(act, { ...base, fiscalYear: 2027.5 }, { today: TODAY })), ['/metadata/fiscalYear'], 'a whole year');
  t.same(names(metadataIssues(act, { ...base, subject: 'x'.repeat(501) }, { today: TODAY })), ['/metadata/subject'], 'subject ≤ 500 characters');
  t.same(checkMetadata(act, { ...base, decisionDate: '2026-05-26' }, { today: TODAY }).warnings, [], '20 days after: no warning');
  const late = checkMetadata(act, { ...base, decisionDate: '2026-05-25' }, { today: TODAY });
  t.same(late.issues, [], '21 days after: accepted');
  t.match(late.warnings, [/21 days after/], '… with a warning');
  t.match(act.computed!(base, { today: '2026-06-15' }), {
    tutelleKind: 'approval',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    categoryVerified: false,
    receiptDate: '2026-06-15',
    deadline: '2026-07-15',
  });
  t.match(act.computed!({ ...base, actCategory: 'procurementDecision' }, { today: '2026-06-21' }), { tutelleKind: 'general', extensionAllowed: true, deadline: '2026-07-22' });
  t.same(act.requiredRoles(base), ['deliberation', 'budget']);
  t.same(act.inReplyTo, { required: false, types: ['tutelle.decision'] }, 'a complement replies to a decision');
  t.equal(act.deadline, 'tutelle');
});

t.test('tutelle.act: the category table is complete and honest', async (t) => {
  const act = type('tutelle.act');
  const categories = (describeEnvelopeType(act).schema as { properties: { actCategory: { enum: string[] } } }).properties.actCategory.enum;
  t.same(categories, TUTELLE_CATEGORIES.map((row) => row.category), 'one row per category of the schema');
  for (const row of TUTELLE_CATEGORIES) {
    t.ok(row.legalSource.length > 0 && row.note.length > 0, `${row.category}: a legal source and a note`);
    t.equal(row.verified, false, `${row.category}: not confirmed by BPL, so marked as a placeholder`);
    t.ok(row.requiredRoles.every((role) => /^[a-z][a-zA-Z0-9_-]{0,63}$/.test(role)), `${row.category}: roles are role names`);
  }
  t.same(TUTELLE_CATEGORIES.filter((row) => row.extensionAllowed).map((row) => row.category), ['procurementDecision'], 'extension only for procurement decisions');
});

t.test('tutelle.actList: entries inside the period and not in the future', async (t) => {
  const list = type('tutelle.actList');
  const base = VALID['tutelle.actList']!;
  const entry = { decisionDate: '2026-05-12', body: 'college', summary: 'S' };
  t.same(names(metadataIssues(list, { ...base, entries: [entry, { ...entry, decisionDate: '2026-04-30' }] }, { today: TODAY })), ['/metadata/entries/1/decisionDate']);
  t.same(names(metadataIssues(list, { period: { start: '2026-06-01', end: '2026-06-30' }, entries: [{ ...entry, decisionDate: '2026-06-20' }] }, { today: TODAY })), ['/metadata/entries/0/decisionDate']);
  t.same(names(metadataIssues(list, { ...base, period: { start: '2026-05-31', end: '2026-05-01' } }, { today: TODAY })), ['/metadata/period/end', '/metadata/entries/0/decisionDate']);
  t.same(names(metadataIssues(list, { ...base, entries: [] }, { today: TODAY })), ['/metadata/entries'], 'at least one act');
  t.same(names(metadataIssues(list, { ...base, entries: [{ ...entry, nominee: 'X' }] }, { today: TODAY })), ['/metadata/entries/0/nominee']);
  t.match(checkMetadata(list, base, { today: TODAY }).warnings, [/more than 20 days/]);
});

t.test('tutelle.decision: replies to an act; reasons unless approval; clock events', async (t) => {
  const decision = type('tutelle.decision');
  t.same(decision.inReplyTo, { required: true, types: ['tutelle.act'] });
  t.same(names(metadataIssues(decision, { kind: 'suspension', legalBasis: 'art. 9' })), ['/metadata/reasons']);
  t.same(metadataIssues(decision, { kind: 'approval', legalBasis: 'art. 13' }), []);
  t.same(names(metadataIssues(decision, { kind: 'veto', legalBasis: 'art. 9', reasons: 'r' })), ['/metadata/kind']);
  t.same(decision.computed!({ kind: 'extension', legalBasis: 'b', reasons: 'r' }, { today: TODAY }), { clockEvent: 'extension' });
  t.same(decision.computed!({ kind: 'incompleteFile', legalBasis: 'b', reasons: 'r' }, { today: TODAY }), { clockEvent: 'incompleteFile' });
  t.same(decision.computed!({ kind: 'annulment', legalBasis: 'b', reasons: 'r' }, { today: TODAY }), { clockEvent: null });
  t.same(inReplyToIssues(decision, null).map((i) => i.name), ['/inReplyTo'], 'inReplyTo is required');
  t.same(inReplyToIssues(decision, { id: 'x', type: 'general.letter' }).map((i) => i.name), ['/inReplyTo'], 'to an act only');
  t.same(inReplyToIssues(decision, { id: 'x', type: 'tutelle.act' }), []);
  t.same(inReplyToIssues(type('tutelle.act'), null), [], 'an act may stand alone');
  t.same(inReplyToIssues(type('tutelle.act'), { id: 'x', type: 'general.letter' }).map((i) => i.name), ['/inReplyTo']);
  t.same(inReplyToIssues(type('general.letter'), { id: 'x', type: 'tutelle.act' }), [], 'a letter may reply to anything');
});

t.test('procurement.file: CPV codes, amounts in euro cents, lots, thresholds', async (t) => {
  const file = type('procurement.file');
  const base = VALID['procurement.file']!;
  for (const bad of ['45000000', '4500000-7', '45000000-77', '45000000-X', ' 45000000-7', '45000000–7']) {
    t.same(names(metadataIssues(file, { ...base, cpvMain: bad }, { today: TODAY })), ['/metadata/cpvMain'], `bad CPV ${JSON.stringify(bad)}`);
  }
  t.same(names(metadataIssues(file, { ...base, cpvAdditional: ['45210000-2', '4521'] }, { today: TODAY })), ['/metadata/cpvAdditional/1']);
  t.same(names(metadataIssues(file, { ...base, cpvAdditional: ['45000000-7'] }, { today: TODAY })), ['/metadata/cpvAdditional/0'], 'repeats the main code');
  t.same(names(metadataIssues(file, { ...base, estimatedValueExclVat: -1 }, { today: TODAY })), ['/metadata/estimatedValueExclVat'], 'negative');
  t.same(names(metadataIssues(file, { ...base, estimatedValueExclVat: 1000.5 }, { today: TODAY })), ['/metadata/estimatedValueExclVat'], 'not whole cents');
  t.same(names(metadataIssues(file, { ...base, estimatedValueExclVat: '1000' }, { today: TODAY })), ['/metadata/estimatedValueExclVat'], 'not a string');
  t.same(names(metadataIssues(file, { ...base, lots: [{ number: 1, title: 'A', estimatedValueExclVat: -5 }] }, { today: TODAY })), ['/metadata/lots/0/estimatedValueExclVat']);
  t.same(names(metadataIssues(file, { ...base, lots: [{ number: 1, title: 'A' }, { number: 1, title: 'B' }] }, { today: TODAY })), ['/metadata/lots/1/number'], 'lot numbers unique');
  t.match(checkMetadata(file, { ...base, lots: [{ number: 1, title: 'A', estimatedValueExclVat: 1 }] }, { today: TODAY }).warnings, [/lots add up/]);
  t.same(names(metadataIssues(file, { ...base, stage: 'dreaming' }, { today: TODAY })), ['/metadata/stage']);
  t.same(names(metadataIssues(file, { ...base, jointPurchasing: { participants: [] } }, { today: TODAY })), ['/metadata/jointPurchasing/participants']);
  t.same(names(metadataIssues(file, { ...base, jointPurchasing: { participants: ['ixelles', 'ixelles'] } }, { today: TODAY })), ['/metadata/jointPurchasing/participants/1']);
  t.same(names(metadataIssues(file, { ...base, jointPurchasing: { participants: ['Ixelles!'] } }, { today: TODAY })), ['/metadata/jointPurchasing/participants/0']);

  fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (cents) => metadataIssues(file, { ...base, lots: undefined, estimatedValueExclVat: cents }, { today: TODAY }).every((i) => i.name !== '/metadata/estimatedValueExclVat')));
  fc.assert(fc.property(fc.integer({ max: -1 }), (cents) => names(metadataIssues(file, { ...base, estimatedValueExclVat: cents }, { today: TODAY })).includes('/metadata/estimatedValueExclVat')));
  fc.assert(fc.property(fc.double({ noNaN: true }).filter((x) => !Number.isInteger(x)), (x) => names(metadataIssues(file, { ...base, estimatedValueExclVat: x }, { today: TODAY })).includes('/metadata/estimatedValueExclVat')));
  fc.assert(fc.property(fc.string({ maxLength: 12 }), (cpv) => (metadataIssues(file, { ...base, cpvMain: cpv }, { today: TODAY }).length === 0) === /^\d{8}-\d$/.test(cpv) || cpv === '45210000-2'));

  const noLots = without(base, 'lots');
  const at = (nature: string, cents: number, today: string) => file.computed!({ ...noLots, contractNature: nature, estimatedValueExclVat: cents }, { today });
  t.match(at('works', 540_400_000, '2026-03-01'), { aboveEuThreshold: true, euThresholdCents: 540_400_000, euThresholdPeriod: { from: '2026-01-01', until: '2027-12-31' } }, 'works: €5,404,000 is at the threshold');
  t.match(at('works', 540_399_999, '2026-03-01'), { aboveEuThreshold: false }, 'one cent below');
  t.match(at('supplies', 21_600_000, '2027-12-31'), { aboveEuThreshold: true, euThresholdCents: 21_600_000 }, 'supplies: €216,000 (decentralised)');
  t.match(at('services', 21_599_999, '2026-01-01'), { aboveEuThreshold: false });
  t.match(at('services', 21_600_000, '2025-12-31'), { aboveEuThreshold: false, euThresholdCents: 22_100_000 }, 'the 2024-25 threshold was €221,000');
  t.match(at('works', 1, '2031-01-01'), { aboveEuThreshold: null, euThresholdCents: null }, 'no period known: null, not a guess');
  t.match(at('works', 17_500_000, '2026-03-01'), { tutelleTransmissionMandatory: true, tutelleTransmissionVerified: false });
  t.same(
    names(metadataIssues(file, { ...noLots, procedureType: 'lowValue', contractNature: 'services', estimatedValueExclVat: 30_000_000 }, { today: TODAY })),
    ['/metadata/procedureType'],
    'a low-value procedure above the European threshold',
  );
  t.same(file.requiredRoles(base), ['decision', 'specifications']);
});

t.test('wepulse.dataset and wepulse.document', async (t) => {
  const dataset = type('wepulse.dataset');
  const base = VALID['wepulse.dataset']!;
  const noFramework = without(base, 'accountingFramework');
  t.same(names(metadataIssues(dataset, noFramework)), ['/metadata/accountingFramework'], 'required for finance');
  t.same(metadataIssues(dataset, { ...noFramework, domain: 'hr' }), [], 'not for hr');
  for (const period of ['2026-13', '26-Q1', '2026-Q5', '2026-S3', '2026-1']) t.same(names(metadataIssues(dataset, { ...base, period })), ['/metadata/period'], `bad period ${period}`);
  for (const period of ['2026', '2026-01', '2026-12', '2026-Q4', '2026-S1']) t.same(metadataIssues(dataset, { ...base, period }), [], `period ${period}`);
  t.same(names(metadataIssues(dataset, { ...base, domain: 'weather' })), ['/metadata/domain']);
  t.same(dataset.requiredRoles(base), ['dataset']);
  const document = type('wepulse.document');
  t.same(names(metadataIssues(document, { domain: 'hr' })), ['/metadata/subject']);
});

t.test('decoration.nomination: no nominee data in the metadata', async (t) => {
  const nomination = type('decoration.nomination');
  const base = VALID['decoration.nomination']!;
  t.same(names(metadataIssues(nomination, { ...base, proposerReference: '85.07.30-033.28' })), ['/metadata/proposerReference'], 'a national register number');
  t.same(names(metadataIssues(nomination, { ...base, proposedRank: 'Chevalier 85073003328' })), ['/metadata/proposedRank']);
  t.same(metadataIssues(nomination, { ...base, proposerReference: 'DEC-2026-000123' }), [], 'an ordinary reference');
  t.same(names(metadataIssues(nomination, { proposedRank: 'Chevalier' })), ['/metadata/posthumous']);
  t.same(names(metadataIssues(nomination, { ...base, nominee: 'Jan Janssens' })), ['/metadata/nominee']);
  t.equal(nomination.exportFeed, 'counts');
  t.equal(nomination.retentionClass, 'nomination');
  t.same(nomination.retentionOnOutcome, { accepted: 'nomination-accepted', rejected: 'nomination-rejected' });
});

t.test('required file roles', async (t) => {
  const act = type('tutelle.act');
  t.same(missingRoleIssues(act, VALID['tutelle.act'], ['deliberation', null]).map((i) => i.value), ['budget']);
  t.same(missingRoleIssues(act, VALID['tutelle.act'], ['budget', 'deliberation', 'annex']), []);
});

t.test('the published description is JSON Schema with titles and FR/NL labels for every field and value', async (t) => {
  for (const x of listEnvelopeTypes()) {
    const doc = describeEnvelopeType(x);
    t.same(JSON.parse(JSON.stringify(doc)), doc, `${x.name}: plain JSON`);
    t.same(doc.versions, ['1.0']);
    t.ok(typeof doc.schema.title === 'string', `${x.name}: schema title`);
    const walk = (schema: Record<string, unknown>, pointer: string) => {
      const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
      for (const [key, property] of Object.entries(properties ?? {})) {
        const at = `${pointer}/${key}`;
        t.ok(x.fieldLabels[at]?.fr && x.fieldLabels[at]?.nl, `${x.name}: labels for ${at}`);
        t.ok(typeof property.title === 'string', `${x.name}: title for ${at}`);
        const target = property.type === 'array' ? (property.items as Record<string, unknown>) : property;
        const inner = property.type === 'array' ? `${at}/*` : at;
        for (const value of (target.enum as string[] | undefined) ?? []) t.ok(x.valueLabels[inner]?.[value]?.nl, `${x.name}: labels for ${inner} = ${value}`);
        if (target.type === 'object') walk(target, inner);
      }
    };
    walk(doc.schema, '');
  }
});
