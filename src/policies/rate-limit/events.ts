import type { RateLimitQueuedEvent, RateLimitRejectedEvent } from '../../events/types.js';

/** The events a rate limiter emits. */
export type RateLimitEvent = RateLimitRejectedEvent | RateLimitQueuedEvent;
