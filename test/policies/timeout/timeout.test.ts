import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  type Context,
  type ExecutionCompletedEvent,
  InvalidOptionsError,
  isResilienceError,
  isTimeoutError,
  pipeline,
  ResilienceError,
  TimeoutError,
  type TimeoutFiredEvent,
  type TimeoutLateOutcomeEvent,
  TimeoutPolicy,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf, type Tracked, track } from '../../helpers/deferred.js';

/** Records events of both timeout types on a policy. */
function record(p: TimeoutPolicy): { fired: TimeoutFiredEvent[]; late: TimeoutLateOutcomeEvent[] } {
  const fired: TimeoutFiredEvent[] = [];
  const late: TimeoutLateOutcomeEvent[] = [];
  p.on('timeout.fired', (e) => fired.push(e));
  p.on('timeout.late_outcome', (e) => late.push(e));
  return { fired, late };
}

/** Collects unhandled rejections for the duration of `fn`, after letting late rejections surface. */
async function unhandledDuring(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    seen.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    await fn();
    await new Promise<void>((r) => setImmediate(r));
    await new Promise<void>((r) => setImmediate(r));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  return seen;
}

describe('timeout: success', () => {
  it('resolves with the value, aborts nothing, and leaves no timer once its deadline passes', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const { fired, late } = record(to);
    const g = deferred<string>();
    let signal: AbortSignal | undefined;
    const call = track(
      to.execute((ctx) => {
        signal = ctx.signal;
        return g.promise;
      }),
    );
    await clock.advance(60);
    g.resolve('value');
    await clock.flush();
    expect(call.value).toBe('value');
    expect(signal?.aborted).toBe(false);
    await clock.advance(1_000);
    expect(signal?.aborted).toBe(false);
    expect(fired).toEqual([]);
    expect(late).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('removes its listener from the caller signal on success', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const controller = new AbortController();
    const g = deferred<number>();
    const call = to.execute(() => g.promise, { signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    g.resolve(1);
    expect(await call).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    controller.abort(new Error('after'));
    await clock.advance(200);
  });

  it('runs a synchronous op and turns a synchronous throw into a rejection with the same error', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    expect(await to.execute(() => 42)).toBe(42);
    const boom = new Error('sync boom');
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = to.execute(() => {
        throw boom;
      });
    }).not.toThrow();
    expect(await rejectionOf(result as Promise<unknown>)).toBe(boom);
    const frozen = Object.freeze({ code: 'E' });
    expect(
      await rejectionOf(
        to.execute(() => {
          throw frozen;
        }),
      ),
    ).toBe(frozen);
    expect(
      await rejectionOf(
        to.execute(() => {
          throw undefined;
        }),
      ),
    ).toBe(undefined);
  });

  it('rejects with an error of the op (before the deadline) unchanged and without a timeout event', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const { fired, late } = record(to);
    const boom = new Error('op failed');
    const g = deferred<string>();
    const call = track(to.execute(() => g.promise));
    await clock.advance(99);
    g.reject(boom);
    await clock.flush();
    expect(call.error).toBe(boom);
    await clock.advance(10);
    expect(fired).toEqual([]);
    expect(late).toEqual([]);
  });

  it('many sequential calls share one timer', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    for (let i = 0; i < 200; i++) {
      expect(await to.execute(async () => i)).toBe(i);
      expect(clock.pendingTimers).toBeLessThanOrEqual(1);
    }
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
  });

  it('many concurrent calls share one timer', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const gates = Array.from({ length: 50 }, () => deferred<number>());
    const calls = gates.map((g) => to.execute(() => g.promise));
    expect(clock.pendingTimers).toBe(1);
    gates.forEach((g, i) => {
      g.resolve(i);
    });
    expect(await Promise.all(calls)).toEqual(gates.map((_, i) => i));
    expect(clock.pendingTimers).toBeLessThanOrEqual(1);
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('timeout: firing', () => {
  it('fires at exactly ms (not at ms - 1) with TimeoutError, and aborts ctx.signal with that same error', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock, name: 'upstream' });
    const { fired } = record(to);
    let signal: AbortSignal | undefined;
    const call = track(
      to.execute(
        (ctx) => {
          signal = ctx.signal;
          return new Promise<never>(() => {});
        },
        { operation: 'GET /a' },
      ),
    );
    await clock.advance(99);
    expect(call.settled).toBe(false);
    expect(signal?.aborted).toBe(false);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(call.settled).toBe(true);
    const err = call.error as TimeoutError;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toBeInstanceOf(ResilienceError);
    expect(isTimeoutError(err)).toBe(true);
    expect(isResilienceError(err)).toBe(true);
    expect(err.code).toBe('ERR_TIMEOUT');
    expect(err.timeoutMs).toBe(100);
    expect(err.policy).toBe('upstream');
    expect(err.name).toBe('TimeoutError');
    expect(err.message).toBe('timeout "upstream": the operation did not settle within 100 ms');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(err);
    expect(fired).toEqual([
      { type: 'timeout.fired', policy: 'upstream', operation: 'GET /a', attempt: 1, timeoutMs: 100 },
    ]);
  });

  it('aborts a signal first read after the deadline, with the TimeoutError', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 10, clock });
    let ctxSeen: Context | undefined;
    const call = track(
      to.execute((ctx) => {
        ctxSeen = ctx;
        return new Promise<never>(() => {});
      }),
    );
    await clock.advance(10);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(ctxSeen?.signal.aborted).toBe(true);
    expect(ctxSeen?.signal.reason).toBe(call.error);
  });

  it('measures each call from its own start: a call begun at t=50 times out at exactly t=150', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const first = track(to.execute(() => 'quick'));
    await clock.advance(50);
    expect(first.value).toBe('quick');
    const second = track(to.execute(() => new Promise<never>(() => {})));
    await clock.advance(99); // t = 149
    expect(second.settled).toBe(false);
    await clock.advance(1); // t = 150
    expect(second.error).toBeInstanceOf(TimeoutError);
    expect(clock.pendingTimers).toBe(0);
  });

  it('concurrent calls started at different times each time out at their own deadline', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const calls: Tracked<never>[] = [];
    for (let i = 0; i < 3; i++) {
      calls.push(track(to.execute(() => new Promise<never>(() => {}))));
      await clock.advance(10);
    }
    // t = 30
    await clock.advance(69); // t = 99
    expect(calls.map((c) => c.settled)).toEqual([false, false, false]);
    await clock.advance(1); // t = 100
    expect(calls.map((c) => c.settled)).toEqual([true, false, false]);
    await clock.advance(9); // t = 109
    expect(calls.map((c) => c.settled)).toEqual([true, false, false]);
    await clock.advance(1); // t = 110
    expect(calls.map((c) => c.settled)).toEqual([true, true, false]);
    await clock.advance(10); // t = 120
    expect(calls.map((c) => c.settled)).toEqual([true, true, true]);
    for (const c of calls) expect(c.error).toBeInstanceOf(TimeoutError);
    expect(new Set(calls.map((c) => c.error)).size).toBe(3);
  });

  it('never aborts the caller signal and removes its listener after firing', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const controller = new AbortController();
    const call = track(to.execute(() => new Promise<never>(() => {}), { signal: controller.signal }));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await clock.advance(100);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(controller.signal.aborted).toBe(false);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('gives the op a signal distinct from the caller signal, which the caller abort still reaches', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const controller = new AbortController();
    let signal: AbortSignal | undefined;
    const call = track(
      to.execute(
        (ctx) => {
          signal = ctx.signal;
          return new Promise<never>(() => {});
        },
        { signal: controller.signal },
      ),
    );
    expect(signal).not.toBe(controller.signal);
    const reason = new Error('caller');
    controller.abort(reason);
    await clock.flush();
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(reason);
    expect(call.error).toBe(reason);
  });
});

