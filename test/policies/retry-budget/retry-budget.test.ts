import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  handleResults,
  type Policy,
  pipeline,
  type RetryExhaustedEvent,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

/** An operation that always fails with a fresh error, counting its attempts. */
function failing() {
  const attempts: number[] = [];
  const errors: Error[] = [];
  const op = ({ attempt }: { attempt: number }): Promise<never> => {
    attempts.push(attempt);
    const e = new Error(`attempt ${attempt}`);
    errors.push(e);
    return Promise.reject(e);
  };
  return { op, attempts, errors };
}

describe('retryBudget (a share of the calls in flight)', () => {
  it('has the Envoy and failsafe-go defaults', () => {
    const b = retryBudget();
    expect([b.ratio, b.minConcurrency, b.name, b.callsInFlight, b.retriesInFlight, b.refused]).toEqual([
      0.2,
      3,
      'retry_budget',
      0,
      0,
      0,
    ]);
  });

  it('rejects bad options together, naming each', () => {
    const e = invalidOptions(() =>
      retryBudget({ ratio: Number.NaN, minConcurrency: 1.5, name: '', extra: 1 } as unknown as Parameters<
        typeof retryBudget
      >[0]),
    );
    const options = e.problems.map((p) => p.option).sort();
    expect(options).toEqual(['extra', 'minConcurrency', 'name', 'ratio']);
    expect(e.message).toContain('retryBudget');
    expect(invalidOptions(() => retryBudget({ ratio: 1.5 })).problems[0]?.expected).toBe('a number in [0, 1]');
    expect(invalidOptions(() => retryBudget({ minConcurrency: -1 })).problems[0]?.option).toBe('minConcurrency');
  });

  it('allows minConcurrency retries in flight when the ratio allows none, and refuses the rest at once', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0, minConcurrency: 3 });
    const policy = retry({ maxAttempts: 3, backoff: constant(100), budget, clock });
    const exhausted: RetryExhaustedEvent[] = [];
    policy.on('retry.exhausted', (e) => exhausted.push(e));
    const f = failing();
    const calls = Array.from({ length: 10 }, () => track(policy.execute(f.op)));
    await flush();
    // 10 first attempts failed; 3 retries wait out their backoff, 7 calls gave up with their own error.
    expect(f.attempts.length).toBe(10);
    expect(calls.filter((c) => c.settled).length).toBe(7);
    expect(exhausted.map((e) => [e.reason, e.attempt])).toEqual(Array(7).fill(['budget', 1]));
    for (const c of calls.filter((x) => x.settled)) expect(f.errors).toContain(c.error);
    expect([budget.callsInFlight, budget.retriesInFlight, budget.refused]).toEqual([3, 3, 7]);
    expect(clock.pendingTimers).toBe(3);
    await clock.advance(100);
    await flush();
    // The 3 retries failed and released their slots, so their third attempts were allowed again.
    expect(f.attempts.length).toBe(13);
    expect(budget.retriesInFlight).toBe(3);
    await clock.advance(100);
    await flush();
    expect(f.attempts.length).toBe(16);
    expect(calls.every((c) => c.settled)).toBe(true);
    expect(exhausted.filter((e) => e.reason === 'attempts').length).toBe(3);
    expect([budget.callsInFlight, budget.retriesInFlight, budget.refused]).toEqual([0, 0, 7]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('allows exactly ratio x calls in flight (other calls held open count)', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0.2, minConcurrency: 0 });
    const policy = retry({ maxAttempts: 2, backoff: constant(10), budget, clock });
    const hold = deferred<string>();
    const held = Array.from({ length: 75 }, () => track(policy.execute(() => hold.promise)));
    const f = failing();
    const failingCalls = Array.from({ length: 25 }, () => track(policy.execute(f.op)));
    await flush();
    // 100 in flight: 20 retries allowed; the 21st would make 21 > 0.2 x 100.
    expect(budget.retriesInFlight).toBe(20);
    expect(budget.refused).toBe(5);
    expect(failingCalls.filter((c) => c.settled).length).toBe(5);
    hold.resolve('done');
    await clock.advance(10);
    await flush();
    expect(held.every((c) => c.settled && c.value === 'done')).toBe(true);
    expect(failingCalls.every((c) => c.settled)).toBe(true);
    expect(f.attempts.length).toBe(45);
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
  });

  it('bounds the rate too: fast failing retries beside slow calls get ratio x calls, not one per failure', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0.2, minConcurrency: 0 });
    const policy = retry({ maxAttempts: 100, backoff: constant(0), budget, clock });
    const hold = deferred<void>();
    // 200 slow calls in flight: 40 retries in flight would be allowed, but 200 calls earned 20 retries of credit
    // (it starts with 100 calls' worth and keeps no more).
    const held = Array.from({ length: 200 }, () => track(policy.execute(() => hold.promise)));
    const f = failing();
    const reasons: string[] = [];
    policy.on('retry.exhausted', (e) => reasons.push(e.reason));
    await rejectionOf(policy.execute(f.op));
    expect(f.attempts.length).toBe(21);
    expect(reasons).toEqual(['budget']);
    // Five more calls earn one more retry.
    for (let i = 0; i < 5; i++) held.push(track(policy.execute(() => hold.promise)));
    f.attempts.length = 0;
    await rejectionOf(policy.execute(f.op));
    expect(f.attempts.length).toBe(2);
    hold.resolve();
    await flush();
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
  });

  it('counts a float product exactly: 29 retries for 100 calls at 0.29', async () => {
    const budget = retryBudget({ ratio: 0.29, minConcurrency: 0 });
    const clock = new FakeClock();
    const policy = retry({ maxAttempts: 2, backoff: constant(10), budget, clock });
    const hold = deferred<void>();
    const held = Array.from({ length: 70 }, () => track(policy.execute(() => hold.promise)));
    const f = failing();
    Array.from({ length: 30 }, () => track(policy.execute(f.op)));
    await flush();
    expect(budget.retriesInFlight).toBe(29);
    hold.resolve();
    await clock.runAll();
    await flush();
    expect(held.every((c) => c.settled)).toBe(true);
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
  });

  it('is shared: two pipelines on one budget count together', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0, minConcurrency: 1 });
    const a = retry({ backoff: constant(5), budget, clock });
    const b = pipeline(retry({ backoff: constant(5), budget, clock }), timeout({ ms: 1_000, clock }));
    const f = failing();
    const first = track(a.execute(f.op));
    const second = track(b.execute(f.op));
    await flush();
    expect(budget.retriesInFlight).toBe(1);
    expect(budget.callsInFlight).toBe(1);
    expect(second.settled).toBe(true);
    expect(first.settled).toBe(false);
    await clock.runAll();
    await flush();
    expect(first.settled).toBe(true);
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
  });

  it('releases a retry whose backoff is cut short by the caller, and the call', async () => {
    const clock = new FakeClock();
    const budget = retryBudget();
    const policy = retry({ backoff: constant(1_000), budget, clock });
    const ac = new AbortController();
    const f = failing();
    const call = track(policy.execute(f.op, { signal: ac.signal }));
    await flush();
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([1, 1]);
    const reason = new Error('caller gave up');
    ac.abort(reason);
    await flush();
    expect(call.error).toBe(reason);
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('leaves after a caller abort of the first attempt, a success, and a handled result', async () => {
    const budget = retryBudget();
    const ac = new AbortController();
    const policy = retry({ budget, backoff: constant(0) });
    const aborted = track(
      policy.execute(
        ({ signal }) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
        { signal: ac.signal },
      ),
    );
    expect(budget.callsInFlight).toBe(1);
    ac.abort(new Error('stop'));
    await flush();
    expect(aborted.settled).toBe(true);
    await policy.execute(() => 'ok');
    const results = retry({ budget, maxAttempts: 2, backoff: constant(0), handle: handleResults((v) => v === 503) });
    await expect(results.execute(() => 503)).resolves.toBe(503);
    await expect(results.execute(() => 200)).resolves.toBe(200);
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
  });

  it('is asked only for a retry that would otherwise happen', async () => {
    const budget = retryBudget({ ratio: 0, minConcurrency: 0 });
    const policy = retry({ maxAttempts: 1, budget });
    await rejectionOf(policy.execute(failing().op));
    expect(budget.refused).toBe(0);
    const notHandled = retry({ budget, handle: () => false });
    await rejectionOf(notHandled.execute(failing().op));
    expect(budget.refused).toBe(0);
  });

  it('works the same through a fused pipeline (retry, breaker, timeout, bulkhead)', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0, minConcurrency: 2 });
    const p = pipeline(
      retry({ maxAttempts: 2, backoff: constant(10), budget, clock }),
      circuitBreaker({ failureRate: 1, minimumCalls: 100, clock }),
      timeout({ ms: 1_000, clock }),
      bulkhead({ limit: 100 }),
    );
    const f = failing();
    const calls = Array.from({ length: 5 }, () => track(p.execute(f.op)));
    await flush();
    expect([budget.callsInFlight, budget.retriesInFlight, budget.refused]).toEqual([2, 2, 3]);
    await clock.advance(10);
    await flush();
    expect(calls.every((c) => c.settled)).toBe(true);
    expect(f.attempts.length).toBe(7);
    const hold = deferred<string>();
    const ok = track(p.execute(() => hold.promise));
    expect(budget.callsInFlight).toBe(1);
    hold.resolve('fine');
    await flush();
    expect(ok.value).toBe('fine');
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
    // The timeout's one shared timer lapses at its last deadline; no retry timer is left.
    await clock.advance(1_000);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('retryTokenBudget (gRPC retryThrottling)', () => {
  it('has the gRFC A6 example as defaults', () => {
    const b = retryTokenBudget();
    expect([b.maxTokens, b.tokenRatio, b.tokens, b.name, b.refused]).toEqual([10, 0.1, 10, 'retry_budget', 0]);
  });

  it('rejects bad options together, naming each', () => {
    const e = invalidOptions(() => retryTokenBudget({ maxTokens: 0, tokenRatio: 0.0001 }));
    expect(e.problems.map((p) => p.option).sort()).toEqual(['maxTokens', 'tokenRatio']);
    expect(e.problems[0]?.expected).toContain('three decimals');
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, '1']) {
      expect(invalidOptions(() => retryTokenBudget({ maxTokens: bad as number })).problems[0]?.option).toBe(
        'maxTokens',
      );
    }
  });

  it('refuses a value below one thousandth (it was rounded to a bucket of 0 tokens, or a refill of 0)', async () => {
    for (const tiny of [Number.MIN_VALUE, 1e-10, 4e-4]) {
      expect(invalidOptions(() => retryTokenBudget({ maxTokens: tiny })).problems.map((p) => p.option)).toEqual([
        'maxTokens',
      ]);
      expect(invalidOptions(() => retryTokenBudget({ tokenRatio: tiny })).problems.map((p) => p.option)).toEqual([
        'tokenRatio',
      ]);
    }
    // The smallest allowed value is one thousandth, and counts as one.
    expect(retryTokenBudget({ maxTokens: 0.001, tokenRatio: 0.001 }).tokens).toBe(0.001);
  });

  it('drains a token per handled failure, refills tokenRatio per success, retries only above half', async () => {
    const budget = retryTokenBudget({ maxTokens: 4, tokenRatio: 0.5 });
    const policy = retry({ maxAttempts: 5, backoff: constant(0), budget });
    const reasons: string[] = [];
    policy.on('retry.exhausted', (e) => reasons.push(e.reason));
    const f = failing();
    const e1 = await rejectionOf(policy.execute(f.op));
    // 4 -> 3 (retry allowed: 3 > 2) -> 2 (refused: not above half).
    expect(f.attempts).toEqual([1, 2]);
    expect(e1).toBe(f.errors[1]);
    expect(budget.tokens).toBe(2);
    await rejectionOf(policy.execute(f.op));
    expect(budget.tokens).toBe(1);
    expect(reasons).toEqual(['budget', 'budget']);
    expect(budget.refused).toBe(2);
    for (let i = 0; i < 3; i++) await policy.execute(() => 'ok');
    expect(budget.tokens).toBe(2.5);
    f.attempts.length = 0;
    // The failure takes its token before the budget is asked: 2.5 -> 1.5, not above 2.
    await rejectionOf(policy.execute(f.op));
    expect(f.attempts).toEqual([1]);
    for (let i = 0; i < 4; i++) await policy.execute(() => 'ok');
    expect(budget.tokens).toBe(3.5);
    f.attempts.length = 0;
    await rejectionOf(policy.execute(f.op));
    expect(f.attempts).toEqual([1, 2]); // 3.5 -> 2.5 (retry) -> 1.5 (refused)
    expect(budget.tokens).toBe(1.5);
    for (let i = 0; i < 100; i++) await policy.execute(() => 'ok');
    expect(budget.tokens).toBe(4);
  });

  it('counts thousandths exactly: ten successes of 0.1 make one token', async () => {
    const budget = retryTokenBudget({ maxTokens: 2, tokenRatio: 0.1 });
    const policy = retry({ maxAttempts: 2, backoff: constant(0), budget });
    await rejectionOf(policy.execute(failing().op)); // 2 -> 1 (retry allowed at 1? no: 1 is not above 1)
    expect(budget.tokens).toBe(1);
    for (let i = 0; i < 10; i++) await policy.execute(() => 'ok');
    expect(budget.tokens).toBe(2);
  });

  it('takes nothing for a local rejection (a full bulkhead) or an unhandled failure', async () => {
    const budget = retryTokenBudget({ maxTokens: 10 });
    const full = bulkhead({ limit: 1 });
    const hold = deferred<void>();
    const holding = track(full.execute(() => hold.promise));
    const policy = pipeline(retry({ maxAttempts: 2, backoff: constant(0), budget }), full);
    await rejectionOf(policy.execute(() => 'never'));
    expect(budget.tokens).toBe(10);
    const picky = retry({ budget, handle: (e) => (e as Error).message !== 'fatal' });
    await rejectionOf(picky.execute(() => Promise.reject(new Error('fatal'))));
    expect(budget.tokens).toBe(10);
    hold.resolve();
    await holding.promise;
  });

  it('works in a fused pipeline: a success refills', async () => {
    const budget = retryTokenBudget({ maxTokens: 3, tokenRatio: 1 });
    const p: Policy = pipeline(retry({ maxAttempts: 2, backoff: constant(0), budget }), timeout(1_000));
    await rejectionOf(p.execute(failing().op));
    expect(budget.tokens).toBe(1);
    await p.execute(() => 1);
    expect(budget.tokens).toBe(2);
  });
});

describe('retry({ budget })', () => {
  it('rejects a budget that is not one', () => {
    const e = invalidOptions(() => retry({ budget: { _acquire: () => true } as never }));
    expect(e.problems[0]?.option).toBe('budget');
    expect(e.problems[0]?.expected).toContain('retryBudget()');
  });
});
