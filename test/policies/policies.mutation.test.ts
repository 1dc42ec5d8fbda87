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
  it('a call made by an operation the queue just started waits behind the calls queued before it', async () => {
    const b = bulkhead({ limit: 1, queue: 5 });
    const order: string[] = [];
    const hold = b.execute(() => new Promise<void>((resolve) => setImmediate(resolve)));
    let inner: Promise<unknown> | undefined;
    void b.execute(() => {
      order.push('w1');
      inner = b.execute(() => order.push('inner'));
      return new Promise<void>(() => undefined);
    });
    void b.execute(() => {
      order.push('w2');
      return new Promise<void>(() => undefined);
    });
    b.limit = 3; // frees two slots: w1 starts, queues its inner call, and w2 takes the last slot
    expect(order).toEqual(['w1', 'w2']);
    expect(b.active).toBe(3);
    expect(b.queued).toBe(1);
    await hold;
    await inner;
    expect(order).toEqual(['w1', 'w2', 'inner']);
  });

  it('dispose() works without a queue timeout', () => {
    const b = bulkhead({ limit: 1 });
    expect(() => b.dispose()).not.toThrow();
    expect(b.disposed).toBe(true);
  });
});
