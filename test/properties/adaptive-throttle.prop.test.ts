import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { adaptiveThrottle, BulkheadRejectedError, isThrottledError } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';
import { scriptedRandom } from '../helpers/scripted-random.js';

type Step =
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'call'; readonly result: 'ok' | 'refused' | 'abort' | 'local'; readonly draw: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 400 }) }),
  fc.record({
    kind: fc.constant('call' as const),
    result: fc.constantFrom('ok' as const, 'refused' as const, 'abort' as const, 'local' as const),
    draw: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  }),
  // Calls are likelier than moves of the clock, so windows fill up.
  fc.record({
    kind: fc.constant('call' as const),
    result: fc.constantFrom('ok' as const, 'refused' as const),
    draw: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  }),
);

describe('adaptiveThrottle properties', () => {
  it('rejects with exactly the SRE probability of the window’s counts, always in [0, 1), and 0 while K x accepts >= requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 100, max: 2_000 }),
        fc.integer({ min: 1, max: 20 }),
        fc.oneof(fc.constantFrom(1, 1.1, 1.5, 2, 3), fc.double({ min: 1, max: 5, noNaN: true })),
        fc.integer({ min: 0, max: 6 }),
        async (steps, windowMs, buckets, k, minRequests) => {
          const clock = new FakeClock();
          const random = scriptedRandom();
          const t = adaptiveThrottle({ clock, random, windowMs, buckets, k, minRequests });
          // The model: every counted call with its bucket (time / (windowMs / buckets), floored) and whether the
          // upstream accepted it. A bucket counts while it is one of the last `buckets` buckets.
          const bucketMs = windowMs / buckets;
          const counted: { bucket: number; accepted: boolean }[] = [];
          const counts = (): [number, number] => {
            const now = Math.floor(clock.now() / bucketMs);
            let requests = 0;
            let accepts = 0;
            for (const c of counted) {
              if (now - c.bucket < buckets) {
                requests++;
                if (c.accepted) accepts++;
              }
            }
            return [requests, accepts];
          };
          for (const s of steps) {
            if (s.kind === 'advance') {
              await clock.advance(s.ms);
              continue;
            }
            const [requests, accepts] = counts();
            const excess = requests - k * accepts;
            const expected = excess > 0 && requests >= minRequests ? excess / (requests + 1) : 0;
            expect([t.requests, t.accepts]).toEqual([requests, accepts]);
            expect(t.probability).toBe(expected);
            expect(expected >= 0 && expected < 1).toBe(true);
            if (k * accepts >= requests) expect(expected).toBe(0);

            random.push(s.draw);
            const ac = new AbortController();
            const call = t.execute(
              () => {
                if (s.result === 'ok') return 'ok';
                if (s.result === 'abort') ac.abort(new Error('caller'));
                throw s.result === 'local' ? BulkheadRejectedError.fast('b', 'full', 1, 0) : new Error('503');
              },
              { signal: ac.signal },
            );
            const outcome = await call.then(
              () => 'ok',
              (e: unknown) => e,
            );
            const bucket = Math.floor(clock.now() / bucketMs);
            if (expected > 0 && s.draw < expected) {
              expect(isThrottledError(outcome)).toBe(true);
              expect((outcome as { probability: number }).probability).toBe(expected);
              counted.push({ bucket, accepted: false });
            } else if (s.result === 'ok') counted.push({ bucket, accepted: true });
            else if (s.result === 'refused') counted.push({ bucket, accepted: false });
            // Drawn exactly when there was a probability to draw against.
            expect(random.left).toBe(expected > 0 ? 0 : 1);
            if (random.left === 1) random();
          }
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
