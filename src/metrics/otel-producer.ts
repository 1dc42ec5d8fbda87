/*
 * The fast OpenTelemetry path: bulwark aggregates every metric itself and hands the data points to an SDK
 * `MetricReader` as a `MetricProducer` when it collects. See {@link openTelemetryMetricProducer}.
 *
 * Why a plain comment, not TSDoc with @internal: tsup strips internal declarations from the .d.ts, and a doc
 * comment at the top of a file belongs to its first import, which was then dropped (users saw "Cannot find name").
 */
// No import from '@opentelemetry/api' here: the bundled .d.ts lost this module's imports of it (users then saw
// "Cannot find name 'Attributes'"), so the types below are bulwark's own, structurally the same as the API's.
import { wallClockNow } from '../core/clock.js';
import { Checker } from '../errors/validate.js';
import {
  type CommonMetricsOptions,
  checkCommon,
  DEFAULT_DURATION_BUCKETS,
  type GaugeReading,
  MetricsHub,
  type PolicyMetrics,
} from './hub.js';
import {
  DURATION_ATTRIBUTES,
  EVENT_ATTRIBUTES,
  type InstrumentInfo,
  instruments,
  MAX_SERIES,
  POLICY,
  PREFIX,
  SCOPE,
  SCOPE_VERSION,
  STATE,
  STATES,
} from './otel-model.js';
import { resetSeries, type Series, SeriesStore, storeSink } from './series.js';

/** An attribute value: the same type as OpenTelemetry's `AttributeValue`. */
export type ProducedAttributeValue =
  | string
  | number
  | boolean
  | (null | undefined | string)[]
  | (null | undefined | number)[]
  | (null | undefined | boolean)[];

/** A set of attributes: the same type as OpenTelemetry's `Attributes`. */
export interface ProducedAttributes {
  [key: string]: ProducedAttributeValue | undefined;
}

/** A time as `[seconds, nanoseconds]` since the epoch: OpenTelemetry's `HrTime`. */
export type ProducedHrTime = [number, number];

/** Options of {@link openTelemetryMetricProducer}. */
export interface OpenTelemetryMetricProducerOptions extends CommonMetricsOptions {
  /** The prefix of every metric name. @defaultValue `'bulwark'` */
  prefix?: string;
  /**
   * The temporality of the sums and histograms. `'cumulative'`: totals since the series appeared; one producer
   * may be given to several readers. `'delta'`: what changed since the previous collection; each collection
   * empties the series, so a delta producer must be given to **one** reader only (make one producer per delta
   * reader). Choose what the reader's exporter expects: the SDK does not convert a producer's data.
   * @defaultValue `'cumulative'`
   */
  temporality?: 'cumulative' | 'delta';
}

/**
 * The metric data an {@link OpenTelemetryMetricProducer} returns: the shape of `CollectionResult` of
 * `@opentelemetry/sdk-metrics` 2.x (written out here so that `bulwark/opentelemetry` needs no SDK types; a test
 * checks that it stays assignable).
 */
export interface ProducedCollection {
  resourceMetrics: {
    /** An empty resource: a reader keeps its SDK's resource and ignores a producer's. */
    resource: ProducedResource;
    scopeMetrics: { scope: { readonly name: string; readonly version?: string }; metrics: ProducedMetric[] }[];
  };
  /** What went wrong while collecting (the reader reports it); the metrics collected are still returned. */
  errors: unknown[];
}

/** The empty resource of a {@link ProducedCollection} (the SDK's `Resource` interface). */
export interface ProducedResource {
  readonly attributes: ProducedAttributes;
  /** Merges another resource into this one (the SDK's `Resource.merge`). */
  merge(other: ProducedResource | null): ProducedResource;
  /** The attributes as `[key, value]` pairs (the SDK's `Resource.getRawAttributes`). */
  getRawAttributes(): [string, ProducedAttributeValue | undefined][];
}

/** A metric of a {@link ProducedCollection}: a sum, a gauge or a histogram (`MetricData` of the SDK). */
export type ProducedMetric =
  | (ProducedMetricBase & {
      readonly dataPointType: 3;
      readonly dataPoints: ProducedPoint<number>[];
      readonly isMonotonic: boolean;
    })
  | (ProducedMetricBase & { readonly dataPointType: 2; readonly dataPoints: ProducedPoint<number>[] })
  | (ProducedMetricBase & { readonly dataPointType: 0; readonly dataPoints: ProducedPoint<ProducedHistogram>[] });

