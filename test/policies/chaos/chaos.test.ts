import { describe, expect, it } from 'vitest';
import {
  type ChaosInjectedEvent,
  ChaosPolicy,
  circuitBreaker,
  constant,
  fallback,
  injectBehavior,
  injectFault,
  injectLatency,
  injectOutcome,
  keyed,
  Properties,
  PropertyKey,
  pipeline,
  retry,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf, track } from '../../helpers/deferred.js';
import { scriptedRandom } from '../../helpers/scripted-random.js';

/** An operation that counts its runs. */
function counted<T>(value: T) {
  const runs = { n: 0 };
  const op = (): T => {
    runs.n++;
    return value;
  };
  return { runs, op };
}

describe('fault injection: shared options', () => {
  it('requires injectionRate and the kind’s own option, and reports every problem at once', () => {
    const e = invalidOptions(() => injectFault({} as never));
    expect(e.message).toContain('injectFault');
    expect(e.problems.map((p) => p.option).sort()).toEqual(['fault', 'injectionRate']);
    expect(invalidOptions(() => injectLatency(undefined as never)).problems.map((p) => p.option)).toEqual([
      'latencyMs',
      'injectionRate',
    ]);
    const bad = invalidOptions(() =>
      injectLatency({
        latencyMs: -1,
        injectionRate: 1.5,
        enabled: 'yes',
        name: '',
        clock: {},
        random: 1,
        extra: 0,
      } as never),
    );
    expect(bad.problems.map((p) => p.option).sort()).toEqual([
      'clock',
      'enabled',
      'extra',
      'injectionRate',
      'latencyMs',
      'name',
      'random',
    ]);
    expect(bad.problems.find((p) => p.option === 'injectionRate')?.expected).toBe('a number in [0, 1]');
    expect(invalidOptions(() => injectLatency({ latencyMs: Number.NaN, injectionRate: 1 })).problems[0]?.option).toBe(
      'latencyMs',
    );
    expect(
      invalidOptions(() => injectOutcome({ outcome: { value: 1 } as never, injectionRate: 1 })).problems[0]?.option,
    ).toBe('outcome');
    expect(invalidOptions(() => injectBehavior({ behavior: 1 as never, injectionRate: 1 })).problems[0]?.option).toBe(
      'behavior',
    );
    expect(invalidOptions(() => injectFault({ fault: new Error('x') } as never)).problems[0]).toMatchObject({
      option: 'injectionRate',
      expected: 'a number in [0, 1] (required)',
    });
  });

  it('an outcome whose reads throw is refused as an outcome, not rethrown', () => {
    const exploding = new Proxy(
      {},
      {
        get() {
          throw new Error('boom');
        },
      },
    );
    const getter = {
      get ok(): boolean {
        throw new Error('boom');
      },
    };
    for (const outcome of [exploding, getter]) {
      const e = invalidOptions(() => injectOutcome({ outcome: outcome as never, injectionRate: 1, name: '' }));
      expect(e.problems.map((p) => p.option)).toEqual(['outcome', 'name']);
    }
  });

  it('has a name per kind and exposes kind and injectionRate', () => {
    const f = injectFault({ fault: new Error('x'), injectionRate: 0.5 });
    expect(f).toBeInstanceOf(ChaosPolicy);
    expect([f.name, f.kind, f.injectionRate]).toEqual(['chaos-fault', 'fault', 0.5]);
    expect(injectLatency({ latencyMs: 1, injectionRate: 0 }).name).toBe('chaos-latency');
    expect(injectOutcome({ outcome: { ok: true, value: 1 }, injectionRate: 0 }).name).toBe('chaos-outcome');
    expect(injectBehavior({ behavior: () => undefined, injectionRate: 0, name: 'b' }).name).toBe('b');
  });

  it('injects when the draw is below injectionRate; 0 and 1 decide without a draw', async () => {
    const random = scriptedRandom(0.29, 0.3, 0.7);
    const boom = new Error('chaos');
    const f = injectFault({ fault: boom, injectionRate: 0.3, random });
    const { runs, op } = counted('ok');
    expect(await rejectionOf(f.execute(op))).toBe(boom);
    await expect(f.execute(op)).resolves.toBe('ok'); // 0.3 is not below 0.3
    await expect(f.execute(op)).resolves.toBe('ok');
    expect(runs.n).toBe(2);
    expect(random.left).toBe(0);

    const never = injectFault({ fault: boom, injectionRate: 0, random });
    const always = injectFault({ fault: boom, injectionRate: 1, random });
    await expect(never.execute(op)).resolves.toBe('ok');
    await expect(always.execute(op)).rejects.toBe(boom);
    expect(random.taken).toBe(3);
  });

  it('injects nothing and draws nothing while disabled; a function decides per call', async () => {
    const random = scriptedRandom(0);
    const FLAG = new PropertyKey<boolean>('chaos');
    const seen: unknown[] = [];
    const f = injectFault({
      fault: new Error('chaos'),
      injectionRate: 0.5,
      random,
      enabled: (ctx) => {
        seen.push(ctx.operation);
        return ctx.properties.get(FLAG) === true;
      },
    });
    await expect(f.execute(() => 'ok', { operation: 'off' })).resolves.toBe('ok');
    expect(random.taken).toBe(0);
    const on = new Properties().set(FLAG, true);
    await expect(f.execute(() => 'ok', { operation: 'on', properties: on })).rejects.toThrow('chaos');
    expect(seen).toEqual(['off', 'on']);
    expect(random.taken).toBe(1);

    const off = injectFault({ fault: new Error('chaos'), injectionRate: 1, enabled: false, random });
    await expect(off.execute(() => 'ok')).resolves.toBe('ok');

    const boom = new Error('flag service down');
    const throwing = injectFault({
      fault: new Error('chaos'),
      injectionRate: 1,
      enabled: () => {
        throw boom;
      },
    });
    expect(await rejectionOf(throwing.execute(() => 'ok'))).toBe(boom);
  });
});

