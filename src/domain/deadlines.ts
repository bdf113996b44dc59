/**
 * Tutelle deadlines (DESIGN §4, `tutelle.act` and `tutelle.decision`), as pure
 * functions of calendar dates (`YYYY-MM-DD`, Europe/Brussels; see calendar.ts).
 *
 * - The decision deadline is the receipt date (the Brussels date of the
 *   submission acceptance of the act) + 30 days, the expiry day counting,
 *   moved to the next working day when it is not one.
 * - An `extension` decision (once, and only where the act's category allows
 *   it: procurement decisions) makes it the next working day on or after
 *   receipt + 45 days.
 * - A `documentRequest` or `incompleteFile` decision stops the clock; it
 *   restarts — a new full period — from the acceptance of the sender's
 *   complementing envelope (a `tutelle.act` in reply to that decision).
 * - A decision accepted after the deadline is flagged late, never refused.
 *
 * The number of days comes from the act's category row
 * (tutelle-categories.ts); 30 and 45 are the defaults the design states.
 */
import { addDays, isIsoDate, nextWorkingDayOnOrAfter, type IsoDate } from './calendar.ts';

export const TUTELLE_DAYS = 30;
export const EXTENDED_TUTELLE_DAYS = 45;
/** A transmission later than this many days after the decision is accepted with a warning. */
export const TRANSMISSION_WARNING_DAYS = 20;

/** Receipt + `days` (the expiry day counting), moved to the next working day. */
export function tutelleDeadline(receiptDate: IsoDate, days: number = TUTELLE_DAYS): IsoDate {
  return nextWorkingDayOnOrAfter(addDays(receiptDate, days));
}

/** After an `extension` decision: the next working day on or after receipt + 45 days. */
export function extendedDeadline(receiptDate: IsoDate, days: number = EXTENDED_TUTELLE_DAYS): IsoDate {
  return nextWorkingDayOnOrAfter(addDays(receiptDate, days));
}

/** Whether a decision accepted on `decisionDate` missed the deadline (`deadline` itself is still on time). */
export function isLate(decisionDate: IsoDate, deadline: IsoDate): boolean {
  return decisionDate > deadline; // ISO dates compare as strings
}

/** Where an act stands in its tutelle period. */
export interface TutelleClock {
  /** The receipt date the running period counts from (the act's, or the complement's after a clock stop). */
  receiptDate: IsoDate;
  /** The decision deadline; null while the clock is stopped. */
  deadline: IsoDate | null;
  /** Whether an extension was granted (it is allowed once). */
  extended: boolean;
  /** Stopped by a document request or an incomplete-file decision, waiting for the complement. */
  stopped: boolean;
  days: number;
  extendedDays: number;
  extensionAllowed: boolean;
}

/**
 * What happened to an act, each with the Brussels date its envelope was
 * accepted: a decision of the tutelle authority, or the sender's complement.
 */
export type TutelleEvent =
  | { kind: 'extension'; date: IsoDate }
  | { kind: 'documentRequest' | 'incompleteFile'; date: IsoDate }
  | { kind: 'complement'; date: IsoDate };

export type TutelleStep = { ok: true; clock: TutelleClock } | { ok: false; reason: string };

export interface TutelleClockOptions {
  days?: number;
  extendedDays?: number;
  /** From the act's category row: only procurement decisions may be extended. */
  extensionAllowed: boolean;
}

/** The clock of an act received on `receiptDate`. */
export function startTutelleClock(receiptDate: IsoDate, options: TutelleClockOptions): TutelleClock {
  if (!isIsoDate(receiptDate)) throw new RangeError(`Not a calendar date (YYYY-MM-DD): ${String(receiptDate)}`);
  const days = options.days ?? TUTELLE_DAYS;
  return {
    receiptDate,
    deadline: tutelleDeadline(receiptDate, days),
    extended: false,
    stopped: false,
    days,
    extendedDays: options.extendedDays ?? EXTENDED_TUTELLE_DAYS,
    extensionAllowed: options.extensionAllowed,
  };
}

/**
 * Applies one event; refuses what the rules do not allow (a second extension,
 * an extension of a non-procurement act, an extension or clock stop after the
 * deadline or while stopped, a complement nobody asked for, an event dated
 * before the running period began).
 */
export function applyTutelleEvent(clock: TutelleClock, event: TutelleEvent): TutelleStep {
  if (!isIsoDate(event.date)) return { ok: false, reason: `Not a calendar date: ${String(event.date)}` };
  if (event.date < clock.receiptDate) return { ok: false, reason: `The event (${event.date}) predates the receipt (${clock.receiptDate})` };
  switch (event.kind) {
    case 'extension': {
      if (!clock.extensionAllowed) return { ok: false, reason: 'This act category does not allow an extension' };
      if (clock.extended) return { ok: false, reason: 'The deadline was already extended once' };
      if (clock.stopped) return { ok: false, reason: 'The clock is stopped until the file is complemented' };
      if (isLate(event.date, clock.deadline!)) return { ok: false, reason: `The deadline (${clock.deadline}) has passed; it can no longer be extended` };
      return { ok: true, clock: { ...clock, extended: true, deadline: extendedDeadline(clock.receiptDate, clock.extendedDays) } };
    }
    case 'documentRequest':
    case 'incompleteFile': {
      if (clock.stopped) return { ok: false, reason: 'The clock is already stopped' };
      if (isLate(event.date, clock.deadline!)) return { ok: false, reason: `The deadline (${clock.deadline}) has passed; the clock can no longer be stopped` };
      return { ok: true, clock: { ...clock, stopped: true, deadline: null } };
    }
    case 'complement': {
      if (!clock.stopped) return { ok: false, reason: 'No document request or incomplete-file decision is waiting for a complement' };
      // A new full period from the complement's acceptance. An extension granted before the stop
      // stays used: the new period is the ordinary one and cannot be extended again.
      return { ok: true, clock: { ...clock, stopped: false, receiptDate: event.date, deadline: tutelleDeadline(event.date, clock.days) } };
    }
  }
}

/** Replays events in date order (stable for equal dates); the first refused event stops the replay. */
export function replayTutelleEvents(
  receiptDate: IsoDate,
  events: readonly TutelleEvent[],
  options: TutelleClockOptions,
): { clock: TutelleClock; refused?: { event: TutelleEvent; reason: string } } {
  let clock = startTutelleClock(receiptDate, options);
  const ordered = events.map((event, index) => ({ event, index })).sort((a, b) => (a.event.date < b.event.date ? -1 : a.event.date > b.event.date ? 1 : a.index - b.index));
  for (const { event } of ordered) {
    const step = applyTutelleEvent(clock, event);
    if (!step.ok) return { clock, refused: { event, reason: step.reason } };
    clock = step.clock;
  }
  return { clock };
}
