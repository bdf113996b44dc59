/**
 * Send folders live in the database (sftp_send_folders): a draft deleted
 * through another door takes its folder with it, and two sessions (or
 * nodes) making the same folder at once get one folder and one draft, the
 * loser a plain SFTP failure; two sessions putting envelope.json into the
 * same folder at once make one draft (the folder is claimed before the draft
 * is created). Races are provoked: a barrier holds every session after it
 * found the name free (or the folder without a draft), so both reach the
 * insert (or the claim).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config.ts';
import { startSftpServer, sftpDeps } from '../../src/sftp/server.ts';
import { createSendFolders, type SendFolder, type SendFolderRepository } from '../../src/sftp/send-folders.ts';
import { SftpError, STATUS } from '../../src/sftp/status.ts';
import { ConflictError } from '../../src/errors.ts';
import { forEachBackend, startApp, tempDir, type TestApp } from '../helpers/backends.ts';
import { publishKeys } from '../helpers/e2e.ts';
import { json } from '../helpers/problem.ts';
import { batch, ok, spawnBatch, sshKey, startDoor, type SftpUser } from './helpers.ts';

const API = '/api/v1';
const MAILBOX = 'secretariat@ixelles';
const S = `${MAILBOX}/send`;

async function seed(api: TestApp, dir: string): Promise<SftpUser & { token: string }> {
  const post = async (url: string, body: unknown) => {
    const res = await api.call('POST', url, { body });
    if (res.statusCode !== 201) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return json(res);
  };
  for (const [id, nisCode, fr, nl] of [['ixelles', '21009', 'Ixelles', 'Elsene'], ['uccle', '21016', 'Uccle', 'Ukkel']] as const) {
    await post(`${API}/entities`, { id, kind: 'commune', name: { fr, nl }, nisCode });
    await post(`${API}/entities/${id}/mailboxes`, { name: 'secretariat' });
  }
  await publishKeys(api, [MAILBOX, 'secretariat@uccle']);
  const p = await post(`${API}/principals`, { name: 'ixelles-backoffice', kind: 'machine', memberships: [{ mailbox: MAILBOX, roles: ['read', 'send'] }] });
  const keyFile = await sshKey(dir, 'ixelles-backoffice');
  await post(`${API}/principals/${p.id}/ssh-keys`, { publicKey: await readFile(`${keyFile}.pub`, 'utf8') });
  const token = (await post(`${API}/principals/${p.id}/tokens`, {})).token as string;
  return { name: 'ixelles-backoffice', keyFile, token };
}

/** The repository, with `find` of `name` held until `parties` callers have all read it (or 10 s passed). */
function barrierOn(repository: SendFolderRepository, name: string, parties = 2): SendFolderRepository {
  const waiting: Array<() => void> = [];
  let arrived = 0;
  return {
    ...repository,
    async find(mailbox, folder) {
      const found = await repository.find(mailbox, folder);
      if (folder === name && arrived < parties) {
        arrived++;
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          if (waiting.length === parties) for (const release of waiting) release();
          setTimeout(resolve, 10_000).unref();
        });
      }
      return found;
    },
  };
}

/** The repository, with `claim` of `name` held until `parties` callers have all reached it (or 10 s passed); `arrived` counts them. */
function claimBarrierOn(repository: SendFolderRepository, name: string, parties = 2): SendFolderRepository & { arrived(): number } {
  const waiting: Array<() => void> = [];
  let arrived = 0;
  return {
    ...repository,
    arrived: () => arrived,
    async claim(mailbox, folder, descriptor) {
      if (folder === name && arrived < parties) {
        arrived++;
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          if (waiting.length === parties) for (const release of waiting) release();
          setTimeout(resolve, 10_000).unref();
        });
      }
      return repository.claim(mailbox, folder, descriptor);
    },
  };
}

const listing = async (t: Parameters<Parameters<typeof forEachBackend>[2]>[0], port: number, user: SftpUser, cwd: string) =>
  (await ok(t, port, user, [`ls -1 ${S}`], cwd)).stdout
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('sftp>'))
    .map((line) => line.trim().split('/').pop()!);

