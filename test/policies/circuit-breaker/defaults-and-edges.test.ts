import { describe, expect, it } from 'vitest';
import { circuitBreaker, InvalidOptionsError } from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, rejectionOf } from '../../helpers/deferred.js';

const fail = () => {
  throw new Error('boom');
};

describe('circuitBreaker defaults and edges', () => {
  it('a consecutive window defaults to a threshold of 5', async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive' } });
    for (let i = 0; i < 4; i++) await rejectionOf(cb.execute(fail));
    expect(cb.state).toBe('closed');
    await rejectionOf(cb.execute(fail));
    expect(cb.state).toBe('open');
  });

  it('slowCallRate defaults to 1 once slowCallMs is set', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'count', size: 2 }, minimumCalls: 2, slowCallMs: 10, clock });
    const slowCall = async () => {
      const d = deferred<number>();
      const p = cb.execute(() => d.promise);
      await clock.advance(10);
      d.resolve(1);
      return p;
    };
    await slowCall();
    await cb.execute(() => 2);
    expect(cb.state).toBe('closed'); // 50% slow < 100%
    await slowCall();
    await slowCall();
    expect(cb.state).toBe('open');
  });

  it('a time window defaults to 60 s in 10 buckets, counts slow calls, and reports rates when it opens', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'time' }, minimumCalls: 4, slowCallMs: 50, slowCallRate: 0.9, clock });
    const opened: { failureRate: number; slowCallRate: number }[] = [];
    cb.on('circuit.open', (e) => opened.push({ failureRate: e.failureRate, slowCallRate: e.slowCallRate }));
    const slow = deferred<number>();
    const p = cb.execute(() => slow.promise);
    await clock.advance(50);
    slow.resolve(1);
    await p;
    await cb.execute(() => 1);
    await rejectionOf(cb.execute(fail));
    await clock.advance(59_000); // still inside the 60 s window
    expect(cb.state).toBe('closed');
    await rejectionOf(cb.execute(fail)); // 2 of 4 failed
    expect(cb.state).toBe('open');
    expect(opened).toEqual([{ failureRate: 0.5, slowCallRate: 0.25 }]);
  });

  it('emits circuit.rejected with the state and retryAfterMs', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 300, clock });
    const rejected: unknown[] = [];
    cb.on('circuit.rejected', (e) => rejected.push(e));
    await rejectionOf(cb.execute(fail));
    await clock.advance(100);
    await rejectionOf(cb.execute(() => 1, { operation: 'op' }));
    expect(rejected).toEqual([
      {
        type: 'circuit.rejected',
        policy: 'circuit-breaker',
        operation: 'op',
        attempt: 1,
        state: 'open',
        retryAfterMs: 200,
      },
    ]);
  });

  it('takes back a hung probe slot with no listener attached, after a custom halfOpenLeaseMs', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({
      window: { kind: 'consecutive', threshold: 1 },
      halfOpenAfterMs: 0,
      halfOpenLeaseMs: 50,
      clock,
    });
    await rejectionOf(cb.execute(fail));
    const hung = cb.execute(() => new Promise<never>(() => undefined));
    expect(await rejectionOf(cb.execute(() => 1))).toMatchObject({ state: 'half_open', retryAfterMs: 50 });
    await clock.advance(50);
    await expect(cb.execute(() => 'fresh probe')).resolves.toBe('fresh probe');
    expect(cb.state).toBe('closed');
    void hung;
  });

  it('restores an isolated snapshot as isolated until reset', async () => {
    const cb = circuitBreaker();
    cb.isolate();
    const snap = cb.snapshot();
    expect(snap.state).toBe('isolated');
    const restored = circuitBreaker({ initialState: snap });
    expect(restored.state).toBe('isolated');
    expect(await rejectionOf(restored.execute(() => 1))).toMatchObject({ state: 'isolated' });
    restored.reset();
    await expect(restored.execute(() => 1)).resolves.toBe(1);
  });

  it('rejects malformed options and windows', () => {
    expect(() => circuitBreaker(null as never)).toThrow(
      /circuitBreaker: invalid options\n {2}- options: expected an object, got null/,
    );
    expect(() => circuitBreaker({ window: 5 as never })).toThrow(/window: expected an object such as/);
    expect(() => circuitBreaker({ window: { kind: 5 } as never })).toThrow(/window.kind: expected one of/);
    expect(() => circuitBreaker({ window: { kind: 'count', size: 'big' } as never })).toThrow(
      /window.size: expected an integer >= 1, got "big"/,
    );
    expect(() => circuitBreaker({ halfOpenLeaseMs: 0 })).toThrow(/halfOpenLeaseMs: expected a number > 0, got 0/);
    let error: unknown;
    try {
      circuitBreaker({
        window: null as never,
        initialState: {
          version: 1,
          state: 'closed',
          openRemainingMs: 0,
          consecutiveOpens: 0,
          lastBreakMs: 0,
          window: { kind: 'count', outcomes: [] },
        },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toContain("initialState.window: expected a window snapshot of kind 'count'");
  });
});
