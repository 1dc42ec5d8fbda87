import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  type BulkheadRejectedEvent,
  bulkhead,
  type ExecutionCompletedEvent,
  InvalidOptionsError,
  isBulkheadRejectedError,
  isResilienceError,
  pipeline,
  ResilienceError,
  TimeoutError,
  type TimeoutLateOutcomeEvent,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { type Deferred, deferred, invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';

/** Counts add/removeEventListener calls on a real signal by wrapping its methods on the instance. */
function instrument(signal: AbortSignal): { added: number; removed: number } {
  const counts = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<AbortSignal['addEventListener']>) => {
    counts.added++;
    add(...args);
  }) as AbortSignal['addEventListener'];
  signal.removeEventListener = ((...args: Parameters<AbortSignal['removeEventListener']>) => {
    counts.removed++;
    remove(...args);
  }) as AbortSignal['removeEventListener'];
  return counts;
}

/** Lets promise continuations run without moving time. */
const flush = (clock: FakeClock): Promise<void> => clock.flush();

describe('bulkhead: concurrency limit', () => {
  it('runs at most `limit` calls at once and counts active and queued exactly', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 2, queue: 2, clock });
    const gates = [deferred<string>(), deferred<string>(), deferred<string>(), deferred<string>()];
    const started: number[] = [];
    const calls = gates.map((g, i) =>
      track(
        bh.execute(() => {
          started.push(i);
          return g.promise;
        }),
      ),
    );
    await flush(clock);
    expect(started).toEqual([0, 1]);
    expect(bh.active).toBe(2);
    expect(bh.queued).toBe(2);
    expect(bh.available).toBe(0);
    expect(bh.limit).toBe(2);

    gates[0]?.resolve('a');
    await flush(clock);
    expect(calls[0]?.value).toBe('a');
    expect(started).toEqual([0, 1, 2]);
    expect(bh.active).toBe(2);
    expect(bh.queued).toBe(1);

    gates[1]?.reject(new Error('b failed'));
    await flush(clock);
    expect(calls[1]?.error).toEqual(new Error('b failed'));
    expect(started).toEqual([0, 1, 2, 3]);
    expect(bh.active).toBe(2);
    expect(bh.queued).toBe(0);

    gates[2]?.resolve('c');
    gates[3]?.resolve('d');
    await flush(clock);
    expect(calls.map((c) => c.value)).toEqual(['a', undefined, 'c', 'd']);
    expect(bh.active).toBe(0);
    expect(bh.queued).toBe(0);
    expect(bh.available).toBe(2);
  });

  it('releases the slot after a synchronous throw and after a synchronous value', async () => {
    const bh = bulkhead({ limit: 1 });
    const boom = new Error('sync');
    expect(
      await rejectionOf(
        bh.execute(() => {
          throw boom;
        }),
      ),
    ).toBe(boom);
    expect(bh.active).toBe(0);
    expect(await bh.execute(() => 7)).toBe(7);
    expect(bh.active).toBe(0);
  });

  it('admits queued calls in FIFO order', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 5, clock });
    const order: string[] = [];
    const gates = new Map<string, Deferred<void>>();
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const calls = names.map((name) => {
      const g = deferred();
      gates.set(name, g);
      return bh.execute(() => {
        order.push(name);
        return g.promise;
      });
    });
    expect(bh.queued).toBe(5);
    for (const name of names) {
      await flush(clock);
      expect(order.at(-1)).toBe(name);
      gates.get(name)?.resolve();
    }
    await Promise.all(calls);
    expect(order).toEqual(names);
    expect(bh.active).toBe(0);
    expect(bh.queued).toBe(0);
  });

  it('defaults to no queue: the call beyond the limit is rejected at once', async () => {
    const bh = bulkhead({ limit: 1 });
    const g = deferred();
    const first = bh.execute(() => g.promise);
    const e = await rejectionOf(bh.execute(() => 'never'));
    expect(isBulkheadRejectedError(e)).toBe(true);
    expect((e as BulkheadRejectedError).reason).toBe('full');
    expect(bh.queued).toBe(0);
    g.resolve();
    await first;
  });
});

