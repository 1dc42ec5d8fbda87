import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const execFileP = promisify(execFile);
const DIST = new URL('../../dist/index.js', import.meta.url);

/**
 * The published build keeps function names (tsup `keepNames`), so esbuild wraps every NAMED function expression in
 * `__name(fn, 'name')`, which is an `Object.defineProperty`. In a per-call path that cost about 4,000 instructions per
 * call (a retry with a budget made a `const failed = (error) => ...` per call: 5,379 instructions against 1,327 for a
 * plain retry, counted with callgrind). The rule: no named function is created per call. This runs the built
 * package's policies in a child process with `Object.defineProperty` counted, and requires zero calls per call on the
 * happy path of every policy and pipeline.
 */
describe('no Object.defineProperty per call (keepNames)', () => {
  it('the built policies define no property while calls run', async () => {
    expect(existsSync(DIST), `${DIST.pathname} exists (npm test builds it first)`).toBe(true);
    // Patched before the import: the bundle keeps its own alias of Object.defineProperty (esbuild's __defProp).
    const source = `
      const original = Object.defineProperty;
      let count = 0;
      Object.defineProperty = function (...args) { count++; return original.apply(this, args); };
      const b = await import(${JSON.stringify(DIST.href)});
      const op = async () => 1;
      const budget = b.retryBudget();
      const configs = {
        retry: b.retry(),
        'retry + retryBudget': b.retry({ budget }),
        'retry + retryTokenBudget': b.retry({ budget: b.retryTokenBudget() }),
        circuitBreaker: b.circuitBreaker(),
        timeout: b.timeout(60_000),
        bulkhead: b.bulkhead({ limit: 10 }),
        fallback: b.fallback({ value: 0 }),
        hedge: b.hedge({ delayMs: 60_000 }),
        'hedge (quantile)': b.hedge({ delayMs: 60_000, delayQuantile: { quantile: 0.9, samples: 10, minSamples: 5 } }),
        rateLimit: b.rateLimit({ rate: 1e9 }),
        adaptiveLimit: b.adaptiveLimit(),
        adaptiveThrottle: b.adaptiveThrottle(),
        injectFault: b.injectFault({ fault: new Error('x'), injectionRate: 0 }),
        'pipeline(4)': b.pipeline(b.retry({ budget }), b.circuitBreaker(), b.timeout(60_000), b.bulkhead({ limit: 10 })),
        'pipeline(overload)': b.pipeline(
          b.retry({ budget }), b.circuitBreaker(), b.adaptiveThrottle(), b.hedge({ delayMs: 60_000, budget }),
          b.timeout(60_000), b.rateLimit({ rate: 1e9 }), b.adaptiveLimit(),
        ),
        keyed: b.keyed((ctx) => ctx.operation, () => b.retry()),
      };
      const out = {};
      for (const [name, p] of Object.entries(configs)) {
        for (let i = 0; i < 50; i++) await p.execute(op); // warm-up: lazy set-up may define properties once
        count = 0;
        for (let i = 0; i < 200; i++) await p.execute(op);
        out[name] = count;
      }
      Object.defineProperty = original;
      console.log(JSON.stringify(out));
    `;
    const { stdout } = await execFileP(process.execPath, ['--input-type=module', '--eval', source]);
    const counts = JSON.parse(stdout) as Record<string, number>;
    expect(Object.keys(counts).length).toBe(16);
    expect(Object.entries(counts).filter(([, n]) => n > 0)).toEqual([]);
  });
});
