/** The end-to-end suites' rounds: every measured run follows an unmeasured lead-in of the same contender. */
import { describe, expect, it } from 'vitest';
import { type LoadResult, loadRounds, withLeadIn } from '../../bench/harness.js';

describe('withLeadIn', () => {
  it('runs the lead-in of a contender right before each of its measured runs, and reports the measured run only', async () => {
    const log: string[] = [];
    const result = (done: number): LoadResult => ({ done, seconds: 1, p50: 1, p99: 2 });
    const load = withLeadIn(
      async (c: { name: string }) => {
        log.push(`measure ${c.name}`);
        return result(c.name === 'bare' ? 100 : 80);
      },
      async (c) => {
        log.push(`lead-in ${c.name}`);
      },
    );
    const rows = await loadRounds([{ name: 'bare' }, { name: 'x' }], 2, () => '', load);
    expect(log).toEqual([
      'lead-in bare',
      'measure bare',
      'lead-in x',
      'measure x',
      // Round 2 runs in reverse order: still each lead-in right before its own contender.
      'lead-in x',
      'measure x',
      'lead-in bare',
      'measure bare',
    ]);
    expect(rows.map((r) => [r.contender, r.done, r.throughputRatio])).toEqual([
      ['bare', 100, 1],
      ['x', 80, 0.8],
    ]);
  });
});
