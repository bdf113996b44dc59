/**
 * The tutelle category table (DESIGN §4, `tutelle.act`): for each category of
 * act, which tutelle applies (general = suspension/annulment, approval), whether
 * the act must be transmitted in full (otherwise it only appears on the list of
 * acts, `tutelle.actList`), the number of days the authority has, whether an
 * extension is allowed, and the file roles the envelope must carry.
 *
 * EVERY ROW IS `verified: false`. The sources named are public descriptions of
 * the law (BPL's website, the AVCB/VSGB summary of the 2016 reform); none was
 * confirmed by BPL for this platform, and the rows describe communes: CPAS,
 * police zones, régies and intercommunales have their own texts (see
 * TUTELLE_FRAMEWORKS) whose lists and periods may differ. Until BPL confirms a
 * row, its values are placeholders and clients are told so (`verified` is
 * returned with the computed fields).
 */
import type { EntityKind } from './model.ts';

export const ACT_CATEGORIES = [
  'budget',
  'budgetChange',
  'accounts',
  'fiscalRegulation',
  'staffFramework',
  'staffStatute',
  'procurementDecision',
  'other',
] as const;
export type ActCategory = (typeof ACT_CATEGORIES)[number];

export type TutelleKind = 'general' | 'approval';

export interface TutelleCategory {
  category: ActCategory;
  label: { fr: string; nl: string };
  tutelleKind: TutelleKind;
  /** Transmitted in full on the authority's own motion; otherwise only listed (and sent on request). */
  mandatoryTransmission: boolean;
  /** Days the tutelle authority has from the receipt (expiry day counting). */
  days: number;
  /** Whether an `extension` decision may extend the period (once, to 45 days). */
  extensionAllowed: boolean;
  /** `fiscalYear` must be given. */
  fiscalYearRequired: boolean;
  /** A CPAS sends this category to its commune's secretariat too. */
  cpasAlsoToCommune: boolean;
  /** File roles the envelope must carry. */
  requiredRoles: readonly string[];
  legalSource: string;
  /** Confirmed by BPL. */
  verified: boolean;
  note: string;
}

const ORDONNANCE_1998 = 'Ordonnance du 14 mai 1998 organisant la tutelle administrative sur les communes de la Région de Bruxelles-Capitale';
const ARRETE_1998 = 'Arrêté du Gouvernement du 16 juillet 1998 relatif à la transmission au Gouvernement des actes des autorités communales (amended 8 September 2016 and 27 June 2024)';

