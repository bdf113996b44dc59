/** `bxchange seed brussels`: the Brussels directory, directly in the database (like `migrate`). */
import { loadConfig } from '../config.ts';
import { CliError, EXIT, type Command } from './common.ts';

export const seedCommands: Record<string, Command> = {
  brussels: {
    args: [],
    summary: 'create the 19 communes, 19 CPAS, 6 police zones and BPL with their mailboxes (idempotent)',
    details:
      'Opens the database directly: DATABASE_URL, or the embedded PGlite in BXCHANGE_DATA_DIR/db (server stopped).\n' +
      'Existing entities and mailboxes are kept as they are. No enterprise number is seeded (none verified).\n' +
      'Prints {"entitiesCreated", "entitiesKept", "mailboxesCreated", "mailboxesKept"}.',
    options: {},
    async run(ctx) {
      const config = loadConfig(ctx.io.env);
      const { openDatabaseFor } = await import('../services.ts');
      const { createDirectoryRepository } = await import('../db/directory-repository.ts');
      const { seedBrussels } = await import('../domain/seed.ts');
      const database = await openDatabaseFor(config);
      try {
        if (database.kind === 'pglite') await database.migrate();
        const { applied, known } = await database.migrationStatus();
        if (applied < known) {
          throw new CliError(EXIT.usage, [`bxchange: the database schema is behind (${applied}/${known} migrations): run "bxchange migrate" first`]);
        }
        const result = await seedBrussels(createDirectoryRepository(database.db));
        await ctx.out(`${JSON.stringify(result, null, 2)}\n`);
      } finally {
        await database.close().catch(() => {});
      }
    },
  },
};
