import type { Clock } from '../../core/clock.js';
import type { Context } from '../../core/context.js';
import type { Handle } from '../handle.js';
import type { RetryBudget } from '../retry-budget/retry-budget.js';

/**
 * When the next hedged attempt starts, in ms: a number, or a function of the hedge number (1 for the first hedge)
 * and the call's context. A delay > 0 waits that long for an outcome (latency mode), 0 starts it at once (parallel
 * mode), and a negative delay starts it only after an attempt fails (fallback mode).
 */
export type HedgeDelay = number | ((hedge: number, ctx: Context) => number);

/** A delay learned from the latency of recent successful attempts. */
export interface HedgeQuantileDelay {
  /** The quantile of recent latencies after which a hedge starts: a number in (0, 1), such as 0.95. */
  quantile: number;
  /**
   * How many recent successful attempts the quantile is computed over: an integer >= 1. @defaultValue 1_000
   */
  samples?: number;
  /**
   * How many samples are needed before the quantile is used; until then `delayMs` applies: an integer >= 1, at most
   * `samples`. @defaultValue 100, or `samples` when that is fewer
   */
  minSamples?: number;
}

/** Options of {@link hedge}. */
export interface HedgeOptions {
  /**
   * How many attempts may start besides the first: an integer from 1 to 10. @defaultValue 1
   */
  maxHedgedAttempts?: number;
  /**
   * When each hedged attempt starts ({@link HedgeDelay}): > 0 waits for an outcome that long, 0 starts every
   * attempt at once, < 0 starts the next only after a failure. With `delayQuantile`, the delay used until the
   * quantile has enough samples. @defaultValue 2_000 (Polly's default)
   */
  delayMs?: HedgeDelay;
  /**
   * Learn the delay from the latency of recent successful attempts (for example their p95), so only the slow tail
   * is hedged. Each attempt then reads the clock when it starts and when it settles.
   * @defaultValue none (`delayMs` alone)
   */
  delayQuantile?: HedgeQuantileDelay;
  /**
   * Which outcomes are failures (the next hedge starts at once; they never win while another attempt may still
   * succeed). Any other outcome wins: a value, or an error this does not handle (a 404, a validation error), which
   * is final. @defaultValue every error except the caller's abort; no result
   */
  handle?: Handle;
  /**
   * A retry budget (`retryBudget()`, `retryTokenBudget()`) asked before each hedge, shared with retry policies:
   * when it refuses, the call starts no more hedges (`hedge.refused`). @defaultValue none
   */
  budget?: RetryBudget;
  /** Name used in events, metrics and errors. @defaultValue `'hedge'` */
  name?: string;
  /** @defaultValue `systemClock` */
  clock?: Clock;
}

/** @internal */
export const HEDGE_OPTION_NAMES = [
  'maxHedgedAttempts',
  'delayMs',
  'delayQuantile',
  'handle',
  'budget',
  'name',
  'clock',
] as const;

/** @internal */
export const HEDGE_QUANTILE_OPTION_NAMES = ['quantile', 'samples', 'minSamples'] as const;
