import type { TSchema } from 'typebox';
import type { ProblemIssue } from '../../errors.ts';
import type { IsoDate } from '../calendar.ts';
import type { EntityKind } from '../model.ts';
import type { RetentionClass } from '../retention.ts';

export interface Label {
  fr: string;
  nl: string;
}

/** The sending mailbox's entity, as the directory knows it. */
export interface SenderEntity {
  id: string;
  kind: EntityKind;
  /** The entity it depends on (a CPAS's commune), or null. */
  parent: string | null;
}

/** What a routing rule may look at. */
export interface RouteContext<M = unknown> {
  senderEntity: SenderEntity;
  /** The sending mailbox (`name@entity`). */
  from: string;
  /** The recipients the client named (empty when omitted). */
  to: string[];
  /** The metadata, already valid against the type's schema. */
  metadata: M;
  /** The envelope this one replies to, looked up by the domain (present when `inReplyTo` was given and found). */
  inReplyTo?: { id: string; type: string; from: string } | null;
}

/** Why an envelope cannot be routed: 403 when the sender may not send it at all, 400 when the request must change. */
export interface Refusal {
  status: 403 | 400;
  detail: string;
  issues?: ProblemIssue[];
}

export type RouteResult = { recipients: string[] } | { refusal: Refusal };

export interface CheckContext {
  /** The Europe/Brussels date of the check (the receipt date at submission). */
  today: IsoDate;
}

export interface CheckResult {
  /** Refuse the envelope; names are JSON pointers under `/metadata`. */
  issues: ProblemIssue[];
  /** Accept it, but tell the sender (and record it). */
  warnings: string[];
}

export interface ComputeContext {
  today: IsoDate;
  senderEntity?: SenderEntity;
}

/** Which entity kinds may send the type. */
export type Senders = readonly EntityKind[] | 'any';

/**
 * `free`: the sender names the recipients (`to`); `routed`: the type decides
 * them from the sender's entity; `routed-or-free`: routed unless the metadata
 * asks for free addressing (joint purchasing) or the client names allowed ones.
 */
export type Addressing = 'free' | 'routed' | 'routed-or-free';

/** A reply requirement the domain enforces: `inReplyTo` must (or may) name a submitted envelope of one of these types. */
export interface InReplyToRule {
  required: boolean;
  types: readonly string[];
}

/**
 * One envelope type at one version (DESIGN §4): its metadata schema and its
 * rules, as data where possible. Adding a type is adding one module to this
 * folder and one line to index.ts; a new major version is a new object with a
 * new schema, registered beside the old one so old envelopes keep theirs.
 */
export interface EnvelopeType<M = unknown> {
  /** `domain.name`, e.g. `general.letter`. */
  name: string;
  /** `major.minor`. */
  version: string;
  title: Label;
  description: string;
  /** TypeBox schema of the plaintext metadata (never personal data); it is JSON Schema as is. */
  schema: TSchema;
  /** FR/NL labels of the metadata fields, by JSON pointer into the metadata (`*` standing for any array index). */
  fieldLabels: Readonly<Record<string, Label>>;
  /** FR/NL labels of enumerated values, by the field's JSON pointer then by value. */
  valueLabels: Readonly<Record<string, Readonly<Record<string, Label>>>>;
  /** Entity kinds that may send this type; any other gets a 403 from `route`. */
  senders: Senders;
  addressing: Addressing;
  /** Decides the recipients (or refuses); checks `senders` first. */
  route(ctx: RouteContext<M>): RouteResult;
  /** The deadline rule, when the type has one (deadlines.ts). */
  deadline?: 'tutelle';
  /** Retention class (retention.ts). */
  retentionClass: RetentionClass;
  /** Retention once an outcome is recorded (decoration nominations). */
  retentionOnOutcome?: Readonly<Record<'accepted' | 'rejected', RetentionClass>>;
  /** Whether the files are expected to carry personal data. */
  personalData: boolean;
  /** What the datawarehouse export feed may carry: the metadata, or only counts. */
  exportFeed: 'metadata' | 'counts';
  /** File roles the envelope must carry before it can be submitted. */
  requiredRoles(metadata: M): string[];
  inReplyTo?: InReplyToRule;
  /** Cross-field rules beyond the schema, run on metadata the schema accepted. */
  check?(metadata: M, ctx: CheckContext): CheckResult;
  /** Values the server derives and records with the envelope (never supplied by the client). */
  computed?(metadata: M, ctx: ComputeContext): Record<string, unknown>;
}
