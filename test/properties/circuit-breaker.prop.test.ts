import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CircuitBreakerOptions,
  type CircuitBreakerPolicy,
  type CircuitState,
  circuitBreaker,
  exponential,
  isCircuitOpenError,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

// ---------------------------------------------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------------------------------------------

interface Config {
  readonly window: { kind: 'consecutive'; threshold: number } | { kind: 'count'; size: number };
  readonly minimumCalls: number | undefined;
  readonly failureRate: number | undefined;
  /** A fixed break, or the parameters of a growing one (exponential, no jitter or equal jitter: never 0). */
  readonly breakMs: number | { initialMs: number; maxMs: number; jitter: 'none' | 'equal' };
  readonly probes: number;
  readonly successes: number;
}

const config: fc.Arbitrary<Config> = fc
  .record({
    consecutive: fc.boolean(),
    threshold: fc.integer({ min: 1, max: 4 }),
    size: fc.integer({ min: 1, max: 8 }),
    minimumCalls: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
    failureRate: fc.option(fc.constantFrom(0.1, 0.25, 0.5, 0.75, 1), { nil: undefined }),
    breakMs: fc.oneof(
      fc.integer({ min: 1, max: 200 }),
      fc.record({
        initialMs: fc.integer({ min: 1, max: 100 }),
        maxMs: fc.integer({ min: 100, max: 800 }),
        jitter: fc.constantFrom('none' as const, 'equal' as const),
      }),
    ),
    probes: fc.integer({ min: 1, max: 3 }),
    successes: fc.integer({ min: 1, max: 3 }),
  })
  .map((r) => ({
    window: r.consecutive
      ? { kind: 'consecutive' as const, threshold: r.threshold }
      : { kind: 'count' as const, size: r.size },
    minimumCalls: r.consecutive || r.minimumCalls === undefined ? undefined : Math.min(r.minimumCalls, r.size),
    failureRate: r.consecutive ? undefined : r.failureRate,
    breakMs: r.breakMs,
    probes: r.probes,
    successes: r.successes,
  }));

function options(c: Config, clock: FakeClock): CircuitBreakerOptions {
  const o: CircuitBreakerOptions = {
    clock,
    window: c.window,
    halfOpenAfterMs: typeof c.breakMs === 'number' ? c.breakMs : exponential(c.breakMs),
    halfOpenProbes: c.probes,
    halfOpenSuccesses: c.successes,
    random: () => 0.5,
  };
  if (c.minimumCalls !== undefined) o.minimumCalls = c.minimumCalls;
  if (c.failureRate !== undefined) o.failureRate = c.failureRate;
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------------------------

type Command =
  | { readonly kind: 'call'; readonly ok: boolean; readonly sync: boolean }
  | { readonly kind: 'batch'; readonly calls: readonly { readonly ok: boolean; readonly order: number }[] }
  | { readonly kind: 'hang'; readonly ok: boolean }
  | { readonly kind: 'settle'; readonly pick: number }
  | { readonly kind: 'abort'; readonly pick: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'isolate' }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'reset' };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('call' as const), ok: fc.boolean(), sync: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      calls: fc.array(fc.record({ ok: fc.boolean(), order: fc.nat(100) }), { minLength: 1, maxLength: 5 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('hang' as const), ok: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(10) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat(10) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 900 })),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'isolate' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(10) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset' as const }) },
);

// ---------------------------------------------------------------------------------------------------------------
// The harness: runs commands against a real breaker and checks invariants at every step
// ---------------------------------------------------------------------------------------------------------------

const STATES: readonly CircuitState[] = ['closed', 'open', 'half_open', 'isolated'];

/** The probes admitted in one half-open generation that are still running. */
interface ProbeGeneration {
  inFlight: number;
}

interface Pending {
  readonly settle: () => void;
  readonly abort: (() => void) | undefined;
}

class Harness {
  readonly clock = new FakeClock(1_000);
  readonly breaker: CircuitBreakerPolicy;
  readonly transitions: string[] = [];
  readonly violations: string[] = [];
  /** Release functions of isolations that are still in force (reset() voids them all). */
  readonly isolations = new Set<() => void>();
  /** Every release function handed out, stale ones included. */
  readonly releases: (() => void)[] = [];
  readonly pending: Pending[] = [];
  readonly config: Config;
  probeGen: ProbeGeneration = { inFlight: 0 };
  lastBreakMs = Number.NaN;
  openUntil = Number.NaN;
  opensDuringStep = 0;
  step = '';

