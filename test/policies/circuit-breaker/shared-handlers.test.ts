// The closed-state path of a lean breaker (no slow-call timing, no time window, no result classification) settles
// calls through handlers made once per generation: every success through one shared handler, and the failures of
// calls that cannot abort (no signal, no timeout) and share one operation name and attempt through another. These
// tests hold that path to the rules every call keeps: the generation check, neutral aborts and local rejections,
// a throwing `handle`, and events that name the call's own operation and attempt.
import { describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  type ExecuteOptions,
  handleOutcomes,
  isCircuitOpenError,
  pipeline,
  retry,
} from '../../../src/index.js';
import { deferred, rejectionOf } from '../../helpers/deferred.js';

const fail = () => {
  throw new Error('boom');
};
const ok = () => 'ok';

// Each way a call reaches the closed state: the shared handlers (no options), a failure closure of its own
// (a caller signal; another operation name than the generation's handlers serve).
const CALLS: readonly [string, () => ExecuteOptions | undefined][] = [
  ['no options', () => undefined],
  ['a caller signal', () => ({ signal: new AbortController().signal })],
  ['another operation name', () => ({ operation: 'other' })],
];

describe('circuitBreaker: the shared closed-state handlers', () => {
  describe.each(CALLS)('a call with %s', (_, options) => {
    it('does not record the success of a call admitted under an older closed generation', async () => {
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 } });
      await cb.execute(ok); // the generation's handlers are made by a call without options
      const slow = deferred<string>();
      const stale = cb.execute(() => slow.promise, options());
      cb.reset(); // a new closed generation
      await rejectionOf(cb.execute(fail));
      slow.resolve('stale success');
      await expect(stale).resolves.toBe('stale success');
      // Recorded, the stale success would have cleared the first failure, and this one would not open the breaker.
      await rejectionOf(cb.execute(fail));
      expect(cb.state).toBe('open');
    });

    it('does not record the failure of a call admitted under an older closed generation', async () => {
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 } });
      await cb.execute(ok);
      const slow = deferred<string>();
      const stale = cb.execute(() => slow.promise, options());
      cb.reset();
      await rejectionOf(cb.execute(fail));
      const late = new Error('late');
      slow.reject(late);
      expect(await rejectionOf(stale)).toBe(late);
      expect(cb.state).toBe('closed');
    });

    it('counts a failure of the current generation, and a success clears it', async () => {
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 } });
      await cb.execute(ok);
      await rejectionOf(cb.execute(fail, options()));
      await cb.execute(ok, options());
      await rejectionOf(cb.execute(fail, options()));
      expect(cb.state).toBe('closed');
      await rejectionOf(cb.execute(fail, options()));
      expect(cb.state).toBe('open');
    });

    it("never counts bulwark's own local rejection from inside", async () => {
      const inner = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      await rejectionOf(inner.execute(fail));
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      await cb.execute(ok);
      expect(isCircuitOpenError(await rejectionOf(cb.execute(() => inner.execute(ok), options())))).toBe(true);
      expect(cb.state).toBe('closed');
    });

    it("rejects with a throwing handle predicate's own error, and counts nothing", async () => {
      const oops = new Error('predicate');
      const cb = circuitBreaker({
        window: { kind: 'consecutive', threshold: 1 },
        handle: () => {
          throw oops;
        },
      });
      await cb.execute(ok);
      expect(await rejectionOf(cb.execute(fail, options()))).toBe(oops);
      expect(cb.state).toBe('closed');
    });
  });

  it('names each call its own operation in events, whichever call made the handlers', async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
    const opened: unknown[] = [];
    cb.on('circuit.open', (e) => opened.push(e));
    await cb.execute(ok, { operation: 'first' });
    await rejectionOf(cb.execute(fail));
    cb.reset();
    await cb.execute(ok, { operation: 'first' });
    await rejectionOf(cb.execute(fail, { operation: 'first' }));
    expect(opened).toMatchObject([
      { operation: 'default', attempt: 1 },
      { operation: 'first', attempt: 1 },
    ]);
  });

  it("names a later attempt's number in events when that attempt made the handlers", async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
    const opened: unknown[] = [];
    cb.on('circuit.open', (e) => opened.push(e));
    // Result classification keeps this pipeline layered, so the breaker sees the retry's attempt 2 as a context
    // of its own. Closing the breaker between attempts starts a generation whose handlers attempt 2 makes.
    const p = pipeline(
      retry({
        maxAttempts: 2,
        handle: handleOutcomes((o) => !o.ok),
        backoff: () => {
          cb.reset();
          return 0;
        },
      }),
      cb,
    );
    await rejectionOf(p.execute(fail));
    expect(opened).toMatchObject([
      { operation: 'default', attempt: 1 },
      { operation: 'default', attempt: 2 },
    ]);
  });

  it("names a later attempt's number in events when an earlier attempt made the handlers", async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 } });
    const opened: unknown[] = [];
    cb.on('circuit.open', (e) => opened.push(e));
    const p = pipeline(retry({ maxAttempts: 2, handle: handleOutcomes((o) => !o.ok), backoff: () => 0 }), cb);
    await rejectionOf(p.execute(fail));
    expect(opened).toMatchObject([{ operation: 'default', attempt: 2 }]);
  });

  it('stops using them the moment the state changes: isolated, opened, then closed again', async () => {
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 60_000 });
    expect(await cb.execute(ok)).toBe('ok'); // makes this closed generation's handlers
    const release = cb.isolate();
    // The handlers are still held, but they belong to the closed generation: the next call must be refused.
    const refused = await rejectionOf(cb.execute(ok));
    expect(isCircuitOpenError(refused)).toBe(true);
    release();
    expect(cb.state).toBe('closed');
    expect(await cb.execute(ok)).toBe('ok'); // a new closed generation, new handlers
    await rejectionOf(cb.execute(fail)); // through them: opens at the first failure
    expect(cb.state).toBe('open');
    expect(isCircuitOpenError(await rejectionOf(cb.execute(ok)))).toBe(true);
    cb.reset();
    expect(await cb.execute(ok)).toBe('ok');
    expect(cb.state).toBe('closed');
  });

  it('settles many concurrent calls of one generation through the shared handlers', async () => {
    const cb = circuitBreaker({ window: { kind: 'count', size: 10 }, failureRate: 0.5, minimumCalls: 10 });
    const gates = Array.from({ length: 10 }, () => deferred<number>());
    const calls = gates.map((g) => cb.execute(() => g.promise));
    for (const [i, g] of gates.entries()) {
      if (i < 5) g.resolve(i);
      else g.reject(new Error(`down ${i}`));
    }
    const settled = await Promise.allSettled(calls);
    expect(settled.filter((s) => s.status === 'fulfilled').map((s) => s.value)).toEqual([0, 1, 2, 3, 4]);
    expect(cb.state).toBe('open');
    expect(cb.snapshot().window).toEqual({ kind: 'count', outcomes: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1] });
  });
});
