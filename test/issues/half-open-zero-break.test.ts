import { describe, expect, it } from 'vitest';
import { circuitBreaker, exponential } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

/**
 * The probe lease is the break duration. With `halfOpenAfterMs: 0` (allowed: a number >= 0), or a jittered
 * backoff that draws 0 or a tiny break, the lease of a probe expires the instant it is taken, so every further
 * call at the same instant is treated as replacing a "hung" probe and is admitted too.
 */
describe('half-open with a zero break duration', () => {
  it('admits at most halfOpenProbes concurrent probes even when the break (and so the probe lease) is 0 ms', async () => {
    for (const probes of [1, 2, 3]) {
      const clock = new FakeClock();
      const breaker = circuitBreaker({
        clock,
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 0,
        halfOpenProbes: probes,
      });
      await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {});
      expect(breaker.state).toBe('half_open');
      let running = 0;
      let maxRunning = 0;
      const held: (() => void)[] = [];
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < probes + 3; i++) {
        calls.push(
          breaker
            .execute(
              () =>
                new Promise<void>((resolve) => {
                  running++;
                  maxRunning = Math.max(maxRunning, running);
                  held.push(() => {
                    running--;
                    resolve();
                  });
                }),
            )
            .catch((e: unknown) => e),
        );
      }
      // No time has passed: none of these probes can be "hung", so the slots cannot have expired.
      expect(maxRunning).toBe(probes);
      for (const release of held) release();
      await Promise.all(calls);
    }
  });

  it("admits one probe at a time when a 'full'-jitter break draws 0 ms", async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({
      clock,
      window: { kind: 'consecutive', threshold: 1 },
      halfOpenAfterMs: exponential({ initialMs: 1_000, maxMs: 60_000, jitter: 'full' }),
      random: () => 0,
    });
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    let running = 0;
    let maxRunning = 0;
    const held: (() => void)[] = [];
    const calls = Array.from({ length: 4 }, () =>
      breaker
        .execute(
          () =>
            new Promise<void>((resolve) => {
              running++;
              maxRunning = Math.max(maxRunning, running);
              held.push(resolve);
            }),
        )
        .catch((e: unknown) => e),
    );
    expect(maxRunning).toBe(1);
    for (const release of held) release();
    await Promise.all(calls);
  });
});
