/** What the page knows about the signed-in user, loaded once per sign-in, and cached type descriptions. */
import { allPages, api, type EnvelopeTypeDescription, type Mailbox, type Session } from './api.ts';

export interface AppState {
  session: Session;
  mailboxes: Mailbox[];
}

let state: AppState | null = null;
const typeCache = new Map<string, Promise<EnvelopeTypeDescription>>();
let typeList: Promise<EnvelopeTypeDescription[]> | null = null;

export async function loadState(session: Session): Promise<AppState> {
  const mailboxes = await allPages<Mailbox>('/api/v1/mailboxes');
  state = { session, mailboxes };
  return state;
}

export function appState(): AppState {
  if (state === null) throw new Error('not signed in');
  return state;
}

export function rolesOn(address: string): string[] {
  return appState().mailboxes.find((m) => m.address === address)?.roles ?? [];
}

export function mailboxesWith(role: string): string[] {
  return appState()
    .mailboxes.filter((m) => (m.roles ?? []).includes(role))
    .map((m) => m.address);
}

export function envelopeTypes(): Promise<EnvelopeTypeDescription[]> {
  typeList ??= api<{ items: EnvelopeTypeDescription[] }>('GET', '/api/v1/envelope-types').then((r) => r.items);
  typeList.catch(() => {
    typeList = null;
  });
  return typeList;
}

export function envelopeType(name: string): Promise<EnvelopeTypeDescription> {
  let found = typeCache.get(name);
  if (found === undefined) {
    found = api<EnvelopeTypeDescription>('GET', `/api/v1/envelope-types/${encodeURIComponent(name)}`);
    found.catch(() => typeCache.delete(name));
    typeCache.set(name, found);
  }
  return found;
}