describe('bulkhead: rejection when full', () => {
  it('rejects with BulkheadRejectedError (reason full) and emits bulkhead.rejected, without running the op', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, name: 'db', clock });
    const events: BulkheadRejectedEvent[] = [];
    bh.on('bulkhead.rejected', (e) => events.push(e));
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const queued = bh.execute(() => 'queued');
    let ran = false;
    const e = await rejectionOf(
      bh.execute(
        () => {
          ran = true;
        },
        { operation: 'GET /x' },
      ),
    );
    expect(ran).toBe(false);
    expect(e).toBeInstanceOf(BulkheadRejectedError);
    expect(e).toBeInstanceOf(ResilienceError);
    expect(e).toBeInstanceOf(Error);
    expect(isBulkheadRejectedError(e)).toBe(true);
    expect(isResilienceError(e)).toBe(true);
    const err = e as BulkheadRejectedError;
    expect(err.code).toBe('ERR_BULKHEAD_REJECTED');
    expect(err.reason).toBe('full');
    expect(err.policy).toBe('db');
    expect(err.name).toBe('BulkheadRejectedError');
    expect(err.message).toBe('bulkhead "db" is full (1 running, 1 queued): call rejected');
    expect(events).toEqual([
      {
        type: 'bulkhead.rejected',
        policy: 'db',
        operation: 'GET /x',
        attempt: 1,
        reason: 'full',
        active: 1,
        queued: 1,
      },
    ]);
    expect(bh.active).toBe(1);
    expect(bh.queued).toBe(1);
    g.resolve();
    expect(await queued).toBe('queued');
    await running;
  });

  it('isBulkheadRejectedError is false for other errors and non-errors', () => {
    expect(isBulkheadRejectedError(new TimeoutError('t', 5))).toBe(false);
    expect(isBulkheadRejectedError(new Error('x'))).toBe(false);
    expect(isBulkheadRejectedError('ERR_BULKHEAD_REJECTED')).toBe(false);
    expect(isBulkheadRejectedError(null)).toBe(false);
    expect(isBulkheadRejectedError({ code: 'ERR_BULKHEAD_REJECTED' })).toBe(false);
  });
});

