import {
  AggregationTemporality,
  type DataPoint,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  adaptiveThrottle,
  constant,
  hedge,
  keyed,
  pipeline,
  rateLimit,
  retry,
  retryBudget,
  retryTokenBudget,
} from '../../src/index.js';
import { openTelemetryMetricProducer, openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';
import { rejectionOf, track } from '../helpers/deferred.js';
import { captureWarnings } from './helpers.js';

/**
 * The overload gauges (rate limiters, retry budgets, adaptive throttles) through the three adapters at once, each on
 * its real back end (a prom-client registry, an SDK MeterProvider, an SDK reader with the producer), against exact
 * values on a fake clock.
 */

/** The gauges, as `name suffix -> policy -> value`; the suffix is the OpenTelemetry name without `bulwark.`. */
type Gauges = Record<string, Record<string, number>>;

const GAUGES: Record<string, string> = {
  'rate_limit.available': '{token}',
  'rate_limit.queued': '{call}',
  'rate_limit.capacity': '{token}',
  'retry_budget.calls_in_flight': '{call}',
  'retry_budget.retries_in_flight': '{retry}',
  'retry_budget.credit': '{retry}',
  'retry_budget.tokens': '{token}',
  'adaptive_throttle.requests': '{request}',
  'adaptive_throttle.accepts': '{request}',
  'adaptive_throttle.rejection_probability': '1',
};
const promName = (suffix: string) => `bulwark_${suffix.replace('.', '_')}`;

let providers: MeterProvider[] = [];
afterEach(async () => {
  for (const p of providers) await p.shutdown();
  providers = [];
});

/** A real MeterProvider, with the producer given to a second reader when there is one. */
function reader(producer?: ReturnType<typeof openTelemetryMetricProducer>) {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const r = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
    ...(producer === undefined ? {} : { metricProducers: [producer] }),
  });
  const provider = new MeterProvider({ readers: [r] });
  providers.push(provider);
  return {
    provider,
    async collect(): Promise<MetricData[]> {
      exporter.reset();
      await r.forceFlush();
      return (exporter.getMetrics().at(-1)?.scopeMetrics ?? []).flatMap((s) => s.metrics);
    },
  };
}

function fromOtel(metrics: MetricData[]): Gauges {
  const out: Gauges = {};
  for (const m of metrics) {
    const suffix = m.descriptor.name.replace(/^bulwark\./, '');
    if (GAUGES[suffix] === undefined) continue;
    expect(m.descriptor.unit, m.descriptor.name).toBe(GAUGES[suffix]);
    const series: Record<string, number> = {};
    for (const p of m.dataPoints as DataPoint<number>[])
      series[p.attributes['bulwark.policy.name'] as string] = p.value;
    out[suffix] = series;
  }
  return out;
}

async function fromProm(registry: Registry): Promise<Gauges> {
  const out: Gauges = {};
  for (const m of await registry.getMetricsAsJSON()) {
    const suffix = Object.keys(GAUGES).find((s) => promName(s) === m.name);
    if (suffix === undefined || m.values.length === 0) continue;
    expect(String(m.type)).toBe('gauge');
    const series: Record<string, number> = {};
    for (const v of m.values) {
      expect(Object.keys(v.labels)).toEqual(['policy']);
      series[v.labels.policy as string] = v.value;
    }
    out[suffix] = series;
  }
  return out;
}

