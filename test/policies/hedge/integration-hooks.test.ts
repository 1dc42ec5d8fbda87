/**
 * The hedge's internal hooks for integrations (bulwark/grpc): a failure carrying a server pushback delays or stops
 * the next hedge, and `commitHedge` commits the call to one attempt before it settles. Without them (any other
 * caller), the hedge behaves as documented: an error's public `retryAfterMs` or `retryable` changes nothing.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionContext } from '../../../src/core/context.js';
import { setPushback } from '../../../src/core/pushback.js';
import {
  type Context,
  type HedgeLateOutcomeEvent,
  type HedgeLaunchedEvent,
  hedge,
  isHedgeCancelledError,
  pipeline,
  timeout,
} from '../../../src/index.js';
import { commitHedge } from '../../../src/policies/hedge/hedge.js';
import { FakeClock } from '../../../src/testing/index.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((r) => setImmediate(r));
};

/** An attempt the test settles by hand, aborted with its signal. */
interface Held {
  readonly attempt: number;
  readonly ctx: Context;
  resolve(value: string): void;
  reject(error: unknown): void;
  aborted: unknown;
}

function held() {
  const attempts: Held[] = [];
  const op = (ctx: Context): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const h: Held = { attempt: ctx.attempt, ctx, resolve, reject, aborted: undefined };
      attempts.push(h);
      ctx.signal.addEventListener('abort', () => {
        h.aborted = ctx.signal.reason;
        reject(ctx.signal.reason);
      });
    });
  return { op, attempts };
}

function failure(message: string, pushback?: number | 'stop'): Error {
  const e = new Error(message);
  setPushback(e, pushback);
  return e;
}

describe('hedge: pushback from an integration', () => {
  it('ms: the next hedge starts after exactly that long, not at once; the delay after it counts from then', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 1_000, maxHedgedAttempts: 2, clock });
    const launched: HedgeLaunchedEvent[] = [];
    h.on('hedge.launched', (e) => launched.push(e));
    const { op, attempts } = held();
    const call = h.execute(op);
    attempts[0]?.reject(failure('busy', 300));
    await flush();
    await clock.advance(299);
    expect(attempts).toHaveLength(1);
    await clock.advance(1);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2]);
    await clock.advance(999);
    expect(attempts).toHaveLength(2);
    await clock.advance(1);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    attempts[2]?.resolve('v3');
    await expect(call).resolves.toBe('v3');
    expect(launched.map((e) => [e.attempt, e.trigger])).toEqual([
      [2, 'failure'],
      [3, 'delay'],
    ]);
  });

  it('stop: no more hedges; the attempts running go on; when none is left, the primary failure', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 1_000, maxHedgedAttempts: 3, clock });
    const { op, attempts } = held();
    const call = h.execute(op);
    await clock.advance(1_000);
    expect(attempts).toHaveLength(2);
    const primary = new Error('primary');
    attempts[1]?.reject(failure('stop', 'stop'));
    await flush();
    await clock.advance(10_000);
    expect(attempts).toHaveLength(2);
    attempts[0]?.reject(primary);
    await expect(call).rejects.toBe(primary);
  });

  it('a pushback pending when the last attempt failed: the call waits for the hedge it promises', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: -1, maxHedgedAttempts: 1, clock });
    const { op, attempts } = held();
    const call = h.execute(op);
    attempts[0]?.reject(failure('busy', 500));
    await flush();
    let settled = false;
    void call.then(
      () => (settled = true),
      () => (settled = true),
    );
    await flush();
    expect(settled).toBe(false);
    await clock.advance(500);
    attempts[1]?.resolve('v2');
    await expect(call).resolves.toBe('v2');
  });

  it("a caller's abort during a pushback clears its timer", async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: -1, clock });
    const { op, attempts } = held();
    const ac = new AbortController();
    const call = h.execute(op, { signal: ac.signal });
    attempts[0]?.reject(failure('busy', 500));
    await flush();
    expect(clock.pendingTimers).toBe(1);
    ac.abort(new Error('caller'));
    await expect(call).rejects.toThrow('caller');
    expect(clock.pendingTimers).toBe(0);
  });

  it("without the integration's mark, an error's retryAfterMs and retryable change nothing: the next hedge starts at once", async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 1_000, maxHedgedAttempts: 2, clock });
    const { op, attempts } = held();
    const call = h.execute(op);
    attempts[0]?.reject(Object.assign(new Error('busy'), { retryAfterMs: 5_000, retryable: false }));
    await flush();
    expect(attempts).toHaveLength(2);
    attempts[1]?.resolve('v2');
    await expect(call).resolves.toBe('v2');
  });
});

describe('hedge: commitHedge', () => {
  it('commits to a hedge: the others abort, no hedge starts, its failure is the call outcome', async () => {
    const clock = new FakeClock();
    const h = pipeline(hedge({ delayMs: 1_000, maxHedgedAttempts: 3, clock }), timeout({ ms: 60_000, clock }));
    const late: HedgeLateOutcomeEvent[] = [];
    h.policies[0]?.on('hedge.late_outcome', (e) => late.push(e));
    const { op, attempts } = held();
    const call = h.execute(op);
    await clock.advance(1_000);
    expect(attempts).toHaveLength(2);
    commitHedge(attempts[1]?.ctx as ExecutionContext);
    expect(isHedgeCancelledError(attempts[0]?.aborted)).toBe(true);
    expect(attempts[0]?.aborted).toMatchObject({ winner: 2 });
    await clock.advance(10_000);
    expect(attempts).toHaveLength(2);
    const committed = new Error('committed failure');
    attempts[1]?.reject(committed);
    await expect(call).rejects.toBe(committed);
    expect(late.map((e) => e.attempt)).toEqual([1]);
  });

  it('commits to the primary; a second commit and a commit outside any hedge do nothing', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 0, maxHedgedAttempts: 2, clock });
    const { op, attempts } = held();
    const call = h.execute(op);
    expect(attempts).toHaveLength(3);
    commitHedge(attempts[0]?.ctx as ExecutionContext);
    commitHedge(attempts[2]?.ctx as ExecutionContext);
    expect(attempts.map((a) => a.aborted !== undefined)).toEqual([false, true, true]);
    attempts[0]?.resolve('v1');
    await expect(call).resolves.toBe('v1');

    const { op: op2, attempts: outside } = held();
    const plain = timeout({ ms: 1_000, clock }).execute(op2);
    commitHedge(outside[0]?.ctx as ExecutionContext);
    outside[0]?.resolve('x');
    await expect(plain).resolves.toBe('x');
  });
});
