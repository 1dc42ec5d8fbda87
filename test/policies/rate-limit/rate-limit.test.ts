import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  constant,
  InvalidOptionsError,
  isLocalRejectionError,
  isRateLimitedError,
  isResilienceError,
  keyed,
  Properties,
  PropertyKey,
  pipeline,
  RateLimitedError,
  type RateLimitQueuedEvent,
  type RateLimitRejectedEvent,
  ResilienceError,
  type RetryAttemptEvent,
  rateLimit,
  retry,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';

const ok = () => 'ok';

/** Runs `n` calls at once; returns how many were admitted and the rejections. */
async function burst(p: ReturnType<typeof rateLimit>, n: number): Promise<{ admitted: number; errors: unknown[] }> {
  const results = await Promise.allSettled(Array.from({ length: n }, () => p.execute(ok)));
  const errors = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  return { admitted: n - errors.length, errors };
}

async function rejection(p: Promise<unknown>): Promise<RateLimitedError> {
  const e = await rejectionOf(p);
  expect(isRateLimitedError(e)).toBe(true);
  return e as RateLimitedError;
}

describe('rateLimit: token bucket', () => {
  it('admits the burst at once, then rejects with the exact retryAfterMs, and refills lazily (no timer)', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 5, clock }); // one token per 100 ms
    expect(rl.algorithm).toBe('token-bucket');
    expect(rl.capacity).toBe(5);
    expect(rl.available).toBe(5);
    const first = await burst(rl, 6);
    expect(first.admitted).toBe(5);
    const e = first.errors[0] as RateLimitedError;
    expect(e).toBeInstanceOf(RateLimitedError);
    expect(e.reason).toBe('limit');
    expect(e.retryAfterMs).toBe(100);
    expect(e.cost).toBe(1);
    expect(e.policy).toBe('rate-limit');
    expect(rl.available).toBe(0);
    expect(clock.pendingTimers).toBe(0);

    await clock.advance(40);
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(60);
    await clock.advance(60);
    expect(rl.available).toBe(1);
    await expect(rl.execute(ok)).resolves.toBe('ok');
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(100);

    await clock.advance(10_000); // a quiet spell refills to the burst, no more
    expect(rl.available).toBe(5);
    expect((await burst(rl, 7)).admitted).toBe(5);
    expect(clock.pendingTimers).toBe(0);
  });

  it('defaults: periodMs 1000 and burst = rate (at least 1)', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 3, clock });
    expect(rl.capacity).toBe(3);
    const { admitted, errors } = await burst(rl, 4);
    expect(admitted).toBe(3);
    expect((errors[0] as RateLimitedError).retryAfterMs).toBeCloseTo(1000 / 3, 9);
    const slow = rateLimit({ rate: 0.5, clock }); // one token per 2 s
    expect(slow.capacity).toBe(1);
    await slow.execute(ok);
    expect((await rejection(slow.execute(ok))).retryAfterMs).toBe(2_000);
  });

  it('a rate per minute: 5 per 60 s with no burst spaces calls 12 s apart', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 5, periodMs: 60_000, burst: 1, clock });
    await rl.execute(ok);
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(12_000);
    await clock.advance(12_000);
    await expect(rl.execute(ok)).resolves.toBe('ok');
  });
});

