// Second round of tests killing mutants that survived `npm run mutation` in circuit-breaker/validate.ts: exact
// problem lists for non-object windows, throwing getters, the count window's size limit and snapshot shapes.
import { describe, expect, it } from 'vitest';
import { type CircuitBreakerOptions, circuitBreaker, exponential } from '../../../src/index.js';
import { MAX_COUNT_WINDOW } from '../../../src/policies/circuit-breaker/validate.js';
import { invalidOptions } from '../../helpers/deferred.js';

function problems(options: unknown): string[] {
  return invalidOptions(() => circuitBreaker(options as CircuitBreakerOptions)).problems.map(
    (p) => `${p.option}: ${p.expected} (got ${p.received})`,
  );
}

const options = (p: string[]) => p.map((line) => line.slice(0, line.indexOf(':')));

const snapshot = (overrides: Record<string, unknown> = {}) => ({
  version: 1,
  state: 'closed',
  openRemainingMs: 0,
  consecutiveOpens: 0,
  lastBreakMs: 0,
  window: { kind: 'count', outcomes: [] },
  ...overrides,
});

/** An object whose `key` getter throws. */
function throwing(base: Record<string, unknown>, key: string): Record<string, unknown> {
  return Object.defineProperty({ ...base }, key, {
    enumerable: true,
    get() {
      throw new Error(`no ${key}`);
    },
  });
}

describe('circuitBreaker option validation (mutation, round 2)', () => {
  it('a window that is not an object is one problem, named window', () => {
    expect(problems({ window: 5 })).toEqual(["window: an object such as { kind: 'count', size: 100 } (got 5)"]);
    expect(problems({ window: 'count' })).toEqual([
      'window: an object such as { kind: \'count\', size: 100 } (got "count")',
    ]);
    expect(problems({ window: null })).toEqual(["window: an object such as { kind: 'count', size: 100 } (got null)"]);
  });

  it('a window whose getter throws is one problem, named window, whichever field throws', () => {
    const bases: Record<string, Record<string, unknown>> = {
      kind: { kind: 'count', size: 10 },
      threshold: { kind: 'consecutive', threshold: 3 },
      size: { kind: 'count', size: 10 },
      sizeMs: { kind: 'time', sizeMs: 1000, buckets: 10 },
      buckets: { kind: 'time', sizeMs: 1000, buckets: 10 },
    };
    for (const [key, base] of Object.entries(bases)) {
      const p = problems({ window: throwing(base, key) });
      expect(options(p), key).toEqual(['window']);
      expect(p[0], key).toContain('window: a value whose fields can be read (reading one threw)');
    }
  });

  it('a count window holds at most MAX_COUNT_WINDOW calls', () => {
    expect(MAX_COUNT_WINDOW).toBe(1_000_000);
    expect(() => circuitBreaker({ window: { kind: 'count', size: MAX_COUNT_WINDOW }, minimumCalls: 1 })).not.toThrow();
    expect(problems({ window: { kind: 'count', size: MAX_COUNT_WINDOW + 1 }, minimumCalls: 1 })).toEqual([
      'window.size: an integer <= 1000000 (one byte per call, allocated up front) (got 1000001)',
    ]);
    // An oversized window cannot judge minimumCalls: only the size is reported.
    expect(problems({ window: { kind: 'count', size: MAX_COUNT_WINDOW + 1 }, minimumCalls: 2_000_000 })).toEqual([
      'window.size: an integer <= 1000000 (one byte per call, allocated up front) (got 1000001)',
    ]);
  });

  it('an invalid window.size does not judge minimumCalls against the default size', () => {
    expect(problems({ window: { kind: 'count', size: 0 }, minimumCalls: 200 })).toEqual([
      'window.size: an integer >= 1 (got 0)',
    ]);
    expect(problems({ window: { kind: 'count', size: 50 }, minimumCalls: 51 })).toEqual([
      'minimumCalls: an integer <= window.size (50) (got 51)',
    ]);
  });

  it('minimumCalls is not limited for time windows or windows of unknown kind', () => {
    expect(() =>
      circuitBreaker({ window: { kind: 'time', sizeMs: 1000, buckets: 10 }, minimumCalls: 500 }),
    ).not.toThrow();
    expect(problems({ window: { kind: 'slot' }, minimumCalls: 500 })).toEqual([
      "window.kind: one of 'consecutive', 'count', 'time' (got \"slot\")",
    ]);
  });

  it('a backoff halfOpenAfterMs is accepted; a bad number is reported', () => {
    expect(() => circuitBreaker({ halfOpenAfterMs: exponential({ initialMs: 10 }) })).not.toThrow();
    expect(problems({ halfOpenAfterMs: -1 })).toEqual(['halfOpenAfterMs: a number >= 0 (got -1)']);
  });

  it('an initialState whose getter throws is one problem, named initialState', () => {
    const p = problems({ initialState: throwing(snapshot(), 'state') });
    expect(options(p)).toEqual(['initialState']);
    expect(p[0]).toContain('initialState: a value whose fields can be read (reading one threw)');
  });

  it('a snapshot of another version is one problem, whatever its fields', () => {
    const p = problems({ initialState: snapshot({ version: 2, state: 'shut' }) });
    expect(options(p)).toEqual(['initialState']);
    expect(p[0]).toMatch(/^initialState: a snapshot from snapshot\(\) \(version 1\) \(got \{"version":2,/);
  });

  it('a window snapshot of another kind is one problem', () => {
    expect(options(problems({ initialState: snapshot({ window: { kind: 'consecutive', failures: 'x' } }) }))).toEqual([
      'initialState.window',
    ]);
  });

  it('a window snapshot that is not an object is rejected, also when the window kind is unknown', () => {
    expect(problems({ window: { kind: 5 }, initialState: snapshot({ window: 7 }) })).toEqual([
      "window.kind: one of 'consecutive', 'count', 'time' (got 5)",
      "initialState.window: a window snapshot of kind 'count' (the breaker's window) (got 7)",
    ]);
  });

  it('time buckets must be objects with numbers >= 0', () => {
    const time = { kind: 'time', sizeMs: 1000, buckets: 10 };
    const state = (buckets: unknown) => ({
      window: time,
      initialState: snapshot({ window: { kind: 'time', buckets } }),
    });
    expect(options(problems(state([null])))).toEqual(['initialState.window.buckets']);
    expect(options(problems(state([5])))).toEqual(['initialState.window.buckets']);
    expect(options(problems(state([{ ageMs: -1, calls: 1, failures: 0, slow: 0 }])))).toEqual([
      'initialState.window.buckets',
    ]);
    expect(options(problems(state([{ ageMs: 0, calls: 1, failures: 0, slow: Number.NaN }])))).toEqual([
      'initialState.window.buckets',
    ]);
    expect(options(problems(state([{ ageMs: 0, calls: 1, failures: 0, slow: '0' }])))).toEqual([
      'initialState.window.buckets',
    ]);
    expect(() =>
      circuitBreaker(state([{ ageMs: 0, calls: 2, failures: 1, slow: 1 }]) as CircuitBreakerOptions),
    ).not.toThrow();
  });
});
