import { randomBytes } from 'node:crypto';

let last: Buffer | null = null;

/**
 * UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, then random bits, so ids
 * sort by creation time, which keeps btree inserts and cursors cheap. Within
 * one process ids are strictly increasing (RFC 9562 §6.2 method 2: in the
 * same millisecond, or if the clock steps back, the previous id's random
 * part is incremented), so events sealed together sort in their order.
 */
export function uuidv7(now: number = Date.now()): string {
  let bytes: Buffer;
  const previousMs = last === null ? -1 : last.readUIntBE(0, 6);
  if (last !== null && now <= previousMs) {
    bytes = Buffer.from(last);
    // Increment the 74 random bits (bytes 6..15 minus version/variant), carrying leftwards.
    for (let i = 15; i >= 6; i--) {
      if (i === 8 || i === 6) {
        const mask = i === 8 ? 0x3f : 0x0f;
        const low = (bytes[i]! & mask) + 1;
        bytes[i] = (bytes[i]! & ~mask) | (low & mask);
        if (low <= mask) break;
      } else {
        bytes[i] = (bytes[i]! + 1) & 0xff;
        if (bytes[i] !== 0) break;
      }
    }
  } else {
    bytes = randomBytes(16);
    bytes.writeUIntBE(now, 0, 6);
    bytes[6] = 0x70 | (bytes[6]! & 0x0f);
    bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  }
  last = bytes;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/** Entity ids and mailbox names (DESIGN §3). */
export const SLUG_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$';
export const SLUG = new RegExp(SLUG_PATTERN);

/** Principal names; also the SFTP user name. */
export const PRINCIPAL_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';

/** `name@entity`, both parts slugs. */
export const MAILBOX_ADDRESS_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?@[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$';
export const MAILBOX_ADDRESS = new RegExp(MAILBOX_ADDRESS_PATTERN);

export function parseMailboxAddress(address: string): { name: string; entity: string } | null {
  if (!MAILBOX_ADDRESS.test(address)) return null;
  const at = address.indexOf('@');
  return { name: address.slice(0, at), entity: address.slice(at + 1) };
}
