import type { AttemptCompletedEvent, RetryAttemptEvent, RetryExhaustedEvent } from '../../events/types.js';

/** The events a retry policy emits. */
export type RetryEvent = RetryAttemptEvent | RetryExhaustedEvent | AttemptCompletedEvent;
