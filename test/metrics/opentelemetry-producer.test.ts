/**
 * openTelemetryMetricProducer, read through a real SDK reader (`metricProducers`), against openTelemetryMetrics on
 * a real MeterProvider fed the same calls: the two paths must export the same metrics (names, units,
 * descriptions, types, temporalities, bucket boundaries, attributes and values), timestamps aside.
 */
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  type MetricProducer,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import {
  adaptiveThrottle,
  bulkhead,
  circuitBreaker,
  constant,
  isInvalidOptionsError,
  type PolicyBase,
  pipeline,
  rateLimit,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import {
  type OpenTelemetryMetricProducer,
  openTelemetryMetricProducer,
  openTelemetryMetrics,
} from '../../src/metrics/opentelemetry.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, rejectionOf } from '../helpers/deferred.js';
import { captureWarnings } from './helpers.js';

// Compile-time: the producer is what the SDK's readers take.
const _assignable: (p: OpenTelemetryMetricProducer) => MetricProducer = (p) => p;
void _assignable;

let providers: MeterProvider[] = [];
afterEach(async () => {
  for (const p of providers) await p.shutdown();
  providers = [];
});

/** A reader of one temporality on a provider of its own, with `producers`; `collect()` returns one export. */
function readerOf(temporality: AggregationTemporality, producers: MetricProducer[] = []) {
  const exporter = new InMemoryMetricExporter(temporality);
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
    metricProducers: producers,
  });
  const provider = new MeterProvider({ readers: [reader] });
  providers.push(provider);
  return {
    provider,
    async collect(): Promise<{ scope: { name: string; version?: string | undefined }; metrics: MetricData[] }[]> {
      exporter.reset();
      await reader.forceFlush();
      return exporter.getMetrics().at(-1)?.scopeMetrics ?? [];
    },
  };
}

/** An export without its timestamps, attributes as sorted entries: what must be identical between the paths. */
function shape(scopes: { scope: { name: string; version?: string | undefined }; metrics: MetricData[] }[]) {
  return scopes.map(({ scope, metrics }) => ({
    scope: { name: scope.name, version: scope.version },
    metrics: metrics.map((m) => ({
      descriptor: { ...m.descriptor },
      aggregationTemporality: m.aggregationTemporality,
      dataPointType: m.dataPointType,
      isMonotonic: 'isMonotonic' in m ? m.isMonotonic : undefined,
      points: (m.dataPoints as { attributes: Record<string, unknown>; value: unknown }[])
        .map((p) => ({
          attributes: Object.entries(p.attributes).sort(([a], [b]) => a.localeCompare(b)),
          value: p.value,
        }))
        .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes))),
    })),
  }));
}

/** The same pipeline twice (one per path) on one fake clock, and a script of calls run through both. */
function twins(clock: FakeClock) {
  // Every kind of gauge: a breaker, a bulkhead, a rate limiter, both kinds of retry budget, an adaptive throttle
  // (that never draws a rejection, so both twins run the same calls).
  const make = () =>
    pipeline(
      retry({ name: 'quotes-retry', maxAttempts: 3, backoff: constant(100), budget: retryBudget(), clock }),
      circuitBreaker({ name: 'quotes-breaker', window: { kind: 'consecutive', threshold: 100 }, clock }),
      adaptiveThrottle({ name: 'quotes-throttle', windowMs: 1_000, random: () => 1, clock }),
      retry({ name: 'quotes-inner-retry', maxAttempts: 1, budget: retryTokenBudget(), clock }),
      timeout({ ms: 1_000, name: 'quotes-timeout', clock }),
      bulkhead({ name: 'quotes-bulkhead', limit: 4, clock }),
      rateLimit({ name: 'quotes-rate', rate: 10, burst: 5, queue: Number.POSITIVE_INFINITY, clock }),
    );
  return { a: make(), b: make() };
}

/** Runs the same calls on each policy, one after the other: durations on the fake clock are identical. */
async function script(clock: FakeClock, policies: PolicyBase[], round: number): Promise<void> {
  const run = async (p: PolicyBase, op: () => Promise<unknown>, operation: string) => {
    const settled = p.execute(op, { operation }).then(
      () => 'ok',
      () => 'failed',
    );
    await clock.runAll();
    return settled;
  };
  for (const p of policies) {
    for (let i = 0; i <= round; i++) {
      let n = 0;
      const op = async () => {
        n++;
        await new Promise<void>((r) => clock.setTimeout(r, 7 * n + 3 * i));
        if (n < 2 + (i % 2)) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
        return 'ok';
      };
      expect(await run(p, op, `op${i % 2}`)).toBe('ok');
    }
    expect(await run(p, () => Promise.reject(new TypeError('bad')), 'broken')).toBe('failed');
    // Slower than the timeout: every attempt times out, and its work settles late.
    const slow = () => new Promise((r) => clock.setTimeout(() => r('late'), 5_000));
    expect(await run(p, slow, 'slow')).toBe('failed');
  }
}

