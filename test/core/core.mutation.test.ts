// Tests written to kill mutants that survived `npm run mutation` in src/core (see docs/mutation-testing.md).
// Each names the behaviour it pins; the mutant it kills is in the comment when that is not obvious.
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { wallClockNow } from '../../src/core/clock.js';
import { CancelScope, rootContext } from '../../src/core/context.js';
import { DeadlineEntry, DeadlineQueue } from '../../src/core/deadline-queue.js';
import { invoke } from '../../src/core/policy.js';
import { systemRandom } from '../../src/core/random.js';
import {
  bulkhead,
  constant,
  MAX_TIMER_DELAY_MS,
  pipeline,
  RETRYABLE,
  retry,
  systemClock,
  TimeoutError,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, track } from '../helpers/deferred.js';

describe('systemClock (mutation)', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('a long timer keeps the process alive unless unref is asked', () => {
    const refd = systemClock.setTimeout(() => undefined, MAX_TIMER_DELAY_MS + 10) as { handle: NodeJS.Timeout };
    const unrefd = systemClock.setTimeout(() => undefined, MAX_TIMER_DELAY_MS + 10, false) as {
      handle: NodeJS.Timeout;
    };
    expect(refd.handle.hasRef()).toBe(true);
    expect(unrefd.handle.hasRef()).toBe(true);
    systemClock.clearTimeout(refd);
    systemClock.clearTimeout(unrefd);
  });

  it('an ordinary timer is unref-ed only when asked', () => {
    const unrefd = systemClock.setTimeout(() => undefined, 1_000, true) as NodeJS.Timeout;
    const refd = systemClock.setTimeout(() => undefined, 1_000, false) as NodeJS.Timeout;
    expect(unrefd.hasRef()).toBe(false);
    expect(refd.hasRef()).toBe(true);
    systemClock.clearTimeout(unrefd);
    systemClock.clearTimeout(refd);
  });

  it('a delay of exactly 2^31-1 ms is one plain Node timer, not a chain', () => {
    const h = systemClock.setTimeout(() => undefined, MAX_TIMER_DELAY_MS, true) as NodeJS.Timeout;
    expect(typeof h.hasRef).toBe('function');
    expect(h.hasRef()).toBe(false);
    systemClock.clearTimeout(h);
  });

  it('a long timer ref-ed by setRef stays ref-ed on its next chunk', () => {
    vi.useFakeTimers();
    let fired = 0;
    const long = systemClock.setTimeout(() => fired++, MAX_TIMER_DELAY_MS + 10, true) as { handle: NodeJS.Timeout };
    systemClock.setRef?.(long, true);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(fired).toBe(0);
    expect(long.handle.hasRef()).toBe(true);
    systemClock.setRef?.(long, false);
    vi.advanceTimersByTime(10);
    expect(fired).toBe(1);
  });

  it('setRef(false) on a cleared long timer is harmless', () => {
    const long = systemClock.setTimeout(() => undefined, MAX_TIMER_DELAY_MS + 10);
    systemClock.clearTimeout(long);
    expect(() => systemClock.setRef?.(long, false)).not.toThrow();
  });

  it('wallClockNow reads the wall clock', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    expect(wallClockNow()).toBe(1_700_000_000_000);
  });

  it('systemRandom reads Math.random', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.25);
    expect(systemRandom()).toBe(0.25);
  });

  it('RETRYABLE is named after bulwark', () => {
    expect(RETRYABLE.description).toBe('bulwark.retryable');
  });
});

class Entry extends DeadlineEntry {
  constructor(
    readonly id: string,
    readonly log: string[],
  ) {
    super();
  }
  _expire(): void {
    this.log.push(`${this.id}@`);
  }
}

describe('DeadlineQueue (mutation)', () => {
  it('clear() detaches every entry, so removing one afterwards changes nothing', () => {
    const clock = new FakeClock();
    const q = new DeadlineQueue(clock, 10);
    const log: string[] = [];
    const a = new Entry('a', log);
    const b = new Entry('b', log);
    q.add(a);
    q.add(b);
    q.clear();
    expect(a._prev).toBeUndefined();
    expect(b._next).toBeUndefined();
    q.remove(a);
    expect(q.size).toBe(0);
  });

  it('re-arms on the first add after clear()', async () => {
    const clock = new FakeClock();
    const q = new DeadlineQueue(clock, 10);
    const log: string[] = [];
    q.add(new Entry('a', log));
    q.clear();
    q.add(new Entry('b', log));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(10);
    expect(log).toEqual(['b@']);
  });

  it('arms its timer ref-ed (a pending deadline keeps the process alive)', () => {
    const clock = new FakeClock();
    const unrefArgs: unknown[] = [];
    const recording = {
      now: () => clock.now(),
      setTimeout: (cb: () => void, ms: number, unref?: boolean) => {
        unrefArgs.push(unref);
        return clock.setTimeout(cb, ms);
      },
      clearTimeout: (h: unknown) => clock.clearTimeout(h),
    };
    const q = new DeadlineQueue(recording, 10);
    q.add(new Entry('a', []));
    expect(unrefArgs).toEqual([false]);
  });
});

