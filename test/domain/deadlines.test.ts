/**
 * Tutelle deadlines: receipt + 30 days (the expiry day counting), moved to
 * the next working day; the extension to receipt + 45; the clock stopped by
 * a document request and restarted by the complement. Every expected date
 * below was worked out by hand from the published 2025-2027 calendar (and its
 * weekday checked with GNU date), not by the code under test.
 */
import fc from 'fast-check';
import t from 'tap';
import {
  applyTutelleEvent,
  extendedDeadline,
  isLate,
  replayTutelleEvents,
  startTutelleClock,
  tutelleDeadline,
  type TutelleClock,
} from '../../src/domain/deadlines.ts';
import { addDays, daysBetween, isWorkingDay } from '../../src/domain/calendar.ts';

t.test('the decision deadline: receipt + 30, moved off weekends and Brussels holidays', async (t) => {
  const cases: Array<[receipt: string, deadline: string, why: string]> = [
    ['2026-12-01', '2026-12-31', '+30 is Thursday 31 December, a working day: it stays'],
    ['2026-11-26', '2026-12-28', '+30 is Saturday 26 December (also a holiday), then Sunday: Monday 28'],
    ['2026-11-25', '2026-12-28', '+30 is Christmas (Friday), 26 December falls on Saturday, then Sunday'],
    ['2025-12-02', '2026-01-02', "+30 is New Year's Day (Thursday): Friday 2 January, across the year end"],
    ['2027-12-02', '2028-01-03', "+30 is New Year's Day 2028 (Saturday), then Sunday: Monday 3 January"],
    ['2026-03-07', '2026-04-07', '+30 is Easter Monday 6 April: Tuesday 7'],
    ['2026-03-05', '2026-04-07', '+30 is Saturday 4 April, then Easter Sunday and Easter Monday'],
    ['2026-04-14', '2026-05-15', '+30 is Ascension (Thursday 14 May): Friday 15'],
    ['2026-04-25', '2026-05-26', '+30 is Whit Monday 25 May: Tuesday 26'],
    ['2026-04-23', '2026-05-26', '+30 is Saturday 23 May, Sunday, Whit Monday'],
    ['2026-04-01', '2026-05-04', '+30 is 1 May (Friday), then the weekend'],
    ['2026-06-21', '2026-07-22', '+30 is 21 July (Tuesday): Wednesday 22'],
    ['2025-07-16', '2025-08-18', '+30 is 15 August (Friday), then the weekend'],
    ['2026-10-02', '2026-11-03', '+30 is All Saints (Sunday), All Souls on Monday: Tuesday 3'],
    ['2027-09-30', '2027-11-03', '+30 is Saturday 30 October, Sunday, All Saints (Monday), All Souls (Tuesday)'],
    ['2026-10-12', '2026-11-12', '+30 is 11 November (Wednesday): Thursday 12'],
    ['2027-10-16', '2027-11-16', "+30 is the King's Feast, 15 November (Monday): Tuesday 16"],
    ['2026-05-20', '2026-06-19', '+30 is an ordinary Friday'],
  ];
  for (const [receipt, deadline, why] of cases) t.equal(tutelleDeadline(receipt), deadline, `${receipt} → ${deadline}: ${why}`);
});

t.test('the extended deadline: the next working day on or after receipt + 45', async (t) => {
  t.equal(extendedDeadline('2026-03-07'), '2026-04-21', '+45 is Tuesday 21 April');
  t.equal(extendedDeadline('2026-09-27'), '2026-11-12', '+45 is 11 November (Wednesday)');
  t.equal(extendedDeadline('2026-11-10'), '2026-12-28', '+45 is Christmas (Friday)');
});

const receipts = fc.integer({ min: Date.UTC(2000, 0, 1) / 86_400_000, max: Date.UTC(2098, 11, 1) / 86_400_000 }).map((n) => new Date(n * 86_400_000).toISOString().slice(0, 10));

