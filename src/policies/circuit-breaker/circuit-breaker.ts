import { systemClock } from '../../core/clock.js';
import { ExecutionContext } from '../../core/context.js';
import type { HandlePredicate } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { type Random, systemRandom } from '../../core/random.js';
import { CircuitOpenError, isLocalRejectionError } from '../../errors/errors.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import { classification } from '../handle.js';
import { PolicyBase } from '../policy-base.js';
import type { Backoff } from '../retry/backoff.js';
import type { CircuitBreakerOptions } from './options.js';
import { validateCircuitBreakerOptions } from './validate.js';
import { type CircuitSnapshot, ConsecutiveWindow, CountWindow, TimeWindow, type Window } from './window.js';

/** A breaker's state. */
export type CircuitState = 'closed' | 'open' | 'half_open' | 'isolated';

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const ISOLATED = 3;
const STATE_NAMES: readonly CircuitState[] = ['closed', 'open', 'half_open', 'isolated'];

/**
 * Settle handlers made once per closed generation of a lean breaker (not timed, no result classification). Why: a
 * closure per call (two handlers and their context) was the largest per-call cost of a breaker (measured: about a
 * quarter of its instructions per call), and most calls need nothing of their own when they settle.
 *
 * - `onValue` serves every lean call admitted under `gen`: a success needs only the generation.
 * - `onError` serves the calls whose context cannot abort (no caller signal, no timeout scope) and has this
 *   `operation` and `attempt`: a failure also needs whether the call was aborted (never, for them) and the operation
 *   and attempt its events name. Other calls take a failure closure of their own.
 */
class SharedTrack {
  constructor(
    readonly gen: number,
    readonly operation: string,
    readonly attempt: number,
    readonly onValue: <T>(value: T) => T,
    readonly onError: (error: unknown) => never,
  ) {}
}

/**
 * A circuit breaker. See {@link circuitBreaker}.
 *
 * Every state change bumps a generation number. A call remembers the generation it was admitted under, and its
 * outcome is recorded only if the generation is unchanged: a success of a call admitted while closed cannot close
 * a breaker that opened meanwhile, and concurrent failures open it once.
 */
export class CircuitBreakerPolicy extends PolicyBase {
  #state = CLOSED;
  #gen = 0;
  #openUntil = 0;
  #opens = 0;
  #lastBreakMs = 0;
  #probes = 0;
  #successes = 0;
  #leaseUntil = 0;
  #isolations = 0;
  #isolationEpoch = 0;
  readonly #window: Window;
  readonly #handle: HandlePredicate<unknown>;
  readonly #classifyResults: boolean;
  readonly #slowCallMs: number;
  readonly #timed: boolean;
  readonly #breakMs: number | Backoff;
  readonly #maxProbes: number;
  readonly #needed: number;
  readonly #leaseMs: number | undefined;
  readonly #random: Random;
  /** Neither timed nor classifying results: a settled call needs no start time, and a success no `handle` call. */
  readonly #lean: boolean;
  /** The shared handlers of the current closed generation (made by its first lean call that may share them). */
  #shared: SharedTrack | undefined = undefined;

  /** @internal Use {@link circuitBreaker}. */
  constructor(options: CircuitBreakerOptions) {
    super(options.name ?? 'circuit-breaker', options.clock ?? systemClock);
    const w = options.window ?? { kind: 'count' };
    const rates = {
      failureRate: options.failureRate ?? 0.5,
      slowCallRate: options.slowCallMs === undefined ? Number.POSITIVE_INFINITY : (options.slowCallRate ?? 1),
      minimumCalls: options.minimumCalls ?? (w.kind === 'count' ? Math.min(20, w.size ?? 100) : 20),
    };
    this.#window =
      w.kind === 'consecutive'
        ? new ConsecutiveWindow(w.threshold ?? 5)
        : w.kind === 'count'
          ? new CountWindow(w.size ?? 100, rates)
          : new TimeWindow(w.sizeMs ?? 60_000, w.buckets ?? 10, rates);
    const classify = classification(options.handle);
    this.#handle = classify.predicate;
    this.#classifyResults = classify.results;
    this.#slowCallMs = options.slowCallMs ?? Number.POSITIVE_INFINITY;
    this.#timed = options.slowCallMs !== undefined || w.kind === 'time';
    this.#breakMs = options.halfOpenAfterMs ?? 10_000;
    this.#maxProbes = options.halfOpenProbes ?? 1;
    this.#needed = options.halfOpenSuccesses ?? 1;
    this.#leaseMs = options.halfOpenLeaseMs;
    this.#random = options.random ?? systemRandom;
    this.#lean = !this.#timed && !this.#classifyResults;
    if (options.initialState !== undefined) this.#restore(options.initialState);
    trackInstance('circuit_breaker', this);
  }

