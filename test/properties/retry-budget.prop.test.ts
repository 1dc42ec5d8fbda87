import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  constant,
  pipeline,
  type RetryPolicy,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

/** One call: when it starts (fake ms), and per attempt whether it fails and how long it runs (fake ms). */
interface CallSpec {
  readonly at: number;
  readonly attempts: readonly { readonly fails: boolean; readonly ms: number }[];
}

const callSpec: fc.Arbitrary<CallSpec> = fc.record({
  at: fc.integer({ min: 0, max: 50 }),
  attempts: fc.array(fc.record({ fails: fc.boolean(), ms: fc.integer({ min: 0, max: 30 }) }), {
    minLength: 1,
    maxLength: 5,
  }),
});

const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
};

describe('retryBudget properties', () => {
  it('retries in flight never exceed max(minConcurrency, ratio x calls in flight), retries beyond the floor never exceed ratio x calls plus the initial credit, and nothing leaks', async () => {
    const stats = { runs: 0, retried: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(callSpec, { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 20 }).map((n) => n / 20),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 20 }),
        fc.boolean(),
        async (calls, ratio, minConcurrency, maxAttempts, delay, fused) => {
          const clock = new FakeClock();
          const budget = retryBudget({ ratio, minConcurrency });
          const r: RetryPolicy = retry({ maxAttempts, backoff: constant(delay), budget, clock });
          // A retry followed by a timeout runs fused; a retry alone runs layered.
          const policy = fused ? pipeline(r, timeout({ ms: 10_000, clock })) : r;
          let retries = 0;
          let refused = 0;
          const violations: string[] = [];
          // Retries allowed beyond the floor: at most ratio x calls, plus the 100 calls' worth it starts with.
          let beyondFloor = 0;
          r.on('retry.attempt', () => {
            retries++;
            // Emitted right after the budget allowed this retry: the bound holds now, the new retry included.
            // (Recorded, not asserted here: bulwark reports a throwing listener instead of failing the call.)
            const bound = Math.max(minConcurrency, ratio * budget.callsInFlight + 1e-9);
            if (budget.retriesInFlight > bound) violations.push(`${budget.retriesInFlight} > ${bound}`);
            if (budget.retriesInFlight > minConcurrency) beyondFloor++;
          });
          r.on('retry.exhausted', (e) => {
            if (e.reason === 'budget') refused++;
          });
          let attempts = 0;
          const results: Promise<unknown>[] = [];
          const byTime = [...calls].sort((a, b) => a.at - b.at);
          let now = 0;
          for (const spec of byTime) {
            if (spec.at > now) {
              await clock.advance(spec.at - now);
              now = spec.at;
            }
            results.push(
              policy
                .execute(({ attempt }) => {
                  attempts++;
                  const a = spec.attempts[Math.min(attempt, spec.attempts.length) - 1] as {
                    fails: boolean;
                    ms: number;
                  };
                  return new Promise((resolve, reject) => {
                    clock.setTimeout(() => (a.fails ? reject(new Error('x')) : resolve('ok')), a.ms);
                  });
                })
                .catch(() => 'failed'),
            );
          }
          for (let i = 0; i < 200 && clock.pendingTimers > 0; i++) {
            await clock.runAll();
            await flush();
          }
          await Promise.all(results);
          stats.runs++;
          if (retries > 0) stats.retried++;
          if (refused > 0) stats.refused++;
          expect(violations).toEqual([]);
          expect(beyondFloor).toBeLessThanOrEqual(ratio * (calls.length + 100) + 1e-6);
          expect(attempts).toBe(calls.length + retries);
          expect(budget.refused).toBe(refused);
          expect([budget.callsInFlight, budget.retriesInFlight, clock.pendingTimers]).toEqual([0, 0, 0]);
        },
      ),
      { numRuns: 150 },
    );
    // The generator reaches both sides of the rule: runs that retried and runs where the budget refused.
    expect(stats.retried).toBeGreaterThan(stats.runs / 4);
    expect(stats.refused).toBeGreaterThan(stats.runs / 10);
  });
});

describe('retryTokenBudget properties', () => {
  it('holds exactly the tokens a model computes in thousandths, and retries only above half', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 1, max: 3_000 }),
        fc.integer({ min: 1, max: 4 }),
        async (calls, maxMilli, ratioMilli, maxAttempts) => {
          const budget = retryTokenBudget({ maxTokens: maxMilli / 1000, tokenRatio: ratioMilli / 1000 });
          const policy = retry({ maxAttempts, backoff: constant(0), budget });
          let model = maxMilli;
          for (const outcomes of calls) {
            // The model: each attempt fails or not as listed (the last entry repeats).
            let expectedAttempts = 0;
            for (let attempt = 1; ; attempt++) {
              expectedAttempts++;
              const fails = outcomes[Math.min(attempt, outcomes.length) - 1] as boolean;
              if (!fails) {
                model = Math.min(maxMilli, model + ratioMilli);
                break;
              }
              model = Math.max(0, model - 1000);
              if (attempt >= maxAttempts || !(model * 2 > maxMilli)) break;
            }
            let seen = 0;
            await policy
              .execute(({ attempt }) => {
                seen++;
                if (outcomes[Math.min(attempt, outcomes.length) - 1]) throw new Error('x');
                return 'ok';
              })
              .catch(() => undefined);
            expect(seen).toBe(expectedAttempts);
            expect(budget.tokens).toBe(model / 1000);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
