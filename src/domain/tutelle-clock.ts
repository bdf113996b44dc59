/**
 * What a submission does to tutelle deadlines (DESIGN §4, ordonnance of
 * 14 May 1998): an act starts its clock on its receipt date (the
 * Europe/Brussels date of the submission acceptance); a decision replying to
 * it may extend the deadline (once, where the act's category allows it),
 * stop the clock (documentRequest, incompleteFile) or simply decide, and is
 * flagged late after the deadline; an act replying to a clock-stopping
 * decision is the complement that restarts the original act's clock.
 *
 * Pure rules live in deadlines.ts; this module reads the envelopes involved
 * and returns the changes the submission writes in its transaction.
 */
import type { ProblemIssue } from '../errors.ts';
import { applyTutelleEvent, startTutelleClock, type TutelleClock } from './deadlines.ts';
import { CLOCK_EVENTS, type DecisionKind } from './envelope-types/tutelle-decision.ts';
import type { EnvelopeType } from './envelope-types/index.ts';
import { retainUntil } from './retention.ts';
import type { EnvelopeRecord, SubmitChanges } from './ports.ts';
import { tutelleCategory } from './tutelle-categories.ts';

export async function submitChanges(
  type: EnvelopeType,
  envelope: EnvelopeRecord,
  today: string,
  find: (id: string) => Promise<EnvelopeRecord | null>,
): Promise<{ changes: SubmitChanges; issues: ProblemIssue[] }> {
  const changes: SubmitChanges = {
    deadline: null,
    retainUntil: retainUntil(type.retentionClass, today),
    clock: null,
    computed: { ...envelope.computed },
  };
  const issues: ProblemIssue[] = [];
  const metadata = envelope.metadata as Record<string, unknown>;

  if (type.deadline === 'tutelle') {
    const category = tutelleCategory(String(metadata.actCategory));
    if (category !== undefined) {
      const clock = startTutelleClock(today, { days: category.days, extensionAllowed: category.extensionAllowed });
      changes.clock = clock;
      changes.deadline = clock.deadline;
    }
    // A complement: this act answers a decision that stopped the original act's clock.
    const decision = envelope.inReplyTo === null ? null : await find(envelope.inReplyTo);
    if (decision?.type === 'tutelle.decision') {
      const kind = (decision.metadata as { kind?: DecisionKind }).kind;
      const act = decision.inReplyTo === null ? null : await find(decision.inReplyTo);
      if (act !== null && (kind === 'documentRequest' || kind === 'incompleteFile') && act.clock !== null) {
        const step = applyTutelleEvent(act.clock as TutelleClock, { kind: 'complement', date: today });
        if (step.ok) changes.related = { id: act.id, deadline: step.clock.deadline, clock: step.clock, computed: { ...act.computed, complementedBy: envelope.id } };
        else issues.push({ name: '/inReplyTo', value: decision.id, detail: step.reason });
      }
    }
  }

  if (type.name === 'tutelle.decision' && envelope.inReplyTo !== null) {
    const act = await find(envelope.inReplyTo);
    const kind = (metadata as { kind?: DecisionKind }).kind;
    if (act !== null && kind !== undefined) {
      const late = act.deadline !== null && today > act.deadline;
      changes.computed = { ...changes.computed, late, actDeadline: act.deadline };
      let clock = act.clock as TutelleClock | null;
      const event = CLOCK_EVENTS[kind];
      if (event !== undefined) {
        if (clock === null) issues.push({ name: '/metadata/kind', value: kind, detail: 'The act has no running tutelle clock' });
        else {
          const step = applyTutelleEvent(clock, { kind: event, date: today });
          if (step.ok) clock = step.clock;
          else issues.push({ name: '/metadata/kind', value: kind, detail: step.reason });
        }
      }
      const decisions = Array.isArray(act.computed.decisions) ? (act.computed.decisions as unknown[]) : [];
      changes.related = {
        id: act.id,
        deadline: clock?.deadline ?? (event === undefined ? act.deadline : null),
        clock,
        computed: { ...act.computed, decisions: [...decisions, { envelopeId: envelope.id, kind, date: today, late }] },
      };
    }
  }
  return { changes, issues };
}
