import { describe, expect, it } from 'vitest';
import {
  adaptiveThrottle,
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  constant,
  handleResults,
  isLocalRejectionError,
  isResilienceError,
  isThrottledError,
  keyed,
  pipeline,
  ResilienceError,
  retry,
  retryTokenBudget,
  ThrottledError,
  type ThrottleRejectedEvent,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf } from '../../helpers/deferred.js';
import { scriptedRandom } from '../../helpers/scripted-random.js';

const fail = (status?: number) => (): Promise<never> =>
  Promise.reject(Object.assign(new Error(`status ${status ?? 500}`), { status: status ?? 500 }));
const ok = () => 'ok';
/** `n` draws that let any call through (every p the tests reach is below this). */
const pass = (n: number): number[] => Array.from({ length: n }, () => 0.999_999);

/** Runs `n` calls of `op` one after the other, swallowing failures. */
async function run(p: { execute(op: () => unknown): Promise<unknown> }, n: number, op: () => unknown): Promise<void> {
  for (let i = 0; i < n; i++) await p.execute(op).catch(() => undefined);
}

describe('adaptiveThrottle', () => {
  it('has the SRE book defaults and starts with nothing counted', () => {
    const t = adaptiveThrottle({ clock: new FakeClock() });
    expect([t.name, t.k, t.windowMs, t.minRequests, t.requests, t.accepts, t.probability]).toEqual([
      'adaptive-throttle',
      2,
      120_000,
      0,
      0,
      0,
      0,
    ]);
  });

  it('reports every bad option at once', () => {
    const e = invalidOptions(() =>
      adaptiveThrottle({
        k: 0.5,
        windowMs: 0,
        buckets: 1.5,
        minRequests: -1,
        handle: 3,
        name: '',
        clock: {},
        random: 'x',
        extra: true,
      } as never),
    );
    expect(e.message).toContain('adaptiveThrottle');
    expect(e.problems.map((p) => p.option).sort()).toEqual([
      'buckets',
      'clock',
      'extra',
      'handle',
      'k',
      'minRequests',
      'name',
      'random',
      'windowMs',
    ]);
    expect(e.problems.find((p) => p.option === 'k')?.expected).toBe('a number >= 1');
    expect(invalidOptions(() => adaptiveThrottle({ buckets: 1001 })).problems[0]?.option).toBe('buckets');
    expect(invalidOptions(() => adaptiveThrottle({ k: Number.POSITIVE_INFINITY })).problems[0]?.option).toBe('k');
    expect(() => adaptiveThrottle({ k: 1 })).not.toThrow();
  });

  it('passes every call while the upstream accepts, and never draws', async () => {
    const random = scriptedRandom();
    const t = adaptiveThrottle({ clock: new FakeClock(), random });
    await run(t, 10, ok);
    expect([t.requests, t.accepts, t.probability, random.taken]).toEqual([10, 10, 0, 0]);
  });

  it('rejects with probability (requests - K x accepts) / (requests + 1), counting its own rejections', async () => {
    const random = scriptedRandom();
    const t = adaptiveThrottle({ clock: new FakeClock(), random });
    const events: ThrottleRejectedEvent[] = [];
    t.on('throttle.rejected', (e) => events.push(e));
    await run(t, 5, ok);
    await run(t, 5, fail());
    // 10 requests, 5 accepts: 10 <= 2 x 5, nothing is rejected and nothing drawn.
    expect([t.requests, t.accepts, t.probability, random.taken]).toEqual([10, 5, 0, 0]);
    random.push(0.99);
    await run(t, 1, fail()); // p was 0 when it started: it runs (no draw), and fails
    expect(random.taken).toBe(0);
    expect([t.requests, t.accepts, t.probability]).toEqual([11, 5, 1 / 12]);

    // A draw at or above p lets the call through.
    await expect(t.execute(ok)).resolves.toBe('ok');
    expect(random.taken).toBe(1);
    expect([t.requests, t.accepts, t.probability]).toEqual([12, 6, 0]);

    // 13 requests vs 2 x 6 accepts after the first failure: p = 1/14, so each later call draws.
    random.push(...pass(5));
    await run(t, 6, fail());
    expect(random.taken).toBe(6);
    expect([t.requests, t.accepts, t.probability]).toEqual([18, 6, 6 / 19]);
  });

  it('rejects a call whose draw is below p, without running it', async () => {
    const clock = new FakeClock();
    const random = scriptedRandom();
    const t = adaptiveThrottle({ clock, random });
    const events: ThrottleRejectedEvent[] = [];
    t.on('throttle.rejected', (e) => events.push(e));
    random.push(...pass(9)); // p = 1/2, 2/3, ... 9/10 before calls 2 to 10
    await run(t, 10, fail());
    // 10 requests, 0 accepts.
    expect(t.probability).toBe(10 / 11);
    random.push(10 / 11 - 1e-9);
    let ran = 0;
    const e = await rejectionOf(
      t.execute(
        () => {
          ran++;
          return 'ran';
        },
        { operation: 'search' },
      ),
    );
    expect(ran).toBe(0);
    expect(e).toBeInstanceOf(ThrottledError);
    expect(e).toBeInstanceOf(ResilienceError);
    expect(e).toBeInstanceOf(Error);
    expect(isThrottledError(e)).toBe(true);
    expect(isLocalRejectionError(e)).toBe(true);
    expect(isResilienceError(e)).toBe(true);
    expect(e).toMatchObject({ code: 'ERR_THROTTLED', policy: 'adaptive-throttle', probability: 10 / 11 });
    expect((e as Error).message).toBe(
      'adaptive throttle "adaptive-throttle" rejected the call locally (rejection probability 0.909): the upstream has been refusing calls',
    );
    expect((e as Error).stack).toBe(`ThrottledError: ${(e as Error).message}`);
    expect(events).toEqual([
      {
        type: 'throttle.rejected',
        policy: 'adaptive-throttle',
        operation: 'search',
        attempt: 1,
        probability: 10 / 11,
        requests: 10,
        accepts: 0,
      },
    ]);
    // The rejection counts as a request: 11 requests, 0 accepts.
    expect([t.requests, t.accepts, t.probability]).toEqual([11, 0, 11 / 12]);
    // A draw exactly at p passes (reject only below p, like Math.random() < p).
    random.push(11 / 12);
    await expect(t.execute(ok)).resolves.toBe('ok');
    expect([t.requests, t.accepts]).toEqual([12, 1]);
  });

  it('is recognised across package copies by its brand and code', () => {
    const foreign = Object.assign(Object.create(Object.getPrototypeOf(ThrottledError.fast('x', 0.5))), {
      code: 'ERR_THROTTLED',
    });
    expect(isThrottledError(foreign)).toBe(true);
    const other = { [Symbol.for('bulwark.error')]: true, code: 'ERR_THROTTLED' };
    expect(other instanceof ThrottledError).toBe(true);
    expect(isLocalRejectionError(other)).toBe(true);
    expect(isThrottledError({ code: 'ERR_THROTTLED' })).toBe(false);
    const e = new ThrottledError('t', 0.25);
    expect([e.name, e.code, e.policy, e.probability]).toEqual(['ThrottledError', 'ERR_THROTTLED', 't', 0.25]);
  });

  it('forgets counts a bucket at a time as the window moves, with no timer', async () => {
    const clock = new FakeClock();
    const random = scriptedRandom();
    // 10 buckets of 100 ms.
    const t = adaptiveThrottle({ clock, random, windowMs: 1_000, buckets: 10 });
    await clock.advance(50);
    random.push(...pass(3));
    await run(t, 4, fail()); // bucket 0 (0..100 ms)
    await clock.advance(100); // t = 150
    random.push(...pass(2));
    await run(t, 2, ok); // p = 4/5 at the first: drawn 0.99, passes; then 5 req 1 acc: p = 3/6, passes
    expect([t.requests, t.accepts]).toEqual([6, 2]);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(849); // t = 999: bucket 0 is still in the window
    expect([t.requests, t.accepts]).toEqual([6, 2]);
    await clock.advance(1); // t = 1000: bucket 0 (the 4 failures) leaves
    expect([t.requests, t.accepts, t.probability]).toEqual([2, 2, 0]);
    await clock.advance(100); // t = 1100: bucket 1 leaves too
    expect([t.requests, t.accepts]).toEqual([0, 0]);
    random.push(...pass(2));
    await run(t, 3, fail());
    expect(t.probability).toBe(3 / 4);
    await clock.advance(10_000); // far past the window: everything goes at once
    expect([t.requests, t.accepts, t.probability]).toEqual([0, 0, 0]);
    expect(random.left).toBe(0);
  });

  it('counts a call when it settles, in the bucket of the latest clock reading (at or after its start)', async () => {
    const clock = new FakeClock();
    const t = adaptiveThrottle({ clock, windowMs: 1_000, buckets: 10 });
    const first = deferred<string>();
    const second = deferred<string>();
    const a = t.execute(() => first.promise); // reads the clock at 0
    expect(t.requests).toBe(0); // in flight: not counted yet
    await clock.advance(950);
    first.resolve('late');
    await expect(a).resolves.toBe('late');
    // Nothing read the clock since the call started: it is counted in bucket 0 (0..100 ms).
    expect([t.requests, t.accepts]).toEqual([1, 1]); // this reading moves the window to 950 (bucket 9)
    const b = t.execute(() => second.promise);
    second.resolve('later');
    await b;
    expect([t.requests, t.accepts]).toEqual([2, 2]);
    await clock.advance(50); // t = 1000: bucket 0 leaves
    expect([t.requests, t.accepts]).toEqual([1, 1]);
    await clock.advance(899); // t = 1899: bucket 9 is still in the window
    expect(t.requests).toBe(1);
    await clock.advance(1); // t = 1900: it leaves
    expect(t.requests).toBe(0);
  });

  it('counts only what handle judges a refusal as not accepted (errors and results)', async () => {
    const random = scriptedRandom();
    const byStatus = adaptiveThrottle({
      clock: new FakeClock(),
      random,
      handle: (e) => (e as { status?: number }).status === 429,
    });
    await run(byStatus, 3, fail(500)); // served (badly): accepts
    await run(byStatus, 3, fail(429)); // refused
    expect([byStatus.requests, byStatus.accepts]).toEqual([6, 3]);

    const results = adaptiveThrottle({
      clock: new FakeClock(),
      random,
      handle: handleResults<{ status: number }>((r) => r.status === 503),
    });
    await expect(results.execute(() => ({ status: 503 }))).resolves.toEqual({ status: 503 });
    random.push(...pass(1)); // 1 request, 0 accepts: p = 1/2
    await expect(results.execute(() => ({ status: 200 }))).resolves.toEqual({ status: 200 });
    await results.execute(fail()).catch(() => undefined); // handleResults handles every error too
    expect([results.requests, results.accepts]).toEqual([3, 1]);
    expect(random.taken).toBe(1);
  });

  it('rejects with the predicate’s own error when handle throws, counting nothing', async () => {
    const boom = new Error('predicate');
    const t = adaptiveThrottle({
      clock: new FakeClock(),
      handle: () => {
        throw boom;
      },
    });
    expect(await rejectionOf(t.execute(fail()))).toBe(boom);
    expect(t.requests).toBe(0);
  });

  it('counts neither a caller abort nor a local rejection from inside', async () => {
    const clock = new FakeClock();
    const t = adaptiveThrottle({ clock });
    const ac = new AbortController();
    const d = deferred<never>();
    const call = t.execute(() => d.promise, { signal: ac.signal });
    ac.abort(new Error('caller'));
    d.reject(new Error('aborted op'));
    await expect(call).rejects.toThrow('aborted op');

    const bh = bulkhead({ limit: 1, clock });
    const inner = pipeline(t, bh);
    const hold = deferred<string>();
    const held = inner.execute(() => hold.promise);
    await expect(inner.execute(ok)).rejects.toMatchObject({ code: 'ERR_BULKHEAD_REJECTED' });
    hold.resolve('done');
    await held;
    // The one accepted call only.
    expect([t.requests, t.accepts]).toEqual([1, 1]);

    await expect(t.execute(() => Promise.reject(CircuitOpenError.fast('b', 10, 'open')))).rejects.toBeInstanceOf(
      CircuitOpenError,
    );
    await expect(t.execute(() => Promise.reject(ThrottledError.fast('inner', 0.5)))).rejects.toBeInstanceOf(
      ThrottledError,
    );
    expect([t.requests, t.accepts]).toEqual([1, 1]);
  });

  it('judges a failure alike with or without a signal or an enclosing timeout (shared and per-call handlers)', async () => {
    const clock = new FakeClock();
    const t = adaptiveThrottle({ clock, handle: (e) => (e as { status?: number }).status === 429 });
    const ac = new AbortController();
    const within = pipeline(timeout({ ms: 1_000, clock }), t);
    // No signal, no scope: the shared handler. A signal that never aborts, or a timeout's scope: one per call.
    // Served first, so that requests never exceed k x accepts and nothing is rejected locally.
    await t.execute(fail(500)).catch(() => undefined);
    await t.execute(fail(500), { signal: ac.signal }).catch(() => undefined);
    await within.execute(fail(500)).catch(() => undefined);
    await t.execute(fail(429)).catch(() => undefined);
    await t.execute(fail(429), { signal: ac.signal }).catch(() => undefined);
    await within.execute(fail(429)).catch(() => undefined);
    expect([t.requests, t.accepts]).toEqual([6, 3]);
    // Local rejections from inside count on neither path.
    const local = () => Promise.reject(ThrottledError.fast('inner', 0.5));
    await expect(t.execute(local)).rejects.toBeInstanceOf(ThrottledError);
    await expect(t.execute(local, { signal: ac.signal })).rejects.toBeInstanceOf(ThrottledError);
    await expect(within.execute(local)).rejects.toBeInstanceOf(ThrottledError);
    expect([t.requests, t.accepts]).toEqual([6, 3]);
  });

  it('holds back rejections until minRequests requests are in the window', async () => {
    const random = scriptedRandom();
    const t = adaptiveThrottle({ clock: new FakeClock(), random, minRequests: 5 });
    await run(t, 4, fail()); // 4 requests, no accepts: p would be 4/5, but below the floor nothing is drawn
    expect(t.probability).toBe(0);
    await run(t, 1, fail());
    expect(t.probability).toBe(5 / 6);
    expect(random.taken).toBe(0);
  });

  it('with k = 1 rejects from the first refusal on', async () => {
    const t = adaptiveThrottle({ clock: new FakeClock(), random: scriptedRandom(), k: 1 });
    await run(t, 3, ok);
    expect(t.probability).toBe(0);
    await run(t, 1, fail());
    expect(t.probability).toBe(1 / 5);
  });

  it('is never counted by an outer breaker nor charged to a token retry budget', async () => {
    const clock = new FakeClock();
    const random = scriptedRandom();
    const t = adaptiveThrottle({ clock, random });
    random.push(...pass(3));
    await run(t, 4, fail()); // p = 4/5
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, clock });
    const budget = retryTokenBudget({ maxTokens: 10, tokenRatio: 0.1 });
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant(0), budget, clock }), breaker, t);
    // Three attempts, each rejected locally by the throttle.
    random.push(0, 0, 0);
    const e = await rejectionOf(p.execute(ok));
    expect(isThrottledError(e)).toBe(true);
    expect(breaker.state).toBe('closed');
    expect(budget.tokens).toBe(10);
    // Each local rejection counted as a request: 4 + 3.
    expect([t.requests, t.accepts]).toEqual([7, 0]);
  });

  it('composes in pipelines (fused members around it) and per key', async () => {
    const clock = new FakeClock();
    const random = scriptedRandom();
    const p = pipeline(
      retry({ maxAttempts: 2, backoff: constant(0), clock }),
      adaptiveThrottle({ clock, random }),
      timeout({ ms: 1_000, clock }),
      bulkhead({ limit: 2, clock }),
    );
    await expect(p.execute(ok)).resolves.toBe('ok');

    const throttles = new Map<string, ReturnType<typeof adaptiveThrottle>>();
    const perTenant = keyed(
      (ctx) => ctx.operation,
      (key) => {
        const t = adaptiveThrottle({ clock, random, name: `throttle-${key}` });
        throttles.set(key, t);
        return t;
      },
    );
    random.push(...pass(2));
    await run({ execute: (op) => perTenant.execute(op, { operation: 'a' }) }, 3, fail());
    await run({ execute: (op) => perTenant.execute(op, { operation: 'b' }) }, 2, ok);
    expect(throttles.get('a')?.probability).toBe(3 / 4);
    expect(throttles.get('b')?.probability).toBe(0);
    const events: ThrottleRejectedEvent[] = [];
    perTenant.on('throttle.rejected', (e) => events.push(e));
    random.push(0);
    await expect(perTenant.execute(ok, { operation: 'a' })).rejects.toBeInstanceOf(ThrottledError);
    expect(events.map((e) => e.policy)).toEqual(['throttle-a']);
  });
});
