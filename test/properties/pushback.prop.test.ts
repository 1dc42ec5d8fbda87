/**
 * Properties of the gRPC pushback parser (`grpc-retry-pushback-ms`, gRFC A6). A server's pushback is input from the
 * network: whatever it holds, the parser never throws, and says one of three things: no pushback, do not retry,
 * or a whole number of ms from 0 to 2^31-1 that can only delay a retry.
 */
import { Metadata } from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PUSHBACK_MS, parsePushback, pushbackOf } from '../../src/integrations/grpc/interceptor.js';

const NUM_RUNS = 500;
const MAX = BigInt(MAX_PUSHBACK_MS);

/** Strings a server (or a proxy) could plausibly send, and hostile ones: near-valid numbers are drawn often. */
const nearNumber = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    ',',
    '0',
    '-0',
    '+1',
    '1.5',
    '1e3',
    '0x10',
    'Infinity',
    'NaN',
    '2147483647',
    '2147483648',
    '-2147483648',
    '9'.repeat(310),
    '1'.repeat(400),
    '300, 500',
    '300,-1',
    '\t7\t',
    '٣',
    '１２',
  ),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.integer({ min: 0, max: MAX_PUSHBACK_MS }).map(String),
  fc.stringMatching(/^[ \t]{0,2}[0-9]{1,12}[ \t]{0,2}(,[ \t]?[0-9]{1,12}){0,2}$/),
  fc.string({ unit: fc.constantFrom('0', '1', '9', '-', '+', '.', 'e', ' ', '\t', ',', 'x') }),
);

/** Any string at all, full Unicode and lone surrogates included. */
const anyString = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }));

/** What `Metadata.get` can return, and what a confused caller could pass instead. */
const anyValues = fc.oneof(
  fc.array(fc.oneof(nearNumber, anyString), { maxLength: 4 }),
  fc.array(
    fc.oneof(
      nearNumber,
      fc.uint8Array().map((b) => Buffer.from(b)),
    ),
    { maxLength: 4 },
  ),
  fc.array(fc.anything(), { maxLength: 4 }),
);

/** An independent model of the rule, in exact integer arithmetic (BigInt), not in doubles. */
function model(values: readonly unknown[]): number | 'stop' | undefined {
  if (values.length === 0) return undefined;
  let best = -1n;
  for (const value of values) {
    if (typeof value !== 'string') return 'stop';
    for (const element of value.split(',')) {
      const trimmed = element.replace(/^[ \t]+|[ \t]+$/g, '');
      if (!/^[0-9]+$/.test(trimmed)) return 'stop';
      const n = BigInt(trimmed);
      if (n > MAX) return 'stop';
      if (n > best) best = n;
    }
  }
  return Number(best);
}

function expectWellFormed(r: unknown, values: readonly unknown[]): void {
  if (values.length === 0) {
    expect(r).toBeUndefined();
    return;
  }
  if (r === 'stop') return;
  expect(typeof r).toBe('number');
  expect(Number.isInteger(r)).toBe(true);
  expect(r as number).toBeGreaterThanOrEqual(0);
  expect(r as number).toBeLessThanOrEqual(MAX_PUSHBACK_MS);
}

describe('pushback parser: properties', () => {
  it('is total: on any array of values it returns undefined (none), stop, or an integer in [0, 2^31-1]', () => {
    fc.assert(
      fc.property(anyValues, (values) => {
        let r: unknown;
        expect(() => {
          r = parsePushback(values);
        }).not.toThrow();
        expectWellFormed(r, values);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('is total on values that are not even an array (a confused caller): undefined, never a throw', () => {
    fc.assert(
      fc.property(
        fc.anything().filter((v) => !Array.isArray(v)),
        (v) => {
          expect(parsePushback(v as never)).toBeUndefined();
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('agrees with an exact model: digits only (leading zeros and HTTP spaces allowed), at most 2^31-1, the largest', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(nearNumber, anyString), { maxLength: 4 }), (values) => {
        expect(parsePushback(values)).toEqual(model(values));
      }),
      { numRuns: NUM_RUNS * 2 },
    );
  });

  it('every whole number of ms from 0 to 2^31-1 reads back exactly, with or without leading zeros', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_PUSHBACK_MS }), fc.nat({ max: 20 }), (n, zeros) => {
        expect(parsePushback([String(n)])).toBe(n);
        expect(parsePushback(['0'.repeat(zeros) + String(n)])).toBe(n);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('any negative number, and any number above 2^31-1 however long, means stop', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: -(10n ** 400n), max: -1n }),
          fc.bigInt({ min: MAX + 1n, max: 10n ** 400n }),
          fc.integer({ min: 311, max: 2_000 }).map((digits) => 10n ** BigInt(digits)),
        ),
        (n) => {
          expect(parsePushback([n.toString()])).toBe('stop');
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('never hastens: one more value never lowers the delay (it raises it, keeps it, or says stop)', () => {
    fc.assert(
      fc.property(fc.array(nearNumber, { minLength: 1, maxLength: 3 }), nearNumber, (values, extra) => {
        const before = parsePushback(values);
        const after = parsePushback([...values, extra]);
        if (before === 'stop') expect(after).toBe('stop');
        else if (after !== 'stop') expect(after as number).toBeGreaterThanOrEqual(before as number);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('pushbackOf on real grpc-js Metadata reads what the parser reads from the same values', () => {
    // Metadata accepts printable ASCII only for a key that does not end in -bin.
    const legal = fc.oneof(
      nearNumber.filter((s) => /^[ -~]*$/.test(s)),
      fc.string({ unit: fc.constantFrom(...' !,-0123456789aeE+.'.split('')) }),
    );
    fc.assert(
      fc.property(fc.array(legal, { maxLength: 4 }), (values) => {
        const metadata = new Metadata();
        for (const v of values) metadata.add('grpc-retry-pushback-ms', v);
        const r = pushbackOf(metadata);
        expect(r).toEqual(parsePushback(values));
        expectWellFormed(r, values);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
