// Tests written to kill mutants that survived `npm run mutation` in circuit-breaker/circuit-breaker.ts.
import { describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  type CircuitSnapshot,
  circuitBreaker,
  type EventType,
  handleErrors,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, rejectionOf, track } from '../../helpers/deferred.js';

const fail = (message = 'boom') => {
  throw new Error(message);
};

/** Records the given events as plain objects. */
function record(policy: { on(type: EventType, fn: (e: unknown) => void): () => void }, types: EventType[]) {
  const events: Record<string, unknown>[] = [];
  for (const t of types) policy.on(t, (e) => events.push({ ...(e as Record<string, unknown>) }));
  return events;
}

describe('circuitBreaker (mutation)', () => {
  it('a count window smaller than 20 needs only its size in calls by default', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'count', size: 10 }, clock });
    for (let i = 0; i < 9; i++) await rejectionOf(cb.execute(() => fail()));
    expect(cb.state).toBe('closed');
    await rejectionOf(cb.execute(() => fail()));
    expect(cb.state).toBe('open');
  });

  it('counts only the errors its handle selects', async () => {
    const cb = circuitBreaker({
      window: { kind: 'consecutive', threshold: 1 },
      handle: handleErrors((e) => (e as Error).message === 'count me'),
      clock: new FakeClock(),
    });
    await rejectionOf(cb.execute(() => fail('ignore me')));
    expect(cb.state).toBe('closed');
    await rejectionOf(cb.execute(() => fail('count me')));
    expect(cb.state).toBe('open');
  });

  it('a call admitted before a half-open round closed the breaker does not count in the new window', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({
      window: { kind: 'count', size: 2 },
      minimumCalls: 2,
      failureRate: 1,
      halfOpenAfterMs: 100,
      halfOpenProbes: 2,
      clock,
      initialState: {
        version: 1,
        state: 'open',
        openRemainingMs: 0,
        consecutiveOpens: 1,
        lastBreakMs: 100,
        window: { kind: 'count', outcomes: [] },
      },
    });
    const a = deferred<string>();
    const b = deferred<string>();
    const pa = cb.execute(() => a.promise);
    const pb = cb.execute(() => b.promise);
    a.resolve('a');
    await pa;
    expect(cb.state).toBe('closed');
    await rejectionOf(cb.execute(() => fail()));
    b.resolve('b'); // the second probe ends in the new closed state: ignored
    await pb;
    await rejectionOf(cb.execute(() => fail()));
    expect(cb.state).toBe('open');
  });

  it('a call from before the breaker opened cannot close it while it is half-open', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 100, clock });
    const old = deferred<string>();
    const pOld = cb.execute(() => old.promise); // admitted while closed
    await rejectionOf(cb.execute(() => fail())); // opens
    await clock.advance(100);
    const probe = deferred<string>();
    const pProbe = track(cb.execute(() => probe.promise)); // half-open probe
    expect(cb.state).toBe('half_open');
    old.resolve('old');
    await pOld;
    expect(cb.state).toBe('half_open');
    probe.resolve('probe');
    await pProbe.promise;
    expect(cb.state).toBe('closed');
  });

  it('a caller abort of a probe from an expired half-open round does not free a slot of the new round', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({
      window: { kind: 'consecutive', threshold: 1 },
      halfOpenAfterMs: 100,
      halfOpenLeaseMs: 50,
      clock,
    });
    await rejectionOf(cb.execute(() => fail()));
    await clock.advance(100);
    const ac = new AbortController();
    const hung = track(
      cb.execute(
        ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        { signal: ac.signal },
      ),
    );
    await clock.advance(50); // the lease of the hung probe ran out
    const fresh = track(cb.execute(() => new Promise(() => undefined))); // a new round's probe
    ac.abort('caller gone');
    await clock.flush();
    expect(hung.error).toBe('caller gone');
    const third = await rejectionOf(cb.execute(() => 'third'));
    expect(third).toBeInstanceOf(CircuitOpenError);
    expect(fresh.settled).toBe(false);
  });

  it('reports the state a transition came from, with the operation and attempt of the call', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 100, clock });
    const events = record(cb, ['circuit.open', 'circuit.closed']);
    await rejectionOf(cb.execute(() => fail(), { operation: 'op' }));
    await clock.advance(100);
    await rejectionOf(cb.execute(() => fail(), { operation: 'op' }));
    await clock.advance(100);
    await cb.execute(() => 'ok', { operation: 'op' });
    expect(events.map((e) => [e.type, e.from, e.operation, e.attempt])).toEqual([
      ['circuit.open', 'closed', 'op', 1],
      ['circuit.open', 'half_open', 'op', 1],
      ['circuit.closed', 'half_open', 'op', 1],
    ]);
  });

  it('isolate, release and reset report operation "default" and attempt 0', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ name: 'cb', clock });
    const events = record(cb, ['circuit.isolated', 'circuit.closed']);
    const release = cb.isolate();
    release();
    cb.isolate();
    cb.reset();
    expect(events).toEqual([
      { type: 'circuit.isolated', policy: 'cb', operation: 'default', attempt: 0 },
      { type: 'circuit.closed', policy: 'cb', operation: 'default', attempt: 0, from: 'isolated' },
      { type: 'circuit.isolated', policy: 'cb', operation: 'default', attempt: 0 },
      { type: 'circuit.closed', policy: 'cb', operation: 'default', attempt: 0, from: 'isolated' },
    ]);
  });

  it('a snapshot has no open time left unless the breaker is open', async () => {
    const clock = new FakeClock();
    const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 1_000, clock });
    await rejectionOf(cb.execute(() => fail()));
    expect(cb.snapshot().openRemainingMs).toBe(1_000);
    cb.isolate();
    expect(cb.snapshot().openRemainingMs).toBe(0);
  });

  it('a restored isolated breaker stays isolated until reset(), whatever isolate handles are released', () => {
    const state: CircuitSnapshot = {
      version: 1,
      state: 'isolated',
      openRemainingMs: 0,
      consecutiveOpens: 0,
      lastBreakMs: 0,
      window: { kind: 'count', outcomes: [] },
    };
    const isolated = circuitBreaker({ clock: new FakeClock(), initialState: state });
    const release = isolated.isolate();
    release();
    expect(isolated.state).toBe('isolated');
    isolated.reset();
    expect(isolated.state).toBe('closed');

    const closed = circuitBreaker({ clock: new FakeClock(), initialState: { ...state, state: 'closed' } });
    const again = closed.isolate();
    again();
    expect(closed.state).toBe('closed');
  });
});
