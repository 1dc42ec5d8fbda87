import { wallClockNow } from '../core/clock.js';
import type { MetricsSink } from './hub.js';

/**
 * Pre-aggregated series for the Prometheus adapter and the OpenTelemetry adapters: a counter or histogram per label
 * combination, found through nested Maps keyed by the label values (behind a last-hit cache).
 *
 * Why not prom-client's own `inc`/`observe` or the OpenTelemetry SDK's `Counter.add`/`Histogram.record`: each call
 * there builds, validates or hashes a label object (about 0.7 us per prom-client histogram sample and 1 to 2 us per
 * SDK sample, measured on the bench machine; two samples per call). Here a sample is a cached series and a few
 * additions; the back end reads the totals only at scrape or collection time.
 * @internal
 */

/** One label combination: its labels (built once) and its totals. @internal */
export interface Series<L = Readonly<Record<string, string>>> {
  readonly labels: L;
  /** Counter: the count. Histogram: the number of samples. */
  count: number;
  /** The count last reported to a back end that takes totals at collection time (OpenTelemetry). */
  reported: number;
  /** Histogram only: the sum of the samples. */
  sum: number;
  /** Histogram only: the smallest and largest sample (`Infinity` and `-Infinity` before the first). */
  min: number;
  max: number;
  /** When the series was created or last reset, in wall-clock ms since the epoch (a data point's start time). */
  start: number;
  /** Histogram only: samples per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets: Float64Array | undefined;
}

type Level<L> = Map<string, Level<L> | Series<L>>;

/** How a store builds the labels of a series: from the five key values, and for the overflow series. @internal */
export interface LabelMaker<L> {
  of(a: string, b: string, c: string, d: string, e: string): L;
  readonly overflow: L;
}

/**
 * Series keyed by five label values (`''` for an absent label), at most `maxSeries` of them: past that, new
 * label combinations are counted in one overflow series labelled `overflow="true"` (as OpenTelemetry's SDK does
 * with `otel_metric_overflow`), so a label fed by mistake with ids cannot grow memory without bound.
 * @internal
 */
export class SeriesStore<L = Readonly<Record<string, string>>> {
  readonly #root: Level<L> = new Map();
  readonly #labels: LabelMaker<L>;
  readonly #bucketCount: number;
  readonly #maxSeries: number;
  readonly #onOverflow: () => void;
  readonly #all: Series<L>[] = [];
  #overflow: Series<L> | undefined;
  /** The last series returned and its key (mutated in place: a hit or a miss allocates nothing). */
  #last: { a: string; b: string; c: string; d: string; e: string; series: Series<L> } | undefined;

  /**
   * `names`: the five label names, in key order (`''` for an unused slot), a label being left out when its value
   * is `''`; or a {@link LabelMaker} that builds the labels. `bucketCount`: 0 for a counter.
   */
  constructor(
    names: readonly [string, string, string, string, string] | LabelMaker<L>,
    bucketCount: number,
    maxSeries = Number.POSITIVE_INFINITY,
    onOverflow: () => void = () => {},
  ) {
    this.#labels = Array.isArray(names)
      ? (namedLabels(names as readonly [string, string, string, string, string]) as unknown as LabelMaker<L>)
      : (names as LabelMaker<L>);
    this.#bucketCount = bucketCount;
    this.#maxSeries = maxSeries;
    this.#onOverflow = onOverflow;
  }

  /** Every series, in creation order (the overflow series last, once it exists). */
  get all(): readonly Series<L>[] {
    return this.#overflow === undefined ? this.#all : [...this.#all, this.#overflow];
  }

  /** The overflow series, once label combinations past `maxSeries` have been counted in it. */
  get overflow(): Series<L> | undefined {
    return this.#overflow;
  }

  /** The series of these label values, created on first use (or the overflow series, past `maxSeries`). */
  get(a: string, b: string, c: string, d: string, e: string): Series<L> {
    // Why a last-hit cache: a process records the same few label combinations over and over (the bench's pipeline
    // one per store), and five string compares, mostly of the very same strings, cost less than five Map lookups.
    const last = this.#last;
    if (last !== undefined && a === last.a && b === last.b && c === last.c && d === last.d && e === last.e) {
      return last.series;
    }
    const series = this.#find(a, b, c, d, e);
    if (last === undefined) this.#last = { a, b, c, d, e, series };
    else {
      last.a = a;
      last.b = b;
      last.c = c;
      last.d = d;
      last.e = e;
      last.series = series;
    }
    return series;
  }

  #find(a: string, b: string, c: string, d: string, e: string): Series<L> {
    const found = (
      (
        ((this.#root.get(a) as Level<L> | undefined)?.get(b) as Level<L> | undefined)?.get(c) as Level<L> | undefined
      )?.get(d) as Level<L> | undefined
    )?.get(e) as Series<L> | undefined;
    return found ?? this.#create(a, b, c, d, e);
  }

  #create(a: string, b: string, c: string, d: string, e: string): Series<L> {
    if (this.#all.length >= this.#maxSeries) {
      if (this.#overflow === undefined) {
        this.#overflow = this.#series(this.#labels.overflow);
        this.#onOverflow();
      }
      return this.#overflow;
    }
    const series = this.#series(this.#labels.of(a, b, c, d, e));
    const l4 = this.#level(this.#level(this.#level(this.#level(this.#root, a), b), c), d);
    l4.set(e, series);
    this.#all.push(series);
    return series;
  }

