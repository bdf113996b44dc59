/**
 * Mailbox keys (DESIGN §4c, §5): the active OpenPGP public key senders
 * encrypt to, every key with its state, and the passphrase-locked private
 * key that members download to unlock on their own device. Rules live in
 * domain/keys.ts; this door only translates.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MAX_ARMORED_KEY_LENGTH, type MailboxKey } from '../../domain/keys.ts';
import type { Services } from '../../services.ts';
import { MailboxAddress, problemResponses } from '../schemas.ts';
import { API } from '../views.ts';

const tags = ['keys'];
const security = [{ bearer: [] }];

const Hex = (digits: number) => Type.String({ pattern: `^[0-9a-f]{${digits}}$` });
const DateTime = Type.String({ format: 'date-time' });
const ArmoredKey = Type.String({ minLength: 1, maxLength: MAX_ARMORED_KEY_LENGTH });
const KeyState = Type.Union([Type.Literal('active'), Type.Literal('retired')]);

const keyFields = {
  mailbox: Type.String(),
  fingerprint: Hex(40),
  keyId: Hex(16),
  encryptionKeyIds: Type.Array(Hex(16), { description: 'the (sub)key IDs a file encrypted for this key names in its header' }),
  state: KeyState,
  createdAt: Type.String({ format: 'date-time', description: "the OpenPGP key's creation time" }),
  expiresAt: Type.Union([DateTime, Type.Null()]),
};

const PublishedKeyView = Type.Object({
  ...keyFields,
  publishedAt: DateTime,
  hasPrivateKey: Type.Boolean(),
  refreshed: Type.Boolean({ description: 'true when the active key was published again (new expiry or subkey)' }),
  retired: Type.Union([Hex(40), Type.Null()], { description: 'the fingerprint of the key this one replaced' }),
  href: Type.String(),
});

const ActiveKeyView = Type.Object({ ...keyFields, publicKey: Type.String(), href: Type.String() });

const KeyListView = Type.Object({
  items: Type.Array(
    Type.Object({
      ...keyFields,
      publishedAt: DateTime,
      retiredAt: Type.Union([DateTime, Type.Null()]),
      hasPrivateKey: Type.Boolean(),
      publicKey: Type.String(),
    }),
  ),
});

const DepositView = Type.Object({ ...keyFields, privateKeyAt: DateTime });

const PrivateKeysView = Type.Object({
  items: Type.Array(Type.Object({ ...keyFields, privateKey: Type.String({ description: 'armored, every secret (sub)key encrypted with the passphrase' }) })),
});

const base = (k: MailboxKey) => ({
  mailbox: k.mailbox,
  fingerprint: k.fingerprint,
  keyId: k.keyId,
  encryptionKeyIds: k.encryptionKeyIds,
  state: k.state,
  createdAt: k.keyCreatedAt.toISOString(),
  expiresAt: k.expiresAt?.toISOString() ?? null,
});

const keyHref = (address: string) => `${API}/mailboxes/${address}/key`;

export default async function keys(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const domain = services.keys;
  const params = Type.Object({ address: MailboxAddress });

  app.put(
    '/mailboxes/:address/key',
    {
      schema: {
        tags,
        security,
        summary: "Publish the mailbox's OpenPGP public key (manage role); the previous key becomes retired",
        description:
          'A v4 Curve25519 key (EdDSA ed25519 + ECDH cv25519), valid now, with a user ID naming the mailbox address. ' +
          'Optionally with its passphrase-locked private key, stored in the same transaction.',
        params,
        body: Type.Object({ publicKey: ArmoredKey, privateKey: Type.Optional(ArmoredKey) }, { additionalProperties: false }),
        response: { 200: PublishedKeyView, ...problemResponses(400, 401, 403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const { address } = request.params;
      const input = request.body.privateKey === undefined ? { publicKey: request.body.publicKey } : request.body;
      const { key, retired, refreshed } = await domain.publish(request.caller, address, input);
      return {
        ...base(key),
        publishedAt: key.publishedAt.toISOString(),
        hasPrivateKey: key.privateKeyAt !== null,
        refreshed,
        retired,
        href: keyHref(address),
      };
    },
  );

  app.get(
    '/mailboxes/:address/key',
    {
      schema: {
        tags,
        security,
        summary: "The mailbox's active armored public key (any authenticated caller: senders encrypt to it)",
        params,
        response: { 200: ActiveKeyView, ...problemResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const key = await domain.activeKey(request.caller, request.params.address);
      reply.header('cache-control', 'no-cache');
      return { ...base(key), publicKey: key.publicKey, href: keyHref(key.mailbox) };
    },
  );

  app.get(
    '/mailboxes/:address/keys',
    {
      schema: {
        tags,
        security,
        summary: 'Every key of the mailbox, active and retired (members and administrators)',
        params,
        response: { 200: KeyListView, ...problemResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const list = await domain.listKeys(request.caller, request.params.address);
      return {
        items: list.map((k) => ({
          ...base(k),
          publishedAt: k.publishedAt.toISOString(),
          retiredAt: k.retiredAt?.toISOString() ?? null,
          hasPrivateKey: k.privateKeyAt !== null,
          publicKey: k.publicKey,
        })),
      };
    },
  );

  app.put(
    '/mailboxes/:address/private-key',
    {
      schema: {
        tags,
        security,
        summary: 'Deposit the passphrase-locked private key of one of the mailbox keys (manage role)',
        description: 'Refused when any secret (sub)key is not encrypted, or when it matches no key of the mailbox. The passphrase never reaches the server.',
        params,
        body: Type.Object({ privateKey: ArmoredKey }, { additionalProperties: false }),
        response: { 200: DepositView, ...problemResponses(400, 401, 403, 404, 413, 415) },
      },
    },
    async (request) => {
      const key = await domain.depositPrivateKey(request.caller, request.params.address, request.body.privateKey);
      return { ...base(key), privateKeyAt: (key.privateKeyAt ?? new Date()).toISOString() };
    },
  );

  app.get(
    '/mailboxes/:address/private-key',
    {
      schema: {
        tags,
        security,
        summary: 'The locked private keys of the mailbox, active first (read role), to unlock on your own device',
        params,
        response: { 200: PrivateKeysView, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const list = await domain.privateKeys(request.caller, request.params.address);
      reply.header('cache-control', 'no-store');
      return { items: list.map((k) => ({ ...base(k), privateKey: k.privateKey })) };
    },
  );
}