describe('bulkhead: queueTimeoutMs', () => {
  it('rejects a queued call at exactly queueTimeoutMs (not 1 ms earlier) with reason queue_timeout', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, queueTimeoutMs: 100, clock });
    const events: BulkheadRejectedEvent[] = [];
    bh.on('bulkhead.rejected', (e) => events.push(e));
    const g = deferred();
    const running = bh.execute(() => g.promise);
    let ran = false;
    const waiting = track(
      bh.execute(() => {
        ran = true;
      }),
    );
    await clock.advance(99);
    expect(waiting.settled).toBe(false);
    expect(bh.queued).toBe(1);
    await clock.advance(1);
    expect(clock.now()).toBe(100);
    expect(waiting.settled).toBe(true);
    expect(isBulkheadRejectedError(waiting.error)).toBe(true);
    const err = waiting.error as BulkheadRejectedError;
    expect(err.reason).toBe('queue_timeout');
    expect(err.code).toBe('ERR_BULKHEAD_REJECTED');
    expect(err.message).toBe(
      'bulkhead "bulkhead": call waited in the queue longer than its queueTimeoutMs and was rejected',
    );
    expect(ran).toBe(false);
    expect(bh.queued).toBe(0);
    expect(bh.active).toBe(1);
    expect(events.map((e) => e.reason)).toEqual(['queue_timeout']);
    g.resolve();
    await running;
    expect(bh.active).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('measures each wait from its own enqueue time with one shared timer', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 2, queueTimeoutMs: 100, clock });
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const first = track(bh.execute(() => 'first'));
    await clock.advance(30);
    const second = track(bh.execute(() => 'second'));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(69); // t = 99
    expect(first.settled).toBe(false);
    await clock.advance(1); // t = 100
    expect((first.error as BulkheadRejectedError).reason).toBe('queue_timeout');
    expect(second.settled).toBe(false);
    await clock.advance(29); // t = 129
    expect(second.settled).toBe(false);
    await clock.advance(1); // t = 130
    expect((second.error as BulkheadRejectedError).reason).toBe('queue_timeout');
    expect(bh.queued).toBe(0);
    g.resolve();
    await running;
  });

  it('a queued call admitted before its deadline is not rejected later', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, queueTimeoutMs: 100, clock });
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const g2 = deferred<string>();
    const waiting = track(bh.execute(() => g2.promise));
    await clock.advance(50);
    g.resolve();
    await running;
    await clock.flush();
    expect(bh.active).toBe(1);
    expect(bh.queued).toBe(0);
    await clock.advance(200);
    expect(waiting.settled).toBe(false);
    g2.resolve('done');
    await clock.flush();
    expect(waiting.value).toBe('done');
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('bulkhead: abort of a queued call', () => {
  it('leaves the queue at once, rejects with the exact caller reason, and removes its listener', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 3, clock });
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const controller = new AbortController();
    const counts = instrument(controller.signal);
    const order: string[] = [];
    const before = track(bh.execute(() => order.push('before')));
    let ran = false;
    const aborted = track(
      bh.execute(
        () => {
          ran = true;
        },
        { signal: controller.signal },
      ),
    );
    const after = track(bh.execute(() => order.push('after')));
    expect(bh.queued).toBe(3);
    expect(counts.added).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);

    const reason = { why: 'client went away' };
    controller.abort(reason);
    // Synchronously, before any promise continuation runs.
    expect(bh.queued).toBe(2);
    expect(counts.removed).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);

    await clock.flush();
    expect(aborted.settled).toBe(true);
    expect(aborted.error).toBe(reason);
    expect(before.settled).toBe(false);
    expect(after.settled).toBe(false);

    g.resolve();
    await running;
    await clock.flush();
    expect(order).toEqual(['before', 'after']);
    expect(ran).toBe(false);
    expect(bh.active).toBe(0);
    expect(bh.queued).toBe(0);
    expect(counts).toEqual({ added: 1, removed: 1 });
  });

  it('rejects with the default AbortError reason when abort() is called without one', async () => {
    const bh = bulkhead({ limit: 1, queue: 1 });
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const controller = new AbortController();
    const p = bh.execute(() => 1, { signal: controller.signal });
    controller.abort();
    const e = await rejectionOf(p);
    expect(e).toBe(controller.signal.reason);
    expect((e as DOMException).name).toBe('AbortError');
    g.resolve();
    await running;
  });

  it('removes the listener when a queued call is admitted normally', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const controller = new AbortController();
    const counts = instrument(controller.signal);
    const queued = bh.execute(() => 'ok', { signal: controller.signal });
    expect(counts).toEqual({ added: 1, removed: 0 });
    g.resolve();
    await running;
    expect(await queued).toBe('ok');
    expect(counts).toEqual({ added: 1, removed: 1 });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // A later abort changes nothing.
    controller.abort(new Error('late'));
    expect(bh.active).toBe(0);
    expect(bh.queued).toBe(0);
  });

  it('a pre-aborted signal rejects with its reason without queueing or running', async () => {
    const bh = bulkhead({ limit: 1, queue: 1 });
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const reason = new Error('already');
    let ran = false;
    const e = await rejectionOf(
      bh.execute(
        () => {
          ran = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(e).toBe(reason);
    expect(ran).toBe(false);
    expect(bh.queued).toBe(0);
    g.resolve();
    await running;
  });

  it('an abort of a queued call also drops its queue-timeout deadline', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, queueTimeoutMs: 100, clock });
    const events: BulkheadRejectedEvent[] = [];
    bh.on('bulkhead.rejected', (e) => events.push(e));
    const g = deferred();
    const running = bh.execute(() => g.promise);
    const controller = new AbortController();
    const p = track(bh.execute(() => 1, { signal: controller.signal }));
    await clock.advance(10);
    const reason = new Error('stop');
    controller.abort(reason);
    await clock.advance(200);
    expect(p.error).toBe(reason);
    expect(events).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    g.resolve();
    await running;
  });
});