  /** The current state. An open breaker whose break has passed reports `'half_open'`. */
  get state(): CircuitState {
    if (this.#state === OPEN && this._clock.now() >= this.#openUntil) return 'half_open';
    return STATE_NAMES[this.#state] as CircuitState;
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    // The common call first, in as little bytecode as it takes: V8 inlines a limited amount of bytecode into one
    // optimised function, and what this method spends is taken from the operation's own callees. Shared handlers of
    // the current generation exist only while closed (every state change bumps the generation) and lean.
    const s = this.#shared;
    if (
      s !== undefined &&
      s.gen === this.#gen &&
      ctx._caller === undefined &&
      ctx._scope === undefined &&
      s.operation === ctx.operation &&
      s.attempt === ctx.attempt
    ) {
      return next(ctx, op).then(s.onValue, s.onError);
    }
    return this.#runOther(ctx, op, next);
  }

  /** `_run` for every call but the common one. */
  #runOther<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (this.#state !== CLOSED) {
      const rejection = this.#admit(ctx);
      if (rejection !== undefined) return Promise.reject(rejection);
    } else if (this.#lean) {
      let s = this.#shared;
      if (s === undefined || s.gen !== this.#gen) s = this.#share(ctx);
      if (
        ctx._caller === undefined &&
        ctx._scope === undefined &&
        s.operation === ctx.operation &&
        s.attempt === ctx.attempt
      ) {
        return next(ctx, op).then(s.onValue, s.onError);
      }
      return next(ctx, op).then(s.onValue, this.#onError(ctx, s.gen));
    }
    // A probe, or a call of a timed or result-classifying breaker: its success needs its start or context too.
    return this.#track(ctx, op, next, this.#gen);
  }

  /**
   * A failure handler of one lean call, admitted while closed under `gen`. A method of its own, not a closure made
   * in `_run`: a closure there would make `_run` allocate its captured context on every call, shared path included.
   */
  #onError(ctx: ExecutionContext, gen: number): (error: unknown) => never {
    return (error) => {
      this._failed(ctx, gen, 0, error);
      throw error;
    };
  }

  /** Makes the current closed generation's shared handlers; their failure handler serves calls like `ctx`. */
  #share(ctx: ExecutionContext): SharedTrack {
    const gen = this.#gen;
    // A context of our own, not the call's: holding the call's would keep its properties alive.
    const standIn = new ExecutionContext(undefined, ctx.operation, undefined, ctx.attempt, undefined, undefined);
    this.#shared = new SharedTrack(
      gen,
      ctx.operation,
      ctx.attempt,
      (value) => {
        // The generation is unchanged, so the breaker is still closed: the same as _succeeded's fast path.
        if (gen === this.#gen) this.#window.record(false, false, 0);
        return value;
      },
      (error: unknown) => {
        this._failed(standIn, gen, 0, error);
        throw error;
      },
    );
    return this.#shared;
  }

  /** Admission outside the closed state: undefined to admit (taking a probe slot), or the rejection. */
  #admit(ctx: ExecutionContext): CircuitOpenError | undefined {
    if (this.#state === ISOLATED) return this.#reject(ctx, Number.POSITIVE_INFINITY, 'isolated');
    const now = this._clock.now();
    if (this.#state === OPEN) {
      if (now < this.#openUntil) return this.#reject(ctx, this.#openUntil - now, 'open');
      this.#toHalfOpen(ctx);
    }
    if (this.#probes >= this.#maxProbes) {
      if (now < this.#leaseUntil) return this.#reject(ctx, this.#leaseUntil - now, 'half_open');
      // Every probe slot is held past its lease: the probes hung. Start a new half-open generation, so their
      // late outcomes are ignored, and admit this call as a fresh probe.
      const hung = this.#probes;
      this.#gen++;
      this.#probes = 0;
      this.#successes = 0;
      if (this._events.wants(EV.circuitProbeExpired)) {
        this._events.emit(EV.circuitProbeExpired, {
          type: 'circuit.probe_expired',
          policy: this.name,
          operation: ctx.operation,
          attempt: ctx.attempt,
          probes: hung,
        });
      }
    }
    this.#probes++;
    // The floor: a probe that has run for no time is not hung, even when the break is 0 or jitter drew 0.
    this.#leaseUntil = now + (this.#leaseMs ?? Math.max(this.#lastBreakMs, 1_000));
    return undefined;
  }

  #reject(ctx: ExecutionContext, retryAfterMs: number, state: 'open' | 'half_open' | 'isolated'): CircuitOpenError {
    if (this._events.wants(EV.circuitRejected)) {
      this._events.emit(EV.circuitRejected, {
        type: 'circuit.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        state,
        retryAfterMs,
      });
    }
    return CircuitOpenError.fast(this.name, retryAfterMs, state);
  }

  /**
   * Runs an admitted call and records its outcome: probes, and every call of a timed or result-classifying breaker.
   * `.then` with two closures instead of an async frame: measurably cheaper per call.
   */
  #track<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, gen: number): Promise<T> {
    const start = this._startTime();
    return next(ctx, op).then(
      (value) => {
        this._succeeded(ctx, gen, start, value);
        return value;
      },
      (error: unknown) => {
        this._failed(ctx, gen, start, error);
        throw error;
      },
    );
  }

