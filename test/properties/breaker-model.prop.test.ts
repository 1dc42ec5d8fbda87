/**
 * Model-based test of the circuit breaker (issue 11): random command sequences (calls that succeed, fail, run slow,
 * hang and settle later, abort; clock advances; isolate/release/reset; reading `state`) run against the real
 * breaker and against the small reference model below, written from docs/policies/circuit-breaker.md. After every
 * command the state, every rejection (`CircuitOpenError` with its `state` and exact `retryAfterMs`) and the full
 * event log must agree. A consecutive window, a count window with `minimumCalls` and slow calls, and a time window are run.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { type CircuitBreakerPolicy, circuitBreaker, isCircuitOpenError } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

/** Event type names, in one place (they are being renamed after the state entered; see issue 11). */
const EV = {
  opened: 'circuit.open',
  halfOpened: 'circuit.half_open',
  closed: 'circuit.closed',
  isolated: 'circuit.isolated',
  rejected: 'circuit.rejected',
  probeExpired: 'circuit.probe_expired',
} as const;

type State = 'closed' | 'open' | 'half_open' | 'isolated';

interface Config {
  readonly window:
    | { kind: 'consecutive'; threshold: number }
    | { kind: 'count'; size: number }
    | { kind: 'time'; sizeMs: number; buckets: number };
  /** Rate windows only. */
  readonly failureRate?: number;
  readonly minimumCalls?: number;
  readonly slowCallMs?: number;
  readonly slowCallRate?: number;
  readonly halfOpenAfterMs: number;
  readonly halfOpenProbes: number;
  readonly halfOpenSuccesses: number;
  readonly halfOpenLeaseMs?: number | undefined;
}

const configArb: fc.Arbitrary<Config> = fc.oneof(
  fc.record({
    window: fc.record({ kind: fc.constant('consecutive' as const), threshold: fc.integer({ min: 1, max: 3 }) }),
    halfOpenAfterMs: fc.constantFrom(0, 100, 1_500),
    halfOpenProbes: fc.integer({ min: 1, max: 2 }),
    halfOpenSuccesses: fc.integer({ min: 1, max: 2 }),
    halfOpenLeaseMs: fc.option(fc.constantFrom(50, 400), { nil: undefined }),
  }),
  fc
    .record({
      size: fc.integer({ min: 1, max: 6 }),
      minimumFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      failureRate: fc.constantFrom(0.2, 0.5, 2 / 3, 1),
      slowCallMs: fc.option(fc.constantFrom(10, 50), { nil: undefined }),
      slowCallRate: fc.constantFrom(0.5, 1),
      halfOpenAfterMs: fc.constantFrom(0, 100, 1_500),
      halfOpenProbes: fc.integer({ min: 1, max: 2 }),
      halfOpenSuccesses: fc.integer({ min: 1, max: 2 }),
      halfOpenLeaseMs: fc.option(fc.constantFrom(50, 400), { nil: undefined }),
    })
    .map(({ size, minimumFraction, slowCallMs, slowCallRate, ...rest }) => ({
      ...rest,
      window: { kind: 'count' as const, size },
      minimumCalls: 1 + Math.floor(minimumFraction * (size - 1)),
      ...(slowCallMs === undefined ? {} : { slowCallMs, slowCallRate }),
    })),
  fc
    .record({
      window: fc.record({
        kind: fc.constant('time' as const),
        sizeMs: fc.constantFrom(100, 1_000),
        buckets: fc.constantFrom(1, 4, 10),
      }),
      minimumCalls: fc.integer({ min: 1, max: 4 }),
      failureRate: fc.constantFrom(0.2, 0.5, 2 / 3, 1),
      slowCallMs: fc.option(fc.constantFrom(10, 50), { nil: undefined }),
      slowCallRate: fc.constantFrom(0.5, 1),
      halfOpenAfterMs: fc.constantFrom(0, 100, 1_500),
      halfOpenProbes: fc.integer({ min: 1, max: 2 }),
      halfOpenSuccesses: fc.integer({ min: 1, max: 2 }),
      halfOpenLeaseMs: fc.option(fc.constantFrom(50, 400), { nil: undefined }),
    })
    .map(({ slowCallMs, slowCallRate, ...rest }) => ({
      ...rest,
      ...(slowCallMs === undefined ? {} : { slowCallMs, slowCallRate }),
    })),
);

