/** Exact limit sequences of the algorithms, sample by sample (the policy feeds them one sample per window). */
import { describe, expect, it } from 'vitest';
import { AimdAlgorithm, Gradient2Algorithm, VegasAlgorithm } from '../../../src/policies/adaptive-limit/algorithms.js';

describe('AIMD', () => {
  it('adds 1 per success while half the limit is in use, multiplies by 0.9 (rounded down) on a drop or a slow call', () => {
    const a = new AimdAlgorithm({ initial: 30, min: 1, max: 33 }, 0.9, 5_000);
    const seq: number[] = [];
    const step = (rtt: number, inflight: number, drop: boolean) => {
      a.sample(rtt, inflight, drop);
      seq.push(a.estimate);
    };
    step(10, 15, false); // 15 x 2 >= 30: +1
    step(10, 15, false); // 15 x 2 < 31: unused, unchanged
    step(10, 16, false); // +1
    step(10, 32, false); // +1 = 33 (max)
    step(10, 33, false); // capped at 33
    step(10, 33, true); // floor(33 x 0.9) = 29
    step(5_001, 1, false); // slower than slowCallMs: a drop whatever the use, floor(29 x 0.9) = 26
    step(5_000, 13, false); // not slower: +1
    expect(seq).toEqual([31, 31, 32, 33, 33, 29, 26, 27]);
  });

  it('never goes below minLimit (Netflix defaults: 20 to 200 from 20)', () => {
    const a = new AimdAlgorithm({ initial: 20, min: 20, max: 200 }, 0.9, 5_000);
    for (let i = 0; i < 5; i++) a.sample(10, 20, true);
    expect(a.estimate).toBe(20);
  });
});

describe('Gradient2', () => {
  it('follows gradient = max(0.5, min(1, 1.5 x longRtt / rtt)), new = limit x gradient + 4, smoothed by 0.2', () => {
    const g = new Gradient2Algorithm({ initial: 20, min: 20, max: 200 }, 0.2, 4, 600, 1.5);
    const seq: number[] = [];
    const step = (rtt: number, inflight: number, drop = false) => {
      g.sample(rtt, inflight, drop);
      seq.push(g.estimate);
    };
    step(10, 20); // long 10, gradient 1: 20 x 0.8 + 24 x 0.2 = 20.8
    step(10, 20); // 20.8 x 0.8 + 24.8 x 0.2 = 21.6
    step(30, 20); // long 50/3, gradient 0.8333: 21.6 x 0.8 + (18 + 4) x 0.2 = 21.68
    step(60, 20); // long 27.5, gradient 0.6875: 17.344 + (14.905 + 4) x 0.2 = 21.125
    step(10, 5); // 5 x 2 < 21.125: the limit is not in use, unchanged (long 24 > 2 x 10: cut to 22.8)
    step(1_000, 21); // gradient floored at 0.5: 16.9 + (10.5625 + 4) x 0.2 = 19.8125, then minLimit 20
    step(10, 20, true); // a drop: x (1 - 0.2 / 2), then minLimit 20
    const expected = [20.8, 21.6, 21.68, 21.125, 21.125, 20, 20];
    for (const [i, v] of seq.entries()) expect(v).toBeCloseTo(expected[i] as number, 9);
    // Still warming up (10 samples): a plain average of the latencies that were not drops (the cut does not stay).
    expect(g.longRtt).toBeCloseTo((10 + 10 + 30 + 60 + 10 + 1_000) / 6, 9);
  });

  it('a drop multiplies by 1 - smoothing / 2 (0.9) and leaves the latency out of the average', () => {
    const g = new Gradient2Algorithm({ initial: 100, min: 1, max: 200 }, 0.2, 4, 600, 1.5);
    g.sample(10, 100, false);
    expect(g.estimate).toBeCloseTo(100.8, 9);
    g.sample(1, 100, true);
    expect(g.estimate).toBeCloseTo(90.72, 9);
    expect(g.longRtt).toBe(10);
  });

  it('after warm-up the long average is exponential over longWindow samples', () => {
    const g = new Gradient2Algorithm({ initial: 20, min: 20, max: 200 }, 0.2, 4, 9, 1.5);
    for (let i = 0; i < 10; i++) g.sample(10, 1, false);
    g.sample(20, 1, false);
    expect(g.longRtt).toBeCloseTo(10 * 0.8 + 20 * 0.2, 9); // factor 2 / (9 + 1)
  });

  it('a zero latency counts as no queueing', () => {
    const g = new Gradient2Algorithm({ initial: 20, min: 20, max: 200 }, 0.2, 4, 600, 1.5);
    g.sample(0, 20, false);
    expect(g.estimate).toBeCloseTo(20.8, 9);
  });
});

describe('Vegas', () => {
  it('grows by 6 log10 while the queue estimate is small, shrinks by log10 when it exceeds 6 log10', () => {
    const v = new VegasAlgorithm({ initial: 20, min: 1, max: 1000 }, 1, 30, () => 0.999);
    v.sample(10, 20, false); // first sample: rttNoLoad = 10
    expect(v.estimate).toBe(20);
    v.sample(10, 20, false); // queue ceil(20 x 0) = 0 <= 1: +6
    expect(v.estimate).toBe(26);
    v.sample(12, 13, false); // queue ceil(26 x (1 - 10/12)) = 5: in [3, 6], unchanged
    expect(v.estimate).toBe(26);
    v.sample(20, 13, false); // queue 13 > 6: -1
    expect(v.estimate).toBe(25);
    v.sample(11, 13, false); // queue ceil(25 / 11) = 3 >= 3: unchanged; queue < 3 would add 1
    expect(v.estimate).toBe(25);
    v.sample(10, 5, false); // 5 x 2 < 25: not in use
    expect(v.estimate).toBe(25);
    v.sample(1, 25, true); // a drop: -1, and its latency does not become rttNoLoad
    expect(v.estimate).toBe(24);
    v.sample(10, 24, false); // rttNoLoad still 10: queue 0, +6
    expect(v.estimate).toBe(30);
  });

  it('takes rttNoLoad afresh about every probeMultiplier x limit samples', () => {
    const v = new VegasAlgorithm({ initial: 2, min: 1, max: 1000 }, 1, 2, () => 0);
    // jitter 0.5: a probe when 0.5 x 2 x limit <= samples since the last one.
    v.sample(10, 2, false); // 1 sample < 0.5 x 2 x 2: the first latency becomes rttNoLoad
    v.sample(50, 2, false); // 2 samples: a probe, rttNoLoad = 50 though it is higher
    v.sample(50, 2, false); // queue 0: +6
    expect(v.estimate).toBe(8);
  });
});
