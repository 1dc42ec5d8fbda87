import type { Clock } from '../../core/clock.js';

/** Options of {@link timeout}. */
export interface TimeoutOptions {
  /** The time limit of each attempt, in ms: > 0 (longer than 2^31-1 ms is fine). Required. */
  ms: number;
  /** Name used in events, metrics and errors. @defaultValue `'timeout'` */
  name?: string;
  /** @defaultValue `systemClock` */
  clock?: Clock;
}

/** @internal */
export const TIMEOUT_OPTION_NAMES = ['ms', 'name', 'clock'] as const;
