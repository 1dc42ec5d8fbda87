import fc from 'fast-check';
import { Counter, Histogram, type Metric, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { observe, SeriesStore, StoredMetric } from '../../src/metrics/series.js';

const BOUNDS = [0.005, 0.01, 0.1, 0.25, 1, 10];
const label = fc.constantFrom('a', 'b', 'c');
const sample = fc.record({
  policy: label,
  operation: fc.constantFrom('get', 'put'),
  result: fc.constantFrom('success', 'failure'),
  errorType: fc.constantFrom('', 'ECONNRESET', 'TimeoutError'),
  // Bucket edges, values between them, zero and values past the last bound.
  value: fc.oneof(fc.constantFrom(0, ...BOUNDS), fc.double({ min: 0, max: 20, noNaN: true })),
});

/** Labels as prom-client wants them: an absent label is left out, as the store does. */
function labelsOf(s: { policy: string; operation: string; result: string; errorType: string }) {
  const l: Record<string, string> = { policy: s.policy, operation: s.operation, result: s.result };
  if (s.errorType !== '') l.error_type = s.errorType;
  return l;
}

/** The exposition text of a registry, series sorted (the order of series is not part of the format). */
async function exposition(registry: Registry): Promise<string[]> {
  return (await registry.metrics())
    .split('\n')
    .filter((l) => l !== '')
    .sort();
}

describe('pre-aggregated Prometheus series', () => {
  it('expose exactly what prom-client Histogram and Counter expose for the same samples', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sample, { maxLength: 60 }), async (samples) => {
        const theirs = new Registry();
        const h = new Histogram({
          name: 'd_seconds',
          help: 'h',
          labelNames: ['policy', 'operation', 'result', 'error_type'],
          buckets: BOUNDS,
          registers: [theirs],
        });
        const c = new Counter({
          name: 'e_total',
          help: 'c',
          labelNames: ['policy', 'operation', 'result', 'error_type'],
          registers: [theirs],
        });
        const ours = new Registry();
        const hs = new SeriesStore(['policy', 'operation', 'result', 'error_type', ''], BOUNDS.length);
        const cs = new SeriesStore(['policy', 'operation', 'result', 'error_type', ''], 0);
        const names = ['policy', 'operation', 'result', 'error_type'];
        ours.registerMetric(new StoredMetric('d_seconds', 'h', names, hs, BOUNDS) as unknown as Metric);
        ours.registerMetric(new StoredMetric('e_total', 'c', names, cs, undefined) as unknown as Metric);
        for (const s of samples) {
          h.observe(labelsOf(s), s.value);
          c.inc(labelsOf(s));
          observe(hs.get(s.policy, s.operation, s.result, s.errorType, ''), BOUNDS, s.value);
          cs.get(s.policy, s.operation, s.result, s.errorType, '').count++;
        }
        const [a, b] = [await exposition(ours), await exposition(theirs)];
        // Sums are added in the same order, so even floating-point totals agree exactly.
        expect(a).toEqual(b);
      }),
      { numRuns: 200 },
    );
  });

  it('reset with the registry, and read the same through getMetricsAsJSON and OpenMetrics', async () => {
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const cs = new SeriesStore(['policy', 'operation', 'event', '', ''], 0);
    registry.registerMetric(
      new StoredMetric('ev_total', 'c', ['policy', 'operation', 'event'], cs, undefined) as never,
    );
    cs.get('p', 'o', 'retry.attempt', '', '').count += 3;
    expect(await registry.metrics()).toContain('ev_total{policy="p",operation="o",event="retry.attempt"} 3');
    const json = await registry.getMetricsAsJSON();
    expect(json[0]?.values).toEqual([{ value: 3, labels: { policy: 'p', operation: 'o', event: 'retry.attempt' } }]);
    registry.resetMetrics();
    expect(cs.all).toEqual([]);
    expect(await registry.metrics()).not.toContain('ev_total{');
  });
});