describe('overload gauges: rate limiters, retry budgets and adaptive throttles in every adapter', () => {
  it('reads exact values at each collection, the same through prom-client, the OTel API and the producer', async () => {
    const clock = new FakeClock();
    const github = rateLimit({ name: 'github', rate: 10, burst: 10, queue: 5, clock });
    // Per-key limiters sharing one name: one series, summed over the live keys.
    const perTenant = keyed(
      (ctx) => ctx.operation,
      () => rateLimit({ name: 'tenants', rate: 1, burst: 2, clock }),
    );
    const budget = retryBudget({ name: 'upstream', ratio: 0.5, minConcurrency: 1 });
    const api = pipeline(retry({ name: 'api-retry', maxAttempts: 2, backoff: constant(100), budget, clock }));
    // The same budget held by a hedge too: still read once.
    const hedged = hedge({ name: 'api-hedge', delayMs: 1_000, budget, clock });
    const tokens = retryTokenBudget({ name: 'grpc', maxTokens: 10, tokenRatio: 0.1 });
    const grpc = retry({ name: 'grpc-retry', maxAttempts: 3, backoff: constant(0), budget: tokens, clock });
    const throttle = adaptiveThrottle({ name: 'search', k: 2, windowMs: 10_000, clock, random: () => 0.99 });
    const all = [github, perTenant, api, hedged, grpc, throttle] as const;

    const registry = new Registry();
    const prom = prometheusMetrics({ registry });
    const api1 = reader();
    const otel = openTelemetryMetrics({ meterProvider: api1.provider });
    const producer = openTelemetryMetricProducer();
    const fast = reader(producer);
    for (const m of [prom, otel, producer]) m.attach(...all);

    const expectGauges = async (expected: Gauges) => {
      expect(await fromProm(registry), 'prometheusMetrics').toEqual(expected);
      expect(fromOtel(await api1.collect()), 'openTelemetryMetrics').toEqual(expected);
      expect(fromOtel(await fast.collect()), 'openTelemetryMetricProducer').toEqual(expected);
    };

    // Nothing has run: full buckets, no key of the keyed limiter yet, a full credit (ratio x 100 calls).
    await expectGauges({
      'rate_limit.available': { github: 10 },
      'rate_limit.queued': { github: 0 },
      'rate_limit.capacity': { github: 10 },
      'retry_budget.calls_in_flight': { upstream: 0 },
      'retry_budget.retries_in_flight': { upstream: 0 },
      'retry_budget.credit': { upstream: 50 },
      'retry_budget.tokens': { grpc: 10 },
      'adaptive_throttle.requests': { search: 0 },
      'adaptive_throttle.accepts': { search: 0 },
      'adaptive_throttle.rejection_probability': { search: 0 },
    });

    for (let i = 0; i < 3; i++) await github.execute(() => i);
    await perTenant.execute(() => 1, { operation: 'a' });
    await perTenant.execute(() => 1, { operation: 'b' });
    // Two failures take a token each, the success puts back a tenth: 10 - 2 + 0.1.
    let n = 0;
    await grpc.execute(() => (++n < 3 ? Promise.reject(new Error('unavailable')) : 'ok'));
    for (let i = 0; i < 3; i++) await rejectionOf(throttle.execute(() => Promise.reject(new Error('429'))));
    // Four calls whose first attempt fails: the first retry is within minConcurrency, the second within
    // 0.5 x 4 calls and takes 1 of credit, the last two are refused (their calls leave). Read during the backoff.
    const retried = [1, 2, 3, 4].map(() => {
      let first = true;
      return track(
        api.execute(() => {
          if (!first) return 'retried';
          first = false;
          return Promise.reject(new Error('reset'));
        }),
      );
    });
    await clock.advance(0);
    await expectGauges({
      'rate_limit.available': { github: 7, tenants: 2 },
      'rate_limit.queued': { github: 0, tenants: 0 },
      'rate_limit.capacity': { github: 10, tenants: 4 },
      'retry_budget.calls_in_flight': { upstream: 2 },
      'retry_budget.retries_in_flight': { upstream: 2 },
      'retry_budget.credit': { upstream: 49 },
      'retry_budget.tokens': { grpc: 8.1 },
      'adaptive_throttle.requests': { search: 3 },
      'adaptive_throttle.accepts': { search: 0 },
      'adaptive_throttle.rejection_probability': { search: 0.75 },
    });

    // 500 ms at 10/s: 7 + 5 = 12, capped at the burst. The tenants' 1/s adds half a token each: still 1 whole each.
    await clock.advance(500);
    expect(retried.map((t) => (t.error === undefined ? t.value : 'failed'))).toEqual([
      'retried',
      'retried',
      'failed',
      'failed',
    ]);
    await throttle.execute(() => 'served');
    await expectGauges({
      'rate_limit.available': { github: 10, tenants: 2 },
      'rate_limit.queued': { github: 0, tenants: 0 },
      'rate_limit.capacity': { github: 10, tenants: 4 },
      'retry_budget.calls_in_flight': { upstream: 0 },
      'retry_budget.retries_in_flight': { upstream: 0 },
      'retry_budget.credit': { upstream: 49 },
      'retry_budget.tokens': { grpc: 8.1 },
      'adaptive_throttle.requests': { search: 4 },
      'adaptive_throttle.accepts': { search: 1 },
      // (4 - 2 x 1) / (4 + 1)
      'adaptive_throttle.rejection_probability': { search: 0.4 },
    });

    // The bucket emptied, then two calls queued behind it: nothing available, two waiting.
    for (let i = 0; i < 10; i++) await github.execute(() => i);
    const waiting = [1, 2].map((i) => track(github.execute(() => i)));
    await expectGauges({
      'rate_limit.available': { github: 0, tenants: 2 },
      'rate_limit.queued': { github: 2, tenants: 0 },
      'rate_limit.capacity': { github: 10, tenants: 4 },
      'retry_budget.calls_in_flight': { upstream: 0 },
      'retry_budget.retries_in_flight': { upstream: 0 },
      'retry_budget.credit': { upstream: 49 },
      'retry_budget.tokens': { grpc: 8.1 },
      'adaptive_throttle.requests': { search: 4 },
      'adaptive_throttle.accepts': { search: 1 },
      'adaptive_throttle.rejection_probability': { search: 0.4 },
    });

    // Past the throttle's window: its counts have left it (read from the clock, no timer moved them).
    await clock.advance(10_000);
    expect(waiting.map((t) => t.value)).toEqual([1, 2]);
    await expectGauges({
      'rate_limit.available': { github: 10, tenants: 4 },
      'rate_limit.queued': { github: 0, tenants: 0 },
      'rate_limit.capacity': { github: 10, tenants: 4 },
      'retry_budget.calls_in_flight': { upstream: 0 },
      'retry_budget.retries_in_flight': { upstream: 0 },
      'retry_budget.credit': { upstream: 49 },
      'retry_budget.tokens': { grpc: 8.1 },
      'adaptive_throttle.requests': { search: 0 },
      'adaptive_throttle.accepts': { search: 0 },
      'adaptive_throttle.rejection_probability': { search: 0 },
    });
    expect(clock.pendingTimers).toBe(0);
    for (const m of [prom, otel, producer]) m.close();
  });

  it('per key: limiters named from the key are one series each, and an evicted key drops out', async () => {
    const clock = new FakeClock();
    const perKey = keyed(
      (ctx) => ctx.operation,
      (key) => rateLimit({ name: `origin-${key}`, algorithm: 'fixed-window', limit: 5, windowMs: 1_000, clock }),
      { maxKeys: 2 },
    );
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    m.attach(perKey);
    await perKey.execute(() => 1, { operation: 'a' });
    await perKey.execute(() => 1, { operation: 'a' });
    await perKey.execute(() => 1, { operation: 'b' });
    expect((await fromProm(registry))['rate_limit.available']).toEqual({ 'origin-a': 3, 'origin-b': 4 });
    // A third key evicts the least recently used one.
    await perKey.execute(() => 1, { operation: 'c' });
    expect((await fromProm(registry))['rate_limit.available']).toEqual({ 'origin-b': 4, 'origin-c': 4 });
    // The window turns over: every permit is back, computed from the clock at the scrape.
    await clock.advance(1_000);
    expect((await fromProm(registry))['rate_limit.available']).toEqual({ 'origin-b': 5, 'origin-c': 5 });
    m.close();
  });

  it('reads a budget once however many attached policies hold it; budgets sharing a name are summed', async () => {
    const clock = new FakeClock();
    const shared = retryTokenBudget({ name: 'users', maxTokens: 10 });
    const twin = retryTokenBudget({ name: 'users', maxTokens: 4 });
    const a = retry({ name: 'a', budget: shared, clock });
    const b = retry({ name: 'b', budget: shared, clock });
    const h = hedge({ name: 'h', delayMs: 10, budget: shared, clock });
    const c = retry({ name: 'c', budget: twin, clock });
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    // Overlapping attachments too: `a` twice, and inside a pipeline.
    m.attach(a, b, h);
    m.attach(pipeline(a, c));
    expect((await fromProm(registry))['retry_budget.tokens']).toEqual({ users: 14 });
    m.close();
  });

  it('throttles sharing a name: counts summed, the highest probability', async () => {
    const clock = new FakeClock();
    const one = adaptiveThrottle({ name: 'shards', clock, random: () => 0.99 });
    const two = adaptiveThrottle({ name: 'shards', clock, random: () => 0.99 });
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    m.attach(one, two);
    for (let i = 0; i < 4; i++) await rejectionOf(one.execute(() => Promise.reject(new Error('503'))));
    await two.execute(() => 'ok');
    const g = await fromProm(registry);
    expect([g['adaptive_throttle.requests'], g['adaptive_throttle.accepts']]).toEqual([{ shards: 5 }, { shards: 1 }]);
    // one: 4 / 5; two: 0.
    expect(g['adaptive_throttle.rejection_probability']).toEqual({ shards: 0.8 });
    m.close();
  });

  it('attachAll(): every live limiter, throttle and budget of the process; a disposed limiter is left out', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry, prefix: 'all' });
    m.attachAll();
    const clock = new FakeClock();
    const rl = rateLimit({ name: 'all-rl', algorithm: 'sliding-window', limit: 4, windowMs: 1_000, queue: 1, clock });
    const budget = retryBudget({ name: 'all-budget', ratio: 0.1 });
    const throttle = adaptiveThrottle({ name: 'all-throttle', clock });
    await rl.execute(() => 1);
    const text = await registry.metrics();
    expect(text).toContain('all_rate_limit_available{policy="all-rl"} 3');
    expect(text).toContain('all_rate_limit_capacity{policy="all-rl"} 4');
    expect(text).toContain('all_retry_budget_credit{policy="all-budget"} 10');
    expect(text).toContain('all_adaptive_throttle_rejection_probability{policy="all-throttle"} 0');
    rl.dispose();
    const gauges = (await registry.metrics()).split('\n').filter((l) => l.startsWith('all_rate_limit_'));
    expect(gauges.join('\n')).not.toContain('policy="all-rl"');
    m.close();
    expect([budget.name, throttle.name]).toEqual(['all-budget', 'all-throttle']);
  });

  it('a limiter whose state cannot be read is left out, with one warning; the others are still reported', async () => {
    const warnings = captureWarnings();
    try {
      const registry = new Registry();
      const m = prometheusMetrics({ registry });
      const broken = rateLimit({ name: 'broken', rate: 1 });
      const fine = rateLimit({ name: 'fine', rate: 1 });
      Object.defineProperty(broken, 'available', {
        configurable: true,
        get() {
          throw new Error('tokens unreadable');
        },
      });
      m.attach(broken, fine);
      expect((await fromProm(registry))['rate_limit.available']).toEqual({ fine: 1 });
      await warnings.flush();
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_FAILED']);
      expect(warnings.messages()[0]).toMatch(/reading gauges failed \(tokens unreadable\)/);
      m.close();
    } finally {
      warnings.stop();
    }
  });

  it('reads nothing per call: a scrape reads each policy once, whatever the number of gauges', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    const rl = rateLimit({ name: 'counted', rate: 5 });
    let reads = 0;
    const proto = Object.getPrototypeOf(rl) as object;
    const get = Object.getOwnPropertyDescriptor(proto, 'available')?.get as () => number;
    Object.defineProperty(rl, 'available', {
      configurable: true,
      get() {
        reads++;
        return get.call(rl);
      },
    });
    m.attach(rl);
    for (let i = 0; i < 3; i++) await rl.execute(() => i);
    expect(reads).toBe(0);
    await registry.metrics();
    expect(reads).toBe(1);
    await registry.metrics();
    expect(reads).toBe(2);
    m.close();
  });
});
