/**
 * Model-based test of the bulkhead (issue 11): random command sequences (start a call, with or without a signal,
 * or with one already aborted; finish the k-th running call; abort the k-th queued one; change the limit; advance
 * the clock past queue timeouts; dispose) run against the real bulkhead and the reference model below, written
 * from docs/policies/bulkhead.md. After every command: `active`, `queued`, `available`, which calls have started
 * (FIFO admission, never above the limit), every rejection (reason, and the counters it reports) and the event
 * log must agree.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { type BulkheadPolicy, bulkhead, isBulkheadRejectedError } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

const EV = { rejected: 'bulkhead.rejected' } as const;

interface Config {
  readonly limit: number;
  readonly queue: number;
  readonly queueTimeoutMs: number | undefined;
  /** Whether this run may dispose the bulkhead (after which every call is rejected: a run apart). */
  readonly mayDispose: boolean;
}

const configArb: fc.Arbitrary<Config> = fc.record({
  limit: fc.integer({ min: 1, max: 3 }),
  queue: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(Number.POSITIVE_INFINITY)),
  queueTimeoutMs: fc.option(fc.constantFrom(10, 25, 100), { nil: undefined }),
  mayDispose: fc.integer({ min: 0, max: 9 }).map((n) => n < 3),
});

type Reason = 'full' | 'queue_timeout' | 'disposed';

/** What a call came to, as far as the bulkhead decides. */
type Fate =
  | { kind: 'running' }
  | { kind: 'queued' }
  | { kind: 'rejected'; reason: Reason; active: number; queued: number }
  | { kind: 'aborted' }
  | { kind: 'done' };

class Model {
  limit: number;
  active = 0;
  disposed = false;
  now = 0;
  /** Ids, oldest first, with the time each queue wait ends. */
  readonly queue: { id: number; deadline: number }[] = [];
  /** Ids of running calls, in the order they started. */
  readonly running: number[] = [];
  readonly fates = new Map<number, Fate>();
  readonly events: string[] = [];
  nextId = 0;

  constructor(readonly cfg: Config) {
    this.limit = cfg.limit;
  }

  get available(): number {
    return Math.max(0, this.limit - this.active);
  }

  #reject(id: number, reason: Reason): void {
    this.events.push(`${EV.rejected} ${reason} ${this.active} ${this.queue.length}`);
    this.fates.set(id, { kind: 'rejected', reason, active: this.active, queued: this.queue.length });
  }

  #start(id: number): void {
    this.active++;
    this.running.push(id);
    this.fates.set(id, { kind: 'running' });
  }

  /** A new call; `preAborted`: its signal has already aborted. */
  call(preAborted: boolean): number {
    const id = this.nextId++;
    if (preAborted) {
      // execute() rejects with the caller's reason before the bulkhead is asked.
      this.fates.set(id, { kind: 'aborted' });
      return id;
    }
    if (this.active < this.limit && this.queue.length === 0 && !this.disposed) this.#start(id);
    else if (this.disposed) this.#reject(id, 'disposed');
    else if (this.queue.length >= this.cfg.queue) this.#reject(id, 'full');
    else {
      this.queue.push({ id, deadline: this.now + (this.cfg.queueTimeoutMs ?? Number.POSITIVE_INFINITY) });
      this.fates.set(id, { kind: 'queued' });
    }
    return id;
  }

  #drain(): void {
    while (this.queue.length > 0 && this.active < this.limit) {
      const head = this.queue.shift() as { id: number };
      this.#start(head.id);
    }
  }

  finish(index: number): number {
    const [id] = this.running.splice(index, 1);
    if (id === undefined) throw new Error('no such running call');
    this.fates.set(id, { kind: 'done' });
    this.active--;
    this.#drain();
    return id;
  }

  abortQueued(index: number): number {
    const [entry] = this.queue.splice(index, 1);
    if (entry === undefined) throw new Error('no such queued call');
    this.fates.set(entry.id, { kind: 'aborted' });
    return entry.id;
  }

  setLimit(n: number): void {
    this.limit = n;
    this.#drain();
  }

  advance(ms: number): void {
    this.now += ms;
    while (this.queue.length > 0 && (this.queue[0] as { deadline: number }).deadline <= this.now) {
      const head = this.queue.shift() as { id: number };
      this.#reject(head.id, 'queue_timeout');
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    while (this.queue.length > 0) {
      const head = this.queue.shift() as { id: number };
      this.#reject(head.id, 'disposed');
    }
  }
}

