/**
 * The simulation: an upstream on the fake clock whose latency grows steeply with the calls it holds past a
 * knee of 50 (10 ms below it, x (c/50)^6 above, failing calls past 1.5 x the knee), driven by 150 closed-loop
 * clients. With its defaults, each algorithm brings the limit within 20% of the knee; when the upstream gets sick
 * (knee 20) the limit falls, and when it heals the limit rises back near 50.
 */
import { describe, expect, it } from 'vitest';
import { type AdaptiveLimitOptions, adaptiveLimit } from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { closedLoop, SimUpstream, trace } from './sim.js';

const HEALTHY = { knee: 50, baseMs: 10, failAbove: 1.5 };
const SICK = { knee: 20, baseMs: 10, failAbove: 1.5 };
const within20 = (l: number) => l >= 40 && l <= 60;

async function run(options: AdaptiveLimitOptions) {
  const clock = new FakeClock();
  const up = new SimUpstream(clock, HEALTHY);
  const p = adaptiveLimit({ ...options, clock, queue: Number.POSITIVE_INFINITY });
  const load = closedLoop(p, up, 150, clock);
  const healthy = await trace(p, clock, 6_000, 250);
  up.shape = SICK;
  const sick = await trace(p, clock, 6_000, 250);
  up.shape = HEALTHY;
  const healed = await trace(p, clock, 6_000, 250);
  await load.stop();
  expect(clock.pendingTimers).toBe(0);
  expect(p.active + p.queued).toBe(0);
  return { healthy, sick, healed };
}

describe('adaptiveLimit against an upstream with a knee at 50', () => {
  it.each([
    ['gradient2', {}],
    ['aimd (slowCallMs 20: twice the healthy latency)', { algorithm: 'aimd', slowCallMs: 20 }],
  ] as const)(
    '%s: converges within 20% of the knee, falls when it is sick, recovers when it heals',
    async (_, options) => {
      const { healthy, sick, healed } = await run(options as AdaptiveLimitOptions);
      // Converged: the last 2 s of each healthy phase stay within 20% of the knee.
      expect(healthy.slice(-8).every(within20), healthy.join(' ')).toBe(true);
      expect(Math.max(...sick.slice(-8)), sick.join(' ')).toBeLessThanOrEqual(26); // minLimit 20, knee 20
      expect(healed.slice(-8).every(within20), healed.join(' ')).toBe(true);
      expect(Math.max(...healed) - Math.min(...sick)).toBeGreaterThanOrEqual(20); // it rose again
    },
  );

  it('vegas: converges within 20% of the knee, falls while it is sick, recovers', async () => {
    const { healthy, sick, healed } = await run({ algorithm: 'vegas' });
    expect(healthy.slice(-8).every(within20), healthy.join(' ')).toBe(true);
    // Vegas steps down by log10(limit) = 1 per window: slower than the others, but steadily.
    expect(sick.at(-1) as number, sick.join(' ')).toBeLessThan((sick[0] as number) - 15);
    expect(healed.slice(-8).every(within20), healed.join(' ')).toBe(true);
  });
});
