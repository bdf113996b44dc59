/**
 * TypeBox schemas of the HTTP contract (DESIGN §5): they validate requests,
 * shape responses and generate /openapi.json, from one source.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { MAILBOX_ADDRESS_PATTERN, PRINCIPAL_NAME_PATTERN, SLUG_PATTERN, UUID_PATTERN } from '../domain/ids.ts';
import { CAPABILITIES, ENTITY_KINDS, PRINCIPAL_KINDS, ROLES } from '../domain/model.ts';

const literals = <T extends readonly string[]>(values: T) => Type.Union(values.map((v) => Type.Literal(v)));
/**
 * `T | null`. A schema with a single primitive `type` becomes `type: [t, 'null']` rather than an
 * `anyOf`: fast-json-stringify serialises an `anyOf` by running the Ajv validator of each branch on
 * the value (a date-time format check per timestamp of every listed item), a type array by a typeof
 * test. Validation and the OpenAPI 3.1 document mean the same either way.
 */
export const nullable = <T extends TSchema>(schema: T) => {
  const { type } = schema as { type?: unknown };
  return typeof type === 'string' && type !== 'null' && type !== 'object'
    ? Type.Unsafe<Static<T> | null>({ ...schema, type: [type, 'null'] })
    : Type.Union([schema, Type.Null()]);
};

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    code: Type.String(),
    traceId: Type.Optional(Type.String()),
    issues: Type.Optional(
      Type.Array(
        Type.Object({
          in: Type.Optional(Type.String()),
          name: Type.String(),
          value: Type.Optional(Type.Unknown()),
          detail: Type.String(),
        }),
      ),
    ),
    encryptionKeys: Type.Optional(
      Type.Array(Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true }), {
        description: 'After a key rotation: the keys to encrypt for now (the draft pins them too)',
      }),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
);

export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, { $ref: 'Problem#', description: 'application/problem+json' }]));

export const EntityKind = literals(ENTITY_KINDS);
export const Role = literals(ROLES);
export const Capability = literals(CAPABILITIES);
export const Slug = Type.String({ pattern: SLUG_PATTERN, maxLength: 64 });
export const MailboxAddress = Type.String({ pattern: MAILBOX_ADDRESS_PATTERN, maxLength: 129 });
export const Uuid = Type.String({ pattern: UUID_PATTERN });
const IsoDate = Type.String({ format: 'date' });
const Name = Type.String({ minLength: 1, maxLength: 200 });

export const BilingualName = Type.Object({ fr: Name, nl: Name }, { additionalProperties: false });

export const EntityInput = Type.Object(
  {
    id: Slug,
    kind: EntityKind,
    name: BilingualName,
    enterpriseNumber: Type.Optional(nullable(Type.String({ maxLength: 20 }))),
    nisCode: Type.Optional(nullable(Type.String({ maxLength: 5 }))),
    parent: Type.Optional(nullable(Slug)),
    validFrom: Type.Optional(nullable(IsoDate)),
    validUntil: Type.Optional(nullable(IsoDate)),
  },
  { additionalProperties: false },
);

export const EntityPatchInput = Type.Object(
  {
    name: Type.Optional(BilingualName),
    enterpriseNumber: Type.Optional(nullable(Type.String({ maxLength: 20 }))),
    nisCode: Type.Optional(nullable(Type.String({ maxLength: 5 }))),
    parent: Type.Optional(nullable(Slug)),
    validFrom: Type.Optional(nullable(IsoDate)),
    validUntil: Type.Optional(nullable(IsoDate)),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const EntityView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  name: Type.Object({ fr: Type.String(), nl: Type.String() }),
  enterpriseNumber: nullable(Type.String()),
  nisCode: nullable(Type.String()),
  parent: nullable(Type.String()),
  validFrom: nullable(Type.String()),
  validUntil: nullable(Type.String()),
  href: Type.String(),
});

export const MailboxInput = Type.Object({ name: Slug }, { additionalProperties: false });

export const MailboxView = Type.Object({
  address: Type.String(),
  entity: Type.String(),
  name: Type.String(),
  roles: Type.Optional(Type.Array(Type.String())),
  href: Type.String(),
});

export const MembershipSchema = Type.Object(
  { mailbox: MailboxAddress, roles: Type.Array(Role, { minItems: 1, maxItems: 3, uniqueItems: true }) },
  { additionalProperties: false },
);

export const PrincipalInput = Type.Object(
  {
    name: Type.String({ pattern: PRINCIPAL_NAME_PATTERN }),
    kind: literals(PRINCIPAL_KINDS),
    displayName: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 200 }))),
    oidcSubject: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 255 }))),
    capabilities: Type.Optional(Type.Array(Capability, { uniqueItems: true })),
    memberships: Type.Optional(Type.Array(MembershipSchema, { maxItems: 500 })),
  },
  { additionalProperties: false },
);

export const PrincipalPatchInput = Type.Object(
  {
    displayName: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 200 }))),
    oidcSubject: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 255 }))),
    active: Type.Optional(Type.Boolean()),
    capabilities: Type.Optional(Type.Array(Capability, { uniqueItems: true })),
    memberships: Type.Optional(Type.Array(MembershipSchema, { maxItems: 500 })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const PrincipalView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  displayName: nullable(Type.String()),
  oidcSubject: nullable(Type.String()),
  capabilities: Type.Array(Type.String()),
  active: Type.Boolean(),
  memberships: Type.Array(Type.Object({ mailbox: Type.String(), roles: Type.Array(Type.String()) })),
  createdAt: Type.String({ format: 'date-time' }),
  deactivatedAt: nullable(Type.String({ format: 'date-time' })),
  href: Type.String(),
});

