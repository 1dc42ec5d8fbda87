import { readFileSync } from 'node:fs';
import type { Meter } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  constant,
  isInvalidOptionsError,
  keyed,
  pipeline,
  retry,
  timeout,
} from '../../src/index.js';
import { openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, rejectionOf, track } from '../helpers/deferred.js';
import { captureWarnings, failing } from './helpers.js';

let open: { provider: MeterProvider }[] = [];

/** A real MeterProvider whose metrics are read on demand through an in-memory exporter. */
function sdk() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  open.push({ provider });
  return {
    provider,
    /** Collects now and returns every metric of the `bulwark` scope by name. */
    /** The instrumentation scopes of the last collection. */
    async scopes(): Promise<{ name: string; version?: string | undefined }[]> {
      exporter.reset();
      await reader.forceFlush();
      return (exporter.getMetrics().at(-1)?.scopeMetrics ?? []).map((s) => ({ ...s.scope }));
    },
    async collect(): Promise<Map<string, MetricData>> {
      exporter.reset();
      await reader.forceFlush();
      const last = exporter.getMetrics().at(-1);
      const out = new Map<string, MetricData>();
      for (const scope of last?.scopeMetrics ?? []) for (const m of scope.metrics) out.set(m.descriptor.name, m);
      return out;
    },
  };
}

afterEach(async () => {
  for (const o of open) await o.provider.shutdown();
  open = [];
});

/** The data points of a metric, as attributes plus value. */
function points<T>(m: MetricData | undefined): { attributes: Record<string, unknown>; value: T }[] {
  return ((m?.dataPoints ?? []) as DataPoint<T>[]).map((p) => ({ attributes: { ...p.attributes }, value: p.value }));
}

/** The value of the data point whose attributes equal `attributes` exactly. */
function pointOf<T>(m: MetricData | undefined, attributes: Record<string, unknown>): T | undefined {
  return points<T>(m).find((p) => JSON.stringify(sorted(p.attributes)) === JSON.stringify(sorted(attributes)))?.value;
}

function sorted(o: Record<string, unknown>): [string, unknown][] {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}

function breakerStates(m: MetricData | undefined, policy: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of points<number>(m)) {
    if (p.attributes['bulwark.policy.name'] === policy) {
      out[p.attributes['bulwark.state'] as string] = p.value;
    }
  }
  return out;
}

/** An operation that takes `ms` on the fake clock, then fails with ECONNRESET or succeeds. */
function timed(clock: FakeClock, plan: { ms: number; fail: boolean }[]) {
  let i = 0;
  return async () => {
    const step = plan[i++] ?? { ms: 0, fail: false };
    await new Promise<void>((r) => clock.setTimeout(r, step.ms));
    if (step.fail) throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
    return 'quote';
  };
}

