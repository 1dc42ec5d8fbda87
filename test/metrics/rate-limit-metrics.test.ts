import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { rateLimit } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';
import { rejectionOf, track } from '../helpers/deferred.js';

describe('rate limiter metrics', () => {
  it('counts rate_limit.rejected by reason and rate_limit.queued, per policy and operation', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const rl = rateLimit({ name: 'github', rate: 10, burst: 1, queue: 1, clock });
    const m = prometheusMetrics({ registry });
    const strict = rateLimit({ name: 'strict', rate: 1, clock });
    m.attach(rl, strict);
    await rl.execute(() => 1, { operation: 'search' });
    const queued = track(rl.execute(() => 2, { operation: 'search' }));
    await rejectionOf(rl.execute(() => 3, { operation: 'search' }));
    await strict.execute(() => 4);
    await rejectionOf(strict.execute(() => 5));
    const text = (await registry.metrics()).split('\n').filter((l) => l.startsWith('bulwark_events_total{'));
    expect(text).toEqual([
      'bulwark_events_total{policy="github",operation="search",event="rate_limit.queued"} 1',
      'bulwark_events_total{policy="github",operation="search",event="rate_limit.rejected",reason="queue_full"} 1',
      'bulwark_events_total{policy="strict",operation="default",event="rate_limit.rejected",reason="limit"} 1',
    ]);
    await clock.advance(100);
    expect(queued.value).toBe(2);
    m.close();
  });
});
