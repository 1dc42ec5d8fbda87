/**
 * A simulated upstream on the fake clock: its latency grows with the calls it holds past a knee, and it fails
 * calls when far above it. Used by the convergence tests of adaptiveLimit.
 */
import type { AdaptiveLimitPolicy } from '../../../src/index.js';
import type { FakeClock } from '../../../src/testing/index.js';

export interface UpstreamShape {
  /** Calls it holds before latency grows. */
  knee: number;
  /** Latency at or below the knee, ms. */
  baseMs: number;
  /** Fails calls admitted while it holds more than `failAbove` x knee. */
  failAbove: number;
}

/** An upstream whose shape can change mid-run (it gets sick, it heals). */
export class SimUpstream {
  shape: UpstreamShape;
  inside = 0;
  maxInside = 0;
  calls = 0;
  failures = 0;
  readonly #clock: FakeClock;

  constructor(clock: FakeClock, shape: UpstreamShape) {
    this.#clock = clock;
    this.shape = shape;
  }

  /** Latency of a call admitted while it holds `c` calls (itself included). Steep past the knee: (c/knee)^6. */
  latencyMs(c: number): number {
    const { knee, baseMs } = this.shape;
    return c <= knee ? baseMs : Math.round(baseMs * (c / knee) ** 6);
  }

  call(): Promise<void> {
    this.calls++;
    const c = ++this.inside;
    if (c > this.maxInside) this.maxInside = c;
    const fail = c > this.shape.failAbove * this.shape.knee;
    const ms = fail ? 1 : this.latencyMs(c);
    return new Promise<void>((resolve, reject) => {
      this.#clock.setTimeout(() => {
        this.inside--;
        if (fail) {
          this.failures++;
          reject(new Error('overloaded'));
        } else resolve();
      }, ms);
    });
  }
}

/**
 * Closed-loop load: `clients` callers, each calling again as soon as its call settles (after `pauseMs` when it was
 * rejected or failed). Runs until `stop()`; returns a function that stops and awaits every client.
 */
export function closedLoop(
  policy: AdaptiveLimitPolicy,
  upstream: SimUpstream,
  clients: number,
  clock: FakeClock,
  pauseMs = 5,
): { stop(): Promise<void> } {
  let running = true;
  const loops: Promise<void>[] = [];
  const pause = () => new Promise<void>((r) => clock.setTimeout(r, pauseMs));
  for (let i = 0; i < clients; i++) {
    loops.push(
      (async () => {
        while (running) {
          try {
            await policy.execute(() => upstream.call());
          } catch {
            if (running) await pause();
          }
        }
      })(),
    );
  }
  return {
    async stop() {
      running = false;
      policy.dispose();
      while (upstream.inside > 0 || clock.pendingTimers > 0) await clock.next();
      await Promise.all(loops);
    },
  };
}

/** Advances `ms` in steps of `stepMs`, recording the limit after each step. */
export async function trace(
  policy: AdaptiveLimitPolicy,
  clock: FakeClock,
  ms: number,
  stepMs = 100,
): Promise<number[]> {
  const out: number[] = [];
  for (let t = 0; t < ms; t += stepMs) {
    await clock.advance(stepMs);
    out.push(policy.limit);
  }
  return out;
}
