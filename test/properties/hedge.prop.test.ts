import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hedge, isHedgeCancelledError, retryBudget } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

interface AttemptLog {
  readonly number: number;
  readonly startedAt: number;
  settledAt: number;
  ok: boolean | undefined;
  abortedWith: unknown;
}

describe('hedge properties', () => {
  it('settles once with the first acceptable outcome, aborts every loser, keeps its bounds and leaks nothing', async () => {
    const stats = { runs: 0, hedged: 0, aborted: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ ms: fc.integer({ min: 0, max: 60 }), ok: fc.boolean() }), {
          minLength: 1,
          maxLength: 5,
        }),
        fc.integer({ min: 1, max: 3 }),
        fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constant(0), fc.constant(-1)),
        fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined }),
        fc.boolean(),
        async (script, maxHedgedAttempts, delayMs, abortAt, withBudget) => {
          const clock = new FakeClock();
          const budget = withBudget ? retryBudget({ ratio: 0, minConcurrency: 1 }) : undefined;
          const h = hedge({ maxHedgedAttempts, delayMs, clock, ...(budget ? { budget } : {}) });
          const log: AttemptLog[] = [];
          const ac = abortAt === undefined ? undefined : new AbortController();
          const callerReason = new Error('caller');
          if (ac !== undefined) clock.setTimeout(() => ac.abort(callerReason), abortAt as number);
          let settledAt = -1;
          let result: { ok: boolean; value: unknown } | undefined;
          h.execute(
            (ctx) => {
              const entry: AttemptLog = {
                number: ctx.attempt,
                startedAt: clock.now(),
                settledAt: -1,
                ok: undefined,
                abortedWith: undefined,
              };
              log.push(entry);
              const s = script[Math.min(log.length, script.length) - 1] as { ms: number; ok: boolean };
              return new Promise<number>((resolve, reject) => {
                const t = clock.setTimeout(() => {
                  entry.settledAt = clock.now();
                  entry.ok = s.ok;
                  if (s.ok) resolve(entry.number);
                  else reject(new Error(`e${entry.number}`));
                }, s.ms);
                ctx.signal.addEventListener('abort', () => {
                  clock.clearTimeout(t);
                  entry.abortedWith = ctx.signal.reason;
                  reject(ctx.signal.reason);
                });
              });
            },
            { signal: ac?.signal },
          ).then(
            (value) => {
              if (result !== undefined) throw new Error('settled twice');
              result = { ok: true, value };
              settledAt = clock.now();
            },
            (error: unknown) => {
              if (result !== undefined) throw new Error('settled twice');
              result = { ok: false, value: error };
              settledAt = clock.now();
            },
          );
          await clock.runAll();
          for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
          expect(result).toBeDefined();
          const r = result as { ok: boolean; value: unknown };
          stats.runs++;
          if (log.length > 1) stats.hedged++;
          // Bounds: never more than 1 + maxHedgedAttempts attempts; numbers 1, 2, ... in start order.
          expect(log.length).toBeLessThanOrEqual(1 + maxHedgedAttempts);
          expect(log.map((a) => a.number)).toEqual(log.map((_, i) => i + 1));
          const callerAborted = !r.ok && r.value === callerReason;
          if (callerAborted) stats.aborted++;
          for (const a of log) {
            if (a.settledAt >= 0 && a.settledAt <= settledAt) continue;
            // Still running when the call settled: aborted then, with the caller's reason or a hedge cancellation.
            if (callerAborted) expect(a.abortedWith).toBe(callerReason);
            else expect(isHedgeCancelledError(a.abortedWith)).toBe(true);
          }
          if (r.ok) {
            // The value is a success, and no success settled strictly earlier.
            const winner = log.find((a) => a.number === r.value) as AttemptLog;
            expect(winner.ok).toBe(true);
            for (const a of log) if (a.ok === true) expect(a.settledAt).toBeGreaterThanOrEqual(winner.settledAt);
          } else if (!callerAborted) {
            // Every attempt failed, and the caller got the primary's failure.
            expect(log.every((a) => a.ok === false)).toBe(true);
            expect((r.value as Error).message).toBe('e1');
          }
          if (budget !== undefined) expect([budget.callsInFlight, budget.retriesInFlight]).toEqual([0, 0]);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
    expect(stats.hedged).toBeGreaterThan(stats.runs / 4);
    expect(stats.aborted).toBeGreaterThan(stats.runs / 10);
  });
});
