import type { Clock } from '../../core/clock.js';
import type { Context } from '../../core/context.js';

/** The algorithms of {@link rateLimit}. */
export type RateLimitAlgorithm = 'token-bucket' | 'sliding-window' | 'fixed-window';

/** Options every algorithm of {@link rateLimit} shares. */
export interface RateLimitCommonOptions {
  /**
   * What one call costs, in tokens (permits): a finite number >= 0, or a function of the call's context that
   * returns one (called once per call). A call costing more than the burst (token bucket) or the limit (windows)
   * is rejected at once with `RateLimitedError` (reason `'cost'`, `retryAfterMs: Infinity`); a function that
   * throws or returns anything else rejects the call with a `TypeError`. @defaultValue 1
   */
  cost?: number | ((ctx: Context) => number);
  /**
   * How many calls may wait for their tokens, in FIFO order: an integer >= 0 or Infinity. A queued call reserves
   * its tokens when it arrives and starts exactly when they are available. @defaultValue 0 (reject at once)
   */
  queue?: number;
  /**
   * The longest a call may wait in the queue, in ms (> 0). A call whose tokens would come later is rejected at
   * once (reason `'queue_timeout'`), never after waiting. @defaultValue no limit (the queue bound only)
   */
  queueTimeoutMs?: number;
  /** Name used in events, metrics and errors. @defaultValue `'rate-limit'` */
  name?: string;
  /** Tokens refill and windows turn on this clock, lazily: no timer unless a call waits. @defaultValue `systemClock` */
  clock?: Clock;
}

/**
 * A token bucket: `burst` tokens at most, refilled continuously at `rate` tokens per `periodMs`; a call takes
 * `cost` tokens. Its decisions are exactly those of GCRA (the generic cell rate algorithm of redis-cell), and it
 * is stored as GCRA stores it: one number, the theoretical arrival time.
 *
 * @example
 * ```ts
 * rateLimit({ rate: 100 }); // 100 calls per second on average, bursts of up to 100
 * rateLimit({ rate: 5, periodMs: 60_000, burst: 1 }); // one call every 12 s, no burst
 * ```
 */
export interface TokenBucketOptions extends RateLimitCommonOptions {
  /** @defaultValue `'token-bucket'` */
  algorithm?: 'token-bucket';
  /** Tokens added per `periodMs`: a finite number > 0. Required. */
  rate: number;
  /** The period of `rate`, in ms: a finite number > 0. @defaultValue 1_000 (so `rate` is per second) */
  periodMs?: number;
  /**
   * The most tokens the bucket holds: how many unit-cost calls may start at once after a quiet spell. A finite
   * number >= 1. @defaultValue `rate` (one period's worth, at least 1)
   */
  burst?: number;
}

/**
 * A sliding window: at most `limit` tokens (calls, at cost 1) in the last `windowMs`, counted in `segments` equal
 * segments; tokens taken in a segment come back when that segment leaves the window (the .NET
 * `SlidingWindowRateLimiter`). More segments follow the true sliding window more closely.
 *
 * @example
 * ```ts
 * rateLimit({ algorithm: 'sliding-window', limit: 600, windowMs: 60_000, segments: 6 });
 * ```
 */
export interface SlidingWindowOptions extends RateLimitCommonOptions {
  algorithm: 'sliding-window';
  /** The most tokens in one window: an integer >= 1. Required. */
  limit: number;
  /** The window's length, in ms: a finite number > 0. Required. */
  windowMs: number;
  /** How many segments the window is divided into: an integer in [1, 1000]. @defaultValue 10 */
  segments?: number;
}

/**
 * A fixed window: at most `limit` tokens in each window `[k * windowMs, (k + 1) * windowMs)` of the clock. Up to
 * twice `limit` may start within one `windowMs` across a window boundary; use the sliding window or the token
 * bucket where that matters.
 *
 * @example
 * ```ts
 * rateLimit({ algorithm: 'fixed-window', limit: 1_000, windowMs: 60_000 });
 * ```
 */
export interface FixedWindowOptions extends RateLimitCommonOptions {
  algorithm: 'fixed-window';
  /** The most tokens in one window: an integer >= 1. Required. */
  limit: number;
  /** The window's length, in ms: a finite number > 0. Required. */
  windowMs: number;
}

/** Options of {@link rateLimit}: one of its algorithms, chosen by `algorithm` (default `'token-bucket'`). */
export type RateLimitOptions = TokenBucketOptions | SlidingWindowOptions | FixedWindowOptions;

const COMMON = ['cost', 'queue', 'queueTimeoutMs', 'name', 'clock'] as const;

/** @internal The option names each algorithm accepts. */
export const RATE_LIMIT_OPTION_NAMES: Readonly<Record<RateLimitAlgorithm, readonly string[]>> = {
  'token-bucket': ['algorithm', 'rate', 'periodMs', 'burst', ...COMMON],
  'sliding-window': ['algorithm', 'limit', 'windowMs', 'segments', ...COMMON],
  'fixed-window': ['algorithm', 'limit', 'windowMs', ...COMMON],
};

/** @internal */
export const RATE_LIMIT_ALGORITHMS: readonly RateLimitAlgorithm[] = ['token-bucket', 'sliding-window', 'fixed-window'];