/** What every {@link ProducedMetric} has. */
export interface ProducedMetricBase {
  readonly descriptor: {
    readonly name: string;
    readonly description: string;
    readonly unit: string;
    /** `1`: DOUBLE (OpenTelemetry's `ValueType`; `0` is INT). */
    readonly valueType: 0 | 1;
  };
  /** `0`: delta, `1`: cumulative (`AggregationTemporality` of the SDK). */
  readonly aggregationTemporality: 0 | 1;
}

/** A data point of a {@link ProducedMetric}. */
export interface ProducedPoint<T> {
  readonly startTime: ProducedHrTime;
  readonly endTime: ProducedHrTime;
  readonly attributes: ProducedAttributes;
  readonly value: T;
}

/** A histogram data point's value: explicit buckets (`counts` has one more slot than `boundaries`, for +Inf). */
export interface ProducedHistogram {
  buckets: { boundaries: number[]; counts: number[] };
  sum?: number;
  count: number;
  min?: number;
  max?: number;
}

/**
 * bulwark's metrics as an OpenTelemetry `MetricProducer`: give it to a reader of `@opentelemetry/sdk-metrics`
 * (`metricProducers`), then attach it to policies as any adapter.
 */
export interface OpenTelemetryMetricProducer extends PolicyMetrics {
  /** Called by the reader at each collection: bulwark's data points, aggregated since the last one. */
  collect(options?: { timeoutMillis?: number }): Promise<ProducedCollection>;
}

/**
 * bulwark's OpenTelemetry metrics, aggregated by bulwark and handed to your SDK's reader at collection time: the
 * opt-in fast path beside {@link openTelemetryMetrics}. Same metric names, units, descriptions, attributes and
 * bucket boundaries; an observed call costs a few field updates instead of the SDK's `Histogram.record`, which
 * hashes its attributes on every sample (several µs per call through a pipeline with a retry, measured).
 *
 * The trade-offs, since the data bypasses the SDK's instruments:
 * - give it to the reader when you create the reader (`metricProducers`, an option the SDK marks experimental);
 * - Views of the MeterProvider do not apply to it (renames, attribute filters, other buckets: use `prefix` and
 *   `durationBuckets` instead), nor the reader's cardinality limits (bulwark keeps at most 1,999 series per
 *   metric, and counts further attribute sets in one series `otel.metric.overflow: true`, as the SDK does);
 * - the temporality is the producer's (`temporality`), not the reader's preference;
 * - it needs `@opentelemetry/sdk-metrics` 2.x (a reader that takes `metricProducers`); with only the API, use
 *   {@link openTelemetryMetrics}.
 *
 * After `close()`, the next collection still exports what was counted before it; then the producer exports
 * nothing.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
 * import { openTelemetryMetricProducer } from 'bulwark/opentelemetry';
 *
 * const bulwarkMetrics = openTelemetryMetricProducer();
 * const reader = new PeriodicExportingMetricReader({ exporter, metricProducers: [bulwarkMetrics] });
 * const provider = new MeterProvider({ readers: [reader] });
 * bulwarkMetrics.attachAll(); // or bulwarkMetrics.attach(payments)
 * ```
 */
export function openTelemetryMetricProducer(
  options: OpenTelemetryMetricProducerOptions = {},
): OpenTelemetryMetricProducer {
  const check = new Checker('openTelemetryMetricProducer');
  if (check.object('', options, ['prefix', 'temporality', 'errorType', 'durationBuckets'])) {
    checkPrefix(check, options.prefix);
    const t = options.temporality as unknown;
    if (t !== undefined && t !== 'cumulative' && t !== 'delta') check.fail('temporality', t, "'cumulative' or 'delta'");
    checkCommon(check, options);
  }
  check.done();
  return new ProducerHub(options);
}

