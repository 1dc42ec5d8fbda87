import { systemClock } from '../../core/clock.js';
import type { ExecutionContext } from '../../core/context.js';
import type { HandlePredicate, Outcome } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { RETRYABLE } from '../../core/properties.js';
import { type Random, systemRandom } from '../../core/random.js';
import { sleep } from '../../core/sleep.js';
import { isCircuitOpenError, isLocalRejectionError, RetryExhaustedError } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { checkHandle, classification } from '../handle.js';
import { PolicyBase } from '../policy-base.js';
import { isRetryBudget, type RetryBudget } from '../retry-budget/retry-budget.js';
import { type Backoff, type BackoffFunction, exponential, isBackoff } from './backoff.js';
import { RETRY_OPTION_NAMES, type RetryOptions } from './options.js';

/**
 * A retry policy. See {@link retry}.
 */
export class RetryPolicy extends PolicyBase {
  /** The attempt limit, the first attempt included. */
  readonly maxAttempts: number;
  readonly #backoff: Backoff | BackoffFunction;
  readonly #handle: HandlePredicate<unknown>;
  readonly #classifyResults: boolean;
  readonly #circuitWaitMs: number;
  /**
   * The longest server hint (an error's `retryAfterMs`) this retry waits for; a longer or non-finite one makes it
   * give up. Adapters that read `Retry-After` or gRPC pushback use this one cap.
   */
  readonly maxRetryAfterMs: number;
  readonly #wrap: boolean;
  readonly #random: Random;
  /** @internal The shared budget asked before each retry, if any (read by fused pipelines). */
  readonly _budget: RetryBudget | undefined;
  /** No budget and no results to classify: the happy path is one `.then` (see `_run`). */
  readonly #lean: boolean;
  /** A first attempt's success under a budget: one function per policy, so the happy path makes no closure. */
  readonly #budgetedSuccess: (<T>(value: T) => T) | undefined;

  /** @internal Use {@link retry}. */
  constructor(options: RetryOptions) {
    super(options.name ?? 'retry', options.clock ?? systemClock);
    this.maxAttempts = options.maxAttempts ?? 3;
    this.#backoff = options.backoff ?? exponential();
    const classify = classification(options.handle);
    this.#handle = classify.predicate;
    this.#classifyResults = classify.results;
    this.#circuitWaitMs = options.circuitOpenMaxWaitMs ?? 0;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
    this.#wrap = options.onExhausted === 'wrap';
    this.#random = options.random ?? systemRandom;
    const budget = options.budget;
    this._budget = budget;
    this.#lean = budget === undefined && !classify.results;
    this.#budgetedSuccess =
      budget === undefined
        ? undefined
        : <T>(value: T): T => {
            budget._succeeded();
            budget._leave();
            return value;
          };
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    // The first attempt runs without an async frame: on the happy path a success passes straight through, and only
    // a failure enters the retry loop. `.then` with one closure is measurably cheaper per call than an async function
    // awaiting the same promise. Why the other cases in a method of their own: V8 inlines a limited amount of
    // bytecode into one optimised function, counting the whole of each function it inlines, and every byte this
    // method spends is taken from the operation's own callees (`npm run bench -- --instructions`, Node 20: with them
    // here, a retry around an op that awaits a setImmediate left Node's setImmediate internals as calls; 7,557
    // instructions per call, 7,439 without).
    if (this.#lean && !this._events.wants(EV.attemptCompleted)) {
      return next(ctx, op).then(undefined, this.#retryOnFailure<T>(ctx, op, next));
    }
    return this.#runFull(ctx, op, next);
  }

  /**
   * The first attempt's failure handler: enters the retry loop. A method of its own, not an arrow in `_run`: there,
   * the closure made `_run` copy its arguments into a context of their own on every call, in bytecode V8 counts
   * against its inlining budget wherever `_run` is inlined.
   */
  #retryOnFailure<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): (error: unknown) => Promise<T> {
    return (error) => this.#loop<T>(ctx, op, next, this.#failure(ctx, error));
  }

  /** `_run` with a budget, with results to classify, or with someone timing attempts. */
  #runFull<T>(ctx: ExecutionContext, op: Operation<T>, nextOp: Next): Promise<T> {
    // Timing attempts costs a closure per call, so it happens only while someone listens.
    const next = this._events.wants(EV.attemptCompleted) ? this.#timed(nextOp) : nextOp;
    const budget = this._budget;
    if (budget !== undefined) return this.#budgeted(ctx, op, next, budget);
    const first = next(ctx, op);
    if (this.#classifyResults) {
      return first.then(
        (value) => this.#loop<T>(ctx, op, next, { ok: true, value }),
        (error: unknown) => this.#loop<T>(ctx, op, next, this.#failure(ctx, error)),
      );
    }
    return first.then(undefined, (error: unknown) => this.#loop<T>(ctx, op, next, this.#failure(ctx, error)));
  }

