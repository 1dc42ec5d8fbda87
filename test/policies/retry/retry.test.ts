import { describe, expect, it } from 'vitest';
import {
  type AttemptCompletedEvent,
  CircuitOpenError,
  circuitBreaker,
  constant,
  exponential,
  handleErrors,
  handleOutcomes,
  handleResults,
  InvalidOptionsError,
  isRetryExhaustedError,
  linear,
  type Outcome,
  pipeline,
  RETRYABLE,
  type RetryAttemptEvent,
  retry,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { rejectionOf, track } from '../../helpers/deferred.js';

/** An operation that fails `failures` times with fresh errors, then returns 'ok'; records attempts. */
function flaky(failures: number) {
  const seen: number[] = [];
  const errors: Error[] = [];
  const op = ({ attempt }: { attempt: number }) => {
    seen.push(attempt);
    if (seen.length <= failures) {
      const e = new Error(`fail ${seen.length}`);
      errors.push(e);
      throw e;
    }
    return 'ok';
  };
  return { op, seen, errors };
}

describe('retry', () => {
  it('counts maxAttempts including the first attempt and rethrows the last error unchanged', async () => {
    const clock = new FakeClock();
    const policy = retry({ maxAttempts: 3, backoff: constant(0), clock });
    const f = flaky(10);
    const error = await rejectionOf(policy.execute(f.op));
    expect(f.seen).toEqual([1, 2, 3]);
    expect(error).toBe(f.errors[2]);
  });

  it('defaults to 3 attempts', async () => {
    const f = flaky(10);
    const policy = retry({ backoff: constant(0) });
    await rejectionOf(policy.execute(f.op));
    expect(f.seen).toEqual([1, 2, 3]);
    expect(policy.maxAttempts).toBe(3);
  });

  it('returns the value of the first successful attempt', async () => {
    const f = flaky(2);
    await expect(retry({ backoff: constant(0) }).execute(f.op)).resolves.toBe('ok');
    expect(f.seen).toEqual([1, 2, 3]);
  });

  it('waits exactly the constant delay between attempts', async () => {
    const clock = new FakeClock();
    const f = flaky(2);
    const t = track(retry({ backoff: constant(1_000), clock }).execute(f.op));
    await clock.advance(0);
    expect(f.seen).toEqual([1]);
    await clock.advance(999);
    expect(f.seen).toEqual([1]);
    await clock.advance(1);
    expect(f.seen).toEqual([1, 2]);
    await clock.advance(1_000);
    expect(f.seen).toEqual([1, 2, 3]);
    expect(t.value).toBe('ok');
  });

  it('uses exponential backoff with full jitter and 100 ms initial by default (random injected)', async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    const policy = retry({ maxAttempts: 4, clock, random: () => 0.5 });
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    const t = track(policy.execute(flaky(10).op));
    await clock.runAll();
    expect(t.error).toBeInstanceOf(Error);
    expect(delays).toEqual([50, 100, 200]);
  });

  it('applies linear and exponential schedules exactly', async () => {
    const clock = new FakeClock();
    const collect = async (backoff: Parameters<typeof retry>[0]) => {
      const delays: number[] = [];
      const p = retry({ ...backoff, maxAttempts: 6, clock });
      p.on('retry.attempt', (e) => delays.push(e.delayMs));
      const t = track(p.execute(flaky(10).op));
      await clock.runAll();
      expect(t.settled).toBe(true);
      return delays;
    };
    expect(await collect({ backoff: linear({ initialMs: 100, stepMs: 50, maxMs: 260 }) })).toEqual([
      100, 150, 200, 250, 260,
    ]);
    expect(await collect({ backoff: exponential({ initialMs: 10, maxMs: 100, jitter: 'none' }) })).toEqual([
      10, 20, 40, 80, 100,
    ]);
    expect(
      await collect({ backoff: exponential({ initialMs: 10, maxMs: 100, jitter: 'equal' }), random: () => 0 }),
    ).toEqual([5, 10, 20, 40, 50]);
  });

  it('accepts a backoff function of the outcome, and stops on "stop"', async () => {
    const clock = new FakeClock();
    const calls: [number, unknown][] = [];
    const policy = retry({
      maxAttempts: 10,
      clock,
      backoff: (attempt, outcome: Outcome<unknown>) => {
        calls.push([attempt, outcome.ok ? outcome.value : (outcome.error as Error).message]);
        return attempt < 3 ? attempt * 7 : 'stop';
      },
    });
    const f = flaky(10);
    const exhausted: string[] = [];
    policy.on('retry.exhausted', (e) => exhausted.push(e.reason));
    const t = track(policy.execute(f.op));
    await clock.advance(7);
    expect(f.seen).toEqual([1, 2]);
    await clock.advance(14);
    expect(f.seen).toEqual([1, 2, 3]);
    expect(t.error).toBe(f.errors[2]);
    expect(calls).toEqual([
      [1, 'fail 1'],
      [2, 'fail 2'],
      [3, 'fail 3'],
    ]);
    expect(exhausted).toEqual(['stopped']);
  });

  it('rejects with a TypeError carrying the failure when a backoff function returns nonsense', async () => {
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, '5' as unknown as number]) {
      const f = flaky(10);
      const error = await rejectionOf(retry({ backoff: () => bad }).execute(f.op));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/backoff function returned .* expected a finite number >= 0/);
      expect((error as Error).cause).toBe(f.errors[0]);
    }
  });

  it('reports a bad backoff after a handled result with no cause', async () => {
    const error = await rejectionOf(
      retry({ handle: handleResults<number>(() => true), backoff: () => -5 }).execute(() => 1),
    );
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).cause).toBeUndefined();
  });

  it('chunks delays above 2^31-1 ms instead of firing early', async () => {
    const clock = new FakeClock();
    const f = flaky(1);
    const t = track(retry({ backoff: constant(3_000_000_000), clock }).execute(f.op));
    await clock.advance(2_999_999_999);
    expect(f.seen).toEqual([1]);
    await clock.advance(1);
    expect(t.value).toBe('ok');
  });

  it('never retries a caller abort during an attempt', async () => {
    const ac = new AbortController();
    const reason = new Error('caller gave up');
    let calls = 0;
    const error = await rejectionOf(
      retry({ backoff: constant(0) }).execute(
        () => {
          calls++;
          ac.abort(reason);
          throw reason;
        },
        { signal: ac.signal },
      ),
    );
    expect(error).toBe(reason);
    expect(calls).toBe(1);
  });

  it('rejects at once with the caller reason when aborted during a backoff, and clears the timer', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    const f = flaky(10);
    const t = track(retry({ backoff: constant(10_000), clock }).execute(f.op, { signal: ac.signal }));
    await clock.advance(0);
    expect(clock.pendingTimers).toBe(1);
    const reason = new Error('shutdown');
    ac.abort(reason);
    await clock.flush();
    expect(t.error).toBe(reason);
    expect(clock.pendingTimers).toBe(0);
    expect(f.seen).toEqual([1]);
  });

  it('rejects a pre-aborted call without running the operation', async () => {
    const ac = new AbortController();
    ac.abort('already');
    let calls = 0;
    await expect(retry().execute(() => calls++, { signal: ac.signal })).rejects.toBe('already');
    expect(calls).toBe(0);
  });

  it('retries only handled errors', async () => {
    const transient = new Error('transient');
    const fatal = new Error('fatal');
    const outcomes = [transient, fatal];
    let calls = 0;
    const policy = retry({ backoff: constant(0), handle: handleErrors((e) => e === transient) });
    const error = await rejectionOf(
      policy.execute(() => {
        throw outcomes[calls++];
      }),
    );
    expect(error).toBe(fatal);
    expect(calls).toBe(2);
  });

  it('retries handled results and returns the last result when attempts run out', async () => {
    const statuses = [503, 503, 200];
    let i = 0;
    const policy = retry({ backoff: constant(0), handle: handleResults<number>((s) => s >= 500) });
    await expect(policy.execute(() => statuses[i++] as number)).resolves.toBe(200);
    expect(i).toBe(3);
    i = 0;
    await expect(
      retry({ backoff: constant(0), handle: handleResults<number>(() => true) }).execute(() => ++i),
    ).resolves.toBe(3);
  });

  it('rejects with the predicate error when the predicate throws', async () => {
    const boom = new Error('predicate bug');
    const policy = retry({
      handle: () => {
        throw boom;
      },
    });
    await expect(policy.execute(() => 1)).resolves.toBe(1); // a plain predicate sees errors only
    await expect(policy.execute(() => Promise.reject(new Error('x')))).rejects.toBe(boom);
    const outcomes = retry({
      handle: handleOutcomes(() => {
        throw boom;
      }),
    });
    await expect(outcomes.execute(() => 1)).rejects.toBe(boom);
  });

  it('wraps the last error in RetryExhaustedError when onExhausted is "wrap"', async () => {
    const f = flaky(10);
    const error = await rejectionOf(retry({ backoff: constant(0), onExhausted: 'wrap' }).execute(f.op));
    expect(isRetryExhaustedError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', attempts: 3, policy: 'retry' });
    expect((error as Error).cause).toBe(f.errors[2]);
  });

  it('passes non-Error throws through unchanged', async () => {
    for (const thrown of ['str', undefined, null, Object.freeze({ code: 1 })]) {
      let n = 0;
      const error = await rejectionOf(
        retry({ backoff: constant(0) }).execute(() => {
          n++;
          throw thrown;
        }),
      );
      expect(error).toBe(thrown);
      expect(n).toBe(3);
    }
  });

  it('emits retry.attempt and retry.exhausted with the outcome', async () => {
    const events: RetryAttemptEvent[] = [];
    const policy = retry({ name: 'payments', maxAttempts: 2, backoff: constant(0) });
    policy.on('retry.attempt', (e) => events.push(e));
    const exhausted: unknown[] = [];
    policy.on('retry.exhausted', (e) => exhausted.push(e));
    const f = flaky(10);
    await rejectionOf(policy.execute(f.op, { operation: 'quote' }));
    expect(events).toEqual([
      {
        type: 'retry.attempt',
        policy: 'payments',
        operation: 'quote',
        attempt: 1,
        delayMs: 0,
        outcome: { ok: false, error: f.errors[0] },
      },
    ]);
    expect(exhausted).toEqual([
      {
        type: 'retry.exhausted',
        policy: 'payments',
        operation: 'quote',
        attempt: 2,
        reason: 'attempts',
        outcome: { ok: false, error: f.errors[1] },
      },
    ]);
  });

  it('never retries an error that says retryable: false', async () => {
    let n = 0;
    const final = Object.assign(new Error('do not repeat'), { retryable: false });
    await expect(
      retry({ backoff: constant(0) }).execute(() => {
        n++;
        throw final;
      }),
    ).rejects.toBe(final);
    expect(n).toBe(1);
    // Only `false` counts: retryable: true or a non-boolean is an ordinary error.
    n = 0;
    await rejectionOf(
      retry({ backoff: constant(0) }).execute(() => {
        n++;
        throw Object.assign(new Error('again'), { retryable: 'no' });
      }),
    );
    expect(n).toBe(3);
  });

  it('starts no further attempt once the call sets RETRYABLE to false in its properties', async () => {
    let n = 0;
    const stopped: string[] = [];
    const policy = retry({ backoff: constant(0), maxAttempts: 5 });
    policy.on('retry.exhausted', (e) => stopped.push(e.reason));
    const error = await rejectionOf(
      policy.execute((ctx) => {
        n++;
        ctx.properties.set(RETRYABLE, false);
        throw new Error('sent once');
      }),
    );
    expect(error).toMatchObject({ message: 'sent once' });
    expect(n).toBe(1);
    expect(stopped).toEqual(['stopped']);
  });

  it("lets an error's retryAfterMs hint lengthen the delay, never shorten it (Retry-After, pushback)", async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    const policy = retry({ backoff: constant(100), clock });
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    const hints = [2_500, 10, Number.NaN];
    let n = 0;
    const t = track(
      policy.execute(() => {
        const hint = hints[n++];
        throw Object.assign(new Error('busy'), { retryAfterMs: hint });
      }),
    );
    await clock.runAll();
    expect(t.error).toMatchObject({ message: 'busy' });
    expect(delays).toEqual([2_500, 100]);
  });

  it('allows Infinity attempts only explicitly', async () => {
    let n = 0;
    const policy = retry({ maxAttempts: Number.POSITIVE_INFINITY, backoff: constant(0) });
    await expect(
      policy.execute(() => {
        if (++n < 50) throw new Error('again');
        return n;
      }),
    ).resolves.toBe(50);
  });

  describe('with an inner circuit breaker', () => {
    it('waits retryAfterMs of an open circuit before retrying when circuitOpenMaxWaitMs allows it', async () => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 5_000, clock });
      const p = pipeline(
        retry({ maxAttempts: 3, backoff: constant(10), circuitOpenMaxWaitMs: 30_000, clock }),
        breaker,
      );
      const seen: number[] = [];
      const t = track(
        p.execute(({ attempt }) => {
          seen.push(attempt);
          if (attempt === 1) throw new Error('down');
          return 'up';
        }),
      );
      await clock.advance(10);
      // Attempt 2 was rejected by the open breaker (not run); retry waits its retryAfterMs.
      expect(seen).toEqual([1]);
      await clock.advance(4_989);
      expect(seen).toEqual([1]);
      await clock.advance(1);
      expect(seen).toEqual([1, 3]);
      expect(t.value).toBe('up');
    });

    it('keeps the longer backoff when it exceeds retryAfterMs', async () => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 100, clock });
      const delays: number[] = [];
      const policy = retry({ maxAttempts: 3, backoff: constant(500), clock });
      policy.on('retry.attempt', (e) => delays.push(e.delayMs));
      const t = track(
        pipeline(policy, breaker).execute(({ attempt }) => {
          if (attempt === 1) throw new Error('down');
          return 'up';
        }),
      );
      await clock.runAll();
      expect(t.value).toBe('up');
      expect(delays).toEqual([500]);
    });

    it('gives up at once when retryAfterMs exceeds circuitOpenMaxWaitMs', async () => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 60_000, clock });
      const policy = retry({ maxAttempts: 5, backoff: constant(10), circuitOpenMaxWaitMs: 1_000, clock });
      const reasons: string[] = [];
      policy.on('retry.exhausted', (e) => reasons.push(e.reason));
      const t = track(
        pipeline(policy, breaker).execute(() => {
          throw new Error('down');
        }),
      );
      await clock.advance(10);
      expect(t.error).toBeInstanceOf(CircuitOpenError);
      expect(reasons).toEqual(['circuit_open']);
      expect(clock.pendingTimers).toBe(0);
    });
    it('gives up on an isolated breaker even when circuitOpenMaxWaitMs is Infinity', async () => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({ clock });
      breaker.isolate();
      const policy = retry({ backoff: constant(10), circuitOpenMaxWaitMs: Number.POSITIVE_INFINITY, clock });
      const error = await rejectionOf(pipeline(policy, breaker).execute(() => 'never'));
      expect(error).toMatchObject({ code: 'ERR_CIRCUIT_OPEN', state: 'isolated' });
      expect(clock.pendingTimers).toBe(0);
    });
  });

  describe('options', () => {
    it('reports every problem at once, naming policy, option, value and what is allowed', () => {
      let error: unknown;
      try {
        retry({ maxAttempts: 0, attempts: 3, onExhausted: 'explode', backoff: 5 } as never);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toBeInstanceOf(TypeError);
      const message = (error as Error).message;
      expect(message).toContain('retry: invalid options');
      expect(message).toContain('maxAttempts: expected an integer >= 1 or Infinity, got 0');
      expect(message).toContain('attempts: expected a known option (unknown name; allowed: name, maxAttempts');
      expect(message).toContain("onExhausted: expected one of 'rethrow', 'wrap', got \"explode\"");
      expect(message).toContain(
        'backoff: expected a backoff (constant(), linear(), exponential()) or a function, got 5',
      );
      expect((error as InvalidOptionsError).problems).toHaveLength(4);
    });

    it('rejects a non-integer or NaN maxAttempts and a bad clock', () => {
      expect(() => retry({ maxAttempts: 1.5 })).toThrow(/maxAttempts: expected an integer >= 1 or Infinity, got 1.5/);
      expect(() => retry({ maxAttempts: Number.NaN })).toThrow(/got NaN/);
      expect(() => retry({ clock: {} as never })).toThrow(/clock: expected a Clock/);
      expect(() => retry(null as never)).toThrow(/options: expected an object, got null/);
    });

    it('validates backoff factories', () => {
      expect(() => constant(undefined as never)).toThrow(/delayMs: expected a number >= 0, got undefined/);
      expect(() => constant(-1)).toThrow(/constant: invalid options\n {2}- delayMs: expected a number >= 0, got -1/);
      expect(() => exponential({ initialMs: 0 })).toThrow(/initialMs: expected a number > 0, got 0/);
      expect(() => exponential({ initialMs: 100, maxMs: 10 })).toThrow(/maxMs: expected a number >= initialMs \(100\)/);
      expect(() => exponential({ jitter: 'some' as never })).toThrow(
        /jitter: expected one of 'none', 'full', 'equal', 'decorrelated'/,
      );
      expect(() => exponential({ factor: 0.5 })).toThrow(/factor: expected a number >= 1, got 0.5/);
      expect(() => linear({ stepMs: -5, initialMs: 1 })).toThrow(/stepMs: expected a number >= 0, got -5/);
      expect(() => linear({ typo: 1 } as never)).toThrow(/typo: expected a known option/);
    });
  });
});