/** @internal Validates an OpenTelemetry name prefix into `check`. */
export function checkPrefix(check: Checker, prefix: unknown): void {
  if (check.string('prefix', prefix) && typeof prefix === 'string' && !PREFIX.test(prefix)) {
    check.fail('prefix', prefix, 'a name like "bulwark" or "payments.bulwark" (letters, digits, _ . -)');
  }
}

const CUMULATIVE = 1;
const DELTA = 0;
const SUM = 3;
const GAUGE = 2;
const HISTOGRAM = 0;

/** Before close(); closed, with one collection of the last totals due; done. */
const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** The empty resource; the reader uses its SDK's resource instead. */
const EMPTY_RESOURCE: ProducedResource = Object.freeze({
  attributes: Object.freeze({}),
  merge: (other: ProducedResource | null) => other ?? EMPTY_RESOURCE,
  getRawAttributes: () => [],
});

/** Wall-clock ms as OpenTelemetry's `[seconds, nanoseconds]`. */
function hrTime(ms: number): ProducedHrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

class ProducerHub extends MetricsHub implements OpenTelemetryMetricProducer {
  readonly #info: ReturnType<typeof instruments>;
  readonly #bounds: number[];
  readonly #delta: boolean;
  readonly #counts: SeriesStore<ProducedAttributes>;
  readonly #executions: SeriesStore<ProducedAttributes>;
  readonly #attempts: SeriesStore<ProducedAttributes>;
  #state = OPEN;
  /** The end of the last collection (a delta point's start), first the creation. */
  #last = wallClockNow();

  constructor(options: OpenTelemetryMetricProducerOptions) {
    const bounds = [...(options.durationBuckets ?? DEFAULT_DURATION_BUCKETS)];
    // The same stores and the same per-sample work as the Prometheus adapter: a cached series, a few additions.
    const counts = new SeriesStore<ProducedAttributes>(EVENT_ATTRIBUTES, 0, MAX_SERIES);
    const executions = new SeriesStore<ProducedAttributes>(DURATION_ATTRIBUTES, bounds.length, MAX_SERIES);
    const attempts = new SeriesStore<ProducedAttributes>(DURATION_ATTRIBUTES, bounds.length, MAX_SERIES);
    super('openTelemetryMetricProducer', storeSink(counts, executions, attempts, bounds), options.errorType);
    this.#info = instruments(options.prefix ?? 'bulwark');
    this.#bounds = bounds;
    this.#delta = options.temporality === 'delta';
    this.#counts = counts;
    this.#executions = executions;
    this.#attempts = attempts;
    this.onClose = () => {
      this.#state = CLOSING;
    };
  }

