import { describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  constant,
  exponential,
  fallback,
  handleAllErrors,
  handleErrors,
  handleOutcomes,
  handleResults,
  isLocalRejectionError,
  pipeline,
  retry,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, rejectionOf, track } from '../helpers/deferred.js';

// Issue 11, core items 3, 8, 17, 18 and 19. Each test failed against the code before its fix.

const codeOf = (e: unknown): unknown => (e as { code?: unknown }).code;

describe('issue 11: handle is an error predicate when written naturally (item 17)', () => {
  it("retry({ handle: (e) => e.code !== 'EPERM' }) never retries a success", async () => {
    let calls = 0;
    const policy = retry({ backoff: constant(0), handle: (e) => codeOf(e) !== 'EPERM' });
    const op = () => {
      calls++;
      return 'ok';
    };
    await expect(policy.execute(op)).resolves.toBe('ok');
    expect(calls).toBe(1);
  });

  it('the error predicate decides which errors are retried', async () => {
    const eperm = Object.assign(new Error('denied'), { code: 'EPERM' });
    const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    const policy = retry({ maxAttempts: 3, backoff: constant(0), handle: (e) => codeOf(e) !== 'EPERM' });
    let calls = 0;
    expect(
      await rejectionOf(
        policy.execute(() => {
          calls++;
          throw eperm;
        }),
      ),
    ).toBe(eperm);
    expect(calls).toBe(1);
    calls = 0;
    expect(
      await rejectionOf(
        policy.execute(() => {
          calls++;
          throw reset;
        }),
      ),
    ).toBe(reset);
    expect(calls).toBe(3);
  });

  it('a breaker with an error predicate counts neither successes nor unhandled errors', async () => {
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 }, handle: (e) => e === 'down' });
    for (let i = 0; i < 5; i++) await breaker.execute(() => 'fine');
    for (let i = 0; i < 5; i++) await rejectionOf(breaker.execute(() => Promise.reject('bad input')));
    expect(breaker.state).toBe('closed');
    await rejectionOf(breaker.execute(() => Promise.reject('down')));
    await rejectionOf(breaker.execute(() => Promise.reject('down')));
    expect(breaker.state).toBe('open');
  });

  it('a fallback with an error predicate never replaces a result', async () => {
    const fb = fallback({ value: 'fallback', handle: (e) => e instanceof RangeError });
    expect(await fb.execute(() => 'result')).toBe('result');
    expect(await fb.execute(() => Promise.reject(new RangeError('x')))).toBe('fallback');
    const other = new TypeError('y');
    expect(await rejectionOf(fb.execute(() => Promise.reject(other)))).toBe(other);
  });

  it('outcome classifiers still judge results: handleResults, handleOutcomes, handleErrors, handleAllErrors', async () => {
    let calls = 0;
    const results = retry({ maxAttempts: 3, backoff: constant(0), handle: handleResults<number>((n) => n < 2) });
    expect(await results.execute(() => ++calls)).toBe(2);
    calls = 0;
    const outcomes = retry({
      maxAttempts: 3,
      backoff: constant(0),
      handle: handleOutcomes<number>((o) => (o.ok ? o.value === 1 : false)),
    });
    expect(await outcomes.execute(() => ++calls)).toBe(2);
    calls = 0;
    const errorsOnly = retry({ maxAttempts: 3, backoff: constant(0), handle: handleErrors(() => true) });
    expect(await errorsOnly.execute(() => ++calls)).toBe(1);
    calls = 0;
    const all = retry({ maxAttempts: 2, backoff: constant(0), handle: handleAllErrors });
    await rejectionOf(
      all.execute(() => {
        calls++;
        throw new Error('x');
      }),
    );
    expect(calls).toBe(2);
  });

  it('refuses what is neither a function nor a classifier, naming the helpers', () => {
    for (const factory of [
      (handle: never) => retry({ handle }),
      (handle: never) => circuitBreaker({ handle }),
      (handle: never) => fallback({ value: 1, handle }),
    ]) {
      for (const bad of [5, 'x', {}, { errorsOnly: true }, null]) {
        expect(() => factory(bad as never)).toThrow(
          /handle: expected a function \(error\) => boolean, or handleOutcomes/,
        );
      }
    }
  });
});