describe('bulkhead: settable limit', () => {
  it('raising the limit drains the queue at once', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 3, clock });
    const gates = [deferred(), deferred(), deferred(), deferred()];
    const started: number[] = [];
    const calls = gates.map((g, i) =>
      bh.execute(() => {
        started.push(i);
        return g.promise;
      }),
    );
    await clock.flush();
    expect(started).toEqual([0]);
    bh.limit = 3;
    expect(bh.limit).toBe(3);
    expect(bh.active).toBe(3);
    expect(bh.queued).toBe(1);
    await clock.flush();
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.resolve();
    await Promise.all(calls);
    expect(started).toEqual([0, 1, 2, 3]);
    expect(bh.active).toBe(0);
  });

  it('lowering the limit lets running calls finish and admits nothing new until active < limit', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 3, queue: 2, clock });
    const gates = [deferred(), deferred(), deferred(), deferred(), deferred()];
    const started: number[] = [];
    const calls = gates.map((g, i) =>
      bh.execute(() => {
        started.push(i);
        return g.promise;
      }),
    );
    await clock.flush();
    expect(started).toEqual([0, 1, 2]);
    expect(bh.queued).toBe(2);
    bh.limit = 1;
    expect(bh.active).toBe(3);
    expect(bh.available).toBe(0);

    gates[0]?.resolve();
    await clock.flush();
    expect(bh.active).toBe(2);
    expect(bh.queued).toBe(2);
    gates[1]?.resolve();
    await clock.flush();
    expect(bh.active).toBe(1);
    expect(bh.queued).toBe(2);
    expect(started).toEqual([0, 1, 2]);
    gates[2]?.resolve();
    await clock.flush();
    expect(bh.active).toBe(1);
    expect(bh.queued).toBe(1);
    expect(started).toEqual([0, 1, 2, 3]);
    gates[3]?.resolve();
    await clock.flush();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    gates[4]?.resolve();
    await Promise.all(calls);
    expect(bh.active).toBe(0);
  });

  it('a new call is queued, not run, while active >= a lowered limit', async () => {
    const bh = bulkhead({ limit: 2, queue: 1 });
    const g1 = deferred();
    const g2 = deferred();
    const c1 = bh.execute(() => g1.promise);
    const c2 = bh.execute(() => g2.promise);
    bh.limit = 1;
    let ran = false;
    const c3 = bh.execute(() => {
      ran = true;
    });
    expect(bh.queued).toBe(1);
    g1.resolve();
    await c1;
    expect(ran).toBe(false);
    g2.resolve();
    await c2;
    await c3;
    expect(ran).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '2', undefined])(
    'the limit setter rejects %s with InvalidOptionsError and keeps the old limit',
    (value) => {
      const bh = bulkhead({ limit: 2 });
      const e = invalidOptions(() => {
        bh.limit = value as number;
      });
      expect(e).toBeInstanceOf(InvalidOptionsError);
      expect(e).toBeInstanceOf(TypeError);
      expect(e.code).toBe('ERR_INVALID_OPTIONS');
      expect(e.policy).toBe('bulkhead');
      expect(e.problems.length).toBeGreaterThanOrEqual(1);
      expect(e.problems[0]?.option).toBe('limit');
      expect(e.problems[0]?.expected).toBe('an integer >= 1');
      expect(bh.limit).toBe(2);
    },
  );
});

