/**
 * The directory seed: 19 communes, their 19 CPAS, 6 police zones and BPL,
 * in an order that satisfies every parent reference, each with its
 * secretariat, BPL with its service mailboxes, and no invented enterprise
 * number.
 */
import t from 'tap';
import { BPL_MAILBOXES, COMMUNES, POLICE_ZONES, seedPlan } from '../../src/domain/brussels-directory.ts';
import { MAILBOX_ADDRESS, SLUG } from '../../src/domain/ids.ts';

const plan = seedPlan();
const byKind = (kind: string) => plan.entities.filter((e) => e.kind === kind);

t.test('19 communes, 19 CPAS, 6 police zones and BPL, with unique slug ids', async (t) => {
  t.equal(plan.entities.length, 19 + 19 + 6 + 1);
  t.equal(byKind('commune').length, 19);
  t.equal(byKind('cpas').length, 19);
  t.equal(byKind('police_zone').length, 6);
  t.same(byKind('region').map((e) => e.id), ['bpl']);
  const ids = plan.entities.map((e) => e.id);
  t.equal(new Set(ids).size, ids.length, 'unique ids');
  t.ok(ids.every((id) => SLUG.test(id)), 'every id is a slug');
  t.same(byKind('police_zone').map((e) => e.id), ['zp-5339', 'zp-5340', 'zp-5341', 'zp-5342', 'zp-5343', 'zp-5344']);
  t.ok(plan.entities.every((e) => e.enterpriseNumber === null), 'no unverified enterprise number');
});

t.test('the communes carry the NIS codes 21001-21019 and their official names', async (t) => {
  const nis = byKind('commune').map((e) => e.nisCode).sort();
  t.same(nis, Array.from({ length: 19 }, (_, i) => String(21001 + i)));
  const ixelles = plan.entities.find((e) => e.id === 'ixelles')!;
  t.same(ixelles.name, { fr: 'Ixelles', nl: 'Elsene' });
  t.same(plan.entities.find((e) => e.nisCode === '21004')!.name, { fr: 'Bruxelles', nl: 'Brussel' });
  t.same(plan.entities.find((e) => e.nisCode === '21019')!.name, { fr: 'Woluwe-Saint-Pierre', nl: 'Sint-Pieters-Woluwe' });
  t.ok(plan.entities.filter((e) => e.kind !== 'commune').every((e) => e.nisCode === null), 'NIS codes only for communes');
});

t.test('each CPAS is linked to its commune, which is created first', async (t) => {
  const position = new Map(plan.entities.map((e, i) => [e.id, i]));
  for (const entity of plan.entities) {
    if (entity.parent !== null) t.ok(position.get(entity.parent)! < position.get(entity.id)!, `${entity.parent} before ${entity.id}`);
  }
  for (const commune of COMMUNES) {
    const cpas = plan.entities.find((e) => e.id === `cpas-${commune.id}`);
    t.equal(cpas?.parent, commune.id, `cpas-${commune.id} → ${commune.id}`);
  }
  t.same(plan.entities.find((e) => e.id === 'cpas-ixelles')!.name, { fr: "CPAS d'Ixelles", nl: 'OCMW van Elsene' });
  t.same(plan.entities.find((e) => e.id === 'cpas-forest')!.name, { fr: 'CPAS de Forest', nl: 'OCMW van Vorst' });
});

t.test('the police zones cover every commune exactly once', async (t) => {
  const covered = POLICE_ZONES.flatMap((zone) => zone.communes).sort();
  t.same(covered, COMMUNES.map((c) => c.id).sort());
  t.same(POLICE_ZONES.find((z) => z.number === 5339)!.communes, ['bruxelles', 'ixelles']);
});

t.test('every entity has a secretariat; BPL has its service mailboxes', async (t) => {
  const addresses = plan.mailboxes.map((m) => m.address);
  t.equal(new Set(addresses).size, addresses.length, 'unique addresses');
  t.ok(plan.mailboxes.every((m) => MAILBOX_ADDRESS.test(m.address) && m.address === `${m.name}@${m.entity}`), 'well-formed addresses');
  for (const entity of plan.entities) t.ok(addresses.includes(`secretariat@${entity.id}`), `secretariat@${entity.id}`);
  for (const address of ['tutelle@bpl', 'marches@bpl', 'merite@bpl', 'datawarehouse@bpl', 'wepulse@bpl']) t.ok(addresses.includes(address), address);
  t.same(Object.values(BPL_MAILBOXES).sort(), ['datawarehouse@bpl', 'marches@bpl', 'merite@bpl', 'tutelle@bpl', 'wepulse@bpl']);
  t.equal(plan.mailboxes.length, plan.entities.length + 5);
  const entityIds = new Set(plan.entities.map((e) => e.id));
  t.ok(plan.mailboxes.every((m) => entityIds.has(m.entity)), 'every mailbox belongs to a planned entity');
});