  constructor(c: Config) {
    this.config = c;
    this.breaker = circuitBreaker(options(c, this.clock));
    const newGeneration = (): void => {
      this.probeGen = { inFlight: 0 };
    };
    this.breaker.on('circuit.open', (e) => {
      this.transitions.push('opened');
      this.opensDuringStep++;
      this.lastBreakMs = e.breakDurationMs;
      this.openUntil = this.clock.now() + e.breakDurationMs;
      if (!(e.breakDurationMs > 0 && Number.isFinite(e.breakDurationMs))) {
        this.fail(`circuit.open with a break of ${e.breakDurationMs} ms`);
      }
      if (this.breaker.state !== 'open') this.fail(`state is ${this.breaker.state} inside circuit.open`);
      newGeneration();
    });
    this.breaker.on('circuit.half_open', () => {
      this.transitions.push('half_open');
      newGeneration();
    });
    this.breaker.on('circuit.closed', () => {
      this.transitions.push('closed');
      newGeneration();
    });
    this.breaker.on('circuit.isolated', () => {
      this.transitions.push('isolated');
      newGeneration();
    });
    this.breaker.on('circuit.probe_expired', () => {
      this.transitions.push('probe_expired');
      newGeneration();
    });
  }

  fail(message: string): void {
    this.violations.push(`${this.step}: ${message}`);
  }

  /** Checks the invariants that must hold between any two steps. */
  checkState(): void {
    const state = this.breaker.state;
    if (!STATES.includes(state)) this.fail(`impossible state ${String(state)}`);
    if ((state === 'isolated') !== this.isolations.size > 0) {
      this.fail(`state ${state} with ${this.isolations.size} isolation(s) in force`);
    }
    if (state === 'open' && !(this.clock.now() < this.openUntil)) {
      this.fail(`reports open at ${this.clock.now()}, but the break ended at ${this.openUntil}`);
    }
    if (this.probeGen.inFlight > this.config.probes) {
      this.fail(`${this.probeGen.inFlight} probes running, halfOpenProbes is ${this.config.probes}`);
    }
    const t = this.transitions;
    for (let i = 1; i < t.length; i++) {
      if (t[i] === 'opened') {
        // Look back past events that are not open/close transitions.
        for (let j = i - 1; j >= 0; j--) {
          const prev = t[j];
          if (prev === 'half_open' || prev === 'closed') break;
          if (prev === 'opened') {
            this.fail(`circuit.open twice without half_open or closed between: ${t.slice(j, i + 1).join(', ')}`);
            break;
          }
        }
      }
    }
  }

  /**
   * Starts one call whose operation settles when `settle` is called (or at once for a sync call). Returns the
   * settle function, or undefined when the breaker rejected the call.
   */
  start(ok: boolean, mode: 'sync' | 'async-now' | 'deferred', controller?: AbortController): Pending | undefined {
    const before = this.breaker.state;
    const now = this.clock.now();
    let invoked = false;
    let gen: ProbeGeneration | undefined;
    let resolveOp: ((v: string) => void) | undefined;
    let rejectOp: ((e: unknown) => void) | undefined;
    const failure = new Error('dependency failed');
    const p = this.breaker.execute(
      ({ signal }) => {
        invoked = true;
        if (before === 'half_open') {
          gen = this.probeGen;
          gen.inFlight++;
          if (gen.inFlight > this.config.probes) {
            this.fail(`admitted probe #${gen.inFlight} while halfOpenProbes is ${this.config.probes}`);
          }
        }
        const finish = (): void => {
          if (gen !== undefined) gen.inFlight--;
        };
        if (mode === 'sync') {
          finish();
          if (!ok) throw failure;
          return 'ok';
        }
        if (mode === 'async-now') {
          finish();
          return ok ? Promise.resolve('ok') : Promise.reject(failure);
        }
        return new Promise<string>((resolve, reject) => {
          resolveOp = (v) => {
            finish();
            resolve(v);
          };
          rejectOp = (e) => {
            finish();
            reject(e);
          };
          if (controller !== undefined) {
            // Only a call with its own caller signal listens: without one, ctx.signal is shared by every call.
            const onAbort = (): void => rejectOp?.(signal.reason);
            signal.addEventListener('abort', onAbort, { once: true });
            const settle = rejectOp;
            const done = resolveOp;
            resolveOp = (v) => {
              signal.removeEventListener('abort', onAbort);
              done(v);
            };
            rejectOp = (e) => {
              signal.removeEventListener('abort', onAbort);
              settle(e);
            };
          }
        });
      },
      controller === undefined ? undefined : { signal: controller.signal },
    );
    const outcome: { error?: unknown; rejected: boolean } = { rejected: false };
    p.then(
      () => {},
      (e: unknown) => {
        outcome.rejected = true;
        outcome.error = e;
      },
    );

    if (before === 'isolated' && invoked) this.fail('admitted a call while isolated');
    if (before === 'open' && invoked) this.fail('admitted a call while open');
    if (before === 'closed' && !invoked) this.fail('rejected a call while closed');
    if (!invoked) {
      // Rejections are immediate; inspect the error once its rejection is observable.
      void p.catch((e: unknown) => this.checkRejection(e, before, now));
      return undefined;
    }
    if (mode !== 'deferred') return { settle: () => {}, abort: undefined };
    return {
      settle: () => (ok ? resolveOp?.('ok') : rejectOp?.(failure)),
      abort: controller === undefined ? undefined : () => controller.abort(new Error('caller gave up')),
    };
  }

