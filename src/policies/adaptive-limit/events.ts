import type { AdaptiveLimitChangedEvent, BulkheadRejectedEvent } from '../../events/types.js';

/** The events an adaptive limit emits: its limit changed, or it refused a call as a bulkhead does. */
export type AdaptiveLimitEvent = AdaptiveLimitChangedEvent | BulkheadRejectedEvent;