describe('openTelemetryMetricProducer: the same export as openTelemetryMetrics', () => {
  for (const [label, temporality, option] of [
    ['cumulative', AggregationTemporality.CUMULATIVE, 'cumulative'],
    ['delta', AggregationTemporality.DELTA, 'delta'],
  ] as const) {
    it(`${label}: names, units, descriptions, boundaries, attributes and values, over several collections`, async () => {
      const clock = new FakeClock();
      const { a, b } = twins(clock);
      const api = readerOf(temporality);
      const apiMetrics = openTelemetryMetrics({ meterProvider: api.provider, durationBuckets: [0.01, 0.02, 0.5, 2] });
      apiMetrics.attach(a);
      const producer = openTelemetryMetricProducer({ temporality: option, durationBuckets: [0.01, 0.02, 0.5, 2] });
      const fast = readerOf(temporality, [producer]);
      producer.attach(b);
      // Nothing yet: neither exports a sum or a histogram; both export the gauges.
      expect(shape(await fast.collect())).toEqual(shape(await api.collect()));
      for (let round = 0; round < 3; round++) {
        await script(clock, [a, b], round);
        const ours = shape(await fast.collect());
        const theirs = shape(await api.collect());
        expect(ours).toEqual(theirs);
        expect(ours[0]?.metrics.map((m) => m.descriptor.name)).toEqual([
          'bulwark.events',
          'bulwark.execution.duration',
          'bulwark.attempt.duration',
          'bulwark.circuit_breaker.state',
          'bulwark.bulkhead.active',
          'bulwark.bulkhead.queued',
          'bulwark.bulkhead.limit',
          'bulwark.rate_limit.available',
          'bulwark.rate_limit.queued',
          'bulwark.rate_limit.capacity',
          'bulwark.retry_budget.calls_in_flight',
          'bulwark.retry_budget.retries_in_flight',
          'bulwark.retry_budget.credit',
          'bulwark.retry_budget.tokens',
          'bulwark.adaptive_throttle.requests',
          'bulwark.adaptive_throttle.accepts',
          'bulwark.adaptive_throttle.rejection_probability',
        ]);
      }
      // An idle interval: the same again (cumulative), nothing but the gauges (delta).
      const idle = shape(await fast.collect());
      expect(idle).toEqual(shape(await api.collect()));
      expect(idle[0]?.metrics.length).toBe(option === 'delta' ? 14 : 17);
      apiMetrics.close();
      producer.close();
    });
  }

  it('a data point starts when its series appeared (cumulative) or at the previous collection (delta)', async () => {
    for (const temporality of ['cumulative', 'delta'] as const) {
      const producer = openTelemetryMetricProducer({ temporality });
      const r = retry({ name: 'r' });
      producer.attach(r);
      const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
      const before = Date.now();
      await r.execute(() => 1);
      const first = (await producer.collect()).resourceMetrics.scopeMetrics[0]?.metrics[0]?.dataPoints[0];
      const after = Date.now();
      expect(ms(first?.startTime as [number, number])).toBeGreaterThanOrEqual(before - 1);
      expect(ms(first?.endTime as [number, number])).toBeLessThanOrEqual(after + 1);
      await r.execute(() => 1);
      const second = (await producer.collect()).resourceMetrics.scopeMetrics[0]?.metrics[0]?.dataPoints[0];
      if (temporality === 'cumulative') expect(second?.startTime).toEqual(first?.startTime);
      else expect(second?.startTime).toEqual(first?.endTime);
      producer.close();
    }
  });
});