describe('ExecutionContext (mutation)', () => {
  it('a caller signal shared by concurrent waits gets one abort listener, removed when the last wait ends', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    const policy = retry({ backoff: constant(100), maxAttempts: 2, clock });
    const failOnce = () => {
      let n = 0;
      return () => {
        if (++n === 1) throw new Error('once');
        return n;
      };
    };
    const a = track(policy.execute(failOnce(), { signal: ac.signal }));
    const b = track(policy.execute(failOnce(), { signal: ac.signal }));
    await clock.flush();
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    await clock.advance(100);
    expect(a.value).toBe(2);
    expect(b.value).toBe(2);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('one wait ending does not unsubscribe another wait on the same signal', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    const short = retry({ backoff: constant(100), maxAttempts: 2, clock });
    const long = retry({ backoff: constant(200), maxAttempts: 2, clock });
    let n = 0;
    const a = track(
      short.execute(
        () => {
          if (++n === 1) throw new Error('once');
          return 'a';
        },
        { signal: ac.signal },
      ),
    );
    const b = track(
      long.execute(
        () => {
          throw new Error('b');
        },
        { signal: ac.signal },
      ),
    );
    await clock.advance(100);
    expect(a.value).toBe('a');
    expect(b.settled).toBe(false);
    ac.abort('stop');
    await clock.flush();
    expect(b.error).toBe('stop');
  });

  it("a timeout's signal is one object for every read, and it is the one that aborts", async () => {
    const clock = new FakeClock();
    const seen: AbortSignal[] = [];
    const p = track(
      timeout({ ms: 50, clock }).execute((ctx) => {
        seen.push(ctx.signal, ctx.signal);
        return new Promise(() => undefined);
      }),
    );
    await clock.advance(50);
    expect(seen[0]).toBe(seen[1]);
    expect(seen[0]?.aborted).toBe(true);
    expect(p.error).toBeInstanceOf(TimeoutError);
  });

  it('a policy entered under an aborted timeout scope rejects with the scope reason', async () => {
    class Scope extends CancelScope {
      _expire(): void {}
      _onAbort(): void {}
    }
    const scope = new Scope();
    scope.abort('scope gone');
    const ctx = rootContext(undefined)._derive(1, scope);
    let ran = false;
    await expect(
      timeout(100)._run(
        ctx,
        () => {
          ran = true;
        },
        invoke,
      ),
    ).rejects.toBe('scope gone');
    expect(ran).toBe(false);
  });

  it('retry inside a timeout stops retrying once the timeout fired', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const policy = pipeline(timeout({ ms: 100, clock }), retry({ backoff: constant(10), maxAttempts: 5, clock }));
    const p = track(
      policy.execute(
        ({ signal }) =>
          new Promise((_, reject) => {
            calls++;
            signal.addEventListener('abort', () => reject(new Error('aborted inside')));
          }),
      ),
    );
    await clock.advance(1_000);
    expect(p.error).toBeInstanceOf(TimeoutError);
    expect(calls).toBe(1);
  });

  it('a queued bulkhead waiter that got its slot is no longer told about its timeout', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ limit: 1, queue: 5, clock });
    const t = timeout({ ms: 100, clock });
    const hold = deferred<string>();
    const first = b.execute(() => hold.promise);
    const second = track(pipeline(t, b).execute(() => new Promise(() => undefined)));
    await clock.advance(50);
    const third = track(pipeline(t, b).execute(() => 'third'));
    expect(b.queued).toBe(2);
    hold.resolve('first');
    await first;
    await clock.flush();
    expect(b.queued).toBe(1);
    await clock.advance(50); // the second call's timeout fires while it holds the slot
    expect(second.error).toBeInstanceOf(TimeoutError);
    expect(b.queued).toBe(1);
    expect(third.settled).toBe(false);
    await clock.advance(50);
    expect(third.error).toBeInstanceOf(TimeoutError);
    expect(b.queued).toBe(0);
  });

  it('work a timeout gave up on, that ended before the call did, does not hold a bulkhead slot', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ limit: 1, clock });
    const policy = pipeline(b, retry({ backoff: constant(100), maxAttempts: 2, clock }), timeout({ ms: 50, clock }));
    const p = track(
      policy.execute(({ attempt }) => {
        if (attempt === 1) return new Promise((resolve) => clock.setTimeout(() => resolve('late'), 80));
        return 'second';
      }),
    );
    await clock.advance(50);
    expect(b.active).toBe(1);
    await clock.advance(30); // the abandoned first attempt ends during the backoff
    await clock.advance(70);
    expect(p.value).toBe('second');
    expect(b.active).toBe(0);
  });

  it('an attempt frees its bulkhead slot at once when only an earlier attempt is still running', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ limit: 2, clock });
    const policy = pipeline(retry({ backoff: constant(0), maxAttempts: 2, clock }), b, timeout({ ms: 50, clock }));
    const firstAttempt = deferred<string>();
    const p = track(policy.execute(({ attempt }) => (attempt === 1 ? firstAttempt.promise : 'second')));
    await clock.advance(50);
    await clock.flush();
    expect(p.value).toBe('second');
    expect(b.active).toBe(1); // the abandoned first attempt keeps its own slot, the second gave its back
    firstAttempt.resolve('late');
    await clock.flush();
    expect(b.active).toBe(0);
  });
});