describe('rateLimit: fixed window', () => {
  it('admits `limit` per window of the clock and reports the time to the next window', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ algorithm: 'fixed-window', limit: 3, windowMs: 1_000, clock });
    expect(rl.algorithm).toBe('fixed-window');
    await clock.advance(250);
    const { admitted, errors } = await burst(rl, 5);
    expect(admitted).toBe(3);
    expect(errors.map((e) => (e as RateLimitedError).retryAfterMs)).toEqual([750, 750]);
    await clock.advance(749);
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(1);
    await clock.advance(1);
    expect(rl.available).toBe(3);
    expect((await burst(rl, 4)).admitted).toBe(3);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('rateLimit: sliding window', () => {
  it('gives tokens back when their segment leaves the window', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ algorithm: 'sliding-window', limit: 4, windowMs: 1_000, segments: 4, clock });
    expect(rl.algorithm).toBe('sliding-window');
    expect((await burst(rl, 2)).admitted).toBe(2); // segment 0
    await clock.advance(250);
    expect((await burst(rl, 2)).admitted).toBe(2); // segment 1
    await clock.advance(250);
    // Segment 0 leaves the window at 1000 ms.
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(500);
    await clock.advance(500);
    expect(rl.available).toBe(2);
    expect((await burst(rl, 2)).admitted).toBe(2);
    // Now segment 1's two tokens must leave: at 1250 ms.
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(250);
    await clock.advance(250);
    expect((await burst(rl, 3)).admitted).toBe(2);
  });

  it('a call needing several segments to leave waits for the last of them', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({
      algorithm: 'sliding-window',
      limit: 4,
      windowMs: 400,
      segments: 4,
      cost: (c) => c.attempt,
      clock,
    });
    // cost 1 in segments 0, 1, 2, 3 (one per 100 ms)
    for (let i = 0; i < 4; i++) {
      await rl.execute(ok);
      await clock.advance(100);
    }
    // t = 400: segment 0 has left; 3 tokens in the window, so one is free now.
    expect(rl.available).toBe(1);
    await rl.execute(ok);
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(100); // segment 1 leaves at 500
  });

  it('defaults to 10 segments', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ algorithm: 'sliding-window', limit: 1, windowMs: 1_000, clock });
    await clock.advance(150);
    await rl.execute(ok);
    // The token was taken in segment [100, 200): it comes back at 1100.
    expect((await rejection(rl.execute(ok))).retryAfterMs).toBe(950);
  });
});

describe('rateLimit: cost', () => {
  it('a number: each call takes that many tokens', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 10, cost: 4, clock });
    expect((await burst(rl, 3)).admitted).toBe(2);
    const e = await rejection(rl.execute(ok));
    expect(e.cost).toBe(4);
    expect(e.retryAfterMs).toBe(200); // 2 tokens left, 2 more needed at 100 ms each
  });

  it('a function of the context, called once per call', async () => {
    const clock = new FakeClock();
    const SIZE = new PropertyKey<number>('size');
    let calls = 0;
    const rl = rateLimit({
      algorithm: 'fixed-window',
      limit: 10,
      windowMs: 1_000,
      cost: (ctx) => {
        calls++;
        return ctx.properties.get(SIZE) ?? 1;
      },
      clock,
    });
    const withSize = (n: number) => ({ properties: new Properties().set(SIZE, n) });
    await rl.execute(ok, withSize(7));
    await rl.execute(ok);
    const e = await rejection(rl.execute(ok, withSize(3)));
    expect(e.cost).toBe(3);
    expect(calls).toBe(3);
    await rl.execute(ok, withSize(2));
    expect(rl.available).toBe(0);
  });

  it('a cost above the burst or limit is rejected at call time (reason cost, retryAfterMs Infinity), never queued', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 5, cost: () => 6, queue: 10, clock });
    const events: RateLimitRejectedEvent[] = [];
    rl.on('rate_limit.rejected', (e) => events.push(e));
    const e = await rejection(rl.execute(ok));
    expect(e.reason).toBe('cost');
    expect(e.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    expect(e.message).toMatch(/costing 6 can never be admitted/);
    expect(rl.queued).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    expect(events).toMatchObject([{ type: 'rate_limit.rejected', reason: 'cost', cost: 6 }]);
    const win = rateLimit({ algorithm: 'fixed-window', limit: 2, windowMs: 10, cost: () => 3, clock });
    expect((await rejection(win.execute(ok))).reason).toBe('cost');
  });

  it('a cost function that throws or returns nonsense rejects the call with a clear TypeError', async () => {
    const boom = new Error('boom');
    const throwing = rateLimit({
      rate: 1,
      cost: () => {
        throw boom;
      },
    });
    await expect(throwing.execute(ok)).rejects.toBe(boom);
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, '2' as unknown as number]) {
      const rl = rateLimit({ rate: 1, cost: () => bad });
      const e = await rejectionOf(rl.execute(ok));
      expect(e).toBeInstanceOf(TypeError);
      expect((e as Error).message).toMatch(
        /rate limiter "rate-limit": the cost function returned .*; expected a finite number >= 0/,
      );
    }
  });

  it('a cost of 0 is always admitted while nobody waits', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 1, cost: 0, clock });
    expect((await burst(rl, 100)).admitted).toBe(100);
  });
});