  /** @internal The generation a call admitted now is tracked under, or -1 when not closed (fused pipelines). */
  _closedGen(): number {
    return this.#state === CLOSED ? this.#gen : -1;
  }

  /** @internal Whether a tracked call's start time is consumed (slow calls, time windows). */
  _timed(): boolean {
    return this.#timed;
  }

  /** @internal When a tracked call starts: the clock, only if something consumes it. */
  _startTime(): number {
    return this.#timed ? this._clock.now() : 0;
  }

  /** @internal Records a tracked call's success. Throws the `handle` predicate's own error, if it throws. */
  _succeeded(ctx: ExecutionContext, gen: number, start: number, value: unknown): void {
    if (this.#classifyResults || this.#timed || this.#state !== CLOSED || gen !== this.#gen) {
      this.#classify(gen, start, ctx, true, value);
    } else {
      this.#window.record(false, false, 0);
    }
  }

  /** @internal Records a tracked call's failure. Throws the `handle` predicate's own error, if it throws. */
  _failed(ctx: ExecutionContext, gen: number, start: number, error: unknown): void {
    if (ctx._aborted || isLocalRejectionError(error)) {
      // The caller gave up, or bulwark refused the call before it reached the dependency (a full bulkhead,
      // an inner open breaker): this says nothing about the dependency's health. Counting a local burst's
      // rejections would open the breaker against a healthy upstream. Free the probe slot, count nothing.
      this.#neutral(gen);
    } else {
      this.#classify(gen, start, ctx, false, error);
    }
  }

