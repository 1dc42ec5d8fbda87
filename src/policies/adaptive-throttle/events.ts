import type { ThrottleRejectedEvent } from '../../events/types.js';

/** The events an adaptive throttle emits. */
export type AdaptiveThrottleEvent = ThrottleRejectedEvent;
