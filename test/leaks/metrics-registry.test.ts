import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type * as Bulwark from '../../src/index.js';
import type * as Prometheus from '../../src/metrics/prometheus.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('process-wide metrics across copies and collections', () => {
  it('an adapter of the CJS copy sees the events and gauges of policies made by the ESM copy', async () => {
    const esm = (await import(/* @vite-ignore */ `${ROOT}dist/index.js`)) as typeof Bulwark;
    const cjsProm = require(`${ROOT}dist/prometheus.cjs`) as typeof Prometheus;
    const registry = new Registry();
    const m = cjsProm.prometheusMetrics({ registry });
    m.attachAll();
    const cb = esm.circuitBreaker({ name: 'esm-copy-breaker', window: { kind: 'consecutive', threshold: 1 } });
    await cb.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    const text = await registry.metrics();
    expect(text).toContain('bulwark_circuit_breaker_state{policy="esm-copy-breaker",state="open"} 1');
    expect(text).toContain(
      'bulwark_events_total{policy="esm-copy-breaker",operation="default",event="circuit.open"} 1',
    );
    m.close();
  });

  it('the registry of live breakers and bulkheads keeps none alive: collected policies leave it', async () => {
    const script = `
      const { circuitBreaker, bulkhead } = await import(${JSON.stringify(`${ROOT}dist/index.js`)});
      const live = globalThis[Symbol.for('bulwark.instances.v1')];
      const before = live.size;
      (() => { for (let i = 0; i < 2000; i++) { circuitBreaker(); bulkhead({ limit: 1 }); } })();
      const made = live.size - before;
      for (let i = 0; i < 20 && live.size > before; i++) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      console.log(JSON.stringify({ made, left: live.size - before }));
    `;
    const { stdout } = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      timeout: 15_000,
    });
    expect(JSON.parse(stdout)).toEqual({ made: 4000, left: 0 });
  });
});
