import { describe, expect, it } from 'vitest';
import {
  type Context,
  circuitBreaker,
  type HedgeLateOutcomeEvent,
  type HedgeLaunchedEvent,
  hedge,
  isHedgeCancelledError,
  isTimeoutError,
  Properties,
  pipeline,
  RETRYABLE,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((r) => setImmediate(r));
};

interface Script {
  readonly ms: number;
  readonly ok: boolean;
}

/** An operation whose attempt n settles after script[n-1].ms on the fake clock, honouring its signal. */
function scripted(clock: FakeClock, script: readonly Script[]) {
  const started: number[] = [];
  const aborted: { attempt: number; reason: unknown; at: number }[] = [];
  const op = (ctx: Context): Promise<string> => {
    const n = started.length;
    started.push(ctx.attempt);
    const s = script[Math.min(n, script.length - 1)] as Script;
    return new Promise<string>((resolve, reject) => {
      const t = clock.setTimeout(
        () => (s.ok ? resolve(`v${ctx.attempt}`) : reject(new Error(`e${ctx.attempt}`))),
        s.ms,
      );
      ctx.signal.addEventListener('abort', () => {
        clock.clearTimeout(t);
        aborted.push({ attempt: ctx.attempt, reason: ctx.signal.reason, at: clock.now() });
        reject(ctx.signal.reason);
      });
    });
  };
  return { op, started, aborted };
}

