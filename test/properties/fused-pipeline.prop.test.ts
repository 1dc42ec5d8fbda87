/**
 * A fused pipeline (retry > circuitBreaker > timeout > bulkhead run as one state machine per call) must behave as
 * the same policies layered. Random pipelines and call plans run both ways on fake clocks; every call's outcome
 * (when, and with what) and every event (when, which) must match.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  EVENT_TYPES,
  handleErrors,
  PipelinePolicy,
  type RetryBudget,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import type { PolicyBase } from '../../src/policies/policy-base.js';
import { FakeClock } from '../../src/testing/index.js';

type Kind = 'retry' | 'breaker' | 'timeout' | 'bulkhead';
const ORDER: readonly Kind[] = ['retry', 'breaker', 'timeout', 'bulkhead'];

interface AttemptPlan {
  readonly delayMs: number;
  readonly ok: boolean;
}
interface CallPlan {
  readonly at: number;
  readonly attempts: readonly AttemptPlan[];
  readonly abortAt: number | undefined;
  /** Whether the operation honours its signal (rejects with its reason when it aborts). */
  readonly honoursSignal: boolean;
}
interface Plan {
  readonly kinds: readonly Kind[];
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly retryOnlyTimeouts: boolean;
  readonly threshold: number;
  readonly halfOpenAfterMs: number;
  /** A count window with slow calls (the breaker reads the clock per call), or consecutive failures. */
  readonly slowCallMs: number | undefined;
  readonly timeoutMs: number;
  readonly limit: number;
  readonly queue: number;
  readonly calls: readonly CallPlan[];
  readonly listen: boolean;
  /** A retry budget on the retry: a ratio budget (ratio, floor) or a token budget (tokens, refill). */
  readonly budget: { readonly kind: 'ratio' | 'tokens'; readonly a: number; readonly b: number } | undefined;
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  kinds: fc.subarray([...ORDER], { minLength: 2 }).map((ks) => ORDER.filter((k) => ks.includes(k))),
  maxAttempts: fc.integer({ min: 1, max: 3 }),
  backoffMs: fc.integer({ min: 0, max: 15 }),
  retryOnlyTimeouts: fc.boolean(),
  threshold: fc.integer({ min: 1, max: 3 }),
  halfOpenAfterMs: fc.integer({ min: 0, max: 60 }),
  slowCallMs: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
  timeoutMs: fc.integer({ min: 1, max: 40 }),
  limit: fc.integer({ min: 1, max: 2 }),
  queue: fc.integer({ min: 0, max: 3 }),
  calls: fc.array(
    fc.record({
      at: fc.integer({ min: 0, max: 40 }),
      attempts: fc.array(fc.record({ delayMs: fc.integer({ min: 0, max: 60 }), ok: fc.boolean() }), {
        minLength: 3,
        maxLength: 3,
      }),
      abortAt: fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined }),
      honoursSignal: fc.boolean(),
    }),
    { minLength: 1, maxLength: 7 },
  ),
  listen: fc.boolean(),
  budget: fc.option(
    fc.record({
      kind: fc.constantFrom('ratio' as const, 'tokens' as const),
      a: fc.integer({ min: 0, max: 4 }),
      b: fc.integer({ min: 0, max: 2 }),
    }),
    { nil: undefined },
  ),
});

function budgetOf(plan: Plan): RetryBudget | undefined {
  const b = plan.budget;
  if (b === undefined) return undefined;
  return b.kind === 'ratio'
    ? retryBudget({ ratio: b.a / 4, minConcurrency: b.b })
    : retryTokenBudget({ maxTokens: b.a + 1, tokenRatio: (b.b + 1) / 2 });
}

function readings(b: RetryBudget | undefined): string {
  if (b === undefined) return 'none';
  if ('tokens' in b) return `tokens ${b.tokens} refused ${b.refused}`;
  const r = b as ReturnType<typeof retryBudget>;
  return `calls ${r.callsInFlight} retries ${r.retriesInFlight} refused ${r.refused}`;
}

function members(plan: Plan, clock: FakeClock, budget: RetryBudget | undefined): PolicyBase[] {
  return plan.kinds.map((k): PolicyBase => {
    if (k === 'retry') {
      return retry({
        clock,
        ...(budget === undefined ? {} : { budget }),
        maxAttempts: plan.maxAttempts,
        backoff: constant(plan.backoffMs),
        ...(plan.retryOnlyTimeouts ? { handle: handleErrors((e) => (e as Error).name === 'TimeoutError') } : {}),
      });
    }
    if (k === 'breaker') {
      if (plan.slowCallMs !== undefined) {
        return circuitBreaker({
          clock,
          window: { kind: 'count', size: 4 },
          minimumCalls: plan.threshold,
          slowCallMs: plan.slowCallMs,
          slowCallRate: 0.5,
          halfOpenAfterMs: plan.halfOpenAfterMs,
        });
      }
      return circuitBreaker({
        clock,
        window: { kind: 'consecutive', threshold: plan.threshold },
        halfOpenAfterMs: plan.halfOpenAfterMs,
      });
    }
    if (k === 'timeout') return timeout({ ms: plan.timeoutMs, clock });
    return bulkhead({ limit: plan.limit, queue: plan.queue, clock });
  });
}

