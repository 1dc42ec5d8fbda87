// Tests written to kill mutants that survived `npm run mutation` in circuit-breaker/window.ts. The windows are
// internal; they are driven directly with exact times and counts.
import { describe, expect, it } from 'vitest';
import { ConsecutiveWindow, CountWindow, TimeWindow } from '../../../src/policies/circuit-breaker/window.js';

const rates = (failureRate: number, minimumCalls: number, slowCallRate = Number.POSITIVE_INFINITY) => ({
  failureRate,
  minimumCalls,
  slowCallRate,
});

describe('ConsecutiveWindow (mutation)', () => {
  it('a success resets the run of failures and never trips', () => {
    const w = new ConsecutiveWindow(2);
    expect(w.record(true)).toBe(false);
    expect(w.record(false)).toBe(false);
    expect(w.failures).toBe(0);
    expect(w.record(true)).toBe(false);
    expect(w.record(true)).toBe(true);
    expect(w.rates()).toEqual([2, 0]);
  });

  it('reset() and restore() set the failure count', () => {
    const w = new ConsecutiveWindow(5);
    w.record(true);
    w.reset();
    expect(w.snapshot()).toEqual({ kind: 'consecutive', failures: 0 });
    w.restore({ kind: 'consecutive', failures: 4 });
    expect(w.snapshot()).toEqual({ kind: 'consecutive', failures: 4 });
    expect(w.record(true)).toBe(true);
  });
});

describe('CountWindow (mutation)', () => {
  it('has rates 0 when empty', () => {
    expect(new CountWindow(4, rates(0.5, 1)).rates()).toEqual([0, 0]);
  });

  it('a success never trips it, even with the failure rate above the threshold', () => {
    const w = new CountWindow(4, rates(0.5, 2));
    expect(w.record(true, false)).toBe(false); // 1 call < minimumCalls
    expect(w.record(false, false)).toBe(false); // 1/2 >= 0.5, but a success does not trip
    expect(w.record(true, false)).toBe(true);
  });

  it('snapshots outcomes oldest first, before and after the ring wraps', () => {
    const w = new CountWindow(3, rates(1, 3));
    w.record(true, false);
    w.record(false, true);
    expect(w.snapshot()).toEqual({ kind: 'count', outcomes: [1, 2] });
    w.record(true, true);
    w.record(false, false);
    expect(w.snapshot()).toEqual({ kind: 'count', outcomes: [2, 3, 0] });
  });

  it('restore() decodes the failed and slow bits, and reset() empties it', () => {
    const w = new CountWindow(4, rates(1, 4));
    w.restore({ kind: 'count', outcomes: [1, 2, 3, 0] });
    expect(w.snapshot()).toEqual({ kind: 'count', outcomes: [1, 2, 3, 0] });
    expect(w.totals).toEqual({ calls: 4, failures: 2, slow: 2 });
    expect(w.rates()).toEqual([0.5, 0.5]);
    w.reset();
    expect(w.snapshot()).toEqual({ kind: 'count', outcomes: [] });
    expect(w.totals).toEqual({ calls: 0, failures: 0, slow: 0 });
  });

  it('restore() of a longer list keeps its newest outcomes', () => {
    const w = new CountWindow(2, rates(1, 2));
    w.restore({ kind: 'count', outcomes: [1, 1, 0, 2] });
    expect(w.snapshot()).toEqual({ kind: 'count', outcomes: [0, 2] });
    expect(w.totals).toEqual({ calls: 2, failures: 0, slow: 1 });
  });
});

describe('TimeWindow (mutation)', () => {
  // 100 ms in 2 buckets of 50 ms.
  it('a success never trips it, even with the failure rate above the threshold', () => {
    const w = new TimeWindow(100, 2, rates(0.5, 2));
    expect(w.record(true, false, 0)).toBe(false);
    expect(w.record(false, false, 1)).toBe(false);
    expect(w.record(true, false, 2)).toBe(true);
  });

  it('counts only the buckets of the last sizeMs', () => {
    const w = new TimeWindow(100, 2, rates(0.5, 1));
    w.record(true, false, 50); // epoch 1
    expect(w.rates(99)).toEqual([1, 0]); // epoch 1 is current
    expect(w.rates(149)).toEqual([1, 0]); // epoch 2: epoch 1 is the previous bucket
    expect(w.rates(150)).toEqual([0, 0]); // epoch 3: epoch 1 has left the window
    expect(w.totals(150)).toEqual({ calls: 0, failures: 0, slow: 0 });
    expect(w.snapshot(150)).toEqual({ kind: 'time', buckets: [] });
  });

  it('snapshots buckets oldest first with their age', () => {
    const w = new TimeWindow(30, 3, rates(1, 1));
    w.record(true, false, 25); // epoch 2, slot 2
    w.record(false, true, 35); // epoch 3, slot 0
    expect(w.snapshot(35)).toEqual({
      kind: 'time',
      buckets: [
        { ageMs: 15, calls: 1, failures: 1, slow: 0 },
        { ageMs: 5, calls: 1, failures: 0, slow: 1 },
      ],
    });
  });

  it('restore() places buckets by age, adds their counts and skips those older than the window', () => {
    const w = new TimeWindow(100, 2, rates(1, 1));
    w.record(true, false, 0);
    w.restore(
      {
        kind: 'time',
        buckets: [
          { ageMs: 40, calls: 4, failures: 1, slow: 2 },
          { ageMs: 0, calls: 2, failures: 0, slow: 1 },
          { ageMs: 100, calls: 9, failures: 9, slow: 9 }, // as old as the window: gone (and must not wipe a slot)
          { ageMs: -1, calls: 7, failures: 7, slow: 7 }, // from the future: ignored
        ],
      },
      1_000,
    );
    expect(w.snapshot(1_000)).toEqual({
      kind: 'time',
      buckets: [
        { ageMs: 50, calls: 4, failures: 1, slow: 2 },
        { ageMs: 0, calls: 2, failures: 0, slow: 1 },
      ],
    });
    expect(w.totals(1_000)).toEqual({ calls: 6, failures: 1, slow: 3 });
    w.reset();
    expect(w.totals(1_000)).toEqual({ calls: 0, failures: 0, slow: 0 });
  });
});