describe('bulkhead: dispose', () => {
  it('rejects every queued call with reason disposed, refuses new calls, lets running calls finish, and is idempotent', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 3, queueTimeoutMs: 1_000, clock });
    const events: BulkheadRejectedEvent[] = [];
    bh.on('bulkhead.rejected', (e) => events.push(e));
    const g = deferred<string>();
    const running = track(bh.execute(() => g.promise));
    const ran: number[] = [];
    const queued = [0, 1, 2].map((i) => track(bh.execute(() => ran.push(i))));
    expect(bh.queued).toBe(3);
    expect(bh.disposed).toBe(false);

    bh.dispose();
    expect(bh.disposed).toBe(true);
    expect(bh.queued).toBe(0);
    expect(bh.active).toBe(1);
    expect(clock.pendingTimers).toBe(0);
    await clock.flush();
    for (const q of queued) {
      expect(isBulkheadRejectedError(q.error)).toBe(true);
      expect((q.error as BulkheadRejectedError).reason).toBe('disposed');
      expect((q.error as BulkheadRejectedError).message).toBe('bulkhead "bulkhead" is disposed: call rejected');
    }
    expect(events.map((e) => e.reason)).toEqual(['disposed', 'disposed', 'disposed']);
    expect(running.settled).toBe(false);

    const refused = await rejectionOf(bh.execute(() => ran.push(99)));
    expect((refused as BulkheadRejectedError).reason).toBe('disposed');
    expect(events.map((e) => e.reason)).toEqual(['disposed', 'disposed', 'disposed', 'disposed']);

    bh.dispose();
    expect(events).toHaveLength(4);

    g.resolve('finished');
    await clock.flush();
    expect(running.value).toBe('finished');
    expect(bh.active).toBe(0);
    expect(ran).toEqual([]);

    // Still refused once idle, even though slots are free.
    const again = await rejectionOf(bh.execute(() => ran.push(100)));
    expect((again as BulkheadRejectedError).reason).toBe('disposed');
    expect(ran).toEqual([]);
  });
});

