import { describe, expect, it } from 'vitest';
import { EV } from '../../src/events/emitter.js';
import { bulkhead, circuitBreaker, constant, keyed, pipeline, retry, timeout } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

// Regressions found in review; each failed against the code before its fix.
describe('review fixes', () => {
  it("a queued call aborted with the reason 'disposed' rejects with that reason, not a bulkhead error", async () => {
    const b = bulkhead({ limit: 1, queue: 1 });
    const hold = b.execute(() => new Promise<void>((r) => setImmediate(r)));
    const ac = new AbortController();
    const queued = b.execute(() => 1, { signal: ac.signal });
    const seen: unknown[] = [];
    b.on('bulkhead.rejected', (e) => seen.push(e));
    ac.abort('disposed');
    await expect(queued).rejects.toBe('disposed');
    expect(seen).toEqual([]);
    await hold;
  });

  it('a breaker opens at exactly its failure rate despite floating point (7 of 25 at 0.28)', async () => {
    const cb = circuitBreaker({ window: { kind: 'count', size: 25 }, failureRate: 0.28, minimumCalls: 25 });
    for (let i = 0; i < 18; i++) await cb.execute(() => 1);
    for (let i = 0; i < 7; i++) await cb.execute(() => Promise.reject(new Error('x'))).catch(() => undefined);
    expect(cb.state).toBe('open');
  });

  it('retry gives up at once on a server hint above maxRetryAfterMs', async () => {
    const clock = new FakeClock();
    const reasons: string[] = [];
    const policy = retry({ clock, backoff: constant(10), maxRetryAfterMs: 1_000 });
    policy.on('retry.exhausted', (e) => reasons.push(e.reason));
    let n = 0;
    const error = await policy
      .execute(() => {
        n++;
        throw Object.assign(new Error('come back tomorrow'), { retryAfterMs: 86_400_000 });
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'come back tomorrow' });
    expect(n).toBe(1);
    expect(reasons).toEqual(['stopped']);
    expect(clock.pendingTimers).toBe(0);
    expect(() => retry({ maxRetryAfterMs: -1 })).toThrow(/maxRetryAfterMs: expected a number >= 0 or Infinity, got -1/);
  });

  it('execute(op, null) is the same as no options (never a synchronous throw)', async () => {
    await expect(retry().execute(() => 5, null as never)).resolves.toBe(5);
  });

  it('keyed: an evicted or deleted policy keeps none of the keyed listeners', async () => {
    const created: ReturnType<typeof retry>[] = [];
    const k = keyed(
      (ctx) => ctx.operation,
      () => {
        const p = retry({ backoff: constant(0) });
        created.push(p);
        return p;
      },
      { maxKeys: 1 },
    );
    const off = k.on('retry.attempt', () => undefined);
    await k.execute(() => 1, { operation: 'a' });
    await k.execute(() => 1, { operation: 'b' }); // evicts 'a'
    expect(created[0]?._events.wants(EV.retryAttempt)).toBe(false);
    expect(created[1]?._events.wants(EV.retryAttempt)).toBe(true);
    k.delete('b');
    expect(created[1]?._events.wants(EV.retryAttempt)).toBe(false);
    off();
  });
});

describe('circuitBreaker initialState.window is validated', () => {
  const base = { version: 1, state: 'closed', openRemainingMs: 0, consecutiveOpens: 0, lastBreakMs: 0 } as const;
  it('reports malformed window contents as InvalidOptionsError', () => {
    expect(() => circuitBreaker({ initialState: { ...base, window: { kind: 'count' } } as never })).toThrow(
      /initialState.window.outcomes: expected an array of outcome codes 0..3, got undefined/,
    );
    expect(() =>
      circuitBreaker({
        window: { kind: 'consecutive' },
        initialState: { ...base, window: { kind: 'consecutive', failures: -5 } },
      }),
    ).toThrow(/initialState.window.failures: expected an integer >= 0, got -5/);
    expect(() =>
      circuitBreaker({
        window: { kind: 'time' },
        initialState: { ...base, window: { kind: 'time', buckets: [{ ageMs: 1 }] } } as never,
      }),
    ).toThrow(/initialState.window.buckets: expected an array of/);
  });
});

describe('a bulkhead around several abandoned attempts', () => {
  it('keeps its slot until every attempt a timeout abandoned inside it has settled', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ limit: 1, queue: 1 });
    const gates: (() => void)[] = [];
    const p = pipeline(b, retry({ clock, backoff: constant(0), maxAttempts: 3 }), timeout({ ms: 10, clock }));
    const call = p.execute(() => new Promise<void>((resolve) => gates.push(resolve))).catch((e: unknown) => e);
    for (let i = 0; i < 3; i++) {
      await clock.advance(10);
    }
    expect(await call).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(gates).toHaveLength(3);
    expect(b.active).toBe(1); // three attempts still running
    gates[1]?.();
    await clock.flush();
    expect(b.active).toBe(1);
    gates[0]?.();
    await clock.flush();
    expect(b.active).toBe(1);
    gates[2]?.();
    await clock.flush();
    expect(b.active).toBe(0);
  });
});

describe('more validation', () => {
  it('a clock whose setRef is not a function is refused', () => {
    const clock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => undefined, setRef: 5 };
    expect(() => retry({ clock: clock as never })).toThrow(/clock: expected a Clock/);
  });

  it('a time-window snapshot with more failures than calls is refused', () => {
    expect(() =>
      circuitBreaker({
        window: { kind: 'time' },
        initialState: {
          version: 1,
          state: 'closed',
          openRemainingMs: 0,
          consecutiveOpens: 0,
          lastBreakMs: 0,
          window: { kind: 'time', buckets: [{ ageMs: 0, calls: 1, failures: 5, slow: 0 }] },
        },
      }),
    ).toThrow(/initialState.window.buckets/);
  });
});
