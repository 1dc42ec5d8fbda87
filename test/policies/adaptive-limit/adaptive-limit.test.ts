import { describe, expect, it } from 'vitest';
import {
  type AdaptiveLimitChangedEvent,
  type AdaptiveLimitPolicy,
  adaptiveLimit,
  BulkheadPolicy,
  BulkheadRejectedError,
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  isBulkheadRejectedError,
  keyed,
  pipeline,
  retry,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import { fuseTail } from '../../../src/policies/fused.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';

/** Every call is its own window: the algorithm sees each sample (the exact tests). */
const PER_CALL = { windowSize: 1, maxWindowMs: 0 } as const;

function changes(p: AdaptiveLimitPolicy) {
  const log: Pick<AdaptiveLimitChangedEvent, 'from' | 'to' | 'reason' | 'operation'>[] = [];
  p.on('adaptive_limit.changed', (e) => log.push({ from: e.from, to: e.to, reason: e.reason, operation: e.operation }));
  return log;
}

/** An operation that takes `ms` on the clock, then resolves or rejects with `error`. */
const slowOp = (clock: FakeClock, ms: number, error?: unknown) => (): Promise<string> =>
  new Promise((resolve, reject) => clock.setTimeout(() => (error === undefined ? resolve('ok') : reject(error)), ms));

describe('adaptiveLimit: the limit', () => {
  it('is a bulkhead whose limit is read-only, starting at Netflix defaults (gradient2, 20)', () => {
    const p = adaptiveLimit();
    expect(p).toBeInstanceOf(BulkheadPolicy);
    expect(p.algorithm).toBe('gradient2');
    expect(p.limit).toBe(20);
    expect(p.estimate).toBe(20);
    expect(p.name).toBe('adaptive_limit');
    expect(() => {
      (p as { limit: number }).limit = 5;
    }).toThrow(TypeError);
    expect(p.limit).toBe(20);
  });

  it('AIMD grows by 1 per call that finds half the limit in use, with an event per change', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: 'aimd', clock, ...PER_CALL });
    const log = changes(p);
    // 10 calls at once: the 10th was admitted with 10 in flight, 10 x 2 >= 20.
    const calls = Array.from({ length: 10 }, () => p.execute(slowOp(clock, 10), { operation: 'get' }));
    await clock.advance(10);
    await Promise.all(calls);
    expect(p.limit).toBe(21);
    expect(log).toEqual([{ from: 20, to: 21, reason: 'growth', operation: 'get' }]);
  });

  it('does not grow while the limit is not used (serial calls)', async () => {
    const clock = new FakeClock();
    for (const algorithm of ['aimd', 'gradient2', 'vegas'] as const) {
      const p = adaptiveLimit({ algorithm, clock, ...PER_CALL });
      for (let i = 0; i < 50; i++) {
        const c = p.execute(slowOp(clock, 10));
        await clock.advance(10);
        await c;
      }
      expect(p.limit, algorithm).toBe(20);
    }
  });

  it('AIMD backs off on a drop; not on the caller abort, a local rejection, or an error handle ignores', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({
      algorithm: 'aimd',
      initialLimit: 100,
      minLimit: 1,
      clock,
      handle: (e) => (e as Error).message !== 'not found',
      ...PER_CALL,
    });
    const log = changes(p);
    const fail = (error: unknown) => rejectionOf(p.execute(() => Promise.reject(error)));
    await fail(new Error('503'));
    expect(p.limit).toBe(90);
    await fail(new Error('not found'));
    await fail(new BulkheadRejectedError('inner', 'full', 1, 0));
    await fail(new CircuitOpenError('breaker', 1_000, 'open'));
    const ac = new AbortController();
    const aborted = p.execute(
      ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      { signal: ac.signal },
    );
    ac.abort(new Error('caller gave up'));
    await rejectionOf(aborted);
    expect(p.limit).toBe(90);
    expect(log).toEqual([{ from: 100, to: 90, reason: 'drop', operation: 'default' }]);
  });

  it('AIMD counts a call slower than slowCallMs as latency', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: 'aimd', initialLimit: 50, minLimit: 1, slowCallMs: 100, clock, ...PER_CALL });
    const log = changes(p);
    const c = p.execute(slowOp(clock, 101));
    await clock.advance(101);
    await c;
    expect(log).toEqual([{ from: 50, to: 45, reason: 'latency', operation: 'default' }]);
  });

  it('a TimeoutError of an inner timeout, or of an outer one, is a drop', async () => {
    const clock = new FakeClock();
    const inner = adaptiveLimit({ algorithm: 'aimd', initialLimit: 50, minLimit: 1, clock, ...PER_CALL });
    const a = track(pipeline(inner, timeout({ ms: 100, clock })).execute(slowOp(clock, 1_000)));
    await clock.advance(100);
    expect(a.error).toBeInstanceOf(TimeoutError);
    await clock.advance(900); // the abandoned work keeps its slot until it ends
    expect(inner.limit).toBe(45);

    const outer = adaptiveLimit({ algorithm: 'aimd', initialLimit: 50, minLimit: 1, clock, ...PER_CALL });
    const b = track(
      pipeline(timeout({ ms: 100, clock }), outer).execute(
        ({ signal }) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))),
      ),
    );
    await clock.advance(100);
    expect(b.error).toBeInstanceOf(TimeoutError);
    expect(outer.limit).toBe(45);
    expect(outer.active).toBe(0);
  });

  it('handleResults makes results drops too', async () => {
    const { handleResults } = await import('../../../src/index.js');
    const p = adaptiveLimit({
      algorithm: 'aimd',
      initialLimit: 50,
      minLimit: 1,
      handle: handleResults<number>((status) => status === 503),
      ...PER_CALL,
    });
    await p.execute(() => 503);
    expect(p.limit).toBe(45);
    await p.execute(() => 200);
    expect(p.limit).toBe(45);
  });

  it('a throwing handle reaches the caller, and the slot is given back', async () => {
    const p = adaptiveLimit({
      handle: () => {
        throw new Error('bad predicate');
      },
      ...PER_CALL,
    });
    await expect(p.execute(() => Promise.reject(new Error('x')))).rejects.toThrow('bad predicate');
    expect(p.active).toBe(0);
  });

  it('gathers samples in windows: one algorithm step per window (windowSize samples, 2 x lowest latency)', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: 'aimd', initialLimit: 50, minLimit: 1, windowSize: 3, minWindowMs: 0, clock });
    const log = changes(p);
    await rejectionOf(p.execute(() => Promise.reject(new Error('a'))));
    await rejectionOf(p.execute(() => Promise.reject(new Error('b'))));
    expect(p.limit).toBe(50);
    await rejectionOf(p.execute(() => Promise.reject(new Error('c'))));
    expect(p.limit).toBe(45); // three drops, one window: one backoff
    expect(log).toHaveLength(1);
  });
});