describe('openTelemetryMetrics: a pipeline attached', () => {
  it('records a call that retries twice and succeeds: events, attempt and execution histograms, breaker gauge', async () => {
    const { provider, collect } = sdk();
    const clock = new FakeClock();
    const p = pipeline(
      retry({ name: 'quotes-retry', maxAttempts: 3, backoff: constant(100), clock }),
      circuitBreaker({ name: 'quotes-breaker', clock }),
      timeout({ ms: 1_000, name: 'quotes-timeout', clock }),
    );
    const m = openTelemetryMetrics({ meterProvider: provider });
    m.attach(p);

    const op = timed(clock, [
      { ms: 10, fail: true },
      { ms: 10, fail: true },
      { ms: 30, fail: false },
    ]);
    const t = track(p.execute(op, { operation: 'get-quote' }));
    await clock.runAll();
    expect(t.value).toBe('quote');

    const metrics = await collect();
    // The SDK exports only instruments with data points: no bulkhead here, so no bulkhead gauges.
    expect([...metrics.keys()].sort()).toEqual([
      'bulwark.attempt.duration',
      'bulwark.circuit_breaker.state',
      'bulwark.events',
      'bulwark.execution.duration',
    ]);
    const events = metrics.get('bulwark.events');
    expect(events?.descriptor.unit).toBe('{event}');
    expect(points(events)).toEqual([
      {
        attributes: {
          'bulwark.policy.name': 'quotes-retry',
          'bulwark.operation.name': 'get-quote',
          'bulwark.event.name': 'retry.attempt',
          'error.type': 'ECONNRESET',
        },
        value: 2,
      },
    ]);

    const attempts = metrics.get('bulwark.attempt.duration');
    expect(attempts?.descriptor.unit).toBe('s');
    const failed = pointOf<Histogram>(attempts, {
      'bulwark.policy.name': 'quotes-retry',
      'bulwark.operation.name': 'get-quote',
      'bulwark.result': 'failure',
      'error.type': 'ECONNRESET',
    });
    expect(failed?.count).toBe(2);
    expect(failed?.sum).toBeCloseTo(0.02, 10);
    const ok = pointOf<Histogram>(attempts, {
      'bulwark.policy.name': 'quotes-retry',
      'bulwark.operation.name': 'get-quote',
      'bulwark.result': 'success',
    });
    expect(ok?.count).toBe(1);
    expect(ok?.sum).toBeCloseTo(0.03, 10);
    expect(points(attempts)).toHaveLength(2);

    const execution = metrics.get('bulwark.execution.duration');
    expect(points(execution)).toHaveLength(1);
    const whole = pointOf<Histogram>(execution, {
      'bulwark.policy.name': 'quotes-retry>quotes-breaker>quotes-timeout',
      'bulwark.operation.name': 'get-quote',
      'bulwark.result': 'success',
    });
    // 10 + 100 (backoff) + 10 + 100 + 30 ms
    expect(whole?.count).toBe(1);
    expect(whole?.sum).toBeCloseTo(0.25, 10);
    expect(whole?.buckets.boundaries).toEqual([
      0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60,
    ]);
    expect(whole?.buckets.counts[6]).toBe(1); // le 0.25

    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'quotes-breaker')).toEqual({
      closed: 1,
      open: 0,
      half_open: 0,
      isolated: 0,
    });
    expect(points(metrics.get('bulwark.bulkhead.active'))).toEqual([]);
  });

  it('updates the breaker gauge as it opens and half-opens, and counts transitions and rejections', async () => {
    const { provider, collect } = sdk();
    const clock = new FakeClock();
    const cb = circuitBreaker({
      name: 'ledger',
      window: { kind: 'consecutive', threshold: 2 },
      halfOpenAfterMs: 1_000,
      clock,
    });
    openTelemetryMetrics({ meterProvider: provider }).attach(cb);
    const boom = () => Promise.reject(new TypeError('bad gateway'));
    await rejectionOf(cb.execute(boom, { operation: 'post' }));
    expect(breakerStates((await collect()).get('bulwark.circuit_breaker.state'), 'ledger').closed).toBe(1);
    await rejectionOf(cb.execute(boom, { operation: 'post' }));
    expect(await rejectionOf(cb.execute(boom, { operation: 'post' }))).toBeInstanceOf(CircuitOpenError);

    let metrics = await collect();
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'ledger')).toEqual({
      closed: 0,
      open: 1,
      half_open: 0,
      isolated: 0,
    });
    const base = { 'bulwark.policy.name': 'ledger', 'bulwark.operation.name': 'post' };
    expect(pointOf(metrics.get('bulwark.events'), { ...base, 'bulwark.event.name': 'circuit.open' })).toBe(1);
    expect(
      pointOf(metrics.get('bulwark.events'), {
        ...base,
        'bulwark.event.name': 'circuit.rejected',
        'bulwark.reason': 'open',
      }),
    ).toBe(1);
    // The breaker is the policy executed: its execution histogram carries the error types.
    const execution = metrics.get('bulwark.execution.duration');
    expect(
      pointOf<Histogram>(execution, { ...base, 'bulwark.result': 'failure', 'error.type': 'TypeError' })?.count,
    ).toBe(2);
    expect(
      pointOf<Histogram>(execution, { ...base, 'bulwark.result': 'failure', 'error.type': 'ERR_CIRCUIT_OPEN' })?.count,
    ).toBe(1);

    await clock.advance(1_000);
    metrics = await collect();
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'ledger').half_open).toBe(1);

    cb.isolate();
    metrics = await collect();
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'ledger')).toEqual({
      closed: 0,
      open: 0,
      half_open: 0,
      isolated: 1,
    });
  });

  it('reports bulkhead active, queued and limit, and counts rejections by reason', async () => {
    const { provider, collect } = sdk();
    const bh = bulkhead({ name: 'pdf', limit: 1, queue: 1 });
    openTelemetryMetrics({ meterProvider: provider }).attach(bh);
    const gate = deferred<void>();
    const running = bh.execute(() => gate.promise);
    const waiting = bh.execute(() => Promise.resolve());
    await rejectionOf(bh.execute(() => Promise.resolve(), { operation: 'render' }));
    const metrics = await collect();
    const a = { 'bulwark.policy.name': 'pdf' };
    expect(pointOf(metrics.get('bulwark.bulkhead.active'), a)).toBe(1);
    expect(pointOf(metrics.get('bulwark.bulkhead.queued'), a)).toBe(1);
    expect(pointOf(metrics.get('bulwark.bulkhead.limit'), a)).toBe(1);
    expect(metrics.get('bulwark.bulkhead.active')?.descriptor.unit).toBe('{call}');
    expect(
      pointOf(metrics.get('bulwark.events'), {
        ...a,
        'bulwark.operation.name': 'render',
        'bulwark.event.name': 'bulkhead.rejected',
        'bulwark.reason': 'full',
      }),
    ).toBe(1);
    gate.resolve();
    await Promise.all([running, waiting]);
    const after = await collect();
    expect(pointOf(after.get('bulwark.bulkhead.active'), a)).toBe(0);
    expect(pointOf(after.get('bulwark.bulkhead.queued'), a)).toBe(0);
  });

  it('reads the gauges of every live member of a keyed policy, and sums bulkheads of one name', async () => {
    const { provider, collect } = sdk();
    const perTenant = keyed(
      (ctx) => ctx.operation,
      (key) => pipeline(circuitBreaker({ name: `tenant-${key}` }), bulkhead({ name: 'tenants', limit: 2 })),
    );
    openTelemetryMetrics({ meterProvider: provider }).attach(perTenant);
    await perTenant.execute(() => 1, { operation: 'a' });
    await perTenant.execute(() => 1, { operation: 'b' });
    const metrics = await collect();
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'tenant-a').closed).toBe(1);
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'tenant-b').closed).toBe(1);
    expect(pointOf(metrics.get('bulwark.bulkhead.limit'), { 'bulwark.policy.name': 'tenants' })).toBe(4);
  });

  it('detaches exactly what it attached; close() stops the gauges', async () => {
    const { provider, collect } = sdk();
    const a = retry({ name: 'a', backoff: constant(0) });
    const b = circuitBreaker({ name: 'b' });
    const m = openTelemetryMetrics({ meterProvider: provider });
    const offA = m.attach(a);
    m.attach(b);
    const fail = () => Promise.reject(new Error('x'));
    await rejectionOf(a.execute(fail));
    offA();
    offA(); // idempotent
    await rejectionOf(a.execute(fail));
    let metrics = await collect();
    expect(pointOf(metrics.get('bulwark.events'), retryAttempt('a'))).toBe(2);
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'b').closed).toBe(1);
    m.attach(a); // may attach again after detaching
    m.close();
    m.close(); // idempotent
    await rejectionOf(a.execute(fail));
    b.isolate();
    metrics = await collect();
    expect(pointOf(metrics.get('bulwark.events'), retryAttempt('a'))).toBe(2);
    // The gauge callback is gone: the SDK keeps exporting the last value it saw, never the isolated state.
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'b')).toEqual({
      closed: 1,
      open: 0,
      half_open: 0,
      isolated: 0,
    });
    expect(() => m.attach(b)).toThrow(/closed adapter/);
  });

  it('counts each event once however many attachments reach a policy, and refuses attachAll on top', async () => {
    const { provider, collect } = sdk();
    const r = retry({ name: 'r', backoff: constant(0), maxAttempts: 2 });
    const cb = circuitBreaker({ name: 'cb' });
    const p = pipeline(r, cb);
    const m = openTelemetryMetrics({ meterProvider: provider });
    const offP = m.attach(p);
    const offR = m.attach(r, r); // overlapping: the pipeline holds r already
    await rejectionOf(p.execute(() => Promise.reject(new Error('x'))));
    expect(pointOf((await collect()).get('bulwark.events'), retryAttempt('r'))).toBe(1);
    offP(); // r is still attached through the second attachment
    await rejectionOf(p.execute(() => Promise.reject(new Error('x'))));
    expect(pointOf((await collect()).get('bulwark.events'), retryAttempt('r'))).toBe(2);
    offR();
    await rejectionOf(p.execute(() => Promise.reject(new Error('x'))));
    expect(pointOf((await collect()).get('bulwark.events'), retryAttempt('r'))).toBe(2);

    m.attach(cb);
    expect(() => m.attachAll()).toThrow(/attachAll: expected none attached/);
    const other = openTelemetryMetrics({ meterProvider: provider });
    expect(() => other.attach({} as never)).toThrow(/attach\[0\].*a policy made by a bulwark factory/s);
    expect(() => other.attach()).toThrow(/at least one policy/);
    const off = other.attachAll();
    expect(() => other.attach(cb)).toThrow(/attachAll\(\) is in force/);
    expect(() => other.attachAll()).toThrow(/one attachAll\(\) at a time/);
    off();
    other.attach(cb);
    m.close();
    other.close();
  });

  it('an old detach never removes a newer attachment of the same policy', async () => {
    const { provider, collect } = sdk();
    const r = retry({ name: 'again', backoff: constant(0), maxAttempts: 2 });
    const m = openTelemetryMetrics({ meterProvider: provider });
    const first = m.attach(r);
    first();
    m.attach(r);
    first(); // stale: must do nothing
    await rejectionOf(r.execute(() => Promise.reject(new Error('x'))));
    expect(pointOf((await collect()).get('bulwark.events'), retryAttempt('again'))).toBe(1);
    m.close();
  });

  it('a member shared by the policies of a keyed policy is counted once per event', async () => {
    const { provider, collect } = sdk();
    const shared = bulkhead({ name: 'global', limit: 1 });
    const perKey = keyed(
      (ctx) => ctx.operation,
      (key) => pipeline(circuitBreaker({ name: `cb-${key}` }), shared),
    );
    const m = openTelemetryMetrics({ meterProvider: provider });
    m.attach(perKey, shared);
    for (const key of ['a', 'b', 'c']) await perKey.execute(() => 1, { operation: key });
    const gate = deferred<void>();
    const running = perKey.execute(() => gate.promise, { operation: 'a' });
    await rejectionOf(perKey.execute(() => 1, { operation: 'd' }));
    const metrics = await collect();
    expect(
      pointOf(metrics.get('bulwark.events'), {
        'bulwark.policy.name': 'global',
        'bulwark.operation.name': 'd',
        'bulwark.event.name': 'bulkhead.rejected',
        'bulwark.reason': 'full',
      }),
    ).toBe(1);
    // The shared bulkhead is read once for the gauges, not once per key.
    expect(pointOf(metrics.get('bulwark.bulkhead.limit'), { 'bulwark.policy.name': 'global' })).toBe(1);
    expect(pointOf(metrics.get('bulwark.bulkhead.active'), { 'bulwark.policy.name': 'global' })).toBe(1);
    gate.resolve();
    await running;
    m.close();
  });
});