describe('bulkhead: timeouts and slots', () => {
  it('a timeout inside the bulkhead keeps the slot until the op that ignores its signal settles', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const to = timeout({ ms: 100, clock });
    const p = pipeline(bh, to);
    const late: TimeoutLateOutcomeEvent[] = [];
    p.on('timeout.late_outcome', (e) => late.push(e));

    const slow = deferred<string>();
    let signal: AbortSignal | undefined;
    const first = track(
      p.execute((ctx) => {
        signal = ctx.signal;
        return slow.promise;
      }),
    );
    await clock.advance(100);
    expect(first.error).toBeInstanceOf(TimeoutError);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(first.error);
    expect(bh.active).toBe(1);

    let secondRan = false;
    const second = track(
      p.execute(() => {
        secondRan = true;
        return 'second';
      }),
    );
    await clock.flush();
    expect(bh.active).toBe(1);
    expect(bh.queued).toBe(1);
    expect(secondRan).toBe(false);
    await clock.advance(50);
    expect(secondRan).toBe(false);

    slow.resolve('late value');
    await clock.flush();
    expect(late).toEqual([
      {
        type: 'timeout.late_outcome',
        policy: 'timeout',
        operation: 'default',
        attempt: 1,
        outcome: { ok: true, value: 'late value' },
      },
    ]);
    expect(secondRan).toBe(true);
    expect(second.value).toBe('second');
    expect(bh.active).toBe(0);
    expect(bh.queued).toBe(0);
  });

  it('a timeout inside the bulkhead keeps the slot until a late rejection, which is swallowed and reported', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, clock });
    const p = pipeline(bh, timeout({ ms: 100, clock }));
    const late: TimeoutLateOutcomeEvent[] = [];
    p.on('timeout.late_outcome', (e) => late.push(e));
    const slow = deferred<string>();
    const first = track(p.execute(() => slow.promise));
    await clock.advance(100);
    expect(first.error).toBeInstanceOf(TimeoutError);
    expect(bh.active).toBe(1);
    const refused = await rejectionOf(p.execute(() => 'x'));
    expect((refused as BulkheadRejectedError).reason).toBe('full');
    const lateError = new Error('late failure');
    slow.reject(lateError);
    await clock.flush();
    expect(late.map((e) => e.outcome)).toEqual([{ ok: false, error: lateError }]);
    expect(late[0]?.outcome).toEqual({ ok: false, error: lateError });
    expect(bh.active).toBe(0);
    expect(await p.execute(() => 'next')).toBe('next');
  });

  it('a timeout outside the bulkhead also leaves the slot taken until the op settles', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const p = pipeline(timeout({ ms: 100, clock }), bh);
    const late: TimeoutLateOutcomeEvent[] = [];
    p.on('timeout.late_outcome', (e) => late.push(e));

    const slow = deferred<string>();
    const first = track(p.execute(() => slow.promise));
    await clock.advance(100);
    expect(first.error).toBeInstanceOf(TimeoutError);
    expect(bh.active).toBe(1);

    let secondRan = false;
    const second = track(
      p.execute(() => {
        secondRan = true;
        return 'second';
      }),
    );
    await clock.advance(50);
    expect(bh.active).toBe(1);
    expect(bh.queued).toBe(1);
    expect(secondRan).toBe(false);

    slow.resolve('late value');
    await clock.flush();
    expect(late).toEqual([
      {
        type: 'timeout.late_outcome',
        policy: 'timeout',
        operation: 'default',
        attempt: 1,
        outcome: { ok: true, value: 'late value' },
      },
    ]);
    expect(secondRan).toBe(true);
    expect(second.value).toBe('second');
    expect(bh.active).toBe(0);
    expect(bh.queued).toBe(0);
  });

  it('a caller abort under a timeout inside the bulkhead also keeps the slot until the op settles', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, clock });
    const p = pipeline(bh, timeout({ ms: 100, clock }));
    const late: TimeoutLateOutcomeEvent[] = [];
    p.on('timeout.late_outcome', (e) => late.push(e));
    const controller = new AbortController();
    const slow = deferred<string>();
    const first = track(p.execute(() => slow.promise, { signal: controller.signal }));
    await clock.advance(10);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await clock.flush();
    expect(first.error).toBe(reason);
    expect(bh.active).toBe(1);
    slow.resolve('late');
    await clock.flush();
    expect(late.map((e) => e.outcome)).toEqual([{ ok: true, value: 'late' }]);
    expect(bh.active).toBe(0);
  });

  it('a queued call under an outer timeout leaves the queue when the timeout fires', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const p = pipeline(timeout({ ms: 100, clock }), bh);
    const g = deferred<string>();
    const running = track(bh.execute(() => g.promise));
    let ran = false;
    const queued = track(
      p.execute(() => {
        ran = true;
      }),
    );
    await clock.advance(99);
    expect(bh.queued).toBe(1);
    expect(queued.settled).toBe(false);
    await clock.advance(1);
    expect(bh.queued).toBe(0);
    expect(queued.error).toBeInstanceOf(TimeoutError);
    expect(bh.active).toBe(1);
    g.resolve('ok');
    await clock.flush();
    expect(running.value).toBe('ok');
    expect(ran).toBe(false);
    expect(bh.active).toBe(0);
  });

  it('a call that completes within the timeout releases its slot at once', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, clock });
    const p = pipeline(bh, timeout({ ms: 100, clock }));
    const g = deferred<number>();
    const c = track(p.execute(() => g.promise));
    await clock.advance(40);
    expect(bh.active).toBe(1);
    g.resolve(5);
    await clock.flush();
    expect(c.value).toBe(5);
    expect(bh.active).toBe(0);
  });
});