describe('adaptiveLimit: a bulkhead', () => {
  it('rejects with BulkheadRejectedError naming the policy when full, and queues like a bulkhead', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ name: 'db', initialLimit: 1, minLimit: 1, queue: 1, queueTimeoutMs: 50, clock });
    const rejected: string[] = [];
    p.on('bulkhead.rejected', (e) => rejected.push(`${e.policy}:${e.reason}`));
    const gate = deferred<string>();
    const first = track(p.execute(() => gate.promise));
    const second = track(p.execute(() => 'second'));
    const third = await rejectionOf(p.execute(() => 'third'));
    expect(isBulkheadRejectedError(third)).toBe(true);
    expect((third as Error).message).toContain('"db"');
    expect(p.queued).toBe(1);
    await clock.advance(50);
    expect(isBulkheadRejectedError(second.error)).toBe(true);
    expect(rejected).toEqual(['db:full', 'db:queue_timeout']);
    gate.resolve('first');
    await clock.flush();
    expect(first.value).toBe('first');
    p.dispose();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a lower limit admits nothing until active is below it; a higher one starts queued calls at once', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({
      algorithm: 'aimd',
      initialLimit: 3,
      minLimit: 1,
      maxLimit: 4,
      queue: 10,
      clock,
      ...PER_CALL,
    });
    const gates = [deferred<string>(), deferred<string>(), deferred<string>()];
    const running = gates.map((g) => track(p.execute(() => g.promise)));
    const queued = track(p.execute(() => 'queued'));
    expect(p.queued).toBe(1);
    gates[0]?.reject(new Error('drop')); // floor(3 x 0.9) = 2: with 2 running, the queued call waits
    await clock.flush();
    expect(p.limit).toBe(2);
    expect(queued.settled).toBe(false);
    gates[1]?.resolve('ok'); // in flight 2 at admission, 2 x 2 >= 2: +1 = 3; active 1 < 3: the queued call runs
    await clock.flush();
    expect(queued.value).toBe('queued');
    expect(p.limit).toBe(4); // the queued call's own sample: in flight 2, 2 x 2 >= 3: +1 = 4 (max)
    gates[2]?.resolve('ok');
    await Promise.all(running.map((r) => r.promise.catch(() => undefined)));
  });

  it('composes in pipeline and keyed; a pipeline around it runs layered, never fuses it as a bulkhead', async () => {
    const clock = new FakeClock();
    const limit = adaptiveLimit({ clock });
    const t = timeout({ ms: 100, clock });
    const r = retry({ clock });
    expect(fuseTail([r, t, limit])).toBeUndefined();
    expect(fuseTail([r, t, bulkhead({ limit: 2 })])).toBeDefined();
    expect(fuseTail([limit, r, t])?.start).toBe(1);
    const p = pipeline(r, circuitBreaker({ clock }), t, limit);
    expect(await p.execute(() => 'ok')).toBe('ok');
    const perTenant = keyed(
      (ctx) => ctx.operation,
      () => adaptiveLimit({ clock }),
    );
    expect(await perTenant.execute(() => 1, { operation: 'a' })).toBe(1);
    expect(perTenant.values().map((q) => q.limit)).toEqual([20]);
  });
});

