import type { TSchema } from 'typebox';
import type { ProblemIssue } from '../../errors.ts';

/**
 * One envelope type (DESIGN §4): its metadata schema and rules. Adding a type
 * is adding one module to this folder and one line to index.ts.
 */
export interface EnvelopeType {
  /** `domain.name`, e.g. `general.letter`. */
  name: string;
  /** `major.minor`; a new major is a new schema, old envelopes keep theirs. */
  version: string;
  title: { fr: string; nl: string };
  description: string;
  /** TypeBox schema of the plaintext metadata (never personal data). */
  schema: TSchema;
  /** `free`: the sender names the recipients (`to`); routed types compute them. */
  addressing: 'free';
  /** Whether the files are expected to carry personal data. */
  personalData: boolean;
  /** Retention class name (data, confirmed with BPL and the State Archives). */
  retentionClass: string;
  /** Cross-field rules beyond the schema; empty when there are none. */
  check?(metadata: unknown): ProblemIssue[];
}
