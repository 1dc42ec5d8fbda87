import { describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  constant,
  hedge,
  InvalidOptionsError,
  isHedgeCancelledError,
  PropertyKey,
  pipeline,
  retry,
} from '../../../src/index.js';
import { type Delivery, PermanentError, wrapHandler } from '../../../src/integrations/messaging/index.js';
import { FakeClock } from '../../../src/testing/index.js';

/**
 * A Delivery that records how it was settled. The generic wrapper is tested against the interface here; the
 * broker adapters are tested against real brokers in their own files.
 */
function recording<M>(body: M, attempt = 1) {
  const calls: string[] = [];
  const delivery: Delivery<M> = {
    body,
    attempt,
    headers: {},
    ack: () => {
      calls.push('ack');
    },
    retryLater: (ms) => {
      calls.push(`retryLater(${ms})`);
    },
    deadLetter: (d) => {
      calls.push(`deadLetter(${d.reason}, ${d.attempts})`);
    },
    release: () => {
      calls.push('release');
    },
    working: () => {
      calls.push('working');
    },
  };
  return { delivery, calls };
}

describe('wrapHandler', () => {
  it('acks after success only', async () => {
    const seen: string[] = [];
    const handle = wrapHandler(async (body: string) => {
      seen.push(body);
    });
    const { delivery, calls } = recording('hello');
    await expect(handle(delivery)).resolves.toBe('acked');
    expect(seen).toEqual(['hello']);
    expect(calls).toEqual(['ack']);
    expect(handle.inFlight).toBe(0);
  });

  it('retries a transient failure later, with the redelivery delay of that delivery number', async () => {
    const handle = wrapHandler(
      () => {
        throw new Error('db down');
      },
      { redeliveryDelay: (attempt) => attempt * 1_000 },
    );
    const { delivery, calls } = recording('m', 3);
    await expect(handle(delivery)).resolves.toBe('retried');
    expect(calls).toEqual(['retryLater(3000)']);
  });

  it('runs the policy first: in-process retries before a broker-level retry', async () => {
    let n = 0;
    const handle = wrapHandler(
      () => {
        n++;
        throw new Error('flaky');
      },
      { policy: retry({ maxAttempts: 3, backoff: constant(0) }), redeliveryDelay: () => 10 },
    );
    const { delivery, calls } = recording('m');
    await handle(delivery);
    expect(n).toBe(3);
    expect(calls).toEqual(['retryLater(10)']);
  });

  it('dead-letters once the deliveries are used up, and permanent failures at once', async () => {
    const fail = wrapHandler(
      () => {
        throw new Error('still down');
      },
      { maxDeliveries: 3 },
    );
    const last = recording('m', 3);
    await expect(fail(last.delivery)).resolves.toBe('dead_lettered');
    expect(last.calls).toEqual(['deadLetter(exhausted, 3)']);
    for (const error of [new PermanentError('bad order'), new SyntaxError('Unexpected token')]) {
      const first = recording('m', 1);
      const handle = wrapHandler(() => {
        throw error;
      });
      await expect(handle(first.delivery)).resolves.toBe('dead_lettered');
      expect(first.calls).toEqual(['deadLetter(permanent, 1)']);
    }
    const custom = recording('m', 1);
    const byPredicate = wrapHandler(
      () => {
        throw Object.assign(new Error('422'), { status: 422 });
      },
      { isPermanent: (e) => (e as { status?: number }).status === 422 },
    );
    await byPredicate(custom.delivery);
    expect(custom.calls).toEqual(['deadLetter(permanent, 1)']);
  });

  it('a handler timeout aborts ctx.signal and settles once, even when the handler finishes late', async () => {
    const clock = new FakeClock();
    let signal: AbortSignal | undefined;
    let finish!: () => void;
    const handle = wrapHandler(
      (_body: string, ctx) => {
        signal = ctx.signal;
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
      { handlerTimeoutMs: 100, clock, redeliveryDelay: () => 5 },
    );
    const { delivery, calls } = recording('m');
    const result = handle(delivery);
    await clock.advance(100);
    await expect(result).resolves.toBe('retried');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: 'ERR_TIMEOUT' });
    finish(); // the late success must not ack
    await clock.flush();
    expect(calls).toEqual(['retryLater(5)']);
  });

  it('handler timeouts share one timer; each delivery times out at its own deadline, a finished one never', async () => {
    const clock = new FakeClock();
    const finish = new Map<string, () => void>();
    const aborted: string[] = [];
    const handle = wrapHandler(
      (body: string, { signal }) =>
        new Promise<void>((resolve) => {
          finish.set(body, resolve);
          signal.addEventListener('abort', () => aborted.push(body));
        }),
      { handlerTimeoutMs: 100, clock, redeliveryDelay: () => 5 },
    );
    const a = handle(recording('a').delivery);
    await clock.advance(30);
    const b = handle(recording('b').delivery);
    await clock.advance(30);
    const c = handle(recording('c').delivery);
    expect(clock.pendingTimers).toBe(1);
    finish.get('b')?.();
    await expect(b).resolves.toBe('acked');
    await clock.advance(39); // t = 99
    expect(aborted).toEqual([]);
    await clock.advance(1); // t = 100: a's deadline
    await expect(a).resolves.toBe('retried');
    expect(aborted).toEqual(['a']);
    await clock.advance(59); // t = 159
    expect(aborted).toEqual(['a']);
    await clock.advance(1); // t = 160: c's deadline
    await expect(c).resolves.toBe('retried');
    expect(aborted).toEqual(['a', 'c']);
    expect(handle.inFlight).toBe(0);
  });

  it('heartbeats with working() while a long handler runs', async () => {
    const clock = new FakeClock();
    let finish!: () => void;
    const handle = wrapHandler(
      () =>
        new Promise<void>((resolve) => {
          finish = resolve;
        }),
      { workingEveryMs: 30, clock },
    );
    const { delivery, calls } = recording('m');
    const result = handle(delivery);
    await clock.advance(95);
    finish();
    await expect(result).resolves.toBe('acked');
    expect(calls).toEqual(['working', 'working', 'working', 'ack']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an open breaker pauses the consumer until it may admit a call, and holds the message that long', async () => {
    const clock = new FakeClock();
    const events: string[] = [];
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 5_000, clock });
    const handle = wrapHandler(
      () => {
        throw new Error('dependency down');
      },
      {
        policy: pipeline(breaker),
        redeliveryDelay: () => 100,
        clock,
        onPause: (ms) => events.push(`pause(${ms})`),
        onResume: () => events.push('resume'),
      },
    );
    await handle(recording('first').delivery); // opens the breaker
    const second = recording('second');
    await expect(handle(second.delivery)).resolves.toBe('retried');
    expect(second.calls).toEqual(['retryLater(5000)']);
    expect(handle.paused).toBe(true);
    expect(events).toEqual(['pause(5000)']);
    await clock.advance(5_000);
    expect(handle.paused).toBe(false);
    expect(events).toEqual(['pause(5000)', 'resume']);
  });

  it('shutdown releases new deliveries, waits for those in flight, then aborts and releases them', async () => {
    const clock = new FakeClock();
    let quick!: () => void;
    const handle = wrapHandler(
      (body: string, { signal }) =>
        new Promise<void>((resolve, reject) => {
          if (body === 'quick') quick = resolve;
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
      { clock },
    );
    const a = recording('quick');
    const b = recording('stuck');
    const ra = handle(a.delivery);
    const rb = handle(b.delivery);
    expect(handle.inFlight).toBe(2);
    expect(handle.stopping).toBe(false);
    const done = handle.shutdown(1_000);
    expect(handle.stopping).toBe(true);
    const c = recording('late');
    await expect(handle(c.delivery)).resolves.toBe('released');
    quick();
    await expect(ra).resolves.toBe('acked');
    await clock.advance(1_000);
    await done;
    await expect(rb).resolves.toBe('released');
    expect([a.calls, b.calls, c.calls]).toEqual([['ack'], ['release'], ['release']]);
    expect(handle.inFlight).toBe(0);
  });

  it('shutdown leaves alone the signal of a handler that finished, even while its settlement is still pending', async () => {
    const clock = new FakeClock();
    const signals: AbortSignal[] = [];
    let ackDone!: () => void;
    const handle = wrapHandler(
      (body: string, { signal }) => {
        signals.push(signal);
        if (body === 'done') return Promise.resolve();
        return new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      },
      { clock },
    );
    const a = recording('done');
    const slowAck: Delivery<string> = {
      ...a.delivery,
      // The broker has not confirmed the ack yet when the grace period ends.
      ack: () =>
        new Promise<void>((resolve) => {
          ackDone = resolve;
        }),
    };
    const ra = handle(slowAck);
    const rb = handle(recording('stuck').delivery);
    await clock.flush();
    const done = handle.shutdown(100);
    await clock.advance(100);
    expect(signals[0]?.aborted).toBe(false);
    expect(signals[1]?.aborted).toBe(true);
    await expect(rb).resolves.toBe('released');
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    await clock.flush();
    expect(finished).toBe(false); // shutdown waits for the ack to reach the broker
    ackDone();
    await done;
    await expect(ra).resolves.toBe('acked');
    expect(signals[0]?.aborted).toBe(false);
  });

  it('shutdown() checks its grace period, and a refused one does not stop the handler', async () => {
    const handle = wrapHandler(() => undefined);
    for (const bad of [-1, Number.NaN, '5' as unknown as number]) {
      await expect(handle.shutdown(bad)).rejects.toThrow(InvalidOptionsError);
    }
    await expect(handle.shutdown(Number.NaN)).rejects.toThrow(
      /wrapHandler shutdown\(\): invalid options\n {2}- graceMs: expected a number >= 0 or Infinity, got NaN/,
    );
    expect(handle.stopping).toBe(false);
  });

  it('checks its options', () => {
    expect(() => wrapHandler(5 as never)).toThrow(InvalidOptionsError);
    expect(() => wrapHandler(() => undefined, { maxDeliveries: 0, retries: 1 } as never)).toThrow(
      /wrapHandler: invalid options\n {2}- retries: expected a known option[\s\S]*maxDeliveries: expected an integer >= 1 or Infinity, got 0/,
    );
  });
});

