import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRateLimitedError, type RateLimitedError, type RateLimitOptions, rateLimit } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

interface Arrival {
  /** Fake ms since the previous arrival. */
  readonly gap: number;
  readonly cost: number;
}

interface Run {
  /** Start time and cost of every admitted call, in the order they started. */
  readonly admitted: { at: number; cost: number; index: number }[];
  readonly rejected: { index: number; error: RateLimitedError }[];
  readonly pendingTimers: number;
  readonly arrivals: number[];
}

const arrivals = (maxCost: number): fc.Arbitrary<Arrival[]> =>
  fc.array(
    fc.record({
      gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400 })),
      cost: fc.integer({ min: 1, max: maxCost }),
    }),
    { minLength: 1, maxLength: 60 },
  );

/** Runs the arrivals through a limiter on a fake clock, then lets every queued call start. */
async function run(options: RateLimitOptions, list: readonly Arrival[]): Promise<Run> {
  const clock = new FakeClock();
  let cost = 1;
  const rl = rateLimit({ ...options, cost: () => cost, clock } as RateLimitOptions);
  const admitted: Run['admitted'] = [];
  const rejected: Run['rejected'] = [];
  const times: number[] = [];
  const calls: Promise<unknown>[] = [];
  for (const [index, a] of list.entries()) {
    await clock.advance(a.gap);
    cost = a.cost;
    times.push(clock.now());
    const c = a.cost;
    calls.push(
      rl
        .execute(() => {
          admitted.push({ at: clock.now(), cost: c, index });
        })
        .catch((e: unknown) => {
          if (!isRateLimitedError(e)) throw e;
          rejected.push({ index, error: e });
        }),
    );
  }
  await clock.runAll();
  await Promise.all(calls);
  return { admitted, rejected, pendingTimers: clock.pendingTimers, arrivals: times };
}

const queueing: fc.Arbitrary<{ queue: number; queueTimeoutMs?: number }> = fc.record(
  {
    queue: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10 })),
    queueTimeoutMs: fc.integer({ min: 1, max: 3_000 }),
  },
  { requiredKeys: ['queue'] },
);

