/**
 * `tutelle.decision`: the tutelle authority's answer to an act (DESIGN §4). It
 * is sent from `tutelle@bpl` to the mailbox that sent the act, and must reply
 * to that act (`inReplyTo`, enforced by the domain). Its effect on the act's
 * deadline (extension, clock stop) is computed by ../deadlines.ts, never
 * supplied by the client.
 */
import { Type, type Static } from 'typebox';
import { BPL_MAILBOXES } from '../brussels-directory.ts';
import type { TutelleEvent } from '../deadlines.ts';
import type { EntityKind } from '../model.ts';
import { ReferenceSchema, metadataIssue, refuse, routeFor } from './common.ts';
import type { CheckResult, EnvelopeType } from './types.ts';

export const DECISION_KINDS = ['suspension', 'annulment', 'approval', 'refusal', 'extension', 'documentRequest', 'incompleteFile'] as const;
export type DecisionKind = (typeof DECISION_KINDS)[number];

/** Decisions that act on the act's clock (deadlines.ts); the others close the procedure or suspend the act. */
export const CLOCK_EVENTS: Readonly<Partial<Record<DecisionKind, TutelleEvent['kind']>>> = {
  extension: 'extension',
  documentRequest: 'documentRequest',
  incompleteFile: 'incompleteFile',
};

const SENDERS: readonly EntityKind[] = ['region'];

const schema = Type.Object(
  {
    kind: Type.Enum([...DECISION_KINDS], { title: 'Decision', description: 'What the tutelle authority decides' }),
    legalBasis: Type.String({ minLength: 1, maxLength: 500, title: 'Legal basis', description: 'The provisions the decision rests on' }),
    reasons: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4000, title: 'Reasons', description: 'The grounds (required except for an approval; no personal data: the signed decision travels in the encrypted file)' }),
    ),
    reference: Type.Optional(ReferenceSchema()),
  },
  { additionalProperties: false, title: 'tutelle.decision 1.0' },
);
export type TutelleDecisionMetadata = Static<typeof schema>;

export const tutelleDecision: EnvelopeType<TutelleDecisionMetadata> = {
  name: 'tutelle.decision',
  version: '1.0',
  title: { fr: 'Décision de tutelle', nl: 'Toezichtsbeslissing' },
  description: "The tutelle authority's decision on an act, sent from tutelle@bpl to the act's sender in reply to the act.",
  schema,
  fieldLabels: {
    '/kind': { fr: 'Décision', nl: 'Beslissing' },
    '/legalBasis': { fr: 'Base légale', nl: 'Rechtsgrond' },
    '/reasons': { fr: 'Motifs', nl: 'Motivering' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: {
    '/kind': {
      suspension: { fr: 'Suspension', nl: 'Schorsing' },
      annulment: { fr: 'Annulation', nl: 'Vernietiging' },
      approval: { fr: 'Approbation', nl: 'Goedkeuring' },
      refusal: { fr: "Refus d'approbation", nl: 'Weigering van goedkeuring' },
      extension: { fr: 'Prorogation du délai', nl: 'Verlenging van de termijn' },
      documentRequest: { fr: 'Demande de pièces', nl: 'Vraag om stukken' },
      incompleteFile: { fr: 'Dossier incomplet', nl: 'Onvolledig dossier' },
    },
  },
  senders: SENDERS,
  addressing: 'routed',
  route: routeFor<TutelleDecisionMetadata>('tutelle.decision', SENDERS, (ctx) => {
    if (ctx.from !== BPL_MAILBOXES.tutelle) return refuse(403, `Tutelle decisions are sent from ${BPL_MAILBOXES.tutelle}`);
    const act = ctx.inReplyTo ?? null;
    if (act === null) {
      return refuse(400, 'A tutelle decision replies to the act it decides on', [{ in: 'body', name: '/inReplyTo', detail: 'is required: the id of the tutelle.act envelope' }]);
    }
    if (act.type !== 'tutelle.act') {
      return refuse(400, 'A tutelle decision replies to a tutelle.act envelope', [
        { in: 'body', name: '/inReplyTo', value: act.id, detail: `names a ${act.type} envelope, not a tutelle.act` },
      ]);
    }
    const given = [...new Set(ctx.to)];
    if (given.length > 0 && (given.length !== 1 || given[0] !== act.from)) {
      return refuse(400, `The decision goes to the act's sender, ${act.from}; omit "to"`, [
        { in: 'body', name: '/to', value: ctx.to, detail: `A tutelle decision goes to the act's sender (${act.from})` },
      ]);
    }
    return { recipients: [act.from] };
  }),
  retentionClass: 'tutelle',
  personalData: true,
  exportFeed: 'metadata',
  requiredRoles: () => ['decision'],
  inReplyTo: { required: true, types: ['tutelle.act'] },
  check(metadata): CheckResult {
    const issues = metadata.kind !== 'approval' && metadata.reasons === undefined ? [metadataIssue('/reasons', `is required for a decision of kind "${metadata.kind}"`)] : [];
    return { issues, warnings: [] };
  },
  computed(metadata) {
    return { clockEvent: CLOCK_EVENTS[metadata.kind] ?? null };
  },
};
