/** The overload suite's targets (issue #14): budgets bound amplification at 3C, keep goodput, hedging cuts p99. */
import { describe, expect, it } from 'vitest';
import { evaluateTargets, overloadSvg, type Results } from '../../bench/report.js';
import {
  HEDGE_CONFIG,
  hedgeModel,
  OVERLOAD_CONFIG,
  OVERLOAD_SCENARIO,
  type OverloadRow,
  overloadModel,
} from '../../bench/suites/overload.js';
import { resultsWith } from './results-fixture.js';

const row = (scenario: string, config: string, load: number, amplification: number, goodput: number): OverloadRow => ({
  scenario,
  config,
  load,
  offeredPerSec: load * 1_000,
  goodputPerSec: goodput * 1_000,
  goodputOfCapacity: goodput,
  p50Ms: 10,
  p99Ms: 100,
  amplification,
  failed503: 0,
  failedTimeout: 0,
  failedLocal: 0,
  wasted: 0,
});

const run = (rows: OverloadRow[], hedge: [number, number, number]): Results =>
  resultsWith({
    overload: {
      model: overloadModel({ quick: false } as never),
      hedgeModel: hedgeModel({ quick: false } as never),
      rows,
      hedge: [
        { config: HEDGE_CONFIG.none, calls: 100, p50Ms: 10, p99Ms: hedge[0], p999Ms: 500, extraCalls: 0 },
        { config: HEDGE_CONFIG.p95, calls: 100, p50Ms: 10, p99Ms: hedge[1], p999Ms: 30, extraCalls: hedge[2] },
      ],
    },
  });

describe('overload targets', () => {
  it('judges the budgets at the highest load on both upstreams, goodput on the fail-fast one, and hedging', () => {
    const { failFast, deepQueue } = OVERLOAD_SCENARIO;
    const targets = evaluateTargets(
      run(
        [
          row(failFast, OVERLOAD_CONFIG.retry, 3, 2.7, 0.9),
          row(failFast, OVERLOAD_CONFIG.retryBudget, 2, 1.5, 0.5),
          row(failFast, OVERLOAD_CONFIG.retryBudget, 3, 1.2, 0.899),
          row(deepQueue, OVERLOAD_CONFIG.retryBudget, 3, 1.4, 0.3),
          row(failFast, OVERLOAD_CONFIG.retryTokenBudget, 3, 1, 0.95),
        ],
        [500, 100, 0.051],
      ),
    );
    expect(targets.map((t) => [t.what, t.limit, t.measured, t.met, t.by])).toEqual([
      [
        'overload, fail-fast upstream, retry + retryBudget() at 3C: upstream requests / offered calls',
        '<= 1.20x',
        '1.20x',
        true,
        '',
      ],
      [
        'overload, fail-fast upstream, retry + retryBudget() at 3C: goodput, share of capacity',
        '>= 90.0 %',
        '89.9 %',
        false,
        '0.1 points under',
      ],
      [
        'overload, deep-queue upstream, retry + retryBudget() at 3C: upstream requests / offered calls',
        '<= 1.20x',
        '1.40x',
        false,
        '0.20x over',
      ],
      [
        'overload, fail-fast upstream, retry + retryTokenBudget() at 3C: upstream requests / offered calls',
        '<= 1.20x',
        '1.00x',
        true,
        '',
      ],
      [
        'overload, fail-fast upstream, retry + retryTokenBudget() at 3C: goodput, share of capacity',
        '>= 90.0 %',
        '95.0 %',
        true,
        '',
      ],
      ['hedging at the learned p95: p99 without / with hedging', '>= 5.00x', '5.00x', true, ''],
      ['hedging at the learned p95: extra upstream calls', '<= 5.0 %', '5.1 %', false, '0.1 points over'],
    ]);
  });

  it('shows a miss smaller than the precision of the table with the digits that reveal it, never as 0.00x over', () => {
    const { deepQueue } = OVERLOAD_SCENARIO;
    const targets = evaluateTargets(
      run([row(deepQueue, OVERLOAD_CONFIG.retryBudget, 3, 1.2002334, 0.2)], [500, 100, 0.01]),
    );
    const amplification = targets.find((t) => t.what.startsWith('overload, deep-queue upstream'));
    expect([amplification?.measured, amplification?.met, amplification?.by]).toEqual([
      '1.2002x',
      false,
      '0.0002x over',
    ]);
  });

  it('draws a line per configuration and upstream in the chart', () => {
    const svg = overloadSvg([
      run(
        [
          row(OVERLOAD_SCENARIO.failFast, OVERLOAD_CONFIG.retry, 0.5, 1, 0.5),
          row(OVERLOAD_SCENARIO.failFast, OVERLOAD_CONFIG.retry, 3, 2.7, 0.9),
          row(OVERLOAD_SCENARIO.deepQueue, OVERLOAD_CONFIG.retry, 0.5, 1, 0.5),
          row(OVERLOAD_SCENARIO.deepQueue, OVERLOAD_CONFIG.retry, 3, 3, 0.3),
        ],
        [500, 20, 0.01],
      ),
    ]);
    expect(svg.match(/<polyline /g)).toHaveLength(4);
    expect(svg).toContain('deep-queue upstream');
    expect(svg).toContain('>retry<');
  });

  it('no overload run, no overload targets', () => {
    const { overload: _, ...rest } = run([], [1, 1, 0]);
    expect(evaluateTargets(rest)).toEqual([]);
  });
});
