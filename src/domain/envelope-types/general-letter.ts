import { Type } from 'typebox';
import type { EnvelopeType } from './types.ts';

/** The everyday exchange the old platform carried: free addressing between any mailboxes. */
export const generalLetter: EnvelopeType = {
  name: 'general.letter',
  version: '1.0',
  title: { fr: 'Courrier', nl: 'Brief' },
  description: 'A letter with attached files, freely addressed to one or more mailboxes.',
  schema: Type.Object(
    {
      subject: Type.String({ minLength: 1, maxLength: 500, description: 'Subject (no personal data)' }),
      reference: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "The sender's reference" })),
    },
    { additionalProperties: false },
  ),
  addressing: 'free',
  personalData: true,
  retentionClass: 'letter',
};