function retryAttempt(policy: string) {
  return {
    'bulwark.policy.name': policy,
    'bulwark.operation.name': 'default',
    'bulwark.event.name': 'retry.attempt',
    'error.type': 'Error',
  };
}

describe('openTelemetryMetrics: attachAll', () => {
  it('records every policy of the process through diagnostics_channel, and reads every live breaker', async () => {
    const { provider, collect } = sdk();
    const m = openTelemetryMetrics({ meterProvider: provider });
    const off = m.attachAll();
    // Created after attaching, never attached by hand.
    const r = retry({ name: 'process-wide-retry', backoff: constant(0) });
    const cb = circuitBreaker({ name: 'process-wide-breaker', window: { kind: 'consecutive', threshold: 1 } });
    await rejectionOf(r.execute(() => Promise.reject(new Error('x'))));
    await rejectionOf(cb.execute(() => Promise.reject(new Error('x'))));
    let metrics = await collect();
    expect(pointOf(metrics.get('bulwark.events'), retryAttempt('process-wide-retry'))).toBe(2);
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'process-wide-breaker').open).toBe(1);
    const attempts = pointOf<Histogram>(metrics.get('bulwark.attempt.duration'), {
      'bulwark.policy.name': 'process-wide-retry',
      'bulwark.operation.name': 'default',
      'bulwark.result': 'failure',
      'error.type': 'Error',
    });
    expect(attempts?.count).toBe(3);

    off();
    await rejectionOf(r.execute(() => Promise.reject(new Error('x'))));
    cb.reset();
    metrics = await collect();
    expect(pointOf(metrics.get('bulwark.events'), retryAttempt('process-wide-retry'))).toBe(2);
    // Detached: the breaker is no longer read (the SDK repeats the last value seen, open, not the closed state).
    expect(breakerStates(metrics.get('bulwark.circuit_breaker.state'), 'process-wide-breaker').open).toBe(1);
    m.close();
  });
});

