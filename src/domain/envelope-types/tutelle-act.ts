/**
 * `tutelle.act`: a local authority sends an act (a deliberation, a decision)
 * to the tutelle authority (DESIGN §4). The category table
 * (../tutelle-categories.ts) decides the kind of tutelle, whether the
 * transmission was mandatory, the decision period and the required files.
 */
import { Type, type Static } from 'typebox';
import { daysBetween } from '../calendar.ts';
import { BPL_MAILBOXES, secretariatOf } from '../brussels-directory.ts';
import { TRANSMISSION_WARNING_DAYS, tutelleDeadline } from '../deadlines.ts';
import type { EntityKind } from '../model.ts';
import { ACT_CATEGORIES, TUTELLE_CATEGORIES, tutelleCategory } from '../tutelle-categories.ts';
import { EnvelopeIdSchema, IsoDateSchema, ReferenceSchema, metadataIssue, refuse, routeFor, routedTo } from './common.ts';
import type { CheckResult, EnvelopeType, Label } from './types.ts';

/** Entities under the Region's (or the COCOM's) administrative tutelle. */
export const TUTELLE_SENDERS: readonly EntityKind[] = ['commune', 'cpas', 'regie', 'intercommunale', 'police_zone'];

export const ISSUING_BODIES = [
  'council',
  'college',
  'mayor',
  'cpasCouncil',
  'cpasPermanentBureau',
  'cpasSpecialCommittee',
  'policeCouncil',
  'policeCollege',
  'boardOfDirectors',
  'generalAssembly',
  'other',
] as const;

export const ISSUING_BODY_LABELS: Readonly<Record<(typeof ISSUING_BODIES)[number], Label>> = {
  council: { fr: 'Conseil communal', nl: 'Gemeenteraad' },
  college: { fr: 'Collège des bourgmestre et échevins', nl: 'College van burgemeester en schepenen' },
  mayor: { fr: 'Bourgmestre', nl: 'Burgemeester' },
  cpasCouncil: { fr: "Conseil de l'action sociale", nl: 'Raad voor maatschappelijk welzijn' },
  cpasPermanentBureau: { fr: 'Bureau permanent', nl: 'Vast bureau' },
  cpasSpecialCommittee: { fr: 'Comité spécial', nl: 'Bijzonder comité' },
  policeCouncil: { fr: 'Conseil de police', nl: 'Politieraad' },
  policeCollege: { fr: 'Collège de police', nl: 'Politiecollege' },
  boardOfDirectors: { fr: "Conseil d'administration", nl: 'Raad van bestuur' },
  generalAssembly: { fr: 'Assemblée générale', nl: 'Algemene vergadering' },
  other: { fr: 'Autre organe', nl: 'Ander orgaan' },
};

export const IssuingBodySchema = (title: string) =>
  Type.Enum([...ISSUING_BODIES], { title, description: 'The body that took the decision' });

const schema = Type.Object(
  {
    issuingBody: IssuingBodySchema('Issuing body'),
    decisionDate: IsoDateSchema('Decision date', 'The date the act was adopted (not in the future)'),
    actCategory: Type.Enum([...ACT_CATEGORIES], { title: 'Act category', description: 'Decides the kind of tutelle, the period and the required files' }),
    fiscalYear: Type.Optional(Type.Integer({ minimum: 1990, maximum: 2100, title: 'Fiscal year', description: 'Required for budgets, budget changes and accounts' })),
    subject: Type.String({ minLength: 1, maxLength: 500, title: 'Subject', description: 'What the act decides (no personal data: names go inside the encrypted files)' }),
    transmission: Type.Enum(['automatic', 'onRequest'], { title: 'Transmission', description: "Sent on the authority's own motion, or at the tutelle authority's request" }),
    relatedEnvelopeId: Type.Optional(EnvelopeIdSchema('Related envelope', 'An earlier envelope this act relates to (e.g. the budget a change amends)')),
    reference: Type.Optional(ReferenceSchema()),
  },
  { additionalProperties: false, title: 'tutelle.act 1.0' },
);
export type TutelleActMetadata = Static<typeof schema>;

