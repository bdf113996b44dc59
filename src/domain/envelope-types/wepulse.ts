/**
 * We Pulse, the regional programme of shared tools for local authorities
 * (DESIGN §4): `wepulse.dataset` feeds BPL's datawarehouse (periodic data that
 * avoids double entry), `wepulse.document` carries the programme's general
 * documents among its members.
 *
 * Programme membership is a mailbox: an entity takes part through a mailbox
 * named `wepulse` (`wepulse@bpl`, `wepulse@ixelles` …), created by the platform
 * administrators. That keeps "a named We Pulse mailbox" checkable without a
 * membership table; change WEPULSE_MAILBOX_NAME's rule here if BPL models it
 * otherwise.
 */
import { Type, type Static } from 'typebox';
import { BPL_MAILBOXES } from '../brussels-directory.ts';
import { parseMailboxAddress } from '../ids.ts';
import { ReferenceSchema, SubjectSchema, freelyAddressed, metadataIssue, routeFor } from './common.ts';
import type { CheckResult, EnvelopeType, Label } from './types.ts';

export const WEPULSE_MAILBOX_NAME = 'wepulse';

export function isWePulseMailbox(address: string): boolean {
  return parseMailboxAddress(address)?.name === WEPULSE_MAILBOX_NAME;
}

export const WEPULSE_DOMAINS = ['hr', 'finance', 'social', 'citizenRelation'] as const;
const DOMAIN_LABELS: Readonly<Record<(typeof WEPULSE_DOMAINS)[number], Label>> = {
  hr: { fr: 'Ressources humaines', nl: 'Personeelszaken' },
  finance: { fr: 'Finances', nl: 'Financiën' },
  social: { fr: 'Action sociale', nl: 'Maatschappelijk welzijn' },
  citizenRelation: { fr: 'Relation citoyen', nl: 'Burgerrelatie' },
};
const DomainSchema = () => Type.Enum([...WEPULSE_DOMAINS], { title: 'Domain', description: 'The We Pulse domain' });

/** `2026`, `2026-03`, `2026-Q1`, `2026-S2`. */
export const PERIOD_PATTERN = '^\\d{4}(?:-(?:0[1-9]|1[0-2]|Q[1-4]|S[12]))?$';

const datasetSchema = Type.Object(
  {
    domain: DomainSchema(),
    datasetCode: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', title: 'Dataset code', description: 'The code of the dataset in the datawarehouse catalogue' }),
    period: Type.String({ pattern: PERIOD_PATTERN, title: 'Period', description: 'The period covered: a year (2026), a month (2026-03), a quarter (2026-Q1) or a half-year (2026-S2)' }),
    accountingFramework: Type.Optional(
      Type.String({ minLength: 1, maxLength: 100, title: 'Accounting framework', description: 'The accounting framework the figures follow (required for finance datasets)' }),
    ),
    reference: Type.Optional(ReferenceSchema()),
  },
  { additionalProperties: false, title: 'wepulse.dataset 1.0' },
);
export type WePulseDatasetMetadata = Static<typeof datasetSchema>;

export const wepulseDataset: EnvelopeType<WePulseDatasetMetadata> = {
  name: 'wepulse.dataset',
  version: '1.0',
  title: { fr: 'Jeu de données We Pulse', nl: 'We Pulse-dataset' },
  description: "Periodic data for BPL's datawarehouse (or a named We Pulse mailbox), so that nothing is entered twice.",
  schema: datasetSchema,
  fieldLabels: {
    '/domain': { fr: 'Domaine', nl: 'Domein' },
    '/datasetCode': { fr: 'Code du jeu de données', nl: 'Code van de dataset' },
    '/period': { fr: 'Période', nl: 'Periode' },
    '/accountingFramework': { fr: 'Référentiel comptable', nl: 'Boekhoudkundig kader' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: { '/domain': DOMAIN_LABELS },
  senders: 'any',
  addressing: 'routed-or-free',
  route: routeFor<WePulseDatasetMetadata>('wepulse.dataset', 'any', (ctx) => {
    if (ctx.to.length === 0) return { recipients: [BPL_MAILBOXES.datawarehouse] };
    return freelyAddressed(ctx, (address) =>
      address === BPL_MAILBOXES.datawarehouse || isWePulseMailbox(address) ? null : `A dataset goes to ${BPL_MAILBOXES.datawarehouse} or to a We Pulse mailbox (${WEPULSE_MAILBOX_NAME}@…)`,
    );
  }),
  retentionClass: 'wepulse',
  personalData: true,
  exportFeed: 'metadata',
  requiredRoles: () => ['dataset'],
  check(metadata): CheckResult {
    const issues = metadata.domain === 'finance' && metadata.accountingFramework === undefined ? [metadataIssue('/accountingFramework', 'is required for a finance dataset')] : [];
    return { issues, warnings: [] };
  },
};

const documentSchema = Type.Object(
  {
    domain: DomainSchema(),
    subject: SubjectSchema(),
    reference: Type.Optional(ReferenceSchema()),
  },
  { additionalProperties: false, title: 'wepulse.document 1.0' },
);
export type WePulseDocumentMetadata = Static<typeof documentSchema>;

export const wepulseDocument: EnvelopeType<WePulseDocumentMetadata> = {
  name: 'wepulse.document',
  version: '1.0',
  title: { fr: 'Document We Pulse', nl: 'We Pulse-document' },
  description: "A general document of the We Pulse programme, freely addressed among the programme's mailboxes.",
  schema: documentSchema,
  fieldLabels: {
    '/domain': { fr: 'Domaine', nl: 'Domein' },
    '/subject': { fr: 'Objet', nl: 'Onderwerp' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: { '/domain': DOMAIN_LABELS },
  senders: 'any',
  addressing: 'free',
  route: routeFor<WePulseDocumentMetadata>('wepulse.document', 'any', (ctx) =>
    freelyAddressed(ctx, (address) => (isWePulseMailbox(address) ? null : `We Pulse documents go to We Pulse mailboxes (${WEPULSE_MAILBOX_NAME}@…)`)),
  ),
  retentionClass: 'wepulse',
  personalData: true,
  exportFeed: 'metadata',
  requiredRoles: () => [],
};
