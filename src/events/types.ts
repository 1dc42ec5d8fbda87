import type { Outcome } from '../core/outcome.js';

/** Fields every event carries. */
export interface EventBase {
  /** The name of the policy that emitted the event (its `name` option). */
  readonly policy: string;
  /** The low-cardinality operation name given to `execute`. */
  readonly operation: string;
  /** The attempt number the event is about (1 for the first). */
  readonly attempt: number;
}

/** A retry policy will run another attempt after `delayMs`. */
export interface RetryAttemptEvent extends EventBase {
  readonly type: 'retry.attempt';
  /** The delay before the next attempt, in ms. */
  readonly delayMs: number;
  /** The outcome of the attempt that failed (`attempt`). */
  readonly outcome: Outcome<unknown>;
}

/**
 * A retry policy gave up: no attempts left, the backoff (or a server's hint, or the call) said stop, an open circuit
 * would not reopen in time, or its retry budget refused another retry.
 */
export interface RetryExhaustedEvent extends EventBase {
  readonly type: 'retry.exhausted';
  readonly reason: 'attempts' | 'stopped' | 'circuit_open' | 'budget';
  readonly outcome: Outcome<unknown>;
}

/**
 * A breaker entered the `open` state. The breaker's transition events are named after the state entered, in the
 * same spelling as {@link CircuitState} and the metrics' `state` label: `circuit.open`, `circuit.half_open`,
 * `circuit.closed`, `circuit.isolated`.
 */
export interface CircuitOpenEvent extends EventBase {
  readonly type: 'circuit.open';
  /** How long it stays open before a probe is admitted, in ms. */
  readonly breakDurationMs: number;
  /** The state it opened from. */
  readonly from: 'closed' | 'half_open';
  /** The failure rate (0..1) or, for the consecutive window, the consecutive failure count at opening. */
  readonly failureRate: number;
  readonly slowCallRate: number;
}

/** A breaker entered the `half_open` state and admits probes. */
export interface CircuitHalfOpenEvent extends EventBase {
  readonly type: 'circuit.half_open';
}

/** A breaker entered the `closed` state again (probes succeeded, or `reset()`). */
export interface CircuitClosedEvent extends EventBase {
  readonly type: 'circuit.closed';
  readonly from: 'half_open' | 'open' | 'isolated' | 'closed';
}

/** A breaker entered the `isolated` state (`isolate()`). */
export interface CircuitIsolatedEvent extends EventBase {
  readonly type: 'circuit.isolated';
}

/** A breaker rejected a call. */
export interface CircuitRejectedEvent extends EventBase {
  readonly type: 'circuit.rejected';
  /** `'unavailable'`: a shared breaker (bulwark/redis) whose store gave no answer, failing closed. */
  readonly state: 'open' | 'half_open' | 'isolated' | 'unavailable';
  readonly retryAfterMs: number;
}

/** Half-open probes held their slots longer than the break duration; their slots were taken back. */
export interface CircuitProbeExpiredEvent extends EventBase {
  readonly type: 'circuit.probe_expired';
  /** How many probes were still running. */
  readonly probes: number;
}

/** A timeout fired: the attempt's signal was aborted and the call rejected with `TimeoutError`. */
export interface TimeoutFiredEvent extends EventBase {
  readonly type: 'timeout.fired';
  readonly timeoutMs: number;
}

/** Work abandoned by a timeout (or a caller abort under a timeout) settled later; its outcome was discarded. */
export interface TimeoutLateOutcomeEvent extends EventBase {
  readonly type: 'timeout.late_outcome';
  readonly outcome: Outcome<unknown>;
}

/** A bulkhead refused a call. */
export interface BulkheadRejectedEvent extends EventBase {
  readonly type: 'bulkhead.rejected';
  /** `'unavailable'`: a shared concurrency limit (bulwark/redis) whose store gave no answer, failing closed. */
  readonly reason: 'full' | 'queue_timeout' | 'disposed' | 'unavailable';
  readonly active: number;
  readonly queued: number;
}