describe('retry: attempt.completed', () => {
  it('times every attempt, the first included, with its result and error; backoff excluded', async () => {
    const clock = new FakeClock();
    const policy = retry({ maxAttempts: 3, backoff: constant(1_000), clock, name: 'quotes' });
    const events: AttemptCompletedEvent[] = [];
    policy.on('attempt.completed', (e) => events.push(e));
    const errors: Error[] = [];
    let calls = 0;
    const t = track(
      policy.execute(
        async () => {
          calls++;
          await new Promise<void>((r) => clock.setTimeout(r, 10 * calls));
          if (calls < 3) {
            const e = new Error(`fail ${calls}`);
            errors.push(e);
            throw e;
          }
          return 'ok';
        },
        { operation: 'get-quote' },
      ),
    );
    await clock.runAll();
    expect(t.value).toBe('ok');
    expect(events).toEqual([
      {
        type: 'attempt.completed',
        policy: 'quotes',
        operation: 'get-quote',
        attempt: 1,
        durationMs: 10,
        result: 'failure',
        error: errors[0],
      },
      {
        type: 'attempt.completed',
        policy: 'quotes',
        operation: 'get-quote',
        attempt: 2,
        durationMs: 20,
        result: 'failure',
        error: errors[1],
      },
      {
        type: 'attempt.completed',
        policy: 'quotes',
        operation: 'get-quote',
        attempt: 3,
        durationMs: 30,
        result: 'success',
      },
    ]);
    expect('error' in (events[2] as object)).toBe(false);
  });

  it('reports a caller abort as aborted, and emits nothing once unsubscribed', async () => {
    const policy = retry({ backoff: constant(0) });
    const results: string[] = [];
    const off = policy.on('attempt.completed', (e) => results.push(e.result));
    const ac = new AbortController();
    await rejectionOf(
      policy.execute(
        () => {
          ac.abort(new Error('gone'));
          throw new Error('op saw the abort');
        },
        { signal: ac.signal },
      ),
    );
    expect(results).toEqual(['aborted']);
    off();
    await policy.execute(() => 1);
    expect(results).toEqual(['aborted']);
  });

  it('stops emitting for a call in flight once the last listener leaves', async () => {
    const clock = new FakeClock();
    const policy = retry({ backoff: constant(100), clock });
    let n = 0;
    const off = policy.on('attempt.completed', () => n++);
    const f = flaky(2);
    const t = track(policy.execute(f.op));
    await clock.advance(0);
    expect(n).toBe(1);
    off();
    await clock.runAll();
    expect(t.value).toBe('ok');
    expect(n).toBe(1);
  });
});
