// Tests written to kill mutants that survived `npm run mutation` in retry/backoff.ts and retry/retry.ts.
import { describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  constant,
  exponential,
  handleResults,
  type LinearOptions,
  linear,
  pipeline,
  type RetryAttemptEvent,
  type RetryExhaustedEvent,
  type RetryOptions,
  retry,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';

const lines = (fn: () => unknown) => {
  const e = invalidOptions(fn);
  return [e.policy, ...e.problems.map((p) => `${p.option}: ${p.expected} (got ${p.received})`)];
};

describe('backoff factories (mutation)', () => {
  it('name their kind', () => {
    expect(constant(1).kind).toBe('constant');
    expect(linear().kind).toBe('linear');
    expect(exponential().kind).toBe('exponential');
  });

  it('linear() names each bad option', () => {
    expect(lines(() => linear({ initialMs: -1 }))).toEqual(['linear', 'initialMs: a number >= 0 (got -1)']);
    expect(lines(() => linear({ maxMs: -1 }))).toEqual(['linear', 'maxMs: a number >= 0 (got -1)']);
    expect(lines(() => linear({ extra: 1 } as LinearOptions))).toEqual([
      'linear',
      'extra: a known option (unknown name; allowed: initialMs, stepMs, maxMs) (got 1)',
    ]);
    expect(lines(() => linear({ initialMs: 200, maxMs: 100 }))).toEqual([
      'linear',
      'maxMs: a number >= initialMs (200) (got 100)',
    ]);
    // With another problem already found, maxMs is not compared with initialMs.
    expect(lines(() => linear({ initialMs: 200, maxMs: 100, stepMs: -1 }))).toEqual([
      'linear',
      'stepMs: a number >= 0 (got -1)',
    ]);
    expect(linear({ initialMs: 100, maxMs: 100 }).delay(1, 0, () => 0)).toBe(100);
  });

  it('exponential() names each bad option', () => {
    expect(lines(() => exponential({ maxMs: -1 }))).toEqual(['exponential', 'maxMs: a number >= 0 (got -1)']);
    expect(lines(() => exponential({ extra: 1 } as never))).toEqual([
      'exponential',
      'extra: a known option (unknown name; allowed: initialMs, maxMs, factor, jitter) (got 1)',
    ]);
    expect(lines(() => exponential({ initialMs: 200, maxMs: 100 }))).toEqual([
      'exponential',
      'maxMs: a number >= initialMs (200) (got 100)',
    ]);
    expect(lines(() => exponential({ initialMs: 200, maxMs: 100, factor: 0.5 }))).toEqual([
      'exponential',
      'factor: a number >= 1 (got 0.5)',
    ]);
    expect(exponential({ initialMs: 100, maxMs: 100, jitter: 'none' }).delay(3, 0, () => 0)).toBe(100);
  });

  it('decorrelated jitter draws between initialMs and three times the previous delay, capped', () => {
    const b = exponential({ initialMs: 100, maxMs: 10_000, jitter: 'decorrelated' });
    const half = () => 0.5;
    expect(b.delay(1, 0, half)).toBe(200); // previous below initialMs counts as initialMs: 100 + 0.5 * (300 - 100)
    expect(b.delay(2, 1_000, half)).toBe(1_550); // 100 + 0.5 * (3000 - 100)
    expect(b.delay(3, 50_000, half)).toBe(5_050); // previous capped at maxMs: 100 + 0.5 * (10000 - 100)
    expect(b.delay(3, 50_000, () => 1)).toBe(10_000);
    expect(b.delay(1, 0, () => 0)).toBe(100);
  });

  it('equal jitter is half the delay plus a random half', () => {
    const b = exponential({ initialMs: 100, maxMs: 10_000, jitter: 'equal' });
    expect(b.delay(1, 0, () => 0.5)).toBe(75);
    expect(b.delay(2, 0, () => 0)).toBe(100);
  });
});

describe('retry (mutation)', () => {
  it('names each bad option', () => {
    const bad = (o: Record<string, unknown>) => lines(() => retry(o as RetryOptions));
    expect(bad({ name: '' })).toEqual(['retry', 'name: a non-empty string (got "")']);
    expect(bad({ handle: 1 })).toEqual([
      'retry',
      'handle: a function (error) => boolean, or handleOutcomes(), handleResults(), handleErrors() or handleAllErrors (got 1)',
    ]);
    expect(bad({ random: 1 })).toEqual(['retry', 'random: a function (got 1)']);
    expect(bad({ circuitOpenMaxWaitMs: -1 })).toEqual([
      'retry',
      'circuitOpenMaxWaitMs: a number >= 0 or Infinity (got -1)',
    ]);
  });

  it('a result that handleResults does not select is returned after one attempt', async () => {
    let calls = 0;
    const policy = retry({ handle: handleResults((v) => v === 'again'), backoff: constant(0) });
    await expect(
      policy.execute(() => {
        calls++;
        return 'done';
      }),
    ).resolves.toBe('done');
    expect(calls).toBe(1);
  });

  it('a failure after the caller aborted is rethrown as is, without a retry', async () => {
    const clock = new FakeClock();
    const policy = retry({ backoff: constant(10), clock });
    const attempts: RetryAttemptEvent[] = [];
    policy.on('retry.attempt', (e) => attempts.push(e));
    const ac = new AbortController();
    const failure = new Error('failed while aborting');
    const error = await rejectionOf(
      policy.execute(
        () => {
          ac.abort('caller gone');
          throw failure;
        },
        { signal: ac.signal },
      ),
    );
    expect(error).toBe(failure);
    expect(attempts).toEqual([]);
  });

  it('a backoff function returning a negative number is a TypeError naming the value and attempt', async () => {
    const error = await rejectionOf(retry({ backoff: () => -1 }).execute(() => Promise.reject(new Error('x'))));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe(
      'retry "retry": the backoff function returned -1 after attempt 1; expected a finite number >= 0 or \'stop\'',
    );
  });

  it('gives up on a server hint longer than maxRetryAfterMs (default 60 s) and waits one equal to it', async () => {
    const clock = new FakeClock();
    const policy = retry({ backoff: constant(0), maxAttempts: 2, clock });
    const exhausted: RetryExhaustedEvent[] = [];
    policy.on('retry.exhausted', (e) => exhausted.push(e));
    let calls = 0;
    const tooLong = await rejectionOf(
      policy.execute(() => {
        calls++;
        throw Object.assign(new Error('busy'), { retryAfterMs: 60_001 });
      }),
    );
    expect((tooLong as Error).message).toBe('busy');
    expect(calls).toBe(1);
    expect(exhausted.map((e) => e.reason)).toEqual(['stopped']);

    calls = 0;
    const p = track(
      policy.execute(() => {
        if (++calls === 1) throw Object.assign(new Error('busy'), { retryAfterMs: 60_000 });
        return 'ok';
      }),
    );
    await clock.advance(59_999);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(p.value).toBe('ok');
  });

  it('ignores a retryAfterMs that is not a number', async () => {
    const clock = new FakeClock();
    const policy = retry({ backoff: constant(100), maxAttempts: 2, clock });
    let calls = 0;
    const p = track(
      policy.execute(() => {
        if (++calls === 1) throw Object.assign(new Error('busy'), { retryAfterMs: '70000' });
        return 'ok';
      }),
    );
    await clock.advance(100);
    expect(p.value).toBe('ok');
    expect(calls).toBe(2);
  });

  it("waits an open breaker's retryAfterMs equal to circuitOpenMaxWaitMs, and keeps a longer backoff", async () => {
    const clock = new FakeClock();
    const breaker = () =>
      circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 1_000, clock });
    const attempts: number[] = [];
    const equal = pipeline(
      retry({ backoff: constant(0), circuitOpenMaxWaitMs: 1_000, maxAttempts: 3, clock }),
      breaker(),
    );
    equal.on('retry.attempt', (e) => attempts.push(e.delayMs));
    let calls = 0;
    const p = track(
      equal.execute(() => {
        if (++calls === 1) throw new Error('down');
        return 'up';
      }),
    );
    await clock.advance(1_000);
    expect(p.value).toBe('up');
    expect(attempts).toEqual([0, 1_000]);

    attempts.length = 0;
    calls = 0;
    // Attempt 2 is rejected by the open breaker (1 s left) while the backoff asks for 1.5 s: the longer wins.
    const longer = pipeline(
      retry({ backoff: (n) => (n === 1 ? 0 : 1_500), circuitOpenMaxWaitMs: 5_000, maxAttempts: 3, clock }),
      breaker(),
    );
    longer.on('retry.attempt', (e) => attempts.push(e.delayMs));
    const q = track(
      longer.execute(() => {
        if (++calls === 1) throw new Error('down');
        return 'up';
      }),
    );
    await clock.advance(1_499);
    expect(q.settled).toBe(false);
    await clock.advance(1);
    expect(q.value).toBe('up');
    expect(attempts).toEqual([0, 1_500]);
  });
});
