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
    // The overload gauges too, read by shape from the other copy's objects.
    const rl = esm.rateLimit({ name: 'esm-copy-limiter', rate: 1, periodMs: 3_600_000, burst: 3 });
    await rl.execute(() => 1);
    const budget = esm.retryTokenBudget({ name: 'esm-copy-budget', maxTokens: 4 });
    const overload = await registry.metrics();
    expect(overload).toContain('bulwark_rate_limit_available{policy="esm-copy-limiter"} 2');
    expect(overload).toContain('bulwark_retry_budget_tokens{policy="esm-copy-budget"} 4');
    expect(budget.tokens).toBe(4);
    expect(text).toContain(
      'bulwark_events_total{policy="esm-copy-breaker",operation="default",event="circuit.open"} 1',
    );
    m.close();
  });

  it('the registry of live policies and budgets keeps none alive: collected ones leave it', async () => {
    const script = `
      const { circuitBreaker, bulkhead, rateLimit, adaptiveThrottle, retryBudget, retryTokenBudget } = await import(
        ${JSON.stringify(`${ROOT}dist/index.js`)}
      );
      const live = globalThis[Symbol.for('bulwark.instances.v1')];
      const before = live.size;
      (() => {
        for (let i = 0; i < 1000; i++) {
          circuitBreaker();
          bulkhead({ limit: 1 });
          rateLimit({ rate: 1 });
          adaptiveThrottle();
          retryBudget();
          retryTokenBudget();
        }
      })();
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
    expect(JSON.parse(stdout)).toEqual({ made: 6000, left: 0 });
  });
});
