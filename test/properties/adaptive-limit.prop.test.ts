/**
 * Adaptive limit properties: whatever the samples, the limit stays in [minLimit, maxLimit]; a call is only ever
 * admitted with the calls in flight within the limit; and after dispose nothing is left (no timer, nothing queued
 * or running, every call settled).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AdaptiveLimitOptions, adaptiveLimit } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

interface Call {
  readonly at: number;
  readonly ms: number;
  readonly fails: boolean;
}

const options: fc.Arbitrary<AdaptiveLimitOptions> = fc
  .record({
    algorithm: fc.constantFrom('gradient2', 'aimd', 'vegas'),
    min: fc.integer({ min: 1, max: 6 }),
    span: fc.integer({ min: 0, max: 8 }),
    initialAt: fc.double({ min: 0, max: 1, noNaN: true }),
    windowSize: fc.integer({ min: 1, max: 4 }),
    maxWindowMs: fc.integer({ min: 0, max: 30 }),
    queue: fc.integer({ min: 0, max: 5 }),
    queueTimeoutMs: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
  })
  .map(({ algorithm, min, span, initialAt, windowSize, maxWindowMs, queue, queueTimeoutMs }) => {
    const max = min + span;
    const base = {
      minLimit: min,
      maxLimit: max,
      initialLimit: min + Math.floor(initialAt * span),
      windowSize,
      minWindowMs: 0,
      maxWindowMs,
      queue,
      ...(queueTimeoutMs === undefined ? {} : { queueTimeoutMs }),
    };
    if (algorithm === 'aimd') return { ...base, algorithm, slowCallMs: 15 };
    if (algorithm === 'vegas') return { ...base, algorithm, random: () => 0.5, probeMultiplier: 2 };
    return { ...base, algorithm, smoothing: 0.5, longWindow: 5 };
  });

const calls: fc.Arbitrary<Call[]> = fc.array(
  fc.record({ at: fc.integer({ min: 0, max: 100 }), ms: fc.integer({ min: 0, max: 40 }), fails: fc.boolean() }),
  { minLength: 1, maxLength: 60 },
);

describe('adaptiveLimit properties', () => {
  it('keeps the limit in bounds, admits within the limit, and leaves nothing behind', async () => {
    await fc.assert(
      fc.asyncProperty(options, calls, async (opts, plan) => {
        const clock = new FakeClock();
        const p = adaptiveLimit({ ...opts, clock });
        const min = opts.minLimit as number;
        const max = opts.maxLimit as number;
        const seen: number[] = [p.limit];
        p.on('adaptive_limit.changed', (e) => {
          seen.push(e.to);
          expect(e.from).not.toBe(e.to);
        });
        let overAdmitted = 0;
        const settled: Promise<unknown>[] = [];
        const sorted = [...plan].sort((a, b) => a.at - b.at);
        let now = 0;
        for (const c of sorted) {
          if (c.at > now) {
            await clock.advance(c.at - now);
            now = c.at;
          }
          settled.push(
            p
              .execute(
                () =>
                  new Promise<void>((resolve, reject) => {
                    if (p.active > p.limit) overAdmitted++;
                    clock.setTimeout(() => (c.fails ? reject(new Error('drop')) : resolve()), c.ms);
                  }),
              )
              .catch(() => undefined),
          );
          seen.push(p.limit);
        }
        await clock.advance(50);
        seen.push(p.limit);
        p.dispose();
        await clock.runAll();
        await Promise.all(settled);
        expect(overAdmitted).toBe(0);
        for (const l of seen) {
          expect(Number.isInteger(l)).toBe(true);
          expect(l).toBeGreaterThanOrEqual(min);
          expect(l).toBeLessThanOrEqual(max);
        }
        expect(p.estimate).toBeGreaterThanOrEqual(min);
        expect(p.estimate).toBeLessThanOrEqual(max);
        expect(p.active).toBe(0);
        expect(p.queued).toBe(0);
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});
