import { describe, expect, it } from 'vitest';
import { keptShapes } from '../../src/core/shapes.js';
import {
  bulkhead,
  circuitBreaker,
  constant,
  fallback,
  PipelinePolicy,
  pipeline,
  retry,
  TimeoutError,
  type TimeoutLateOutcomeEvent,
  timeout,
} from '../../src/index.js';
import { fuseTail } from '../../src/policies/fused.js';
import type { PolicyBase } from '../../src/policies/policy-base.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, rejectionOf } from '../helpers/deferred.js';

describe('fused pipelines (retry > circuitBreaker > timeout > bulkhead as one state machine)', () => {
  it('fuses the innermost run of the four kinds, in that order, with at least two of them', () => {
    const clock = new FakeClock();
    const r = retry({ clock });
    const b = circuitBreaker({ clock });
    const t = timeout({ ms: 10, clock });
    const k = bulkhead({ limit: 1, clock });
    const f = fallback({ value: 0 });
    const tail = (ms: PolicyBase[]) => {
      const x = fuseTail(ms);
      return x === undefined
        ? undefined
        : { start: x.start, unit: [x.unit.retry, x.unit.breaker, x.unit.timeout, x.unit.bulkhead] };
    };
    expect(tail([f, r, b, t, k])).toEqual({ start: 1, unit: [r, b, t, k] });
    expect(tail([r, t])).toEqual({ start: 0, unit: [r, undefined, t, undefined] });
    expect(tail([b, k])).toEqual({ start: 0, unit: [undefined, b, undefined, k] });
    // Out of order, a kind twice, or a single one: only the ordered tail, or nothing.
    expect(tail([t, b, k])).toEqual({ start: 1, unit: [undefined, b, undefined, k] });
    expect(tail([t, r])).toBeUndefined();
    expect(tail([r, b, f])).toBeUndefined();
    expect(tail([t, timeout({ ms: 5, clock })])).toBeUndefined();
    expect(tail([k])).toBeUndefined();
  });

  it('a timed-out operation keeps its bulkhead slot until it really settles, then reports a late outcome', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const p = pipeline(timeout({ ms: 10, clock }), bh);
    const late: TimeoutLateOutcomeEvent[] = [];
    p.on('timeout.late_outcome', (e) => late.push(e));
    const work = deferred<string>();
    const call = p.execute(() => work.promise);
    const error = rejectionOf(call);
    await clock.advance(10);
    expect(await error).toBeInstanceOf(TimeoutError);
    expect(bh.active).toBe(1); // the work runs on: the slot stays taken
    work.resolve('late');
    await clock.flush();
    expect(bh.active).toBe(0);
    expect(late.map((e) => e.outcome)).toEqual([{ ok: true, value: 'late' }]);
  });

  it('a queued call the timeout gives up on leaves the queue at once and never runs', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const p = pipeline(timeout({ ms: 10, clock }), bh);
    const late: TimeoutLateOutcomeEvent[] = [];
    p.on('timeout.late_outcome', (e) => late.push(e));
    const first = deferred<string>();
    const running = rejectionOf(p.execute(() => first.promise)); // times out too
    let ran = false;
    const queued = rejectionOf(
      p.execute(() => {
        ran = true;
        return 'never';
      }),
    );
    expect(bh.queued).toBe(1);
    await clock.advance(10);
    expect(await queued).toBeInstanceOf(TimeoutError);
    expect(bh.queued).toBe(0);
    first.resolve('done');
    await clock.flush();
    expect(await running).toBeInstanceOf(TimeoutError);
    expect(ran).toBe(false);
    expect(late.map((e) => e.outcome)).toEqual([{ ok: true, value: 'done' }]);
  });

  it('a call that waited in the queue runs under its own deadline, counted from the call, and its signal aborts then', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const p = pipeline(timeout({ ms: 10, clock }), bh);
    const rejected: string[] = [];
    p.on('bulkhead.rejected', (e) => rejected.push(`${e.operation}:${e.reason}`));
    const first = deferred<string>();
    const running = p.execute(() => first.promise);
    let seen: AbortSignal | undefined;
    const queued = rejectionOf(
      p.execute(
        ({ signal }) => {
          seen = signal;
          return new Promise<never>(() => undefined);
        },
        { operation: 'queued' },
      ),
    );
    // The queue is full: the refusal names the refused call's operation.
    expect(await rejectionOf(p.execute(() => 'never', { operation: 'third' }))).toMatchObject({ reason: 'full' });
    expect(rejected).toEqual(['third:full']);
    await clock.advance(4);
    first.resolve('ok');
    expect(await running).toBe('ok');
    expect(seen?.aborted).toBe(false); // granted, running, its deadline not yet passed
    await clock.advance(5);
    expect(seen?.aborted).toBe(false);
    await clock.advance(1); // 10 ms after the call began, queue time included
    const error = await queued;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBe(error);
  });

  it("a caller's abort while queued rejects with the caller's reason and removes every listener", async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, queue: 1, clock });
    const breaker = circuitBreaker({ clock, window: { kind: 'consecutive', threshold: 1 } });
    const p = pipeline(retry({ clock, maxAttempts: 3 }), breaker, bh);
    const first = deferred<string>();
    const running = p.execute(() => first.promise);
    const ac = new AbortController();
    const reason = new Error('client went away');
    const queued = rejectionOf(p.execute(() => 'never', { signal: ac.signal }));
    ac.abort(reason);
    expect(await queued).toBe(reason);
    expect(bh.queued).toBe(0);
    expect(breaker.state).toBe('closed'); // a caller's abort is not the dependency's failure
    first.resolve('ok');
    expect(await running).toBe('ok');
  });

  it('a failed first attempt hands over to the retry loop, whose attempts run through the same members', async () => {
    const clock = new FakeClock();
    const bh = bulkhead({ limit: 1, clock });
    const p = pipeline(retry({ clock, maxAttempts: 3, backoff: constant(0) }), timeout({ ms: 50, clock }), bh);
    let attempts = 0;
    const value = p.execute(({ attempt }) => {
      attempts++;
      if (attempt < 3) throw new Error(`fail ${attempt}`);
      return 'third time';
    });
    await clock.runAll();
    expect(await value).toBe('third time');
    expect(attempts).toBe(3);
    expect(bh.active).toBe(0);
  });

  it('layered and fused pipelines give the same result for a plain success', async () => {
    const clock = new FakeClock();
    const make = (fuse: boolean) =>
      new PipelinePolicy(
        [retry({ clock }), circuitBreaker({ clock }), timeout({ ms: 10, clock }), bulkhead({ limit: 2, clock })],
        fuse,
      );
    expect(await make(true).execute(() => 42)).toBe(42);
    expect(await make(false).execute(() => 42)).toBe(42);
  });

  it('a call that runs at once and succeeds never goes through the state accessors (V8 left them as calls there)', async () => {
    // The fused call's prototype, through its instance kept across GCs (the class is not exported).
    const proto = Object.getPrototypeOf(keptShapes().find((o) => o.constructor.name === 'FusedCall')) as object;
    const used: string[] = [];
    const saved = (['_phase', '_slot', '_subscribed'] as const).map((name) => {
      const d = Object.getOwnPropertyDescriptor(proto, name) as PropertyDescriptor;
      Object.defineProperty(proto, name, {
        configurable: true,
        get(this: unknown) {
          used.push(`get ${name}`);
          return d.get?.call(this);
        },
        set(this: unknown, v: unknown) {
          used.push(`set ${name}`);
          d.set?.call(this, v);
        },
      });
      return [name, d] as const;
    });
    try {
      const clock = new FakeClock();
      const bh = bulkhead({ limit: 1, queue: 1, clock });
      const p = pipeline(retry({ clock }), circuitBreaker({ clock }), timeout({ ms: 10, clock }), bh);
      const gate = deferred<string>();
      // Subscribed (the caller's signal), holding a slot, running, then settled: the whole common path.
      const caller = new AbortController();
      const first = p.execute(() => gate.promise, { signal: caller.signal });
      expect(bh.active).toBe(1);
      gate.resolve('ok');
      expect(await first).toBe('ok');
      expect(await p.execute(async () => 7)).toBe(7);
      expect(bh.active).toBe(0);
      expect(used).toEqual([]);
      // The cold paths still use them: a queued call granted a slot.
      const held = deferred<string>();
      const running = p.execute(() => held.promise);
      const queued = p.execute(async () => 'queued');
      held.resolve('held');
      expect([await running, await queued]).toEqual(['held', 'queued']);
      expect(used).toContain('set _slot');
    } finally {
      for (const [name, d] of saved) Object.defineProperty(proto, name, d);
    }
  });
});