// ---------------------------------------------------------------------------------------------------------------
// The reference model

interface ModelCall {
  readonly gen: number;
  readonly start: number;
}

class Model {
  state: State = 'closed';
  gen = 0;
  openUntil = 0;
  opens = 0;
  lastBreakMs = 0;
  probes = 0;
  successes = 0;
  leaseUntil = 0;
  isolations = 0;
  epoch = 0;
  now = 0;
  /**
   * Consecutive window: failures in a row. Count window: the last `size` outcomes, oldest first. Time window:
   * every outcome since the last close, with its time; those of the last `buckets` buckets count.
   */
  consecutive = 0;
  outcomes: { failed: boolean; slow: boolean; at: number }[] = [];
  readonly pending: ModelCall[] = [];
  readonly releases: { epoch: number; released: boolean }[] = [];
  readonly events: string[] = [];

  constructor(readonly cfg: Config) {}

  /** What `state` reports: an open breaker whose break has passed says half_open. */
  get reported(): State {
    return this.state === 'open' && this.now >= this.openUntil ? 'half_open' : this.state;
  }

  /** Admission of a call: the rejection, or undefined (the call is then pending). */
  admit(): { state: 'open' | 'half_open' | 'isolated'; retryAfterMs: number } | undefined {
    const reject = (state: 'open' | 'half_open' | 'isolated', retryAfterMs: number) => {
      this.events.push(`${EV.rejected} ${state} ${retryAfterMs}`);
      return { state, retryAfterMs };
    };
    if (this.state === 'isolated') return reject('isolated', Number.POSITIVE_INFINITY);
    if (this.state === 'open') {
      if (this.now < this.openUntil) return reject('open', this.openUntil - this.now);
      this.gen++;
      this.state = 'half_open';
      this.probes = 0;
      this.successes = 0;
      this.events.push(EV.halfOpened);
    }
    if (this.state === 'half_open') {
      if (this.probes >= this.cfg.halfOpenProbes) {
        if (this.now < this.leaseUntil) return reject('half_open', this.leaseUntil - this.now);
        this.events.push(`${EV.probeExpired} ${this.probes}`);
        this.gen++;
        this.probes = 0;
        this.successes = 0;
      }
      this.probes++;
      this.leaseUntil = this.now + (this.cfg.halfOpenLeaseMs ?? Math.max(this.lastBreakMs, 1_000));
    }
    this.pending.push({ gen: this.gen, start: this.now });
    return undefined;
  }

  /** A pending call settles: failed, succeeded, or its caller aborted (neutral). */
  settle(index: number, outcome: 'ok' | 'fail' | 'abort'): void {
    const [call] = this.pending.splice(index, 1);
    if (call === undefined) throw new Error('no such call');
    if (outcome === 'abort') {
      if (call.gen === this.gen && this.state === 'half_open') this.probes--;
      return;
    }
    if (call.gen !== this.gen) return; // admitted under an older state
    const failed = outcome === 'fail';
    const slow = this.cfg.slowCallMs !== undefined && this.now - call.start >= this.cfg.slowCallMs;
    if (this.state === 'closed') {
      if (this.recordInWindow(failed, slow)) this.toOpen('closed');
      return;
    }
    this.probes--;
    if (failed || slow) this.toOpen('half_open');
    else if (++this.successes >= this.cfg.halfOpenSuccesses) this.toClosed('half_open');
  }