function describeOutcome(e: unknown): string {
  if (e instanceof Error) return `${e.name}:${e.message}`;
  return String(e);
}

interface Run {
  readonly results: string[];
  readonly events: string[];
  /** The budget's readings once every call settled. */
  readonly budget: string;
  /** Whether two calls had something fire at the same instant (see below). */
  readonly collided: boolean;
}

async function run(plan: Plan, fuse: boolean): Promise<Run> {
  const clock = new FakeClock();
  const budget = budgetOf(plan);
  const p = new PipelinePolicy(members(plan, clock, budget), fuse);
  const events: string[] = [];
  // What fires by itself, per instant and call: a call's start, its operation's timer, its abort, its timeout
  // and its retry's backoff. Two calls firing at one instant run their consequences interleaved in microtasks,
  // where layered and fused differ in the number of hops: a race between calls, not a difference in semantics.
  // Such plans are discarded; every other plan must give identical results.
  const triggers = new Map<number, Set<number>>();
  const trigger = (at: number, call: number) => {
    const set = triggers.get(at) ?? new Set<number>();
    set.add(call);
    triggers.set(at, set);
  };
  p.on('timeout.fired', (e) => trigger(clock.now(), Number(e.operation)));
  p.on('retry.attempt', (e) => trigger(clock.now() + e.delayMs, Number(e.operation)));
  if (plan.listen) {
    for (const type of EVENT_TYPES) {
      // A queued call that a timeout gives up on never ran: the fused path reports no late outcome for it, the
      // layered one reports its own TimeoutError as one. Late outcomes of work that ran are compared below.
      if (type === 'timeout.late_outcome') continue;
      p.on(type, (e) => events.push(`${clock.now()} ${e.type} ${e.policy} a${e.attempt}`));
    }
  }
  const results: string[] = plan.calls.map(() => 'pending');
  plan.calls.forEach((call, i) => {
    trigger(call.at, i);
    clock.setTimeout(() => {
      const ac = call.abortAt === undefined ? undefined : new AbortController();
      if (ac !== undefined) {
        trigger(clock.now() + (call.abortAt as number), i);
        clock.setTimeout(() => ac.abort(new Error(`caller ${i}`)), call.abortAt as number);
      }
      p.execute(
        (ctx) =>
          new Promise<string>((resolve, reject) => {
            const a = call.attempts[Math.min(ctx.attempt, call.attempts.length) - 1] as AttemptPlan;
            if (call.honoursSignal) ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
            trigger(clock.now() + a.delayMs, i);
            clock.setTimeout(
              () => (a.ok ? resolve(`v${i}.${ctx.attempt}`) : reject(new Error(`e${i}.${ctx.attempt}`))),
              a.delayMs,
            );
          }),
        { signal: ac?.signal, operation: String(i) },
      ).then(
        (v) => {
          results[i] = `${clock.now()} ok ${v}`;
        },
        (e: unknown) => {
          results[i] = `${clock.now()} err ${describeOutcome(e)}`;
        },
      );
    }, call.at);
  });
  await clock.runAll();
  const collided = [...triggers.values()].some((calls) => calls.size > 1);
  // Within one instant, microtasks may interleave events differently; across instants the order must hold.
  return {
    collided,
    budget: readings(budget),
    results,
    events: [...events].sort((a, b) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]) || a.localeCompare(b)),
  };
}

describe('fused pipelines behave as the same policies layered', () => {
  it('same outcomes at the same times, same events, for random pipelines and call plans', async () => {
    await fc.assert(
      fc.asyncProperty(planArb, async (plan) => {
        const fused = await run(plan, true);
        const layered = await run(plan, false);
        fc.pre(!fused.collided && !layered.collided);
        expect(fused.results).toEqual(layered.results);
        expect(fused.events).toEqual(layered.events);
        expect(fused.budget).toEqual(layered.budget);
        // Every call settled, so none is still counted in flight.
        if (fused.budget.startsWith('calls')) expect(fused.budget).toMatch(/^calls 0 retries 0 /);
      }),
      { numRuns: 300, maxSkipsPerRun: 20 },
    );
  }, 120_000);
});
