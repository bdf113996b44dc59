/**
 * The Brussels working-day calendar, checked against oracles that do not
 * share its code: published Easter and holiday dates, Knuth's Easter
 * algorithm (a different computus), JavaScript's own weekday, and the EU
 * summer-time rule for the Brussels date of an instant.
 */
import fc from 'fast-check';
import t from 'tap';
import {
  DECREED_DAYS,
  addDays,
  brusselsDate,
  brusselsHolidays,
  dayOfWeek,
  daysBetween,
  easterSunday,
  holidayName,
  isIsoDate,
  isWorkingDay,
  nextWorkingDayOnOrAfter,
} from '../../src/domain/calendar.ts';

const DAY = 86_400_000;
/** Day n since 1970-01-01 as YYYY-MM-DD, through Date (not the calendar module). */
const iso = (n: number) => new Date(n * DAY).toISOString().slice(0, 10);
const dayNumber = (date: string) => Date.parse(`${date}T00:00:00Z`) / DAY;
const jsWeekday = (date: string) => new Date(`${date}T00:00:00Z`).getUTCDay();
const dateIn = (from: string, to: string) => fc.integer({ min: dayNumber(from), max: dayNumber(to) }).map(iso);

/** Published Western (Gregorian) Easter Sundays. */
const PUBLISHED_EASTER: Record<number, string> = {
  1818: '1818-03-22', // earliest possible date
  1943: '1943-04-25', // latest possible date
  2000: '2000-04-23',
  2008: '2008-03-23',
  2010: '2010-04-04',
  2011: '2011-04-24',
  2012: '2012-04-08',
  2013: '2013-03-31',
  2014: '2014-04-20',
  2015: '2015-04-05',
  2016: '2016-03-27',
  2017: '2017-04-16',
  2018: '2018-04-01',
  2019: '2019-04-21',
  2020: '2020-04-12',
  2021: '2021-04-04',
  2022: '2022-04-17',
  2023: '2023-04-09',
  2024: '2024-03-31',
  2025: '2025-04-20',
  2026: '2026-04-05',
  2027: '2027-03-28',
  2028: '2028-04-16',
  2029: '2029-04-01',
  2030: '2030-04-21',
  2031: '2031-04-13',
  2032: '2032-03-28',
  2033: '2033-04-17',
  2034: '2034-04-09',
  2035: '2035-03-25',
  2038: '2038-04-25',
  2285: '2285-03-22',
};

/** Published Belgian movable public holidays: Easter Monday, Ascension, Whit Monday. */
const PUBLISHED_MOVABLE: Record<number, [string, string, string]> = {
  2024: ['2024-04-01', '2024-05-09', '2024-05-20'],
  2025: ['2025-04-21', '2025-05-29', '2025-06-09'],
  2026: ['2026-04-06', '2026-05-14', '2026-05-25'],
  2027: ['2027-03-29', '2027-05-06', '2027-05-17'],
  2028: ['2028-04-17', '2028-05-25', '2028-06-05'],
  2029: ['2029-04-02', '2029-05-10', '2029-05-21'],
  2030: ['2030-04-22', '2030-05-30', '2030-06-10'],
};
const FIXED = ['01-01', '05-01', '07-21', '08-15', '11-01', '11-02', '11-11', '11-15', '12-25', '12-26'];

/** The oracle's holidays for 2024-2030: fixed days plus the published movable ones. */
function oracleHolidays(year: number): Set<string> {
  return new Set([...FIXED.map((md) => `${year}-${md}`), ...PUBLISHED_MOVABLE[year]!]);
}
function oracleWorking(date: string): boolean {
  const weekday = jsWeekday(date);
  return weekday !== 0 && weekday !== 6 && !oracleHolidays(Number(date.slice(0, 4))).has(date);
}