interface RealCall {
  readonly id: number;
  started: boolean;
  settled: { ok: true; value: unknown } | { ok: false; error: unknown } | undefined;
  readonly finish: (ok: boolean) => void;
  readonly controller: AbortController;
  readonly error: Error;
}

interface Real {
  readonly bulkhead: BulkheadPolicy;
  readonly clock: FakeClock;
  readonly calls: Map<number, RealCall>;
  readonly startOrder: number[];
  readonly events: string[];
}

function makeReal(cfg: Config): Real {
  const clock = new FakeClock();
  const policy = bulkhead({
    limit: cfg.limit,
    queue: cfg.queue,
    ...(cfg.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: cfg.queueTimeoutMs }),
    clock,
  });
  const events: string[] = [];
  policy.on(EV.rejected, (e) => events.push(`${EV.rejected} ${e.reason} ${e.active} ${e.queued}`));
  return { bulkhead: policy, clock, calls: new Map(), startOrder: [], events };
}

const check = (cond: boolean, what: string): void => {
  if (!cond) throw new Error(what);
};

/** Compares everything observable, after letting settlements run. */
async function agree(m: Model, r: Real, after: string): Promise<void> {
  await r.clock.flush();
  const b = r.bulkhead;
  check(b.active === m.active, `${after}: active ${b.active}, model ${m.active}`);
  check(b.queued === m.queue.length, `${after}: queued ${b.queued}, model ${m.queue.length}`);
  check(b.available === m.available, `${after}: available ${b.available}, model ${m.available}`);
  check(b.limit === m.limit, `${after}: limit ${b.limit}, model ${m.limit}`);
  check(b.disposed === m.disposed, `${after}: disposed ${b.disposed}, model ${m.disposed}`);
  // FIFO admission: the calls started so far, in order, are exactly the model's.
  const modelStarts = [...m.fates].filter(([, f]) => f.kind === 'running' || f.kind === 'done').map(([id]) => id);
  check(
    JSON.stringify([...r.startOrder].sort((x, y) => x - y)) === JSON.stringify(modelStarts),
    `${after}: started ${r.startOrder.join(',')}, model ${modelStarts.join(',')}`,
  );
  const running = [...r.calls.values()].filter((c) => c.started && c.settled === undefined).length;
  check(running === m.active, `${after}: ${running} ops running, model active ${m.active}`);
  for (const [id, fate] of m.fates) {
    const c = r.calls.get(id) as RealCall;
    const s = c.settled;
    if (fate.kind === 'rejected') {
      check(
        s !== undefined && !s.ok && isBulkheadRejectedError(s.error),
        `${after}: call ${id} not rejected (${fate.reason})`,
      );
      const e = (s as { error: { reason: string; active: number; queued: number } }).error;
      check(
        e.reason === fate.reason && e.active === fate.active && e.queued === fate.queued,
        `${after}: call ${id} rejected ${e.reason} ${e.active}/${e.queued}, model ${fate.reason} ${fate.active}/${fate.queued}`,
      );
    } else if (fate.kind === 'aborted') {
      check(
        s !== undefined && !s.ok && s.error === c.controller.signal.reason,
        `${after}: call ${id} not aborted as asked`,
      );
    } else if (fate.kind === 'done') {
      check(s !== undefined, `${after}: call ${id} finished but did not settle`);
    } else {
      check(s === undefined, `${after}: call ${id} settled while ${fate.kind}`);
    }
  }
  check(
    JSON.stringify(r.events) === JSON.stringify(m.events),
    `${after}: events differ\n real:  ${r.events.join(' | ')}\n model: ${m.events.join(' | ')}`,
  );
}

type Cmd = fc.AsyncCommand<Model, Real>;

class Call implements Cmd {
  constructor(readonly preAborted: boolean) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const id = m.call(this.preAborted);
    const controller = new AbortController();
    if (this.preAborted) controller.abort(new Error(`call ${id} aborted before it started`));
    let resolveOp: (v: unknown) => void = () => undefined;
    let rejectOp: (e: unknown) => void = () => undefined;
    const call: RealCall = {
      id,
      started: false,
      settled: undefined,
      finish: (ok) => (ok ? resolveOp(id) : rejectOp(call.error)),
      controller,
      error: new Error(`op ${id} failed`),
    };
    r.calls.set(id, call);
    r.bulkhead
      .execute(
        () => {
          call.started = true;
          r.startOrder.push(id);
          return new Promise((resolve, reject) => {
            resolveOp = resolve;
            rejectOp = reject;
          });
        },
        { signal: controller.signal },
      )
      .then(
        (value) => {
          call.settled = { ok: true, value };
        },
        (error: unknown) => {
          call.settled = { ok: false, error };
        },
      );
    await agree(m, r, this.toString());
  }
  toString(): string {
    return this.preAborted ? 'call(aborted already)' : 'call()';
  }
}

