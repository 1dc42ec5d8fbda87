import type { ChaosInjectedEvent } from '../../events/types.js';

/** The events a fault-injection policy emits. */
export type ChaosEvent = ChaosInjectedEvent;
