import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  isBulkheadRejectedError,
  isCircuitOpenError,
  isTimeoutError,
  pipeline,
  retry,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';
import { captureWarnings } from '../helpers/warnings.js';

/** Counts 'abort' listeners added to and removed from one signal, by patching the instance's methods. */
function countListeners(signal: AbortSignal): { adds: number; removes: number; peak: number; live: Set<unknown> } {
  const counts = { adds: 0, removes: 0, peak: 0, live: new Set<unknown>() };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  Object.defineProperty(signal, 'addEventListener', {
    configurable: true,
    value: (...args: Parameters<AbortSignal['addEventListener']>): void => {
      if (args[0] === 'abort') {
        counts.adds++;
        counts.live.add(args[1]);
        counts.peak = Math.max(counts.peak, counts.live.size);
      }
      add(...args);
    },
  });
  Object.defineProperty(signal, 'removeEventListener', {
    configurable: true,
    value: (...args: Parameters<AbortSignal['removeEventListener']>): void => {
      if (args[0] === 'abort') {
        counts.removes++;
        counts.live.delete(args[1]);
      }
      remove(...args);
    },
  });
  return counts;
}

/** Collects the process warnings (MaxListenersExceededWarning above all) emitted while it is installed. */
function watchWarnings(): { readonly warnings: string[]; stop(): Promise<void> } {
  const captured = captureWarnings();
  const warnings: string[] = [];
  return {
    warnings,
    async stop() {
      captured.stop();
      warnings.push(...captured.warnings.map((w) => `${w.name}: ${w.message}`));
    },
  };
}

describe('signal listeners', () => {
  it('1,000 executions through retry > breaker > timeout > bulkhead leave no listener on a long-lived signal', async () => {
    const watch = watchWarnings();
    const clock = new FakeClock();
    const controller = new AbortController();
    const counts = countListeners(controller.signal);
    const policy = pipeline(
      retry({ clock, backoff: constant(10), maxAttempts: 3 }),
      circuitBreaker({ clock }),
      timeout({ ms: 60_000, clock }),
      bulkhead({ limit: 10, queue: 100, clock }),
    );

    let firstAttemptTimeouts = 0;
    /** Ten kinds of operation: successes (sync and async), failures retried, and attempts that time out. */
    const op = (i: number) => {
      const kind = i % 10;
      return ({ attempt, signal }: { attempt: number; signal: AbortSignal }): number | Promise<number> => {
        if (kind <= 2) return i;
        if (kind <= 5) return Promise.resolve(i);
        if (attempt > 1) return i;
        if (kind === 6) return Promise.reject(new Error(`async failure ${i}`));
        if (kind === 7) throw new Error(`sync failure ${i}`);
        if (kind === 8) {
          // Honours its signal: rejects with the abort reason when the timeout fires.
          return new Promise<number>((_, reject) => {
            const onAbort = (): void => {
              if (isTimeoutError(signal.reason)) firstAttemptTimeouts++;
              reject(signal.reason);
            };
            signal.addEventListener('abort', onAbort, { once: true });
          });
        }
        // Ignores its signal and settles long after the timeout (its bulkhead slot is held until then).
        return new Promise<number>((resolve) => clock.setTimeout(() => resolve(-1), 61_000));
      };
    };

    const results = new Map<number, { ok: boolean; value?: number; error?: unknown }>();
    const WAVE = 50;
    for (let wave = 0; wave < 1_000 / WAVE; wave++) {
      const waveResults: Promise<void>[] = [];
      for (let k = 0; k < WAVE; k++) {
        const i = wave * WAVE + k;
        waveResults.push(
          policy.execute(op(i), { signal: controller.signal }).then(
            (value) => void results.set(i, { ok: true, value }),
            (error: unknown) => void results.set(i, { ok: false, error }),
          ),
        );
      }
      let settled = false;
      void Promise.all(waveResults).then(() => {
        settled = true;
      });
      for (let guard = 0; !settled; guard++) {
        if (guard > 10_000) throw new Error(`wave ${wave} did not settle`);
        if (!(await clock.next())) await clock.flush();
        if (!settled && clock.pendingTimers === 0) {
          await clock.flush();
          if (!settled) throw new Error(`wave ${wave} is stuck with no timer pending`);
        }
      }
    }

    expect(results.size).toBe(1_000);
    const successes = [...results.values()].filter((r) => r.ok).length;
    const unexpected = [...results.values()].filter(
      (r) =>
        !r.ok &&
        !isTimeoutError(r.error) &&
        !isCircuitOpenError(r.error) &&
        !isBulkheadRejectedError(r.error) &&
        !(r.error instanceof Error && /failure/.test(r.error.message)),
    );
    expect(unexpected).toEqual([]);
    expect(successes).toBeGreaterThan(500);
    expect(firstAttemptTimeouts).toBeGreaterThan(0);

    // Every listener bulwark (or the ops) put on the caller's signal was taken off again.
    expect(counts.adds).toBeGreaterThan(0);
    expect({ adds: counts.adds, removes: counts.removes, live: counts.live.size }).toEqual({
      adds: counts.adds,
      removes: counts.adds,
      live: 0,
    });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);

    // The shared deadline timer fires once more on an empty queue and is not re-armed: nothing is left.
    await clock.advance(60_001);
    expect(clock.pendingTimers).toBe(0);

    await watch.stop();
    expect(watch.warnings, `peak of ${counts.peak} abort listeners at once on the caller's signal`).toEqual([]);
  });

  it('an aborted caller signal leaves no listener behind either (queued, running and sleeping calls)', async () => {
    const watch = watchWarnings();
    const clock = new FakeClock();
    const controller = new AbortController();
    const counts = countListeners(controller.signal);
    const policy = pipeline(
      retry({ clock, backoff: constant(10), maxAttempts: 3 }),
      circuitBreaker({ clock }),
      timeout({ ms: 60_000, clock }),
      bulkhead({ limit: 2, queue: 5, clock }),
    );
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 7; i++) {
      calls.push(
        policy
          .execute(
            ({ attempt }) =>
              attempt === 1 && i === 0 ? Promise.reject(new Error('retry me')) : new Promise<never>(() => {}),
            { signal: controller.signal },
          )
          .catch((e: unknown) => e),
      );
    }
    await clock.flush();
    const reason = new Error('caller gave up');
    controller.abort(reason);
    const errors = await Promise.all(calls);
    for (const e of errors) expect(e).toBe(reason);
    expect(counts.removes).toBe(counts.adds);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    await watch.stop();
    expect(watch.warnings).toEqual([]);
  });
});
