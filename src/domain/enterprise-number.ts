/**
 * Belgian enterprise numbers (KBO/BCE, "numéro d'entreprise"): ten digits,
 * the first 0 or 1, the last two a check on the first eight:
 * 97 - (first8 mod 97) == last2. Clients write them as `BE 0207.373.429`,
 * `0207.373.429`, `0207373429`, or in the old 9-digit form `207.373.429`
 * (before the leading 0 was added in 2005); we store the bare 10 digits.
 * Source: arrêté royal du 22 juin 2009, art. 2 (structure of the number).
 */

export type EnterpriseNumberResult = { ok: true; value: string } | { ok: false; reason: string };

export function normalizeEnterpriseNumber(input: string): EnterpriseNumberResult {
  let compact = input.replace(/[\s.\-/]/g, '').toUpperCase();
  if (compact.startsWith('BE')) compact = compact.slice(2);
  if (!/^\d+$/.test(compact)) return { ok: false, reason: 'must contain only digits (optionally "BE", spaces and dots)' };
  if (compact.length === 9) compact = `0${compact}`;
  if (compact.length !== 10) return { ok: false, reason: 'must have 10 digits (or 9 in the old form)' };
  if (compact[0] !== '0' && compact[0] !== '1') return { ok: false, reason: 'must start with 0 or 1' };
  const body = Number(compact.slice(0, 8));
  const check = Number(compact.slice(8));
  if (97 - (body % 97) !== check) return { ok: false, reason: 'fails the modulo-97 check' };
  return { ok: true, value: compact };
}

/** `0207373429` → `0207.373.429`, the form printed on official documents. */
export function formatEnterpriseNumber(value: string): string {
  return `${value.slice(0, 4)}.${value.slice(4, 7)}.${value.slice(7)}`;
}
