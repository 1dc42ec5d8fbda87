/**
 * OpenTelemetry metrics for bulwark's policies, on a Meter of `@opentelemetry/api` (an optional peer dependency).
 *
 * @example
 * ```ts
 * import { openTelemetryMetrics } from 'bulwark/opentelemetry';
 * ```
 * @module bulwark/opentelemetry
 */
import {
  type Attributes,
  type BatchObservableCallback,
  type Meter,
  type MeterProvider,
  metrics,
  type Observable,
} from '@opentelemetry/api';
import { Checker } from '../errors/validate.js';
import {
  type CallResult,
  type CommonMetricsOptions,
  checkCommon,
  DEFAULT_DURATION_BUCKETS,
  MetricsHub,
  type PolicyMetrics,
} from './hub.js';
import {
  DURATION_ATTRIBUTES,
  EVENT_ATTRIBUTES,
  has,
  instruments,
  MAX_SERIES,
  POLICY,
  SCOPE,
  SCOPE_VERSION,
  STATE,
  STATES,
} from './otel-model.js';
import { checkPrefix } from './otel-producer.js';
import { SeriesStore } from './series.js';

/** Options of {@link openTelemetryMetrics}. */
export interface OpenTelemetryMetricsOptions extends CommonMetricsOptions {
  /**
   * The meter provider to take the `bulwark` meter from.
   * @defaultValue the global one (`metrics.getMeterProvider()` of @opentelemetry/api)
   */
  meterProvider?: MeterProvider;
  /** A meter to create the instruments on, instead of one from `meterProvider` (not both). */
  meter?: Meter;
  /** The prefix of every instrument name. @defaultValue `'bulwark'` */
  prefix?: string;
}

/**
 * Records bulwark's events as OpenTelemetry metrics on a Meter from `@opentelemetry/api` (an optional peer
 * dependency). Attach it to the whole process or to chosen policies. The instruments (`<prefix>` is `bulwark`):
 *
 * | instrument | kind | unit | attributes |
 * |---|---|---|---|
 * | `bulwark.events` | ObservableCounter | `{event}` | policy, operation, event name, `error.type`, reason |
 * | `bulwark.execution.duration` | Histogram | `s` | policy, operation, result, `error.type` |
 * | `bulwark.attempt.duration` | Histogram | `s` | policy, operation, result, `error.type` |
 * | `bulwark.circuit_breaker.state` | ObservableGauge | `{breaker}` | policy, state |
 * | `bulwark.bulkhead.active` / `.queued` / `.limit` | ObservableGauge | `{call}` | policy |
 * | `bulwark.rate_limit.available` / `.capacity` | ObservableGauge | `{token}` | policy |
 * | `bulwark.rate_limit.queued` | ObservableGauge | `{call}` | policy |
 * | `bulwark.retry_budget.calls_in_flight` | ObservableGauge | `{call}` | policy (the budget's name) |
 * | `bulwark.retry_budget.retries_in_flight` / `.credit` | ObservableGauge | `{retry}` | policy (the budget's name) |
 * | `bulwark.retry_budget.tokens` | ObservableGauge | `{token}` | policy (the budget's name) |
 * | `bulwark.adaptive_throttle.requests` / `.accepts` | ObservableGauge | `{request}` | policy |
 * | `bulwark.adaptive_throttle.rejection_probability` | ObservableGauge | `1` | policy |
 *
 * The gauges are read from the policies' state at each collection, nothing per call (see docs/metrics.md).
 *
 * See docs/metrics.md for every attribute and its values.
 *
 * Cost: the two histograms are synchronous instruments, and the SDK hashes the attributes of every sample, so an
 * observed call through a pipeline with a retry costs a few microseconds (two samples). With the SDK
 * (`@opentelemetry/sdk-metrics` 2.x) and a reader you create, {@link openTelemetryMetricProducer} exports the same
 * metrics for a fraction of that (about what `prometheusMetrics` costs); this adapter is the one that works with
 * `@opentelemetry/api` alone, with a global or `NodeSDK` meter provider, and with Views.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api';
 * import { openTelemetryMetrics } from 'bulwark/opentelemetry';
 *
 * const bulwarkMetrics = openTelemetryMetrics({ meterProvider: metrics.getMeterProvider() });
 * bulwarkMetrics.attachAll(); // or bulwarkMetrics.attach(payments)
 * ```
 */