t.test('every deadline is the first working day on or after receipt + 30 (or + 45)', async (t) => {
  fc.assert(
    fc.property(receipts, (receipt) => {
      for (const [deadline, days] of [[tutelleDeadline(receipt), 30], [extendedDeadline(receipt), 45]] as const) {
        const expiry = addDays(receipt, days);
        if (deadline < expiry || !isWorkingDay(deadline)) return false;
        for (let day = expiry; day < deadline; day = addDays(day, 1)) if (isWorkingDay(day)) return false;
      }
      return daysBetween(tutelleDeadline(receipt), extendedDeadline(receipt)) > 0;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('a decision is late only after the deadline day', async (t) => {
  t.notOk(isLate('2026-12-31', '2026-12-31'), 'on the deadline day is on time');
  t.ok(isLate('2027-01-04', '2026-12-31'));
  t.notOk(isLate('2026-12-01', '2026-12-31'));
});

t.test('the clock: an extension once, for categories that allow it, before the deadline', async (t) => {
  const procurement = startTutelleClock('2026-03-07', { extensionAllowed: true });
  t.equal(procurement.deadline, '2026-04-07');
  const extended = applyTutelleEvent(procurement, { kind: 'extension', date: '2026-03-20' });
  t.ok(extended.ok);
  const clock = (extended as { clock: TutelleClock }).clock;
  t.equal(clock.deadline, '2026-04-21', 'receipt + 45');
  t.match(applyTutelleEvent(clock, { kind: 'extension', date: '2026-03-25' }), { ok: false, reason: /already extended/ }, 'only once');

  const budget = startTutelleClock('2026-03-07', { extensionAllowed: false });
  t.match(applyTutelleEvent(budget, { kind: 'extension', date: '2026-03-20' }), { ok: false, reason: /does not allow/ }, 'not for other categories');
  t.match(applyTutelleEvent(procurement, { kind: 'extension', date: '2026-04-08' }), { ok: false, reason: /has passed/ }, 'not after the deadline');
  t.ok(applyTutelleEvent(procurement, { kind: 'extension', date: '2026-04-07' }).ok, 'still on the deadline day');
  t.match(applyTutelleEvent(procurement, { kind: 'extension', date: '2026-03-01' }), { ok: false, reason: /predates/ });
});

t.test('the clock: a document request stops it; the complement restarts a full period', async (t) => {
  const start = startTutelleClock('2026-03-02', { extensionAllowed: false });
  t.equal(start.deadline, '2026-04-01');
  const stopped = applyTutelleEvent(start, { kind: 'documentRequest', date: '2026-03-20' });
  t.match(stopped, { ok: true, clock: { stopped: true, deadline: null } });
  const clock = (stopped as { clock: TutelleClock }).clock;
  t.match(applyTutelleEvent(clock, { kind: 'incompleteFile', date: '2026-03-25' }), { ok: false, reason: /already stopped/ });
  t.match(applyTutelleEvent(clock, { kind: 'extension', date: '2026-03-25' }), { ok: false });
  const restarted = applyTutelleEvent(clock, { kind: 'complement', date: '2026-04-10' });
  t.match(restarted, { ok: true, clock: { stopped: false, receiptDate: '2026-04-10', deadline: '2026-05-11' } }, '10 April + 30 is Sunday 10 May: Monday 11');
  t.match(applyTutelleEvent(start, { kind: 'complement', date: '2026-03-10' }), { ok: false, reason: /No document request/ }, 'a complement nobody asked for');
  t.match(applyTutelleEvent(start, { kind: 'incompleteFile', date: '2026-04-02' }), { ok: false, reason: /has passed/ }, 'too late to stop the clock');
});

t.test('replaying events in date order', async (t) => {
  const events = [
    { kind: 'complement', date: '2026-04-10' },
    { kind: 'extension', date: '2026-03-10' },
    { kind: 'documentRequest', date: '2026-03-20' },
  ] as const;
  const { clock, refused } = replayTutelleEvents('2026-03-02', events, { extensionAllowed: true });
  t.equal(refused, undefined);
  t.match(clock, { extended: true, stopped: false, receiptDate: '2026-04-10', deadline: '2026-05-11' }, 'the extension stays used; the new period is the ordinary one');
  t.match(applyTutelleEvent(clock, { kind: 'extension', date: '2026-04-20' }), { ok: false, reason: /already extended/ });
  const second = replayTutelleEvents('2026-03-02', [{ kind: 'extension', date: '2026-03-10' }, { kind: 'extension', date: '2026-03-11' }], { extensionAllowed: true });
  t.match(second.refused, { event: { date: '2026-03-11' }, reason: /already extended/ });
  t.equal(second.clock.deadline, extendedDeadline('2026-03-02'));
});