describe('bulkhead: execution.completed', () => {
  it('reports the duration measured on the injected clock', async () => {
    const clock = new FakeClock(1_000);
    const bh = bulkhead({ limit: 1, clock });
    const events: ExecutionCompletedEvent[] = [];
    bh.on('execution.completed', (e) => events.push(e));
    const g = deferred<number>();
    const c = track(bh.execute(() => g.promise, { operation: 'op' }));
    await clock.advance(37);
    g.resolve(1);
    await clock.flush();
    expect(c.value).toBe(1);
    expect(events).toEqual([
      {
        type: 'execution.completed',
        policy: 'bulkhead',
        operation: 'op',
        attempt: 1,
        durationMs: 37,
        result: 'success',
      },
    ]);
  });
});

describe('bulkhead: options', () => {
  it('rejects limit 0 naming the option, the value and what is allowed', () => {
    const e = invalidOptions(() => bulkhead({ limit: 0 }));
    expect(e.policy).toBe('bulkhead');
    expect(e.problems).toEqual([{ option: 'limit', received: '0', expected: 'an integer >= 1' }]);
    expect(e.message).toBe('bulkhead: invalid options\n  - limit: expected an integer >= 1, got 0');
  });

  it('reports every problem at once', () => {
    const e = invalidOptions(() => bulkhead({ limit: 1, queue: -1, typo: 1 } as never));
    expect(e.problems).toEqual([
      {
        option: 'typo',
        received: '1',
        expected: 'a known option (unknown name; allowed: limit, queue, queueTimeoutMs, name, clock)',
      },
      { option: 'queue', received: '-1', expected: 'an integer >= 0 or Infinity' },
    ]);
    expect(e.message).toBe(
      'bulkhead: invalid options\n' +
        '  - typo: expected a known option (unknown name; allowed: limit, queue, queueTimeoutMs, name, clock), got 1\n' +
        '  - queue: expected an integer >= 0 or Infinity, got -1',
    );
  });

  it('reports many invalid values together', () => {
    const e = invalidOptions(() =>
      bulkhead({ limit: 1.5, queue: 0.5, queueTimeoutMs: 0, name: '', clock: {} } as never),
    );
    expect(e.problems).toEqual([
      { option: 'limit', received: '1.5', expected: 'an integer >= 1' },
      { option: 'queue', received: '0.5', expected: 'an integer >= 0 or Infinity' },
      { option: 'queueTimeoutMs', received: '0', expected: 'a number > 0' },
      { option: 'name', received: '""', expected: 'a non-empty string' },
      {
        option: 'clock',
        received: '{}',
        expected: 'a Clock (an object with now(), setTimeout() and clearTimeout())',
      },
    ]);
  });

  it('requires limit', () => {
    expect(invalidOptions(() => bulkhead({} as never)).problems).toEqual([
      { option: 'limit', received: 'undefined', expected: 'an integer >= 1 (required)' },
    ]);
    expect(invalidOptions(() => bulkhead(undefined as never)).problems).toEqual([
      { option: 'limit', received: 'undefined', expected: 'an integer >= 1 (required)' },
    ]);
  });

  it('rejects a non-object', () => {
    expect(invalidOptions(() => bulkhead(4 as never)).problems).toEqual([
      { option: 'options', received: '4', expected: 'an object' },
    ]);
  });

  it('accepts queue Infinity and a custom name', async () => {
    const bh = bulkhead({ limit: 1, queue: Number.POSITIVE_INFINITY, name: 'pool' });
    expect(bh.name).toBe('pool');
    const g = deferred();
    const calls = [bh.execute(() => g.promise)];
    for (let i = 0; i < 50; i++) calls.push(bh.execute(() => undefined));
    expect(bh.queued).toBe(50);
    g.resolve();
    await Promise.all(calls);
    expect(bh.queued).toBe(0);
  });
});