/** A rate limiter refused a call (see `RateLimitedError`). */
export interface RateLimitRejectedEvent extends EventBase {
  readonly type: 'rate_limit.rejected';
  readonly reason: 'limit' | 'queue_full' | 'queue_timeout' | 'cost' | 'disposed' | 'unavailable';
  /**
   * Milliseconds until a call of this cost would be admitted at once (`Infinity` for `cost`, `disposed` and
   * `unavailable`: a shared store that did not answer, under `onStoreError: 'fail-closed'`).
   */
  readonly retryAfterMs: number;
  /** What the call cost, in tokens (permits). */
  readonly cost: number;
  /** Calls waiting in the limiter's queue when it was refused. */
  readonly queued: number;
}

/** A rate limiter queued a call: it starts in `waitMs`, when its tokens (reserved now) are available. */
export interface RateLimitQueuedEvent extends EventBase {
  readonly type: 'rate_limit.queued';
  /** How long the call waits for its tokens, in ms. */
  readonly waitMs: number;
  /** What the call costs, in tokens (permits). */
  readonly cost: number;
  /** Calls waiting in the queue, this one included. */
  readonly queued: number;
}

/**
 * An adaptive limit's limit (a whole number) changed after a call's sample. `operation` and `attempt` are those of
 * the call whose sample moved it.
 */
export interface AdaptiveLimitChangedEvent extends EventBase {
  readonly type: 'adaptive_limit.changed';
  /** The limit before. */
  readonly from: number;
  /** The limit now. */
  readonly to: number;
  /**
   * What moved it: `'drop'` (a failure that signals overload lowered it), `'latency'` (a slower call lowered it,
   * AIMD's `slowCallMs` included) or `'growth'` (a call while the limit was in use raised it).
   */
  readonly reason: 'drop' | 'latency' | 'growth';
}

/** A fallback replaced a handled failure. */
export interface FallbackUsedEvent extends EventBase {
  readonly type: 'fallback.used';
  readonly outcome: Outcome<unknown>;
}

/**
 * A hedge policy started another attempt of a call: its delay passed with no outcome yet (`'delay'`), an attempt
 * failed in a way it handles (`'failure'`), or all start at once (`'parallel'`, a delay of 0).
 */
export interface HedgeLaunchedEvent extends EventBase {
  readonly type: 'hedge.launched';
  /** Why the attempt started now. */
  readonly trigger: 'delay' | 'failure' | 'parallel';
}

/** A hedge policy would have started another attempt, but its retry budget refused; it starts no more for the call. */
export interface HedgeRefusedEvent extends EventBase {
  readonly type: 'hedge.refused';
  readonly reason: 'budget';
}

/**
 * An attempt of a hedged call settled after the call had settled (it lost, and was aborted with a
 * `HedgeCancelledError`, or the caller aborted): its outcome was discarded.
 */
export interface HedgeLateOutcomeEvent extends EventBase {
  readonly type: 'hedge.late_outcome';
  readonly outcome: Outcome<unknown>;
}

/** A call through a policy (or pipeline) the user called `execute` on has settled. */
export interface ExecutionCompletedEvent extends EventBase {
  readonly type: 'execution.completed';
  readonly durationMs: number;
  /** `'success'` (resolved), `'failure'` (rejected) or `'aborted'` (rejected after the caller aborted). */
  readonly result: 'success' | 'failure' | 'aborted';
  /** What the call rejected with; absent when `result` is `'success'`. */
  readonly error?: unknown;
}

/**
 * One attempt made by a retry policy has settled (every attempt, the first included, whatever its outcome).
 * Only retry emits it: without a retry a call has one attempt, and `execution.completed` times it.
 */
export interface AttemptCompletedEvent extends EventBase {
  readonly type: 'attempt.completed';
  /** From the start of the attempt to its settling, in ms (backoff delays excluded). */
  readonly durationMs: number;
  /**
   * `'success'` (the attempt resolved, even with a result the retry's `handle` treats as a failure),
   * `'failure'` (it rejected) or `'aborted'` (it rejected after the caller aborted).
   */
  readonly result: 'success' | 'failure' | 'aborted';
  /** What the attempt rejected with; absent when `result` is `'success'`. */
  readonly error?: unknown;
}

/**
 * An adaptive throttle rejected a call locally (with `ThrottledError`), without running it.
 */
