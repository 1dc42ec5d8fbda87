import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_DELAY_MS, systemClock } from '../../src/index.js';

describe('systemClock', () => {
  it('never fires a timer before its delay has passed on its own now() (Node counts whole, truncated ms)', async () => {
    // A retry that waited a rate limiter's retryAfterMs of 399.64 ms was refused again, 0.35 ms too soon.
    const early: number[] = [];
    const delays = Array.from({ length: 200 }, (_, i) => 0.1 + (i % 8) * 0.45 + (i % 3) * 0.3);
    await Promise.all(
      delays.map(
        (delay) =>
          new Promise<void>((resolve) => {
            const start = systemClock.now();
            systemClock.setTimeout(() => {
              const waited = systemClock.now() - start;
              if (waited < delay) early.push(delay - waited);
              resolve();
            }, delay);
          }),
      ),
    );
    expect(early).toEqual([]);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('is monotonic', () => {
    const a = systemClock.now();
    const b = systemClock.now();
    expect(b).toBeGreaterThanOrEqual(a);
  });

  it('runs and clears ordinary timers, ref or unref', async () => {
    const fired: string[] = [];
    const h = systemClock.setTimeout(() => fired.push('cleared'), 1);
    systemClock.clearTimeout(h);
    await new Promise<void>((resolve) => {
      systemClock.setTimeout(
        () => {
          fired.push('ran');
          resolve();
        },
        1,
        true,
      );
    });
    expect(fired).toEqual(['ran']);
  });

  it('chunks delays above 2^31-1 ms instead of firing after 1 ms', () => {
    // Node's own timers are what is under test here, so vitest's fake timers stand in for them.
    vi.useFakeTimers();
    let fired = 0;
    systemClock.setTimeout(() => fired++, MAX_TIMER_DELAY_MS * 2 + 5, true);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(4);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    const h = systemClock.setTimeout(() => fired++, MAX_TIMER_DELAY_MS + 1);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    systemClock.clearTimeout(h);
    systemClock.clearTimeout(h); // clearing twice is harmless
    vi.advanceTimersByTime(10);
    expect(fired).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('systemClock.setRef', () => {
  it('refs and unrefs ordinary and long timers', () => {
    const short = systemClock.setTimeout(() => undefined, 1_000) as NodeJS.Timeout;
    expect(short.hasRef()).toBe(true);
    systemClock.setRef?.(short, false);
    expect(short.hasRef()).toBe(false);
    systemClock.setRef?.(short, true);
    expect(short.hasRef()).toBe(true);
    systemClock.clearTimeout(short);
    const long = systemClock.setTimeout(() => undefined, MAX_TIMER_DELAY_MS + 10, true) as { handle: NodeJS.Timeout };
    expect(long.handle.hasRef()).toBe(false);
    systemClock.setRef?.(long, true);
    expect(long.handle.hasRef()).toBe(true);
    systemClock.setRef?.(long, false);
    expect(long.handle.hasRef()).toBe(false);
    systemClock.clearTimeout(long);
    systemClock.setRef?.(long, true); // after clear: nothing to ref, no throw
  });
});
