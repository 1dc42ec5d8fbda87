import type { FakeClock } from '../../src/testing/index.js';

/** How long a test waits in real time for something that should happen at once, before it fails. */
const REAL_LIMIT_MS = 4_000;

/**
 * Polls `cond` until it holds; fails after `timeoutMs` of real time. `intervalMs` 0 yields to I/O with
 * `setImmediate` between checks (for local servers and fake clocks); a broker test polls every 10-20 ms, so an
 * async condition that asks the broker does not flood it.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  { timeoutMs = REAL_LIMIT_MS, intervalMs = 0 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((r) => (intervalMs > 0 ? setTimeout(r, intervalMs) : setImmediate(r)));
  }
}

/**
 * Advances the fake clock `stepMs` at a time until `cond` holds (real I/O runs between steps). Bounded in steps
 * and in real time, so a broken expectation fails fast instead of hanging.
 */
export async function advanceUntil(
  clock: FakeClock,
  stepMs: number,
  cond: () => boolean,
  what: string,
  maxSteps = 2_000,
): Promise<void> {
  const start = performance.now();
  for (let i = 0; !cond(); i++) {
    if (i >= maxSteps || performance.now() - start > REAL_LIMIT_MS) {
      throw new Error(`timed out advancing the clock waiting for ${what}`);
    }
    await clock.advance(stepMs);
  }
}