describe('rateLimit properties', () => {
  it('token bucket: never more than burst + rate * t / periodMs in any interval [t0, t0 + t]', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          rate: fc.integer({ min: 1, max: 10 }),
          periodMs: fc.constantFrom(100, 250, 1_000, 3_000),
          burst: fc.integer({ min: 3, max: 8 }),
        }),
        queueing,
        arrivals(3),
        async (tb, q, list) => {
          const r = await run({ ...tb, ...q }, list);
          const { admitted } = r;
          for (let i = 0; i < admitted.length; i++) {
            let sum = 0;
            for (let j = i; j < admitted.length; j++) {
              sum += (admitted[j] as Run['admitted'][number]).cost;
              const t = (admitted[j] as Run['admitted'][number]).at - (admitted[i] as Run['admitted'][number]).at;
              // A queued call starts on a whole fake ms, up to 1 ms after its tokens exist (timers never fire early):
              // the interval's true span is up to 1 ms longer than the starts show.
              expect(sum).toBeLessThanOrEqual(tb.burst + (tb.rate * (t + 1)) / tb.periodMs + 1e-9);
            }
          }
          checkQueue(r, list, q);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('fixed window: never more than limit in a window; sliding window: never more than limit in any window of segments', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          limit: fc.integer({ min: 3, max: 8 }),
          windowMs: fc.constantFrom(100, 600, 1_000),
          segments: fc.integer({ min: 1, max: 6 }),
        }),
        queueing,
        arrivals(3),
        async (w, q, list) => {
          const options: RateLimitOptions =
            w.segments === 1
              ? { algorithm: 'fixed-window', limit: w.limit, windowMs: w.windowMs, ...q }
              : { algorithm: 'sliding-window', ...w, ...q };
          const r = await run(options, list);
          const s = w.windowMs / w.segments;
          const perSegment = new Map<number, number>();
          for (const a of r.admitted) {
            // As the limiter does: a time within a nanosecond of a boundary belongs to the next segment.
            const k = Math.floor((a.at + 1e-6) / s);
            perSegment.set(k, (perSegment.get(k) ?? 0) + a.cost);
          }
          for (const k of perSegment.keys()) {
            // Every window that contains segment k: the windows ending at k .. k + segments - 1.
            for (let end = k; end < k + w.segments; end++) {
              let sum = 0;
              for (let j = end - w.segments + 1; j <= end; j++) sum += perSegment.get(j) ?? 0;
              expect(sum).toBeLessThanOrEqual(w.limit);
            }
          }
          // Hence also: any interval shorter than windowMs - segment holds at most limit (it spans one window).
          checkQueue(r, list, q);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('retryAfterMs is exact: a rejected call of the same cost is still rejected just before it, admitted at it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc
            .record({
              rate: fc.integer({ min: 1, max: 10 }),
              periodMs: fc.constantFrom(100, 1_000),
              burst: fc.integer({ min: 3, max: 6 }),
            })
            .map((o): RateLimitOptions => o),
          fc
            .record({
              limit: fc.integer({ min: 3, max: 6 }),
              windowMs: fc.constantFrom(100, 1_000),
              segments: fc.integer({ min: 1, max: 5 }),
            })
            .map((o): RateLimitOptions => ({ algorithm: 'sliding-window', ...o })),
        ),
        arrivals(3),
        fc.integer({ min: 1, max: 3 }),
        async (options, list, probeCost) => {
          const clock = new FakeClock();
          let cost = 1;
          const rl = rateLimit({ ...options, cost: () => cost, clock } as RateLimitOptions);
          for (const a of list) {
            await clock.advance(a.gap);
            cost = a.cost;
            await rl.execute(() => {}).catch(() => {});
          }
          cost = probeCost;
          // Fill up until a rejection, then probe around its retryAfterMs.
          let e: unknown;
          for (let i = 0; i < 10 && e === undefined; i++)
            e = await rl
              .execute(() => {})
              .then(
                () => undefined,
                (x: unknown) => x,
              );
          expect(isRateLimitedError(e)).toBe(true);
          const wait = (e as RateLimitedError).retryAfterMs;
          expect(wait).toBeGreaterThan(0);
          if (wait > 1e-3) {
            await clock.advance(wait - 1e-3);
            const early = await rl
              .execute(() => {})
              .then(
                () => 'admitted',
                (x: unknown) => x,
              );
            expect(isRateLimitedError(early)).toBe(true);
            await clock.advance(1e-3);
          } else {
            await clock.advance(wait);
          }
          await expect(rl.execute(() => 'admitted')).resolves.toBe('admitted');
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });
});

/** Queue rules: FIFO starts, no call waits longer than queueTimeoutMs, no timer left once drained. */
function checkQueue(r: Run, list: readonly Arrival[], q: { queue: number; queueTimeoutMs?: number }): void {
  expect(r.pendingTimers).toBe(0);
  expect(r.admitted.length + r.rejected.length).toBe(list.length);
  const order = r.admitted.map((a) => a.index);
  expect(order).toEqual([...order].sort((a, b) => a - b));
  for (const a of r.admitted) {
    const waited = a.at - (r.arrivals[a.index] as number);
    if (q.queue === 0) expect(waited).toBe(0);
    if (q.queueTimeoutMs !== undefined) expect(waited).toBeLessThanOrEqual(q.queueTimeoutMs);
  }
  for (const { error } of r.rejected) {
    expect(error.retryAfterMs).toBeGreaterThan(0);
    if (error.reason === 'queue_timeout') expect(error.retryAfterMs).toBeGreaterThan(q.queueTimeoutMs as number);
  }
}
