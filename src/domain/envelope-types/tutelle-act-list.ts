/**
 * `tutelle.actList`: the list of the acts that are not transmitted in full,
 * each as a short summary; the tutelle authority asks for the full act when it
 * wants it (DESIGN §4).
 */
import { Type, type Static } from 'typebox';
import { daysBetween } from '../calendar.ts';
import { BPL_MAILBOXES } from '../brussels-directory.ts';
import { TRANSMISSION_WARNING_DAYS } from '../deadlines.ts';
import { IsoDateSchema, ReferenceSchema, metadataIssue, routeFor, routedTo } from './common.ts';
import { ISSUING_BODY_LABELS, IssuingBodySchema, TUTELLE_SENDERS } from './tutelle-act.ts';
import type { CheckResult, EnvelopeType } from './types.ts';

export const MAX_LIST_ENTRIES = 2000;

const schema = Type.Object(
  {
    period: Type.Object(
      {
        start: IsoDateSchema('Start', 'First day of the period, inclusive'),
        end: IsoDateSchema('End', 'Last day of the period, inclusive'),
      },
      { additionalProperties: false, title: 'Period', description: 'The period whose acts are listed' },
    ),
    entries: Type.Array(
      Type.Object(
        {
          decisionDate: IsoDateSchema('Decision date', 'The date the act was adopted'),
          body: IssuingBodySchema('Issuing body'),
          summary: Type.String({ minLength: 1, maxLength: 1000, title: 'Summary', description: 'A short summary of the act (no personal data)' }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: MAX_LIST_ENTRIES, title: 'Acts', description: 'The acts of the period, as summaries' },
    ),
    reference: Type.Optional(ReferenceSchema()),
  },
  { additionalProperties: false, title: 'tutelle.actList 1.0' },
);
export type TutelleActListMetadata = Static<typeof schema>;

export const tutelleActList: EnvelopeType<TutelleActListMetadata> = {
  name: 'tutelle.actList',
  version: '1.0',
  title: { fr: "Liste d'actes", nl: 'Lijst van akten' },
  description: 'The list of the acts of a period that are not transmitted in full, each as a summary.',
  schema,
  fieldLabels: {
    '/period': { fr: 'Période', nl: 'Periode' },
    '/period/start': { fr: 'Début', nl: 'Begin' },
    '/period/end': { fr: 'Fin', nl: 'Einde' },
    '/entries': { fr: 'Actes', nl: 'Akten' },
    '/entries/*/decisionDate': { fr: 'Date de la décision', nl: 'Datum van de beslissing' },
    '/entries/*/body': { fr: 'Organe', nl: 'Orgaan' },
    '/entries/*/summary': { fr: 'Résumé', nl: 'Samenvatting' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: { '/entries/*/body': ISSUING_BODY_LABELS },
  senders: TUTELLE_SENDERS,
  addressing: 'routed',
  route: routeFor<TutelleActListMetadata>('tutelle.actList', TUTELLE_SENDERS, (ctx) =>
    routedTo(ctx, [BPL_MAILBOXES.tutelle], 'A list of acts goes to the tutelle authority'),
  ),
  retentionClass: 'tutelle',
  personalData: false,
  exportFeed: 'metadata',
  requiredRoles: () => [],
  check(metadata, { today }): CheckResult {
    const result: CheckResult = { issues: [], warnings: [] };
    const { start, end } = metadata.period;
    if (end < start) result.issues.push(metadataIssue('/period/end', `is before the start of the period (${start})`, end));
    if (start > today) result.issues.push(metadataIssue('/period/start', `is in the future (today is ${today} in Brussels)`, start));
    let late = 0;
    metadata.entries.forEach((entry, index) => {
      if (entry.decisionDate > today) {
        result.issues.push(metadataIssue(`/entries/${index}/decisionDate`, `is in the future (today is ${today} in Brussels)`, entry.decisionDate));
      } else if (entry.decisionDate < start || entry.decisionDate > end) {
        result.issues.push(metadataIssue(`/entries/${index}/decisionDate`, `is outside the period ${start} – ${end}`, entry.decisionDate));
      } else if (daysBetween(entry.decisionDate, today) > TRANSMISSION_WARNING_DAYS) {
        late++;
      }
    });
    if (late > 0) result.warnings.push(`${late} listed act(s) were adopted more than ${TRANSMISSION_WARNING_DAYS} days ago`);
    return result;
  },
};