describe('issue 11: retry fails fast on an open circuit by default (item 18)', () => {
  it('during an outage every call rejects at once with CircuitOpenError, with no wait and no timer', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 30_000, clock });
    const policy = pipeline(retry({ maxAttempts: 3, clock }), breaker);
    const opened = track(policy.execute(() => Promise.reject(new Error('down'))));
    await clock.runAll(); // the first call's backoff, then the open breaker's rejection ends it
    expect(opened.error).toBeInstanceOf(CircuitOpenError);
    const start = clock.now();
    for (let i = 0; i < 10; i++) {
      const t = track(policy.execute(() => 'never runs'));
      await new Promise((resolve) => setImmediate(resolve)); // every microtask runs; the fake clock stands still
      expect(t.error).toBeInstanceOf(CircuitOpenError);
    }
    expect(clock.now()).toBe(start);
    expect(clock.pendingTimers).toBe(0);
  });

  it('still retries an open circuit that admits a probe within the next backoff delay', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 50, clock });
    const delays: number[] = [];
    const r = retry({ maxAttempts: 3, backoff: constant(100), clock });
    r.on('retry.attempt', (e) => delays.push(e.delayMs));
    let calls = 0;
    const t = track(
      pipeline(r, breaker).execute(() => {
        if (++calls === 1) throw new Error('down');
        return 'up';
      }),
    );
    await clock.runAll();
    expect(t.value).toBe('up');
    expect(delays).toEqual([100]);
  });

  it('waits out a longer break only up to an explicit circuitOpenMaxWaitMs', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 2_000, clock });
    const delays: number[] = [];
    const r = retry({ maxAttempts: 4, backoff: constant(100), circuitOpenMaxWaitMs: 5_000, clock });
    r.on('retry.attempt', (e) => delays.push(e.delayMs));
    let calls = 0;
    const t = track(
      pipeline(r, breaker).execute(() => {
        if (++calls === 1) throw new Error('down');
        return 'up';
      }),
    );
    await clock.runAll();
    expect(t.value).toBe('up');
    // 100 ms backoff, then the open breaker's 1,900 ms left.
    expect(delays).toEqual([100, 1_900]);
  });
});

describe("issue 11: a breaker never counts bulwark's own local rejections (item 19)", () => {
  it('a local burst against a healthy upstream leaves the recommended pipeline closed', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, clock });
    // retry > circuitBreaker > timeout > bulkhead, as docs/concepts.md recommends.
    const policy = pipeline(
      retry({ maxAttempts: 3, backoff: constant(10), clock }),
      breaker,
      timeout({ ms: 1_000, clock }),
      bulkhead({ limit: 2, queue: 0 }),
    );
    const upstream = deferred<void>();
    let served = 0;
    const calls = Array.from({ length: 32 }, () =>
      track(
        policy.execute(async () => {
          await upstream.promise;
          served++;
          return 'ok';
        }),
      ),
    );
    await clock.advance(5);
    expect(breaker.state).toBe('closed');
    upstream.resolve();
    await clock.runAll();
    expect(breaker.state).toBe('closed');
    expect(served).toBeGreaterThanOrEqual(2);
    const rejected = calls.filter((c) => c.error !== undefined);
    expect(rejected.every((c) => c.error instanceof BulkheadRejectedError)).toBe(true);
  });

  it('a probe refused by a full inner bulkhead gives its slot back and counts nothing', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 100, clock });
    const inner = bulkhead({ limit: 1, queue: 0 });
    const policy = pipeline(breaker, inner);
    await rejectionOf(policy.execute(() => Promise.reject(new Error('down'))));
    expect(breaker.state).toBe('open');
    await clock.advance(100);
    const hold = deferred<void>();
    const holding = inner.execute(() => hold.promise); // the bulkhead is full, outside the breaker
    expect(await rejectionOf(policy.execute(() => 'probe'))).toBeInstanceOf(BulkheadRejectedError);
    expect(breaker.state).toBe('half_open');
    hold.resolve();
    await holding;
    expect(await policy.execute(() => 'probe')).toBe('probe');
    expect(breaker.state).toBe('closed');
  });

  it('an inner open breaker does not open an outer one, even with handle: () => true', async () => {
    const clock = new FakeClock();
    const inner = circuitBreaker({ clock });
    inner.isolate();
    const outer = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, handle: () => true, clock });
    for (let i = 0; i < 5; i++) {
      expect(await rejectionOf(pipeline(outer, inner).execute(() => 1))).toBeInstanceOf(CircuitOpenError);
    }
    expect(outer.state).toBe('closed');
  });

  it('isLocalRejectionError is total on hostile values', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
      },
    );
    expect(isLocalRejectionError(hostile)).toBe(false);
    expect(isLocalRejectionError(undefined)).toBe(false);
    expect(isLocalRejectionError(Object.create(null))).toBe(false);
  });
});

