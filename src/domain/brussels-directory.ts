/**
 * Seed data of the directory (DESIGN §3): the 19 communes of the
 * Brussels-Capital Region, their 19 CPAS/OCMW, the 6 police zones and BPL with
 * its service mailboxes. Facts from ../shared/data/brussels-directory.md
 * (Statbel NIS codes, police-zone pages).
 *
 * ENTERPRISE NUMBERS (KBO/BCE) ARE DELIBERATELY ABSENT (null): none was checked
 * against a public source for this seed, and an invented or misremembered
 * number would be worse than none. Add one only with the source you checked.
 *
 * Police-zone Dutch names are translations of the French names of the
 * reference file and remain to be checked against the zones' own usage. The
 * zones have no end of validity yet: a federal bill (2026) would merge them
 * from late 2027; set `validUntil` once it is law.
 */
import type { CreateEntityInput } from './directory.ts';

export interface CommuneSeed {
  id: string;
  nisCode: string;
  name: { fr: string; nl: string };
}

export interface PoliceZoneSeed {
  number: number;
  name: { fr: string; nl: string };
  /** Commune ids. */
  communes: readonly string[];
}

export const COMMUNES: readonly CommuneSeed[] = [
  { id: 'anderlecht', nisCode: '21001', name: { fr: 'Anderlecht', nl: 'Anderlecht' } },
  { id: 'auderghem', nisCode: '21002', name: { fr: 'Auderghem', nl: 'Oudergem' } },
  { id: 'berchem-sainte-agathe', nisCode: '21003', name: { fr: 'Berchem-Sainte-Agathe', nl: 'Sint-Agatha-Berchem' } },
  { id: 'bruxelles', nisCode: '21004', name: { fr: 'Bruxelles', nl: 'Brussel' } },
  { id: 'etterbeek', nisCode: '21005', name: { fr: 'Etterbeek', nl: 'Etterbeek' } },
  { id: 'evere', nisCode: '21006', name: { fr: 'Evere', nl: 'Evere' } },
  { id: 'forest', nisCode: '21007', name: { fr: 'Forest', nl: 'Vorst' } },
  { id: 'ganshoren', nisCode: '21008', name: { fr: 'Ganshoren', nl: 'Ganshoren' } },
  { id: 'ixelles', nisCode: '21009', name: { fr: 'Ixelles', nl: 'Elsene' } },
  { id: 'jette', nisCode: '21010', name: { fr: 'Jette', nl: 'Jette' } },
  { id: 'koekelberg', nisCode: '21011', name: { fr: 'Koekelberg', nl: 'Koekelberg' } },
  { id: 'molenbeek-saint-jean', nisCode: '21012', name: { fr: 'Molenbeek-Saint-Jean', nl: 'Sint-Jans-Molenbeek' } },
  { id: 'saint-gilles', nisCode: '21013', name: { fr: 'Saint-Gilles', nl: 'Sint-Gillis' } },
  { id: 'saint-josse-ten-noode', nisCode: '21014', name: { fr: 'Saint-Josse-ten-Noode', nl: 'Sint-Joost-ten-Node' } },
  { id: 'schaerbeek', nisCode: '21015', name: { fr: 'Schaerbeek', nl: 'Schaarbeek' } },
  { id: 'uccle', nisCode: '21016', name: { fr: 'Uccle', nl: 'Ukkel' } },
  { id: 'watermael-boitsfort', nisCode: '21017', name: { fr: 'Watermael-Boitsfort', nl: 'Watermaal-Bosvoorde' } },
  { id: 'woluwe-saint-lambert', nisCode: '21018', name: { fr: 'Woluwe-Saint-Lambert', nl: 'Sint-Lambrechts-Woluwe' } },
  { id: 'woluwe-saint-pierre', nisCode: '21019', name: { fr: 'Woluwe-Saint-Pierre', nl: 'Sint-Pieters-Woluwe' } },
];

