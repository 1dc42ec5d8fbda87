// Second round of tests killing mutants that survived `npm run mutation` in circuit-breaker/window.ts: a bucket
// stamped later than the time asked about (a clock read out of order) is not counted nor snapshotted.
import { describe, expect, it } from 'vitest';
import { TimeWindow } from '../../../src/policies/circuit-breaker/window.js';

describe('TimeWindow (mutation, round 2)', () => {
  it('ignores buckets from after `now`', () => {
    // 100 ms in 2 buckets of 50 ms; a call recorded at 500 ms (epoch 10, slot 0), then read at 100 ms (epoch 2).
    const w = new TimeWindow(100, 2, { failureRate: 0.5, minimumCalls: 1, slowCallRate: Number.POSITIVE_INFINITY });
    w.record(true, false, 500);
    expect(w.totals(100)).toEqual({ calls: 0, failures: 0, slow: 0 });
    expect(w.snapshot(100)).toEqual({ kind: 'time', buckets: [] });
    expect(w.totals(500)).toEqual({ calls: 1, failures: 1, slow: 0 });
  });
});
