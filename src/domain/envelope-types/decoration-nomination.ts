/**
 * `decoration.nomination`: a proposing authority proposes a member of its
 * staff for a decoration, to BPL's `merite@bpl` only (DESIGN §4). The nominee
 * is personal data: it travels only inside the end-to-end encrypted file, and
 * the file name must stay neutral. The metadata is checked for what looks like
 * a national register number, the commonest slip.
 */
import { Type, type Static } from 'typebox';
import { BPL_MAILBOXES } from '../brussels-directory.ts';
import type { EntityKind } from '../model.ts';
import { metadataIssue, routeFor, routedTo } from './common.ts';
import type { CheckResult, EnvelopeType } from './types.ts';

const SENDERS: readonly EntityKind[] = ['commune', 'cpas', 'police_zone', 'regie', 'intercommunale'];

/** 11 digits as national register numbers are written (YY.MM.DD-NNN.CC, with or without separators). */
const NATIONAL_NUMBER = /(?<!\d)\d{2}[.\s]?\d{2}[.\s]?\d{2}[-\s]?\d{3}[.\s]?\d{2}(?!\d)/;

const schema = Type.Object(
  {
    proposedRank: Type.String({ minLength: 1, maxLength: 100, title: 'Proposed rank', description: 'The decoration and rank proposed, as named in its regulation (not the nominee)' }),
    posthumous: Type.Boolean({ title: 'Posthumous', description: 'Whether the decoration is proposed posthumously' }),
    proposerReference: Type.Optional(Type.String({ minLength: 1, maxLength: 100, title: "Proposer's reference", description: "The proposing authority's file reference (never the nominee's name or number)" })),
  },
  { additionalProperties: false, title: 'decoration.nomination 1.0' },
);
export type DecorationNominationMetadata = Static<typeof schema>;

export const decorationNomination: EnvelopeType<DecorationNominationMetadata> = {
  name: 'decoration.nomination',
  version: '1.0',
  title: { fr: 'Proposition de décoration', nl: 'Voordracht voor een eervolle onderscheiding' },
  description: 'A nomination for a decoration, to merite@bpl only; the nominee travels only inside the encrypted file.',
  schema,
  fieldLabels: {
    '/proposedRank': { fr: 'Grade proposé', nl: 'Voorgestelde graad' },
    '/posthumous': { fr: 'À titre posthume', nl: 'Postuum' },
    '/proposerReference': { fr: 'Référence du proposant', nl: 'Referentie van de voordragende overheid' },
  },
  valueLabels: {},
  senders: SENDERS,
  addressing: 'routed',
  route: routeFor<DecorationNominationMetadata>('decoration.nomination', SENDERS, (ctx) =>
    routedTo(ctx, [BPL_MAILBOXES.merite], `Nominations go to ${BPL_MAILBOXES.merite} only`),
  ),
  retentionClass: 'nomination',
  retentionOnOutcome: { accepted: 'nomination-accepted', rejected: 'nomination-rejected' },
  personalData: true,
  exportFeed: 'counts',
  requiredRoles: () => ['nomination'],
  check(metadata): CheckResult {
    const issues = (['proposedRank', 'proposerReference'] as const)
      .filter((field) => NATIONAL_NUMBER.test(metadata[field] ?? ''))
      .map((field) => metadataIssue(`/${field}`, 'looks like a national register number: personal data goes only inside the encrypted file'));
    return { issues, warnings: [] };
  },
};