/** Knuth, TAOCP vol. 1, §1.3.2 exercise 14 (after Lilius and Clavius): a different computus than the code's. */
function knuthEaster(year: number): string {
  const mod = (a: number, n: number) => ((a % n) + n) % n;
  const golden = mod(year, 19) + 1;
  const century = Math.floor(year / 100) + 1;
  const x = Math.floor((3 * century) / 4) - 12;
  const z = Math.floor((8 * century + 5) / 25) - 5;
  const d = Math.floor((5 * year) / 4) - x - 10;
  let epact = mod(11 * golden + 20 + z - x, 30);
  if ((epact === 25 && golden > 11) || epact === 24) epact++;
  let n = 44 - epact;
  if (n < 21) n += 30;
  n = n + 7 - mod(d + n, 7);
  const [month, day] = n > 31 ? [4, n - 31] : [3, n];
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

t.test('Easter Sunday matches the published dates', async (t) => {
  for (const [year, date] of Object.entries(PUBLISHED_EASTER)) t.equal(easterSunday(Number(year)), date, `Easter ${year}`);
});

t.test("Easter Sunday agrees with Knuth's algorithm for every Gregorian year 1583-9999, is a Sunday, and falls 22 March - 25 April", async (t) => {
  for (let year = 1583; year <= 9999; year++) {
    const easter = easterSunday(year);
    if (easter !== knuthEaster(year)) t.fail(`Easter ${year}: ${easter} vs Knuth ${knuthEaster(year)}`);
    if (jsWeekday(easter) !== 0) t.fail(`Easter ${year} (${easter}) is not a Sunday`);
    const md = easter.slice(5);
    if (md < '03-22' || md > '04-25') t.fail(`Easter ${year} (${easter}) out of range`);
  }
  t.throws(() => easterSunday(1582), RangeError, 'no Gregorian computus before 1583');
  t.pass('8,417 years checked');
});

t.test('the Brussels holidays of 2024-2030 are the published ones', async (t) => {
  for (const year of Object.keys(PUBLISHED_MOVABLE).map(Number)) {
    t.same(brusselsHolidays(year), [...oracleHolidays(year)].sort(), `holidays of ${year}`);
  }
  t.same(
    brusselsHolidays(2026),
    ['2026-01-01', '2026-04-06', '2026-05-01', '2026-05-14', '2026-05-25', '2026-07-21', '2026-08-15', '2026-11-01', '2026-11-02', '2026-11-11', '2026-11-15', '2026-12-25', '2026-12-26'],
    'the thirteen days of 2026, written out',
  );
  t.equal(brusselsHolidays(2008).length, 12, 'in 2008 Ascension fell on 1 May: twelve distinct days');
  t.ok(brusselsHolidays(2008).includes('2008-05-01'));
  t.same(holidayName('2026-05-14'), { fr: 'Ascension', nl: 'Onze-Lieve-Heer-Hemelvaart' });
  t.same(holidayName('2026-11-15'), { fr: 'Fête du Roi', nl: 'Koningsdag' });
  t.equal(holidayName('2026-05-13'), undefined);
});

t.test('decreed extra days are sourced dates', async (t) => {
  for (const day of DECREED_DAYS) {
    t.ok(isIsoDate(day.date), `${day.date} is a date`);
    t.ok(day.source.length > 0, `${day.date} names the act that decreed it`);
  }
  t.pass(`${DECREED_DAYS.length} decreed day(s)`);
});

t.test('calendar arithmetic agrees with Date', async (t) => {
  fc.assert(
    fc.property(dateIn('1900-01-01', '2199-12-31'), fc.integer({ min: -5000, max: 5000 }), (date, days) => {
      const added = addDays(date, days);
      return added === iso(dayNumber(date) + days) && daysBetween(date, added) === days && dayOfWeek(date) === jsWeekday(date);
    }),
  );
  t.ok(isIsoDate('2028-02-29'), 'a leap day');
  t.notOk(isIsoDate('2026-02-29'), 'not a leap year');
  t.notOk(isIsoDate('2026-04-31'));
  t.notOk(isIsoDate('2026-4-01'));
  t.notOk(isIsoDate('2026-04-01T00:00:00Z'));
  t.throws(() => addDays('2026-02-30', 1), RangeError);
});

t.test('weekends are never working days', async (t) => {
  fc.assert(fc.property(dateIn('1900-01-01', '2199-12-31'), (date) => ![0, 6].includes(jsWeekday(date)) || !isWorkingDay(date)), { numRuns: 3000 });
  t.notOk(isWorkingDay('2026-06-06'), 'a Saturday');
  t.notOk(isWorkingDay('2026-06-07'), 'a Sunday');
  t.ok(isWorkingDay('2026-06-08'), 'a Monday');
});

t.test('isWorkingDay agrees with the published calendar, 2024-2030', async (t) => {
  fc.assert(fc.property(dateIn('2024-01-01', '2030-12-31'), (date) => isWorkingDay(date) === oracleWorking(date)), { numRuns: 3000 });
  t.pass();
});

t.test('nextWorkingDayOnOrAfter: a working day, on or after the input, with no working day in between', async (t) => {
  fc.assert(
    fc.property(dateIn('1900-01-01', '2199-12-20'), (date) => {
      const next = nextWorkingDayOnOrAfter(date);
      if (!(next >= date) || !isWorkingDay(next)) return false;
      for (let day = date; day < next; day = addDays(day, 1)) if (isWorkingDay(day)) return false;
      return daysBetween(date, next) <= 4;
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(dateIn('2024-01-01', '2030-12-20'), (date) => {
      let expected = date;
      while (!oracleWorking(expected)) expected = iso(dayNumber(expected) + 1);
      return nextWorkingDayOnOrAfter(date) === expected;
    }),
    { numRuns: 3000 },
  );
  t.equal(nextWorkingDayOnOrAfter('2027-10-30'), '2027-11-03', 'Saturday, Sunday, All Saints (Monday), All Souls (Tuesday)');
  t.equal(nextWorkingDayOnOrAfter('2026-12-25'), '2026-12-28', 'Christmas (Friday), 26 December (Saturday), Sunday');
  t.equal(nextWorkingDayOnOrAfter('2026-06-08'), '2026-06-08', 'a working day stays');
});

/** The Brussels date of an instant by the EU summer-time rule (CEST from the last Sunday of March, 01:00 UTC, to the last Sunday of October, 01:00 UTC), valid since 1996. */
function oracleBrusselsDate(instant: Date): string {
  const year = instant.getUTCFullYear();
  const lastSunday = (month: number) => {
    const last = new Date(Date.UTC(year, month + 1, 0));
    return Date.UTC(year, month, last.getUTCDate() - last.getUTCDay(), 1);
  };
  const summer = instant.getTime() >= lastSunday(2) && instant.getTime() < lastSunday(9);
  return new Date(instant.getTime() + (summer ? 2 : 1) * 3_600_000).toISOString().slice(0, 10);
}

t.test('brusselsDate is the Europe/Brussels calendar date', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: Date.UTC(1996, 0, 1), max: Date.UTC(2037, 11, 31) }), (ms) => brusselsDate(new Date(ms)) === oracleBrusselsDate(new Date(ms))),
    { numRuns: 5000 },
  );
  t.equal(brusselsDate(new Date('2026-12-31T22:59:59Z')), '2026-12-31', '23:59:59 CET');
  t.equal(brusselsDate(new Date('2026-12-31T23:00:00Z')), '2027-01-01', 'midnight CET is already the new year');
  t.equal(brusselsDate(new Date('2026-07-01T21:59:59Z')), '2026-07-01', '23:59:59 CEST');
  t.equal(brusselsDate(new Date('2026-07-01T22:00:00Z')), '2026-07-02', 'midnight CEST');
  t.equal(brusselsDate(new Date('2026-03-29T00:59:59Z')), '2026-03-29', 'just before the spring change');
  t.throws(() => brusselsDate(new Date(Number.NaN)), RangeError);
});