describe('openTelemetryMetrics: failures never change outcomes', () => {
  it('an instrument that throws (attached, and process-wide) leaves results and errors as they were', async () => {
    const { provider } = sdk();
    const warnings = captureWarnings();
    try {
      const meter = failing(provider.getMeter('broken'));
      const m = openTelemetryMetrics({ meter });
      const p = pipeline(retry({ name: 'x', backoff: constant(0) }), circuitBreaker({ name: 'y' }));
      m.attach(p);
      const err = new Error('real failure');
      expect(await rejectionOf(p.execute(() => Promise.reject(err)))).toBe(err);
      expect(await p.execute(() => 'fine')).toBe('fine');
      m.close();

      const all = openTelemetryMetrics({ meter });
      all.attachAll();
      expect(await rejectionOf(p.execute(() => Promise.reject(err)))).toBe(err);
      expect(await p.execute(() => 'fine')).toBe('fine');
      // diagnostics_channel would rethrow a subscriber's error on the next tick: let it run.
      await new Promise((r) => setImmediate(r));
      all.close();
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_FAILED', 'BULWARK_METRICS_FAILED']);
      expect(warnings.messages()[0]).toMatch(/openTelemetryMetrics: recording an event failed \(instrument broke\)/);
    } finally {
      warnings.stop();
    }
  });

  it('an errorType function that throws or returns a non-string records _OTHER, once warned', async () => {
    const { provider, collect } = sdk();
    const warnings = captureWarnings();
    try {
      const r = retry({ name: 'typed', backoff: constant(0), maxAttempts: 2 });
      const m = openTelemetryMetrics({
        meterProvider: provider,
        errorType: (e) => {
          if (e instanceof RangeError) return 42 as unknown as string;
          throw new Error('mapper broke');
        },
      });
      m.attach(r);
      const err = new Error('x');
      expect(await rejectionOf(r.execute(() => Promise.reject(err)))).toBe(err);
      expect(await rejectionOf(r.execute(() => Promise.reject(new RangeError('y'))))).toBeInstanceOf(RangeError);
      const metrics = await collect();
      expect(pointOf(metrics.get('bulwark.events'), { ...retryAttempt('typed'), 'error.type': '_OTHER' })).toBe(2);
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_FAILED']);
      expect(warnings.messages()[0]).toMatch(/the errorType function failed \(mapper broke\)/);
      m.close();
    } finally {
      warnings.stop();
    }
  });

  it('a user listener that throws beside the adapter changes nothing, and the adapter still records', async () => {
    const { provider, collect } = sdk();
    const warnings = captureWarnings();
    try {
      const r = retry({ name: 'noisy', backoff: constant(0) });
      r.on('retry.attempt', () => {
        throw new Error('listener bug');
      });
      const m = openTelemetryMetrics({ meterProvider: provider });
      m.attach(r);
      let n = 0;
      expect(await r.execute(() => (++n < 3 ? Promise.reject(new Error('x')) : Promise.resolve('ok')))).toBe('ok');
      expect(pointOf((await collect()).get('bulwark.events'), retryAttempt('noisy'))).toBe(2);
      expect(warnings.codes()).toEqual(['BULWARK_LISTENER_THREW']);
      m.close();
    } finally {
      warnings.stop();
    }
  });
});

