/** The in-flight suite: its contenders, and the pipeline's memory targets shown beside the floor of the same run. */
import { describe, expect, it } from 'vitest';
import { FLOOR_OWN_PROMISE, inFlightContenders } from '../../bench/contenders.js';
import { loadPeers } from '../../bench/peers.js';
import { evaluateTargets, type Results } from '../../bench/report.js';
import type { InFlightRow } from '../../bench/suites/in-flight.js';
import { resultsWith } from './results-fixture.js';

const row = (contender: string, bytesOverBare: number): InFlightRow => ({
  contender,
  library: contender.startsWith('floor') ? 'floor' : contender === 'bare' ? 'baseline' : 'bulwark',
  callsPerSec: 1e6,
  timeRatio: 1,
  bytesPerCall: bytesOverBare,
  bytesOverBare,
  gcCount: 0,
});

const run = (rows: InFlightRow[]): Results => resultsWith({ inFlight: rows });

describe('in-flight suite', () => {
  it('runs bare first, then the own-promise floor, then every contender', async () => {
    const names = inFlightContenders(await loadPeers()).map((c) => c.name);
    expect(names.slice(0, 2)).toEqual(['bare', FLOOR_OWN_PROMISE]);
    expect(names).toContain('bulwark pipeline(4)');
    expect(names.filter((n) => n.startsWith('floor'))).toEqual([FLOOR_OWN_PROMISE]);
  });

  it('the floor holds a pending promise of its own per call, as a policy that may settle first must', async () => {
    const floor = inFlightContenders(await loadPeers()).find((c) => c.name === FLOOR_OWN_PROMISE);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const instance = floor?.make(() => gate, 10);
    const call = instance?.call();
    expect(call).toBeInstanceOf(Promise);
    expect(call).not.toBe(gate); // its own promise, not the operation's
    open();
    await expect(call).resolves.toBeUndefined();
  });

  it('shows the floor of the same run beside both pipeline targets and judges the pipeline alone', () => {
    const targets = evaluateTargets(
      run([row('bare', 0), row(FLOOR_OWN_PROMISE, 310), row('bulwark pipeline(4)', 487)]),
    ).filter((t) => t.what.includes('in flight'));
    expect(targets.map((t) => [t.limit, t.measured, t.met, t.by, t.info ?? false])).toEqual([
      ['<= 600 B', '487 B (floor: own promise 310 B)', true, '', false],
      ['<= 300 B', '487 B (floor: own promise 310 B)', false, '187 B over', true],
    ]);
  });

  it('shows the figure alone for a run saved before the floor was measured', () => {
    const targets = evaluateTargets(run([row('bare', 0), row('bulwark pipeline(4)', 558)])).filter((t) =>
      t.what.includes('in flight'),
    );
    expect(targets.map((t) => t.measured)).toEqual(['558 B', '558 B']);
  });
});
