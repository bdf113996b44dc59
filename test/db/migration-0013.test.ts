/**
 * Migration 0013 (envelopes.recipients_json) on a database that already holds
 * envelopes, through drizzle's real migrator on PGlite: the database is first
 * migrated with the migrations before 0013 only (a copy of the folder whose
 * journal stops at 0012), given an envelope with two recipients, then
 * migrated to the end. The column is filled as the triggers would write it,
 * and no envelope moves in the export feed's order (feed_xid unchanged): the
 * datawarehouse is not sent every envelope again because of a column it does
 * not serve.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import t from 'tap';
import { migrationsFolder } from '../../src/db/client.ts';
import { tempDir } from '../helpers/backends.ts';

t.test('migration 0013 fills recipients_json for existing envelopes without moving them in the export feed', async (t) => {
  const before = path.join(await tempDir(t), 'migrations');
  await cp(migrationsFolder, before, { recursive: true });
  const journalFile = path.join(before, 'meta', '_journal.json');
  const journal = JSON.parse(await readFile(journalFile, 'utf8')) as { entries: Array<{ tag: string }> };
  const at = journal.entries.findIndex((e) => e.tag.startsWith('0013_'));
  t.ok(at > 0, 'the journal lists 0013');
  journal.entries = journal.entries.slice(0, at);
  await writeFile(journalFile, JSON.stringify(journal));

  const client = new PGlite();
  t.teardown(() => client.close());
  await migrate(drizzle(client), { migrationsFolder: before });
  const column = await client.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'envelopes' AND column_name = 'recipients_json'`);
  t.equal(column.rows.length, 0, 'migrated up to 0012 only');

  await client.exec(`
    INSERT INTO entities (id, kind, name_fr, name_nl) VALUES ('uccle', 'commune', 'Uccle', 'Ukkel');
    INSERT INTO mailboxes (address, entity_id, name) VALUES ('secretariat@uccle', 'uccle', 'secretariat'), ('archives@uccle', 'uccle', 'archives');
    INSERT INTO principals (id, name, kind) VALUES ('019b0000-0000-7000-8000-000000000001', 'clerk', 'user');
    INSERT INTO envelopes (id, type, type_version, from_mailbox, status, metadata, created_by, submitted_at)
      VALUES ('019b0000-0000-7000-8000-0000000000e1', 'general.letter', '1.0', 'secretariat@uccle', 'submitted', '{}', '019b0000-0000-7000-8000-000000000001', now());
    INSERT INTO envelope_recipients (envelope_id, mailbox_address, status, delivered_at, retrieved_at)
      VALUES ('019b0000-0000-7000-8000-0000000000e1', 'secretariat@uccle', 'retrieved', '2026-03-02 09:00:00.120+00', '2026-03-02 10:00:00.5+00'),
             ('019b0000-0000-7000-8000-0000000000e1', 'archives@uccle', 'delivered', '2026-03-02 09:00:00.120+00', NULL);
  `);
  const feedBefore = (await client.query<{ feed_xid: string }>(`SELECT feed_xid::text FROM envelopes`)).rows[0]!.feed_xid;

  await migrate(drizzle(client), { migrationsFolder });
  const [row] = (await client.query<{ recipients: string; feed_xid: string }>(`SELECT recipients_json::text AS recipients, feed_xid::text FROM envelopes`)).rows;
  t.same(JSON.parse(row!.recipients), [
    { address: 'archives@uccle', status: 'delivered', deliveredAt: '2026-03-02T09:00:00.120Z', retrievedAt: null, acknowledgedAt: null },
    { address: 'secretariat@uccle', status: 'retrieved', deliveredAt: '2026-03-02T09:00:00.120Z', retrievedAt: '2026-03-02T10:00:00.500Z', acknowledgedAt: null },
  ]);
  t.equal(row!.feed_xid, feedBefore, 'the envelope keeps its place in the export feed');

  // And the feed-touch trigger is back on: a later change to the envelope moves it.
  await client.exec(`UPDATE envelopes SET metadata = '{"subject": "x"}'`);
  const feedAfter = (await client.query<{ feed_xid: string }>(`SELECT feed_xid::text FROM envelopes`)).rows[0]!.feed_xid;
  t.not(feedAfter, feedBefore, 'a later change moves it');
});