  /** Records an outcome while closed; true when the breaker must open. */
  recordInWindow(failed: boolean, slow: boolean): boolean {
    const w = this.cfg.window;
    if (w.kind === 'consecutive') {
      this.consecutive = failed ? this.consecutive + 1 : 0;
      return failed && this.consecutive >= w.threshold;
    }
    this.outcomes.push({ failed, slow, at: this.now });
    if (w.kind === 'count' && this.outcomes.length > w.size) this.outcomes.shift();
    const { calls, failures, slows } = this.totals();
    if (!(failed || slow) || calls < (this.cfg.minimumCalls as number)) return false;
    const slowRate = this.cfg.slowCallMs === undefined ? Number.POSITIVE_INFINITY : (this.cfg.slowCallRate as number);
    return failures / calls >= (this.cfg.failureRate as number) || slows / calls >= slowRate;
  }

  /** The outcomes a rate window judges now: a time window's lie in the current bucket or the `buckets - 1` before. */
  totals(): { calls: number; failures: number; slows: number } {
    const w = this.cfg.window;
    let live = this.outcomes;
    if (w.kind === 'time') {
      const bucketMs = w.sizeMs / w.buckets;
      const current = Math.floor(this.now / bucketMs);
      live = live.filter((o) => Math.floor(o.at / bucketMs) > current - w.buckets);
    }
    return {
      calls: live.length,
      failures: live.filter((o) => o.failed).length,
      slows: live.filter((o) => o.slow).length,
    };
  }

  rates(): string {
    if (this.cfg.window.kind === 'consecutive') return `${this.consecutive} 0`;
    const { calls, failures, slows } = this.totals();
    if (calls === 0) return '0 0';
    return `${failures / calls} ${slows / calls}`;
  }

  toOpen(from: 'closed' | 'half_open'): void {
    this.gen++;
    this.state = 'open';
    this.opens++;
    this.lastBreakMs = this.cfg.halfOpenAfterMs;
    this.openUntil = this.now + this.lastBreakMs;
    this.probes = 0;
    this.successes = 0;
    this.events.push(`${EV.opened} from=${from} break=${this.lastBreakMs} rates=${this.rates()}`);
  }

  toClosed(from: State): void {
    this.gen++;
    this.state = 'closed';
    this.opens = 0;
    this.probes = 0;
    this.successes = 0;
    this.consecutive = 0;
    this.outcomes = [];
    this.events.push(`${EV.closed} from=${from}`);
  }

  isolate(): void {
    this.isolations++;
    if (this.state !== 'isolated') {
      this.gen++;
      this.state = 'isolated';
      this.probes = 0;
      this.events.push(EV.isolated);
    }
    this.releases.push({ epoch: this.epoch, released: false });
  }

  release(index: number): void {
    const r = this.releases[index];
    if (r === undefined || r.released || r.epoch !== this.epoch) return;
    r.released = true;
    if (--this.isolations === 0) this.toClosed('isolated');
  }