describe('rateLimit: queue', () => {
  it('a queued call starts exactly when its tokens are available, in FIFO order, with one timer', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 3, clock }); // one token per 100 ms
    const started: [number, number][] = [];
    const run = (i: number) =>
      track(
        rl.execute(() => {
          started.push([i, clock.now()]);
          return i;
        }),
      );
    const calls = [run(0), run(1), run(2), run(3)];
    await clock.flush();
    expect(started).toEqual([[0, 0]]);
    expect(rl.queued).toBe(3);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextTimerAt).toBe(100);
    await clock.advance(99);
    expect(started).toHaveLength(1);
    await clock.advance(1);
    expect(started).toEqual([
      [0, 0],
      [1, 100],
    ]);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(200);
    expect(started).toEqual([
      [0, 0],
      [1, 100],
      [2, 200],
      [3, 300],
    ]);
    expect(calls.map((c) => c.value)).toEqual([0, 1, 2, 3]);
    expect(rl.queued).toBe(0);
    expect(clock.pendingTimers).toBe(0); // none left once the queue drains
  });

  it('a new call never jumps ahead of queued ones, even a cheaper one that would fit now', async () => {
    const clock = new FakeClock();
    const SIZE = new PropertyKey<number>('size');
    const rl = rateLimit({
      algorithm: 'fixed-window',
      limit: 4,
      windowMs: 1_000,
      queue: 5,
      cost: (ctx) => ctx.properties.get(SIZE) ?? 1,
      clock,
    });
    const order: string[] = [];
    const call = (name: string, size: number) =>
      track(rl.execute(() => order.push(`${name}@${clock.now()}`), { properties: new Properties().set(SIZE, size) }));
    call('a', 3);
    call('b', 3); // 1 left now: waits for the next window
    call('c', 1); // would fit now, but b is ahead
    await clock.flush();
    expect(order).toEqual(['a@0']);
    expect(rl.queued).toBe(2);
    await clock.advance(1_000);
    expect(order).toEqual(['a@0', 'b@1000', 'c@1000']);
  });

  it('rejects at once with queue_full when the queue is full, with retryAfterMs past the queued reservations', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 2, clock });
    const events: RateLimitRejectedEvent[] = [];
    const queuedEvents: RateLimitQueuedEvent[] = [];
    rl.on('rate_limit.rejected', (e) => events.push(e));
    rl.on('rate_limit.queued', (e) => queuedEvents.push(e));
    const calls = [track(rl.execute(ok)), track(rl.execute(ok)), track(rl.execute(ok))];
    const e = await rejection(rl.execute(ok));
    expect(e.reason).toBe('queue_full');
    expect(e.retryAfterMs).toBe(300); // the queue's tokens come at 100 and 200; this one's at 300
    expect(e.message).toMatch(/queue is full.*retry after 300 ms/);
    expect(events).toEqual([
      {
        type: 'rate_limit.rejected',
        policy: 'rate-limit',
        operation: 'default',
        attempt: 1,
        reason: 'queue_full',
        retryAfterMs: 300,
        cost: 1,
        queued: 2,
      },
    ]);
    expect(queuedEvents.map((q) => [q.waitMs, q.queued, q.cost])).toEqual([
      [100, 1, 1],
      [200, 2, 1],
    ]);
    await clock.advance(200);
    expect(calls.every((c) => c.settled)).toBe(true);
  });

  it('a call that could not start within queueTimeoutMs is rejected at once (queue_timeout), not after waiting', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 10, queueTimeoutMs: 250, clock });
    await rl.execute(ok);
    const a = track(rl.execute(ok)); // at 100
    const b = track(rl.execute(ok)); // at 200
    const e = await rejection(rl.execute(ok)); // would be 300 > 250
    expect(e.reason).toBe('queue_timeout');
    expect(e.retryAfterMs).toBe(300);
    expect(rl.queued).toBe(2);
    await clock.advance(50);
    const c = track(rl.execute(ok)); // at 300, a wait of exactly 250: queued
    await clock.flush();
    expect(rl.queued).toBe(3);
    await clock.advance(250);
    expect([a.settled, b.settled, c.settled]).toEqual([true, true, true]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a caller abort removes the call from the queue at once; the newest reservation is given back', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 5, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    const a = track(rl.execute(ok)); // at 100
    const b = track(rl.execute(ok, { signal: ac.signal })); // at 200
    await clock.flush();
    expect(rl.queued).toBe(2);
    const reason = { why: 'user left' };
    ac.abort(reason);
    await clock.flush();
    expect(b.settled).toBe(true);
    expect(b.error).toBe(reason);
    expect(rl.queued).toBe(1);
    // b's tokens came back: the next call gets b's time, 200.
    const events: RateLimitQueuedEvent[] = [];
    rl.on('rate_limit.queued', (e) => events.push(e));
    const c = track(rl.execute(ok));
    await clock.flush();
    expect(events[0]?.waitMs).toBe(200);
    await clock.advance(200);
    expect([a.settled, c.settled]).toEqual([true, true]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an abort in the middle of the queue lets its reservation lapse: the others keep their times', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 5, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    const starts: number[] = [];
    const op = () => starts.push(clock.now());
    const a = track(rl.execute(op, { signal: ac.signal })); // 100
    const b = track(rl.execute(op)); // 200
    ac.abort();
    await clock.flush();
    expect((a.error as Error).name).toBe('AbortError');
    expect(rl.queued).toBe(1);
    expect(clock.pendingTimers).toBe(1); // armed for the old head: fires, finds nothing due, re-arms
    const c = track(rl.execute(op)); // 300: a's tokens are not reused
    await clock.advance(300);
    expect(starts).toEqual([200, 300]);
    expect([b.settled, c.settled]).toEqual([true, true]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a queued call aborted after its time (a late timer) gives nothing back: a call may have started meanwhile', async () => {
    const fake = new FakeClock();
    // Timers fire 150 ms late, as a busy event loop might.
    const clock = {
      now: () => fake.now(),
      setTimeout: (cb: () => void, ms: number) => fake.setTimeout(cb, ms + 150),
      clearTimeout: (h: unknown) => fake.clearTimeout(h),
    };
    const rl = rateLimit({ rate: 10, burst: 1, queue: 5, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    const late = track(rl.execute(ok, { signal: ac.signal })); // its tokens: at 100
    await fake.advance(200);
    expect(late.settled).toBe(false);
    await expect(rl.execute(ok)).resolves.toBe('ok'); // tokens of 200: taken at once, its timer still pending
    ac.abort();
    await fake.flush();
    expect(late.settled).toBe(true);
    // Giving the late call's tokens back would admit a second call at 200.
    expect(rl.available).toBe(0);
    const waits: number[] = [];
    rl.on('rate_limit.queued', (e) => waits.push(e.waitMs));
    const next = track(rl.execute(ok));
    expect(waits).toEqual([100]);
    await fake.advance(250);
    expect(next.value).toBe('ok');
  });

  it('aborting the only queued call clears the timer at once', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 1, burst: 1, queue: 1, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    const a = track(rl.execute(ok, { signal: ac.signal }));
    await clock.flush();
    expect(clock.pendingTimers).toBe(1);
    ac.abort();
    await clock.flush();
    expect(a.settled).toBe(true);
    expect(clock.pendingTimers).toBe(0);
    expect(rl.available).toBe(0);
    await clock.advance(1_000);
    expect(rl.available).toBe(1); // its token was given back
  });

  it('an outer timeout removes a queued call at once', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 1, burst: 1, queue: 1, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    const p = pipeline(timeout({ ms: 10, clock }), rl);
    const call = track(p.execute(async () => 'never', { signal: ac.signal }));
    await clock.flush();
    expect(rl.queued).toBe(1);
    await clock.advance(10);
    expect(call.settled).toBe(true);
    expect((call.error as Error).name).toBe('TimeoutError');
    expect(rl.queued).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a call whose signal aborted before it reaches the limiter takes no queue place and gives its tokens back', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 1, burst: 1, queue: 1, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    // The key function aborts the caller's signal: the limiter then sees an aborted call that would queue.
    const k = keyed(
      () => {
        ac.abort('gone');
        return 'k';
      },
      () => rl,
    );
    await expect(k.execute(ok, { signal: ac.signal })).rejects.toBe('gone');
    expect(rl.queued).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(1_000);
    expect(rl.available).toBe(1);
  });

  it('dispose() rejects every queued call (reason disposed), clears the timer and refuses new calls', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 5, clock });
    await rl.execute(ok);
    const waiting = [track(rl.execute(ok)), track(rl.execute(ok))];
    await clock.flush();
    rl.dispose();
    rl.dispose();
    await clock.flush();
    expect(rl.disposed).toBe(true);
    for (const w of waiting) {
      expect(isRateLimitedError(w.error)).toBe(true);
      expect((w.error as RateLimitedError).reason).toBe('disposed');
      expect((w.error as RateLimitedError).retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    }
    expect(clock.pendingTimers).toBe(0);
    const e = await rejection(rl.execute(ok));
    expect(e.reason).toBe('disposed');
    expect(e.message).toMatch(/disposed/);
  });

  it('removes its abort listener from the caller signal when admitted', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 5, clock });
    await rl.execute(ok);
    const ac = new AbortController();
    const a = track(rl.execute(ok, { signal: ac.signal }));
    await clock.flush();
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    await clock.advance(100);
    expect(a.value).toBe('ok');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });
});