export const TokenInput = Type.Object(
  {
    expiresAt: Type.Optional(nullable(Type.String({ format: 'date-time' }))),
    label: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 100 }))),
  },
  { additionalProperties: false },
);

export const IssuedTokenView = Type.Object({
  id: Type.String(),
  token: Type.String({ description: 'Shown once; store it now' }),
  label: nullable(Type.String()),
  expiresAt: nullable(Type.String({ format: 'date-time' })),
});

export const TokenView = Type.Object({
  id: Type.String(),
  label: nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  expiresAt: nullable(Type.String({ format: 'date-time' })),
  revokedAt: nullable(Type.String({ format: 'date-time' })),
  lastUsedAt: nullable(Type.String({ format: 'date-time' })),
});

export const PageQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 512 })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$', description: '1 to 200, default 50' })),
  },
  { additionalProperties: false },
);

export const listOf = <T extends Parameters<typeof Type.Array>[0]>(item: T) =>
  Type.Object({ items: Type.Array(item), next: Type.Optional(Type.String()) });

// ---------------------------------------------------------------- envelopes

// Declared below; a function so the object exists when EnvelopeView is built.
function ReceiptRefLazy() {
  return Type.Object({
    id: Type.String(),
    eventType: Type.String(),
    eventTime: Type.String({ format: 'date-time' }),
    recipient: Type.Union([Type.String(), Type.Null()]),
    href: Type.String(),
  });
}

export const EnvelopeInput = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 100, description: 'Envelope type, e.g. general.letter' }),
    from: MailboxAddress,
    to: Type.Optional(Type.Array(Type.String({ maxLength: 129 }), { maxItems: 100 })),
    metadata: Type.Object({}, { additionalProperties: true, description: "Validated by the type's schema" }),
    inReplyTo: Type.Optional(nullable(Uuid)),
  },
  { additionalProperties: false },
);

export const FileView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  mediaType: Type.String(),
  role: nullable(Type.String()),
  size: nullable(Type.Integer()),
  sha256: nullable(Type.String()),
  plaintextSha256: nullable(Type.String()),
  recipientKeyIds: nullable(Type.Array(Type.String(), { description: 'Encryption (sub)key IDs named by the OpenPGP header, recorded at submit' })),
  complete: Type.Boolean(),
  href: Type.String(),
});

export const PinnedKeyView = Type.Object({
  mailbox: Type.String(),
  fingerprint: Type.String({ pattern: '^[0-9a-f]{40}$' }),
  keyId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  encryptionKeyIds: Type.Array(Type.String({ pattern: '^[0-9a-f]{16}$' })),
  publicKey: Type.String({ description: 'Armored OpenPGP public key' }),
});

export const RecipientView = Type.Object({
  address: Type.String(),
  status: Type.String(),
  deliveredAt: nullable(Type.String({ format: 'date-time' })),
  retrievedAt: nullable(Type.String({ format: 'date-time' })),
  acknowledgedAt: nullable(Type.String({ format: 'date-time' })),
});

export const EnvelopeView = Type.Object({
  id: Type.String(),
  type: Type.String(),
  typeVersion: Type.String(),
  from: Type.String(),
  status: Type.String(),
  metadata: Type.Object({}, { additionalProperties: true }),
  inReplyTo: nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  submittedAt: nullable(Type.String({ format: 'date-time' })),
  deadline: nullable(Type.String()),
  retainUntil: nullable(Type.String()),
  purgedAt: nullable(Type.String({ format: 'date-time' })),
  computed: Type.Object({}, { additionalProperties: true, description: 'Values the type derives (never supplied by the client), warnings, flags' }),
  recipients: Type.Array(RecipientView),
  encryptionKeys: Type.Array(PinnedKeyView, {
    description: "Encrypt every file for all these keys (the recipients' and the sender's), pinned when the draft was made (DESIGN §4c)",
  }),
  requiredRoles: Type.Array(Type.String(), { description: "File roles the type requires for this metadata (e.g. a tutelle act's deliberation); each needs one file with that role" }),
  files: Type.Array(FileView),
  uploadUrl: Type.Optional(Type.String()),
  receipts: Type.Optional(Type.Array(ReceiptRefLazy())),
  receipt: Type.Optional(ReceiptRefLazy()),
  href: Type.String(),
});

export const EnvelopeSummaryView = Type.Object({
  id: Type.String(),
  type: Type.String(),
  from: Type.String(),
  status: Type.String({ description: "In an inbox: the mailbox's recipient status; otherwise the envelope's" }),
  envelopeStatus: Type.String(),
  metadata: Type.Object({}, { additionalProperties: true }),
  recipients: Type.Array(RecipientView),
  createdAt: Type.String({ format: 'date-time' }),
  submittedAt: nullable(Type.String({ format: 'date-time' })),
  deadline: nullable(Type.String({ description: 'Legal deadline (YYYY-MM-DD) the type computed at submit, if any' })),
  overdue: Type.Boolean({ description: 'The deadline passed without a final decision (tutelle acts)' }),
  href: Type.String(),
});

export const ReceiptRef = Type.Object({
  id: Type.String(),
  eventType: Type.String(),
  eventTime: Type.String({ format: 'date-time' }),
  recipient: nullable(Type.String()),
  href: Type.String(),
});

export const ReceiptView = Type.Object({
  id: Type.String(),
  eventType: Type.String(),
  eventTime: Type.String({ format: 'date-time' }),
  recipient: nullable(Type.String()),
  envelopeId: Type.String(),
  href: Type.String(),
  evidenceHref: Type.String(),
  signatureHref: Type.String(),
  evidence: Type.Object({}, { additionalProperties: true }),
});
