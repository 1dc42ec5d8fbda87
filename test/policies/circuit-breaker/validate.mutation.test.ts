// Tests written to kill mutants that survived `npm run mutation` in circuit-breaker/validate.ts: every rejected
// option is named exactly, with what was expected, and valid neighbours are accepted.
import { describe, expect, it } from 'vitest';
import { type CircuitBreakerOptions, circuitBreaker, exponential } from '../../../src/index.js';
import { invalidOptions } from '../../helpers/deferred.js';

/** The problems `circuitBreaker(options)` reports, as `option: expected (got received)` lines. */
function problems(options: unknown): string[] {
  return invalidOptions(() => circuitBreaker(options as CircuitBreakerOptions)).problems.map(
    (p) => `${p.option}: ${p.expected} (got ${p.received})`,
  );
}

const snapshot = (overrides: Record<string, unknown> = {}) => ({
  version: 1,
  state: 'closed',
  openRemainingMs: 0,
  consecutiveOpens: 0,
  lastBreakMs: 0,
  window: { kind: 'count', outcomes: [] },
  ...overrides,
});

const bucket = (b: Record<string, unknown> = {}) => ({ ageMs: 0, calls: 1, failures: 0, slow: 0, ...b });
const timeState = (buckets: unknown) =>
  circuitBreaker({ window: { kind: 'time' }, initialState: snapshot({ window: { kind: 'time', buckets } }) as never });