export function openTelemetryMetrics(options: OpenTelemetryMetricsOptions = {}): PolicyMetrics {
  const check = new Checker('openTelemetryMetrics');
  if (check.object('', options, ['meterProvider', 'meter', 'prefix', 'errorType', 'durationBuckets'])) {
    const { meterProvider, meter, prefix } = options as Record<string, unknown>;
    if (meterProvider !== undefined && !has(meterProvider, 'getMeter')) {
      check.fail('meterProvider', meterProvider, 'a MeterProvider (an object with getMeter())');
    }
    if (meter !== undefined && !has(meter, 'createCounter')) {
      check.fail('meter', meter, 'a Meter (an object with createCounter())');
    }
    if (meter !== undefined && meterProvider !== undefined)
      check.fail('meter', 'both meter and meterProvider', 'one of them');
    checkPrefix(check, prefix);
    checkCommon(check, options);
  }
  check.done();

  const meter = options.meter ?? (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE, SCOPE_VERSION);
  const boundaries = [...(options.durationBuckets ?? DEFAULT_DURATION_BUCKETS)];

  const info = instruments(options.prefix ?? 'bulwark');
  // Observable: the events are counted in bulwark's own series and their totals observed at collection time.
  const events = meter.createObservableCounter(info.events.name, {
    description: info.events.description,
    unit: info.events.unit,
  });
  const histogram = ({ name, description, unit }: typeof info.execution) =>
    meter.createHistogram(name, { description, unit, advice: { explicitBucketBoundaries: boundaries } });
  const execution = histogram(info.execution);
  const attempt = histogram(info.attempt);
  const gauge = ({ name, description, unit }: typeof info.active) =>
    meter.createObservableGauge(name, { description, unit });
  const breakerState = gauge(info.breakerState);
  const active = gauge(info.active);
  const queued = gauge(info.queued);
  const limit = gauge(info.limit);
  const rateAvailable = gauge(info.rateAvailable);
  const rateQueued = gauge(info.rateQueued);
  const rateCapacity = gauge(info.rateCapacity);
  const budgetCalls = gauge(info.budgetCalls);
  const budgetRetries = gauge(info.budgetRetries);
  const budgetCredit = gauge(info.budgetCredit);
  const budgetTokens = gauge(info.budgetTokens);
  const throttleRequests = gauge(info.throttleRequests);
  const throttleAccepts = gauge(info.throttleAccepts);
  const throttleProbability = gauge(info.throttleProbability);

  // Why pre-aggregated counters: Counter.add hashes its attributes (a sort and a JSON.stringify) on every call, about
  // 1 us on the bench machine. Here an event is five Map lookups and an increment; the totals are observed once per
  // collection, and only the series that moved since the last one (see `observeEvents`).
  const counts = new SeriesStore<Attributes>(EVENT_ATTRIBUTES, 0, MAX_SERIES);
  // Histograms have no observable form: each sample is recorded as it happens. The attributes object is made once
  // per series (the SDK keeps the one it is first given), so a sample allocates nothing on bulwark's side.
  const executions = new SeriesStore<Attributes>(DURATION_ATTRIBUTES, 0, MAX_SERIES);
  const attempts = new SeriesStore<Attributes>(DURATION_ATTRIBUTES, 0, MAX_SERIES);
  const hub = new MetricsHub(
    'openTelemetryMetrics',
    {
      count(policy, operation, event, errorType, reason): void {
        counts.get(policy, operation, event, errorType, reason).count++;
      },
      execution(seconds, policy, operation, result, errorType): void {
        execution.record(seconds, durationAttributes(executions, policy, operation, result, errorType));
      },
      attempt(seconds, policy, operation, result, errorType): void {
        attempt.record(seconds, durationAttributes(attempts, policy, operation, result, errorType));
      },
    },
    options.errorType,
  );

  const gauges: Observable[] = [
    breakerState,
    active,
    queued,
    limit,
    rateAvailable,
    rateQueued,
    rateCapacity,
    budgetCalls,
    budgetRetries,
    budgetCredit,
    budgetTokens,
    throttleRequests,
    throttleAccepts,
    throttleProbability,
  ];
  const observeGauges: BatchObservableCallback = (result) => {
    const reading = hub.read();
    for (const [policy, r] of reading.breakers) {
      for (const state of STATES) result.observe(breakerState, r[state], { [POLICY]: policy, [STATE]: state });
    }
    for (const [policy, r] of reading.bulkheads) {
      const a = { [POLICY]: policy };
      result.observe(active, r.active, a);
      result.observe(queued, r.queued, a);
      result.observe(limit, r.limit, a);
    }
    for (const [policy, r] of reading.rateLimits) {
      const a = { [POLICY]: policy };
      result.observe(rateAvailable, r.available, a);
      result.observe(rateQueued, r.queued, a);
      result.observe(rateCapacity, r.capacity, a);
    }
    for (const [policy, r] of reading.retryBudgets) {
      const a = { [POLICY]: policy };
      result.observe(budgetCalls, r.calls, a);
      result.observe(budgetRetries, r.retries, a);
      result.observe(budgetCredit, r.credit, a);
    }
    for (const [policy, r] of reading.tokenBudgets) result.observe(budgetTokens, r.tokens, { [POLICY]: policy });
    for (const [policy, r] of reading.throttles) {
      const a = { [POLICY]: policy };
      result.observe(throttleRequests, r.requests, a);
      result.observe(throttleAccepts, r.accepts, a);
      result.observe(throttleProbability, r.probability, a);
    }
  };
  let closed = false;
  const observeEvents: BatchObservableCallback = (result) => {
    // Only the series that moved: an unchanged total adds nothing for a cumulative reader (the SDK keeps the last
    // total of every series) and would add a zero-valued point for a delta reader, which a Counter never exported.
    // Deltas reach every reader of the meter whichever reader's collection observed them.
    for (const s of counts.all) {
      if (s.count !== s.reported) {
        s.reported = s.count;
        result.observe(events, s.count, s.labels);
      }
    }
    if (closed) {
      // The totals counted before close() are now observed: let go. Not synchronously: the SDK is iterating over
      // its batch callbacks while this one runs, and removing it from that list would skip the next one.
      queueMicrotask(() => meter.removeBatchObservableCallback(observeEvents, [events]));
    }
  };
  meter.addBatchObservableCallback(observeGauges, gauges);
  meter.addBatchObservableCallback(observeEvents, [events]);
  hub.onClose = () => {
    meter.removeBatchObservableCallback(observeGauges, gauges);
    // The events callback stays until the next collection has observed the last totals (with a Counter they would
    // have been in the SDK already).
    closed = true;
  };
  return hub;
}

/**
 * The attributes of a duration sample, one object per series. Past `MAX_SERIES` a new object per sample, as
 * before there was a cache: the SDK then applies its own cardinality limit, unchanged.
 */
function durationAttributes(
  store: SeriesStore<Attributes>,
  policy: string,
  operation: string,
  result: CallResult,
  errorType: string,
): Attributes {
  const s = store.get(policy, operation, result, errorType, '');
  return s === store.overflow ? DURATION_ATTRIBUTES.of(policy, operation, result, errorType, '') : s.labels;
}

export { type CommonMetricsOptions, defaultErrorType, type PolicyMetrics } from './hub.js';
export {
  type OpenTelemetryMetricProducer,
  type OpenTelemetryMetricProducerOptions,
  openTelemetryMetricProducer,
  type ProducedAttributes,
  type ProducedAttributeValue,
  type ProducedCollection,
  type ProducedHistogram,
  type ProducedHrTime,
  type ProducedMetric,
  type ProducedMetricBase,
  type ProducedPoint,
  type ProducedResource,
} from './otel-producer.js';
