/**
 * The registry of envelope types. Metadata is validated here with the type's
 * own TypeBox schema, so every door (HTTP, SFTP, CLI) applies the same rules.
 */
import { Compile } from 'typebox/compile';
import { ValidationError, type ProblemIssue } from '../../errors.ts';
import { generalLetter } from './general-letter.ts';
import type { EnvelopeType } from './types.ts';

export type { EnvelopeType } from './types.ts';

const TYPES: EnvelopeType[] = [generalLetter];

const compiled = new Map(TYPES.map((type) => [type.name, Compile(type.schema)]));
const byName = new Map(TYPES.map((type) => [type.name, type]));

export function listEnvelopeTypes(): EnvelopeType[] {
  return [...TYPES];
}

export function findEnvelopeType(name: string): EnvelopeType | undefined {
  return byName.get(name);
}

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** Validates metadata against its type; returns the issues (JSON pointers under `/metadata`). */
export function metadataIssues(type: EnvelopeType, metadata: unknown): ProblemIssue[] {
  const validator = compiled.get(type.name)!;
  if (validator.Check(metadata)) return type.check?.(metadata) ?? [];
  const issues: ProblemIssue[] = [];
  for (const error of validator.Errors(metadata) as Iterable<SchemaError>) {
    if (error.keyword === 'boolean') continue; // repeated by the additionalProperties entry
    if (error.keyword === 'additionalProperties') {
      for (const extra of (error.params.additionalProperties as string[]) ?? []) {
        issues.push({ in: 'body', name: `/metadata${error.instancePath}/${extra}`, detail: 'is not a property of this envelope type' });
      }
    } else if (error.keyword === 'required') {
      for (const missing of (error.params.requiredProperties as string[]) ?? []) {
        issues.push({ in: 'body', name: `/metadata${error.instancePath}/${missing}`, detail: 'is required' });
      }
    } else {
      issues.push({ in: 'body', name: `/metadata${error.instancePath}`, detail: error.message });
    }
  }
  return issues;
}

export function assertMetadata(type: EnvelopeType, metadata: unknown): void {
  const issues = metadataIssues(type, metadata);
  if (issues.length > 0) throw new ValidationError(issues, `The metadata is not valid for ${type.name} ${type.version}`);
}