describe('timeout: caller abort', () => {
  it('a caller abort before the deadline rejects with the caller reason, not TimeoutError, and is not a timeout event', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const { fired } = record(to);
    const controller = new AbortController();
    const call = track(to.execute(() => new Promise<never>(() => {}), { signal: controller.signal }));
    await clock.advance(40);
    const reason = { reason: 'user cancelled' };
    controller.abort(reason);
    await clock.flush();
    expect(call.error).toBe(reason);
    expect(isTimeoutError(call.error)).toBe(false);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    await clock.advance(200);
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a pre-aborted signal rejects with its reason without calling the op', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const reason = new Error('pre');
    let called = false;
    const e = await rejectionOf(
      to.execute(
        () => {
          called = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(e).toBe(reason);
    expect(called).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a pre-aborted signal through a pipeline rejects without calling the op', async () => {
    const clock = new FakeClock();
    const p = pipeline(timeout({ ms: 100, clock }), timeout({ ms: 50, clock }));
    const reason = new Error('pre');
    let called = false;
    const e = await rejectionOf(
      p.execute(
        () => {
          called = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(e).toBe(reason);
    expect(called).toBe(false);
  });
});

describe('timeout: nesting', () => {
  it('an outer timeout shorter than the inner one aborts the inner op signal with the outer TimeoutError', async () => {
    const clock = new FakeClock();
    const outer = timeout({ ms: 50, clock, name: 'outer' });
    const inner = timeout({ ms: 100, clock, name: 'inner' });
    const outerEvents = record(outer);
    const innerEvents = record(inner);
    const p = pipeline(outer, inner);
    let signal: AbortSignal | undefined;
    const call = track(
      p.execute((ctx) => {
        signal = ctx.signal;
        return new Promise<never>(() => {});
      }),
    );
    await clock.advance(49);
    expect(call.settled).toBe(false);
    await clock.advance(1);
    const err = call.error as TimeoutError;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.policy).toBe('outer');
    expect(err.timeoutMs).toBe(50);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(err);
    await clock.advance(100);
    expect(outerEvents.fired.map((e) => e.policy)).toEqual(['outer']);
    expect(innerEvents.fired).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an inner timeout shorter than the outer one fires first with its own error', async () => {
    const clock = new FakeClock();
    const p = pipeline(timeout({ ms: 100, clock, name: 'outer' }), timeout({ ms: 30, clock, name: 'inner' }));
    let signal: AbortSignal | undefined;
    const call = track(
      p.execute((ctx) => {
        signal = ctx.signal;
        return new Promise<never>(() => {});
      }),
    );
    await clock.advance(30);
    const err = call.error as TimeoutError;
    expect(err.policy).toBe('inner');
    expect(err.timeoutMs).toBe(30);
    expect(signal?.reason).toBe(err);
  });
});

describe('timeout: late outcomes', () => {
  it('swallows a late rejection (never unhandled) and reports it as timeout.late_outcome', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const { late } = record(to);
    const g = deferred<string>();
    const lateError = new Error('too late');
    let call: Tracked<string> | undefined;
    const unhandled = await unhandledDuring(async () => {
      call = track(to.execute(() => g.promise, { operation: 'slow' }));
      await clock.advance(100);
      g.reject(lateError);
      await clock.flush();
    });
    expect(unhandled).toEqual([]);
    expect(call?.error).toBeInstanceOf(TimeoutError);
    expect(late).toEqual([
      {
        type: 'timeout.late_outcome',
        policy: 'timeout',
        operation: 'slow',
        attempt: 1,
        outcome: { ok: false, error: lateError },
      },
    ]);
    expect(late[0]?.outcome).toEqual({ ok: false, error: lateError });
    const outcome = late[0]?.outcome;
    expect(outcome !== undefined && !outcome.ok && outcome.error === lateError).toBe(true);
  });

  it('reports a late value as timeout.late_outcome', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const { late } = record(to);
    const g = deferred<string>();
    const call = track(to.execute(() => g.promise));
    await clock.advance(100);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(late).toEqual([]);
    g.resolve('late');
    await clock.flush();
    expect(late.map((e) => e.outcome)).toEqual([{ ok: true, value: 'late' }]);
  });

  it('swallows a late rejection even when nobody listens for events', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 5, clock });
    const g = deferred<string>();
    const unhandled = await unhandledDuring(async () => {
      const call = track(to.execute(() => g.promise));
      await clock.advance(5);
      expect(call.error).toBeInstanceOf(TimeoutError);
      g.reject(new Error('late, unobserved'));
      await clock.flush();
    });
    expect(unhandled).toEqual([]);
  });

  it('reports the late outcome of work abandoned by a caller abort', async () => {
    const clock = new FakeClock();
    const to = timeout({ ms: 100, clock });
    const { fired, late } = record(to);
    const controller = new AbortController();
    const g = deferred<string>();
    const call = track(to.execute(() => g.promise, { signal: controller.signal }));
    const reason = new Error('stop');
    controller.abort(reason);
    await clock.flush();
    expect(call.error).toBe(reason);
    const lateError = new Error('late after abort');
    g.reject(lateError);
    await clock.flush();
    expect(late.map((e) => e.outcome)).toEqual([{ ok: false, error: lateError }]);
    expect(fired).toEqual([]);
  });
});

