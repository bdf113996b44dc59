/**
 * Pieces shared by the envelope-type modules: schema fragments (so a date, an
 * amount or a reference means the same in every type) and routing helpers (so
 * every type refuses the same way).
 */
import { Type } from 'typebox';
import type { ProblemIssue } from '../../errors.ts';
import { MAILBOX_ADDRESS, SLUG_PATTERN, UUID_PATTERN } from '../ids.ts';
import type { EntityKind } from '../model.ts';
import type { Refusal, RouteContext, RouteResult, Senders } from './types.ts';

/* ---------- schema fragments ---------- */

export const IsoDateSchema = (title: string, description: string) => Type.String({ format: 'date', title, description });

/** Euro cents, whole and non-negative (the JSON number stays exact up to 2^53 - 1). */
export const CentsSchema = (title: string, description: string) =>
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, title, description: `${description} (euro cents, excl. VAT)` });

export const SubjectSchema = () =>
  Type.String({ minLength: 1, maxLength: 500, title: 'Subject', description: 'Subject (no personal data: names go inside the encrypted files)' });

export const ReferenceSchema = () =>
  Type.String({ minLength: 1, maxLength: 100, title: 'Reference', description: "The sender's reference" });

export const EntityIdSchema = (title: string, description: string) => Type.String({ pattern: SLUG_PATTERN, title, description });

export const EnvelopeIdSchema = (title: string, description: string) => Type.String({ pattern: UUID_PATTERN, title, description });

/* ---------- routing helpers ---------- */

export function refuse(status: 400 | 403, detail: string, issues?: ProblemIssue[]): { refusal: Refusal } {
  return { refusal: issues === undefined ? { status, detail } : { status, detail, issues } };
}

export function senderMay(senders: Senders, kind: EntityKind): boolean {
  return senders === 'any' || senders.includes(kind);
}

/**
 * Wraps a type's routing rule with its sender rule, so that no type can route
 * for an entity kind it does not accept: such a sender gets a 403.
 */
export function routeFor<M>(typeName: string, senders: Senders, rule: (ctx: RouteContext<M>) => RouteResult): (ctx: RouteContext<M>) => RouteResult {
  return (ctx) => {
    if (!senderMay(senders, ctx.senderEntity.kind)) {
      return refuse(403, `A ${ctx.senderEntity.kind.replace('_', ' ')} cannot send ${typeName} envelopes`);
    }
    return rule(ctx);
  };
}

function unique(addresses: readonly string[]): string[] {
  return [...new Set(addresses)];
}

/**
 * Recipients the type decides. The client may omit `to` or repeat exactly
 * these recipients; naming others is a 400 rather than a silent correction,
 * so a sender never believes a copy went where it did not.
 */
export function routedTo(ctx: RouteContext<unknown>, recipients: readonly string[], why: string): RouteResult {
  const decided = unique(recipients);
  const given = unique(ctx.to);
  if (given.length > 0) {
    const same = given.length === decided.length && given.every((address) => decided.includes(address));
    if (!same) {
      return refuse(400, `${why}: the recipients are ${decided.join(', ')}; omit "to"`, [
        { in: 'body', name: '/to', value: ctx.to, detail: `This envelope type decides its recipients (${decided.join(', ')})` },
      ]);
    }
  }
  return { recipients: decided };
}

/** Free addressing: the client's `to`, de-duplicated; at least one well-formed address. */
export function freelyAddressed(ctx: RouteContext<unknown>, accept?: (address: string) => string | null): RouteResult {
  const given = unique(ctx.to);
  if (given.length === 0) return refuse(400, 'Name at least one recipient', [{ in: 'body', name: '/to', detail: 'At least one recipient is required' }]);
  const issues: ProblemIssue[] = [];
  ctx.to.forEach((address, index) => {
    if (!MAILBOX_ADDRESS.test(address)) {
      issues.push({ in: 'body', name: `/to/${index}`, value: address, detail: 'Not a mailbox address (name@entity)' });
      return;
    }
    const problem = accept?.(address) ?? null;
    if (problem !== null) issues.push({ in: 'body', name: `/to/${index}`, value: address, detail: problem });
  });
  if (issues.length > 0) return refuse(400, 'Some recipients are not allowed for this envelope type', issues);
  return { recipients: given };
}

/* ---------- check helpers ---------- */

/** An issue about a metadata field (`pointer` is relative to the metadata: `/fiscalYear`). */
export function metadataIssue(pointer: string, detail: string, value?: unknown): ProblemIssue {
  const issue: ProblemIssue = { in: 'body', name: `/metadata${pointer}`, detail };
  if (value !== undefined) issue.value = value;
  return issue;
}
