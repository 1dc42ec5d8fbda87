export { CircuitBreakerPolicy, type CircuitState, circuitBreaker } from './circuit-breaker.js';
export type { CircuitBreakerEvent } from './events.js';
export type {
  CircuitBreakerOptions,
  ConsecutiveWindowOptions,
  CountWindowOptions,
  TimeWindowOptions,
  WindowOptions,
} from './options.js';
export type { CircuitSnapshot, WindowSnapshot } from './window.js';
