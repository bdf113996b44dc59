/**
 * Retention classes and the dated European procurement thresholds are data:
 * these tests pin the data and the arithmetic on it.
 */
import fc from 'fast-check';
import t from 'tap';
import { EU_THRESHOLDS, aboveEuThreshold, euThresholdCents, euThresholdPeriod } from '../../src/domain/procurement-thresholds.ts';
import { RETENTION_CLASSES, RETENTION_RULES, retainUntil } from '../../src/domain/retention.ts';
import { addDays } from '../../src/domain/calendar.ts';

t.test('retention classes and their default durations', async (t) => {
  t.same(Object.fromEntries(RETENTION_CLASSES.map((c) => [c, RETENTION_RULES[c].years])), {
    tutelle: 10,
    procurement: 10,
    wepulse: 5,
    letter: 5,
    nomination: 10,
    'nomination-accepted': 10,
    'nomination-rejected': 1,
  });
  t.equal(retainUntil('tutelle', '2026-06-15'), '2036-06-15');
  t.equal(retainUntil('letter', '2026-06-15'), '2031-06-15');
  t.equal(retainUntil('nomination-rejected', '2026-12-31'), '2027-12-31');
  t.equal(retainUntil('nomination-rejected', '2028-02-29'), '2029-03-01', 'a leap day lands on 1 March: a day longer, never shorter');
  t.equal(retainUntil('tutelle', '2028-02-29'), '2038-03-01');
  t.equal(retainUntil('wepulse', '2028-02-29'), '2033-03-01');
  t.throws(() => retainUntil('tutelle', '2026-02-30'), RangeError);
  t.throws(() => retainUntil('forever' as never, '2026-01-01'), RangeError);
  fc.assert(
    fc.property(fc.constantFrom(...RETENTION_CLASSES), fc.integer({ min: 0, max: 40_000 }), (cls, n) => {
      const from = addDays('2000-01-01', n);
      const until = retainUntil(cls, from);
      const years = RETENTION_RULES[cls].years;
      return until > from && Number(until.slice(0, 4)) === Number(from.slice(0, 4)) + years && (until.slice(5) === from.slice(5) || (from.slice(5) === '02-29' && until.slice(5) === '03-01'));
    }),
  );
});

t.test('the threshold periods are contiguous and the 2026-27 values are those of DESIGN §4', async (t) => {
  for (let i = 1; i < EU_THRESHOLDS.length; i++) t.equal(EU_THRESHOLDS[i]!.from, addDays(EU_THRESHOLDS[i - 1]!.until, 1), 'no gap, no overlap');
  t.match(euThresholdPeriod('2026-01-01'), { worksCents: 540_400_000, suppliesServicesDecentralisedCents: 21_600_000, suppliesServicesCentralCents: 14_000_000 });
  t.equal(euThresholdCents('works', '2027-12-31'), 540_400_000);
  t.equal(euThresholdCents('supplies', '2026-06-01', 'central'), 14_000_000);
  t.equal(euThresholdCents('services', '2024-06-01'), 22_100_000);
  t.equal(euThresholdCents('works', '2021-12-31'), undefined, 'before the table');
  t.equal(aboveEuThreshold(21_600_000, 'services', '2026-06-01'), true, 'equal to the threshold is above it');
  t.equal(aboveEuThreshold(21_599_999, 'services', '2026-06-01'), false);
  t.equal(aboveEuThreshold(1, 'works', '2028-01-01'), undefined, 'after the table: unknown, not false');
  for (const period of EU_THRESHOLDS) t.ok(Number.isSafeInteger(period.worksCents) && period.source.length > 0);
});
