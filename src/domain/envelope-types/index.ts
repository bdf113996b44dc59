/**
 * The registry of envelope types, by name and version. Metadata is validated
 * here with the type's own TypeBox schema and cross-field rules, so every door
 * (HTTP, SFTP, CLI) applies the same rules.
 *
 * Versions are `major.minor`. A draft is made with the latest version of its
 * type; an envelope keeps the version it was made with (`typeVersion`) and is
 * validated against that version forever after, so every version ever
 * published stays registered. A new major is a new schema; a new minor only
 * adds optional fields.
 */
import { Compile } from 'typebox/compile';
import { ValidationError, type ProblemIssue } from '../../errors.ts';
import { brusselsDate, type IsoDate } from '../calendar.ts';
import { RETENTION_RULES } from '../retention.ts';
import { decorationNomination } from './decoration-nomination.ts';
import { generalLetter } from './general-letter.ts';
import { procurementFile } from './procurement-file.ts';
import { tutelleActList } from './tutelle-act-list.ts';
import { tutelleAct } from './tutelle-act.ts';
import { tutelleDecision } from './tutelle-decision.ts';
import type { CheckResult, EnvelopeType, RouteContext, RouteResult } from './types.ts';
import { wepulseDataset, wepulseDocument } from './wepulse.ts';

export type {
  Addressing,
  CheckContext,
  CheckResult,
  ComputeContext,
  EnvelopeType,
  InReplyToRule,
  Label,
  Refusal,
  RouteContext,
  RouteResult,
  SenderEntity,
  Senders,
} from './types.ts';

/** Every version of every built-in type. Register a new version beside the old ones; never remove one. */
export const BUILT_IN_TYPES: readonly EnvelopeType[] = [
  generalLetter,
  tutelleAct,
  tutelleActList,
  tutelleDecision,
  procurementFile,
  wepulseDataset,
  wepulseDocument,
  decorationNomination,
];

const VERSION = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/;
const TYPE_NAME = /^[a-z][a-zA-Z0-9]*\.[a-z][a-zA-Z0-9]*$/;

function parseVersion(version: string): [number, number] {
  const match = VERSION.exec(version);
  if (match === null) throw new RangeError(`Not a major.minor version: ${version}`);
  return [Number(match[1]), Number(match[2])];
}

/** Negative when `a` is older than `b`. */
export function compareVersions(a: string, b: string): number {
  const [aMajor, aMinor] = parseVersion(a);
  const [bMajor, bMinor] = parseVersion(b);
  return aMajor - bMajor || aMinor - bMinor;
}

export interface EnvelopeTypeRegistry {
  /** The latest version of each type, by name. */
  list(): EnvelopeType[];
  /** Every version of a type, oldest first (every version of every type without a name). */
  versions(name?: string): EnvelopeType[];
  /** The given version of a type, or its latest when `version` is omitted. */
  find(name: string, version?: string): EnvelopeType | undefined;
}

export function createEnvelopeTypeRegistry(types: readonly EnvelopeType[]): EnvelopeTypeRegistry {
  const byName = new Map<string, EnvelopeType[]>();
  for (const type of types) {
    if (!TYPE_NAME.test(type.name)) throw new RangeError(`Not an envelope type name (domain.name): ${type.name}`);
    parseVersion(type.version);
    const versions = byName.get(type.name) ?? [];
    if (versions.some((v) => v.version === type.version)) throw new RangeError(`${type.name} ${type.version} is registered twice`);
    versions.push(type);
    byName.set(type.name, versions);
  }
  for (const versions of byName.values()) versions.sort((a, b) => compareVersions(a.version, b.version));
  const names = [...byName.keys()].sort();
  return {
    list: () => names.map((name) => byName.get(name)!.at(-1)!),
    versions: (name) => (name === undefined ? names.flatMap((n) => byName.get(n)!) : [...(byName.get(name) ?? [])]),
    find(name, version) {
      const versions = byName.get(name);
      if (versions === undefined) return undefined;
      if (version === undefined) return versions.at(-1);
      return versions.find((v) => v.version === version);
    },
  };
}

const registry = createEnvelopeTypeRegistry(BUILT_IN_TYPES);

/** The latest version of each type (what `GET /api/v1/envelope-types` lists). */
export function listEnvelopeTypes(): EnvelopeType[] {
  return registry.list();
}

/** Every registered version of a type (all types when `name` is omitted), oldest first. */
export function listEnvelopeTypeVersions(name?: string): EnvelopeType[] {
  return registry.versions(name);
}

/** A type by name and exact version; the latest version when `version` is omitted. */
export function findEnvelopeType(name: string, version?: string): EnvelopeType | undefined {
  return registry.find(name, version);
}

/* ---------- validation ---------- */

interface SchemaError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

type Validator = ReturnType<typeof Compile>;
const compiled = new WeakMap<EnvelopeType, Validator>();

function validatorOf(type: EnvelopeType): Validator {
  let validator = compiled.get(type);
  if (validator === undefined) {
    validator = Compile(type.schema);
    compiled.set(type, validator);
  }
  return validator;
}

