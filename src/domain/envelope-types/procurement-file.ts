/**
 * `procurement.file`: a public procurement file at one of its stages (loi du
 * 17 juin 2016 relative aux marchés publics), sent to BPL's procurement
 * service (`marches@bpl`) by an entity under tutelle, or freely addressed
 * among the partners of a joint purchase (DESIGN §4).
 */
import { Type, type Static } from 'typebox';
import { BPL_MAILBOXES } from '../brussels-directory.ts';
import type { EntityKind } from '../model.ts';
import { euThresholdCents, euThresholdPeriod, tutelleTransmissionMandatory, TUTELLE_TRANSMISSION_RULE } from '../procurement-thresholds.ts';
import { CentsSchema, EntityIdSchema, freelyAddressed, metadataIssue, refuse, routeFor, routedTo } from './common.ts';
import { TUTELLE_SENDERS } from './tutelle-act.ts';
import type { CheckResult, EnvelopeType } from './types.ts';

/** Contracting authorities that may use the type; only those under tutelle may send to marches@bpl. */
const SENDERS: readonly EntityKind[] = ['commune', 'cpas', 'police_zone', 'regie', 'intercommunale', 'region', 'other'];

const CPV_PATTERN = '^\\d{8}-\\d$';
const Cpv = (title: string) => Type.String({ pattern: CPV_PATTERN, title, description: 'CPV code (Common Procurement Vocabulary), e.g. 45000000-7' });

export const STAGES = ['launch', 'selection', 'award', 'amendment'] as const;
export const PROCEDURE_TYPES = [
  'open',
  'restricted',
  'competitiveWithNegotiation',
  'competitiveDialogue',
  'innovationPartnership',
  'negotiatedWithPublication',
  'negotiatedWithoutPublication',
  'lowValue',
] as const;
export const CONTRACT_NATURES = ['works', 'supplies', 'services'] as const;

const schema = Type.Object(
  {
    stage: Type.Enum([...STAGES], { title: 'Stage', description: 'The stage of the procedure this file documents' }),
    procedureType: Type.Enum([...PROCEDURE_TYPES], { title: 'Procedure', description: 'Award procedure (loi du 17 juin 2016)' }),
    contractNature: Type.Enum([...CONTRACT_NATURES], { title: 'Nature', description: 'Works, supplies or services' }),
    estimatedValueExclVat: CentsSchema('Estimated value', 'Estimated value of the whole contract, all lots and options'),
    cpvMain: Cpv('Main CPV code'),
    cpvAdditional: Type.Optional(Type.Array(Cpv('Additional CPV code'), { maxItems: 50, title: 'Additional CPV codes', description: 'Additional CPV codes' })),
    lots: Type.Optional(
      Type.Array(
        Type.Object(
          {
            number: Type.Integer({ minimum: 1, maximum: 10_000, title: 'Lot number', description: 'Lot number' }),
            title: Type.String({ minLength: 1, maxLength: 300, title: 'Lot title', description: 'Lot title' }),
            estimatedValueExclVat: Type.Optional(CentsSchema('Lot value', 'Estimated value of the lot')),
            cpv: Type.Optional(Cpv('Lot CPV code')),
          },
          { additionalProperties: false },
        ),
        { maxItems: 1000, title: 'Lots', description: 'The lots, if the contract is divided' },
      ),
    ),
    publications: Type.Optional(
      Type.Array(
        Type.Object(
          {
            journal: Type.Enum(['bda', 'ojeu'], { title: 'Journal', description: 'Bulletin des Adjudications / e-Procurement (bda) or the EU Official Journal / TED (ojeu)' }),
            reference: Type.String({ minLength: 1, maxLength: 100, title: 'Notice reference', description: 'The notice number' }),
          },
          { additionalProperties: false },
        ),
        { maxItems: 50, title: 'Publications', description: 'Publication references of the notices' },
      ),
    ),
    jointPurchasing: Type.Optional(
      Type.Object(
        {
          centralPurchasingBody: Type.Optional(EntityIdSchema('Central purchasing body', 'Entity id of the central purchasing body, if any')),
          participants: Type.Array(EntityIdSchema('Participant', 'Entity id of a participating authority'), {
            minItems: 1,
            maxItems: 500,
            title: 'Participants',
            description: 'Entity ids of the participating authorities',
          }),
        },
        { additionalProperties: false, title: 'Joint purchasing', description: 'Present for a joint purchase: the file is then freely addressed among its partners' },
      ),
    ),
    reference: Type.Optional(Type.String({ minLength: 1, maxLength: 100, title: 'Reference', description: "The contracting authority's file reference" })),
  },
  { additionalProperties: false, title: 'procurement.file 1.0' },
);
export type ProcurementFileMetadata = Static<typeof schema>;

