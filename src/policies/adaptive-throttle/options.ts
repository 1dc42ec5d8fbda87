import type { Clock } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import type { Handle } from '../handle.js';

/** Options of {@link adaptiveThrottle}. */
export interface AdaptiveThrottleOptions {
  /**
   * The SRE book's multiplier K: calls pass untouched while the requests in the window are at most `k` times the
   * accepts, and beyond that are rejected locally with probability `(requests - k * accepts) / (requests + 1)`.
   * Lower is more aggressive (1.1: the upstream sees about 1.1 calls per call it accepts); higher lets more calls
   * through to learn sooner that the upstream has recovered (2: about two calls per accepted call). A number
   * >= 1: below 1 the throttle would reject calls from a perfectly healthy upstream. @defaultValue 2
   */
  k?: number;
  /** How much history the counts cover, in ms: a number >= 1. @defaultValue 120_000 (two minutes, as in the SRE book) */
  windowMs?: number;
  /**
   * How many buckets the window is split into: an integer in [1, 1000]. Counts leave the window a bucket at a time,
   * so a call counted at time t stops counting between `windowMs - windowMs / buckets` and `windowMs` later.
   * @defaultValue 20
   */
  buckets?: number;
  /**
   * The fewest requests the window must hold before the throttle rejects anything: an integer >= 0. The formula
   * alone already needs most calls to fail (more than half, with K = 2) before it rejects; this floor also keeps
   * a quiet client from shedding its first calls after a few failures. @defaultValue 0 (the SRE formula as is)
   */
  minRequests?: number;
  /**
   * Which outcomes mean the upstream refused the call (counted as a request but not an accept): a predicate of the
   * error (`(e) => boolean`), or an outcome classifier from `handleResults()` / `handleOutcomes()` to judge results
   * too (an HTTP 429 response, say). Every other outcome is an accept. A caller's abort and bulwark's own local
   * rejections (`isLocalRejectionError`) never reach it and are not counted at all.
   * @defaultValue every error (a failure of any kind means the upstream did not serve the call); no result
   * @example `handle: (e) => e instanceof HttpStatusError && (e.status === 429 || e.status === 503)`
   */
  handle?: Handle;
  /** Name used in events, metrics and errors. @defaultValue `'adaptive-throttle'` */
  name?: string;
  /** Rotates the window. @defaultValue `systemClock` */
  clock?: Clock;
  /** The draw a call's rejection is decided by: a function returning a number in [0, 1). @defaultValue `Math.random` */
  random?: Random;
}

/** @internal */
export const ADAPTIVE_THROTTLE_OPTION_NAMES = [
  'k',
  'windowMs',
  'buckets',
  'minRequests',
  'handle',
  'name',
  'clock',
  'random',
] as const;
