import { register as globalRegistry, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  hedge,
  isInvalidOptionsError,
  pipeline,
  retry,
  retryBudget,
  timeout,
} from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, rejectionOf, track } from '../helpers/deferred.js';
import { captureWarnings } from './helpers.js';

/** The lines of the exposition text that start with `name{` (or `name ` for unlabelled series). */
async function series(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('prometheusMetrics', () => {
  it('exposes a call that retries twice and succeeds: counter, histograms and breaker gauge', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const p = pipeline(
      retry({ name: 'quotes-retry', maxAttempts: 3, backoff: constant(100), clock }),
      circuitBreaker({ name: 'quotes-breaker', clock }),
      timeout({ ms: 1_000, name: 'quotes-timeout', clock }),
    );
    prometheusMetrics({ registry }).attach(p);
    let n = 0;
    const t = track(
      p.execute(
        async () => {
          n++;
          await new Promise<void>((r) => clock.setTimeout(r, n < 3 ? 10 : 30));
          if (n < 3) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
          return 'quote';
        },
        { operation: 'get-quote' },
      ),
    );
    await clock.runAll();
    expect(t.value).toBe('quote');

    const text = await registry.metrics();
    expect(text).toContain('# TYPE bulwark_events_total counter');
    expect(text).toContain('# TYPE bulwark_execution_duration_seconds histogram');
    expect(text).toContain('# TYPE bulwark_attempt_duration_seconds histogram');
    expect(text).toContain('# TYPE bulwark_circuit_breaker_state gauge');
    expect(await series(registry, 'bulwark_events_total')).toEqual([
      'bulwark_events_total{policy="quotes-retry",operation="get-quote",event="retry.attempt",error_type="ECONNRESET"} 2',
    ]);
    const attempt = '{policy="quotes-retry",operation="get-quote"';
    expect(await series(registry, 'bulwark_attempt_duration_seconds_count')).toEqual([
      `bulwark_attempt_duration_seconds_count${attempt},result="failure",error_type="ECONNRESET"} 2`,
      `bulwark_attempt_duration_seconds_count${attempt},result="success"} 1`,
    ]);
    expect(await series(registry, 'bulwark_attempt_duration_seconds_sum')).toEqual([
      `bulwark_attempt_duration_seconds_sum${attempt},result="failure",error_type="ECONNRESET"} 0.02`,
      `bulwark_attempt_duration_seconds_sum${attempt},result="success"} 0.03`,
    ]);
    const execution = '{policy="quotes-retry>quotes-breaker>quotes-timeout",operation="get-quote",result="success"}';
    expect(await series(registry, 'bulwark_execution_duration_seconds_sum')).toEqual([
      `bulwark_execution_duration_seconds_sum${execution} 0.25`,
    ]);
    const buckets = await series(registry, 'bulwark_execution_duration_seconds_bucket');
    expect(buckets).toContain(
      'bulwark_execution_duration_seconds_bucket{le="0.1",policy="quotes-retry>quotes-breaker>quotes-timeout",operation="get-quote",result="success"} 0',
    );
    expect(buckets).toContain(
      'bulwark_execution_duration_seconds_bucket{le="0.25",policy="quotes-retry>quotes-breaker>quotes-timeout",operation="get-quote",result="success"} 1',
    );
    expect(await series(registry, 'bulwark_circuit_breaker_state')).toEqual([
      'bulwark_circuit_breaker_state{policy="quotes-breaker",state="closed"} 1',
      'bulwark_circuit_breaker_state{policy="quotes-breaker",state="open"} 0',
      'bulwark_circuit_breaker_state{policy="quotes-breaker",state="half_open"} 0',
      'bulwark_circuit_breaker_state{policy="quotes-breaker",state="isolated"} 0',
    ]);
  });

  it('reads breaker state and bulkhead load at every scrape', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const cb = circuitBreaker({
      name: 'ledger',
      window: { kind: 'consecutive', threshold: 1 },
      halfOpenAfterMs: 500,
      clock,
    });
    const bh = bulkhead({ name: 'pdf', limit: 2, queue: 5 });
    const m = prometheusMetrics({ registry });
    m.attach(cb, bh);
    await rejectionOf(cb.execute(() => Promise.reject(new Error('down')), { operation: 'post' }));
    await rejectionOf(cb.execute(() => Promise.resolve(1), { operation: 'post' }));
    expect(await series(registry, 'bulwark_circuit_breaker_state')).toContain(
      'bulwark_circuit_breaker_state{policy="ledger",state="open"} 1',
    );
    expect(await series(registry, 'bulwark_events_total')).toEqual([
      'bulwark_events_total{policy="ledger",operation="post",event="circuit.open"} 1',
      'bulwark_events_total{policy="ledger",operation="post",event="circuit.rejected",reason="open"} 1',
    ]);
    await clock.advance(500);
    expect(await series(registry, 'bulwark_circuit_breaker_state')).toContain(
      'bulwark_circuit_breaker_state{policy="ledger",state="half_open"} 1',
    );

    const gate = deferred<void>();
    const calls = [1, 2, 3].map(() => bh.execute(() => gate.promise));
    expect(await series(registry, 'bulwark_bulkhead_active')).toEqual(['bulwark_bulkhead_active{policy="pdf"} 2']);
    expect(await series(registry, 'bulwark_bulkhead_queued')).toEqual(['bulwark_bulkhead_queued{policy="pdf"} 1']);
    expect(await series(registry, 'bulwark_bulkhead_limit')).toEqual(['bulwark_bulkhead_limit{policy="pdf"} 2']);
    gate.resolve();
    await Promise.all(calls);
    expect(await series(registry, 'bulwark_bulkhead_active')).toEqual(['bulwark_bulkhead_active{policy="pdf"} 0']);
    m.close();
  });

  it('has no side effects: nothing on the global registry, no default metrics; close() unregisters', async () => {
    const before = await globalRegistry.metrics();
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    expect(await globalRegistry.metrics()).toBe(before);
    const names = registry
      .getMetricsAsArray()
      .map((x) => x.name)
      .sort();
    expect(names).toEqual([
      'bulwark_adaptive_throttle_accepts',
      'bulwark_adaptive_throttle_rejection_probability',
      'bulwark_adaptive_throttle_requests',
      'bulwark_attempt_duration_seconds',
      'bulwark_bulkhead_active',
      'bulwark_bulkhead_limit',
      'bulwark_bulkhead_queued',
      'bulwark_circuit_breaker_state',
      'bulwark_events_total',
      'bulwark_execution_duration_seconds',
      'bulwark_rate_limit_available',
      'bulwark_rate_limit_capacity',
      'bulwark_rate_limit_queued',
      'bulwark_retry_budget_calls_in_flight',
      'bulwark_retry_budget_credit',
      'bulwark_retry_budget_retries_in_flight',
      'bulwark_retry_budget_tokens',
    ]);
    // Nothing attached: the metrics exist, without series.
    expect(await series(registry, 'bulwark_circuit_breaker_state')).toEqual([]);
    m.close();
    expect(registry.getMetricsAsArray()).toEqual([]);
    // The registry is free again for a new adapter.
    prometheusMetrics({ registry }).close();
  });

  it('records every policy of the process with attachAll, and stops when detached', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry, prefix: 'svc' });
    const off = m.attachAll();
    const r = retry({ name: 'prom-process-wide', backoff: constant(0), maxAttempts: 2 });
    await rejectionOf(r.execute(() => Promise.reject(new TypeError('x'))));
    const line =
      'svc_events_total{policy="prom-process-wide",operation="default",event="retry.exhausted",error_type="TypeError",reason="attempts"} 1';
    expect(await series(registry, 'svc_events_total')).toContain(line);
    off();
    await rejectionOf(r.execute(() => Promise.reject(new TypeError('x'))));
    expect(await series(registry, 'svc_events_total')).toContain(line);
    m.close();
  });

  it('an adapter failure never changes an outcome and never breaks a scrape', async () => {
    const registry = new Registry();
    const warnings = captureWarnings();
    try {
      const m = prometheusMetrics({ registry, errorType: () => 'x'.repeat(10) });
      const cb = circuitBreaker({ name: 'gauged' });
      const fine = circuitBreaker({ name: 'still-gauged' });
      m.attach(cb, fine);
      // A breaker whose state getter throws, as a broken policy of another copy might.
      Object.defineProperty(cb, 'state', {
        configurable: true,
        get() {
          throw new Error('state unreadable');
        },
      });
      const text = await registry.metrics();
      expect(text).toContain('# TYPE bulwark_circuit_breaker_state gauge');
      // The unreadable breaker is left out; the others are still reported.
      expect(text).toContain('bulwark_circuit_breaker_state{policy="still-gauged",state="closed"} 1');
      expect(text).not.toContain('policy="gauged"');
      await warnings.flush();
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_FAILED']);
      expect(warnings.messages()[0]).toMatch(/reading gauges failed \(state unreadable\)/);
      // An errorType function that returns nonsense: recorded as _OTHER, the call settles as it would have.
      const r = retry({ name: 'r', backoff: constant(0), maxAttempts: 2 });
      const other = new Registry();
      const broken = prometheusMetrics({ registry: other, errorType: () => undefined as unknown as string });
      broken.attach(r);
      const err = new Error('real');
      expect(await rejectionOf(r.execute(() => Promise.reject(err)))).toBe(err);
      expect(await r.execute(() => 'ok')).toBe('ok');
      expect(await series(other, 'bulwark_events_total')).toContain(
        'bulwark_events_total{policy="r",operation="default",event="retry.attempt",error_type="_OTHER"} 1',
      );
      await warnings.flush();
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_FAILED', 'BULWARK_METRICS_FAILED']);
      m.close();
      broken.close();
      // The breaker stays in the process-wide registry until collected: make it readable for later tests.
      Reflect.deleteProperty(cb, 'state');
    } finally {
      warnings.stop();
    }
  });

  it('lists every invalid option, including a registry that already has the metrics', () => {
    const registry = new Registry();
    const first = prometheusMetrics({ registry });
    let error: unknown;
    try {
      prometheusMetrics({ registry, prefix: 'bad-prefix', durationBuckets: [0], extra: 1 } as never);
    } catch (e) {
      error = e;
    }
    expect(isInvalidOptionsError(error)).toBe(true);
    const text = (error as Error).message;
    expect(text).toMatch(/prometheusMetrics: invalid options/);
    expect(text).toMatch(/extra: expected a known option/);
    expect(text).toMatch(/prefix: expected a metric name prefix/);
    expect(text).toMatch(/durationBuckets: expected a non-empty array/);
    // bad-prefix names do not collide, so the registry is only reported for the default prefix:
    expect(() => prometheusMetrics({ registry })).toThrow(
      /registry: expected a registry without it.*bulwark_events_total/s,
    );
    expect(() => prometheusMetrics(undefined as never)).toThrow(/registry: expected a prom-client Registry/);
    expect(() => prometheusMetrics({} as never)).toThrow(/registry: expected a prom-client Registry/);
    expect(() => prometheusMetrics({ registry: {} as Registry })).toThrow(/a prom-client Registry/);
    first.close();
  });
});

