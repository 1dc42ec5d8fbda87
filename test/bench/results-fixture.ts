/** A bench results record for target tests: the run's metadata, with only the suites a test gives. */
import type { Results } from '../../bench/report.js';

export function resultsWith(suites: Partial<Results>): Results {
  return {
    date: '2026-12-06T00:00:00.000Z',
    quick: false,
    durationSec: 1,
    machine: {},
    versions: {},
    settings: {},
    targets: [],
    ...suites,
  };
}