await forEachBackend(t, 'SFTP send folders are rows of the database', async (t, parts) => {
  const backend = await parts();
  let now = new Date();
  const api = await startApp(t, backend, { clock: { now: () => now }, env: { BXCHANGE_DRAFT_EXPIRY_DAYS: '7' } });
  const dir = await tempDir(t, 'bx-sftp-folders-');
  const sender = await seed(api, dir);
  const door = await startDoor(t, api, dir);
  await writeFile(path.join(dir, 'envelope.json'), JSON.stringify({ type: 'general.letter', to: ['secretariat@uccle'], metadata: { subject: 'Budget 2027' } }));

  await t.test('deleting the draft over HTTP removes its send folder from the SFTP listing', async (t) => {
    await ok(t, door.port, sender, [`mkdir ${S}/budget`, `put envelope.json ${S}/budget/envelope.json`, `get ${S}/budget/draft.json draft.json`], dir);
    const draftId = JSON.parse(await readFile(path.join(dir, 'draft.json'), 'utf8')).id as string;
    t.same(await listing(t, door.port, sender, dir), ['budget'], 'listed while the draft exists');
    const deleted = await api.call('DELETE', `${API}/envelopes/${draftId}`, { token: sender.token });
    t.equal(deleted.statusCode, 204, deleted.body);
    t.same(await listing(t, door.port, sender, dir), [], 'gone from send/ with its draft');
    t.equal(await api.services.sendFolderRepository.find(MAILBOX, 'budget'), null, 'no row left');
    await ok(t, door.port, sender, [`mkdir ${S}/budget`, `rmdir ${S}/budget`], dir);
  });

  await t.test('two sessions making the same folder at once: one folder, one draft, a failure for the other', async (t) => {
    const config = loadConfig({ SFTP_PORT: '0', BXCHANGE_CERTS_DIR: path.join(dir, 'certs') }).sftp!;
    const quiet = { info() {}, warn() {}, error(obj: object, msg: string) { console.error(msg, obj); } };
    const raced = await startSftpServer({ ...config, host: '127.0.0.1' }, {
      ...sftpDeps(api.services, quiet),
      sendFolderRepository: barrierOn(api.services.sendFolderRepository, 'race'),
    });
    t.teardown(() => raced.close());
    const commands = [`mkdir ${S}/race`, `put envelope.json ${S}/race/envelope.json`];
    const results = await Promise.all([spawnBatch(raced.port, sender, commands, dir).done, spawnBatch(raced.port, sender, commands, dir).done]);
    const codes = results.map((r) => r.code).sort();
    t.same(codes, [0, 1], 'one batch succeeds, the other stops at its mkdir', { results });
    const loser = results.find((r) => r.code !== 0)!;
    t.match(loser.stderr, /remote mkdir.*race.*Failure/, 'the loser sees an SFTP failure on mkdir');
    t.same(await listing(t, door.port, sender, dir), ['race'], 'one folder');
    const outbox = json(await api.call('GET', `${API}/mailboxes/${MAILBOX}/envelopes?direction=out&status=draft`, { token: sender.token }));
    const drafts = (outbox.items as Array<{ id: string; status: string }>).filter((e) => e.status === 'draft');
    t.equal(drafts.length, 1, 'one draft');
    t.equal((await api.services.sendFolderRepository.find(MAILBOX, 'race'))?.envelopeId, drafts[0]?.id, 'the folder names it');
  });

  const draftIds = async () => {
    const outbox = json(await api.call('GET', `${API}/mailboxes/${MAILBOX}/envelopes?direction=out&status=draft&limit=100`, { token: sender.token }));
    t.equal(outbox.next, undefined, 'the outbox fits one page');
    return (outbox.items as Array<{ id: string; status: string }>).filter((e) => e.status === 'draft').map((e) => e.id);
  };
  const doorWith = async (t: Parameters<Parameters<typeof forEachBackend>[2]>[0], sendFolderRepository: SendFolderRepository) => {
    const config = loadConfig({ SFTP_PORT: '0', BXCHANGE_CERTS_DIR: path.join(dir, 'certs') }).sftp!;
    const quiet = { info() {}, warn() {}, error(obj: object, msg: string) { console.error(msg, obj); } };
    const server = await startSftpServer({ ...config, host: '127.0.0.1' }, { ...sftpDeps(api.services, quiet), sendFolderRepository });
    t.teardown(() => server.close());
    return server;
  };

  await t.test('two sessions putting envelope.json into the same folder at once: one draft, named by the folder; a failure for the other', async (t) => {
    await ok(t, door.port, sender, [`mkdir ${S}/twice`], dir);
    const before = await draftIds();
    const held = claimBarrierOn(api.services.sendFolderRepository, 'twice');
    const raced = await doorWith(t, held);
    const commands = [`put envelope.json ${S}/twice/envelope.json`];
    const results = await Promise.all([spawnBatch(raced.port, sender, commands, dir).done, spawnBatch(raced.port, sender, commands, dir).done]);
    t.equal(held.arrived(), 2, 'both sessions read the folder without a draft and went to claim it at the same time');
    t.same(results.map((r) => r.code).sort(), [0, 1], 'one put succeeds, the other fails', { results });
    const loser = results.find((r) => r.code !== 0)!;
    t.match(loser.stderr, /close remote: Failure/, 'the loser sees an SFTP failure closing its envelope.json');
    const created = (await draftIds()).filter((id) => !before.includes(id));
    t.equal(created.length, 1, 'exactly one draft was created');
    const folder = await api.services.sendFolderRepository.find(MAILBOX, 'twice');
    t.equal(folder?.envelopeId, created[0], 'the folder names it');
    t.equal(folder?.error, null, 'and carries no ERROR.json from the loser');
    const found = await api.services.envelopeRepository.find(created[0]!);
    t.equal(found?.from, MAILBOX, 'the draft is the sender mailbox\'s');
    await ok(t, door.port, sender, [`get ${S}/twice/draft.json twice-draft.json`, `rmdir ${S}/twice`], dir);
    t.equal(JSON.parse(await readFile(path.join(dir, 'twice-draft.json'), 'utf8')).id, created[0], 'draft.json shows it');
  });

  await t.test('a draft the folder cannot name any more (removed meanwhile) is deleted, not left without a folder', async (t) => {
    await ok(t, door.port, sender, [`mkdir ${S}/vanish`], dir);
    const before = await draftIds();
    const repository = api.services.sendFolderRepository;
    // Another session's rmdir lands between this session's claim and its draft's attach.
    const raced = await doorWith(t, {
      ...repository,
      async claim(mailbox, name, descriptor) {
        const claimed = await repository.claim(mailbox, name, descriptor);
        if (name === 'vanish') await repository.remove(mailbox, name);
        return claimed;
      },
    });
    const result = await batch(raced.port, sender, [`put envelope.json ${S}/vanish/envelope.json`], dir);
    t.equal(result.code, 1, 'the put fails', { result });
    t.match(result.stderr, /Failure/);
    t.same((await draftIds()).filter((id) => !before.includes(id)), [], 'no draft is left');
    t.equal(await repository.find(MAILBOX, 'vanish'), null, 'no folder either');
  });

  await t.test('a refused draft gives the claim up: ERROR.json as before, and a corrected envelope.json then makes the draft', async (t) => {
    await writeFile(path.join(dir, 'refused.json'), JSON.stringify({ type: 'general.letter', to: ['nobody@nowhere'], metadata: { subject: 'x' } }));
    const refused = await batch(door.port, sender, [`mkdir ${S}/retry`, `put refused.json ${S}/retry/envelope.json`], dir);
    t.equal(refused.code, 1, 'the put fails', { refused });
    const after = (await api.services.sendFolderRepository.find(MAILBOX, 'retry'))!;
    t.equal(after.envelopeId, null, 'no draft');
    t.equal(after.descriptor, null, 'no claim left');
    t.equal(after.error?.status, 400, 'ERROR.json has the problem');
    await ok(t, door.port, sender, [`put envelope.json ${S}/retry/envelope.json`, `get ${S}/retry/draft.json retry-draft.json`], dir);
    const folder = (await api.services.sendFolderRepository.find(MAILBOX, 'retry'))!;
    t.equal(folder.envelopeId, JSON.parse(await readFile(path.join(dir, 'retry-draft.json'), 'utf8')).id, 'the folder names the new draft');
    t.equal(folder.error, null, 'ERROR.json is cleared');
    await ok(t, door.port, sender, [`rmdir ${S}/retry`], dir);
  });

  await t.test('the store: an insert the name already has fails; a stale change of draft or state is refused', async (t) => {
    const folders = createSendFolders(api.services.sendFolderRepository);
    const fresh = (): SendFolder => ({ mailbox: MAILBOX, name: 'cas', createdAt: new Date().toISOString(), envelopeId: null, state: 'editing', descriptor: null, files: {}, receiptId: null, error: null });
    const outcomes = await Promise.allSettled([folders.put(fresh()), folders.put(fresh())]);
    t.same(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected']);
    const reason = (outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason;
    t.ok(reason instanceof SftpError && reason.status === STATUS.FAILURE, 'an SFTP failure');
    t.match(reason.message, 'send/cas exists');

    const draft = async () => {
      const res = await api.call('POST', `${API}/envelopes`, { token: sender.token, body: { type: 'general.letter', from: MAILBOX, to: ['secretariat@uccle'], metadata: { subject: 'CAS' } } });
      if (res.statusCode !== 201) throw new Error(`create: ${res.statusCode} ${res.body}`);
      return json(res).id as string;
    };
    const [first, second] = [await draft(), await draft()];
    const mine = (await folders.get(MAILBOX, 'cas'))!;
    const theirs = (await folders.get(MAILBOX, 'cas'))!;
    Object.assign(mine, { envelopeId: first, descriptor: '{"first":true}' });
    await folders.put(mine);
    Object.assign(theirs, { envelopeId: second, descriptor: '{"second":true}' });
    await t.rejects(folders.put(theirs), ConflictError, 'a session that read the folder before the other gave it a draft cannot replace it');
    t.equal((await folders.get(MAILBOX, 'cas'))!.envelopeId, first, 'the first draft stays the folder\'s');
    const twin = fresh();
    twin.name = 'cas-twin';
    twin.envelopeId = first;
    await t.rejects(folders.put(twin), 'a draft names one folder only');

    const stale = (await folders.get(MAILBOX, 'cas'))!;
    mine.error = { type: 'about:blank', title: 'Conflict', status: 409, detail: 'refused' } as SendFolder['error'];
    await folders.put(mine);
    t.equal((await folders.get(MAILBOX, 'cas'))!.error?.detail, 'refused', 'an ERROR.json alone is saved');
    stale.error = null;
    await folders.put(stale);
    t.equal((await folders.get(MAILBOX, 'cas'))!.error, null, 'and cleared, last writer wins');

    const deleted = await api.call('DELETE', `${API}/envelopes/${first}`, { token: sender.token });
    t.equal(deleted.statusCode, 204);
    t.equal(await folders.get(MAILBOX, 'cas'), null, 'the folder went with its draft');
    mine.error = null;
    await folders.put(mine);
    t.equal(await folders.get(MAILBOX, 'cas'), null, 'an ERROR.json put afterwards does not bring it back');
    Object.assign(mine, { state: 'submitted' });
    await t.rejects(folders.put(mine), ConflictError, 'a change of state after the folder is gone is a conflict');
    await api.call('DELETE', `${API}/envelopes/${second}`, { token: sender.token });
  });

  await t.test("the hygiene sweep's expired drafts take their send folders with them", async (t) => {
    await ok(t, door.port, sender, [`mkdir ${S}/stale`, `put envelope.json ${S}/stale/envelope.json`], dir);
    t.ok((await listing(t, door.port, sender, dir)).includes('stale'));
    now = new Date(now.getTime() + 8 * 24 * 3600 * 1000);
    const swept = await api.services.hygiene.sweep();
    t.ok(swept.expiredDrafts >= 1, 'the draft expired');
    t.notOk((await listing(t, door.port, sender, dir)).includes('stale'), 'its folder is gone from send/');
    t.equal(await api.services.sendFolderRepository.find(MAILBOX, 'stale'), null, 'no row left');
  });

  await t.test('nothing of the SFTP door is kept in the blob store', async (t) => {
    const keys: string[] = [];
    for await (const object of api.services.blobStore.list('')) keys.push(object.key);
    t.same(keys.filter((k) => !k.startsWith('envelopes/')), [], 'only envelope objects');
  });
});