describe('adaptiveLimit: options', () => {
  it('rejects hostile options with one InvalidOptionsError naming each option, value and what is allowed', () => {
    const e = invalidOptions(() => adaptiveLimit({ minLimit: 50, maxLimit: 10 }));
    expect(e.message).toContain('adaptiveLimit');
    expect(e.problems).toEqual([{ option: 'minLimit', received: '50', expected: 'an integer <= maxLimit (10)' }]);
    expect(invalidOptions(() => adaptiveLimit({ initialLimit: 300, maxLimit: 200 })).problems[0]?.option).toBe(
      'initialLimit',
    );
    expect(invalidOptions(() => adaptiveLimit({ initialLimit: 5, minLimit: 10 })).problems).toEqual([
      { option: 'initialLimit', received: '5', expected: 'an integer in [minLimit, maxLimit], here [10, 200]' },
    ]);
    expect(invalidOptions(() => adaptiveLimit({ minLimit: Number.NaN })).problems[0]).toMatchObject({
      option: 'minLimit',
      received: 'NaN',
    });
    for (const backoffRatio of [0, 1, 1.5, -0.1, Number.NaN]) {
      expect(invalidOptions(() => adaptiveLimit({ algorithm: 'aimd', backoffRatio })).problems).toEqual([
        { option: 'backoffRatio', received: String(backoffRatio), expected: 'a number in (0, 1), both excluded' },
      ]);
    }
    const unknown = invalidOptions(() => adaptiveLimit({ algorithm: 'aimd', smoothing: 0.5 } as never)).problems[0];
    expect(unknown?.option).toBe('smoothing');
    expect(unknown?.expected).toContain('allowed: algorithm');
    expect(unknown?.expected).toContain('backoffRatio');
    expect(invalidOptions(() => adaptiveLimit({ algorithm: 'bbr' } as never)).problems[0]).toMatchObject({
      option: 'algorithm',
      expected: "one of 'gradient2', 'aimd', 'vegas'",
    });
    expect(
      invalidOptions(() => adaptiveLimit({ rttTolerance: 0.9, smoothing: 0, longWindow: 0.5 })).problems.map(
        (p) => p.option,
      ),
    ).toEqual(['smoothing', 'longWindow', 'rttTolerance']);
    expect(invalidOptions(() => adaptiveLimit({ minWindowMs: 500, maxWindowMs: 100 })).problems[0]?.option).toBe(
      'maxWindowMs',
    );
    expect(invalidOptions(() => adaptiveLimit(null as never)).problems[0]?.option).toBe('options');
  });

  it('default bounds yield to the ones given', () => {
    expect(adaptiveLimit({ maxLimit: 10 }).limit).toBe(10);
    expect(adaptiveLimit({ initialLimit: 5 }).limit).toBe(5);
    expect(adaptiveLimit({ minLimit: 300 }).limit).toBe(300);
    expect(adaptiveLimit({ algorithm: 'vegas', initialLimit: 1 }).limit).toBe(1);
  });
});
