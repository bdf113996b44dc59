/**
 * `bxchange seed brussels`: creates, idempotently, the Brussels directory of
 * brussels-directory.ts (communes, CPAS, police zones, BPL and its service
 * mailboxes). Existing entities and mailboxes are left as they are, so an
 * administrator's later changes (names, validity dates) are never undone.
 */
import { seedPlan } from './brussels-directory.ts';
import type { AuditInput, DirectoryRepository } from './ports.ts';

export interface SeedResult {
  entitiesCreated: number;
  entitiesKept: number;
  mailboxesCreated: number;
  mailboxesKept: number;
}

export async function seedBrussels(repository: DirectoryRepository, actor = 'seed'): Promise<SeedResult> {
  const plan = seedPlan();
  const result: SeedResult = { entitiesCreated: 0, entitiesKept: 0, mailboxesCreated: 0, mailboxesKept: 0 };
  const audit = (action: string, subject: string): AuditInput => ({ actor, action, subject, door: 'cli' });
  for (const entity of plan.entities) {
    if ((await repository.findEntity(entity.id)) !== null) {
      result.entitiesKept++;
      continue;
    }
    await repository.createEntity(entity, audit('entity.create', entity.id));
    result.entitiesCreated++;
  }
  for (const mailbox of plan.mailboxes) {
    if ((await repository.findMailbox(mailbox.address)) !== null) {
      result.mailboxesKept++;
      continue;
    }
    await repository.createMailbox(mailbox, audit('mailbox.create', mailbox.address));
    result.mailboxesCreated++;
  }
  return result;
}