export interface ThrottleRejectedEvent extends EventBase {
  readonly type: 'throttle.rejected';
  /** The rejection probability the call drew against, in (0, 1). */
  readonly probability: number;
  /** The requests counted in the window when the call was rejected (the rejected call not included). */
  readonly requests: number;
  /** The accepts counted in the window when the call was rejected. */
  readonly accepts: number;
}

/** What a fault-injection policy injects: an error, a delay, a result, or a behaviour of your own. */
export type ChaosKind = 'fault' | 'latency' | 'outcome' | 'behavior';

/** A fault-injection policy injected chaos into a call (emitted as the injection starts). */
export interface ChaosInjectedEvent extends EventBase {
  readonly type: 'chaos.injected';
  /** What was injected. */
  readonly kind: ChaosKind;
  /** The injected delay, in ms; only for `kind: 'latency'`. */
  readonly latencyMs?: number;
}

/**
 * A policy backed by a shared store (bulwark/redis) got no answer from the store and took its fallback
 * (`onStoreError`) for this call. One event per call that fell back.
 */
export interface StoreFallbackEvent extends EventBase {
  readonly type: 'store.fallback';
  /**
   * Why: `'not_ready'` (the client was not connected, Redis not asked), `'timeout'` (no answer within the store
   * timeout), `'error'` (the command failed), `'unavailable'` (skipped: a recent call failed and the next recheck
   * is not due).
   */
  readonly reason: 'not_ready' | 'timeout' | 'error' | 'unavailable';
  /** What the call did instead: `'fail-open'` (ran), `'fail-closed'` (refused) or `'local'` (the local policy). */
  readonly fallback: 'fail-open' | 'fail-closed' | 'local';
  /** The store's error (bulwark/redis: a `RedisStoreError`, the client's error as its `cause`). */
  readonly error: unknown;
}

/** A shared store (bulwark/redis) answered again after failing: the policy's decisions come from it again. */
export interface StoreRecoveredEvent extends EventBase {
  readonly type: 'store.recovered';
  /** How long the store had been failing, in ms (from its first failure to this answer). */
  readonly downMs: number;
}

/**
 * Every event bulwark emits: one discriminated union on `type`.
 *
 * @example
 * ```ts
 * policy.on('retry.attempt', (e) => log.info({ attempt: e.attempt, delayMs: e.delayMs }, 'retrying'));
 * ```
 */
export type ResilienceEvent =
  | RetryAttemptEvent
  | RetryExhaustedEvent
  | CircuitOpenEvent
  | CircuitHalfOpenEvent
  | CircuitClosedEvent
  | CircuitIsolatedEvent
  | CircuitRejectedEvent
  | CircuitProbeExpiredEvent
  | TimeoutFiredEvent
  | TimeoutLateOutcomeEvent
  | BulkheadRejectedEvent
  | RateLimitRejectedEvent
  | RateLimitQueuedEvent
  | AdaptiveLimitChangedEvent
  | FallbackUsedEvent
  | HedgeLaunchedEvent
  | HedgeRefusedEvent
  | HedgeLateOutcomeEvent
  | ExecutionCompletedEvent
  | AttemptCompletedEvent
  | ThrottleRejectedEvent
  | ChaosInjectedEvent
  | StoreFallbackEvent
  | StoreRecoveredEvent;

/** The `type` of any event. */
export type EventType = ResilienceEvent['type'];

/** The event of a given type. */
export type EventOf<K extends EventType> = Extract<ResilienceEvent, { type: K }>;

/** A listener of events of type `K`. */
export type Listener<K extends EventType> = (event: EventOf<K>) => void;

/** Every event type, in a stable order. */
export const EVENT_TYPES: readonly EventType[] = [
  'retry.attempt',
  'retry.exhausted',
  'circuit.open',
  'circuit.half_open',
  'circuit.closed',
  'circuit.isolated',
  'circuit.rejected',
  'circuit.probe_expired',
  'timeout.fired',
  'timeout.late_outcome',
  'bulkhead.rejected',
  'rate_limit.rejected',
  'rate_limit.queued',
  'fallback.used',
  'hedge.launched',
  'hedge.refused',
  'hedge.late_outcome',
  'execution.completed',
  'attempt.completed',
  'adaptive_limit.changed',
  'throttle.rejected',
  'chaos.injected',
  'store.fallback',
  'store.recovered',
];
