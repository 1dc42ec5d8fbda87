import { describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  type CircuitSnapshot,
  circuitBreaker,
  type EventType,
  exponential,
  handleResults,
  InvalidOptionsError,
  isCircuitOpenError,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, rejectionOf } from '../../helpers/deferred.js';

const fail = () => {
  throw new Error('boom');
};
const ok = () => 'ok';

function recordEvents(policy: { on(type: EventType, fn: (e: { type: string }) => void): () => void }) {
  const types: string[] = [];
  for (const t of [
    'circuit.open',
    'circuit.half_open',
    'circuit.closed',
    'circuit.isolated',
    'circuit.probe_expired',
  ] as const) {
    policy.on(t, (e) => types.push(e.type));
  }
  return types;
}

describe('circuitBreaker', () => {
  describe('consecutive window', () => {
    it('opens after N failures in a row, rejects with retryAfterMs, half-opens at exactly halfOpenAfterMs', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 3 }, halfOpenAfterMs: 1_000, clock });
      const events = recordEvents(cb);
      await rejectionOf(cb.execute(fail));
      await rejectionOf(cb.execute(fail));
      await expect(cb.execute(ok)).resolves.toBe('ok'); // a success resets the count
      for (let i = 0; i < 3; i++) await rejectionOf(cb.execute(fail));
      expect(cb.state).toBe('open');
      expect(events).toEqual(['circuit.open']);

      await clock.advance(400);
      const rejected = await rejectionOf(cb.execute(ok));
      expect(rejected).toBeInstanceOf(CircuitOpenError);
      expect(rejected).toMatchObject({ code: 'ERR_CIRCUIT_OPEN', retryAfterMs: 600, state: 'open' });

      await clock.advance(599);
      expect(isCircuitOpenError(await rejectionOf(cb.execute(ok)))).toBe(true);
      await clock.advance(1);
      expect(cb.state).toBe('half_open');
      await expect(cb.execute(ok)).resolves.toBe('ok');
      expect(cb.state).toBe('closed');
      expect(events).toEqual(['circuit.open', 'circuit.half_open', 'circuit.closed']);
    });

    it('opens again on a failed probe and restarts the break', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 100, clock });
      const events = recordEvents(cb);
      await rejectionOf(cb.execute(fail));
      await clock.advance(100);
      await rejectionOf(cb.execute(fail)); // the probe
      expect(cb.state).toBe('open');
      expect(await rejectionOf(cb.execute(ok))).toMatchObject({ retryAfterMs: 100 });
      expect(events).toEqual(['circuit.open', 'circuit.half_open', 'circuit.open']);
    });
  });

  describe('count window', () => {
    it('opens at the failure rate once minimumCalls are in, over the last size calls', async () => {
      const cb = circuitBreaker({ window: { kind: 'count', size: 4 }, failureRate: 0.5, minimumCalls: 4 });
      await rejectionOf(cb.execute(fail));
      await rejectionOf(cb.execute(fail));
      await cb.execute(ok);
      expect(cb.state).toBe('closed'); // 3 calls < minimumCalls
      await rejectionOf(cb.execute(fail)); // 3/4 failed
      expect(cb.state).toBe('open');
    });

    it('forgets outcomes older than the window size', async () => {
      const cb = circuitBreaker({ window: { kind: 'count', size: 4 }, failureRate: 0.75, minimumCalls: 4 });
      await rejectionOf(cb.execute(fail));
      await rejectionOf(cb.execute(fail));
      await cb.execute(ok);
      await cb.execute(ok); // window: F F S S (2/4)
      await cb.execute(ok); // window: F S S S
      await rejectionOf(cb.execute(fail)); // S S S F: 1/4
      await rejectionOf(cb.execute(fail)); // S S F F: 2/4
      expect(cb.state).toBe('closed');
      await rejectionOf(cb.execute(fail)); // S F F F: 3/4
      expect(cb.state).toBe('open');
    });

    it('defaults: count window of 100, failureRate 0.5, minimumCalls 20', async () => {
      const cb = circuitBreaker();
      for (let i = 0; i < 19; i++) await rejectionOf(cb.execute(fail));
      expect(cb.state).toBe('closed');
      await rejectionOf(cb.execute(fail));
      expect(cb.state).toBe('open');
    });

    it('opens on the slow-call rate, measured on the injected clock', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({
        window: { kind: 'count', size: 2 },
        minimumCalls: 2,
        slowCallMs: 100,
        slowCallRate: 1,
        clock,
      });
      const slow = async () => {
        const d = deferred<string>();
        const p = cb.execute(() => d.promise);
        await clock.advance(100);
        d.resolve('late');
        return p;
      };
      await expect(slow()).resolves.toBe('late');
      const fast = cb.execute(() => 'fast');
      await clock.advance(99);
      await fast;
      expect(cb.state).toBe('closed'); // 1 of 2 slow
      await slow();
      await slow();
      expect(cb.state).toBe('open');
    });

    it('counts handled results as failures', async () => {
      const cb = circuitBreaker({
        window: { kind: 'consecutive', threshold: 2 },
        handle: handleResults<number>((status) => status >= 500),
      });
      await expect(cb.execute(() => 503)).resolves.toBe(503);
      await expect(cb.execute(() => 503)).resolves.toBe(503);
      expect(cb.state).toBe('open');
    });
  });

  describe('time window', () => {
    it('judges only the last sizeMs, rotating buckets lazily', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({
        window: { kind: 'time', sizeMs: 1_000, buckets: 10 },
        failureRate: 0.5,
        minimumCalls: 3,
        clock,
      });
      await rejectionOf(cb.execute(fail));
      await rejectionOf(cb.execute(fail));
      await clock.advance(1_000); // both failures age out
      await cb.execute(ok);
      await cb.execute(ok);
      await rejectionOf(cb.execute(fail)); // 1 of 3
      expect(cb.state).toBe('closed');
      await rejectionOf(cb.execute(fail)); // 2 of 4
      expect(cb.state).toBe('open');
      expect(clock.pendingTimers).toBe(0); // no timer per breaker
    });
  });

  describe('half-open', () => {
    it('admits a single probe under 100 concurrent calls', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 1_000, clock });
      await rejectionOf(cb.execute(fail));
      await clock.advance(1_000);
      const probe = deferred<string>();
      let ran = 0;
      const calls = Array.from({ length: 100 }, () =>
        cb.execute(() => {
          ran++;
          return probe.promise;
        }),
      );
      const settled = Promise.allSettled(calls);
      await clock.flush();
      expect(ran).toBe(1);
      probe.resolve('probe ok');
      const results = await settled;
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejections = results.filter((r) => r.status === 'rejected');
      expect(rejections).toHaveLength(99);
      expect((rejections[0] as PromiseRejectedResult).reason).toMatchObject({ state: 'half_open' });
      expect(cb.state).toBe('closed');
    });

    it('admits halfOpenProbes at once and closes after halfOpenSuccesses', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 10,
        halfOpenProbes: 2,
        halfOpenSuccesses: 3,
        clock,
      });
      await rejectionOf(cb.execute(fail));
      await clock.advance(10);
      const a = deferred<string>();
      const b = deferred<string>();
      const pa = cb.execute(() => a.promise);
      const pb = cb.execute(() => b.promise);
      expect(await rejectionOf(cb.execute(ok))).toMatchObject({ state: 'half_open' });
      a.resolve('a');
      b.resolve('b');
      await Promise.all([pa, pb]);
      expect(cb.state).toBe('half_open'); // 2 of 3 successes
      await cb.execute(ok);
      expect(cb.state).toBe('closed');
    });

    it('takes back the slot of a hung probe after the break duration', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 1_000, clock });
      const events = recordEvents(cb);
      await rejectionOf(cb.execute(fail));
      await clock.advance(1_000);
      const hung = deferred<string>();
      const hungCall = cb.execute(() => hung.promise);
      await clock.advance(999);
      expect(await rejectionOf(cb.execute(ok))).toMatchObject({ state: 'half_open', retryAfterMs: 1 });
      await clock.advance(1);
      await expect(cb.execute(ok)).resolves.toBe('ok'); // a fresh probe, admitted
      expect(cb.state).toBe('closed');
      // The hung probe's late failure belongs to an old generation: it changes nothing.
      hung.reject(new Error('late'));
      await rejectionOf(hungCall);
      expect(cb.state).toBe('closed');
      expect(events).toEqual(['circuit.open', 'circuit.half_open', 'circuit.probe_expired', 'circuit.closed']);
    });

    it('frees the probe slot when the caller aborts the probe, and does not count it', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 10, clock });
      await rejectionOf(cb.execute(fail));
      await clock.advance(10);
      const ac = new AbortController();
      const p = cb.execute(
        ({ signal }) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
        { signal: ac.signal },
      );
      ac.abort(new Error('caller'));
      expect(await rejectionOf(p)).toMatchObject({ message: 'caller' });
      expect(cb.state).toBe('half_open');
      await expect(cb.execute(ok)).resolves.toBe('ok');
      expect(cb.state).toBe('closed');
    });

    it('does not leak the probe slot when the predicate throws', async () => {
      const clock = new FakeClock();
      const predicateError = new Error('predicate bug');
      let throwing = false;
      const cb = circuitBreaker({
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 10,
        clock,
        handle: () => {
          if (throwing) throw predicateError;
          return true;
        },
      });
      await rejectionOf(cb.execute(fail));
      await clock.advance(10);
      throwing = true;
      expect(await rejectionOf(cb.execute(fail))).toBe(predicateError);
      expect(cb.state).toBe('half_open');
      throwing = false;
      await expect(cb.execute(ok)).resolves.toBe('ok');
      expect(cb.state).toBe('closed');
    });

    it('grows the break with a backoff of consecutive openings, and resets it on close', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: exponential({ initialMs: 1_000, maxMs: 3_000, jitter: 'none' }),
        clock,
      });
      const breaks: number[] = [];
      cb.on('circuit.open', (e) => breaks.push(e.breakDurationMs));
      await rejectionOf(cb.execute(fail));
      await clock.advance(1_000);
      await rejectionOf(cb.execute(fail));
      await clock.advance(2_000);
      await rejectionOf(cb.execute(fail));
      await clock.advance(3_000);
      await rejectionOf(cb.execute(fail));
      expect(breaks).toEqual([1_000, 2_000, 3_000, 3_000]);
      await clock.advance(3_000);
      await cb.execute(ok);
      await rejectionOf(cb.execute(fail));
      expect(breaks.at(-1)).toBe(1_000);
    });
  });

  it('ignores the success of a call admitted before the breaker opened', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 }, halfOpenAfterMs: 1_000, clock });
    const slow = deferred<string>();
    const stale = cb.execute(() => slow.promise);
    await rejectionOf(cb.execute(fail));
    await rejectionOf(cb.execute(fail));
    expect(cb.state).toBe('open');
    slow.resolve('stale success');
    await expect(stale).resolves.toBe('stale success');
    expect(cb.state).toBe('open');
  });

  it('opens once when concurrent failures cross the threshold together', async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 3 } });
    const opened: unknown[] = [];
    cb.on('circuit.open', (e) => opened.push(e));
    const gates = Array.from({ length: 10 }, () => deferred<never>());
    const calls = gates.map((g) => cb.execute(() => g.promise));
    for (const g of gates) g.reject(new Error('down'));
    await Promise.allSettled(calls);
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({ from: 'closed', failureRate: 3, breakDurationMs: 10_000 });
  });

  it('never counts a caller abort as a failure', async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
    const ac = new AbortController();
    const p = cb.execute(
      ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      { signal: ac.signal },
    );
    ac.abort('bye');
    await expect(p).rejects.toBe('bye');
    expect(cb.state).toBe('closed');
  });

  it('rejects without a captured stack on the fail-fast path', async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
    await rejectionOf(cb.execute(fail));
    const e = (await rejectionOf(cb.execute(ok))) as Error;
    expect(e.stack ?? '').not.toMatch(/\n\s+at /);
    expect(e.message).toMatch(/circuit breaker "circuit-breaker" is open: call not attempted, retry after 10000 ms/);
  });

  describe('isolate and reset', () => {
    it('isolates by reference count and closes when every isolation is released', async () => {
      const cb = circuitBreaker();
      const events = recordEvents(cb);
      const release1 = cb.isolate();
      const release2 = cb.isolate();
      expect(cb.state).toBe('isolated');
      expect(await rejectionOf(cb.execute(ok))).toMatchObject({
        state: 'isolated',
        retryAfterMs: Number.POSITIVE_INFINITY,
      });
      release1();
      release1(); // idempotent
      expect(cb.state).toBe('isolated');
      release2();
      expect(cb.state).toBe('closed');
      await expect(cb.execute(ok)).resolves.toBe('ok');
      expect(events).toEqual(['circuit.isolated', 'circuit.closed']);
    });

    it('reset closes from any state and makes older releases no-ops', async () => {
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      const stale = cb.isolate();
      cb.reset();
      expect(cb.state).toBe('closed');
      const current = cb.isolate();
      stale();
      expect(cb.state).toBe('isolated');
      current();
      await rejectionOf(cb.execute(fail));
      expect(cb.state).toBe('open');
      cb.reset();
      await expect(cb.execute(ok)).resolves.toBe('ok');
    });
  });

  describe('snapshot', () => {
    it('round-trips an open breaker with its remaining break as plain JSON', async () => {
      const clock = new FakeClock();
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 1_000, clock });
      await rejectionOf(cb.execute(fail));
      await clock.advance(300);
      const snap = JSON.parse(JSON.stringify(cb.snapshot())) as CircuitSnapshot;
      expect(snap).toEqual({
        version: 1,
        state: 'open',
        openRemainingMs: 700,
        consecutiveOpens: 1,
        lastBreakMs: 1_000,
        window: { kind: 'consecutive', failures: 1 },
      });
      const clock2 = new FakeClock(50_000);
      const restored = circuitBreaker({
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 1_000,
        clock: clock2,
        initialState: snap,
      });
      expect(await rejectionOf(restored.execute(ok))).toMatchObject({ retryAfterMs: 700 });
      await clock2.advance(700);
      await expect(restored.execute(ok)).resolves.toBe('ok');
    });

    it('round-trips count and time windows', async () => {
      const cb = circuitBreaker({ window: { kind: 'count', size: 3 }, minimumCalls: 3 });
      await rejectionOf(cb.execute(fail));
      await cb.execute(ok);
      await cb.execute(ok);
      await cb.execute(ok);
      expect(cb.snapshot().window).toEqual({ kind: 'count', outcomes: [0, 0, 0] });
      await rejectionOf(cb.execute(fail));
      const snap = cb.snapshot();
      expect(snap.window).toEqual({ kind: 'count', outcomes: [0, 0, 1] });
      const restored = circuitBreaker({ window: { kind: 'count', size: 3 }, minimumCalls: 3, initialState: snap });
      await rejectionOf(restored.execute(fail));
      expect(restored.state).toBe('open');

      const clock = new FakeClock(10_000);
      const timed = circuitBreaker({ window: { kind: 'time', sizeMs: 1_000, buckets: 4 }, minimumCalls: 2, clock });
      await rejectionOf(timed.execute(fail));
      await clock.advance(250);
      await timed.execute(ok);
      const tsnap = timed.snapshot();
      expect(tsnap.window).toEqual({
        kind: 'time',
        buckets: [
          { ageMs: 250, calls: 1, failures: 1, slow: 0 },
          { ageMs: 0, calls: 1, failures: 0, slow: 0 },
        ],
      });
      const clock2 = new FakeClock(0);
      const t2 = circuitBreaker({
        window: { kind: 'time', sizeMs: 1_000, buckets: 4 },
        minimumCalls: 3,
        failureRate: 0.6,
        clock: clock2,
        initialState: tsnap,
      });
      await clock2.advance(500);
      await rejectionOf(t2.execute(fail)); // 2 of 3 failed
      expect(t2.state).toBe('open');
    });
  });

  describe('options', () => {
    it('reports every problem at once', () => {
      let error: unknown;
      try {
        circuitBreaker({
          window: { kind: 'consecutive', threshold: 0 },
          failureRate: 0.5,
          halfOpenProbes: 0,
          halfOpenAfterMs: -1,
          treshold: 3,
        } as never);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      const m = (error as Error).message;
      expect(m).toContain('circuitBreaker: invalid options');
      expect(m).toContain('treshold: expected a known option');
      expect(m).toContain('window.threshold: expected an integer >= 1, got 0');
      expect(m).toContain("failureRate: expected no value: it applies to 'count' and 'time' windows only, got 0.5");
      expect(m).toContain('halfOpenProbes: expected an integer >= 1, got 0');
      expect(m).toContain('halfOpenAfterMs: expected a number >= 0, got -1');
    });

    it('checks rates, minimumCalls against the window, slow-call options and the snapshot', () => {
      expect(() => circuitBreaker({ failureRate: 0 })).toThrow(/failureRate: expected a number in \(0, 1\], got 0/);
      expect(() => circuitBreaker({ failureRate: 1.5 })).toThrow(/got 1.5/);
      expect(() => circuitBreaker({ window: { kind: 'count', size: 10 }, minimumCalls: 11 })).toThrow(
        /minimumCalls: expected an integer <= window.size \(10\), got 11/,
      );
      expect(() => circuitBreaker({ slowCallRate: 0.5 })).toThrow(/slowCallRate: expected slowCallMs to be set too/);
      expect(() => circuitBreaker({ window: { kind: 'sliding' } as never })).toThrow(
        /window.kind: expected one of 'consecutive', 'count', 'time', got "sliding"/,
      );
      expect(() => circuitBreaker({ window: { kind: 'time', buckets: 0 } })).toThrow(
        /window.buckets: expected an integer in \[1, 1000\]/,
      );
      expect(() =>
        circuitBreaker({
          window: { kind: 'consecutive' },
          initialState: {
            version: 1,
            state: 'open',
            openRemainingMs: 1,
            consecutiveOpens: 1,
            lastBreakMs: 1,
            window: { kind: 'count', outcomes: [] },
          },
        }),
      ).toThrow(/initialState.window: expected a window snapshot of kind 'consecutive'/);
      expect(() => circuitBreaker({ initialState: { version: 2 } as never })).toThrow(
        /initialState: expected a snapshot/,
      );
    });
  });
});
