// Second round of tests killing mutants that survived `npm run mutation` in retry/retry.ts: result classification
// with a failing first attempt, the edges of a server hint (0 restarts the backoff, a negative one is no hint),
// and primitives thrown as errors (never read as carrying retryable or retryAfterMs).
import { describe, expect, it } from 'vitest';
import { exponential, handleResults, retry } from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { track } from '../../helpers/deferred.js';

/** Runs `fail` failing attempts then a success through retry, and returns the delays retry chose. */
async function delaysFor(error: () => unknown, failures: number): Promise<number[]> {
  const clock = new FakeClock();
  const policy = retry({ backoff: exponential({ initialMs: 100, factor: 2, jitter: 'none' }), maxAttempts: 10, clock });
  const delays: number[] = [];
  policy.on('retry.attempt', (e) => delays.push(e.delayMs));
  let calls = 0;
  const p = track(
    policy.execute(() => {
      if (++calls <= failures) throw error();
      return 'ok';
    }),
  );
  await clock.advance(10_000);
  expect(p.value).toBe('ok');
  expect(calls).toBe(failures + 1);
  return delays;
}

describe('retry (mutation, round 2)', () => {
  it('with result classification, a failing first attempt is retried', async () => {
    const clock = new FakeClock();
    const policy = retry({ handle: handleResults<string>((v) => v === 'busy'), maxAttempts: 4, clock });
    const delays: number[] = [];
    policy.on('retry.attempt', (e) => delays.push(e.delayMs));
    let calls = 0;
    const p = track(
      policy.execute(() => {
        calls++;
        if (calls === 1) throw new Error('down');
        if (calls === 2) return 'busy';
        return 'ok';
      }),
    );
    await clock.advance(60_000);
    expect(p.value).toBe('ok');
    expect(calls).toBe(3);
    expect(delays).toHaveLength(2);
  });

  it('without hints, the exponential backoff grows', async () => {
    expect(await delaysFor(() => new Error('x'), 3)).toEqual([100, 200, 400]);
  });

  it('a hint of 0 ms is a hint: the backoff restarts from its first step after each', async () => {
    expect(await delaysFor(() => Object.assign(new Error('x'), { retryAfterMs: 0 }), 3)).toEqual([100, 100, 100]);
  });

  it('a negative hint is no hint: it neither delays nor restarts the backoff', async () => {
    expect(await delaysFor(() => Object.assign(new Error('x'), { retryAfterMs: -5 }), 3)).toEqual([100, 200, 400]);
    expect(await delaysFor(() => Object.assign(new Error('x'), { retryAfterMs: -1 }), 3)).toEqual([100, 200, 400]);
  });

  it('a thrown primitive is never read as retryable: false or as a hint, even through its prototype', async () => {
    const proto = Number.prototype as unknown as Record<string, unknown>;
    proto.retryable = false;
    proto.retryAfterMs = 0;
    try {
      expect(await delaysFor(() => 7, 3)).toEqual([100, 200, 400]);
    } finally {
      delete proto.retryable;
      delete proto.retryAfterMs;
    }
  });
});