describe('timeout: execution.completed', () => {
  it('reports success and failure with durations from the injected clock', async () => {
    const clock = new FakeClock(500);
    const to = timeout({ ms: 100, clock });
    const events: ExecutionCompletedEvent[] = [];
    to.on('execution.completed', (e) => events.push(e));
    const g = deferred<number>();
    const ok = track(to.execute(() => g.promise));
    await clock.advance(25);
    g.resolve(1);
    await clock.flush();
    expect(ok.value).toBe(1);
    const failed = track(to.execute(() => new Promise<never>(() => {})));
    await clock.advance(100);
    expect(failed.error).toBeInstanceOf(TimeoutError);
    const controller = new AbortController();
    const aborted = track(to.execute(() => new Promise<never>(() => {}), { signal: controller.signal }));
    await clock.advance(7);
    controller.abort();
    await clock.flush();
    expect(aborted.error).toBe(controller.signal.reason);
    expect(events.map((e) => [e.result, e.durationMs])).toEqual([
      ['success', 25],
      ['failure', 100],
      ['aborted', 7],
    ]);
  });
});

describe('timeout: options', () => {
  it('accepts a number or an options object', () => {
    const a = timeout(250);
    expect(a).toBeInstanceOf(TimeoutPolicy);
    expect(a.ms).toBe(250);
    expect(a.name).toBe('timeout');
    const b = timeout({ ms: 2 ** 31 + 5, name: 'long' });
    expect(b.ms).toBe(2 ** 31 + 5);
    expect(b.name).toBe('long');
  });

  it.each([
    [0, '0'],
    [-1, '-1'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
  ])('timeout(%s) throws InvalidOptionsError naming ms', (ms, received) => {
    const e = invalidOptions(() => timeout(ms));
    expect(e).toBeInstanceOf(InvalidOptionsError);
    expect(e).toBeInstanceOf(TypeError);
    expect(e.code).toBe('ERR_INVALID_OPTIONS');
    expect(e.policy).toBe('timeout');
    expect(e.problems).toEqual([{ option: 'ms', received, expected: 'a number > 0' }]);
    expect(e.message).toBe(`timeout: invalid options\n  - ms: expected a number > 0, got ${received}`);
  });

  it('rejects an unknown option', () => {
    const e = invalidOptions(() => timeout({ ms: 5, bad: 1 } as never));
    expect(e.problems).toEqual([
      { option: 'bad', received: '1', expected: 'a known option (unknown name; allowed: ms, name, clock)' },
    ]);
  });

  it('reports every problem at once', () => {
    const e = invalidOptions(() => timeout({ ms: '5', name: 3, clock: null, extra: true } as never));
    expect(e.problems).toEqual([
      { option: 'extra', received: 'true', expected: 'a known option (unknown name; allowed: ms, name, clock)' },
      { option: 'ms', received: '"5"', expected: 'a number > 0' },
      { option: 'name', received: '3', expected: 'a non-empty string' },
      {
        option: 'clock',
        received: 'null',
        expected: 'a Clock (an object with now(), setTimeout() and clearTimeout())',
      },
    ]);
  });

  it('requires ms', () => {
    expect(invalidOptions(() => timeout({} as never)).problems).toEqual([
      { option: 'ms', received: 'undefined', expected: 'a number > 0 (required)' },
    ]);
    expect(invalidOptions(() => timeout(undefined as never)).problems).toEqual([
      { option: 'ms', received: 'undefined', expected: 'a number > 0 (required)' },
    ]);
  });
});
