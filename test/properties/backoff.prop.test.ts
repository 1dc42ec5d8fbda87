import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Backoff,
  constant,
  type ExponentialOptions,
  exponential,
  type Jitter,
  type LinearOptions,
  linear,
} from '../../src/index.js';

const JITTERS: readonly Jitter[] = ['none', 'full', 'equal', 'decorrelated'];
const NUM_RUNS = 400;

/** The largest double below 1: what a random source may return at most. */
const BELOW_ONE = 1 - 2 ** -53;

/** Values a `Random` may return: [0, 1), with the edges drawn often. */
const randomValue = fc.oneof(
  fc.constantFrom(0, 0.9999999, BELOW_ONE, 0.5, Number.MIN_VALUE),
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
);

const attempt = fc.oneof(
  fc.constantFrom(1, 2, 3, 10, 31, 32, 33, 64, 1_023, 1_024, 1_025, 10_000),
  fc.integer({ min: 1, max: 10_000 }),
);

/** Delays a retry may pass back as "the previous delay": 0, tiny, huge, and the delays of real schedules. */
const previousMs = fc.oneof(
  fc.constantFrom(0, Number.MIN_VALUE, 1, 100, 10_000, 2_147_483_647, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE),
  fc.double({ min: 0, max: Number.MAX_VALUE, noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: 0, max: 1e6, noNaN: true }),
);

/** Non-negative finite option values, dense near the small end and with extremes. */
const nonNegative = fc.oneof(
  fc.constantFrom(0, Number.MIN_VALUE, 1, 100, 10_000, 2_147_483_647, 1e300, Number.MAX_VALUE),
  fc.double({ min: 0, max: 1e6, noNaN: true }),
  fc.double({ min: 0, max: Number.MAX_VALUE, noNaN: true, noDefaultInfinity: true }),
);
const positive = nonNegative.filter((n) => n > 0);
const factor = fc.oneof(
  fc.constantFrom(1, 1.0000001, 1.5, 2, 3, 10, 1e10, 1e300, Number.MAX_VALUE),
  fc.double({ min: 1, max: 100, noNaN: true }),
);

function expectWithinBounds(d: number, maxMs: number): void {
  expect(Number.isNaN(d)).toBe(false);
  expect(Number.isFinite(d)).toBe(true);
  expect(d).toBeGreaterThanOrEqual(0);
  expect(d).toBeLessThanOrEqual(maxMs);
}

/** Exponential options with some keys omitted (defaults apply) but always valid, plus the effective values. */
const exponentialCase = fc
  .record({
    initialMs: fc.option(positive, { nil: undefined }),
    extraMs: nonNegative,
    giveMax: fc.boolean(),
    factor: fc.option(factor, { nil: undefined }),
    jitter: fc.option(fc.constantFrom(...JITTERS), { nil: undefined }),
  })
  .map(({ initialMs, extraMs, giveMax, factor: f, jitter }) => {
    const effInitial = initialMs ?? 100;
    // maxMs is required when the default (10_000) would be below the initial delay.
    const needMax = giveMax || effInitial > 10_000;
    const maxMs = needMax ? Math.min(Number.MAX_VALUE, effInitial + extraMs) : 10_000;
    const options: ExponentialOptions = {};
    if (initialMs !== undefined) options.initialMs = initialMs;
    if (needMax) options.maxMs = maxMs;
    if (f !== undefined) options.factor = f;
    if (jitter !== undefined) options.jitter = jitter;
    return { options, initialMs: effInitial, maxMs, jitter: jitter ?? 'full' };
  });

/**
 * A valid schedule whose numbers are subnormal: initialMs = maxMs = 7 * 2^-1074. Halving a subnormal rounds, so
 * this is where floating-point slop would push a jittered delay above the cap.
 */
const SUBNORMAL = 3.5e-323;
const subnormalCase = {
  options: { initialMs: SUBNORMAL, maxMs: SUBNORMAL },
  initialMs: SUBNORMAL,
  maxMs: SUBNORMAL,
  jitter: 'full' as Jitter,
};

const linearCase = fc
  .record({
    initialMs: fc.option(nonNegative, { nil: undefined }),
    stepMs: fc.option(nonNegative, { nil: undefined }),
    extraMs: nonNegative,
    giveMax: fc.boolean(),
  })
  .map(({ initialMs, stepMs, extraMs, giveMax }) => {
    const effInitial = initialMs ?? 100;
    const needMax = giveMax || effInitial > 10_000;
    const maxMs = needMax ? Math.min(Number.MAX_VALUE, effInitial + extraMs) : 10_000;
    const options: LinearOptions = {};
    if (initialMs !== undefined) options.initialMs = initialMs;
    if (stepMs !== undefined) options.stepMs = stepMs;
    if (needMax) options.maxMs = maxMs;
    return { options, initialMs: effInitial, maxMs };
  });

