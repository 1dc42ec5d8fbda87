/** The overhead suite's ratio targets with the op that crosses the event loop, shown beside the floors of the run. */
import { describe, expect, it } from 'vitest';
import { evaluateTargets, type Results } from '../../bench/report.js';
import type { OverheadRow } from '../../bench/suites/overhead.js';
import { resultsWith } from './results-fixture.js';

const row = (contender: string, ratio: number): OverheadRow => ({
  contender,
  library: contender.startsWith('floor') ? 'floor' : contender === 'bare' ? 'baseline' : 'bulwark',
  ns: 1_000 * ratio,
  nsMin: 1_000 * ratio,
  nsMax: 1_000 * ratio,
  ratio,
  overheadNs: 1_000 * (ratio - 1),
});

const run = (rows: OverheadRow[]): Results =>
  resultsWith({ overhead: [{ op: 'cross the event loop (setImmediate)', rows }] });

/** bare and the floors a run saved before the clock floor existed has. */
const earlier = (): OverheadRow[] => [
  row('bare', 1),
  row('floor: one .then', 1.06),
  row('floor: async + await', 1.12),
  row('floor: own promise', 1.15),
];

describe('overhead targets, setImmediate op', () => {
  it('shows the floors measured in the same mode beside each ratio (a promise of its own, and with a clock reading, beside the timeout and the pipeline, which may settle a call before its op and keep a deadline), and judges the ratio alone', () => {
    const targets = evaluateTargets(
      run([
        ...earlier(),
        row('floor: own promise + clock', 1.19),
        row('bulwark retry', 1.1),
        row('bulwark timeout', 1.3),
        row('bulwark pipeline(4)', 1.3),
      ]),
    );
    const loop = targets.filter((t) => t.what.includes('setImmediate op, tight loop'));
    expect(loop.map((t) => [t.what.split(',')[0], t.measured, t.met, t.by])).toEqual([
      ['retry alone', '1.10x (floors: one .then 1.06x, async + await 1.12x)', true, ''],
      [
        'timeout alone',
        '1.30x (floors: one .then 1.06x, async + await 1.12x, own promise 1.15x, own promise + clock 1.19x)',
        false,
        '0.20x over',
      ],
      [
        'pipeline(retry',
        '1.30x (floors: one .then 1.06x, async + await 1.12x, own promise 1.15x, own promise + clock 1.19x)',
        true,
        '',
      ],
    ]);
  });

  it('a run saved before the clock floor existed shows the floors it has', () => {
    const targets = evaluateTargets(run([...earlier(), row('bulwark timeout', 1.3)]));
    const timeout = targets.find((t) => t.what.startsWith('timeout alone, setImmediate op'));
    expect(timeout?.measured).toBe('1.30x (floors: one .then 1.06x, async + await 1.12x, own promise 1.15x)');
  });

  it('without floor rows (a run saved before they existed), the ratio alone', () => {
    const targets = evaluateTargets(run([row('bare', 1), row('bulwark retry', 1.2)]));
    const retry = targets.find((t) => t.what.startsWith('retry alone, setImmediate op'));
    expect(retry?.measured).toBe('1.20x');
    expect(retry?.met).toBe(false);
  });
});
