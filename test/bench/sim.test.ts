/**
 * The overload suite's simulation kit: the virtual clock fires timers in order and lets continuations run between
 * instants; the queueing upstream serves, queues, rejects and wastes work as its model says; the slow-tail upstream
 * makes exactly one request in each run slow; a step is deterministic.
 */
import { describe, expect, it } from 'vitest';
import {
  exponentialDraw,
  type OverloadedError,
  QueueingUpstream,
  rankQuantile,
  SimClock,
  seededRandom,
  TailUpstream,
} from '../../bench/sim.js';
import { OVERLOAD_CONFIGS, OVERLOAD_SCENARIO, overloadModel, overloadStep } from '../../bench/suites/overload.js';

/** A random source whose exponential draws are exactly their mean: -ln(1 - u) = 1. */
const MEAN = () => 1 - Math.exp(-1);

const settle = <T>(p: Promise<T>) =>
  p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );

describe('SimClock', () => {
  it('fires timers by due time, ties in the order they were set, and ends at the time asked for', async () => {
    const clock = new SimClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 10);
    const cleared = clock.setTimeout(() => fired.push('cleared'), 20);
    clock.clearTimeout(cleared);
    clock.clearTimeout(cleared); // twice: ignored
    clock.clearTimeout({}); // not its handle: ignored
    expect(clock.pending).toBe(3);
    await clock.advanceTo(25);
    expect(fired).toEqual(['a@10', 'b@10']);
    expect(clock.now()).toBe(25);
    await clock.advance(100);
    expect(fired).toEqual(['a@10', 'b@10', 'c@30']);
    expect(clock.now()).toBe(125);
    expect(clock.pending).toBe(0);
    expect(clock.instants).toBe(2);
  });

  it('orders thousands of timers as a sort would', async () => {
    const clock = new SimClock();
    const random = seededRandom(1);
    const want: [number, number][] = [];
    const got: [number, number][] = [];
    for (let i = 0; i < 5_000; i++) {
      const at = Math.floor(random() * 1_000);
      want.push([at, i]);
      clock.setTimeout(() => got.push([clock.now(), i]), at);
    }
    await clock.advanceTo(1_000);
    want.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(got).toEqual(want);
  });

  it('lets promise continuations run after each instant, and fires a zero-delay timer they set at the same instant', async () => {
    const clock = new SimClock();
    const log: string[] = [];
    const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
    const task = (async () => {
      await sleep(10);
      log.push(`woke@${clock.now()}`);
      await Promise.resolve();
      await sleep(0);
      log.push(`zero@${clock.now()}`);
      await sleep(5);
      log.push(`again@${clock.now()}`);
    })();
    await clock.advanceTo(12);
    expect(log).toEqual(['woke@10', 'zero@10']);
    await clock.advanceTo(20);
    await task;
    expect(log).toEqual(['woke@10', 'zero@10', 'again@15']);
  });

  it('runs a callback that an earlier callback of the same instant cleared: never', async () => {
    const clock = new SimClock();
    const fired: number[] = [];
    const handles: unknown[] = [];
    handles.push(clock.setTimeout(() => clock.clearTimeout(handles[1]), 5));
    handles.push(clock.setTimeout(() => fired.push(1), 5));
    await clock.advanceTo(5);
    expect(fired).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('treats a negative or NaN delay as zero', async () => {
    const clock = new SimClock();
    await clock.advanceTo(7);
    const at: number[] = [];
    clock.setTimeout(() => at.push(clock.now()), -5);
    clock.setTimeout(() => at.push(clock.now()), Number.NaN);
    await clock.advanceTo(7);
    expect(at).toEqual([7, 7]);
  });
});

describe('seeded random, draws and rank quantiles', () => {
  it('repeats a sequence for a seed, in [0, 1)', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 1_000 }, () => a());
    expect(Array.from({ length: 1_000 }, () => b())).toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 1);
  });

  it('draws exponentials of the mean asked for', () => {
    const random = seededRandom(3);
    const n = 20_000;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += exponentialDraw(random, 20);
    expect(sum / n).toBeGreaterThan(19.5);
    expect(sum / n).toBeLessThan(20.5);
  });

  it('takes the quantile by rank: p99 of 100 values is the largest, p50 the 51st', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(rankQuantile(xs, 0.99)).toBe(100);
    expect(rankQuantile(xs, 0.5)).toBe(51);
    expect(rankQuantile(xs, 1)).toBe(100);
    expect(rankQuantile([], 0.5)).toBeNaN();
  });
});

