import type { TimeoutFiredEvent, TimeoutLateOutcomeEvent } from '../../events/types.js';

/** The events a timeout policy emits. */
export type TimeoutEvent = TimeoutFiredEvent | TimeoutLateOutcomeEvent;
