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
import {
  type BulkheadPolicy,
  bulkhead,
  isBulkheadRejectedError,
  isTimeoutError,
  type Policy,
  pipeline,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

const EV = { rejected: 'bulkhead.rejected' } as const;

interface Config {
  readonly limit: number;
  readonly queue: number;
  readonly queueTimeoutMs: number | undefined;
  /** Whether this run may dispose the bulkhead (after which every call is rejected: a run apart). */
  readonly mayDispose: boolean;
  /**
   * A timeout in the same pipeline, outside the bulkhead (the recommended order: it bounds the queue wait) or
   * inside it. Its ops ignore their signal, so timed-out work keeps running and must keep its slot.
   */
  readonly timeout: { readonly where: 'outside' | 'inside'; readonly ms: number } | undefined;
}

const configArb: fc.Arbitrary<Config> = fc.record({
  limit: fc.integer({ min: 1, max: 3 }),
  queue: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(Number.POSITIVE_INFINITY)),
  // Even queue timeouts and clock steps, odd call timeouts: no two deadlines ever fall at the same instant, so the
  // order in which they fire is the order of their times.
  queueTimeoutMs: fc.option(fc.constantFrom(10, 26, 100), { nil: undefined }),
  mayDispose: fc.integer({ min: 0, max: 9 }).map((n) => n < 3),
  timeout: fc.option(
    fc.record({ where: fc.constantFrom('outside' as const, 'inside' as const), ms: fc.constantFrom(7, 33) }),
    {
      nil: undefined,
    },
  ),
});

type Reason = 'full' | 'queue_timeout' | 'disposed';

/** What a call came to, as far as the bulkhead decides. */
type Fate =
  | { kind: 'running' }
  | { kind: 'queued' }
  | { kind: 'rejected'; reason: Reason; active: number; queued: number }
  | { kind: 'aborted' }
  | { kind: 'done' }
  /** The caller got a TimeoutError; the op may still run (and hold its slot). */
  | { kind: 'timedOut' };

class Model {
  limit: number;
  active = 0;
  disposed = false;
  now = 0;
  /** Ids, oldest first, with the time each queue wait ends. */
  readonly queue: { id: number; deadline: number }[] = [];
  /** Ids of running calls, in the order they started. */
  readonly running: number[] = [];
  /** Ids of every call that got a slot, in the order they got it. */
  readonly started: number[] = [];
  readonly fates = new Map<number, Fate>();
  /** When each call's timeout fires (calls under a timeout whose caller has not been answered yet). */
  readonly timeoutAt = new Map<number, number>();
  readonly events: string[] = [];
  nextId = 0;

  constructor(readonly cfg: Config) {
    this.limit = cfg.limit;
  }

  get available(): number {
    return Math.max(0, this.limit - this.active);
  }

  #reject(id: number, reason: Reason): void {
    this.timeoutAt.delete(id);
    this.events.push(`${EV.rejected} ${reason} ${this.active} ${this.queue.length}`);
    this.fates.set(id, { kind: 'rejected', reason, active: this.active, queued: this.queue.length });
  }

  #start(id: number): void {
    this.active++;
    this.running.push(id);
    this.started.push(id);
    this.fates.set(id, { kind: 'running' });
    // A timeout inside the bulkhead starts with the attempt, once the call has a slot.
    const t = this.cfg.timeout;
    if (t?.where === 'inside') this.timeoutAt.set(id, this.now + t.ms);
  }

  /** A new call; `preAborted`: its signal has already aborted. */
  call(preAborted: boolean): number {
    const id = this.nextId++;
    if (preAborted) {
      // execute() rejects with the caller's reason before the bulkhead is asked.
      this.fates.set(id, { kind: 'aborted' });
      return id;
    }
    const t = this.cfg.timeout;
    if (t?.where === 'outside') this.timeoutAt.set(id, this.now + t.ms);
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
    // A call that timed out keeps its slot until here; its caller was answered at the timeout.
    if (this.fates.get(id)?.kind !== 'timedOut') this.fates.set(id, { kind: 'done' });
    this.timeoutAt.delete(id);
    this.active--;
    this.#drain();
    return id;
  }

  abortQueued(index: number): number {
    const [entry] = this.queue.splice(index, 1);
    if (entry === undefined) throw new Error('no such queued call');
    this.fates.set(entry.id, { kind: 'aborted' });
    this.timeoutAt.delete(entry.id);
    return entry.id;
  }

  setLimit(n: number): void {
    this.limit = n;
    this.#drain();
  }

  /** Queue timeouts and call timeouts fire in the order of their times (they never tie: see configArb). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const queueDue = this.queue[0]?.deadline ?? Number.POSITIVE_INFINITY;
      let callDue = Number.POSITIVE_INFINITY;
      let callId = -1;
      for (const [id, at] of this.timeoutAt) {
        if (at < callDue) {
          callDue = at;
          callId = id;
        }
      }
      const next = Math.min(queueDue, callDue);
      if (next > end || next === Number.POSITIVE_INFINITY) break;
      this.now = next;
      if (queueDue < callDue) {
        const head = this.queue.shift() as { id: number };
        this.#reject(head.id, 'queue_timeout');
      } else {
        // The caller gets a TimeoutError. A queued call leaves the queue (its signal aborted), without an event;
        // a running one keeps its slot, since its op runs on.
        this.timeoutAt.delete(callId);
        const i = this.queue.findIndex((q) => q.id === callId);
        if (i >= 0) this.queue.splice(i, 1);
        this.fates.set(callId, { kind: 'timedOut' });
      }
    }
    this.now = end;
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
  /** The op itself has ended (finish was called). */
  opEnded: boolean;
  settled: { ok: true; value: unknown } | { ok: false; error: unknown } | undefined;
  readonly finish: (ok: boolean) => void;
  readonly controller: AbortController;
  readonly error: Error;
}