describe('openTelemetryMetrics: options', () => {
  it('uses the prefix and bucket boundaries given', async () => {
    const { provider, collect } = sdk();
    const r = retry({ name: 'p' });
    const m = openTelemetryMetrics({
      meterProvider: provider,
      prefix: 'payments.resilience',
      durationBuckets: [0.1, 1],
    });
    m.attach(r);
    await r.execute(() => 1);
    const metrics = await collect();
    expect([...metrics.keys()]).toContain('payments.resilience.execution.duration');
    const h = pointOf<Histogram>(metrics.get('payments.resilience.execution.duration'), {
      'bulwark.policy.name': 'p',
      'bulwark.operation.name': 'default',
      'bulwark.result': 'success',
    });
    expect(h?.buckets.boundaries).toEqual([0.1, 1]);
    m.close();
  });

  it('creates its instruments on the meter "bulwark" of the package version', async () => {
    const { provider, scopes } = sdk();
    const r = retry({ name: 'scoped' });
    const m = openTelemetryMetrics({ meterProvider: provider });
    m.attach(r);
    await r.execute(() => 1);
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(await scopes()).toEqual([{ name: 'bulwark', version }]);
    m.close();
  });

  it('takes a meter directly, or the global provider by default', async () => {
    const { provider, collect } = sdk();
    const m = openTelemetryMetrics({ meter: provider.getMeter('mine') });
    const r = retry({ name: 'direct' });
    m.attach(r);
    await r.execute(() => 1);
    // Collected under the scope of the meter given.
    expect((await collect()).get('bulwark.execution.duration')).toBeDefined();
    m.close();
    const global = openTelemetryMetrics(); // the no-op global provider: works, records nowhere
    global.attach(r);
    await r.execute(() => 1);
    global.close();
  });

  it('lists every invalid option in one error', () => {
    let error: unknown;
    try {
      openTelemetryMetrics({
        meter: {} as Meter,
        meterProvider: { getMeter: () => ({}) as Meter },
        prefix: '9lives',
        durationBuckets: [1, 0.5],
        errorType: 'name' as never,
        bogus: true,
      } as never);
    } catch (e) {
      error = e;
    }
    expect(isInvalidOptionsError(error)).toBe(true);
    const text = String((error as Error).message);
    for (const option of ['bogus', 'meter', 'prefix', 'durationBuckets', 'errorType']) expect(text).toContain(option);
    expect(text).toMatch(/durationBuckets.*strictly increasing/s);
    expect(text).toMatch(/a Meter \(an object with createCounter\(\)\)/);
    expect(text).toMatch(/one of them/);
    expect(() => openTelemetryMetrics({ durationBuckets: [] })).toThrow(/durationBuckets/);
    expect(() => openTelemetryMetrics(null as never)).toThrow(/an object/);
  });
});