describe('openTelemetryMetricProducer: behaviour of its own', () => {
  it('close(): the next collection exports the last totals, without gauges; then nothing', async () => {
    const producer = openTelemetryMetricProducer();
    const fast = readerOf(AggregationTemporality.CUMULATIVE, [producer]);
    const p = pipeline(retry({ name: 'r', backoff: constant(0), maxAttempts: 2 }), circuitBreaker({ name: 'cb' }));
    producer.attach(p);
    await rejectionOf(p.execute(() => Promise.reject(new Error('x'))));
    producer.close();
    await rejectionOf(p.execute(() => Promise.reject(new Error('x')))); // detached: not counted
    const names = (scopes: { metrics: MetricData[] }[]) =>
      scopes.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
    const last = await fast.collect();
    expect(names(last)).toEqual(['bulwark.events', 'bulwark.execution.duration', 'bulwark.attempt.duration']);
    expect(last[0]?.metrics[1]?.dataPoints.map((d) => (d.value as { count: number }).count)).toEqual([1]);
    expect(names(await fast.collect())).toEqual([]);
    expect(() => producer.attach(p)).toThrow(/closed adapter/);
  });

  it('counts attribute sets past 1999 in one series otel.metric.overflow, for each metric', async () => {
    const producer = openTelemetryMetricProducer();
    const policy = retry({ name: 'ids', backoff: constant(0), maxAttempts: 2 });
    producer.attach(policy);
    for (let i = 0; i < 2_001; i++)
      await rejectionOf(policy.execute(() => Promise.reject(new Error('x')), { operation: `u${i}` }));
    const [events, execution, attempts] = (await producer.collect()).resourceMetrics.scopeMetrics[0]?.metrics ?? [];
    expect(events?.dataPoints).toHaveLength(2_000);
    expect(events?.dataPoints.at(-1)).toMatchObject({
      attributes: { 'otel.metric.overflow': true },
      value: 2 * 2_001 - 1_999,
    });
    expect(execution?.dataPoints).toHaveLength(2_000);
    expect(execution?.dataPoints.at(-1)).toMatchObject({
      attributes: { 'otel.metric.overflow': true },
      value: { count: 2 },
    });
    expect(attempts?.dataPoints.at(-1)).toMatchObject({
      attributes: { 'otel.metric.overflow': true },
      value: { count: 4 },
    });
    producer.close();
  });

  it('attachAll records every policy of the process, and reads every live breaker and bulkhead', async () => {
    const producer = openTelemetryMetricProducer({ prefix: 'proc' });
    const off = producer.attachAll();
    const bh = bulkhead({ name: 'bh-all', limit: 1 });
    const gate = deferred<void>();
    const running = bh.execute(() => gate.promise);
    const metrics = (await producer.collect()).resourceMetrics.scopeMetrics[0]?.metrics ?? [];
    const active = metrics.find((m) => m.descriptor.name === 'proc.bulkhead.active');
    expect(active?.dataPoints.find((d) => d.attributes['bulwark.policy.name'] === 'bh-all')?.value).toBe(1);
    gate.resolve();
    await running;
    const after = (await producer.collect()).resourceMetrics.scopeMetrics[0]?.metrics ?? [];
    const execution = after.find((m) => m.descriptor.name === 'proc.execution.duration');
    expect(execution?.dataPoints.find((d) => d.attributes['bulwark.policy.name'] === 'bh-all')).toBeDefined();
    off();
    producer.close();
  });

  it('an errorType function that throws records _OTHER, and the call is unaffected', async () => {
    const warnings = captureWarnings();
    try {
      const producer = openTelemetryMetricProducer({
        errorType: () => {
          throw new Error('mapper broke');
        },
      });
      const r = retry({ name: 't', backoff: constant(0), maxAttempts: 1 });
      producer.attach(r);
      const err = new Error('x');
      expect(await rejectionOf(r.execute(() => Promise.reject(err)))).toBe(err);
      const [, execution] = (await producer.collect()).resourceMetrics.scopeMetrics[0]?.metrics ?? [];
      expect(execution?.dataPoints[0]?.attributes['error.type']).toBe('_OTHER');
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_FAILED']);
      producer.close();
    } finally {
      warnings.stop();
    }
  });

  it('lists every invalid option in one error', () => {
    let error: unknown;
    try {
      openTelemetryMetricProducer({
        prefix: '9lives',
        temporality: 'sometimes' as never,
        durationBuckets: [1, 0.5],
        meterProvider: {},
      } as never);
    } catch (e) {
      error = e;
    }
    expect(isInvalidOptionsError(error)).toBe(true);
    const text = String((error as Error).message);
    for (const option of ['prefix', 'temporality', 'durationBuckets', 'meterProvider']) expect(text).toContain(option);
    expect(() => openTelemetryMetricProducer(null as never)).toThrow(/an object/);
  });
});
