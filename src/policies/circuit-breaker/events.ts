import type {
  CircuitClosedEvent,
  CircuitHalfOpenEvent,
  CircuitIsolatedEvent,
  CircuitOpenEvent,
  CircuitProbeExpiredEvent,
  CircuitRejectedEvent,
} from '../../events/types.js';

/** The events a circuit breaker emits. */
export type CircuitBreakerEvent =
  | CircuitOpenEvent
  | CircuitHalfOpenEvent
  | CircuitClosedEvent
  | CircuitIsolatedEvent
  | CircuitRejectedEvent
  | CircuitProbeExpiredEvent;
