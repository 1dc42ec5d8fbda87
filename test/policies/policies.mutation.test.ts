// Tests written to kill mutants that survived `npm run mutation` in fallback, timeout, keyed and bulkhead.
import { describe, expect, it } from 'vitest';
import { bulkhead, type ExecutionCompletedEvent, fallback, keyed, retry, timeout } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';
import { invalidOptions, track } from '../helpers/deferred.js';

const lines = (fn: () => unknown) => {
  const e = invalidOptions(fn);
  return [e.policy, ...e.problems.map((p) => `${p.option}: ${p.expected} (got ${p.received})`)];
};

describe('option validation (mutation)', () => {
  it('options that are not an object are reported once, as options', () => {
    expect(lines(() => fallback(null as never))).toEqual(['fallback', 'options: an object (got null)']);
    expect(lines(() => timeout(null as never))).toEqual(['timeout', 'options: an object (got null)']);
  });

  it('a clock that is not a Clock is named clock', () => {
    const rule = 'clock: a Clock (an object with now(), setTimeout() and clearTimeout()) (got {})';
    expect(lines(() => fallback({ value: 1, clock: {} as never }))).toEqual(['fallback', rule]);
    expect(
      lines(() =>
        keyed(
          () => 'k',
          () => retry(),
          { clock: {} as never },
        ),
      ),
    ).toEqual(['keyed', rule]);
  });
});

describe('fallback (mutation)', () => {
  it('times execution.completed on its own clock', async () => {
    const clock = new FakeClock();
    const policy = fallback({ value: 'fallback', clock });
    const completed: ExecutionCompletedEvent[] = [];
    policy.on('execution.completed', (e) => completed.push(e));
    const p = track(policy.execute(() => new Promise((resolve) => clock.setTimeout(() => resolve('ok'), 250))));
    await clock.advance(250);
    expect(p.value).toBe('ok');
    expect(completed.map((e) => [e.result, e.durationMs])).toEqual([['success', 250]]);
  });
});

describe('bulkhead (mutation)', () => {
  it('dispose() works without a queue timeout', () => {
    const b = bulkhead({ limit: 1 });
    expect(() => b.dispose()).not.toThrow();
    expect(b.disposed).toBe(true);
  });
});
