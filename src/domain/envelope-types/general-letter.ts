import { Type, type Static } from 'typebox';
import { freelyAddressed, routeFor } from './common.ts';
import type { EnvelopeType } from './types.ts';

const schema = Type.Object(
  {
    subject: Type.String({ minLength: 1, maxLength: 500, title: 'Subject', description: 'Subject (no personal data)' }),
    reference: Type.Optional(Type.String({ minLength: 1, maxLength: 100, title: 'Reference', description: "The sender's reference" })),
  },
  { additionalProperties: false, title: 'general.letter 1.0' },
);
type Metadata = Static<typeof schema>;

/** The everyday exchange the old platform carried: free addressing between any mailboxes. */
export const generalLetter: EnvelopeType<Metadata> = {
  name: 'general.letter',
  version: '1.0',
  title: { fr: 'Courrier', nl: 'Brief' },
  description: 'A letter with attached files, freely addressed to one or more mailboxes.',
  schema,
  fieldLabels: {
    '/subject': { fr: 'Objet', nl: 'Onderwerp' },
    '/reference': { fr: 'Référence', nl: 'Referentie' },
  },
  valueLabels: {},
  senders: 'any',
  addressing: 'free',
  route: routeFor<Metadata>('general.letter', 'any', (ctx) => freelyAddressed(ctx)),
  retentionClass: 'letter',
  personalData: true,
  exportFeed: 'metadata',
  requiredRoles: () => [],
};