  reset(): void {
    const from = this.reported; // `from` is what `state` said: an open breaker past its break was half_open
    this.isolations = 0;
    this.epoch++;
    this.toClosed(from);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The real breaker, driven the same way

interface RealCall {
  readonly settle: (outcome: 'ok' | 'fail' | 'abort') => void;
  readonly result: Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }>;
  readonly error: Error;
  readonly abortReason: Error;
}

interface Real {
  readonly breaker: CircuitBreakerPolicy;
  readonly clock: FakeClock;
  readonly pending: RealCall[];
  readonly releases: (() => void)[];
  readonly events: string[];
}

function makeReal(cfg: Config): Real {
  const clock = new FakeClock();
  const { halfOpenLeaseMs, ...rest } = cfg;
  const breaker = circuitBreaker({ ...rest, ...(halfOpenLeaseMs === undefined ? {} : { halfOpenLeaseMs }), clock });
  const events: string[] = [];
  breaker.on(
    EV.opened as never,
    ((e: { from: string; breakDurationMs: number; failureRate: number; slowCallRate: number }) =>
      events.push(
        `${EV.opened} from=${e.from} break=${e.breakDurationMs} rates=${e.failureRate} ${e.slowCallRate}`,
      )) as never,
  );
  breaker.on(EV.halfOpened as never, (() => events.push(EV.halfOpened)) as never);
  breaker.on(EV.closed as never, ((e: { from: string }) => events.push(`${EV.closed} from=${e.from}`)) as never);
  breaker.on(EV.isolated as never, (() => events.push(EV.isolated)) as never);
  breaker.on(
    EV.rejected as never,
    ((e: { state: string; retryAfterMs: number }) =>
      events.push(`${EV.rejected} ${e.state} ${e.retryAfterMs}`)) as never,
  );
  breaker.on(
    EV.probeExpired as never,
    ((e: { probes: number }) => events.push(`${EV.probeExpired} ${e.probes}`)) as never,
  );
  return { breaker, clock, pending: [], releases: [], events };
}

const check = (cond: boolean, what: string): void => {
  if (!cond) throw new Error(what);
};

function agree(m: Model, r: Real, after: string): void {
  check(r.breaker.state === m.reported, `${after}: state ${r.breaker.state}, model ${m.reported}`);
  check(
    JSON.stringify(r.events) === JSON.stringify(m.events),
    `${after}: events differ\n real:  ${r.events.join(' | ')}\n model: ${m.events.join(' | ')}`,
  );
  check(r.pending.length === m.pending.length, `${after}: pending ${r.pending.length}, model ${m.pending.length}`);
}

type Cmd = fc.AsyncCommand<Model, Real>;

/** Starts a call; `then` settles it at once (a call that takes no time), or leaves it pending. */
class Call implements Cmd {
  constructor(readonly then: 'ok' | 'fail' | 'pending') {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const expected = m.admit();
    let started = false;
    let resolveOp: (v: unknown) => void = () => undefined;
    let rejectOp: (e: unknown) => void = () => undefined;
    const controller = new AbortController();
    const error = new Error('op failed');
    const abortReason = new Error('caller gave up');
    const p = r.breaker.execute(
      () => {
        started = true;
        return new Promise((resolve, reject) => {
          resolveOp = resolve;
          rejectOp = reject;
        });
      },
      { signal: controller.signal },
    );
    const result = p.then(
      (value) => ({ ok: true as const, value }),
      (e: unknown) => ({ ok: false as const, error: e }),
    );
    await r.clock.flush();
    if (expected !== undefined) {
      check(!started, `${this}: the op ran, the model rejects (${expected.state})`);
      const out = await result;
      check(!out.ok && isCircuitOpenError(out.error), `${this}: expected CircuitOpenError`);
      const e = (out as { error: { state: string; retryAfterMs: number } }).error;
      check(
        e.state === expected.state && e.retryAfterMs === expected.retryAfterMs,
        `${this}: rejected with ${e.state} ${e.retryAfterMs}, model ${expected.state} ${expected.retryAfterMs}`,
      );
      agree(m, r, this.toString());
      return;
    }
    check(started, `${this}: the op did not run, the model admits it`);
    const call: RealCall = {
      settle: (outcome) => {
        if (outcome === 'ok') resolveOp('value');
        else if (outcome === 'fail') rejectOp(error);
        else {
          controller.abort(abortReason);
          rejectOp(abortReason);
        }
      },
      result,
      error,
      abortReason,
    };
    r.pending.push(call);
    if (this.then !== 'pending') await settle(m, r, r.pending.length - 1, this.then);
    agree(m, r, this.toString());
  }
  toString(): string {
    return `call(${this.then})`;
  }
}

async function settle(m: Model, r: Real, index: number, outcome: 'ok' | 'fail' | 'abort'): Promise<void> {
  const [call] = r.pending.splice(index, 1);
  if (call === undefined) throw new Error('no such call');
  call.settle(outcome);
  const out = await call.result;
  // The operation's own outcome reaches the caller unchanged; an abort rejects with the caller's reason.
  if (outcome === 'ok') check(out.ok && out.value === 'value', `settle(ok): got ${String(out.ok)}`);
  else if (outcome === 'fail') check(!out.ok && out.error === call.error, 'settle(fail): not the op error');
  else check(!out.ok && out.error === call.abortReason, 'settle(abort): not the abort reason');
  m.settle(index, outcome);
}

class Settle implements Cmd {
  constructor(
    readonly k: number,
    readonly outcome: 'ok' | 'fail' | 'abort',
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.pending.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    await settle(m, r, this.k % m.pending.length, this.outcome);
    agree(m, r, this.toString());
  }
  toString(): string {
    return `settle(#${this.k}, ${this.outcome})`;
  }
}

class Advance implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.clock.advance(this.ms);
    m.now += this.ms;
    agree(m, r, this.toString());
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

class Isolate implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.releases.push(r.breaker.isolate());
    m.isolate();
    agree(m, r, this.toString());
  }
  toString(): string {
    return 'isolate()';
  }
}

