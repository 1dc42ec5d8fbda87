import { describe, expect, it } from 'vitest';
import { contenders, FLOORS, overheadContenders } from '../../bench/contenders.js';
import { loadPeers } from '../../bench/peers.js';

/**
 * Every bulwark contender serves the suites' two shapes of load without a rejection: serial calls (overhead) and
 * thousands in flight at once (the in-flight suite gives limiters a queue of that size). An adaptiveLimit sized for
 * serial calls once rejected the in-flight suite's calls, and `npm run bench` then failed for every user.
 */
describe('bench contenders', () => {
  it('each bulwark contender runs 2,000 calls in flight and serial calls without rejecting any', async () => {
    const peers = await loadPeers();
    const all = [...contenders(peers), ...overheadContenders(peers)].filter(
      (c, i, list) =>
        list.findIndex((x) => x.name === c.name) === i && (c.library === 'bulwark' || c.library === 'floor'),
    );
    expect(all.filter((c) => c.library === 'bulwark').length).toBeGreaterThanOrEqual(10);
    for (const c of all) {
      const n = 2_000;
      const inFlight = c.make(async () => 1, n);
      const results = await Promise.allSettled(Array.from({ length: n }, () => inFlight.call()));
      inFlight.dispose();
      const rejected = results.filter((r) => r.status === 'rejected');
      expect(rejected.length, `${c.name}: ${rejected.length} of ${n} rejected`).toBe(0);
      const serial = c.make(async () => 1, 1);
      for (let i = 0; i < 100; i++) await serial.call();
      serial.dispose();
    }
  });

  it('each floor hands the value and the error of its op through unchanged (it is a wrapper, not a shortcut)', async () => {
    expect(FLOORS.map((f) => f.name)).toEqual([
      'floor: one .then',
      'floor: async + await',
      'floor: own promise',
      'floor: own promise + clock',
    ]);
    const boom = new Error('boom');
    for (const f of FLOORS) {
      const ok = f.make(async () => 42, 1);
      await expect(ok.call(), f.name).resolves.toBe(42);
      const failing = f.make(() => Promise.reject(boom), 1);
      await expect(failing.call(), f.name).rejects.toBe(boom);
    }
  });
});
