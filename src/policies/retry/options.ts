import type { Clock } from '../../core/clock.js';
import type { HandlePredicate } from '../../core/outcome.js';
import type { Random } from '../../core/random.js';
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
  /** Which outcomes are retried. @defaultValue every error except the caller's abort; no result */
  handle?: HandlePredicate<never>;
  /**
   * When an inner circuit breaker rejects with `CircuitOpenError`, retry waits `retryAfterMs` (at least the
   * backoff) if that is at most this many ms, and gives up at once otherwise. 0 never waits on an open circuit.
   * @defaultValue 30_000
   */
  circuitOpenMaxWaitMs?: number;
  /**
   * The longest server hint (an error's `retryAfterMs`: HTTP `Retry-After`, gRPC pushback) retry waits for. A
   * hint sets the next delay instead of the backoff; a longer one makes retry give up at once (`retry.exhausted`,
   * reason `'stopped'`). @defaultValue 60_000
   */
  maxRetryAfterMs?: number;
  /**
   * What the final rejection is once attempts run out: the last error unchanged (`'rethrow'`), or a
   * `RetryExhaustedError` whose `cause` is the last error (`'wrap'`). @defaultValue `'rethrow'`
   */
  onExhausted?: 'rethrow' | 'wrap';
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
  'clock',
  'random',
] as const;