class Finish implements Cmd {
  constructor(
    readonly k: number,
    readonly ok: boolean,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.running.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const id = m.finish(this.k % m.running.length);
    const call = r.calls.get(id) as RealCall;
    call.finish(this.ok);
    await agree(m, r, this.toString());
    const s = call.settled;
    // The op's own outcome, unchanged.
    check(
      s !== undefined && (this.ok ? s.ok && s.value === id : !s.ok && s.error === call.error),
      `${this}: call ${id} settled with something else`,
    );
  }
  toString(): string {
    return `finish(#${this.k}, ${this.ok ? 'ok' : 'fail'})`;
  }
}

class AbortQueued implements Cmd {
  constructor(readonly k: number) {}
  check(m: Readonly<Model>): boolean {
    return m.queue.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const id = m.abortQueued(this.k % m.queue.length);
    // A reason that looks like the bulkhead's own: it must still pass through unchanged.
    (r.calls.get(id) as RealCall).controller.abort('queue_timeout');
    await agree(m, r, this.toString());
  }
  toString(): string {
    return `abortQueued(#${this.k})`;
  }
}

class SetLimit implements Cmd {
  constructor(readonly n: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.bulkhead.limit = this.n;
    m.setLimit(this.n);
    await agree(m, r, this.toString());
  }
  toString(): string {
    return `limit = ${this.n}`;
  }
}

class Advance implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.clock.advance(this.ms);
    m.advance(this.ms);
    await agree(m, r, this.toString());
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

class Dispose implements Cmd {
  check(m: Readonly<Model>): boolean {
    return m.cfg.mayDispose;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.bulkhead.dispose();
    m.dispose();
    await agree(m, r, this.toString());
  }
  toString(): string {
    return 'dispose()';
  }
}

const callArb = fc.constantFrom(false, false, false, false, true).map((pre) => new Call(pre));
const finishArb = fc.tuple(fc.nat(), fc.boolean()).map(([k, ok]) => new Finish(k, ok));
const abortArb = fc.nat().map((k) => new AbortQueued(k));
const limitArb = fc.integer({ min: 1, max: 4 }).map((n) => new SetLimit(n));
const advanceArb = fc.constantFrom(1, 9, 10, 15, 25, 100).map((ms) => new Advance(ms));
/** Weighted by repetition: dispose ends the interesting part of a run, so it is rare. */
const commands = [
  ...Array.from({ length: 6 }, () => callArb),
  ...Array.from({ length: 4 }, () => finishArb),
  abortArb,
  abortArb,
  limitArb,
  advanceArb,
  advanceArb,
  advanceArb,
  fc.constant(new Dispose()),
];

describe('bulkhead against a reference model', () => {
  it('agrees on counters, FIFO admission, rejections and events', async () => {
    const stats = { runs: 0, commands: 0, full: 0, timeouts: 0, disposed: 0 };
    await fc.assert(
      fc.asyncProperty(configArb, fc.commands(commands, { maxCommands: 60, size: 'large' }), async (cfg, cmds) => {
        const model = new Model(cfg);
        const real = makeReal(cfg);
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        // Finish everything still running: the queue drains in order, or times out, and all settle.
        while (model.running.length > 0) {
          const id = model.finish(0);
          (real.calls.get(id) as RealCall).finish(true);
          await agree(model, real, 'drain');
        }
        await real.clock.runAll();
        model.advance(Number.POSITIVE_INFINITY);
        stats.runs++;
        stats.commands += [...cmds].length;
        stats.full += real.events.filter((e) => e.includes(' full ')).length;
        stats.timeouts += real.events.filter((e) => e.includes(' queue_timeout ')).length;
        stats.disposed += real.events.filter((e) => e.includes(' disposed ')).length;
        check(real.clock.pendingTimers === 0, 'a queue timer is left pending');
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 150) },
    );
    if (process.env.MODEL_STATS) console.log(stats);
  });
});