function categoryOf(metadata: TutelleActMetadata) {
  return tutelleCategory(metadata.actCategory)!; // the schema's enum is the table's keys
}

export const tutelleAct: EnvelopeType<TutelleActMetadata> = {
  name: 'tutelle.act',
  version: '1.0',
  title: { fr: 'Acte soumis à la tutelle', nl: 'Akte onderworpen aan het toezicht' },
  description: 'An act of a local authority sent to the tutelle authority (BPL); a CPAS also sends its budget and accounts to its commune.',
  schema,
  fieldLabels: {
    '/issuingBody': { fr: 'Organe', nl: 'Orgaan' },
    '/decisionDate': { fr: 'Date de la décision', nl: 'Datum van de beslissing' },
    '/actCategory': { fr: "Catégorie d'acte", nl: 'Categorie van akte' },
    '/fiscalYear': { fr: 'Exercice', nl: 'Dienstjaar' },
    '/subject': { fr: 'Objet', nl: 'Onderwerp' },
    '/transmission': { fr: 'Transmission', nl: 'Overzending' },
    '/relatedEnvelopeId': { fr: 'Envoi lié', nl: 'Verwante zending' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: {
    '/issuingBody': ISSUING_BODY_LABELS,
    '/actCategory': Object.fromEntries(TUTELLE_CATEGORIES.map((row) => [row.category, row.label])),
    '/transmission': {
      automatic: { fr: "D'office", nl: 'Ambtshalve' },
      onRequest: { fr: 'Sur demande', nl: 'Op verzoek' },
    },
  },
  senders: TUTELLE_SENDERS,
  addressing: 'routed',
  route: routeFor<TutelleActMetadata>('tutelle.act', TUTELLE_SENDERS, (ctx) => {
    const row = categoryOf(ctx.metadata);
    const recipients: string[] = [BPL_MAILBOXES.tutelle];
    if (ctx.senderEntity.kind === 'cpas' && row.cpasAlsoToCommune) {
      if (ctx.senderEntity.parent === null) {
        return refuse(403, `The directory does not link ${ctx.senderEntity.id} to its commune, which must receive its ${row.label.fr.toLowerCase()}; ask the platform administrators`);
      }
      recipients.push(secretariatOf(ctx.senderEntity.parent));
    }
    return routedTo(ctx, recipients, 'An act under tutelle goes to the tutelle authority');
  }),
  deadline: 'tutelle',
  retentionClass: 'tutelle',
  personalData: true,
  exportFeed: 'metadata',
  requiredRoles: (metadata) => [...categoryOf(metadata).requiredRoles],
  // A complement answers a documentRequest / incompleteFile decision and restarts the clock.
  inReplyTo: { required: false, types: ['tutelle.decision'] },
  check(metadata, { today }): CheckResult {
    const row = categoryOf(metadata);
    const result: CheckResult = { issues: [], warnings: [] };
    if (row.fiscalYearRequired && metadata.fiscalYear === undefined) {
      result.issues.push(metadataIssue('/fiscalYear', `is required for the category "${metadata.actCategory}"`));
    }
    const age = daysBetween(metadata.decisionDate, today);
    if (age < 0) {
      result.issues.push(metadataIssue('/decisionDate', `is in the future (today is ${today} in Brussels)`, metadata.decisionDate));
    } else if (age > TRANSMISSION_WARNING_DAYS) {
      result.warnings.push(`The act is transmitted ${age} days after its adoption (${metadata.decisionDate}); acts are to be transmitted within ${TRANSMISSION_WARNING_DAYS} days`);
    }
    return result;
  },
  computed(metadata, { today }) {
    const row = categoryOf(metadata);
    return {
      tutelleKind: row.tutelleKind,
      mandatoryTransmission: row.mandatoryTransmission,
      days: row.days,
      extensionAllowed: row.extensionAllowed,
      categoryVerified: row.verified,
      receiptDate: today,
      deadline: tutelleDeadline(today, row.days),
      transmissionDelayDays: daysBetween(metadata.decisionDate, today),
    };
  },
};
