import type { Clock } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import type { Handle } from '../handle.js';
import type { Backoff } from '../retry/backoff.js';
import type { CircuitSnapshot } from './window.js';

/** Opens after `threshold` failures in a row. */
export interface ConsecutiveWindowOptions {
  kind: 'consecutive';
  /** Failures in a row that open the breaker: an integer >= 1. @defaultValue 5 */
  threshold?: number;
}

/** Failure and slow-call rates over the last `size` calls. */
export interface CountWindowOptions {
  kind: 'count';
  /** How many recent calls the rates are computed over: an integer in [1, 1_000_000]. @defaultValue 100 */
  size?: number;
}

/** Failure and slow-call rates over the last `sizeMs`, kept in `buckets` that rotate lazily (no timers). */
export interface TimeWindowOptions {
  kind: 'time';
  /** The window's length in ms: a number >= 1. @defaultValue 60_000 */
  sizeMs?: number;
  /** How many buckets the window is split into: an integer in [1, 1000]. @defaultValue 10 */
  buckets?: number;
}

/** The window a breaker judges health over. */
export type WindowOptions = ConsecutiveWindowOptions | CountWindowOptions | TimeWindowOptions;

/** Options of {@link circuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Name used in events, metrics and errors. @defaultValue `'circuit-breaker'` */
  name?: string;
  /** @defaultValue `{ kind: 'count', size: 100 }` */
  window?: WindowOptions;
  /** Rate windows: the failure rate in (0, 1] that opens the breaker. @defaultValue 0.5 */
  failureRate?: number;
  /**
   * Rate windows: calls the window must hold before rates are judged (an integer >= 1; for a count window at
   * most its size). @defaultValue 20 (capped at a count window's size when not given)
   */
  minimumCalls?: number;
  /** Rate windows: a call that takes at least this long (ms, > 0) is slow. @defaultValue none: no call is slow */
  slowCallMs?: number;
  /** Rate windows: the slow-call rate in (0, 1] that opens the breaker; needs `slowCallMs`. @defaultValue 1 */
  slowCallRate?: number;
  /**
   * How long the breaker stays open before it admits probes: fixed ms, or a backoff of the number of consecutive
   * openings (so the break grows while the dependency stays down). @defaultValue 10_000
   */
  halfOpenAfterMs?: number | Backoff;
  /** How many probes half-open admits at once: an integer >= 1. @defaultValue 1 */
  halfOpenProbes?: number;
  /** Successful probes needed to close: an integer >= 1. @defaultValue 1 */
  halfOpenSuccesses?: number;
  /**
   * How long a half-open probe may hold its slot before it counts as hung and another probe is admitted, in ms
   * (> 0). @defaultValue the current break duration, but at least 1_000
   */
  halfOpenLeaseMs?: number;
  /**
   * Which errors count as failures: a predicate of the error, or an outcome classifier (`handleResults()`,
   * `handleOutcomes()`) to count results too. A caller's abort and bulwark's local rejections (full bulkhead,
   * inner open breaker) never reach it and never count. @defaultValue every other error; no result
   */
  handle?: Handle;
  /** A state saved by `snapshot()` to start from. */
  initialState?: CircuitSnapshot;
  /** @defaultValue `systemClock` */
  clock?: Clock;
  /** Random source for a jittered `halfOpenAfterMs` backoff. @defaultValue `Math.random` */
  random?: Random;
}

/** @internal */
export const CIRCUIT_OPTION_NAMES = [
  'name',
  'window',
  'failureRate',
  'minimumCalls',
  'slowCallMs',
  'slowCallRate',
  'halfOpenAfterMs',
  'halfOpenProbes',
  'halfOpenSuccesses',
  'halfOpenLeaseMs',
  'handle',
  'initialState',
  'clock',
  'random',
] as const;