  checkRejection(e: unknown, before: CircuitState, now: number): void {
    if (!isCircuitOpenError(e)) {
      this.fail(`a rejected call failed with ${String(e)}, not a CircuitOpenError`);
      return;
    }
    const r = e.retryAfterMs;
    if (e.state === 'isolated') {
      if (r !== Number.POSITIVE_INFINITY) this.fail(`isolated rejection with retryAfterMs ${r}`);
      if (before !== 'isolated') this.fail(`isolated rejection while the state was ${before}`);
      return;
    }
    // Open: at most the break. Half-open: at most the probe lease (the break, floored at 1_000 ms).
    const bound = e.state === 'open' ? this.lastBreakMs : Math.max(this.lastBreakMs, 1_000);
    if (!(r > 0 && r <= bound)) {
      this.fail(`${e.state} rejection with retryAfterMs ${r}, break duration ${this.lastBreakMs}`);
    }
    if (e.state === 'open') {
      if (before !== 'open') this.fail(`open rejection while the state was ${before}`);
      if (r !== this.openUntil - now)
        this.fail(`open rejection with retryAfterMs ${r}, expected ${this.openUntil - now}`);
    }
    if (e.state === 'half_open' && before !== 'half_open') this.fail(`half_open rejection while ${before}`);
  }

  async run(cmd: Command, index: number): Promise<void> {
    this.step = `#${index} ${JSON.stringify(cmd)}`;
    this.opensDuringStep = 0;
    switch (cmd.kind) {
      case 'call':
        this.start(cmd.ok, cmd.sync ? 'sync' : 'async-now');
        await this.clock.flush();
        break;
      case 'batch': {
        const started = cmd.calls.map((c) => ({ c, p: this.start(c.ok, 'deferred') }));
        this.checkState();
        const order = [...started].sort((a, b) => a.c.order - b.c.order);
        for (const s of order) {
          s.p?.settle();
          await this.clock.flush();
          this.checkState();
        }
        break;
      }
      case 'hang': {
        const p = this.start(cmd.ok, 'deferred', new AbortController());
        if (p !== undefined) this.pending.push(p);
        await this.clock.flush();
        break;
      }
      case 'settle': {
        if (this.pending.length === 0) break;
        const [p] = this.pending.splice(cmd.pick % this.pending.length, 1);
        p?.settle();
        await this.clock.flush();
        break;
      }
      case 'abort': {
        if (this.pending.length === 0) break;
        const [p] = this.pending.splice(cmd.pick % this.pending.length, 1);
        p?.abort?.();
        await this.clock.flush();
        // A caller's abort is never counted as a failure: it cannot open the breaker.
        if (this.opensDuringStep > 0) this.fail('a caller abort opened the breaker');
        break;
      }
      case 'advance':
        await this.clock.advance(cmd.ms);
        break;
      case 'isolate': {
        const release = this.breaker.isolate();
        this.isolations.add(release);
        this.releases.push(release);
        if (this.breaker.state !== 'isolated') this.fail(`state ${this.breaker.state} right after isolate()`);
        break;
      }
      case 'release': {
        if (this.releases.length === 0) break;
        const release = this.releases[cmd.pick % this.releases.length];
        if (release === undefined) break;
        release();
        this.isolations.delete(release);
        break;
      }
      case 'reset':
        this.breaker.reset();
        this.isolations.clear();
        if (this.breaker.state !== 'closed') this.fail(`state ${this.breaker.state} right after reset()`);
        break;
    }
    this.checkState();
  }

  /** Settles what is still running, so no promise outlives the run. */
  async drain(): Promise<void> {
    for (const p of this.pending.splice(0)) p.settle();
    await this.clock.flush();
    this.checkState();
  }
}

describe('circuit breaker state machine (model-based)', () => {
  it('keeps every invariant under random commands (consecutive and count windows, 1..3 probes)', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(command, { minLength: 1, maxLength: 60, size: 'max' }), async (c, cmds) => {
        const h = new Harness(c);
        for (const [i, cmd] of cmds.entries()) await h.run(cmd, i);
        await h.drain();
        expect(h.violations).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });
});
