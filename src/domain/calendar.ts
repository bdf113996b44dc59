/**
 * The Brussels working-day calendar used to compute legal deadlines (DESIGN §4,
 * `tutelle.act`). Dates are calendar dates written `YYYY-MM-DD` (ISO 8601), with
 * no time and no time zone: a deadline is a day, not an instant. The only place
 * an instant becomes a date is `brusselsDate`, which reads the Europe/Brussels
 * calendar through the platform's time-zone database (Intl).
 *
 * The counting rule and the holiday list follow the Brussels tutelle texts; the
 * ordonnance du 19 juillet 2001 organisant la tutelle administrative sur les
 * intercommunales, art. 4, for instance, reads: the period starts the day after
 * receipt, the expiry day counts, an expiry on a Saturday, Sunday or holiday
 * moves to the next working day, holidays being 1/1, Easter Monday, 1/5,
 * Ascension, Whit Monday, 21/7, 15/8, 1, 2, 11 and 15/11, 25 and 26/12 "ainsi
 * que les jours déterminés par ordonnance ou par arrêté du Gouvernement".
 *
 * Holidays are data: fixed days, days at a fixed offset from Easter Sunday
 * (computed), and a table of extra days decreed by ordonnance or arrêté. Saturdays
 * and Sundays are never working days.
 */

/** A calendar date `YYYY-MM-DD`. */
export type IsoDate = string;

export interface Label {
  fr: string;
  nl: string;
}

export interface FixedHoliday {
  /** `MM-DD`. */
  monthDay: string;
  name: Label;
}

export interface EasterHoliday {
  /** Days after Easter Sunday. */
  offset: number;
  name: Label;
}

export interface DecreedDay {
  date: IsoDate;
  name: Label;
  /** The ordonnance or arrêté (with its Moniteur belge publication) that decreed it. */
  source: string;
}

/**
 * The days the Brussels-Capital Region's holiday list (as given to us by BPL in
 * DESIGN §4) fixes by date. 15 November is the King's Feast (Fête du Roi /
 * Koningsdag), a holiday of the public services.
 */
export const FIXED_HOLIDAYS: readonly FixedHoliday[] = [
  { monthDay: '01-01', name: { fr: 'Nouvel An', nl: 'Nieuwjaar' } },
  { monthDay: '05-01', name: { fr: 'Fête du Travail', nl: 'Dag van de Arbeid' } },
  { monthDay: '07-21', name: { fr: 'Fête nationale', nl: 'Nationale feestdag' } },
  { monthDay: '08-15', name: { fr: 'Assomption', nl: 'Onze-Lieve-Vrouw-Hemelvaart' } },
  { monthDay: '11-01', name: { fr: 'Toussaint', nl: 'Allerheiligen' } },
  { monthDay: '11-02', name: { fr: 'Jour des Morts', nl: 'Allerzielen' } },
  { monthDay: '11-11', name: { fr: "Armistice", nl: 'Wapenstilstand' } },
  { monthDay: '11-15', name: { fr: 'Fête du Roi', nl: 'Koningsdag' } },
  { monthDay: '12-25', name: { fr: 'Noël', nl: 'Kerstmis' } },
  { monthDay: '12-26', name: { fr: 'Lendemain de Noël', nl: 'Tweede Kerstdag' } },
];

/** Movable feasts, as offsets from Easter Sunday (Gregorian computus). */
export const EASTER_HOLIDAYS: readonly EasterHoliday[] = [
  { offset: 1, name: { fr: 'Lundi de Pâques', nl: 'Paasmaandag' } },
  { offset: 39, name: { fr: 'Ascension', nl: 'Onze-Lieve-Heer-Hemelvaart' } },
  { offset: 50, name: { fr: 'Lundi de Pentecôte', nl: 'Pinkstermaandag' } },
];

/**
 * Extra days off decreed for the regional and local public services (a bridge
 * day, an exceptional closure). Empty on purpose: add a day only with the act
 * that decreed it (`source`), never from memory. Whether the Brussels regional
 * holiday of 8 May (Fête de l'Iris / Irisfeest) counts for tutelle deadlines is
 * a question for BPL; it is not in the list BPL gave, so it is not here.
 */
export const DECREED_DAYS: readonly DecreedDay[] = [];

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 86_400_000;

/** Whether `value` is a real calendar date written `YYYY-MM-DD` (2026-02-30 is not). */
export function isIsoDate(value: unknown): value is IsoDate {
  if (typeof value !== 'string') return false;
  const match = ISO_DATE.exec(value);
  if (match === null) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= daysInMonth(year, month);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Days since 1970-01-01 (UTC noon-free arithmetic: dates are counted, never timed). */
function toDayNumber(date: IsoDate): number {
  if (!isIsoDate(date)) throw new RangeError(`Not a calendar date (YYYY-MM-DD): ${String(date)}`);
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day); // setUTCFullYear keeps years 0-99 literal, unlike Date.UTC
  return Math.round(utc.getTime() / DAY_MS);
}