describe('issue 11: server hints can only delay, and the backoff restarts after one (items 3 and 8)', () => {
  const fails = (hints: (number | undefined)[]) => {
    let n = 0;
    return () => {
      const hint = hints[n++];
      throw Object.assign(new Error('busy'), hint === undefined ? {} : { retryAfterMs: hint });
    };
  };

  it.each([
    ['Infinity', Number.POSITIVE_INFINITY],
    ['NaN', Number.NaN],
  ])('a %s hint stops retry at once, even with maxRetryAfterMs Infinity', async (_, hint) => {
    const clock = new FakeClock();
    const reasons: string[] = [];
    const policy = retry({ clock, backoff: constant(10), maxRetryAfterMs: Number.POSITIVE_INFINITY });
    policy.on('retry.exhausted', (e) => reasons.push(e.reason));
    let calls = 0;
    const t = track(
      policy.execute(() => {
        calls++;
        throw Object.assign(new Error('busy'), { retryAfterMs: hint });
      }),
    );
    await clock.runAll();
    expect(t.error).toMatchObject({ message: 'busy' });
    expect(calls).toBe(1);
    expect(reasons).toEqual(['stopped']);
  });

  it('a hint above the cap stops retry; one at the cap is waited for', async () => {
    const clock = new FakeClock();
    const policy = retry({ clock, backoff: constant(10), maxRetryAfterMs: 1_000 });
    expect(policy.maxRetryAfterMs).toBe(1_000);
    const over = track(policy.execute(fails([1_001])));
    await clock.runAll();
    expect(over.error).toMatchObject({ message: 'busy' });
    const delays: number[] = [];
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    const at = track(policy.execute(fails([1_000, undefined, undefined])));
    await clock.runAll();
    expect(at.error).toMatchObject({ message: 'busy' });
    expect(delays).toEqual([1_000, 10]);
  });

  it('a hint shorter than the backoff does not hasten the next attempt', async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    const policy = retry({ clock, maxAttempts: 2, backoff: constant(300) });
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    const t = track(policy.execute(fails([0, undefined])));
    await clock.runAll();
    expect(t.error).toMatchObject({ message: 'busy' });
    expect(delays).toEqual([300]);
  });

  it('after a hinted delay the backoff restarts from its first step (gRFC A6)', async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    const policy = retry({
      clock,
      maxAttempts: 6,
      backoff: exponential({ initialMs: 100, maxMs: 10_000, jitter: 'none' }),
    });
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    const t = track(policy.execute(fails([undefined, undefined, 500, undefined, undefined, undefined])));
    await clock.runAll();
    expect(t.error).toMatchObject({ message: 'busy' });
    // 100, 200, then the hint (500 > the 400 step), then 100 and 200 again.
    expect(delays).toEqual([100, 200, 500, 100, 200]);
  });

  it('a hint behind a throwing getter is no hint', async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    const policy = retry({ clock, maxAttempts: 2, backoff: constant(7) });
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    const error = Object.defineProperty(new Error('busy'), 'retryAfterMs', {
      get() {
        throw new Error('getter');
      },
    });
    const t = track(
      policy.execute(() => {
        throw error;
      }),
    );
    await clock.runAll();
    expect(t.error).toBe(error);
    expect(delays).toEqual([7]);
  });
});

describe('issue 11: describing a thrown value is total (item 13, the core side)', () => {
  it('a listener that throws a value String() cannot convert does not change the outcome', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const original = process.emitWarning;
    // Keep stderr quiet: the warning is asserted, not printed.
    process.emitWarning = ((warning: string | Error) => {
      warnings.push(typeof warning === 'string' ? warning : warning.message);
    }) as typeof process.emitWarning;
    try {
      const policy = retry({ maxAttempts: 2, backoff: constant(0) });
      policy.on('retry.attempt', () => {
        throw Object.create(null);
      });
      let calls = 0;
      await expect(
        policy.execute(() => {
          if (++calls === 1) throw new Error('once');
          return 'ok';
        }),
      ).resolves.toBe('ok');
      expect(warnings.some((w) => w.includes('listener threw ({})'))).toBe(true);
    } finally {
      process.emitWarning = original;
      process.off('warning', onWarning);
    }
  });
});

describe('issue 11: found by the breaker model', () => {
  it("reset() of an open breaker past its break reports from: 'half_open', as state said", async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 100, clock });
    const from: string[] = [];
    breaker.on('circuit.closed', (e) => from.push(e.from));
    await rejectionOf(breaker.execute(() => Promise.reject(new Error('down'))));
    await clock.advance(100);
    expect(breaker.state).toBe('half_open');
    breaker.reset();
    expect(from).toEqual(['half_open']);
  });
});
