import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { bulkhead, type Context, circuitBreaker, retry } from '../../src/index.js';
import { captureWarnings } from '../helpers/warnings.js';

/**
 * Without a caller signal and without a cancelling policy, every call's `ctx.signal` is one shared,
 * never-aborted signal. An operation that listens on its signal while it runs (as `fetch(url, { signal })` does)
 * then puts one listener per concurrent call on that single signal.
 */
describe('ctx.signal without a caller signal', () => {
  it('11 concurrent calls that listen on ctx.signal (and clean up) raise no MaxListenersExceededWarning', async () => {
    const warnings = captureWarnings();
    try {
      const peaks: string[] = [];
      for (const policy of [circuitBreaker(), retry(), bulkhead({ limit: 20 })]) {
        const release: (() => void)[] = [];
        const signals = new Set<AbortSignal>();
        const op = ({ signal }: Context): Promise<void> =>
          new Promise<void>((resolve) => {
            const onAbort = (): void => {};
            signal.addEventListener('abort', onAbort);
            signals.add(signal);
            release.push(() => {
              signal.removeEventListener('abort', onAbort);
              resolve();
            });
          });
        const calls = Array.from({ length: 11 }, () => policy.execute(op));
        const peak = Math.max(...[...signals].map((s) => getEventListeners(s, 'abort').length));
        for (const r of release) r();
        await Promise.all(calls);
        peaks.push(`${policy.name}: ${peak} listeners on one signal (${signals.size} distinct ctx.signal)`);
      }
      expect(warnings.messages(), peaks.join('; ')).toEqual([]);
    } finally {
      warnings.stop();
    }
  });
});