describe('circuitBreaker option validation (mutation)', () => {
  it('names each bad option with its rule', () => {
    expect(problems({ name: '' })).toEqual(['name: a non-empty string (got "")']);
    expect(problems({ window: { kind: 'time', sizeMs: 0 } })).toEqual(['window.sizeMs: a number >= 1 (got 0)']);
    expect(problems({ minimumCalls: 0 })).toEqual(['minimumCalls: an integer >= 1 (got 0)']);
    expect(problems({ minimumCalls: 1.5 })).toEqual(['minimumCalls: an integer >= 1 (got 1.5)']);
    expect(problems({ minimumCalls: Number.POSITIVE_INFINITY })).toEqual([
      'minimumCalls: an integer >= 1 (got Infinity)',
    ]);
    expect(problems({ slowCallMs: 0 })).toEqual(['slowCallMs: a number > 0 (got 0)']);
    expect(problems({ slowCallMs: 10, slowCallRate: 0 })).toEqual(['slowCallRate: a number in (0, 1] (got 0)']);
    expect(problems({ halfOpenSuccesses: 0 })).toEqual(['halfOpenSuccesses: an integer >= 1 (got 0)']);
    expect(problems({ halfOpenSuccesses: 1.5 })).toEqual(['halfOpenSuccesses: an integer >= 1 (got 1.5)']);
    expect(problems({ handle: 1 })).toEqual([
      'handle: a function (error) => boolean, or handleOutcomes(), handleResults(), handleErrors() or handleAllErrors (got 1)',
    ]);
    expect(problems({ random: 1 })).toEqual(['random: a function (got 1)']);
    expect(problems({ clock: {} })).toEqual([
      'clock: a Clock (an object with now(), setTimeout() and clearTimeout()) (got {})',
    ]);
  });

  it('names unknown window keys under window.', () => {
    expect(problems({ window: { kind: 'consecutive', size: 3 } })).toEqual([
      'window.size: a known option (unknown name; allowed: kind, threshold) (got 3)',
    ]);
    expect(problems({ window: { kind: 'count', threshold: 3 } })).toEqual([
      'window.threshold: a known option (unknown name; allowed: kind, size) (got 3)',
    ]);
    expect(problems({ window: { kind: 'time', size: 3 } })).toEqual([
      'window.size: a known option (unknown name; allowed: kind, sizeMs, buckets) (got 3)',
    ]);
  });

  it('checks minimumCalls against the count window size (default 100), and only for count windows', () => {
    expect(problems({ minimumCalls: 150 })).toEqual(['minimumCalls: an integer <= window.size (100) (got 150)']);
    expect(problems({ window: { kind: 'count' }, minimumCalls: 101 })).toEqual([
      'minimumCalls: an integer <= window.size (100) (got 101)',
    ]);
    expect(() => circuitBreaker({ window: { kind: 'count' }, minimumCalls: 100 })).not.toThrow();
    expect(() => circuitBreaker({ window: { kind: 'time' }, minimumCalls: 500 })).not.toThrow();
  });

  it('accepts a backoff as halfOpenAfterMs', () => {
    expect(() => circuitBreaker({ halfOpenAfterMs: exponential() })).not.toThrow();
  });

  it('a window of unknown kind is compared as count when checking initialState', () => {
    expect(
      problems({ window: { kind: 5 }, initialState: snapshot({ window: { kind: 'count', outcomes: [] } }) }),
    ).toEqual([
      "window.kind: one of 'consecutive', 'count', 'time' (got 5)",
      'initialState.window: a window snapshot of kind \'count\' (the breaker\'s window) (got {"kind":"count","outcomes":[]})',
    ]);
  });

  it('rejects an initialState that is not a version 1 snapshot', () => {
    const expected = 'a snapshot from snapshot() (version 1)';
    expect(problems({ initialState: null })).toEqual([`initialState: ${expected} (got null)`]);
    expect(problems({ initialState: 'closed' })).toEqual([`initialState: ${expected} (got "closed")`]);
    expect(problems({ initialState: snapshot({ version: 2 }) })[0]).toMatch(/^initialState: a snapshot from snapshot/);
  });

  it('checks each field of initialState', () => {
    expect(problems({ initialState: snapshot({ state: 'shut' }) })).toEqual([
      "initialState.state: one of 'closed', 'open', 'half_open', 'isolated' (got \"shut\")",
    ]);
    for (const state of ['closed', 'open', 'half_open', 'isolated']) {
      expect(() => circuitBreaker({ initialState: snapshot({ state }) as never })).not.toThrow();
    }
    expect(problems({ initialState: snapshot({ openRemainingMs: -1 }) })).toEqual([
      'initialState.openRemainingMs: a number >= 0 (got -1)',
    ]);
    expect(problems({ initialState: snapshot({ consecutiveOpens: 1.5 }) })).toEqual([
      'initialState.consecutiveOpens: an integer >= 0 (got 1.5)',
    ]);
    expect(problems({ initialState: snapshot({ consecutiveOpens: -1 }) })).toEqual([
      'initialState.consecutiveOpens: an integer >= 0 (got -1)',
    ]);
    expect(problems({ initialState: snapshot({ lastBreakMs: -1 }) })).toEqual([
      'initialState.lastBreakMs: a number >= 0 (got -1)',
    ]);
  });

  it("checks the window snapshot's shape and kind", () => {
    const expected = "a window snapshot of kind 'count' (the breaker's window)";
    expect(problems({ initialState: snapshot({ window: null }) })).toEqual([
      `initialState.window: ${expected} (got null)`,
    ]);
    expect(problems({ initialState: snapshot({ window: 'count' }) })).toEqual([
      `initialState.window: ${expected} (got "count")`,
    ]);
    expect(problems({ initialState: snapshot({ window: { kind: 'time', buckets: [] } }) })).toEqual([
      `initialState.window: ${expected} (got {"kind":"time","buckets":[]})`,
    ]);
    expect(
      problems({ window: { kind: 'consecutive' }, initialState: snapshot({ window: { kind: 'consecutive' } }) }),
    ).toEqual(['initialState.window.failures: an integer >= 0 (got undefined)']);
    expect(() =>
      circuitBreaker({
        window: { kind: 'consecutive' },
        initialState: snapshot({ window: { kind: 'consecutive', failures: 2 } }) as never,
      }),
    ).not.toThrow();
  });

  it('accepts every count outcome code 0..3 and nothing else', () => {
    expect(() =>
      circuitBreaker({ initialState: snapshot({ window: { kind: 'count', outcomes: [0, 1, 2, 3] } }) as never }),
    ).not.toThrow();
    expect(problems({ initialState: snapshot({ window: { kind: 'count', outcomes: [4] } }) })).toEqual([
      'initialState.window.outcomes: an array of outcome codes 0..3 (got an array of 1)',
    ]);
    expect(problems({ initialState: snapshot({ window: { kind: 'count', outcomes: 'x' } }) })).toEqual([
      'initialState.window.outcomes: an array of outcome codes 0..3 (got "x")',
    ]);
  });

  it('checks every time bucket', () => {
    expect(() => timeState([bucket({ calls: 2, failures: 2, slow: 2 }), bucket({ ageMs: 10 })])).not.toThrow();
    const bad = [
      null,
      5,
      bucket({ ageMs: -1 }),
      bucket({ calls: Number.NaN }),
      bucket({ calls: Number.POSITIVE_INFINITY }),
      bucket({ failures: '0' }),
      bucket({ slow: undefined }),
      bucket({ calls: 1, failures: 2 }),
      bucket({ calls: 1, slow: 2 }),
    ];
    for (const b of bad) {
      expect(() => timeState([bucket(), b]), JSON.stringify(b)).toThrow(
        /initialState\.window\.buckets: expected an array of \{ ageMs, calls, failures, slow \} with numbers >= 0/,
      );
    }
  });
});
