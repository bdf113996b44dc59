/**
 * Public procurement thresholds as dated data (DESIGN §4, `procurement.file`).
 * Amounts are euro cents excluding VAT, like the envelope metadata.
 *
 * The European thresholds of Directive 2014/24/EU are revised every two years
 * by a Commission delegated regulation (effective 1 January of even years). A
 * contract is above the threshold when its estimated value excluding VAT is
 * equal to or greater than it (Directive 2014/24/EU, art. 4; in Belgian law,
 * loi du 17 juin 2016 relative aux marchés publics and its royal decrees).
 *
 * Local authorities (communes, CPAS, police zones, régies, intercommunales) and
 * the Region are "sub-central" (décentralisées) authorities: the €140,000
 * "central government" threshold applies only to the federal authorities listed
 * in Annex I of the directive. It is kept here so the table is complete.
 */
import { isIsoDate, type IsoDate } from './calendar.ts';

export type ContractNature = 'works' | 'supplies' | 'services';
export type AuthorityLevel = 'central' | 'decentralised';

export interface EuThresholdPeriod {
  /** First day of application, inclusive. */
  from: IsoDate;
  /** Last day of application, inclusive. */
  until: IsoDate;
  worksCents: number;
  suppliesServicesCentralCents: number;
  suppliesServicesDecentralisedCents: number;
  source: string;
}

const EUR = 100;

export const EU_THRESHOLDS: readonly EuThresholdPeriod[] = [
  {
    from: '2022-01-01',
    until: '2023-12-31',
    worksCents: 5_382_000 * EUR,
    suppliesServicesCentralCents: 140_000 * EUR,
    suppliesServicesDecentralisedCents: 215_000 * EUR,
    source: 'Commission delegated regulation revising the Directive 2014/24/EU thresholds for 2022-2023 (values as published by the European Commission, single-market-economy.ec.europa.eu)',
  },
  {
    from: '2024-01-01',
    until: '2025-12-31',
    worksCents: 5_538_000 * EUR,
    suppliesServicesCentralCents: 143_000 * EUR,
    suppliesServicesDecentralisedCents: 221_000 * EUR,
    source: 'Commission delegated regulation revising the Directive 2014/24/EU thresholds for 2024-2025',
  },
  {
    from: '2026-01-01',
    until: '2027-12-31',
    worksCents: 5_404_000 * EUR,
    suppliesServicesCentralCents: 140_000 * EUR,
    suppliesServicesDecentralisedCents: 216_000 * EUR,
    source: 'Commission delegated regulation revising the Directive 2014/24/EU thresholds for 2026-2027 (values given in DESIGN §4)',
  },
];

/** The threshold period in force on `date`, or undefined outside the table (add the next period when it is published). */
export function euThresholdPeriod(date: IsoDate): EuThresholdPeriod | undefined {
  if (!isIsoDate(date)) throw new RangeError(`Not a calendar date (YYYY-MM-DD): ${String(date)}`);
  return EU_THRESHOLDS.find((period) => period.from <= date && date <= period.until);
}

export function euThresholdCents(nature: ContractNature, date: IsoDate, level: AuthorityLevel = 'decentralised'): number | undefined {
  const period = euThresholdPeriod(date);
  if (period === undefined) return undefined;
  if (nature === 'works') return period.worksCents;
  return level === 'central' ? period.suppliesServicesCentralCents : period.suppliesServicesDecentralisedCents;
}

/**
 * Whether an estimated value (euro cents excl. VAT) reaches the European
 * threshold on `date`; undefined when no period of the table covers the date.
 */
export function aboveEuThreshold(
  valueCents: number,
  nature: ContractNature,
  date: IsoDate,
  level: AuthorityLevel = 'decentralised',
): boolean | undefined {
  const threshold = euThresholdCents(nature, date, level);
  return threshold === undefined ? undefined : valueCents >= threshold;
}

/**
 * When a procurement decision of a commune must be sent to the tutelle
 * authority in full ("transmis d'office") rather than only listed.
 * PLACEHOLDER, not confirmed by BPL: the €175,000 excl. VAT amount comes from
 * an older BPL web page describing the arrêté du Gouvernement du 16 juillet
 * 1998 (transmission des actes des autorités communales); BPL announced that
 * the arrêté of 27 June 2024 revised the procurement rules of that list
 * ("érosion monétaire"), so the amount and stages must be confirmed.
 */
export const TUTELLE_TRANSMISSION_RULE = {
  minimumCents: 175_000 * EUR,
  stages: ['launch', 'selection', 'award'] as readonly string[],
  verified: false,
  source:
    "Arrêté du Gouvernement de la Région de Bruxelles-Capitale du 16 juillet 1998 relatif à la transmission au Gouvernement des actes des autorités communales (as summarised on BPL's website; amended on 27 June 2024: to confirm)",
} as const;

/** Placeholder rule (see TUTELLE_TRANSMISSION_RULE): whether the stage and value call for a full transmission. */
export function tutelleTransmissionMandatory(stage: string, valueCents: number): boolean {
  return TUTELLE_TRANSMISSION_RULE.stages.includes(stage) && valueCents >= TUTELLE_TRANSMISSION_RULE.minimumCents;
}
