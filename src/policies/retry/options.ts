import type { Clock } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import type { Handle } from '../handle.js';
import type { RetryBudget } from '../retry-budget/retry-budget.js';
import type { Backoff, BackoffFunction } from './backoff.js';

/**
 * Options of {@link retry}.
 */
export interface RetryOptions {
  /** Name used in events, metrics and errors. @defaultValue `'retry'` */
  name?: string;
  /**
   * Every attempt, the first included (the gRPC and resilience4j meaning; Polly and cockatiel count retries).
   * An integer >= 1, or `Infinity` when asked for explicitly. @defaultValue 3
   */
  maxAttempts?: number;
  /** The delay schedule, or a function of the failure. @defaultValue `exponential()` (100 ms, cap 10 s, full jitter) */
  backoff?: Backoff | BackoffFunction;
  /**
   * Which failures are retried: a predicate of the error (`(e) => boolean`; results are never failures), or an outcome
   * classifier from `handleResults()` / `handleOutcomes()` to judge results too. A caller's abort never reaches it.
   * @defaultValue every error except the caller's abort; no result
   * @example `handle: (e) => (e as NodeJS.ErrnoException).code !== 'EPERM'`
   */
  handle?: Handle;
  /**
   * How long retry may wait for an inner circuit breaker that rejected with `CircuitOpenError`. By default it
   * retries the open circuit only when the breaker admits a probe within retry's own next backoff delay, and gives
   * up at once with the `CircuitOpenError` otherwise: callers fail fast during an outage instead of piling up.
   * A larger value makes retry wait out the break (up to this many ms), holding the call (and anything it holds,
   * such as an outer bulkhead's slot) for that long. An isolated breaker is never waited for.
   * @defaultValue 0 (no wait beyond the backoff)
   */
  circuitOpenMaxWaitMs?: number;
  /**
   * The longest server hint (an error's `retryAfterMs`: HTTP `Retry-After`, gRPC pushback) retry waits for. A
   * hint can only lengthen the next delay (the longer of hint and backoff); a longer hint, or one that is not a
   * finite number, makes retry give up at once (`retry.exhausted`, reason `'stopped'`). The HTTP and gRPC adapters
   * read this same cap. @defaultValue 60_000
   */
  maxRetryAfterMs?: number;
  /**
   * What the final rejection is once attempts run out: the last error unchanged (`'rethrow'`), or a
   * `RetryExhaustedError` whose `cause` is the last error (`'wrap'`). @defaultValue `'rethrow'`
   */
  onExhausted?: 'rethrow' | 'wrap';
  /**
   * A budget shared with other policies (made by `retryBudget()` or `retryTokenBudget()`), asked before each retry:
   * when it refuses, retry gives up with the last failure unchanged (`retry.exhausted`, reason `'budget'`). It bounds
   * retries across calls, as `maxAttempts` bounds them per call. @defaultValue none (only `maxAttempts` bounds)
   */
  budget?: RetryBudget;
  /** @defaultValue `systemClock` */
  clock?: Clock;
  /** Jitter's random source. @defaultValue `Math.random` */
  random?: Random;
}

/** @internal */
export const RETRY_OPTION_NAMES = [
  'name',
  'maxAttempts',
  'backoff',
  'handle',
  'circuitOpenMaxWaitMs',
  'maxRetryAfterMs',
  'onExhausted',
  'budget',
  'clock',
  'random',
] as const;