describe('hedge', () => {
  it('has Polly-like defaults: one hedge after 2 s', () => {
    const h = hedge();
    expect([h.maxHedgedAttempts, h.name]).toEqual([1, 'hedge']);
  });

  it('latency mode: starts a hedge after the delay, the first success wins, the loser is aborted', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 20, clock });
    const launched: HedgeLaunchedEvent[] = [];
    const late: HedgeLateOutcomeEvent[] = [];
    h.on('hedge.launched', (e) => launched.push(e));
    h.on('hedge.late_outcome', (e) => late.push(e));
    const s = scripted(clock, [
      { ms: 100, ok: true },
      { ms: 10, ok: true },
    ]);
    const call = track(h.execute(s.op));
    await clock.advance(19);
    expect(s.started).toEqual([1]);
    await clock.advance(1);
    expect(s.started).toEqual([1, 2]);
    expect(launched.map((e) => [e.attempt, e.trigger])).toEqual([[2, 'delay']]);
    await clock.advance(10);
    await flush();
    expect(call.value).toBe('v2');
    expect(s.aborted.map((a) => [a.attempt, a.at])).toEqual([[1, 30]]);
    const reason = s.aborted[0]?.reason;
    expect(isHedgeCancelledError(reason)).toBe(true);
    expect((reason as { winner: number }).winner).toBe(2);
    await flush();
    expect(late.map((e) => [e.attempt, e.outcome.ok])).toEqual([[1, false]]);
    await clock.runAll();
    expect(clock.pendingTimers).toBe(0);
  });

  it('starts no hedge when the primary settles first, and leaves no timer behind', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, clock });
    const s = scripted(clock, [{ ms: 10, ok: true }]);
    for (let i = 0; i < 3; i++) {
      const call = track(h.execute(s.op));
      await clock.advance(10);
      await flush();
      expect(call.value).toBe('v1');
    }
    expect(s.started).toEqual([1, 1, 1]);
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
  });

  it('parallel mode (delay 0): every attempt starts at once; the first success wins', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 0, maxHedgedAttempts: 2, clock });
    const triggers: string[] = [];
    h.on('hedge.launched', (e) => triggers.push(e.trigger));
    const s = scripted(clock, [
      { ms: 30, ok: true },
      { ms: 20, ok: true },
      { ms: 10, ok: false },
    ]);
    const call = track(h.execute(s.op));
    expect(s.started).toEqual([1, 2, 3]);
    expect(triggers).toEqual(['parallel', 'parallel']);
    await clock.advance(10); // attempt 3 fails: nothing left to start
    await clock.advance(10);
    await flush();
    expect(call.value).toBe('v2');
    expect(s.aborted.map((a) => a.attempt)).toEqual([1]);
  });

  it('fallback mode (delay < 0): the next attempt starts only after a failure', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: -1, clock });
    const s = scripted(clock, [
      { ms: 100, ok: false },
      { ms: 5, ok: true },
    ]);
    const call = track(h.execute(s.op));
    await clock.advance(99);
    expect(s.started).toEqual([1]);
    expect(clock.pendingTimers).toBe(1); // the operation's own timer only
    await clock.advance(1);
    await flush();
    expect(s.started).toEqual([1, 2]);
    await clock.advance(5);
    await flush();
    expect(call.value).toBe('v2');
  });

  it('a handled failure starts the next hedge at once; when all fail, the caller gets the primary failure', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxHedgedAttempts: 2, clock });
    const triggers: [number, string, number][] = [];
    h.on('hedge.launched', (e) => triggers.push([e.attempt, e.trigger, clock.now()]));
    const s = scripted(clock, [
      { ms: 80, ok: false },
      { ms: 10, ok: false },
      { ms: 10, ok: false },
    ]);
    const call = track(h.execute(s.op));
    await clock.advance(50); // hedge 2 by delay
    await clock.advance(10); // hedge 2 fails at 60: hedge 3 at once
    await clock.advance(10); // hedge 3 fails at 70
    await clock.advance(10); // primary fails at 80
    await flush();
    expect(triggers).toEqual([
      [2, 'delay', 50],
      [3, 'failure', 60],
    ]);
    expect((call.error as Error).message).toBe('e1');
  });

  it('an outcome handle does not count as a failure wins at once, a value or an error', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 10, clock, handle: (e) => (e as Error).message !== 'e2' });
    const s = scripted(clock, [
      { ms: 100, ok: true },
      { ms: 5, ok: false },
    ]);
    const call = track(h.execute(s.op));
    await clock.advance(15);
    await flush();
    expect((call.error as Error).message).toBe('e2');
    expect(isHedgeCancelledError(s.aborted[0]?.reason)).toBe(true);
  });

  it('a caller abort aborts every attempt with its reason and rejects at once; no timer is left', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 10, maxHedgedAttempts: 3, clock });
    const s = scripted(clock, [{ ms: 1_000, ok: true }]);
    const ac = new AbortController();
    const call = track(h.execute(s.op, { signal: ac.signal }));
    await clock.advance(25);
    expect(s.started).toEqual([1, 2, 3]);
    const reason = new Error('caller left');
    ac.abort(reason);
    await flush();
    expect(call.error).toBe(reason);
    expect(s.aborted.map((a) => [a.attempt, a.reason])).toEqual([
      [1, reason],
      [2, reason],
      [3, reason],
    ]);
    await clock.runAll();
    expect(clock.pendingTimers).toBe(0);
  });

  it('never hedges a call that must not run twice (RETRYABLE false)', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 10, clock });
    const s = scripted(clock, [{ ms: 50, ok: true }]);
    const call = track(h.execute(s.op, { properties: new Properties().set(RETRYABLE, false) }));
    await clock.advance(50);
    await flush();
    expect(call.value).toBe('v1');
    expect(s.started).toEqual([1]);
  });

  it('asks its budget before each hedge; a refusal stops hedging for the call', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0, minConcurrency: 1 });
    const h = hedge({ delayMs: 10, maxHedgedAttempts: 3, clock, budget });
    const refused: number[] = [];
    h.on('hedge.refused', (e) => refused.push(e.attempt));
    const s = scripted(clock, [{ ms: 100, ok: true }]);
    const call = track(h.execute(s.op));
    await clock.advance(30);
    expect(s.started).toEqual([1, 2]);
    expect(refused).toEqual([3]);
    expect([budget.callsInFlight, budget.retriesInFlight, budget.refused]).toEqual([1, 1, 1]);
    await clock.advance(70);
    await flush();
    expect(call.value).toBe('v1');
    expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
  });

  it('a token budget: handled failures drain it, the winning success refills it', async () => {
    const clock = new FakeClock();
    const budget = retryTokenBudget({ maxTokens: 4, tokenRatio: 1 });
    const h = hedge({ delayMs: -1, maxHedgedAttempts: 3, clock, budget });
    const s = scripted(clock, [{ ms: 1, ok: false }]);
    const call = track(h.execute(s.op));
    await clock.runAll();
    await flush();
    // 4 -> 3 (hedge 2), 3 -> 2 (refused: not above half).
    expect(s.started).toEqual([1, 2]);
    expect((call.error as Error).message).toBe('e1');
    expect(budget.tokens).toBe(2);
  });

  it('learns its delay from a latency quantile once it has enough samples', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 1_000, delayQuantile: { quantile: 0.9, samples: 100, minSamples: 10 }, clock });
    const launched: number[] = [];
    h.on('hedge.launched', () => launched.push(clock.now()));
    // Ten calls of 10 ms each: p90 = 10 ms (to the histogram's 2%).
    for (let i = 0; i < 10; i++) {
      const s = scripted(clock, [{ ms: 10, ok: true }]);
      const c = track(h.execute(s.op));
      await clock.advance(10);
      await flush();
      expect(c.value).toBe('v1');
    }
    expect(launched).toEqual([]);
    const start = clock.now();
    const slow = scripted(clock, [
      { ms: 500, ok: true },
      { ms: 1, ok: true },
    ]);
    const call = track(h.execute(slow.op));
    await clock.advance(11);
    await flush();
    expect(launched.length).toBe(1);
    const delay = (launched[0] as number) - start;
    expect(delay).toBeGreaterThanOrEqual(10);
    expect(delay).toBeLessThanOrEqual(11);
    await clock.advance(1);
    await flush();
    expect(call.value).toBe('v2');
  });

  it('samples below 100 alone is taken, and the quantile is used once samples are known (minSamples yields)', async () => {
    // It was refused, blaming a minSamples of 100 (the default) that was never given.
    const clock = new FakeClock();
    const h = hedge({ delayMs: 1_000, delayQuantile: { quantile: 0.9, samples: 5 }, clock });
    const launched: number[] = [];
    h.on('hedge.launched', () => launched.push(clock.now()));
    for (let i = 0; i < 5; i++) {
      const c = track(h.execute(scripted(clock, [{ ms: 10, ok: true }]).op));
      await clock.advance(10);
      await flush();
      expect(c.value).toBe('v1');
    }
    const start = clock.now();
    const call = track(
      h.execute(
        scripted(clock, [
          { ms: 500, ok: true },
          { ms: 1, ok: true },
        ]).op,
      ),
    );
    await clock.advance(12);
    await flush();
    expect(launched.map((t) => t - start)).toEqual([expect.any(Number)]);
    expect((launched[0] as number) - start).toBeLessThanOrEqual(11);
    await clock.advance(1);
    await flush();
    expect(call.value).toBe('v2');
    // A minSamples given explicitly must still fit; an invalid samples is blamed alone.
    const e = invalidOptions(() => hedge({ delayQuantile: { quantile: 0.9, samples: 5, minSamples: 6 } }));
    expect(e.problems.map((p) => p.option)).toEqual(['delayQuantile.minSamples']);
    const s = invalidOptions(() => hedge({ delayQuantile: { quantile: 0.9, samples: 0.5, minSamples: 1 } }));
    expect(s.problems.map((p) => p.option)).toEqual(['delayQuantile.samples']);
  });

  it('calls a delay function with the hedge number; a bad delay rejects the call with a TypeError', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    const h = hedge({
      maxHedgedAttempts: 2,
      clock,
      delayMs: (n) => {
        seen.push(n);
        return n * 10;
      },
    });
    const s = scripted(clock, [{ ms: 100, ok: true }]);
    const call = track(h.execute(s.op));
    await clock.advance(10);
    await clock.advance(20);
    expect(s.started).toEqual([1, 2, 3]);
    expect(seen).toEqual([1, 2]);
    await clock.runAll();
    await flush();
    expect(call.value).toBe('v1');
    const bad = hedge({ clock, delayMs: () => Number.NaN });
    const e = await rejectionOf(bad.execute(scripted(clock, [{ ms: 0, ok: true }]).op));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toContain('NaN');
  });

  it('rejects bad options together, naming each', () => {
    const e = invalidOptions(() =>
      hedge({
        maxHedgedAttempts: 11,
        delayMs: Number.POSITIVE_INFINITY,
        delayQuantile: { quantile: 1, samples: 10, minSamples: 20 },
        budget: {} as never,
        name: '',
      }),
    );
    expect(e.problems.map((p) => p.option).sort()).toEqual([
      'budget',
      'delayMs',
      'delayQuantile.minSamples',
      'delayQuantile.quantile',
      'maxHedgedAttempts',
      'name',
    ]);
    expect(invalidOptions(() => hedge({ delayQuantile: {} as never })).problems[0]?.option).toBe(
      'delayQuantile.quantile',
    );
  });

  it('composes: the breaker sees one outcome per call, each attempt gets its own timeout', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 }, clock });
    const p = pipeline(
      retry({ maxAttempts: 1, clock }),
      breaker,
      hedge({ delayMs: 10, clock }),
      timeout({ ms: 25, clock }),
    );
    const s = scripted(clock, [{ ms: 1_000, ok: true }]);
    const call = track(p.execute(s.op));
    await clock.advance(10); // hedge starts
    await clock.advance(15); // primary times out at 25: a handled failure; the hedge runs until 35
    await clock.advance(10);
    await flush();
    expect(isTimeoutError(call.error)).toBe(true);
    expect(s.started).toEqual([1, 2]);
    expect(breaker.state).toBe('closed'); // one failure counted, not two
  });
});