describe('QueueingUpstream', () => {
  const make = (clock: SimClock, queue = 1, rejectCostMs = 0) =>
    new QueueingUpstream({ clock, random: MEAN, workers: 2, serviceMs: 10, queue, rejectCostMs });

  it('serves W at once, queues up to its bound in FIFO order, and rejects the next at once with a 503', async () => {
    const clock = new SimClock();
    const up = make(clock);
    expect(up.capacityPerSec).toBe(200);
    const done: string[] = [];
    const calls = ['a', 'b', 'c', 'd'].map((name) =>
      settle(up.request()).then((r) =>
        done.push(`${name}:${r.ok ? 'ok' : (r.e as OverloadedError).status}@${clock.now()}`),
      ),
    );
    expect([up.busy, up.waiting, up.requests, up.rejected]).toEqual([2, 1, 4, 1]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toEqual(['d:503@0']);
    await clock.advanceTo(100);
    await Promise.all(calls);
    // The queued request waits for a worker: its latency is the queueing plus its own service.
    expect(done).toEqual(['d:503@0', 'a:ok@10', 'b:ok@10', 'c:ok@20']);
    expect([up.served, up.wasted, up.abandoned, up.busy, up.waiting]).toEqual([3, 0, 0, 0, 0]);
  });

  it('drops a queued request whose client gave up, without spending a worker on it', async () => {
    const clock = new SimClock();
    const up = make(clock, 2);
    const ac = new AbortController();
    void up.request();
    void up.request();
    const gone = settle(up.request(ac.signal));
    const next = settle(up.request());
    expect(up.waiting).toBe(2);
    ac.abort(new Error('client timeout'));
    expect(await gone).toMatchObject({ ok: false, e: { message: 'client timeout' } });
    expect([up.waiting, up.abandoned]).toEqual([1, 1]);
    await clock.advanceTo(100);
    // The one behind it starts at 10, when the first worker frees up, not at 20.
    expect(await next).toEqual({ ok: true, v: undefined });
    expect([up.served, up.wasted]).toEqual([3, 0]);
  });

  it('serves to the end a request whose client gave up once a worker had it: wasted work, the worker stays busy', async () => {
    const clock = new SimClock();
    const up = make(clock, 0);
    const ac = new AbortController();
    const gone = settle(up.request(ac.signal));
    void up.request();
    await clock.advanceTo(4);
    ac.abort(new Error('client timeout'));
    // The client hears at once; the worker does not.
    expect(await gone).toMatchObject({ ok: false, e: { message: 'client timeout' } });
    expect(up.busy).toBe(2);
    expect(await settle(up.request())).toMatchObject({ ok: false, e: { status: 503 } });
    await clock.advanceTo(10);
    expect([up.busy, up.served, up.wasted]).toEqual([0, 2, 1]);
  });

  it('rejects a request whose signal already aborted without counting it', async () => {
    const clock = new SimClock();
    const up = make(clock);
    const r = await settle(up.request(AbortSignal.abort(new Error('gone'))));
    expect(r).toMatchObject({ ok: false, e: { message: 'gone' } });
    expect(up.requests).toBe(0);
  });

  it('charges each rejection to the next service that starts', async () => {
    const clock = new SimClock();
    const up = make(clock, 1, 3);
    const ends: number[] = [];
    for (let i = 0; i < 3; i++) void up.request().then(() => ends.push(clock.now()));
    for (let i = 0; i < 2; i++) void up.request().catch(() => undefined); // rejected: 2 x 3 ms owed
    await clock.advanceTo(100);
    // The queued request starts at 10 and pays 6 ms of rejection work before its own 10 ms.
    expect(ends).toEqual([10, 10, 26]);
  });

  it('grows latency with load: at 0.95 of capacity the mean wait is several service times', async () => {
    const run = async (load: number) => {
      const clock = new SimClock();
      const up = new QueueingUpstream({
        clock,
        random: seededRandom(9),
        workers: 4,
        serviceMs: 10,
        queue: 10_000,
        rejectCostMs: 0,
      });
      const arrivals = seededRandom(10);
      const latencies: number[] = [];
      const arrive = () => {
        const start = clock.now();
        void up.request().then(() => latencies.push(clock.now() - start));
        if (start < 20_000) clock.setTimeout(arrive, exponentialDraw(arrivals, 10 / 4 / load));
      };
      arrive();
      await clock.advanceTo(25_000);
      return latencies.reduce((s, x) => s + x, 0) / latencies.length;
    };
    const light = await run(0.3);
    const heavy = await run(0.95);
    expect(light).toBeLessThan(11);
    expect(heavy).toBeGreaterThan(3 * light);
  });
});

describe('TailUpstream', () => {
  it('makes exactly one request in each run of 100 slow, 50x, at a random place', async () => {
    const clock = new SimClock();
    const up = new TailUpstream({ clock, random: seededRandom(5), normalMs: 10, slowFactor: 50, slowEvery: 100 });
    const latencies: number[] = [];
    for (let i = 0; i < 1_000; i++) void up.request().then(() => (latencies[i] = clock.now()));
    await clock.advanceTo(10_000);
    const slowAt = latencies.flatMap((x, i) => (x >= 400 ? [i] : []));
    expect(slowAt.map((i) => Math.floor(i / 100))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(slowAt.map((i) => i % 100)).size).toBeGreaterThan(5);
    expect(Math.min(...latencies.filter((x) => x >= 400))).toBeGreaterThanOrEqual(450);
    expect(Math.min(...latencies)).toBeGreaterThanOrEqual(9);
    expect(Math.max(...latencies.filter((x) => x < 400))).toBeLessThanOrEqual(11);
  });

  it('stops a request at once when its signal aborts, leaving no timer', async () => {
    const clock = new SimClock();
    const up = new TailUpstream({ clock, random: seededRandom(5), normalMs: 10, slowFactor: 50, slowEvery: 100 });
    const ac = new AbortController();
    const r = settle(up.request(ac.signal));
    ac.abort(new Error('hedge lost'));
    expect(await r).toMatchObject({ ok: false, e: { message: 'hedge lost' } });
    expect(clock.pending).toBe(0);
  });
});

describe('an overload step', () => {
  it('gives the same numbers on every run (virtual time, seeded), and matches the model at half capacity', async () => {
    const model = { ...overloadModel({ quick: true } as never), warmupSec: 0.5, measureSec: 1 };
    const scenario = model.scenarios.find((s) => s.name === OVERLOAD_SCENARIO.failFast);
    const retry = OVERLOAD_CONFIGS[1];
    if (scenario === undefined || retry === undefined) throw new Error('model changed');
    const a = await overloadStep(scenario, retry, model, 0);
    const b = await overloadStep(scenario, retry, model, 0);
    expect(b).toEqual(a);
    expect(a.load).toBe(0.5);
    expect(a.amplification).toBe(1);
    expect(a.goodputOfCapacity).toBeGreaterThan(0.4);
    expect(a.goodputOfCapacity).toBeLessThan(0.6);
    expect(a.failed503 + a.failedTimeout + a.failedLocal).toBe(0);
  });
});