  collect(): Promise<ProducedCollection> {
    const metrics: ProducedMetric[] = [];
    const errors: unknown[] = [];
    if (this.#state !== CLOSED) {
      try {
        this.#collect(metrics);
      } catch (error) {
        errors.push(error);
      }
      if (this.#state === CLOSING) this.#state = CLOSED;
    }
    return Promise.resolve({
      resourceMetrics: {
        resource: EMPTY_RESOURCE,
        scopeMetrics: metrics.length === 0 ? [] : [{ scope: { name: SCOPE, version: SCOPE_VERSION }, metrics }],
      },
      errors,
    });
  }

  #collect(into: ProducedMetric[]): void {
    const now = wallClockNow();
    const end = hrTime(now);
    const temporality = this.#delta ? DELTA : CUMULATIVE;
    // A delta point starts where the last collection ended; a cumulative one when its series appeared.
    const deltaStart = hrTime(this.#last);
    const startOf = (s: Series<ProducedAttributes>) => (this.#delta ? deltaStart : hrTime(s.start));
    const info = this.#info;
    // In the order the SDK exports the instruments of openTelemetryMetrics; a metric without points is left out.
    const sums: ProducedPoint<number>[] = [];
    for (const s of this.#counts.all) {
      if (s.count === 0) continue; // delta: nothing new in this interval
      sums.push({ attributes: s.labels, startTime: startOf(s), endTime: end, value: s.count });
      if (this.#delta) resetSeries(s, now);
    }
    if (sums.length > 0) {
      into.push({
        ...descriptor(info.events, 'OBSERVABLE_COUNTER', temporality),
        dataPointType: SUM,
        dataPoints: sums,
        isMonotonic: true,
      });
    }
    for (const [store, what] of [
      [this.#executions, info.execution],
      [this.#attempts, info.attempt],
    ] as const) {
      const points: ProducedPoint<ProducedHistogram>[] = [];
      for (const s of store.all) {
        if (s.count === 0) continue;
        points.push({
          attributes: s.labels,
          startTime: startOf(s),
          endTime: end,
          value: {
            min: s.min,
            max: s.max,
            sum: s.sum,
            buckets: { boundaries: this.#bounds, counts: Array.from(s.buckets as Float64Array) },
            count: s.count,
          },
        });
        if (this.#delta) resetSeries(s, now);
      }
      if (points.length > 0) {
        into.push({
          ...descriptor(what, 'HISTOGRAM', temporality, { explicitBucketBoundaries: this.#bounds }),
          dataPointType: HISTOGRAM,
          dataPoints: points,
        });
      }
    }
    this.#last = now;
    if (this.#state === OPEN) this.#gauges(into, this.read(), end, temporality);
  }

  /** The gauges, read from the policies now (their points start and end at the collection, as the SDK's do). */
  #gauges(into: ProducedMetric[], reading: GaugeReading, at: ProducedHrTime, temporality: 0 | 1): void {
    const info = this.#info;
    const gauge = (what: InstrumentInfo, points: ProducedPoint<number>[]) => {
      if (points.length > 0)
        into.push({ ...descriptor(what, 'OBSERVABLE_GAUGE', temporality), dataPointType: GAUGE, dataPoints: points });
    };
    const point = (attributes: ProducedAttributes, value: number): ProducedPoint<number> => ({
      attributes,
      startTime: at,
      endTime: at,
      value,
    });
    const states: ProducedPoint<number>[] = [];
    for (const [policy, r] of reading.breakers) {
      for (const state of STATES) states.push(point({ [POLICY]: policy, [STATE]: state }, r[state]));
    }
    gauge(info.breakerState, states);
    const active: ProducedPoint<number>[] = [];
    const queued: ProducedPoint<number>[] = [];
    const limit: ProducedPoint<number>[] = [];
    for (const [policy, r] of reading.bulkheads) {
      const a = { [POLICY]: policy };
      active.push(point(a, r.active));
      queued.push(point(a, r.queued));
      limit.push(point(a, r.limit));
    }
    gauge(info.active, active);
    gauge(info.queued, queued);
    gauge(info.limit, limit);
    // The others, per policy name, in the order openTelemetryMetrics creates their instruments.
    const perPolicy = <R>(map: Map<string, R>, ...fields: [InstrumentInfo, (r: R) => number][]): void => {
      for (const [what, value] of fields) {
        const points: ProducedPoint<number>[] = [];
        for (const [policy, r] of map) points.push(point({ [POLICY]: policy }, value(r)));
        gauge(what, points);
      }
    };
    perPolicy(
      reading.rateLimits,
      [info.rateAvailable, (r) => r.available],
      [info.rateQueued, (r) => r.queued],
      [info.rateCapacity, (r) => r.capacity],
    );
    perPolicy(
      reading.retryBudgets,
      [info.budgetCalls, (r) => r.calls],
      [info.budgetRetries, (r) => r.retries],
      [info.budgetCredit, (r) => r.credit],
    );
    perPolicy(reading.tokenBudgets, [info.budgetTokens, (r) => r.tokens]);
    perPolicy(
      reading.throttles,
      [info.throttleRequests, (r) => r.requests],
      [info.throttleAccepts, (r) => r.accepts],
      [info.throttleProbability, (r) => r.probability],
    );
  }
}

/**
 * A metric's descriptor and temporality. `type` and `advice` are what the SDK's own descriptors carry besides the
 * documented fields, so that an exporter reading them sees the same as from {@link openTelemetryMetrics}.
 */
function descriptor(
  what: InstrumentInfo,
  type: string,
  temporality: 0 | 1,
  advice: { explicitBucketBoundaries?: number[] } = {},
): ProducedMetricBase {
  return {
    descriptor: {
      name: what.name,
      type,
      description: what.description,
      unit: what.unit,
      valueType: 1,
      advice,
    } as ProducedMetricBase['descriptor'],
    aggregationTemporality: temporality,
  };
}
