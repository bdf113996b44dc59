/**
 * Two nodes, one PostgreSQL: two complete apps (two `createServices` on two
 * separate connection pools to the same fresh database, one S3 bucket)
 * take 50 concurrent submissions spread over both (with audit checkpoints
 * made on both in the middle of it), then concurrent downloads of every
 * envelope (one recipient on both nodes at once), then concurrent
 * acknowledgements by both recipients on different nodes. Afterwards the audit chain
 * verifies (no two entries share a predecessor) and every envelope's
 * evidence is one unforked chain of valid receipts with exactly the events
 * that happened. PGlite is one node only: there the same load runs through one app.
 *
 * End-to-end encryption is enforced (DESIGN §4c): the three mailboxes
 * publish keys (on node A; drafts made on node B pin them too), every file is
 * real OpenPGP ciphertext for the keys its draft pins, and every download is
 * compared with that ciphertext and decrypted with the downloading
 * recipient's key.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { verifyReceipt } from '../../src/crypto/cms.ts';
import { rowsOf, openDatabase } from '../../src/db/client.ts';
import { evidenceHash } from '../../src/domain/evidence.ts';
import { createS3BlobStore } from '../../src/storage/s3-blob-store.ts';
import { forEachBackend, startApp, testPki, type TestApp } from '../helpers/backends.ts';
import { decryptWith, draftKeys, encryptFor, publishKeys } from '../helpers/e2e.ts';

const API = '/api/v1';
const ENVELOPES = 50;

function multipart(filename: string, data: Buffer) {
  const boundary = `----bx${randomBytes(8).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename}"\r\ncontent-type: application/octet-stream\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

forEachBackend(t, `${ENVELOPES} concurrent submissions over two nodes`, async (t, parts) => {
  const a = await parts();
  // PostgreSQL: two nodes (two apps, two pools) on one database. PGlite is one node only:
  // there the same concurrent load runs through a single app.
  let nodeA: TestApp;
  let nodeB: TestApp;
  if (a.url !== undefined && a.s3 !== undefined) {
    const databaseB = await openDatabase({ url: a.url });
    t.teardown(() => databaseB.close());
    const blobStoreB = createS3BlobStore(a.s3);
    t.teardown(() => blobStoreB.close());
    nodeA = await startApp(t, a);
    nodeB = await startApp(t, { ...a, database: databaseB, blobStore: blobStoreB });
    t.not(nodeA.services.database.db, nodeB.services.database.db, 'two pools');
  } else {
    nodeA = await startApp(t, a);
    nodeB = nodeA;
  }
  const node = (i: number): TestApp => (i % 2 === 0 ? nodeA : nodeB);

  const ok = async (res: Promise<{ statusCode: number; body: string }>, what: string) => {
    const answer = await res;
    if (answer.statusCode >= 300) throw new Error(`${what}: ${answer.statusCode} ${answer.body}`);
    return JSON.parse(answer.body);
  };
  for (const id of ['ixelles', 'uccle', 'evere']) {
    await ok(nodeA.call('POST', `${API}/entities`, { body: { id, kind: 'commune', name: { fr: id, nl: id } } }), 'entity');
    await ok(nodeB.call('POST', `${API}/entities/${id}/mailboxes`, { body: { name: 'secretariat' } }), 'mailbox');
  }
  const member = async (name: string, mailbox: string) => {
    const p = await ok(nodeA.call('POST', `${API}/principals`, { body: { name, kind: 'machine', memberships: [{ mailbox, roles: ['read', 'send'] }] } }), 'principal');
    return (await ok(nodeB.call('POST', `${API}/principals/${p.id}/tokens`, { body: {} }), 'token')).token as string;
  };
  const sender = await member('ixelles-bo', 'secretariat@ixelles');
  const uccle = await member('uccle-bo', 'secretariat@uccle');
  const evere = await member('evere-bo', 'secretariat@evere');
  // A draft needs a key for each recipient and for its sender.
  const keys = await publishKeys(nodeA, ['secretariat@ixelles', 'secretariat@uccle', 'secretariat@evere']);

  // Drafts and their files, spread over both nodes.
  const indexes = Array.from({ length: ENVELOPES }, (_, i) => i);
  const drafts = await Promise.all(
    indexes.map((i) =>
      ok(
        node(i).call('POST', `${API}/envelopes`, {
          token: sender,
          body: { type: 'general.letter', from: 'secretariat@ixelles', to: ['secretariat@uccle', 'secretariat@evere'], metadata: { subject: `Letter ${i}` } },
        }),
        'draft',
      ),
    ),
  );
  const pins = ['secretariat@uccle', 'secretariat@evere', 'secretariat@ixelles'].map((a) => `${a} ${keys.get(a)!.fingerprint}`);
  t.same(
    drafts.map((d) => d.encryptionKeys.map((k: { mailbox: string; fingerprint: string }) => `${k.mailbox} ${k.fingerprint}`)),
    indexes.map(() => pins),
    'the drafts made on either node pin the keys published on node A',
  );
  const plaintexts = indexes.map(() => randomBytes(2048));
  // What is uploaded and must come back: ciphertext for the keys each draft pins.
  const contents = await Promise.all(indexes.map((i) => encryptFor(draftKeys(drafts[i]), plaintexts[i]!)));
  const fileIds = await Promise.all(
    indexes.map(async (i) => {
      const form = multipart(`letter-${i}.pdf.gpg`, contents[i]!);
      const uploaded = await ok(node(i + 1).call('POST', `${API}/envelopes/${drafts[i].id}/files`, { token: sender, body: form.body, headers: form.headers }), 'upload');
      return uploaded.files[0].id as string;
    }),
  );

  await t.test('50 submissions at once, half on each node, with checkpoints made meanwhile on both', async (t) => {
    const submits = indexes.map((i) => node(i).call('POST', `${API}/envelopes/${drafts[i].id}/submit`, { token: sender }));
    const checkpoints = [0, 1, 2, 3].map((i) => node(i).call('POST', `${API}/audit/checkpoints`));
    const answers = await Promise.all(submits);
    t.same(answers.map((r) => r.statusCode), indexes.map(() => 200), 'every submission accepted');
    t.same((await Promise.all(checkpoints)).map((r) => r.statusCode), [201, 201, 201, 201]);
    t.ok(answers.every((r) => JSON.parse(r.body).receipt.eventType === 'SubmissionAcceptance'));
  });

  await t.test('then every envelope downloaded by both recipients, by one of them on both nodes at once', async (t) => {
    const work = indexes.flatMap((i) => [
      nodeA.call('GET', `${API}/envelopes/${drafts[i].id}/files/${fileIds[i]}`, { token: uccle }),
      nodeB.call('GET', `${API}/envelopes/${drafts[i].id}/files/${fileIds[i]}`, { token: uccle }),
      node(i).call('GET', `${API}/envelopes/${drafts[i].id}/files/${fileIds[i]}`, { token: evere }),
    ]);
    const answers = await Promise.all(work);
    t.ok(answers.every((r) => r.statusCode === 200), `all answered 200 (${[...new Set(answers.map((r) => r.statusCode))].join(', ')})`);
    t.ok(
      answers.every((r, k) => r.rawPayload.equals(contents[Math.floor(k / 3)]!)),
      'both nodes served the stored bytes (the ciphertext uploaded)',
    );
    // Each answer decrypts, with the key of the recipient that downloaded it, into the original plaintext.
    const readers = [keys.get('secretariat@uccle')!, keys.get('secretariat@uccle')!, keys.get('secretariat@evere')!];
    const undecrypted: number[] = [];
    for (const [k, r] of answers.entries()) {
      const plain = await decryptWith(readers[k % 3]!, r.rawPayload).catch(() => null);
      if (plain === null || !plain.equals(plaintexts[Math.floor(k / 3)]!)) undecrypted.push(k);
    }
    t.same(undecrypted, [], `the ${answers.length} downloads decrypt into the original plaintexts with the recipients' keys`);
  });

  await t.test('then every envelope acknowledged by both recipients at once, on different nodes', async (t) => {
    const work = indexes.flatMap((i) => [
      node(i).call('POST', `${API}/envelopes/${drafts[i].id}/acknowledge`, { token: uccle, body: {} }),
      node(i + 1).call('POST', `${API}/envelopes/${drafts[i].id}/acknowledge`, { token: evere, body: {} }),
    ]);
    const answers = await Promise.all(work);
    t.ok(answers.every((r) => r.statusCode === 200), `all answered 200 (${[...new Set(answers.map((r) => r.statusCode))].join(', ')})`);
  });

  await t.test('the audit chain is intact: it verifies and never forks', async (t) => {
    for (const [name, n] of [['node A', nodeA], ['node B', nodeB]] as const) {
      const verdict = JSON.parse((await n.call('GET', `${API}/audit/verify`)).body);
      t.match(verdict, { valid: true }, `${name}: ${JSON.stringify(verdict.firstBroken ?? null)}`);
      t.equal(verdict.checkpoints?.[0]?.valid, true, `${name}: the latest checkpoint verifies`);
    }
    const db = nodeA.services.database.db;
    const forks = rowsOf<{ n: number }>(await db.execute(sql`SELECT count(*)::int AS n FROM (SELECT prev_hash FROM audit_events GROUP BY prev_hash HAVING count(*) > 1) f`));
    t.equal(forks[0]?.n, 0, 'no two entries share a predecessor');
    const actions = rowsOf<{ action: string; n: number }>(await db.execute(sql`SELECT action, count(*)::int AS n FROM audit_events GROUP BY action`));
    const count = (action: string) => actions.find((r) => r.action === action)?.n ?? 0;
    t.equal(count('audit.checkpoint'), 4);
    t.ok(actions.some((r) => /submit/.test(r.action) && r.n === ENVELOPES), `one submission entry per envelope (${JSON.stringify(actions)})`);
  });

  await t.test('every envelope’s evidence is one chain of valid receipts, with each event exactly once', async (t) => {
    const { caCertPem } = await testPki();
    const problems: string[] = [];
    const outOfOrder: string[] = [];
    const timeTravel: string[] = [];
    let receipts = 0;
    for (const i of indexes) {
      const id = drafts[i].id as string;
      const evidence = await nodeB.services.envelopeRepository.listEvidence(id);
      receipts += evidence.length;
      // Follow the links from the first receipt: every receipt must be reached exactly once.
      const byPrev = new Map<string | null, typeof evidence>();
      for (const e of evidence) byPrev.set(e.prevHash, [...(byPrev.get(e.prevHash) ?? []), e]);
      const chain: typeof evidence = [];
      let prev: string | null = null;
      for (;;) {
        const next = byPrev.get(prev) ?? [];
        if (next.length > 1) {
          const described = (e: (typeof evidence)[number]) => `${e.eventType}${e.recipient ? `:${e.recipient}` : ''}@${e.eventTime.toISOString()}`;
          const after = prev === null ? 'the start' : described(chain.at(-1)!);
          problems.push(`${id}: ${next.map(described).join(' and ')} both follow ${after} (fork)`);
        }
        if (next.length === 0) break;
        chain.push(next[0]!);
        prev = evidenceHash(next[0]!.canonical);
      }
      if (chain.length !== evidence.length) problems.push(`${id}: ${evidence.length - chain.length} receipts are off the chain`);
      for (const e of evidence) {
        const body = JSON.parse(e.canonical.toString('utf8'));
        if (body.previousEvidenceHash !== e.prevHash) problems.push(`${id}: ${e.id} signs another predecessor than the one stored`);
        const verdict = verifyReceipt({ content: e.canonical, signature: e.signature, caCertPem });
        if (!verdict.valid) problems.push(`${id}: ${e.id} does not verify: ${verdict.reason}`);
      }
      const events = evidence.map((e) => `${e.eventType}${e.recipient ? `:${e.recipient}` : ''}`).sort();
      const expected = [
        'ConsignmentAcceptance:secretariat@evere',
        'ConsignmentAcceptance:secretariat@uccle',
        'ContentConsignment:secretariat@evere',
        'ContentConsignment:secretariat@uccle',
        'ContentHandover:secretariat@evere',
        'ContentHandover:secretariat@uccle', // one, although uccle downloaded on both nodes at once
        'SubmissionAcceptance',
      ];
      if (JSON.stringify(events) !== JSON.stringify(expected)) problems.push(`${id}: events ${JSON.stringify(events)}`);
      const listed = evidence.map((e) => e.id);
      if (JSON.stringify(listed) !== JSON.stringify(chain.map((e) => e.id))) outOfOrder.push(id);
      for (let k = 1; k < chain.length; k++) {
        if (chain[k]!.eventTime < chain[k - 1]!.eventTime) timeTravel.push(`${id}: ${chain[k]!.eventType} at ${chain[k]!.eventTime.toISOString()} follows ${chain[k - 1]!.eventType} at ${chain[k - 1]!.eventTime.toISOString()}`);
      }
    }
    t.same(problems, [], `${receipts} receipts over ${ENVELOPES} envelopes`);
    t.same(outOfOrder, [], 'receipts are listed in chain order');
    t.same(timeTravel, [], 'along each chain, event times never go backwards');
  });
});
