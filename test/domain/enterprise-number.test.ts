/**
 * KBO/BCE enterprise numbers: the check is 97 - (first eight digits mod 97),
 * a value in 1..97. The oracle below works on BigInt and searches the check
 * instead of computing it the code's way.
 *
 * Why every single-digit error is caught: changing digit k of the eight-digit
 * body by d (1 ≤ |d| ≤ 9) changes the body by d·10^j; 97 is prime and divides
 * neither d nor 10^j, so the body's residue mod 97 changes and the (unchanged)
 * check no longer fits. Changing a check digit changes the check while the
 * body — hence the one valid check — stays the same. So no single-digit
 * mutation maps to the same residue. Likewise swapping two different adjacent
 * body digits a, b changes the body by (a - b)·9·10^j, never a multiple of 97.
 */
import fc from 'fast-check';
import t from 'tap';
import { formatEnterpriseNumber, normalizeEnterpriseNumber } from '../../src/domain/enterprise-number.ts';

/** The check digits of an eight-digit body, found by search with BigInt arithmetic. */
function oracleCheck(body: string): string {
  const value = BigInt(body);
  for (let check = 1n; check <= 97n; check++) if ((value + check) % 97n === 0n) return check.toString().padStart(2, '0');
  throw new Error('unreachable');
}

/** Enterprise bodies start with 0 or 1. */
const body = fc.integer({ min: 0, max: 19_999_999 }).map((n) => String(n).padStart(8, '0'));
const valid = body.map((b) => b + oracleCheck(b));

t.test('a number with the right check digits is accepted as is', async (t) => {
  fc.assert(fc.property(valid, (number) => {
    const result = normalizeEnterpriseNumber(number);
    return result.ok && result.value === number;
  }), { numRuns: 5000 });
  t.same(normalizeEnterpriseNumber('0000000097'), { ok: true, value: '0000000097' }, 'a body divisible by 97 takes the check 97');
  t.match(normalizeEnterpriseNumber('0000000000'), { ok: false }, 'never the check 00');
  t.same(normalizeEnterpriseNumber('BE 0207.373.429'), { ok: true, value: '0207373429' }, "DESIGN's example");
});

t.test('every written form normalises to the same ten digits', async (t) => {
  fc.assert(
    fc.property(valid, fc.constantFrom('', 'BE', 'BE ', 'be'), fc.constantFrom('.', ' ', ''), (number, prefix, separator) => {
      const written = `${prefix}${number.slice(0, 4)}${separator}${number.slice(4, 7)}${separator}${number.slice(7)}`;
      const result = normalizeEnterpriseNumber(written);
      return result.ok && result.value === number;
    }),
  );
  fc.assert(
    fc.property(valid.filter((n) => n.startsWith('0')), (number) => {
      const old = normalizeEnterpriseNumber(number.slice(1)); // the 9-digit form before 2005
      return old.ok && old.value === number;
    }),
  );
  fc.assert(fc.property(valid, (number) => formatEnterpriseNumber(number).replace(/\./g, '') === number));
  t.equal(formatEnterpriseNumber('0207373429'), '0207.373.429');
});

t.test('any single-digit mutation is rejected', async (t) => {
  fc.assert(
    fc.property(valid, fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 9 }), (number, position, shift) => {
      const digit = (Number(number[position]) + shift) % 10;
      const mutated = number.slice(0, position) + digit + number.slice(position + 1);
      return !normalizeEnterpriseNumber(mutated).ok;
    }),
    { numRuns: 10_000 },
  );
  t.pass();
});

t.test('swapping two different adjacent digits is rejected', async (t) => {
  fc.assert(
    fc.property(valid, fc.integer({ min: 0, max: 8 }), (number, position) => {
      fc.pre(number[position] !== number[position + 1]);
      const swapped = number.slice(0, position) + number[position + 1] + number[position] + number.slice(position + 2);
      return !normalizeEnterpriseNumber(swapped).ok;
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

t.test('any ten-digit string is accepted exactly when the oracle says so', async (t) => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9]{10}$/), (number) => {
      const expected = /^[01]/.test(number) && number.slice(8) === oracleCheck(number.slice(0, 8));
      return normalizeEnterpriseNumber(number).ok === expected;
    }),
    { numRuns: 5000 },
  );
  t.match(normalizeEnterpriseNumber('2073734290'), { ok: false, reason: /start with 0 or 1/ }, 'establishment-unit numbers are not enterprise numbers');
  t.match(normalizeEnterpriseNumber('02073734'), { ok: false, reason: /10 digits/ });
  t.match(normalizeEnterpriseNumber('0207x373429'), { ok: false, reason: /only digits/ });
});