describe('abandoned work holds only its own bulkhead slot (layered and fused alike)', () => {
  for (const fuse of [false, true]) {
    it(`retry > timeout > bulkhead${fuse ? ' (fused)' : ' (layered)'}: attempt 1's slot frees when attempt 1's work ends, not when attempt 2's does`, async () => {
      const clock = new FakeClock();
      const bh = bulkhead({ limit: 2, clock });
      const p = new PipelinePolicy(
        [retry({ clock, maxAttempts: 2, backoff: constant(0) }), timeout({ ms: 1, clock }), bh],
        fuse,
      );
      const call = rejectionOf(
        p.execute(
          ({ attempt }) =>
            new Promise((_, reject) =>
              clock.setTimeout(() => reject(new Error(`e${attempt}`)), attempt === 1 ? 5 : 19),
            ),
        ),
      );
      await clock.advance(2);
      expect(await call).toBeInstanceOf(TimeoutError);
      expect(bh.active).toBe(2); // both attempts' work runs on after their timeouts
      await clock.advance(4); // t = 6: attempt 1's work ended at 5
      // Before: the layered bulkhead kept attempt 1's slot until every later orphan of the call ended (t = 20).
      expect(bh.active).toBe(1);
      await clock.advance(20);
      expect(bh.active).toBe(0);
    });
  }

  describe('execution.completed of a pipeline made of one fused unit', () => {
    it('times a call with the same readings as its attempt, on the shared clock', async () => {
      const clock = new FakeClock();
      const p = pipeline(
        retry({ clock, backoff: constant(5) }),
        timeout({ ms: 100, clock }),
        bulkhead({ limit: 1, clock }),
      );
      const done: { durationMs: number; result: string; attempt: number }[] = [];
      const attempts: number[] = [];
      p.on('execution.completed', (e) => done.push({ durationMs: e.durationMs, result: e.result, attempt: e.attempt }));
      p.on('attempt.completed', (e) => attempts.push(e.durationMs));
      let n = 0;
      const call = p.execute(async () => {
        n++;
        await new Promise<void>((r) => clock.setTimeout(r, n === 1 ? 7 : 3));
        if (n === 1) throw new Error('first');
        return 'ok';
      });
      await clock.advance(7);
      await clock.advance(5);
      await clock.advance(3);
      await expect(call).resolves.toBe('ok');
      expect(attempts).toEqual([7, 3]);
      expect(done).toEqual([{ durationMs: 15, result: 'success', attempt: 1 }]);
    });

    it('with the retry and a timed breaker on different clocks, times attempts on the one and calls on the other', async () => {
      const a = new FakeClock();
      const b = new FakeClock();
      const breaker = circuitBreaker({
        clock: b,
        window: { kind: 'count', size: 2 },
        minimumCalls: 1,
        failureRate: 1,
        slowCallMs: 5,
        slowCallRate: 0.5,
      });
      const p = pipeline(retry({ clock: a }), breaker, timeout({ ms: 100, clock: b }));
      const attempts: number[] = [];
      p.on('attempt.completed', (e) => attempts.push(e.durationMs));
      // 10 ms on the retry's clock, 0 on the breaker's: the attempt is timed at 10 ms, and the breaker sees no slow call.
      const quick = p.execute(() => new Promise<number>((r) => a.setTimeout(() => r(1), 10)));
      await a.advance(10);
      await expect(quick).resolves.toBe(1);
      expect(attempts).toEqual([10]);
      expect(breaker.state).toBe('closed');
      // 6 ms on the breaker's clock: a slow call, which opens it (one slow call in two).
      const slow = p.execute(() => new Promise<number>((r) => b.setTimeout(() => r(2), 6)));
      await b.advance(6);
      await expect(slow).resolves.toBe(2);
      expect(attempts).toEqual([10, 0]);
      expect(breaker.state).toBe('open');
    });

    it('with members on different clocks, times the call on the pipeline clock (layered timing)', async () => {
      const a = new FakeClock();
      const b = new FakeClock();
      const p = pipeline(retry({ clock: a }), timeout({ ms: 100, clock: b }));
      const done: number[] = [];
      p.on('execution.completed', (e) => done.push(e.durationMs));
      const call = p.execute(() => new Promise<number>((r) => a.setTimeout(() => r(1), 4)));
      await a.advance(4);
      await expect(call).resolves.toBe(1);
      expect(done).toEqual([4]);
      await b.advance(200); // the timeout's deadline passed long after the call: nothing fires
    });
  });
});