class Release implements Cmd {
  constructor(readonly k: number) {}
  check(m: Readonly<Model>): boolean {
    return m.releases.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const i = this.k % m.releases.length;
    (r.releases[i] as () => void)();
    m.release(i);
    agree(m, r, this.toString());
  }
  toString(): string {
    return `release(#${this.k})`;
  }
}

/** A snapshot restored into a new breaker (same options, same clock) gives the same snapshot and state back. */
class RoundTrip implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const saved = r.breaker.snapshot();
    const json = JSON.parse(JSON.stringify(saved)) as typeof saved;
    const { halfOpenLeaseMs, ...rest } = m.cfg;
    const restored = circuitBreaker({
      ...rest,
      ...(halfOpenLeaseMs === undefined ? {} : { halfOpenLeaseMs }),
      clock: r.clock,
      initialState: json,
    });
    check(
      JSON.stringify(restored.snapshot()) === JSON.stringify(saved),
      `${this}: restored ${JSON.stringify(restored.snapshot())}, saved ${JSON.stringify(saved)}`,
    );
    check(restored.state === r.breaker.state, `${this}: restored state ${restored.state}, was ${r.breaker.state}`);
    check(saved.state === m.state, `${this}: snapshot state ${saved.state}, model ${m.state}`);
    agree(m, r, this.toString());
  }
  toString(): string {
    return 'snapshot() round trip';
  }
}

class Reset implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.breaker.reset();
    m.reset();
    agree(m, r, this.toString());
  }
  toString(): string {
    return 'reset()';
  }
}

const callArb = fc
  .constantFrom('ok' as const, 'fail' as const, 'fail' as const, 'pending' as const)
  .map((t) => new Call(t));
const settleArb = fc
  .tuple(fc.nat(), fc.constantFrom('ok' as const, 'fail' as const, 'ok' as const, 'abort' as const))
  .map(([k, o]) => new Settle(k, o));
const advanceArb = fc.constantFrom(1, 10, 49, 50, 100, 399, 400, 1_000, 1_500).map((ms) => new Advance(ms));
/** Weighted by repetition: mostly calls, settlements and time; isolation and reset now and then. */
const commands = [
  callArb,
  callArb,
  callArb,
  callArb,
  settleArb,
  settleArb,
  advanceArb,
  advanceArb,
  fc.constant(new Isolate()),
  fc.nat().map((k) => new Release(k)),
  fc.constant(new Reset()),
  fc.constant(new RoundTrip()),
];

const stats = { runs: 0, commands: 0, opened: 0, rejected: 0, expired: 0 };

describe('circuit breaker against a reference model', () => {
  it('agrees on state, rejections (retryAfterMs) and events, for consecutive, count and time windows', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.commands(commands, { maxCommands: 80, size: 'large' }), async (cfg, cmds) => {
        const model = new Model(cfg);
        const real = makeReal(cfg);
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        stats.runs++;
        stats.commands += [...cmds].length;
        stats.opened += real.events.filter((e) => e.startsWith(EV.opened)).length;
        stats.rejected += real.events.filter((e) => e.startsWith(EV.rejected)).length;
        stats.expired += real.events.filter((e) => e.startsWith(EV.probeExpired)).length;
        // Whatever is still pending settles cleanly and the model keeps agreeing.
        while (model.pending.length > 0) await settle(model, real, 0, 'ok');
        agree(model, real, 'drain');
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 150) },
    );
    if (process.env.MODEL_STATS) console.log(stats);
  });
});