describe('rateLimit: errors and composition', () => {
  it('RateLimitedError is a stack-free ResilienceError with a stable code, and a local rejection', async () => {
    const rl = rateLimit({ rate: 1, clock: new FakeClock() });
    await rl.execute(ok);
    const e = await rejection(rl.execute(ok));
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(ResilienceError);
    expect(e.code).toBe('ERR_RATE_LIMITED');
    expect(e.name).toBe('RateLimitedError');
    expect(e.stack).toBe(`RateLimitedError: ${e.message}`);
    expect(e.message).toBe('rate limiter "rate-limit": rate limit reached: call rejected, retry after 1000 ms');
    expect(isResilienceError(e)).toBe(true);
    expect(isLocalRejectionError(e)).toBe(true);
    const built = new RateLimitedError('x', 'queue_timeout', 12.5, 2);
    expect(built.message).toMatch(/wait would exceed queueTimeoutMs.*retry after 13 ms/);
    expect(isRateLimitedError(built)).toBe(true);
    // A copy of the class from another package copy has the same brand and code.
    const foreign = Object.assign(Object.create(null), {
      [Symbol.for('bulwark.error')]: true,
      code: 'ERR_RATE_LIMITED',
    });
    expect(foreign instanceof RateLimitedError).toBe(true);
    expect(isRateLimitedError(new Error('x'))).toBe(false);
    expect(isRateLimitedError('ERR_RATE_LIMITED')).toBe(false);
  });

  it('a circuit breaker around the limiter never counts its rejections as failures', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 }, halfOpenAfterMs: 1_000, clock });
    const p = pipeline(breaker, rateLimit({ rate: 1, burst: 1, clock }));
    await p.execute(ok);
    for (let i = 0; i < 10; i++) expect(isRateLimitedError(await rejectionOf(p.execute(ok)))).toBe(true);
    expect(breaker.state).toBe('closed');
    // Real failures still open it.
    await clock.advance(2_000);
    await rejectionOf(p.execute(() => Promise.reject(new Error('down'))));
    await clock.advance(1_000);
    await rejectionOf(p.execute(() => Promise.reject(new Error('down'))));
    expect(breaker.state).toBe('open');
  });

  it('retry around the limiter waits exactly retryAfterMs, then succeeds', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 4, burst: 1, clock }); // one token per 250 ms
    const r = retry({ maxAttempts: 3, backoff: constant(10), clock });
    const attempts: RetryAttemptEvent[] = [];
    r.on('retry.attempt', (e) => attempts.push(e));
    const p = pipeline(r, rl);
    await p.execute(ok);
    await clock.advance(100);
    const starts: number[] = [];
    const call = track(p.execute(() => starts.push(clock.now())));
    await clock.flush();
    expect(attempts.map((a) => a.delayMs)).toEqual([150]);
    await clock.advance(149);
    expect(call.settled).toBe(false);
    await clock.advance(1);
    expect(call.settled).toBe(true);
    expect(starts).toEqual([250]);
  });

  it('retry gives up at once on a rejection no wait cures (cost) or one longer than maxRetryAfterMs', async () => {
    const clock = new FakeClock();
    const tooBig = pipeline(retry({ maxAttempts: 5, clock }), rateLimit({ rate: 1, cost: () => 2, clock }));
    const e = await rejection(tooBig.execute(ok));
    expect(e.reason).toBe('cost');
    const slow = rateLimit({ rate: 1, periodMs: 120_000, clock });
    const p = pipeline(retry({ maxAttempts: 5, clock }), slow);
    await p.execute(ok);
    const call = track(p.execute(ok));
    await clock.flush();
    expect(call.settled).toBe(true);
    expect((call.error as RateLimitedError).retryAfterMs).toBe(120_000);
  });

  it('keyed: one limiter per tenant', async () => {
    const clock = new FakeClock();
    const TENANT = new PropertyKey<string>('tenant');
    const perTenant = keyed(
      (ctx) => ctx.properties.get(TENANT) ?? 'anonymous',
      () => rateLimit({ rate: 2, clock }),
    );
    const as = (t: string) => ({ properties: new Properties().set(TENANT, t) });
    const results: string[] = [];
    for (const t of ['a', 'a', 'a', 'b', 'b', 'a']) {
      try {
        await perTenant.execute(ok, as(t));
        results.push(`${t}:ok`);
      } catch (e) {
        results.push(`${t}:${(e as RateLimitedError).reason}`);
      }
    }
    expect(results).toEqual(['a:ok', 'a:ok', 'a:limit', 'b:ok', 'b:ok', 'a:limit']);
    expect(perTenant.size).toBe(2);
    expect(perTenant.peek('a')?.available).toBe(0);
    await clock.advance(500);
    expect(perTenant.peek('a')?.available).toBe(1);
  });

  it('emits no event object when nobody listens, and execution.completed times a queued call', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({ rate: 10, burst: 1, queue: 1, clock });
    const durations: number[] = [];
    rl.on('execution.completed', (e) => durations.push(e.durationMs));
    await rl.execute(ok);
    const q = track(rl.execute(ok));
    await clock.advance(100);
    expect(q.value).toBe('ok');
    expect(durations).toEqual([0, 100]);
  });
});