describe('injectFault', () => {
  it('rejects with the fault (or a fresh one per call) without running the operation, and emits chaos.injected', async () => {
    let n = 0;
    const f = injectFault({ fault: (ctx) => new Error(`chaos ${++n} ${ctx.operation}`), injectionRate: 1 });
    const events: ChaosInjectedEvent[] = [];
    f.on('chaos.injected', (e) => events.push(e));
    const { runs, op } = counted('ok');
    await expect(f.execute(op, { operation: 'get' })).rejects.toThrow('chaos 1 get');
    await expect(f.execute(op, { operation: 'get' })).rejects.toThrow('chaos 2 get');
    expect(runs.n).toBe(0);
    expect(events).toEqual([
      { type: 'chaos.injected', policy: 'chaos-fault', operation: 'get', attempt: 1, kind: 'fault' },
      { type: 'chaos.injected', policy: 'chaos-fault', operation: 'get', attempt: 1, kind: 'fault' },
    ]);
    const odd = injectFault({ fault: 'a string', injectionRate: 1 });
    expect(await rejectionOf(odd.execute(op))).toBe('a string');
  });

  it('is seen by the policies outside it as the upstream’s failure', async () => {
    const clock = new FakeClock();
    const random = scriptedRandom(0.1, 0.9);
    const events: ChaosInjectedEvent[] = [];
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: constant(0), clock }),
      circuitBreaker({ window: { kind: 'consecutive', threshold: 5 }, clock }),
      injectFault({ fault: () => new Error('chaos'), injectionRate: 0.5, random }),
    );
    p.on('chaos.injected', (e) => events.push(e));
    await expect(p.execute(() => 'ok')).resolves.toBe('ok');
    expect(events.map((e) => e.attempt)).toEqual([1]);
    const fb = pipeline(fallback({ value: 'cached' }), injectFault({ fault: new Error('x'), injectionRate: 1 }));
    await expect(fb.execute(() => 'live')).resolves.toBe('cached');
  });
});

