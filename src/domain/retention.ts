/**
 * Retention classes (DESIGN §4): how long an envelope and its files are kept
 * before the retention purge. Data, not code: the durations are the defaults
 * the design proposes, still to be confirmed with BPL and the State Archives
 * (Archives de l'État / Rijksarchief), hence `confirmed: false` on every row.
 */
import { isIsoDate, type IsoDate } from './calendar.ts';

export const RETENTION_CLASSES = [
  'tutelle',
  'procurement',
  'wepulse',
  'letter',
  'nomination',
  'nomination-accepted',
  'nomination-rejected',
] as const;
export type RetentionClass = (typeof RETENTION_CLASSES)[number];

export interface RetentionRule {
  years: number;
  description: string;
  /** Confirmed by BPL and the State Archives. */
  confirmed: boolean;
}

export const RETENTION_RULES: Readonly<Record<RetentionClass, RetentionRule>> = {
  tutelle: { years: 10, description: 'Acts under tutelle, act lists and tutelle decisions', confirmed: false },
  procurement: { years: 10, description: 'Public procurement files', confirmed: false },
  wepulse: { years: 5, description: 'We Pulse datasets and documents', confirmed: false },
  letter: { years: 5, description: 'General letters', confirmed: false },
  // Until the outcome is recorded, a nomination is kept as long as an accepted one: shortening later is safe, the reverse is not.
  nomination: { years: 10, description: 'Decoration nominations whose outcome is not yet known', confirmed: false },
  'nomination-accepted': { years: 10, description: 'Decoration nominations that were accepted', confirmed: false },
  'nomination-rejected': { years: 1, description: 'Decoration nominations that were rejected', confirmed: false },
};

export function isRetentionClass(value: unknown): value is RetentionClass {
  return typeof value === 'string' && (RETENTION_CLASSES as readonly string[]).includes(value);
}

/**
 * The last day an envelope of this class is kept: `from` (the Brussels date of
 * its submission, or of the outcome for nominations) plus the class's years.
 * 29 February plus a whole number of years that lands in a common year gives
 * 1 March: when in doubt, keep a day longer.
 */
export function retainUntil(retentionClass: RetentionClass, from: IsoDate): IsoDate {
  const rule = RETENTION_RULES[retentionClass];
  if (rule === undefined) throw new RangeError(`Unknown retention class: ${String(retentionClass)}`);
  if (!isIsoDate(from)) throw new RangeError(`Not a calendar date (YYYY-MM-DD): ${String(from)}`);
  const year = Number(from.slice(0, 4)) + rule.years;
  const candidate = `${String(year).padStart(4, '0')}${from.slice(4)}`;
  return isIsoDate(candidate) ? candidate : `${String(year).padStart(4, '0')}-03-01`;
}