/** Roles required per stage: placeholders to confirm with BPL's procurement service. */
export const PROCUREMENT_REQUIRED_ROLES: Readonly<Record<(typeof STAGES)[number], readonly string[]>> = {
  launch: ['decision', 'specifications'],
  selection: ['decision'],
  award: ['decision', 'awardReport'],
  amendment: ['decision'],
};

export const procurementFile: EnvelopeType<ProcurementFileMetadata> = {
  name: 'procurement.file',
  version: '1.0',
  title: { fr: 'Dossier de marché public', nl: 'Dossier overheidsopdracht' },
  description: "A public procurement file at one of its stages, sent to BPL's procurement service or, for a joint purchase, to its partners.",
  schema,
  fieldLabels: {
    '/stage': { fr: 'Étape', nl: 'Fase' },
    '/procedureType': { fr: 'Procédure', nl: 'Procedure' },
    '/contractNature': { fr: 'Nature du marché', nl: 'Aard van de opdracht' },
    '/estimatedValueExclVat': { fr: 'Montant estimé HTVA (cents)', nl: 'Geraamd bedrag excl. btw (cent)' },
    '/cpvMain': { fr: 'Code CPV principal', nl: 'Hoofd-CPV-code' },
    '/cpvAdditional': { fr: 'Codes CPV supplémentaires', nl: 'Bijkomende CPV-codes' },
    '/lots': { fr: 'Lots', nl: 'Percelen' },
    '/lots/*/number': { fr: 'Numéro du lot', nl: 'Perceelnummer' },
    '/lots/*/title': { fr: 'Intitulé du lot', nl: 'Titel van het perceel' },
    '/lots/*/estimatedValueExclVat': { fr: 'Montant estimé du lot HTVA (cents)', nl: 'Geraamd bedrag van het perceel excl. btw (cent)' },
    '/lots/*/cpv': { fr: 'Code CPV du lot', nl: 'CPV-code van het perceel' },
    '/publications': { fr: 'Publications', nl: 'Bekendmakingen' },
    '/publications/*/journal': { fr: 'Support', nl: 'Publicatieblad' },
    '/publications/*/reference': { fr: "Référence de l'avis", nl: 'Referentie van de aankondiging' },
    '/jointPurchasing': { fr: 'Marché conjoint', nl: 'Gezamenlijke opdracht' },
    '/jointPurchasing/centralPurchasingBody': { fr: "Centrale d'achat", nl: 'Aankoopcentrale' },
    '/jointPurchasing/participants': { fr: 'Participants', nl: 'Deelnemers' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: {
    '/stage': {
      launch: { fr: 'Lancement', nl: 'Lancering' },
      selection: { fr: 'Sélection', nl: 'Selectie' },
      award: { fr: 'Attribution', nl: 'Gunning' },
      amendment: { fr: 'Modification', nl: 'Wijziging' },
    },
    '/procedureType': {
      open: { fr: 'Procédure ouverte', nl: 'Openbare procedure' },
      restricted: { fr: 'Procédure restreinte', nl: 'Niet-openbare procedure' },
      competitiveWithNegotiation: { fr: 'Procédure concurrentielle avec négociation', nl: 'Mededingingsprocedure met onderhandeling' },
      competitiveDialogue: { fr: 'Dialogue compétitif', nl: 'Concurrentiegerichte dialoog' },
      innovationPartnership: { fr: "Partenariat d'innovation", nl: 'Innovatiepartnerschap' },
      negotiatedWithPublication: { fr: 'Procédure négociée directe avec publication préalable', nl: 'Vereenvoudigde onderhandelingsprocedure met voorafgaande bekendmaking' },
      negotiatedWithoutPublication: { fr: 'Procédure négociée sans publication préalable', nl: 'Onderhandelingsprocedure zonder voorafgaande bekendmaking' },
      lowValue: { fr: 'Marché de faible montant', nl: 'Opdracht van beperkte waarde' },
    },
    '/contractNature': {
      works: { fr: 'Travaux', nl: 'Werken' },
      supplies: { fr: 'Fournitures', nl: 'Leveringen' },
      services: { fr: 'Services', nl: 'Diensten' },
    },
    '/publications/*/journal': {
      bda: { fr: 'Bulletin des Adjudications', nl: 'Bulletin der Aanbestedingen' },
      ojeu: { fr: "Journal officiel de l'Union européenne", nl: 'Publicatieblad van de Europese Unie' },
    },
  },
  senders: SENDERS,
  addressing: 'routed-or-free',
  route: routeFor<ProcurementFileMetadata>('procurement.file', SENDERS, (ctx) => {
    const joint = ctx.metadata.jointPurchasing;
    if (joint !== undefined) {
      const sender = ctx.senderEntity.id;
      if (joint.centralPurchasingBody !== sender && !joint.participants.includes(sender)) {
        return refuse(400, 'The sender of a joint-purchase file is its central purchasing body or one of its participants', [
          metadataIssue('/jointPurchasing/participants', `does not include the sender's entity (${sender})`),
        ]);
      }
      return freelyAddressed(ctx);
    }
    if (!TUTELLE_SENDERS.includes(ctx.senderEntity.kind)) {
      return refuse(400, `A ${ctx.senderEntity.kind.replace('_', ' ')} is not under tutelle: describe the joint purchase to address its partners`, [
        metadataIssue('/jointPurchasing', 'is required for a sender not under tutelle'),
      ]);
    }
    return routedTo(ctx, [BPL_MAILBOXES.marches], "A procurement file goes to BPL's procurement service unless it is a joint purchase");
  }),
  retentionClass: 'procurement',
  personalData: false,
  exportFeed: 'metadata',
  requiredRoles: (metadata) => [...PROCUREMENT_REQUIRED_ROLES[metadata.stage]],
  check(metadata, { today }): CheckResult {
    const result: CheckResult = { issues: [], warnings: [] };
    metadata.cpvAdditional?.forEach((code, index) => {
      if (code === metadata.cpvMain) result.issues.push(metadataIssue(`/cpvAdditional/${index}`, 'repeats the main CPV code', code));
    });
    const seen = new Set<number>();
    let lotsTotal = 0;
    let lotsValued = true;
    metadata.lots?.forEach((lot, index) => {
      if (seen.has(lot.number)) result.issues.push(metadataIssue(`/lots/${index}/number`, `repeats lot number ${lot.number}`, lot.number));
      seen.add(lot.number);
      if (lot.estimatedValueExclVat === undefined) lotsValued = false;
      else lotsTotal += lot.estimatedValueExclVat;
    });
    if (metadata.lots !== undefined && metadata.lots.length > 0 && lotsValued && lotsTotal !== metadata.estimatedValueExclVat) {
      result.warnings.push(`The lots add up to ${lotsTotal} cents, the estimated value is ${metadata.estimatedValueExclVat} cents (the value of a contract in lots is the sum of its lots)`);
    }
    const participants = metadata.jointPurchasing?.participants ?? [];
    participants.forEach((id, index) => {
      if (participants.indexOf(id) !== index) result.issues.push(metadataIssue(`/jointPurchasing/participants/${index}`, 'is listed twice', id));
    });
    const threshold = euThresholdCents(metadata.contractNature, today);
    if (metadata.procedureType === 'lowValue' && threshold !== undefined && metadata.estimatedValueExclVat >= threshold) {
      result.issues.push(metadataIssue('/procedureType', 'a low-value procedure cannot be used at or above the European threshold', metadata.procedureType));
    }
    if (threshold === undefined) result.warnings.push(`No European threshold is known for ${today}: the threshold table needs its next period`);
    return result;
  },
  computed(metadata, { today }) {
    const period = euThresholdPeriod(today);
    const threshold = euThresholdCents(metadata.contractNature, today);
    return {
      aboveEuThreshold: threshold === undefined ? null : metadata.estimatedValueExclVat >= threshold,
      euThresholdCents: threshold ?? null,
      euThresholdPeriod: period === undefined ? null : { from: period.from, until: period.until },
      tutelleTransmissionMandatory:
        metadata.jointPurchasing === undefined ? tutelleTransmissionMandatory(metadata.stage, metadata.estimatedValueExclVat) : null,
      tutelleTransmissionVerified: TUTELLE_TRANSMISSION_RULE.verified,
    };
  },
};