  #classify(gen: number, start: number, ctx: ExecutionContext, ok: boolean, valueOrError: unknown): void {
    let failed: boolean;
    try {
      failed = ok
        ? this.#classifyResults && this.#handle({ ok: true, value: valueOrError })
        : this.#handle({ ok: false, error: valueOrError });
    } catch (predicateError) {
      // A throwing predicate must not leak a probe slot or wedge the state; the caller gets its error.
      this.#neutral(gen);
      throw predicateError;
    }
    const now = this.#timed ? this._clock.now() : 0;
    this.#record(gen, failed, now - start >= this.#slowCallMs, now, ctx);
  }

  /** An outcome that counts neither way: only a probe slot is given back. */
  #neutral(gen: number): void {
    if (gen === this.#gen && this.#state === HALF_OPEN) this.#probes--;
  }

  #record(gen: number, failed: boolean, slow: boolean, now: number, ctx: ExecutionContext): void {
    if (gen !== this.#gen) return; // admitted under an older state: its outcome cannot change the new one
    if (this.#state === CLOSED) {
      if (this.#window.record(failed, slow, now)) this.#toOpen(ctx, 'closed');
      return;
    }
    // Same generation and not closed: this is a probe of the current half-open state (open and isolated
    // admit nothing, and every transition bumps the generation).
    this.#probes--;
    if (failed || slow) this.#toOpen(ctx, 'half_open');
    else if (++this.#successes >= this.#needed) this.#toClosed(ctx, 'half_open');
  }

  #toOpen(ctx: ExecutionContext, from: 'closed' | 'half_open'): void {
    const now = this._clock.now();
    this.#gen++;
    this.#state = OPEN;
    this.#opens++;
    const b = this.#breakMs;
    this.#lastBreakMs = typeof b === 'number' ? b : b.delay(this.#opens, this.#lastBreakMs, this.#random);
    this.#openUntil = now + this.#lastBreakMs;
    this.#probes = 0;
    this.#successes = 0;
    if (this._events.wants(EV.circuitOpen)) {
      const rate = this.#window.rates(now);
      this._events.emit(EV.circuitOpen, {
        type: 'circuit.open',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        breakDurationMs: this.#lastBreakMs,
        from,
        failureRate: rate[0],
        slowCallRate: rate[1],
      });
    }
  }

  #toHalfOpen(ctx: ExecutionContext): void {
    this.#gen++;
    this.#state = HALF_OPEN;
    this.#probes = 0;
    this.#successes = 0;
    if (this._events.wants(EV.circuitHalfOpen)) {
      this._events.emit(EV.circuitHalfOpen, {
        type: 'circuit.half_open',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
      });
    }
  }

  #toClosed(ctx: { operation: string; attempt: number }, from: CircuitState): void {
    this.#gen++;
    this.#state = CLOSED;
    this.#opens = 0;
    this.#probes = 0;
    this.#successes = 0;
    this.#window.reset();
    if (this._events.wants(EV.circuitClosed)) {
      this._events.emit(EV.circuitClosed, {
        type: 'circuit.closed',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        from,
      });
    }
  }

  /**
   * Holds the breaker open by hand (every call is rejected with `CircuitOpenError`, `retryAfterMs: Infinity`)
   * until the returned function is called. Isolations nest: the breaker stays isolated until every one is
   * released, then closes with a fresh window. `reset()` ends every isolation at once.
   *
   * @example
   * ```ts
   * const release = breaker.isolate(); // during a maintenance window
   * release();
   * ```
   */
  isolate(): () => void {
    this.#isolations++;
    if (this.#state !== ISOLATED) {
      this.#gen++;
      this.#state = ISOLATED;
      this.#probes = 0;
      if (this._events.wants(EV.circuitIsolated)) {
        this._events.emit(EV.circuitIsolated, {
          type: 'circuit.isolated',
          policy: this.name,
          operation: 'default',
          attempt: 0,
        });
      }
    }
    const epoch = this.#isolationEpoch;
    let released = false;
    return () => {
      if (released || epoch !== this.#isolationEpoch) return;
      released = true;
      if (--this.#isolations === 0) this.#toClosed({ operation: 'default', attempt: 0 }, 'isolated');
    };
  }

  /** Closes the breaker now, with a fresh window, and ends every isolation. */
  reset(): void {
    const from = this.state; // what `state` said just before: an open breaker past its break is half_open
    this.#isolations = 0;
    this.#isolationEpoch++;
    this.#toClosed({ operation: 'default', attempt: 0 }, from);
  }

  /** The state as plain JSON, to persist and pass back as `initialState`. */
  snapshot(): CircuitSnapshot {
    const now = this._clock.now();
    return {
      version: 1,
      state: STATE_NAMES[this.#state] as CircuitState,
      openRemainingMs: this.#state === OPEN ? Math.max(0, this.#openUntil - now) : 0,
      consecutiveOpens: this.#opens,
      lastBreakMs: this.#lastBreakMs,
      window: this.#window.snapshot(now),
    };
  }

  #restore(s: CircuitSnapshot): void {
    const now = this._clock.now();
    this.#state = STATE_NAMES.indexOf(s.state);
    this.#opens = s.consecutiveOpens;
    this.#lastBreakMs = s.lastBreakMs;
    this.#openUntil = now + s.openRemainingMs;
    if (this.#state === ISOLATED) this.#isolations = 1;
    this.#window.restore(s.window, now);
  }
}

/**
 * Stops calling a dependency that keeps failing, and probes it again after a break.
 *
 * - Windows: `consecutive` failures, or failure and slow-call rates over the last `size` calls (`count`) or the
 *   last `sizeMs` (`time`, buckets rotating lazily: no timers); rates are judged once `minimumCalls` are in.
 * - Open: calls are rejected at once with a stack-free `CircuitOpenError` carrying `retryAfterMs`.
 * - Half-open (after `halfOpenAfterMs`, fixed or a growing backoff): `halfOpenProbes` calls at a time are let
 *   through; `halfOpenSuccesses` successes close it, any failure opens it again. A probe that hangs loses its slot
 *   after `halfOpenLeaseMs` (the break duration, at least 1 s), so the breaker is never wedged.
 * - Outcomes of calls admitted before a state change are ignored. A caller's abort and bulwark's own local
 *   rejections (a full inner bulkhead, an inner open breaker: {@link isLocalRejectionError}) are never counted,
 *   whatever `handle` says: they say nothing about the dependency.
 * - `isolate()`, `reset()`, `state`, `snapshot()` and `initialState`.
 *
 * Place it inside retry and outside timeout; see docs/concepts.md for the order.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const breaker = circuitBreaker({
 *   window: { kind: 'count', size: 100 },
 *   failureRate: 0.5,
 *   minimumCalls: 20,
 *   halfOpenAfterMs: 10_000,
 * });
 * await breaker.execute(() => callInventory());
 * ```
 */
export function circuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreakerPolicy {
  validateCircuitBreakerOptions(options);
  return new CircuitBreakerPolicy(options);
}
