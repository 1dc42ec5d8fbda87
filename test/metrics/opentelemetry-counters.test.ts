/**
 * The events counter of openTelemetryMetrics is counted in bulwark's own series and observed at collection time
 * (an ObservableCounter). These tests read it through the real SDK with both temporalities, and two readers of
 * different temporalities on one provider, against what a synchronous Counter exported for the same events.
 */
import {
  AggregationTemporality,
  DataPointType,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { circuitBreaker, constant, pipeline, retry } from '../../src/index.js';
import { defaultErrorType, MetricsHub } from '../../src/metrics/hub.js';
import { openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { rejectionOf } from '../helpers/deferred.js';

let providers: MeterProvider[] = [];
afterEach(async () => {
  for (const p of providers) await p.shutdown();
  providers = [];
});

/** A reader of one temporality; `collect()` returns the `bulwark.events` points of one collection. */
function readerOf(temporality: AggregationTemporality, cardinalityLimit?: number) {
  const exporter = new InMemoryMetricExporter(temporality);
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
    ...(cardinalityLimit === undefined ? {} : { cardinalityLimits: { default: cardinalityLimit } }),
  });
  return {
    reader,
    /** Collects once: every metric by name. */
    async metrics(): Promise<Map<string, MetricData>> {
      exporter.reset();
      await reader.forceFlush();
      const last = exporter.getMetrics().at(-1);
      return new Map(last?.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]));
    },
    async metric(name = 'bulwark.events'): Promise<MetricData | undefined> {
      return (await this.metrics()).get(name);
    },
    /** The points of `bulwark.events` as `event (error.type) -> value`, sorted. */
    async collect(): Promise<Record<string, number>> {
      const m = await this.metric();
      const out: Record<string, number> = {};
      for (const p of m?.dataPoints ?? []) {
        const a = p.attributes;
        const key = [
          a['bulwark.policy.name'],
          a['bulwark.event.name'],
          a['error.type'] ?? '',
          a['bulwark.reason'] ?? '',
        ]
          .join(' ')
          .trim();
        out[key] = p.value as number;
      }
      return out;
    },
  };
}

function provider(...readers: PeriodicExportingMetricReader[]): MeterProvider {
  const p = new MeterProvider({ readers });
  providers.push(p);
  return p;
}

const fail = () => Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));

