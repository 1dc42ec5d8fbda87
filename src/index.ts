/**
 * bulwark: composable resilience policies for Node.js.
 *
 * @example
 * ```ts
 * import { pipeline, retry, circuitBreaker, timeout, bulkhead, fallback } from 'bulwark';
 * ```
 * @module bulwark
 */

// Core
export { type Clock, MAX_TIMER_DELAY_MS, systemClock, type TimerHandle } from './core/clock.js';
export type { Context, ExecuteOptions } from './core/context.js';
export type { HandlePredicate, Outcome } from './core/outcome.js';
export type { Operation, Policy } from './core/policy.js';
export { Properties, PropertyKey, RETRYABLE } from './core/properties.js';
export { type Random, systemRandom } from './core/random.js';
// Errors
export {
  BulkheadRejectedError,
  type BulkheadRejectionReason,
  CircuitOpenError,
  type CircuitRejectionState,
  type ErrorCode,
  HedgeCancelledError,
  InvalidOptionsError,
  isBulkheadRejectedError,
  isCircuitOpenError,
  isHedgeCancelledError,
  isInvalidOptionsError,
  isLocalRejectionError,
  isRateLimitedError,
  isResilienceError,
  isRetryExhaustedError,
  isThrottledError,
  isTimeoutError,
  type OptionProblem,
  RateLimitedError,
  type RateLimitRejectionReason,
  ResilienceError,
  RetryExhaustedError,
  ThrottledError,
  TimeoutError,
} from './errors/errors.js';
// Events
export { channelName } from './events/emitter.js';
export type * from './events/types.js';
export { EVENT_TYPES } from './events/types.js';
// Policies
export {
  type AdaptiveLimitAlgorithm,
  type AdaptiveLimitBaseOptions,
  type AdaptiveLimitEvent,
  type AdaptiveLimitOptions,
  AdaptiveLimitPolicy,
  type AimdLimitOptions,
  adaptiveLimit,
  type Gradient2LimitOptions,
  type VegasLimitOptions,
} from './policies/adaptive-limit/index.js';
export {
  type AdaptiveThrottleEvent,
  type AdaptiveThrottleOptions,
  AdaptiveThrottlePolicy,
  adaptiveThrottle,
} from './policies/adaptive-throttle/index.js';
export { type BulkheadEvent, type BulkheadOptions, BulkheadPolicy, bulkhead } from './policies/bulkhead/index.js';
export {
  type ChaosEvent,
  ChaosPolicy,
  type FaultValue,
  type InjectBehaviorOptions,
  type InjectFaultOptions,
  type InjectionOptions,
  type InjectLatencyOptions,
  type InjectOutcomeOptions,
  injectBehavior,
  injectFault,
  injectLatency,
  injectOutcome,
} from './policies/chaos/index.js';
export {
  type CircuitBreakerEvent,
  type CircuitBreakerOptions,
  CircuitBreakerPolicy,
  type CircuitSnapshot,
  type CircuitState,
  type ConsecutiveWindowOptions,
  type CountWindowOptions,
  circuitBreaker,
  type TimeWindowOptions,
  type WindowOptions,
  type WindowSnapshot,
} from './policies/circuit-breaker/index.js';
export {
  type FallbackEvent,
  type FallbackOptions,
  FallbackPolicy,
  type FallbackValue,
  fallback,
} from './policies/fallback/index.js';
export {
  type Handle,
  handleAllErrors,
  handleErrors,
  handleOutcomes,
  handleResults,
  type OutcomeClassifier,
} from './policies/handle.js';
export {
  type HedgeDelay,
  type HedgeEvent,
  type HedgeOptions,
  HedgePolicy,
  type HedgeQuantileDelay,
  hedge,
} from './policies/hedge/index.js';
export { type KeyedOptions, KeyedPolicy, keyed } from './policies/keyed/index.js';
export { PipelinePolicy, pipeline } from './policies/pipeline.js';
export { type ObservablePolicy, PolicyBase } from './policies/policy-base.js';
export {
  type FixedWindowOptions,
  type RateLimitAlgorithm,
  type RateLimitCommonOptions,
  type RateLimitEvent,
  type RateLimitOptions,
  RateLimitPolicy,
  rateLimit,
  type SlidingWindowOptions,
  type TokenBucketOptions,
} from './policies/rate-limit/index.js';
export {
  type Backoff,
  type BackoffFunction,
  constant,
  type ExponentialOptions,
  exponential,
  type Jitter,
  type LinearOptions,
  linear,
  type RetryEvent,
  type RetryOptions,
  RetryPolicy,
  retry,
} from './policies/retry/index.js';
export {
  RetryBudget,
  type RetryBudgetOptions,
  RetryRatioBudget,
  RetryTokenBudget,
  type RetryTokenBudgetOptions,
  retryBudget,
  retryTokenBudget,
} from './policies/retry-budget/index.js';
export { type TimeoutEvent, type TimeoutOptions, TimeoutPolicy, timeout } from './policies/timeout/index.js';
