/*
 * What both OpenTelemetry paths export, in one place: instrument names, units, descriptions and attributes, so
 * that `openTelemetryMetrics` (instruments on a Meter) and `openTelemetryMetricProducer` (data points handed to
 * a reader) cannot drift apart. A test compares their exports through a real SDK.
 *
 * Why a plain comment, not TSDoc with @internal: tsup strips internal declarations from the .d.ts, and a doc
 * comment at the top of a file belongs to its first import, which was then dropped (users saw "Cannot find name").
 */
import type { Attributes } from '@opentelemetry/api';
import type { LabelMaker } from './series.js';

/** The instrumentation scope name of the default meter and of the producer's data. */
export const SCOPE = 'bulwark';
/** Kept in step with package.json by a test. */
export const SCOPE_VERSION = '0.1.0';

export const PREFIX = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;
export const STATES = ['closed', 'open', 'half_open', 'isolated'] as const;

/** Attribute names, in the style of the OpenTelemetry semantic conventions. */
export const POLICY = 'bulwark.policy.name';
const OPERATION = 'bulwark.operation.name';
const EVENT = 'bulwark.event.name';
const RESULT = 'bulwark.result';
const REASON = 'bulwark.reason';
export const STATE = 'bulwark.state';
const ERROR_TYPE = 'error.type';

/**
 * Series kept per instrument by bulwark. Past it, further attribute sets are counted in one series with the
 * attributes the SDK gives its own overflow (`otel.metric.overflow: true`), at the SDK's default cardinality limit
 * (2000, so 1999 series and the overflow): the memory of a label fed by mistake with ids stays bounded.
 */
export const MAX_SERIES = 1_999;

/** The attributes of the series the SDK, and bulwark, count attribute sets past the limit in. */
export const OVERFLOW_ATTRIBUTES: Attributes = { 'otel.metric.overflow': true };

/** `bulwark.events`: policy, operation and event always; `error.type` and reason when present. */
export const EVENT_ATTRIBUTES: LabelMaker<Attributes> = {
  of(policy, operation, event, errorType, reason) {
    const a: Attributes = { [POLICY]: policy, [OPERATION]: operation, [EVENT]: event };
    if (errorType !== '') a[ERROR_TYPE] = errorType;
    if (reason !== '') a[REASON] = reason;
    return a;
  },
  overflow: OVERFLOW_ATTRIBUTES,
};

/** The duration histograms: policy, operation and result always; `error.type` when present. */
export const DURATION_ATTRIBUTES: LabelMaker<Attributes> = {
  of(policy, operation, result, errorType) {
    const a: Attributes = { [POLICY]: policy, [OPERATION]: operation, [RESULT]: result };
    if (errorType !== '') a[ERROR_TYPE] = errorType;
    return a;
  },
  overflow: OVERFLOW_ATTRIBUTES,
};

/** An instrument's name, description and unit. */
export interface InstrumentInfo {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
}

/** Every instrument, in the order both paths create (and the SDK exports) them. */
export function instruments(prefix: string) {
  const info = (suffix: string, description: string, unit: string): InstrumentInfo => ({
    name: `${prefix}.${suffix}`,
    description,
    unit,
  });
  return {
    events: info(
      'events',
      'Events of bulwark policies: retries, breaker transitions and rejections, timeouts, fallbacks.',
      '{event}',
    ),
    execution: info(
      'execution.duration',
      'Duration of a call through a policy or pipeline, every attempt and backoff included.',
      's',
    ),
    attempt: info('attempt.duration', 'Duration of one attempt made by a retry policy.', 's'),
    breakerState: info(
      'circuit_breaker.state',
      'Circuit breakers of this name in this state (1 or 0 for a uniquely named breaker).',
      '{breaker}',
    ),
    active: info('bulkhead.active', 'Calls holding a bulkhead slot.', '{call}'),
    queued: info('bulkhead.queued', 'Calls waiting in a bulkhead queue.', '{call}'),
    limit: info('bulkhead.limit', 'The concurrency limit of a bulkhead.', '{call}'),
    rateAvailable: info(
      'rate_limit.available',
      'Tokens (permits) a call could take from a rate limiter now, net of the queued calls.',
      '{token}',
    ),
    rateQueued: info('rate_limit.queued', 'Calls waiting in a rate limiter queue for their tokens.', '{call}'),
    rateCapacity: info(
      'rate_limit.capacity',
      'The most tokens a rate limiter holds: its burst (token bucket) or limit (windows).',
      '{token}',
    ),
    budgetCalls: info(
      'retry_budget.calls_in_flight',
      'Calls in flight through the policies sharing a retry budget.',
      '{call}',
    ),
    budgetRetries: info(
      'retry_budget.retries_in_flight',
      'Retries and hedges in flight that a retry budget allowed.',
      '{retry}',
    ),
    budgetCredit: info(
      'retry_budget.credit',
      'Retries a retry budget has earned and not spent (one needed beyond its minConcurrency).',
      '{retry}',
    ),
    budgetTokens: info(
      'retry_budget.tokens',
      'Tokens left in a retry token budget; retries are allowed while more than half of maxTokens.',
      '{token}',
    ),
    throttleRequests: info(
      'adaptive_throttle.requests',
      'Requests counted in an adaptive throttle window: calls attempted, its own rejections included.',
      '{request}',
    ),
    throttleAccepts: info(
      'adaptive_throttle.accepts',
      'Accepts counted in an adaptive throttle window: calls the upstream served.',
      '{request}',
    ),
    throttleProbability: info(
      'adaptive_throttle.rejection_probability',
      'The probability that an adaptive throttle rejects a call starting now, from 0 to below 1.',
      '1',
    ),
  };
}

/** Whether `value` has a method `name`; a getter or proxy that throws means no. */
export function has(value: unknown, name: string): boolean {
  try {
    return typeof (value as Record<string, unknown> | null)?.[name] === 'function';
  } catch {
    return false;
  }
}
