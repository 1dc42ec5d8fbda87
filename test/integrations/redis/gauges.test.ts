import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { pipeline } from '../../../src/index.js';
import { redisBulkhead, redisCircuitBreaker, redisRateLimit } from '../../../src/integrations/redis/index.js';
import { prometheusMetrics } from '../../../src/metrics/prometheus.js';
import { connectIoredis, deleteKeys, disconnect, uniquePrefix } from './harness.js';

// The bulwark/redis policies carry the gauges of their local twins (rate limiter, bulkhead, breaker). They were
// read by an adapter attached process-wide only; attached to a pipeline holding them, the adapter now finds them
// too (by the kind they registered as, not by class). And a limiter whose local fallback was never used shows
// once: the fallback is made on first use, so an idle one adds no full bucket under the same name.
describe('bulwark/redis policies in the metrics gauges', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('an adapter attached to a pipeline reads the shared rate limiter, bulkhead and breaker', async () => {
    const client = await connectIoredis();
    const prefix = uniquePrefix('gauges');
    cleanups.push(async () => {
      await deleteKeys(prefix);
      await disconnect(client);
    });
    const store = { client, keyPrefix: prefix, storeTimeoutMs: 5_000 };
    const limiter = redisRateLimit({ ...store, name: 'orders-rate', rate: 10, periodMs: 60_000, burst: 10 });
    const permits = redisBulkhead({ ...store, name: 'orders-permits', limit: 4 });
    const breaker = redisCircuitBreaker({ ...store, name: 'orders-breaker' });
    const policy = pipeline(breaker, permits, limiter);
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    metrics.attach(policy);
    cleanups.push(async () => {
      metrics.close();
      limiter.dispose();
      permits.dispose();
    });

    for (let i = 0; i < 3; i++) await policy.execute(async () => 'ok');
    let release: () => void = () => undefined;
    const held = policy.execute(() => new Promise<void>((resolve) => (release = resolve)));
    await new Promise((r) => setTimeout(r, 50)); // the held call has its permit and its token
    const text = await registry.metrics();
    const value = (metric: string, name: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${metric}{policy="${name}"`));
      return line === undefined ? undefined : Number(line.split(' ').at(-1));
    };
    expect(value('bulwark_rate_limit_capacity', 'orders-rate')).toBe(10); // once: no idle local twin added
    expect(value('bulwark_rate_limit_available', 'orders-rate')).toBe(6); // Redis's last answer: 4 taken
    expect(value('bulwark_rate_limit_queued', 'orders-rate')).toBe(0);
    expect(value('bulwark_bulkhead_active', 'orders-permits')).toBe(1);
    expect(value('bulwark_bulkhead_limit', 'orders-permits')).toBe(4);
    expect(text).toMatch(/bulwark_circuit_breaker_state\{policy="orders-breaker",state="closed"\} 1/);
    // Process-wide, the same: the limiter once (an idle local fallback would have added a second full bucket).
    const everywhere = new Registry();
    const all = prometheusMetrics({ registry: everywhere });
    all.attachAll();
    const line = (await everywhere.metrics())
      .split('\n')
      .find((l) => l.startsWith('bulwark_rate_limit_capacity{policy="orders-rate"'));
    expect(line?.split(' ').at(-1)).toBe('10');
    all.close();
    release();
    await held;
  });
});