describe('openTelemetryMetrics: the events counter, observed at collection', () => {
  it('exports a monotonic sum with the name, unit and description of the Counter it replaces', async () => {
    const r = readerOf(AggregationTemporality.CUMULATIVE);
    const m = openTelemetryMetrics({ meterProvider: provider(r.reader) });
    const policy = retry({ name: 'r', backoff: constant(0), maxAttempts: 2 });
    m.attach(policy);
    await rejectionOf(policy.execute(fail));
    const events = await r.metric();
    expect(events?.dataPointType).toBe(DataPointType.SUM);
    expect(events?.dataPointType === DataPointType.SUM && events.isMonotonic).toBe(true);
    expect(events?.descriptor.unit).toBe('{event}');
    expect(events?.descriptor.description).toBe(
      'Events of bulwark policies: retries, breaker transitions and rejections, timeouts, fallbacks.',
    );
    expect(events?.dataPoints.map((p) => ({ attributes: { ...p.attributes }, value: p.value }))).toEqual([
      {
        attributes: {
          'bulwark.policy.name': 'r',
          'bulwark.operation.name': 'default',
          'bulwark.event.name': 'retry.attempt',
          'error.type': 'ECONNRESET',
        },
        value: 1,
      },
      {
        attributes: {
          'bulwark.policy.name': 'r',
          'bulwark.operation.name': 'default',
          'bulwark.event.name': 'retry.exhausted',
          'error.type': 'ECONNRESET',
          'bulwark.reason': 'attempts',
        },
        value: 1,
      },
    ]);
    m.close();
  });

  it('cumulative: totals since the start, an idle series kept at its total', async () => {
    const r = readerOf(AggregationTemporality.CUMULATIVE);
    const m = openTelemetryMetrics({ meterProvider: provider(r.reader) });
    const a = retry({ name: 'a', backoff: constant(0), maxAttempts: 3 });
    const b = retry({ name: 'b', backoff: constant(0), maxAttempts: 2 });
    m.attach(a, b);
    expect(await r.collect()).toEqual({});
    await rejectionOf(a.execute(fail));
    expect(await r.collect()).toEqual({ 'a retry.attempt ECONNRESET': 2, 'a retry.exhausted ECONNRESET attempts': 1 });
    await rejectionOf(b.execute(fail));
    await rejectionOf(b.execute(fail));
    expect(await r.collect()).toEqual({
      'a retry.attempt ECONNRESET': 2,
      'a retry.exhausted ECONNRESET attempts': 1,
      'b retry.attempt ECONNRESET': 2,
      'b retry.exhausted ECONNRESET attempts': 2,
    });
    await rejectionOf(a.execute(fail));
    expect(await r.collect()).toEqual({
      'a retry.attempt ECONNRESET': 4,
      'a retry.exhausted ECONNRESET attempts': 2,
      'b retry.attempt ECONNRESET': 2,
      'b retry.exhausted ECONNRESET attempts': 2,
    });
    // Nothing new: the same totals again.
    expect(await r.collect()).toEqual({
      'a retry.attempt ECONNRESET': 4,
      'a retry.exhausted ECONNRESET attempts': 2,
      'b retry.attempt ECONNRESET': 2,
      'b retry.exhausted ECONNRESET attempts': 2,
    });
    m.close();
  });

  it('delta: the increments of each interval only, and no zero-valued point for an idle series', async () => {
    const r = readerOf(AggregationTemporality.DELTA);
    const m = openTelemetryMetrics({ meterProvider: provider(r.reader) });
    const a = retry({ name: 'a', backoff: constant(0), maxAttempts: 3 });
    const b = retry({ name: 'b', backoff: constant(0), maxAttempts: 2 });
    m.attach(a, b);
    await rejectionOf(a.execute(fail));
    expect(await r.collect()).toEqual({ 'a retry.attempt ECONNRESET': 2, 'a retry.exhausted ECONNRESET attempts': 1 });
    await rejectionOf(b.execute(fail));
    await rejectionOf(b.execute(fail));
    // a did nothing in this interval: it is not exported (as with a synchronous Counter), rather than exported as 0.
    expect(await r.collect()).toEqual({ 'b retry.attempt ECONNRESET': 2, 'b retry.exhausted ECONNRESET attempts': 2 });
    await rejectionOf(a.execute(fail));
    await rejectionOf(b.execute(fail));
    expect(await r.collect()).toEqual({
      'a retry.attempt ECONNRESET': 2,
      'a retry.exhausted ECONNRESET attempts': 1,
      'b retry.attempt ECONNRESET': 1,
      'b retry.exhausted ECONNRESET attempts': 1,
    });
    expect(await r.collect()).toEqual({});
    m.close();
  });

  it('a cumulative and a delta reader on one provider both read right, whichever collects first', async () => {
    const cumulative = readerOf(AggregationTemporality.CUMULATIVE);
    const delta = readerOf(AggregationTemporality.DELTA);
    const m = openTelemetryMetrics({ meterProvider: provider(cumulative.reader, delta.reader) });
    const a = retry({ name: 'a', backoff: constant(0), maxAttempts: 2 });
    m.attach(a);
    await rejectionOf(a.execute(fail));
    expect(await cumulative.collect()).toEqual({
      'a retry.attempt ECONNRESET': 1,
      'a retry.exhausted ECONNRESET attempts': 1,
    });
    await rejectionOf(a.execute(fail));
    // The delta reader's first collection: everything since the start, though the cumulative reader's collection
    // already observed part of it.
    expect(await delta.collect()).toEqual({
      'a retry.attempt ECONNRESET': 2,
      'a retry.exhausted ECONNRESET attempts': 2,
    });
    await rejectionOf(a.execute(fail));
    expect(await cumulative.collect()).toEqual({
      'a retry.attempt ECONNRESET': 3,
      'a retry.exhausted ECONNRESET attempts': 3,
    });
    expect(await delta.collect()).toEqual({
      'a retry.attempt ECONNRESET': 1,
      'a retry.exhausted ECONNRESET attempts': 1,
    });
    expect(await delta.collect()).toEqual({});
    expect(await cumulative.collect()).toEqual({
      'a retry.attempt ECONNRESET': 3,
      'a retry.exhausted ECONNRESET attempts': 3,
    });
    m.close();
  });

  it('counts the same totals as a synchronous Counter fed the same events, with both temporalities', async () => {
    for (const temporality of [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]) {
      const r = readerOf(temporality);
      const p = provider(r.reader);
      const m = openTelemetryMetrics({ meterProvider: p });
      const reference = p.getMeter('reference').createCounter('bulwark.events');
      const breaker = circuitBreaker({ name: 'cb', window: { kind: 'consecutive', threshold: 2 } });
      const policy = pipeline(retry({ name: 'rt', backoff: constant(0), maxAttempts: 3 }), breaker);
      m.attach(policy);
      // Every event the adapter sees, counted by hand with the attributes the adapter documents.
      const hub = m as unknown as MetricsHub;
      expect(hub).toBeInstanceOf(MetricsHub);
      const record = hub.record.bind(hub);
      hub.record = (e) => {
        record(e);
        if (e.type === 'execution.completed' || e.type === 'attempt.completed') return;
        const a: Record<string, string> = {
          'bulwark.policy.name': e.policy,
          'bulwark.operation.name': e.operation,
          'bulwark.event.name': e.type,
        };
        if ('outcome' in e && !e.outcome.ok) a['error.type'] = defaultErrorType(e.outcome.error);
        if (e.type === 'retry.exhausted') a['bulwark.reason'] = e.reason;
        if (e.type === 'circuit.rejected') a['bulwark.reason'] = e.state;
        reference.add(1, a);
      };
      const rounds: Record<string, number>[][] = [];
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i <= round; i++) await rejectionOf(policy.execute(fail, { operation: `op${i}` }));
        const exported = await r.reader.collect();
        const [ours, theirs] = ['bulwark', 'reference'].map((scope) => {
          const metric = exported.resourceMetrics.scopeMetrics.find((s) => s.scope.name === scope)?.metrics[0];
          const out: Record<string, number> = {};
          for (const point of metric?.dataPoints ?? []) out[JSON.stringify(point.attributes)] = point.value as number;
          return out;
        });
        rounds.push([ours as Record<string, number>, theirs as Record<string, number>]);
      }
      for (const [ours, theirs] of rounds) expect(ours).toEqual(theirs);
      expect(Object.keys(rounds[2]?.[0] ?? {}).length).toBeGreaterThan(3);
      m.close();
    }
  });

  it('close(): the next collection still exports what was counted before it, then the callback is gone', async () => {
    const r = readerOf(AggregationTemporality.DELTA);
    const meterProvider = provider(r.reader);
    const m = openTelemetryMetrics({ meterProvider });
    const a = retry({ name: 'a', backoff: constant(0), maxAttempts: 2 });
    m.attach(a);
    // A second adapter on the same meter: its batch callback must not be skipped while the first removes its own.
    const other = openTelemetryMetrics({ meterProvider, prefix: 'other' });
    const b = retry({ name: 'b', backoff: constant(0), maxAttempts: 2 });
    other.attach(b);
    await rejectionOf(a.execute(fail));
    await rejectionOf(b.execute(fail));
    m.close();
    await rejectionOf(a.execute(fail)); // detached: not counted
    let metrics = await r.metrics();
    expect(metrics.get('bulwark.events')?.dataPoints.map((p) => p.value)).toEqual([1, 1]);
    expect(metrics.get('other.events')?.dataPoints.map((p) => p.value)).toEqual([1, 1]);
    await rejectionOf(b.execute(fail));
    metrics = await r.metrics();
    expect(metrics.get('bulwark.events')).toBeUndefined();
    expect(metrics.get('other.events')?.dataPoints.map((p) => p.value)).toEqual([1, 1]);
    other.close();
  });

  it('close() lets go of the gauges at once and of the events callback after the collection that follows', async () => {
    const r = readerOf(AggregationTemporality.CUMULATIVE);
    const meter = provider(r.reader).getMeter('bulwark');
    const removed: number[] = [];
    const spy = new Proxy(meter, {
      get(target, key) {
        const v = Reflect.get(target, key) as unknown;
        if (key === 'removeBatchObservableCallback') {
          return (cb: never, instruments: unknown[]) => {
            removed.push(instruments.length);
            target.removeBatchObservableCallback(cb, instruments as never);
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const m = openTelemetryMetrics({ meter: spy });
    const a = retry({ name: 'a', backoff: constant(0), maxAttempts: 2 });
    m.attach(a);
    await rejectionOf(a.execute(fail));
    m.close();
    m.close();
    expect(removed).toEqual([14]); // the fourteen gauges
    expect(await r.collect()).toEqual({ 'a retry.attempt ECONNRESET': 1, 'a retry.exhausted ECONNRESET attempts': 1 });
    expect(removed).toEqual([14, 1]); // then the events counter
    expect(await r.collect()).toEqual({ 'a retry.attempt ECONNRESET': 1, 'a retry.exhausted ECONNRESET attempts': 1 });
    expect(removed).toEqual([14, 1]);
  });

  it('counts label combinations past 1999 in one series with the attributes of the SDK overflow', async () => {
    const r = readerOf(AggregationTemporality.CUMULATIVE);
    const m = openTelemetryMetrics({ meterProvider: provider(r.reader) });
    const policy = retry({ name: 'ids', backoff: constant(0), maxAttempts: 2 });
    m.attach(policy);
    for (let i = 0; i < 2_001; i++) await rejectionOf(policy.execute(fail, { operation: `user-${i}` }));
    const events = await r.metric();
    // Two events per call: 1999 series of their own, everything else in the overflow series.
    expect(events?.dataPoints).toHaveLength(2_000);
    const overflow = events?.dataPoints.find((p) => p.attributes['otel.metric.overflow'] === true);
    expect(overflow?.value).toBe(2 * 2_001 - 1_999);
    // The duration histograms keep their attributes past the cache: the SDK applies its own limit, as before.
    const attempts = await r.metric('bulwark.attempt.duration');
    expect(attempts?.dataPoints).toHaveLength(2_000);
    // 2001 attribute sets of two attempts each: the SDK keeps 1999 and folds the last two in its overflow.
    const folded = attempts?.dataPoints.find((p) => p.attributes['otel.metric.overflow'] === true);
    expect((folded?.value as Histogram | undefined)?.count).toBe(4);
    expect(attempts?.dataPoints.filter((p) => p.attributes['bulwark.operation.name'] === undefined)).toHaveLength(1);
    m.close();
  });

  it('with a higher cardinality limit on the reader, the histograms keep every attribute set past 1999', async () => {
    const r = readerOf(AggregationTemporality.CUMULATIVE, 5_000);
    const m = openTelemetryMetrics({ meterProvider: provider(r.reader) });
    const policy = retry({ name: 'ids', backoff: constant(0), maxAttempts: 2 });
    m.attach(policy);
    for (let i = 0; i < 2_001; i++) await rejectionOf(policy.execute(fail, { operation: `user-${i}` }));
    const metrics = await r.metrics();
    const attempts = metrics.get('bulwark.attempt.duration')?.dataPoints ?? [];
    expect(attempts).toHaveLength(2_001);
    expect(attempts.at(-1)?.attributes).toEqual({
      'bulwark.policy.name': 'ids',
      'bulwark.operation.name': 'user-2000',
      'bulwark.result': 'failure',
      'error.type': 'ECONNRESET',
    });
    // bulwark's own bound on the events it counts does not follow the reader's limit (see docs/metrics.md).
    expect(metrics.get('bulwark.events')?.dataPoints).toHaveLength(2_000);
    m.close();
  });
});
