import type { Clock } from '../../core/clock.js';
import type { Context } from '../../core/context.js';
import type { Outcome } from '../../core/outcome.js';
import type { Handle } from '../handle.js';

/**
 * The replacement: a plain value, or a function of the failure and the context (which may be async). To fall
 * back to a function value, return it from a function: `value: () => myFunction`.
 */
export type FallbackValue<T> = T | ((failure: Outcome<unknown>, ctx: Context) => T | PromiseLike<T>);

/** Options of {@link fallback}. */
export interface FallbackOptions<T> {
  /** What to return instead of a handled failure. Required. */
  value: FallbackValue<T>;
  /**
   * Which failures are replaced: a predicate of the error (`(e) => boolean`; results are never failures), or an outcome
   * classifier from `handleResults()` / `handleOutcomes()` to judge results too. A caller's abort never reaches it.
   * @defaultValue every error except the caller's abort; no result
   * @example `handle: (e) => (e as NodeJS.ErrnoException).code !== 'EPERM'`
   */
  handle?: Handle;
  /** Name used in events and metrics. @defaultValue `'fallback'` */
  name?: string;
  /** Times `execution.completed`. @defaultValue `systemClock` */
  clock?: Clock;
}

/** @internal */
export const FALLBACK_OPTION_NAMES = ['value', 'handle', 'name', 'clock'] as const;
