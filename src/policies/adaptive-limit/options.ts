import type { Clock } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import type { Handle } from '../handle.js';

/** The algorithms that move an adaptive limit. See docs/policies/adaptive-limit.md. */
export type AdaptiveLimitAlgorithm = 'gradient2' | 'aimd' | 'vegas';

/** Options every algorithm of {@link adaptiveLimit} shares. */
export interface AdaptiveLimitBaseOptions {
  /**
   * The limit to start from: an integer in [minLimit, maxLimit]. @defaultValue 20 (Netflix concurrency-limits, every
   * algorithm)
   */
  initialLimit?: number;
  /**
   * The lowest the limit may go: an integer >= 1. @defaultValue 20 for `gradient2` and `aimd` (Netflix), 1 for
   * `vegas` (Netflix's Vegas has no floor)
   */
  minLimit?: number;
  /**
   * The highest the limit may go: an integer >= minLimit. @defaultValue 200 for `gradient2` and `aimd`, 1000 for
   * `vegas` (Netflix)
   */
  maxLimit?: number;
  /**
   * Which failures are drops, the upstream's sign of overload: a predicate of the error, or an outcome classifier
   * (`handleResults`, ...) to count results too. bulwark's own local rejections (a full inner bulkhead, an open
   * inner breaker) and the caller's abort never count, whatever it says; a `TimeoutError` of an inner timeout is a
   * drop by default. A failure it does not handle is timed like a success. @defaultValue every error
   */
  handle?: Handle<never>;
  /**
   * Samples are gathered in windows, and the algorithm takes one per window: the average latency of its calls, the
   * most calls in flight, and whether any was a drop (Netflix's WindowedLimit). A window closes at the first call
   * that settles once it holds `windowSize` samples and is older than twice its lowest latency, clamped to
   * [minWindowMs, maxWindowMs]. Why: the effect of a change shows only a latency later, so an update per call
   * overshoots; about one per round trip, as TCP's congestion control does, settles. `windowSize: 1` and
   * `maxWindowMs: 0` feed every call to the algorithm. An integer >= 1. @defaultValue 10 (Netflix)
   */
  windowSize?: number;
  /**
   * The shortest window, in ms (>= 0). @defaultValue 100 (Netflix's WindowedLimit: 1000, its lowest allowed: 100;
   * bulwark takes the lowest so that a limit adapts within seconds)
   */
  minWindowMs?: number;
  /** The longest window, in ms (>= 0; it wins over a default minWindowMs). @defaultValue 1000 (Netflix) */
  maxWindowMs?: number;
  /** How many calls may wait for a slot, in FIFO order: an integer >= 0 or Infinity. @defaultValue 0 */
  queue?: number;
  /** The longest a call may wait in the queue before it is rejected, in ms (> 0). @defaultValue no limit */
  queueTimeoutMs?: number;
  /** Name used in events, metrics and errors. @defaultValue `'adaptive_limit'` */
  name?: string;
  /** The clock that times each call (two readings per call) and the queue. @defaultValue `systemClock` */
  clock?: Clock;
}

/**
 * Gradient2 (Netflix concurrency-limits' recommended latency-based algorithm): compares each call's latency with a
 * long-term average of latencies and shrinks the limit as the ratio grows.
 */
export interface Gradient2LimitOptions extends AdaptiveLimitBaseOptions {
  /** The default algorithm. */
  algorithm?: 'gradient2';
  /**
   * How much of each new estimate is taken: a number in (0, 1]; 1 takes the new estimate whole. @defaultValue 0.2
   */
  smoothing?: number;
  /** How much the limit may grow past its current value on each sample, before smoothing: a number >= 0. @defaultValue 4 */
  queueSize?: number;
  /**
   * The number of samples the long-term latency average spans (its exponential factor is 2 / (longWindow + 1)): an
   * integer >= 1. @defaultValue 600
   */
  longWindow?: number;
  /**
   * How much slower than the long-term average a call may be before the limit shrinks: a number >= 1; 1.5 tolerates
   * 50% more latency. @defaultValue 1.5
   */
  rttTolerance?: number;
}

/**
 * AIMD (additive increase, multiplicative decrease): grows by 1 on each success while the limit is in use, and is
 * multiplied by `backoffRatio` on each drop or call slower than `slowCallMs`.
 */
export interface AimdLimitOptions extends AdaptiveLimitBaseOptions {
  algorithm: 'aimd';
  /** What a drop multiplies the limit by: a number in (0, 1). @defaultValue 0.9 */
  backoffRatio?: number;
  /** A call slower than this (in ms, > 0) counts as a drop. @defaultValue 5000 (Netflix's AIMD timeout) */
  slowCallMs?: number;
}

/**
 * Vegas (after TCP Vegas): estimates the queue at the upstream from each call's latency against the lowest latency
 * seen, grows while the queue is short and shrinks when it is long.
 */
export interface VegasLimitOptions extends AdaptiveLimitBaseOptions {
  algorithm: 'vegas';
  /** How much of each new estimate is taken: a number in (0, 1]. @defaultValue 1 */
  smoothing?: number;
  /**
   * The lowest latency is measured again about every `probeMultiplier x limit` samples (jittered by 0.5 to 1): an
   * integer >= 1. @defaultValue 30
   */
  probeMultiplier?: number;
  /** The random source of the probe's jitter. @defaultValue `Math.random` */
  random?: Random;
}

/** Options of {@link adaptiveLimit}: one shape per algorithm, told apart by `algorithm`. */
export type AdaptiveLimitOptions = Gradient2LimitOptions | AimdLimitOptions | VegasLimitOptions;

/** @internal */
export const ADAPTIVE_LIMIT_ALGORITHMS: readonly AdaptiveLimitAlgorithm[] = ['gradient2', 'aimd', 'vegas'];

/** @internal Options any algorithm takes. */
export const ADAPTIVE_LIMIT_BASE_OPTION_NAMES = [
  'algorithm',
  'initialLimit',
  'minLimit',
  'maxLimit',
  'windowSize',
  'minWindowMs',
  'maxWindowMs',
  'handle',
  'queue',
  'queueTimeoutMs',
  'name',
  'clock',
] as const;

/** @internal The options of each algorithm beyond the shared ones. */
export const ADAPTIVE_LIMIT_ALGORITHM_OPTION_NAMES: Readonly<Record<AdaptiveLimitAlgorithm, readonly string[]>> = {
  gradient2: ['smoothing', 'queueSize', 'longWindow', 'rttTolerance'],
  aimd: ['backoffRatio', 'slowCallMs'],
  vegas: ['smoothing', 'probeMultiplier', 'random'],
};