export const POLICE_ZONES: readonly PoliceZoneSeed[] = [
  { number: 5339, name: { fr: 'Bruxelles-Capitale/Ixelles', nl: 'Brussel-Hoofdstad/Elsene' }, communes: ['bruxelles', 'ixelles'] },
  {
    number: 5340,
    name: { fr: 'Bruxelles-Ouest', nl: 'Brussel-West' },
    communes: ['molenbeek-saint-jean', 'koekelberg', 'jette', 'ganshoren', 'berchem-sainte-agathe'],
  },
  { number: 5341, name: { fr: 'Midi', nl: 'Zuid' }, communes: ['anderlecht', 'saint-gilles', 'forest'] },
  {
    number: 5342,
    name: { fr: 'Uccle/Watermael-Boitsfort/Auderghem', nl: 'Ukkel/Watermaal-Bosvoorde/Oudergem' },
    communes: ['uccle', 'watermael-boitsfort', 'auderghem'],
  },
  { number: 5343, name: { fr: 'Montgomery', nl: 'Montgomery' }, communes: ['etterbeek', 'woluwe-saint-lambert', 'woluwe-saint-pierre'] },
  { number: 5344, name: { fr: 'Bruxelles-Nord', nl: 'Brussel-Noord' }, communes: ['schaerbeek', 'evere', 'saint-josse-ten-noode'] },
];

export const BPL_ID = 'bpl';
export const BPL_NAME = { fr: 'Bruxelles Pouvoirs locaux', nl: 'Brussel Plaatselijke Besturen' } as const;

/** Every seeded entity has one; the default correspondent of an entity. */
export const SECRETARIAT = 'secretariat';

/** BPL's service mailboxes, which the envelope types route to. */
export const BPL_MAILBOXES = {
  tutelle: `tutelle@${BPL_ID}`,
  marches: `marches@${BPL_ID}`,
  merite: `merite@${BPL_ID}`,
  datawarehouse: `datawarehouse@${BPL_ID}`,
  wepulse: `wepulse@${BPL_ID}`,
} as const;

export function secretariatOf(entityId: string): string {
  return `${SECRETARIAT}@${entityId}`;
}

export function cpasIdOf(communeId: string): string {
  return `cpas-${communeId}`;
}

export function policeZoneId(number: number): string {
  return `zp-${number}`;
}

/** "CPAS d'Ixelles" but "CPAS de Forest". */
function cpasName(commune: CommuneSeed): { fr: string; nl: string } {
  const elided = /^[AEIOUYÉ]/i.test(commune.name.fr);
  return { fr: elided ? `CPAS d'${commune.name.fr}` : `CPAS de ${commune.name.fr}`, nl: `OCMW van ${commune.name.nl}` };
}

export type EntitySeed = Required<Pick<CreateEntityInput, 'id' | 'kind' | 'name' | 'enterpriseNumber' | 'nisCode' | 'parent' | 'validFrom' | 'validUntil'>>;

export interface MailboxSeed {
  entity: string;
  name: string;
  address: string;
}

export interface SeedPlan {
  /** In dependency order: a parent always comes before the entities that name it. */
  entities: EntitySeed[];
  /** After all entities, in the entities' order. */
  mailboxes: MailboxSeed[];
}

/** The entities and mailboxes to create, in an order that satisfies every `parent` reference. */
export function seedPlan(): SeedPlan {
  const entities: EntitySeed[] = [];
  const base = { enterpriseNumber: null, validFrom: null, validUntil: null };
  entities.push({ ...base, id: BPL_ID, kind: 'region', name: { ...BPL_NAME }, nisCode: null, parent: null });
  for (const commune of COMMUNES) {
    entities.push({ ...base, id: commune.id, kind: 'commune', name: { ...commune.name }, nisCode: commune.nisCode, parent: null });
  }
  for (const commune of COMMUNES) {
    entities.push({ ...base, id: cpasIdOf(commune.id), kind: 'cpas', name: cpasName(commune), nisCode: null, parent: commune.id });
  }
  for (const zone of POLICE_ZONES) {
    entities.push({
      ...base,
      id: policeZoneId(zone.number),
      kind: 'police_zone',
      name: { fr: `Zone de police ${zone.number} ${zone.name.fr}`, nl: `Politiezone ${zone.number} ${zone.name.nl}` },
      nisCode: null,
      parent: null,
    });
  }
  const mailboxes: MailboxSeed[] = [];
  for (const entity of entities) {
    mailboxes.push({ entity: entity.id, name: SECRETARIAT, address: secretariatOf(entity.id) });
    if (entity.id === BPL_ID) {
      for (const address of Object.values(BPL_MAILBOXES)) {
        mailboxes.push({ entity: BPL_ID, name: address.slice(0, address.indexOf('@')), address });
      }
    }
  }
  return { entities, mailboxes };
}
