// Micro-benchmark of the happy path (per-call overhead). Run: npm run build && node --expose-gc bench/micro.mjs
import { bench, group, run, summary } from 'mitata';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../dist/index.js';

const op = async () => 1;
const r = retry();
const cb = circuitBreaker();
const t = timeout(60_000);
const b = bulkhead({ limit: 1_000 });
const p4 = pipeline(retry(), circuitBreaker(), timeout(60_000), bulkhead({ limit: 1_000 }));
const empty = pipeline();

summary(() => {
  group('async () => 1', () => {
    bench('bare', async () => await op());
    bench('empty pipeline', async () => await empty.execute(op));
    bench('retry', async () => await r.execute(op));
    bench('circuitBreaker', async () => await cb.execute(op));
    bench('timeout', async () => await t.execute(op));
    bench('bulkhead', async () => await b.execute(op));
    bench('pipeline(retry, cb, timeout, bulkhead)', async () => await p4.execute(op));
  });
});
await run();