describe('prometheusMetrics: bounds', () => {
  it('folds label combinations past maxSeries into one overflow series, warning once', async () => {
    const registry = new Registry();
    const warnings = captureWarnings();
    try {
      const m = prometheusMetrics({ registry, maxSeries: 3 });
      const r = retry({ name: 'ids', backoff: constant(0), maxAttempts: 1 });
      m.attach(r);
      // A mistake: an id as the operation name.
      for (let i = 0; i < 10; i++) await r.execute(() => i, { operation: `GET /users/${i}` });
      const lines = await series(registry, 'bulwark_execution_duration_seconds_count');
      expect(lines).toEqual([
        'bulwark_execution_duration_seconds_count{policy="ids",operation="GET /users/0",result="success"} 1',
        'bulwark_execution_duration_seconds_count{policy="ids",operation="GET /users/1",result="success"} 1',
        'bulwark_execution_duration_seconds_count{policy="ids",operation="GET /users/2",result="success"} 1',
        'bulwark_execution_duration_seconds_count{overflow="true"} 7',
      ]);
      await warnings.flush();
      // Once per metric: the attempt histogram (retry times its one attempt) overflowed too.
      expect(warnings.codes()).toEqual(['BULWARK_METRICS_OVERFLOW', 'BULWARK_METRICS_OVERFLOW']);
      expect(warnings.messages().join('\n')).toMatch(
        /bulwark_execution_duration_seconds reached maxSeries \(3\).*route templates as operation names/,
      );
      expect(warnings.messages().join('\n')).toMatch(/bulwark_attempt_duration_seconds reached maxSeries/);
      m.close();
      expect(() => prometheusMetrics({ registry, maxSeries: 0 })).toThrow(/maxSeries: expected .*>= 1/);
      expect(() => prometheusMetrics({ registry, maxSeries: 1.5 })).toThrow(/maxSeries/);
      prometheusMetrics({ registry, maxSeries: Number.POSITIVE_INFINITY }).close();
    } finally {
      warnings.stop();
    }
  });

  it('counts a disposed bulkhead only while calls still hold its slots, with no limit', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    const off = m.attachAll();
    const gone = bulkhead({ name: 'disposed-bh', limit: 3 });
    const kept = bulkhead({ name: 'kept-bh', limit: 2 });
    const gate = deferred<void>();
    const running = gone.execute(() => gate.promise);
    gone.dispose();
    const text = await registry.metrics();
    expect(text).toContain('bulwark_bulkhead_limit{policy="kept-bh"} 2');
    expect(text).toContain('bulwark_bulkhead_active{policy="disposed-bh"} 1');
    expect(text).toContain('bulwark_bulkhead_limit{policy="disposed-bh"} 0');
    gate.resolve();
    await running;
    for (const gauge of ['bulwark_bulkhead_active', 'bulwark_bulkhead_queued', 'bulwark_bulkhead_limit']) {
      expect((await series(registry, gauge)).join('\n')).not.toContain('disposed-bh');
    }
    expect(kept.limit).toBe(2);
    off();
    m.close();
  });

  it('warns about an overflow once per metric, also after registry.resetMetrics()', async () => {
    const registry = new Registry();
    const warnings = captureWarnings();
    try {
      const m = prometheusMetrics({ registry, maxSeries: 1 });
      const b = bulkhead({ name: 'reset-bh', limit: 1 });
      m.attach(b);
      for (const op of ['a', 'b']) await b.execute(() => 1, { operation: op });
      registry.resetMetrics();
      for (const op of ['c', 'd']) await b.execute(() => 1, { operation: op });
      expect(await series(registry, 'bulwark_execution_duration_seconds_count')).toEqual([
        'bulwark_execution_duration_seconds_count{policy="reset-bh",operation="c",result="success"} 1',
        'bulwark_execution_duration_seconds_count{overflow="true"} 1',
      ]);
      await warnings.flush();
      expect(warnings.codes().filter((c) => c === 'BULWARK_METRICS_OVERFLOW')).toEqual(['BULWARK_METRICS_OVERFLOW']);
      m.close();
    } finally {
      warnings.stop();
    }
  });
});