export const TUTELLE_CATEGORIES: readonly TutelleCategory[] = [
  {
    category: 'budget',
    label: { fr: 'Budget', nl: 'Begroting' },
    tutelleKind: 'approval',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: true,
    cpasAlsoToCommune: true,
    requiredRoles: ['deliberation', 'budget'],
    legalSource: `${ORDONNANCE_1998}, art. 13 (as replaced by the ordonnance of 23 June 2016)`,
    verified: false,
    note: 'Approval tutelle per the public summaries of the 2016 reform; the approval period (30 days here) and the file roles are placeholders. For a CPAS, the commune council approves the budget (loi organique des CPAS du 8 juillet 1976, art. 88): to confirm.',
  },
  {
    category: 'budgetChange',
    label: { fr: 'Modification budgétaire', nl: 'Begrotingswijziging' },
    tutelleKind: 'approval',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: true,
    cpasAlsoToCommune: false,
    requiredRoles: ['deliberation', 'budgetChange'],
    legalSource: `${ORDONNANCE_1998}, art. 13 (as replaced by the ordonnance of 23 June 2016)`,
    verified: false,
    note: 'Placeholder period and roles. Whether a CPAS budget change also goes to the commune (as budget and accounts do) is to confirm; DESIGN §4 names only budget and accounts.',
  },
  {
    category: 'accounts',
    label: { fr: 'Comptes annuels', nl: 'Jaarrekening' },
    tutelleKind: 'approval',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: true,
    cpasAlsoToCommune: true,
    requiredRoles: ['deliberation', 'accounts'],
    legalSource: `${ORDONNANCE_1998}, art. 13 (as replaced by the ordonnance of 23 June 2016)`,
    verified: false,
    note: 'Approval tutelle per the public summaries of the 2016 reform; period and roles are placeholders. CPAS accounts: loi organique des CPAS, art. 89 (to confirm).',
  },
  {
    category: 'fiscalRegulation',
    label: { fr: 'Règlement fiscal', nl: 'Belastingreglement' },
    tutelleKind: 'general',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: false,
    cpasAlsoToCommune: false,
    requiredRoles: ['deliberation', 'regulation'],
    legalSource: `${ORDONNANCE_1998}, art. 9 and 13-14; ${ARRETE_1998}`,
    verified: false,
    note: 'PLACEHOLDER: whether tax regulations fall under general or approval tutelle, and whether their transmission is mandatory, is not established here.',
  },
  {
    category: 'staffFramework',
    label: { fr: 'Cadre du personnel', nl: 'Personeelsformatie' },
    tutelleKind: 'general',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: false,
    cpasAlsoToCommune: false,
    requiredRoles: ['deliberation'],
    legalSource: `${ORDONNANCE_1998}, art. 9; ${ARRETE_1998}`,
    verified: false,
    note: 'Under approval tutelle before the 2016 reform, general since (AVCB/VSGB summary). Mandatory transmission is a placeholder.',
  },
  {
    category: 'staffStatute',
    label: { fr: 'Statut administratif et pécuniaire', nl: 'Administratief en geldelijk statuut' },
    tutelleKind: 'general',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: false,
    cpasAlsoToCommune: false,
    requiredRoles: ['deliberation'],
    legalSource: `${ORDONNANCE_1998}, art. 9; ${ARRETE_1998}`,
    verified: false,
    note: 'Under approval tutelle before the 2016 reform, general since (AVCB/VSGB summary). Mandatory transmission is a placeholder.',
  },
  {
    category: 'procurementDecision',
    label: { fr: 'Décision en matière de marchés publics', nl: 'Beslissing inzake overheidsopdrachten' },
    tutelleKind: 'general',
    mandatoryTransmission: true,
    days: 30,
    extensionAllowed: true,
    fiscalYearRequired: false,
    cpasAlsoToCommune: false,
    requiredRoles: ['deliberation'],
    legalSource: `${ORDONNANCE_1998}, art. 9-12; ${ARRETE_1998}`,
    verified: false,
    note: 'BPL\'s website: 30 days from receipt, extendable once by 15 days; transmission mandatory from €175,000 excl. VAT (older text; amended in 2024), other procurement decisions only listed. The AVCB/VSGB summary of the 2016 reform describes the 15-day extension for every act under general tutelle, not only procurement: DESIGN §4 allows it for procurement only, to confirm with BPL.',
  },
  {
    category: 'other',
    label: { fr: 'Autre acte', nl: 'Andere akte' },
    tutelleKind: 'general',
    mandatoryTransmission: false,
    days: 30,
    extensionAllowed: false,
    fiscalYearRequired: false,
    cpasAlsoToCommune: false,
    requiredRoles: ['deliberation'],
    legalSource: `${ORDONNANCE_1998}, art. 9; ${ARRETE_1998}`,
    verified: false,
    note: 'Acts not transmitted on the authority\'s own motion appear on the list of acts (tutelle.actList) and are sent in full on request (transmission "onRequest").',
  },
];

/** The text organising the tutelle over each kind of sender (placeholders until BPL confirms). */
export const TUTELLE_FRAMEWORKS: Readonly<Partial<Record<EntityKind, { source: string; verified: boolean }>>> = {
  commune: { source: ORDONNANCE_1998, verified: false },
  cpas: {
    source: "Loi du 8 juillet 1976 organique des CPAS, art. 88-89 and 108-111 (tutelle by the commune and the Collège réuni of the Commission communautaire commune; ordonnance of 3 June 2003)",
    verified: false,
  },
  police_zone: { source: 'Ordonnance du 19 juillet 2001 organisant la tutelle administrative sur les zones de police pluricommunales', verified: false },
  regie: { source: 'Ordonnance du 5 juillet 2018 relative aux modes spécifiques de gestion communale et à la coopération intercommunale (art. 28, 87)', verified: false },
  intercommunale: { source: 'Ordonnance du 19 juillet 2001 organisant la tutelle administrative sur les intercommunales; ordonnance du 5 juillet 2018', verified: false },
};

const byCategory = new Map(TUTELLE_CATEGORIES.map((row) => [row.category, row]));

export function tutelleCategory(category: string): TutelleCategory | undefined {
  return byCategory.get(category as ActCategory);
}