describe('wrapHandler when the broker side fails', () => {
  it('rejects with the settle error instead of hanging, and a failing heartbeat is never uncaught', async () => {
    const clock = new FakeClock();
    const refused = new Error('channel closed');
    let finish!: () => void;
    const handle = wrapHandler(
      () =>
        new Promise<void>((resolve) => {
          finish = resolve;
        }),
      { workingEveryMs: 10, clock },
    );
    const { delivery } = recording('m');
    const broken: Delivery<string> = {
      ...delivery,
      ack: () => {
        throw refused;
      },
      working: () => Promise.reject(new Error('heartbeat refused')),
    };
    const result = handle(broken);
    await clock.advance(25); // two heartbeats, both failing
    finish();
    await expect(result).rejects.toBe(refused);
    expect(handle.inFlight).toBe(0);
  });
});

describe('wrapHandler: the context and bookkeeping of each delivery', () => {
  it('with no policy, the handler gets attempt 1, operation "message", its delivery and one property bag', async () => {
    const KEY = new PropertyKey<number>('k');
    const seen: unknown[] = [];
    const handle = wrapHandler((_body: string, ctx) => {
      ctx.properties.set(KEY, 7);
      seen.push(ctx.attempt, ctx.operation, ctx.delivery, ctx.properties.get(KEY), ctx.signal.aborted);
      // The handler sees its context, not the wrapper's internals; the delivery is an own field, as under a policy.
      seen.push('abort' in ctx, Object.keys(ctx), { ...ctx }.delivery);
    });
    const { delivery } = recording('m');
    await expect(handle(delivery)).resolves.toBe('acked');
    expect(seen).toEqual([1, 'message', delivery, 7, false, false, ['delivery'], delivery]);
  });

  it('each delivery has its own context: properties and signals are not shared', async () => {
    const KEY = new PropertyKey<string>('k');
    const bags: (string | undefined)[] = [];
    const signals: AbortSignal[] = [];
    const handle = wrapHandler(async (body: string, ctx) => {
      bags.push(ctx.properties.get(KEY));
      ctx.properties.set(KEY, body);
      signals.push(ctx.signal);
    });
    await Promise.all([handle(recording('a').delivery), handle(recording('b').delivery)]);
    expect(bags).toEqual([undefined, undefined]);
    expect(signals[0]).not.toBe(signals[1]);
  });

  it('deliveries settled out of order leave the in-flight count right; shutdown releases exactly the rest, in order', async () => {
    const clock = new FakeClock();
    const finish = new Map<string, () => void>();
    const handle = wrapHandler(
      (body: string, { signal }) =>
        new Promise<void>((resolve, reject) => {
          finish.set(body, resolve);
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
      { clock },
    );
    const order: string[] = [];
    const runs = ['1', '2', '3', '4', '5'].map((body) => {
      const r = recording(body);
      const result = handle({ ...r.delivery, release: () => void order.push(`release ${body}`) });
      return { result, calls: r.calls };
    });
    expect(handle.inFlight).toBe(5);
    finish.get('2')?.();
    finish.get('4')?.();
    await expect(runs[1]?.result).resolves.toBe('acked');
    await expect(runs[3]?.result).resolves.toBe('acked');
    expect(handle.inFlight).toBe(3);
    finish.get('5')?.();
    await expect(runs[4]?.result).resolves.toBe('acked');
    expect(handle.inFlight).toBe(2);
    const done = handle.shutdown(10);
    await clock.advance(10);
    await done;
    expect(order).toEqual(['release 1', 'release 3']);
    expect(await Promise.all(runs.map((r) => r.result))).toEqual(['released', 'acked', 'released', 'acked', 'acked']);
    expect(handle.inFlight).toBe(0);
  });

  it('a settle method returning a thenable is awaited; its rejection rejects the delivery', async () => {
    const refused = new Error('nack refused');
    const handle = wrapHandler(async () => undefined);
    const { delivery } = recording('m');
    let acked = false;
    const thenable = {
      // biome-ignore lint/suspicious/noThenProperty: a thenable, on purpose
      then(ok: () => void) {
        acked = true;
        ok();
      },
    };
    await expect(handle({ ...delivery, ack: () => thenable as unknown as Promise<void> })).resolves.toBe('acked');
    expect(acked).toBe(true);
    await expect(handle({ ...delivery, ack: () => Promise.reject(refused) })).rejects.toBe(refused);
    expect(handle.inFlight).toBe(0);
  });

  it('a delivery whose attempt cannot be read rejects once it fails, instead of hanging (or throwing in a timer)', async () => {
    const clock = new FakeClock();
    const broken = new Error('attempt unreadable');
    const withBrokenAttempt = (d: Delivery<string>): Delivery<string> =>
      Object.defineProperty({ ...d }, 'attempt', {
        get() {
          throw broken;
        },
      }) as Delivery<string>;
    const failing = wrapHandler(
      () => {
        throw new Error('down');
      },
      { clock },
    );
    await expect(failing(withBrokenAttempt(recording('m').delivery))).rejects.toBe(broken);
    expect(failing.inFlight).toBe(0);
    // The handler timeout settles from a timer: the failure must reach the promise, not the timer's caller.
    const stuck = wrapHandler(() => new Promise<void>(() => undefined), { clock, handlerTimeoutMs: 50 });
    const result = expect(stuck(withBrokenAttempt(recording('m').delivery))).rejects.toBe(broken);
    await clock.advance(50);
    await result;
    expect(stuck.inFlight).toBe(0);
  });
});

describe('wrapHandler with a hedge in its policy', () => {
  it('runs the handler twice for one delivery, settles it once, and aborts the losing run', async () => {
    const started: number[] = [];
    const losers: unknown[] = [];
    const handle = wrapHandler(
      (_body: string, ctx) => {
        started.push(ctx.attempt);
        if (ctx.attempt === 2) return Promise.resolve();
        return new Promise<void>((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            losers.push(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        });
      },
      { policy: hedge({ delayMs: 0 }) }, // parallel: both runs start at once
    );
    const { delivery, calls } = recording('m');
    await expect(handle(delivery)).resolves.toBe('acked');
    expect(started).toEqual([1, 2]);
    expect(calls).toEqual(['ack']);
    expect(losers).toHaveLength(1);
    expect(isHedgeCancelledError(losers[0])).toBe(true);
    expect(handle.inFlight).toBe(0);
  });
});