  /** `_run` with a budget: the call is counted in flight from its first attempt until it settles. */
  #budgeted<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, budget: RetryBudget): Promise<T> {
    budget._enter();
    const first = next(ctx, op);
    // Inline reactions, not a named `const failed = ...`: the build keeps function names (keepNames), and a named
    // closure made per call costs an Object.defineProperty per call (measured: about 4,000 instructions).
    if (this.#classifyResults) {
      return first.then(
        (value) => this.#loop<T>(ctx, op, next, { ok: true, value }),
        (error: unknown) => this.#firstFailed(ctx, op, next, budget, error),
      );
    }
    return first.then(this.#budgetedSuccess as (value: T) => T, (error: unknown) =>
      this.#firstFailed(ctx, op, next, budget, error),
    );
  }

  /** A budgeted call's first attempt failed: retry it, or (the caller aborted) leave the budget and rethrow. */
  #firstFailed<T>(
    ctx: ExecutionContext,
    op: Operation<T>,
    next: Next,
    budget: RetryBudget,
    error: unknown,
  ): Promise<T> {
    if (ctx._aborted) {
      budget._leave();
      return Promise.reject(error);
    }
    return this.#loop<T>(ctx, op, next, { ok: false, error });
  }

  /**
   * @internal Whether a fused pipeline may run this retry's first attempt itself: only failures are classified,
   * so a success passes straight through.
   */
  _fusable(): boolean {
    return !this.#classifyResults;
  }

  /** @internal Whether someone times attempts (`attempt.completed`). */
  _timesAttempts(): boolean {
    return this._events.wants(EV.attemptCompleted);
  }

  /**
   * @internal The retry loop after a failed first attempt run by a fused pipeline: attempts 2.. through `next`.
   * A caller's abort (or an enclosing timeout's) is rethrown, never retried.
   */
  _afterFailure<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, error: unknown): Promise<T> {
    if (ctx._aborted) {
      // A fused pipeline counted the call in the budget when it started it; the loop would release it.
      this._budget?._leave();
      return Promise.reject(error);
    }
    if (this._events.wants(EV.attemptCompleted)) next = this.#timed(next);
    return this.#loop<T>(ctx, op, next, { ok: false, error });
  }

  /** @internal Emits `attempt.completed` for an attempt that started at `start` on this policy's clock. */
  _attemptCompleted(c: ExecutionContext, start: number, failed: boolean, error: unknown, end = -1): void {
    if (!this._events.wants(EV.attemptCompleted)) return;
    const durationMs = (end < 0 ? this._clock.now() : end) - start;
    // Two literals, not a spread of a shared base: V8 took ~2 us per object spread here (measured).
    this._events.emit(
      EV.attemptCompleted,
      failed
        ? {
            type: 'attempt.completed',
            policy: this.name,
            operation: c.operation,
            attempt: c.attempt,
            durationMs,
            result: c._aborted ? 'aborted' : 'failure',
            error,
          }
        : {
            type: 'attempt.completed',
            policy: this.name,
            operation: c.operation,
            attempt: c.attempt,
            durationMs,
            result: 'success',
          },
    );
  }

  /** `next` with an `attempt.completed` event as each attempt settles. */
  #timed(next: Next): Next {
    return <T>(c: ExecutionContext, o: Operation<T>): Promise<T> => {
      const start = this._clock.now();
      return next(c, o).then(
        (value) => {
          this._attemptCompleted(c, start, false, undefined);
          return value;
        },
        (error: unknown) => {
          this._attemptCompleted(c, start, true, error);
          throw error;
        },
      );
    };
  }

  /** The outcome of a failed attempt; a caller's abort (or an enclosing timeout's) is rethrown, never retried. */
  #failure(ctx: ExecutionContext, error: unknown): Outcome<never> {
    if (ctx._aborted) throw error;
    return { ok: false, error };
  }

  /**
   * Classifies attempt 1's outcome and runs attempts 2.. until one is not handled or retry gives up. Under a budget,
   * the call entered it before attempt 1, and leaves it here, however the loop ends.
   */
  async #loop<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, firstOutcome: Outcome<T>): Promise<T> {
    const budget = this._budget;
    if (budget === undefined) return this.#attempts(ctx, op, next, firstOutcome, undefined);
    try {
      return await this.#attempts(ctx, op, next, firstOutcome, budget);
    } finally {
      budget._leave();
    }
  }

  async #attempts<T>(
    ctx: ExecutionContext,
    op: Operation<T>,
    next: Next,
    firstOutcome: Outcome<T>,
    budget: RetryBudget | undefined,
  ): Promise<T> {
    let outcome = firstOutcome;
    let current = ctx;
    let attempt = 1;
    // The backoff's own step and last delay. Both restart after a delay a server asked for (gRFC A6: after a
    // pushback the backoff resets), so a hint is never followed by a longer backoff than the first.
    const steps = { step: 1, previousMs: 0 };
    for (;;) {
      // An error that says it must not be retried (retryable: false) is rethrown at once, whatever `handle` says.
      // A predicate that throws rejects the call with its own error.
      if ((!outcome.ok && notRetryable(outcome.error)) || !this.#handle(outcome)) {
        if (outcome.ok) budget?._succeeded();
        return settle(outcome);
      }
      // A handled failure drains a token budget, unless bulwark itself refused the call (a full bulkhead, an inner
      // open breaker, a rate limit): that says nothing about the upstream.
      if (budget !== undefined && (outcome.ok || !isLocalRejectionError(outcome.error))) budget._failed();
      // The call itself may have forbidden another attempt (RETRYABLE set to false), whatever failed.
      if (ctx._root._extra?.props?.get(RETRYABLE) === false) return this.#giveUp(-2, attempt, outcome, current);
      const delayMs = this.#delay(attempt, steps, outcome, current);
      if (delayMs < 0) return this.#giveUp(delayMs, attempt, outcome, current);
      // Asked last, so only a retry that would otherwise happen takes from the budget.
      if (budget !== undefined && !budget._acquire()) return this.#giveUp(-4, attempt, outcome, current);
      if (this._events.wants(EV.retryAttempt)) {
        this._events.emit(EV.retryAttempt, {
          type: 'retry.attempt',
          policy: this.name,
          operation: ctx.operation,
          attempt,
          delayMs,
          outcome,
        });
      }
      try {
        await sleep(this._clock, delayMs, ctx);
        attempt++;
        current = ctx._derive(attempt, ctx._scope);
        try {
          const value = await next(current, op);
          if (!this.#classifyResults) {
            budget?._succeeded();
            return value;
          }
          outcome = { ok: true, value };
        } catch (error) {
          outcome = this.#failure(ctx, error);
        }
      } finally {
        // The retry settled (or its delay was cut short by an abort): it no longer counts as in flight.
        budget?._release();
      }
    }
  }

  /**
   * The delay before the next attempt, or a negative code: -1 attempts used up, -2 stop, -3 open circuit (and -4,
   * given by the loop: the budget refused).
   * Advances (or, after a server hint, restarts) the backoff's step.
   */
  #delay(
    attempt: number,
    steps: { step: number; previousMs: number },
    outcome: Outcome<unknown>,
    ctx: ExecutionContext,
  ): number {
    if (attempt >= this.maxAttempts) return -1;
    let delayMs: number;
    const backoff = this.#backoff;
    if (typeof backoff === 'function') {
      const d = backoff(attempt, outcome, ctx);
      if (d === 'stop') return -2;
      if (typeof d !== 'number' || !Number.isFinite(d) || d < 0) {
        throw new TypeError(
          `retry "${this.name}": the backoff function returned ${describe(d)} after attempt ${attempt}; expected a finite number >= 0 or 'stop'`,
          { cause: outcome.ok ? undefined : outcome.error },
        );
      }
      delayMs = d;
    } else {
      delayMs = backoff.delay(steps.step, steps.previousMs, this.#random);
    }
    steps.step++;
    steps.previousMs = delayMs;
    if (!outcome.ok) {
      const error = outcome.error;
      if (isCircuitOpenError(error)) {
        const wait = error.retryAfterMs;
        // Fail fast during an outage: retry the open circuit only if it will admit a probe by the time retry
        // would have retried anyway (or within the explicit circuitOpenMaxWaitMs). An isolated breaker
        // (retryAfterMs Infinity) never reopens by itself: give up even with an unlimited wait.
        if (!(Number.isFinite(wait) && wait <= Math.max(delayMs, this.#circuitWaitMs))) return -3;
        if (wait > delayMs) delayMs = wait;
      } else {
        // A server's own hint (HTTP Retry-After, gRPC pushback) carried by the error. It can only delay the next
        // attempt, never hasten it: the longer of the hint and the backoff. One too long, or not a finite number
        // at all (an overflowing header, NaN), means "not now": give up rather than retry sooner than asked.
        const hint = retryAfterOf(error);
        if (hint !== -1) {
          if (!Number.isFinite(hint) || hint > this.maxRetryAfterMs) return -2;
          if (hint > delayMs) delayMs = hint;
          steps.step = 1;
          steps.previousMs = 0;
        }
      }
    }
    return delayMs;
  }

  #giveUp<T>(code: number, attempt: number, outcome: Outcome<T>, ctx: ExecutionContext): T {
    if (this._events.wants(EV.retryExhausted)) {
      this._events.emit(EV.retryExhausted, {
        type: 'retry.exhausted',
        policy: this.name,
        operation: ctx.operation,
        attempt,
        reason: code === -1 ? 'attempts' : code === -2 ? 'stopped' : code === -3 ? 'circuit_open' : 'budget',
        outcome,
      });
    }
    if (outcome.ok) return outcome.value;
    if (this.#wrap) throw new RetryExhaustedError(this.name, attempt, outcome.error);
    throw outcome.error;
  }
}

/** Whether an error declares itself not retryable: an object whose own `retryable` property is `false`. */
function notRetryable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  try {
    return (error as { retryable?: unknown }).retryable === false;
  } catch {
    return false; // a revoked Proxy or a throwing getter says nothing: the call's own error must come out unchanged
  }
}

/**
 * The `retryAfterMs` hint an error carries: a number >= 0 (possibly Infinity), NaN for a number that says nothing
 * sensible (NaN itself; the caller gives up on it), or -1 for none (absent, not a number, or negative).
 */
function retryAfterOf(error: unknown): number {
  if (typeof error !== 'object' || error === null) return -1;
  let v: unknown;
  try {
    v = (error as { retryAfterMs?: unknown }).retryAfterMs;
  } catch {
    return -1; // a getter that throws carries no hint
  }
  if (typeof v !== 'number') return -1;
  return v >= 0 || Number.isNaN(v) ? v : -1;
}

function settle<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  throw outcome.error;
}

/**
 * Retries handled failures with a backoff. `maxAttempts` counts every attempt, the first included.
 *
 * - A caller's abort is never retried; an abort during a backoff rejects at once with the caller's reason.
 * - Fails fast on an open circuit: a `CircuitOpenError` from an inner breaker is retried only if the breaker
 *   admits a probe within the next backoff delay (or within `circuitOpenMaxWaitMs`, when set higher); otherwise
 *   retry gives up at once with that error.
 * - A server's hint (an error's `retryAfterMs` >= 0: HTTP `Retry-After`, gRPC pushback) can only lengthen the next
 *   delay (the longer of hint and backoff), after which the backoff restarts from its first step. A hint above
 *   `maxRetryAfterMs`, or not finite, makes retry give up at once.
 * - An error whose `retryable` property is `false` is never retried, whatever `handle` says; nor is any failure of
 *   a call whose properties set {@link RETRYABLE} to `false`.
 * - Once attempts run out, the last error is rethrown unchanged (or the last handled result is returned).
 *
 * Place it outside the circuit breaker and the timeout; see docs/concepts.md for the order.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const policy = retry({ maxAttempts: 4, backoff: exponential({ initialMs: 200, maxMs: 5_000 }) });
 * const body = await policy.execute(({ signal }) => fetch(url, { signal }).then((r) => r.json()));
 * ```
 */
export function retry(options: RetryOptions = {}): RetryPolicy {
  const check = new Checker('retry');
  if (check.object('', options, RETRY_OPTION_NAMES)) {
    check.string('name', options.name);
    check.number('maxAttempts', options.maxAttempts, { min: 1, integer: true, infinity: true });
    if (options.backoff !== undefined && typeof options.backoff !== 'function' && !isBackoff(options.backoff)) {
      check.fail('backoff', options.backoff, 'a backoff (constant(), linear(), exponential()) or a function');
    }
    checkHandle(check, options.handle);
    check.number('circuitOpenMaxWaitMs', options.circuitOpenMaxWaitMs, { min: 0, infinity: true });
    check.number('maxRetryAfterMs', options.maxRetryAfterMs, { min: 0, infinity: true });
    check.oneOf('onExhausted', options.onExhausted, ['rethrow', 'wrap']);
    check.clock('clock', options.clock);
    check.fn('random', options.random);
    if (options.budget !== undefined && !isRetryBudget(options.budget)) {
      check.fail('budget', options.budget, 'a budget made by retryBudget() or retryTokenBudget()');
    }
  }
  check.done();
  return new RetryPolicy(options);
}
