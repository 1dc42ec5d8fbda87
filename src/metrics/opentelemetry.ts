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
import { type LabelMaker, SeriesStore } from './series.js';

/** The instrumentation scope name of the default meter. */
const SCOPE = 'bulwark';
/** Kept in step with package.json by a test. */
const SCOPE_VERSION = '0.1.0';

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
 *
 * See docs/metrics.md for every attribute and its values.
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
    if (check.string('prefix', prefix) && typeof prefix === 'string' && !PREFIX.test(prefix)) {
      check.fail('prefix', prefix, 'a name like "bulwark" or "payments.bulwark" (letters, digits, _ . -)');
    }
    checkCommon(check, options);
  }
  check.done();

  const meter = options.meter ?? (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE, SCOPE_VERSION);
  const prefix = options.prefix ?? 'bulwark';
  const boundaries = [...(options.durationBuckets ?? DEFAULT_DURATION_BUCKETS)];

  // Observable: the events are counted in bulwark's own series and their totals observed at collection time.
  const events = meter.createObservableCounter(`${prefix}.events`, {
    description: 'Events of bulwark policies: retries, breaker transitions and rejections, timeouts, fallbacks.',
    unit: '{event}',
  });
  const execution = meter.createHistogram(`${prefix}.execution.duration`, {
    description: 'Duration of a call through a policy or pipeline, every attempt and backoff included.',
    unit: 's',
    advice: { explicitBucketBoundaries: boundaries },
  });
  const attempt = meter.createHistogram(`${prefix}.attempt.duration`, {
    description: 'Duration of one attempt made by a retry policy.',
    unit: 's',
    advice: { explicitBucketBoundaries: boundaries },
  });
  const breakerState = meter.createObservableGauge(`${prefix}.circuit_breaker.state`, {
    description: 'Circuit breakers of this name in this state (1 or 0 for a uniquely named breaker).',
    unit: '{breaker}',
  });
  const active = meter.createObservableGauge(`${prefix}.bulkhead.active`, {
    description: 'Calls holding a bulkhead slot.',
    unit: '{call}',
  });
  const queued = meter.createObservableGauge(`${prefix}.bulkhead.queued`, {
    description: 'Calls waiting in a bulkhead queue.',
    unit: '{call}',
  });
  const limit = meter.createObservableGauge(`${prefix}.bulkhead.limit`, {
    description: 'The concurrency limit of a bulkhead.',
    unit: '{call}',
  });

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

  const gauges: Observable[] = [breakerState, active, queued, limit];
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

/** Whether `value` has a method `name`; a getter or proxy that throws means no. */
function has(value: unknown, name: string): boolean {
  try {
    return typeof (value as Record<string, unknown> | null)?.[name] === 'function';
  } catch {
    return false;
  }
}

const PREFIX = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;
const STATES = ['closed', 'open', 'half_open', 'isolated'] as const;

/** Attribute names, in the style of the OpenTelemetry semantic conventions. */
const POLICY = 'bulwark.policy.name';
const OPERATION = 'bulwark.operation.name';
const EVENT = 'bulwark.event.name';
const RESULT = 'bulwark.result';
const REASON = 'bulwark.reason';
const STATE = 'bulwark.state';
const ERROR_TYPE = 'error.type';

/**
 * Series kept per instrument. The events counter's series past it are counted in one series with the attributes
 * the SDK gives its own overflow (`otel.metric.overflow: true`), at the SDK's default cardinality limit (2000, so
 * 1999 series and the overflow): the memory of a label fed by mistake with ids stays bounded.
 */
const MAX_SERIES = 1_999;

/** `bulwark.events`: policy, operation and event always; `error.type` and reason when present. */
const EVENT_ATTRIBUTES: LabelMaker<Attributes> = {
  of(policy, operation, event, errorType, reason) {
    const a: Attributes = { [POLICY]: policy, [OPERATION]: operation, [EVENT]: event };
    if (errorType !== '') a[ERROR_TYPE] = errorType;
    if (reason !== '') a[REASON] = reason;
    return a;
  },
  overflow: { 'otel.metric.overflow': true },
};

/** The duration histograms: policy, operation and result always; `error.type` when present. */
const DURATION_ATTRIBUTES: LabelMaker<Attributes> = {
  of(policy, operation, result, errorType) {
    const a: Attributes = { [POLICY]: policy, [OPERATION]: operation, [RESULT]: result };
    if (errorType !== '') a[ERROR_TYPE] = errorType;
    return a;
  },
  overflow: {},
};

export { type CommonMetricsOptions, defaultErrorType, type PolicyMetrics } from './hub.js';