function fromDayNumber(dayNumber: number): IsoDate {
  const utc = new Date(dayNumber * DAY_MS);
  const year = utc.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError('Dates are limited to the years 0000-9999');
  return `${String(year).padStart(4, '0')}-${pad2(utc.getUTCMonth() + 1)}-${pad2(utc.getUTCDate())}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** `date` plus `days` calendar days (negative to go back). */
export function addDays(date: IsoDate, days: number): IsoDate {
  if (!Number.isInteger(days)) throw new RangeError(`Not a whole number of days: ${days}`);
  return fromDayNumber(toDayNumber(date) + days);
}

/** Calendar days from `from` to `to` (positive when `to` is later). */
export function daysBetween(from: IsoDate, to: IsoDate): number {
  return toDayNumber(to) - toDayNumber(from);
}

/** 0 = Sunday … 6 = Saturday. */
export function dayOfWeek(date: IsoDate): number {
  return (((toDayNumber(date) + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
}

/**
 * Easter Sunday of a Gregorian year, by the anonymous Gregorian algorithm
 * ("Meeus/Jones/Butcher", Nature 1876; Meeus, Astronomical Algorithms, ch. 8).
 */
export function easterSunday(year: number): IsoDate {
  if (!Number.isInteger(year) || year < 1583 || year > 9999) throw new RangeError(`The Gregorian computus needs a year 1583-9999: ${year}`);
  const a = year % 19;
  const b = Math.floor(year / 100);
  const c = year % 100;
  const d = Math.floor(b / 4);
  const e = b % 4;
  const f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4);
  const k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)}`;
}

const holidayCache = new Map<number, ReadonlySet<IsoDate>>();

function holidaySet(year: number): ReadonlySet<IsoDate> {
  let set = holidayCache.get(year);
  if (set === undefined) {
    const days = new Set<IsoDate>();
    const prefix = String(year).padStart(4, '0');
    for (const fixed of FIXED_HOLIDAYS) days.add(`${prefix}-${fixed.monthDay}`);
    const easter = easterSunday(year);
    for (const movable of EASTER_HOLIDAYS) days.add(addDays(easter, movable.offset));
    for (const decreed of DECREED_DAYS) if (decreed.date.startsWith(`${prefix}-`)) days.add(decreed.date);
    set = days;
    holidayCache.set(year, set);
  }
  return set;
}

/**
 * The Brussels holidays of a year, sorted and without duplicates (Ascension
 * falls on 1 May when Easter is on 23 March, as in 2008: twelve days that year).
 */
export function brusselsHolidays(year: number): IsoDate[] {
  return [...holidaySet(year)].sort();
}

/** The holiday's name, or undefined on an ordinary day. */
export function holidayName(date: IsoDate): Label | undefined {
  const year = Number(date.slice(0, 4));
  if (!holidaySet(year).has(date)) return undefined;
  const decreed = DECREED_DAYS.find((d) => d.date === date);
  if (decreed !== undefined) return decreed.name;
  const fixed = FIXED_HOLIDAYS.find((f) => date.endsWith(`-${f.monthDay}`));
  if (fixed !== undefined) return fixed.name;
  const offset = daysBetween(easterSunday(year), date);
  return EASTER_HOLIDAYS.find((e) => e.offset === offset)?.name;
}

export function isHoliday(date: IsoDate): boolean {
  if (!isIsoDate(date)) throw new RangeError(`Not a calendar date (YYYY-MM-DD): ${String(date)}`);
  return holidaySet(Number(date.slice(0, 4))).has(date);
}

export function isWeekend(date: IsoDate): boolean {
  const day = dayOfWeek(date);
  return day === 0 || day === 6;
}

/** Neither a Saturday, a Sunday nor a Brussels holiday. */
export function isWorkingDay(date: IsoDate): boolean {
  return !isWeekend(date) && !isHoliday(date);
}

/** `date` itself when it is a working day, otherwise the first working day after it. */
export function nextWorkingDayOnOrAfter(date: IsoDate): IsoDate {
  let day = date;
  // At most 4 holidays or weekend days ever follow each other (Sat 31/10, Sun 1/11, Mon 2/11 …);
  // the bound only guards against a malformed decreed-days table.
  for (let step = 0; step < 366; step++) {
    if (isWorkingDay(day)) return day;
    day = addDays(day, 1);
  }
  throw new RangeError(`No working day within a year after ${date}`);
}

const brusselsFormat = new Intl.DateTimeFormat('en-CA', {
  timeZone: 'Europe/Brussels',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
});

/** The Europe/Brussels calendar date of an instant (the receipt date of a submission accepted at that instant). */
export function brusselsDate(instant: Date): IsoDate {
  if (Number.isNaN(instant.getTime())) throw new RangeError('Invalid instant');
  const parts = brusselsFormat.formatToParts(instant);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('year').padStart(4, '0')}-${part('month')}-${part('day')}`;
}
