import type { Clock } from '../../core/clock.js';

/** Options of {@link bulkhead}. */
export interface BulkheadOptions {
  /** How many calls may run at once: an integer >= 1. Required. */
  limit: number;
  /** How many calls may wait for a slot, in FIFO order: an integer >= 0 or Infinity. @defaultValue 0 */
  queue?: number;
  /** The longest a call may wait in the queue before it is rejected, in ms (> 0). @defaultValue no limit */
  queueTimeoutMs?: number;
  /** Name used in events, metrics and errors. @defaultValue `'bulkhead'` */
  name?: string;
  /** @defaultValue `systemClock` */
  clock?: Clock;
}

/** @internal */
export const BULKHEAD_OPTION_NAMES = ['limit', 'queue', 'queueTimeoutMs', 'name', 'clock'] as const;