function schemaIssues(type: EnvelopeType, metadata: unknown): ProblemIssue[] | null {
  const validator = validatorOf(type);
  if (validator.Check(metadata)) return null;
  const errors = [...(validator.Errors(metadata) as Iterable<SchemaError>)];
  // A failed anyOf reports each branch too; keep the anyOf's own line.
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const issues: ProblemIssue[] = [];
  for (const error of errors) {
    if (error.keyword === 'boolean') continue; // repeated by the additionalProperties entry
    if (anyOfPaths.has(error.instancePath) && error.keyword !== 'anyOf' && error.schemaPath.includes('/anyOf/')) continue;
    const at = `/metadata${error.instancePath}`;
    if (error.keyword === 'additionalProperties') {
      for (const extra of (error.params.additionalProperties as string[]) ?? []) {
        issues.push({ in: 'body', name: `${at}/${extra}`, detail: 'is not a property of this envelope type' });
      }
    } else if (error.keyword === 'required') {
      for (const missing of (error.params.requiredProperties as string[]) ?? []) {
        issues.push({ in: 'body', name: `${at}/${missing}`, detail: 'is required' });
      }
    } else if (error.keyword === 'enum') {
      issues.push({ in: 'body', name: at, detail: `must be one of ${((error.params.allowedValues as unknown[]) ?? []).join(', ')}` });
    } else if (error.keyword === 'format' && error.params.format === 'date') {
      issues.push({ in: 'body', name: at, detail: 'must be a calendar date (YYYY-MM-DD)' });
    } else {
      issues.push({ in: 'body', name: at, detail: error.message });
    }
  }
  return issues;
}

export interface MetadataOptions {
  /** The Europe/Brussels date of the check; defaults to the current date in Brussels. */
  today?: IsoDate;
}

/**
 * Validates metadata against its type (schema, then cross-field rules):
 * the issues refuse the envelope, the warnings are told to the sender.
 */
export function checkMetadata(type: EnvelopeType, metadata: unknown, options: MetadataOptions = {}): CheckResult {
  const issues = schemaIssues(type, metadata);
  if (issues !== null) return { issues, warnings: [] };
  if (type.check === undefined) return { issues: [], warnings: [] };
  return type.check(metadata, { today: options.today ?? brusselsDate(new Date()) });
}

/** The issues only (JSON pointers under `/metadata`). */
export function metadataIssues(type: EnvelopeType, metadata: unknown, options: MetadataOptions = {}): ProblemIssue[] {
  return checkMetadata(type, metadata, options).issues;
}

export function assertMetadata(type: EnvelopeType, metadata: unknown, options: MetadataOptions = {}): void {
  const issues = metadataIssues(type, metadata, options);
  if (issues.length > 0) throw new ValidationError(issues, `The metadata is not valid for ${type.name} ${type.version}`);
}

/* ---------- rules the domain applies around the metadata ---------- */

/** Routes an envelope whose metadata is valid (see `RouteContext`); the type checks its senders first. */
export function routeEnvelope(type: EnvelopeType, ctx: RouteContext): RouteResult {
  return type.route(ctx);
}

/**
 * The type's reply requirement: `original` is the envelope named by
 * `inReplyTo` (null when none was named or it is not visible to the sender).
 */
export function inReplyToIssues(type: EnvelopeType, original: { id: string; type: string } | null): ProblemIssue[] {
  const rule = type.inReplyTo;
  if (original === null) {
    return rule?.required === true ? [{ in: 'body', name: '/inReplyTo', detail: `A ${type.name} replies to a ${rule.types.join(' or ')} envelope` }] : [];
  }
  if (rule !== undefined && !rule.types.includes(original.type)) {
    return [{ in: 'body', name: '/inReplyTo', value: original.id, detail: `A ${type.name} can reply only to a ${rule.types.join(' or ')} envelope, not to a ${original.type}` }];
  }
  return [];
}

/** Issues for each required file role the envelope's files lack. */
export function missingRoleIssues(type: EnvelopeType, metadata: unknown, fileRoles: readonly (string | null)[]): ProblemIssue[] {
  return type
    .requiredRoles(metadata)
    .filter((role) => !fileRoles.includes(role))
    .map((role) => ({ name: 'files', value: role, detail: `A ${type.name} needs a file with the role "${role}"` }));
}

/* ---------- published description ---------- */

/**
 * The public description of a type version, for `GET /api/v1/envelope-types`:
 * plain JSON (the TypeBox schema is JSON Schema as is), FR/NL labels beside it.
 */
export function describeEnvelopeType(type: EnvelopeType) {
  return {
    name: type.name,
    version: type.version,
    versions: registry.versions(type.name).map((v) => v.version),
    title: type.title,
    description: type.description,
    senders: type.senders,
    addressing: type.addressing,
    deadline: type.deadline ?? null,
    inReplyTo: type.inReplyTo ?? null,
    retentionClass: type.retentionClass,
    retentionYears: RETENTION_RULES[type.retentionClass].years,
    personalData: type.personalData,
    exportFeed: type.exportFeed,
    fieldLabels: type.fieldLabels,
    valueLabels: type.valueLabels,
    schema: JSON.parse(JSON.stringify(type.schema)) as Record<string, unknown>,
  };
}