  #series(labels: L): Series<L> {
    return {
      labels,
      count: 0,
      reported: 0,
      sum: 0,
      min: Number.POSITIVE_INFINITY,
      max: Number.NEGATIVE_INFINITY,
      start: wallClockNow(),
      buckets: this.#bucketCount > 0 ? new Float64Array(this.#bucketCount + 1) : undefined,
    };
  }

  #level(map: Level<L>, key: string): Level<L> {
    let next = map.get(key) as Level<L> | undefined;
    if (next === undefined) {
      next = new Map();
      map.set(key, next);
    }
    return next;
  }

  /** Forgets every series (prom-client's `registry.resetMetrics()`). */
  clear(): void {
    this.#last = undefined;
    this.#root.clear();
    this.#all.length = 0;
    this.#overflow = undefined;
  }
}

/** Labels named by position, each left out when its value is `''`; the overflow series is `overflow="true"`. */
function namedLabels(names: readonly [string, string, string, string, string]): LabelMaker<Record<string, string>> {
  return {
    of(a, b, c, d, e) {
      const labels: Record<string, string> = {};
      const values = [a, b, c, d, e];
      names.forEach((name, i) => {
        const v = values[i] as string;
        if (name !== '' && v !== '') labels[name] = v;
      });
      return labels;
    },
    overflow: { overflow: 'true' },
  };
}

/**
 * Adds a sample to a histogram series with these upper bounds (ascending; a bucket holds the samples up to and
 * including its bound, as in Prometheus and OpenTelemetry).
 *
 * Why a linear search: durations mostly land in the first few buckets, where it stops after a compare or two.
 * @internal
 */
export function observe<L>(series: Series<L>, bounds: readonly number[], value: number): void {
  const buckets = series.buckets as Float64Array;
  const n = bounds.length;
  let i = 0;
  while (i < n && value > (bounds[i] as number)) i++;
  buckets[i] = (buckets[i] as number) + 1;
  series.count++;
  series.sum += value;
  if (value < series.min) series.min = value;
  if (value > series.max) series.max = value;
}

/**
 * The hub sink of an adapter that keeps its own series (Prometheus, the OpenTelemetry producer): events counted in
 * `events`, durations observed into `executions` and `attempts` with these bucket bounds.
 * @internal
 */
export function storeSink<L>(
  events: SeriesStore<L>,
  executions: SeriesStore<L>,
  attempts: SeriesStore<L>,
  bounds: readonly number[],
): MetricsSink {
  return {
    count(policy, operation, event, errorType, reason): void {
      events.get(policy, operation, event, errorType, reason).count++;
    },
    execution(seconds, policy, operation, result, errorType): void {
      observe(executions.get(policy, operation, result, errorType, ''), bounds, seconds);
    },
    attempt(seconds, policy, operation, result, errorType): void {
      observe(attempts.get(policy, operation, result, errorType, ''), bounds, seconds);
    },
  };
}

/** Empties a series in place (a delta export has reported it): its labels and place in the store stay. @internal */
export function resetSeries<L>(series: Series<L>, now: number): void {
  series.count = 0;
  series.reported = 0;
  series.sum = 0;
  series.min = Number.POSITIVE_INFINITY;
  series.max = Number.NEGATIVE_INFINITY;
  series.start = now;
  series.buckets?.fill(0);
}

/** A value line of prom-client's metric format. @internal */
export interface PromValue {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
}

/**
 * A counter or histogram in the shape prom-client's Registry reads (`name`, `help`, `type`, `get()`, `reset()`),
 * filled from a {@link SeriesStore} at scrape time.
 * @internal
 */
export class StoredMetric {
  name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[];
  readonly #store: SeriesStore;
  readonly #bounds: readonly number[];

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    store: SeriesStore,
    bounds: readonly number[] | undefined,
  ) {
    this.name = name;
    this.help = help;
    this.type = bounds === undefined ? 'counter' : 'histogram';
    this.labelNames = labelNames;
    this.#store = store;
    this.#bounds = bounds ?? [];
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: PromValue[] }> {
    const values: PromValue[] = [];
    if (this.type === 'counter') {
      for (const s of this.#store.all) values.push({ value: s.count, labels: s.labels });
    } else {
      const bucket = `${this.name}_bucket`;
      for (const s of this.#store.all) {
        const counts = s.buckets as Float64Array;
        let cumulative = 0;
        this.#bounds.forEach((le, i) => {
          cumulative += counts[i] as number;
          values.push({ value: cumulative, labels: { le, ...s.labels }, metricName: bucket });
        });
        values.push({ value: s.count, labels: { le: '+Inf', ...s.labels }, metricName: bucket });
        values.push({ value: s.sum, labels: s.labels, metricName: `${this.name}_sum` });
        values.push({ value: s.count, labels: s.labels, metricName: `${this.name}_count` });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#store.clear();
  }
}
