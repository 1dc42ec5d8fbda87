import type { FallbackUsedEvent } from '../../events/types.js';

/** The events a fallback policy emits. */
export type FallbackEvent = FallbackUsedEvent;
