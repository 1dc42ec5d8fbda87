import type { BulkheadRejectedEvent } from '../../events/types.js';

/** The events a bulkhead emits. */
export type BulkheadEvent = BulkheadRejectedEvent;
