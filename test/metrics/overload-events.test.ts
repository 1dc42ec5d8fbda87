import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { adaptiveThrottle, injectFault, injectLatency, pipeline } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';

describe('metrics of the overload and chaos events', () => {
  it('counts throttle.rejected, and chaos.injected with its kind as the reason', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const throttle = adaptiveThrottle({ clock, random: () => 0 });
    const chaos = pipeline(
      injectLatency({ injectionRate: 1, latencyMs: 0, clock }),
      injectFault({ injectionRate: 1, fault: new Error('chaos') }),
    );
    const m = prometheusMetrics({ registry });
    m.attach(throttle, chaos);
    await throttle.execute(() => Promise.reject(new Error('503'))).catch(() => undefined); // p was 0: runs
    await throttle.execute(() => 'ok', { operation: 'op' }).catch(() => undefined); // p = 1/2, draw 0: rejected
    await chaos.execute(() => 'ok').catch(() => undefined);
    const text = await registry.metrics();
    expect(text).toContain(
      'bulwark_events_total{policy="adaptive-throttle",operation="op",event="throttle.rejected"} 1',
    );
    expect(text).toContain(
      'bulwark_events_total{policy="chaos-latency",operation="default",event="chaos.injected",reason="latency"} 1',
    );
    expect(text).toContain(
      'bulwark_events_total{policy="chaos-fault",operation="default",event="chaos.injected",reason="fault"} 1',
    );
    m.close();
  });
});
