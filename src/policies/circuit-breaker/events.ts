import type {
  CircuitClosedEvent,
  CircuitHalfOpenedEvent,
  CircuitIsolatedEvent,
  CircuitOpenedEvent,
  CircuitProbeExpiredEvent,
  CircuitRejectedEvent,
} from '../../events/types.js';

/** The events a circuit breaker emits. */
export type CircuitBreakerEvent =
  | CircuitOpenedEvent
  | CircuitHalfOpenedEvent
  | CircuitClosedEvent
  | CircuitIsolatedEvent
  | CircuitRejectedEvent
  | CircuitProbeExpiredEvent;