describe('injectLatency', () => {
  it('waits exactly latencyMs on the clock before running the operation', async () => {
    const clock = new FakeClock();
    const l = injectLatency({ latencyMs: 250, injectionRate: 1, clock });
    const events: ChaosInjectedEvent[] = [];
    l.on('chaos.injected', (e) => events.push(e));
    const { runs, op } = counted('ok');
    const call = track(l.execute(op));
    await clock.advance(249);
    expect([call.settled, runs.n]).toEqual([false, 0]);
    await clock.advance(1);
    expect([call.settled, call.value, runs.n]).toEqual([true, 'ok', 1]);
    expect(events).toEqual([
      {
        type: 'chaos.injected',
        policy: 'chaos-latency',
        operation: 'default',
        attempt: 1,
        kind: 'latency',
        latencyMs: 250,
      },
    ]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('takes the delay from a function of the call, and rejects a bad one with a TypeError', async () => {
    const clock = new FakeClock();
    const l = injectLatency({ latencyMs: (ctx) => (ctx.operation === 'slow' ? 1_000 : 10), injectionRate: 1, clock });
    const fast = track(l.execute(() => 'fast', { operation: 'fast' }));
    const slow = track(l.execute(() => 'slow', { operation: 'slow' }));
    await clock.advance(10);
    expect([fast.settled, slow.settled]).toEqual([true, false]);
    await clock.advance(990);
    expect(slow.value).toBe('slow');

    const bad = injectLatency({ latencyMs: () => Number.NaN, injectionRate: 1, clock });
    const e = await rejectionOf(bad.execute(() => 'x'));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toBe(
      'injectLatency "chaos-latency": the latencyMs function returned NaN; expected a finite number >= 0',
    );
  });

  it('rejects at once with the caller’s reason when the call aborts during the delay, leaving no timer', async () => {
    const clock = new FakeClock();
    const l = injectLatency({ latencyMs: 5_000, injectionRate: 1, clock });
    const ac = new AbortController();
    const { runs, op } = counted('ok');
    const call = track(l.execute(op, { signal: ac.signal }));
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(1);
    const reason = new Error('caller gave up');
    ac.abort(reason);
    await clock.flush();
    expect([call.settled, call.error]).toEqual([true, reason]);
    expect(clock.pendingTimers).toBe(0);
    expect(runs.n).toBe(0);
  });

  it('makes an outer timeout fire', async () => {
    const clock = new FakeClock();
    const p = pipeline(timeout({ ms: 100, clock }), injectLatency({ latencyMs: 1_000, injectionRate: 1, clock }));
    const { runs, op } = counted('ok');
    const call = track(p.execute(op));
    await clock.advance(100);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(runs.n).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('injectOutcome', () => {
  it('settles with the outcome instead of running the operation', async () => {
    const { runs, op } = counted<{ status: number }>({ status: 200 });
    const res = injectOutcome({ outcome: { ok: true, value: { status: 503 } }, injectionRate: 1 });
    await expect(res.execute(op)).resolves.toEqual({ status: 503 });
    const err = new Error('injected');
    const rej = injectOutcome({ outcome: () => ({ ok: false, error: err }), injectionRate: 1 });
    expect(await rejectionOf(rej.execute(op))).toBe(err);
    expect(runs.n).toBe(0);
    const events: ChaosInjectedEvent[] = [];
    res.on('chaos.injected', (e) => events.push(e));
    await res.execute(op);
    expect(events.map((e) => e.kind)).toEqual(['outcome']);
  });

  it('rejects with a TypeError when the function returns no outcome', async () => {
    const bad = injectOutcome({ outcome: () => 42 as never, injectionRate: 1 });
    const e = await rejectionOf(bad.execute(() => 1));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toContain('injectOutcome "chaos-outcome": the outcome function returned 42');
  });
});

describe('injectBehavior', () => {
  it('runs the behaviour before the operation, sync or async', async () => {
    const order: string[] = [];
    const b = injectBehavior({
      injectionRate: 1,
      behavior: async (ctx) => {
        order.push(`behavior ${ctx.attempt}`);
      },
    });
    const events: ChaosInjectedEvent[] = [];
    b.on('chaos.injected', (e) => events.push(e));
    const op = (): string => {
      order.push('op');
      return 'ok';
    };
    await expect(b.execute(op)).resolves.toBe('ok');
    expect(order).toEqual(['behavior 1', 'op']);
    expect(events.map((e) => e.kind)).toEqual(['behavior']);
  });

  it('rejects with what the behaviour threw, and does not run the operation after an abort', async () => {
    const boom = new Error('behaviour failed');
    const { runs, op } = counted('ok');
    const throwing = injectBehavior({
      injectionRate: 1,
      behavior: () => {
        throw boom;
      },
    });
    expect(await rejectionOf(throwing.execute(op))).toBe(boom);
    const d = deferred();
    const slow = injectBehavior({ injectionRate: 1, behavior: () => d.promise });
    const ac = new AbortController();
    const call = track(slow.execute(op, { signal: ac.signal }));
    const reason = new Error('caller');
    ac.abort(reason);
    d.resolve();
    await d.promise;
    await new Promise((r) => setImmediate(r));
    expect(call.error).toBe(reason);
    expect(runs.n).toBe(0);
  });
});

describe('fault injection in keyed policies', () => {
  it('injects per key', async () => {
    const perTenant = keyed(
      (ctx) => ctx.operation,
      (key) => injectFault({ fault: new Error(`chaos ${key}`), injectionRate: key === 'a' ? 1 : 0 }),
    );
    await expect(perTenant.execute(() => 'ok', { operation: 'a' })).rejects.toThrow('chaos a');
    await expect(perTenant.execute(() => 'ok', { operation: 'b' })).resolves.toBe('ok');
  });
});
