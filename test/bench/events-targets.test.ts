/** The events suite's targets: each metrics adapter's cost per observed call over the same pipeline unobserved. */
import { describe, expect, it } from 'vitest';
import { evaluateTargets, type Results } from '../../bench/report.js';
import { EVENTS_CASES } from '../../bench/suites/events.js';
import { resultsWith } from './results-fixture.js';

const run = (rows: [string, number][]): Results =>
  resultsWith({ events: rows.map(([name, over]) => ({ case: name, ns: 1_000 + over, overNoListenerNs: over })) });

describe('events targets', () => {
  it('Prometheus <= +300 ns and OpenTelemetry <= +600 ns per call over no listener, attached and process-wide', () => {
    const targets = evaluateTargets(
      run([
        [EVENTS_CASES.none, 0],
        [EVENTS_CASES.everyEvent, 250],
        [EVENTS_CASES.otelRecords, 2_000],
        [EVENTS_CASES.otelAttached, 600],
        [EVENTS_CASES.otelAll, 3_600],
        [EVENTS_CASES.promAttached, 300],
        [EVENTS_CASES.promAll, 301],
      ]),
    );
    expect(targets.map((t) => [t.what, t.limit, t.measured, t.met, t.by])).toEqual([
      ['prometheusMetrics attached to the full pipeline, per call over no listener', '<= +300 ns', '+300 ns', true, ''],
      [
        'prometheusMetrics process-wide (attachAll), per call over no listener',
        '<= +300 ns',
        '+301 ns',
        false,
        '1 ns over',
      ],
      [
        'openTelemetryMetrics attached to the full pipeline, per call over no listener',
        '<= +600 ns',
        "+600 ns (SDK's 2 records alone: +2000 ns)",
        true,
        '',
      ],
      [
        'openTelemetryMetrics process-wide (attachAll), per call over no listener',
        '<= +600 ns',
        "+3600 ns (SDK's 2 records alone: +2000 ns)",
        false,
        '3000 ns over',
      ],
    ]);
  });

  it('no events rows, no events targets', () => {
    expect(evaluateTargets(run([]))).toEqual([]);
  });
});