describe('defaultErrorType', () => {
  it('gives a code when there is one, else the name, else _OTHER', async () => {
    const { defaultErrorType } = await import('../../src/metrics/prometheus.js');
    const { TimeoutError, CircuitOpenError } = await import('../../src/index.js');
    expect(defaultErrorType(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe('ECONNRESET');
    expect(defaultErrorType(new TimeoutError('t', 100))).toBe('ERR_TIMEOUT');
    expect(defaultErrorType(new CircuitOpenError('b', 1_000, 'open'))).toBe('ERR_CIRCUIT_OPEN');
    // AbortSignal.timeout()'s DOMException is named TimeoutError too, with a numeric code: kept apart.
    expect(defaultErrorType(new DOMException('late', 'TimeoutError'))).toBe('TimeoutError');
    expect(defaultErrorType(new TypeError('x'))).toBe('TypeError');
    expect(defaultErrorType(Object.assign(new Error('x'), { code: 'not-a-code' }))).toBe('Error');
    expect(defaultErrorType(Object.assign(new Error('x'), { name: '' }))).toBe('Error');
    expect(defaultErrorType('a string')).toBe('_OTHER');
    expect(defaultErrorType(undefined)).toBe('_OTHER');
  });
});

describe('prometheusMetrics and the overload policies', () => {
  it('counts hedges by trigger, a budget refusal by reason, and a lost hedge as aborted', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0, minConcurrency: 1 });
    const h = hedge({ name: 'reads-hedge', delayMs: 10, maxHedgedAttempts: 2, budget, clock });
    const r = retry({
      name: 'reads-retry',
      maxAttempts: 3,
      backoff: constant(0),
      budget: retryBudget({ ratio: 0, minConcurrency: 0 }),
    });
    prometheusMetrics({ registry }).attach(h, r);
    let n = 0;
    const t = track(
      h.execute(
        (ctx) =>
          new Promise<string>((resolve, reject) => {
            const me = ++n;
            const timer = clock.setTimeout(() => resolve(`v${me}`), me === 1 ? 100 : 5);
            ctx.signal.addEventListener('abort', () => {
              clock.clearTimeout(timer);
              reject(ctx.signal.reason);
            });
          }),
        { operation: 'get' },
      ),
    );
    await clock.advance(10); // hedge 2 starts; hedge 3 will be refused at 20, but hedge 2 wins at 15
    await clock.advance(5);
    for (let i = 0; i < 4; i++) await new Promise<void>((res) => setImmediate(res));
    expect(t.value).toBe('v2');
    await rejectionOf(r.execute(() => Promise.reject(new Error('down'))));
    const lines = await series(registry, 'bulwark_events_total');
    const line = (event: string, reason: string) =>
      lines.find((l) => l.includes(`event="${event}"`) && l.includes(`reason="${reason}"`));
    expect(line('hedge.launched', 'delay')).toMatch(/ 1$/);
    expect(line('hedge.late_outcome', 'aborted')).toMatch(/ 1$/);
    expect(line('retry.exhausted', 'budget')).toMatch(/ 1$/);
  });
});
