/** `bxchange seed brussels` through the real CLI process, on the embedded database. */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { openDatabase } from '../../src/db/client.ts';
import { createDirectoryRepository } from '../../src/db/directory-repository.ts';
import { tempDir } from '../helpers/backends.ts';

t.test('seeding twice creates the Brussels directory once', async (t) => {
  const dataDir = await tempDir(t);
  const run = () =>
    spawnSync(process.execPath, ['bin/bxchange.js', 'seed', 'brussels'], { env: { PATH: process.env.PATH ?? '', BXCHANGE_DATA_DIR: dataDir }, encoding: 'utf8', timeout: 120_000 });
  const first = run();
  t.equal(first.status, 0, first.stderr);
  t.same(JSON.parse(first.stdout), { entitiesCreated: 45, entitiesKept: 0, mailboxesCreated: 50, mailboxesKept: 0 });
  const second = run();
  t.equal(second.status, 0, second.stderr);
  t.same(JSON.parse(second.stdout), { entitiesCreated: 0, entitiesKept: 45, mailboxesCreated: 0, mailboxesKept: 50 });

  const database = await openDatabase({ pgliteDir: `${dataDir}/db` });
  t.teardown(() => database.close());
  const directory = createDirectoryRepository(database.db);
  t.match(await directory.findEntity('cpas-ixelles'), { kind: 'cpas', parent: 'ixelles' });
  t.match(await directory.findEntity('woluwe-saint-pierre'), { kind: 'commune', nisCode: '21019' });
  t.ok(await directory.findMailbox('tutelle@bpl'));
  t.ok(await directory.findMailbox('secretariat@zp-5344'));
});
