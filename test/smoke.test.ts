import { expect, it } from 'vitest';
import { bulkhead, circuitBreaker, constant, fallback, pipeline, retry, timeout } from '../src/index.js';

it('smoke', async () => {
  const p = pipeline(fallback({ value: -1 }), retry({ backoff: constant(1) }), circuitBreaker(), timeout(100), bulkhead({ limit: 2 }));
  let n = 0;
  expect(await p.execute(() => { if (++n < 3) throw new Error('x'); return 42; })).toBe(42);
  expect(await p.execute(async () => { throw new Error('y'); })).toBe(-1);
  const e = await timeout(10).execute(({ signal }) => new Promise((_r, j) => signal.addEventListener('abort', () => j(signal.reason)))).catch((e) => e);
  expect(e.code).toBe('ERR_TIMEOUT');
});