describe('rateLimit: options', () => {
  it('names the policy, the option, the value and what is allowed', () => {
    const e = invalidOptions(() => rateLimit({ rate: Number.NaN }));
    expect(e).toBeInstanceOf(InvalidOptionsError);
    expect(e.policy).toBe('rateLimit');
    expect(e.problems).toEqual([{ option: 'rate', received: 'NaN', expected: 'a number > 0' }]);
  });

  it('reports every problem at once, for each algorithm', () => {
    const tb = invalidOptions(() =>
      rateLimit({
        rate: -1,
        periodMs: Number.POSITIVE_INFINITY,
        burst: 0.5,
        queue: 1.5,
        queueTimeoutMs: 0,
        cost: -2,
        name: '',
        clock: {} as never,
      }),
    );
    expect(tb.problems.map((p) => p.option)).toEqual([
      'rate',
      'periodMs',
      'burst',
      'cost',
      'queue',
      'queueTimeoutMs',
      'name',
      'clock',
    ]);
    const sw = invalidOptions(() =>
      rateLimit({ algorithm: 'sliding-window', limit: 0, windowMs: Number.NaN, segments: 1_001 }),
    );
    expect(sw.problems.map((p) => [p.option, p.expected])).toEqual([
      ['limit', 'an integer >= 1'],
      ['windowMs', 'a number > 0'],
      ['segments', 'an integer in [1, 1000]'],
    ]);
    const fw = invalidOptions(() => rateLimit({ algorithm: 'fixed-window', limit: 2.5, windowMs: -1 }));
    expect(fw.problems.map((p) => p.option)).toEqual(['limit', 'windowMs']);
  });

  it('requires the algorithm options', () => {
    expect(invalidOptions(() => rateLimit(undefined as never)).problems[0]).toMatchObject({ option: 'rate' });
    expect(invalidOptions(() => rateLimit({} as never)).problems[0]).toMatchObject({
      option: 'rate',
      expected: 'a finite number > 0 (required)',
    });
    const w = invalidOptions(() => rateLimit({ algorithm: 'fixed-window' } as never));
    expect(w.problems.map((p) => p.option)).toEqual(['limit', 'windowMs']);
  });

  it('rejects unknown names, and names of another algorithm, listing the allowed ones', () => {
    const e = invalidOptions(() => rateLimit({ rate: 1, limt: 3 } as never));
    expect(e.problems).toEqual([
      {
        option: 'limt',
        received: '3',
        expected:
          'a known option (unknown name; allowed: algorithm, rate, periodMs, burst, cost, queue, queueTimeoutMs, name, clock)',
      },
    ]);
    const mixed = invalidOptions(() =>
      rateLimit({ algorithm: 'fixed-window', limit: 1, windowMs: 1, segments: 4 } as never),
    );
    expect(mixed.problems[0]).toMatchObject({ option: 'segments' });
    expect(mixed.problems[0]?.expected).toMatch(/allowed: algorithm, limit, windowMs, cost/);
  });

  it('rejects an unknown algorithm, and still checks the names', () => {
    const e = invalidOptions(() => rateLimit({ algorithm: 'leaky-bucket', rate: 1, bogus: 1 } as never));
    expect(e.problems.map((p) => [p.option, p.expected])).toEqual([
      ['algorithm', "one of 'token-bucket', 'sliding-window', 'fixed-window'"],
      ['bogus', expect.stringMatching(/^a known option/)],
    ]);
  });

  it('rejects a fixed cost above the burst or limit when the limiter is built', () => {
    const e = invalidOptions(() => rateLimit({ rate: 10, burst: 5, cost: 6 }));
    expect(e.problems).toEqual([
      { option: 'cost', received: '6', expected: 'a number <= burst (5): no call could ever run' },
    ]);
    expect(invalidOptions(() => rateLimit({ rate: 3, cost: 4 })).problems[0]?.expected).toMatch(/burst \(3\)/);
    expect(
      invalidOptions(() => rateLimit({ algorithm: 'fixed-window', limit: 2, windowMs: 1, cost: 3 })).problems[0]
        ?.expected,
    ).toMatch(/limit \(2\)/);
  });

  it('rejects options valid alone whose ratio is no time (a token every Infinity ms, segments of 0 ms)', async () => {
    // Found by the option fuzzer: 0.5 tokens per 1e308 ms built a limiter whose first call waited forever.
    for (const o of [
      { rate: 0.5, periodMs: Number.MAX_VALUE },
      { rate: 1e9, periodMs: 1e-320 },
      { rate: 1, periodMs: 1e300, burst: 1e10 },
    ]) {
      const e = invalidOptions(() => rateLimit(o));
      expect(e.problems.map((p) => p.option)).toEqual(['periodMs']);
      expect(e.message).toMatch(/divided by rate .* ms > 0 per token/);
    }
    const w = invalidOptions(() => rateLimit({ algorithm: 'sliding-window', limit: 1, windowMs: 5e-324, segments: 3 }));
    expect(w.problems).toEqual([
      {
        option: 'windowMs',
        received: '5e-324',
        expected: 'a window that, split in 3 segments, gives segments longer than 0 ms',
      },
    ]);
    // The largest ratios that are times still work: a token every 1.8e308 ms, the first call admitted at once.
    const slow = rateLimit({ rate: 1, periodMs: Number.MAX_VALUE });
    await expect(slow.execute(async () => 'ran')).resolves.toBe('ran');
    await expect(slow.execute(async () => 'ran')).rejects.toMatchObject({ code: 'ERR_RATE_LIMITED' });
  });

  it('rejects a non-object and a throwing getter without throwing anything else', () => {
    expect(invalidOptions(() => rateLimit(5 as never)).problems[0]).toMatchObject({ option: 'options' });
    const hostile = {
      get algorithm(): string {
        throw new Error('nope');
      },
      rate: 1,
    };
    const e = invalidOptions(() => rateLimit(hostile as never));
    expect(e.problems.map((p) => p.option)).toContain('algorithm');
  });

  it('accepts queue Infinity, queueTimeoutMs Infinity, fractional rates and a custom name', async () => {
    const clock = new FakeClock();
    const rl = rateLimit({
      rate: 0.25,
      burst: 1,
      queue: Number.POSITIVE_INFINITY,
      queueTimeoutMs: Number.POSITIVE_INFINITY,
      name: 'gh',
      clock,
    });
    expect(rl.name).toBe('gh');
    await rl.execute(ok);
    const q = track(rl.execute(ok));
    await clock.advance(4_000);
    expect(q.value).toBe('ok');
  });
});
