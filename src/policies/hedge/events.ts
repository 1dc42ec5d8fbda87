import type { HedgeLateOutcomeEvent, HedgeLaunchedEvent, HedgeRefusedEvent } from '../../events/types.js';

/** The events a hedge policy emits. */
export type HedgeEvent = HedgeLaunchedEvent | HedgeRefusedEvent | HedgeLateOutcomeEvent;