describe('backoff properties', () => {
  it('constant: always its delay, finite and >= 0, whatever the attempt, previous delay and random value', () => {
    fc.assert(
      fc.property(nonNegative, attempt, previousMs, randomValue, (delayMs, n, prev, r) => {
        const b: Backoff = constant(delayMs);
        const d = b.delay(n, prev, () => r);
        expectWithinBounds(d, delayMs);
        expect(d).toBe(delayMs);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('linear: finite, never NaN, >= 0 and <= maxMs, and non-decreasing in the attempt', () => {
    fc.assert(
      fc.property(linearCase, attempt, previousMs, randomValue, (c, n, prev, r) => {
        const b = linear(c.options);
        const d = b.delay(n, prev, () => r);
        expectWithinBounds(d, c.maxMs);
        if (n > 1) expect(b.delay(n - 1, prev, () => r)).toBeLessThanOrEqual(d);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  for (const jitter of JITTERS) {
    it(`exponential '${jitter}': finite, never NaN, >= 0 and <= maxMs for every attempt, previous delay and random value`, () => {
      fc.assert(
        fc.property(exponentialCase, attempt, previousMs, randomValue, (c, n, prev, r) => {
          const b = exponential({ ...c.options, jitter });
          const d = b.delay(n, prev, () => r);
          expectWithinBounds(d, c.maxMs);
        }),
        { numRuns: NUM_RUNS, examples: [[subnormalCase, 1, 0, 0.9285714285714286]] },
      );
    });
  }

  it('exponential: the default jitter behaves like one of the four and stays within bounds', () => {
    fc.assert(
      fc.property(exponentialCase, attempt, previousMs, randomValue, (c, n, prev, r) => {
        const d = exponential(c.options).delay(n, prev, () => r);
        expectWithinBounds(d, c.maxMs);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("exponential 'none' is non-decreasing in the attempt (and reaches exactly maxMs once capped)", () => {
    fc.assert(
      fc.property(exponentialCase, fc.integer({ min: 1, max: 9_999 }), previousMs, (c, n, prev) => {
        const b = exponential({ ...c.options, jitter: 'none' });
        const never = (): number => {
          throw new Error("'none' jitter must not draw a random number");
        };
        const a = b.delay(n, prev, never);
        const next = b.delay(n + 1, prev, never);
        expect(next).toBeGreaterThanOrEqual(a);
        expect(b.delay(1, prev, never)).toBe(Math.min(c.maxMs, c.initialMs));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("exponential 'none' is non-decreasing over a whole schedule of 10_000 attempts", () => {
    fc.assert(
      fc.property(exponentialCase, (c) => {
        const b = exponential({ ...c.options, jitter: 'none' });
        let last = 0;
        for (let n = 1; n <= 10_000; n++) {
          const d = b.delay(n, last, () => 0);
          if (!(d >= last && d <= c.maxMs && Number.isFinite(d))) {
            throw new Error(`attempt ${n}: delay ${d} after ${last} (maxMs ${c.maxMs})`);
          }
          last = d;
        }
      }),
      { numRuns: 40 },
    );
  });

  it("exponential 'decorrelated' stays >= initialMs (maxMs >= initialMs always holds for valid options)", () => {
    fc.assert(
      fc.property(exponentialCase, attempt, previousMs, randomValue, (c, n, prev, r) => {
        const d = exponential({ ...c.options, jitter: 'decorrelated' }).delay(n, prev, () => r);
        expect(c.maxMs).toBeGreaterThanOrEqual(c.initialMs);
        expect(d).toBeGreaterThanOrEqual(c.initialMs);
        expect(d).toBeLessThanOrEqual(c.maxMs);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("exponential 'decorrelated' fed its own previous delays stays within [initialMs, maxMs]", () => {
    fc.assert(
      fc.property(exponentialCase, fc.array(randomValue, { minLength: 1, maxLength: 200 }), (c, draws) => {
        const b = exponential({ ...c.options, jitter: 'decorrelated' });
        let prev = 0;
        draws.forEach((r, i) => {
          const d = b.delay(i + 1, prev, () => r);
          expect(d).toBeGreaterThanOrEqual(c.initialMs);
          expect(d).toBeLessThanOrEqual(c.maxMs);
          prev = d;
        });
      }),
      { numRuns: 200 },
    );
  });

  it("exponential 'full' and 'equal' stay within [0, base] and [base/2, base] of the 'none' schedule", () => {
    fc.assert(
      fc.property(exponentialCase, attempt, randomValue, (c, n, r) => {
        const base = exponential({ ...c.options, jitter: 'none' }).delay(n, 0, () => 0);
        const full = exponential({ ...c.options, jitter: 'full' }).delay(n, 0, () => r);
        const equal = exponential({ ...c.options, jitter: 'equal' }).delay(n, 0, () => r);
        expect(full).toBeGreaterThanOrEqual(0);
        expect(full).toBeLessThanOrEqual(base);
        expect(equal).toBeGreaterThanOrEqual(base / 2);
        expect(equal).toBeLessThanOrEqual(base);
      }),
      { numRuns: NUM_RUNS, examples: [[subnormalCase, 1, 0.9285714285714286]] },
    );
  });
});
