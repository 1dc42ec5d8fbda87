import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { adaptiveLimit, pipeline, timeout } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { deferred } from '../helpers/deferred.js';

async function series(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('an adaptive limit in the metrics adapters', () => {
  it('reports its limit, active and queued as the bulkhead gauges, and counts adaptive_limit.changed by reason', async () => {
    const registry = new Registry();
    const limit = adaptiveLimit({
      name: 'upstream',
      algorithm: 'aimd',
      initialLimit: 2,
      minLimit: 1,
      queue: 3,
      windowSize: 1,
      maxWindowMs: 0,
    });
    const m = prometheusMetrics({ registry });
    m.attach(pipeline(timeout(1_000), limit));
    const gate = deferred<void>();
    const calls = [1, 2, 3].map(() => limit.execute(() => gate.promise, { operation: 'get' }));
    expect(await series(registry, 'bulwark_bulkhead_limit')).toEqual(['bulwark_bulkhead_limit{policy="upstream"} 2']);
    expect(await series(registry, 'bulwark_bulkhead_active')).toEqual(['bulwark_bulkhead_active{policy="upstream"} 2']);
    expect(await series(registry, 'bulwark_bulkhead_queued')).toEqual(['bulwark_bulkhead_queued{policy="upstream"} 1']);
    gate.resolve();
    await Promise.all(calls);
    // Admitted with 1, 2 and 2 in flight: each found half the limit in use (2, 3, 4), so each added 1.
    expect(await series(registry, 'bulwark_bulkhead_limit')).toEqual(['bulwark_bulkhead_limit{policy="upstream"} 5']);
    await limit.execute(() => Promise.reject(new Error('503')), { operation: 'get' }).catch(() => undefined);
    expect(await series(registry, 'bulwark_events_total')).toEqual([
      'bulwark_events_total{policy="upstream",operation="get",event="adaptive_limit.changed",reason="growth"} 3',
      'bulwark_events_total{policy="upstream",operation="get",event="adaptive_limit.changed",reason="drop"} 1',
    ]);
    m.close();
  });

  it('shows in attachAll() through the process-wide instance registry', async () => {
    const registry = new Registry();
    const m = prometheusMetrics({ registry });
    m.attachAll();
    const limit = adaptiveLimit({ name: 'everywhere', initialLimit: 7, minLimit: 1 });
    expect(await series(registry, 'bulwark_bulkhead_limit')).toContain('bulwark_bulkhead_limit{policy="everywhere"} 7');
    m.close();
    limit.dispose();
  });
});