interface Real {
  readonly bulkhead: BulkheadPolicy;
  /** What calls go through: the bulkhead, or a pipeline of it and a timeout. */
  readonly policy: Policy;
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
  const t = cfg.timeout;
  const outer: Policy =
    t === undefined
      ? policy
      : t.where === 'outside'
        ? pipeline(timeout({ ms: t.ms, clock }), policy)
        : pipeline(policy, timeout({ ms: t.ms, clock }));
  return { bulkhead: policy, policy: outer, clock, calls: new Map(), startOrder: [], events };
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
  check(
    JSON.stringify(r.startOrder) === JSON.stringify(m.started),
    `${after}: started ${r.startOrder.join(',')}, model ${m.started.join(',')}`,
  );
  const running = [...r.calls.values()].filter((c) => c.started && !c.opEnded).length;
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
    } else if (fate.kind === 'timedOut') {
      check(s !== undefined && !s.ok && isTimeoutError(s.error), `${after}: call ${id} did not time out`);
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
      opEnded: false,
      settled: undefined,
      finish: (ok) => (ok ? resolveOp(id) : rejectOp(call.error)),
      controller,
      error: new Error(`op ${id} failed`),
    };
    r.calls.set(id, call);
    r.policy
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
    call.opEnded = true;
    call.finish(this.ok);
    await agree(m, r, this.toString());
    const s = call.settled;
    // The op's own outcome, unchanged (unless its caller was answered by a timeout already).
    check(
      m.fates.get(id)?.kind === 'timedOut' ||
        (s !== undefined && (this.ok ? s.ok && s.value === id : !s.ok && s.error === call.error)),
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
const advanceArb = fc.constantFrom(2, 4, 10, 16, 26, 100).map((ms) => new Advance(ms));
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
    const stats = { runs: 0, commands: 0, full: 0, timeouts: 0, disposed: 0, timedOut: 0, orphansHeld: 0 };
    await fc.assert(
      fc.asyncProperty(configArb, fc.commands(commands, { maxCommands: 60, size: 'large' }), async (cfg, cmds) => {
        const model = new Model(cfg);
        const real = makeReal(cfg);
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        // Finish everything still running: the queue drains in order, or times out, and all settle.
        while (model.running.length > 0) {
          const id = model.finish(0);
          const call = real.calls.get(id) as RealCall;
          call.opEnded = true;
          call.finish(true);
          await agree(model, real, 'drain');
        }
        await real.clock.runAll();
        model.advance(Number.POSITIVE_INFINITY);
        stats.runs++;
        stats.commands += [...cmds].length;
        stats.full += real.events.filter((e) => e.includes(' full ')).length;
        stats.timeouts += real.events.filter((e) => e.includes(' queue_timeout ')).length;
        stats.disposed += real.events.filter((e) => e.includes(' disposed ')).length;
        stats.timedOut += [...model.fates.values()].filter((f) => f.kind === 'timedOut').length;
        stats.orphansHeld += model.started.filter((id) => model.fates.get(id)?.kind === 'timedOut').length;
        check(real.clock.pendingTimers === 0, 'a queue timer is left pending');
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 150) },
    );
    if (process.env.MODEL_STATS) console.log(stats);
  });
});
