import { systemClock, type TimerHandle } from '../../core/clock.js';
import { CancelScope, type ExecutionContext } from '../../core/context.js';
import { DeadlineQueue } from '../../core/deadline-queue.js';
import type { HandlePredicate, Outcome } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { RETRYABLE } from '../../core/properties.js';
import { pushbackIn } from '../../core/pushback.js';
import { keepShape } from '../../core/shapes.js';
import { HedgeCancelledError, isLocalRejectionError } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { checkHandle, classification } from '../handle.js';
import { PolicyBase } from '../policy-base.js';
import { isRetryBudget, type RetryBudget } from '../retry-budget/retry-budget.js';
import { LatencyQuantile } from './latency.js';
import {
  HEDGE_OPTION_NAMES,
  HEDGE_QUANTILE_OPTION_NAMES,
  type HedgeDelay,
  type HedgeOptions,
  type HedgeQuantileDelay,
} from './options.js';

/** A hedged attempt (not the primary): its own cancel scope, so a loser can be aborted alone. */
class HedgeAttempt extends CancelScope {
  /** The call it is a hedge of (for a commit, see {@link commitHedge}). */
  readonly call: HedgeCall<unknown>;
  /** Its attempt number: the call's + k for hedge k. */
  readonly number: number;
  /** When it started, on the policy's clock (0 unless latencies are sampled). */
  readonly start: number;
  /** Settled (its outcome was seen). */
  done = false;

  constructor(call: HedgeCall<unknown>, number: number, start: number) {
    super();
    this.call = call;
    this.number = number;
    this.start = start;
  }

  _expire(): void {
    // Never queued: the call, not its attempts, waits for the next hedge's deadline.
  }

  _onAbort(): void {
    // Never subscribed to anything: the call aborts its attempts itself.
  }
}

/**
 * The state of one hedged call, and the cancel scope of its primary attempt. It waits in the policy's deadline
 * queue when the delay is a constant (one timer for every call), on a timer of its own otherwise.
 *
 * Why one object for the call and its primary's scope, and hedges in an array made only when one starts: a call
 * that needs no hedge (nearly all of them, hedging the slow tail) then costs one object, one derived context and
 * one reaction, measured with callgrind (a separate scope object and an array per call cost about 700 instructions,
 * splicing settled attempts out of it 250 more).
 */
class HedgeCall<T> extends CancelScope {
  readonly #policy: HedgePolicy;
  readonly #ctx: ExecutionContext;
  readonly #op: Operation<T>;
  readonly #next: Next;
  readonly #resolve: (value: T) => void;
  readonly #reject: (reason: unknown) => void;
  /** Hedged attempts started (settled ones included), made on the first hedge. */
  #hedges: HedgeAttempt[] | undefined = undefined;
  /** Attempts started and not settled, the primary included. */
  #running = 0;
  /** Whether the primary (this scope's attempt) has settled. */
  #primaryDone = false;
  /** When the primary started (0 unless latencies are sampled). */
  #primaryStart = 0;
  #done = false;
  /** No more hedges: the budget refused, or the call must not run twice. */
  #stopped = false;
  #subscribed = false;
  /**
   * What the next hedge waits for: 0 nothing, 1 the delay (in the policy's deadline queue, or on `#timer`), 2 a
   * server's pushback (on `#timer`, whatever the delay).
   */
  #queued: 0 | 1 | 2 = 0;
  #timer: TimerHandle = undefined;
  /** The scope of the attempt the call committed to (`this` for the primary), see {@link commitHedge}. */
  #committed: CancelScope | undefined = undefined;
  /** The primary's failure, what the caller gets when every attempt fails. */
  #primary: Outcome<T> | undefined = undefined;

  constructor(
    policy: HedgePolicy,
    ctx: ExecutionContext,
    op: Operation<T>,
    next: Next,
    resolve: (value: T) => void,
    reject: (reason: unknown) => void,
  ) {
    super();
    this.#policy = policy;
    this.#ctx = ctx;
    this.#op = op;
    this.#next = next;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    const policy = this.#policy;
    const ctx = this.#ctx;
    this.#subscribed = ctx._subscribe(this);
    policy._budget?._enter();
    this.#running = 1;
    if (policy._sampled) this.#primaryStart = policy._clock.now();
    this.#next(ctx._derive(ctx.attempt, this), this.#op).then(
      (value) => this.#settled(undefined, true, value),
      (error: unknown) => this.#settled(undefined, false, error),
    );
    this.#schedule();
  }

  /** Attempts started, the primary included. */
  get #started(): number {
    return this.#hedges === undefined ? 1 : 1 + this.#hedges.length;
  }

  /** Whether another hedge may start. */
  #canHedge(): boolean {
    return !this.#done && !this.#stopped && this.#started <= this.#policy.maxHedgedAttempts;
  }

  /** Starts the next hedge; false when it may not start after all (RETRYABLE false, the budget refused). */
  #launch(trigger: 'delay' | 'failure' | 'parallel'): boolean {
    const policy = this.#policy;
    const ctx = this.#ctx;
    const number = ctx.attempt + this.#started;
    // A call that must not run twice (RETRYABLE set to false, by the caller, the operation or an adapter for a
    // non-idempotent request) gets no more hedges, from the moment it says so.
    if (ctx._root._extra?.props?.get(RETRYABLE) === false) {
      this.#stopped = true;
      return false;
    }
    const budget = policy._budget;
    if (budget !== undefined && !budget._acquire()) {
      this.#stopped = true;
      policy._refused(ctx, number);
      return false;
    }
    policy._launched(ctx, number, trigger);
    const attempt = new HedgeAttempt(this as HedgeCall<unknown>, number, policy._sampled ? policy._clock.now() : 0);
    (this.#hedges ??= []).push(attempt);
    this.#running++;
    this.#next(ctx._derive(number, attempt), this.#op).then(
      (value) => this.#settled(attempt, true, value),
      (error: unknown) => this.#settled(attempt, false, error),
    );
    return true;
  }

  /** Arranges the next hedge: now (parallel), after a delay (latency), or on a failure (fallback: nothing now). */
  #schedule(): void {
    while (this.#canHedge()) {
      let delayMs: number;
      try {
        delayMs = this.#policy._delayFor(this.#started, this.#ctx);
      } catch (error) {
        this.#finish(false, error, 0);
        return;
      }
      if (delayMs < 0) return;
      if (delayMs > 0) {
        this.#queued = 1;
        const queue = this.#policy._queue;
        if (queue !== undefined) queue.add(this);
        else this.#timer = this.#policy._clock.setTimeout(() => this._expire(), delayMs);
        return;
      }
      if (!this.#launch('parallel')) return;
    }
  }

  #unschedule(): void {
    const queued = this.#queued;
    if (queued === 0) return;
    this.#queued = 0;
    const queue = this.#policy._queue;
    if (queued === 1 && queue !== undefined) queue.remove(this);
    else this.#policy._clock.clearTimeout(this.#timer);
  }

  /** The delay passed with no acceptable outcome: start the next hedge. */
  _expire(): void {
    this.#queued = 0;
    if (this.#canHedge() && this.#launch('delay')) this.#schedule();
  }

  /**
   * A failure that carries a server's pushback (gRFC A6): `'stop'` starts no more hedges (the attempts running go
   * on); ms starts the next hedge after that long instead of at once, and the delays after it count from then.
   */
  #pushback(push: number | 'stop'): void {
    this.#unschedule();
    if (push === 'stop') {
      this.#stopped = true;
      return;
    }
    if (push === 0) {
      if (this.#launch('failure')) this.#schedule();
      return;
    }
    this.#queued = 2;
    this.#timer = this.#policy._clock.setTimeout(() => {
      this.#queued = 0;
      if (this.#canHedge() && this.#launch('failure')) this.#schedule();
      else if (this.#running === 0 && !this.#done) this.#allFailed(0);
    }, push);
  }

  /**
   * @internal The attempt of `scope` (this call's scope for the primary, else a hedge's) is committed (gRFC A6: it
   * received the response headers or a message): no more hedges start, every other attempt is aborted with a
   * `HedgeCancelledError`, and its outcome, whatever it is, is the call's. Once per call: a later one is ignored.
   */
  _commit(scope: CancelScope): void {
    if (this.#done || this.#committed !== undefined || scope.aborted) return;
    this.#committed = scope;
    this.#stopped = true;
    this.#unschedule();
    const winner = scope instanceof HedgeAttempt ? scope.number : this.#ctx.attempt;
    const reason = new HedgeCancelledError(this.#policy.name, winner);
    if (scope !== this && !this.#primaryDone) this.abort(reason);
    const hedges = this.#hedges;
    if (hedges !== undefined) for (const h of hedges) if (h !== scope && !h.done) h.abort(reason);
  }

  /** The caller (or an enclosing timeout) aborted: every attempt aborts with its reason, the call rejects with it. */
  _onAbort(reason: unknown): void {
    if (this.#done) return;
    this.#end(reason);
    this.#reject(reason);
  }

  /** An attempt settled: `attempt` is a hedge, or undefined for the primary. */
  #settled(attempt: HedgeAttempt | undefined, ok: boolean, valueOrError: unknown): void {
    this.#running--;
    const policy = this.#policy;
    const number = attempt === undefined ? this.#ctx.attempt : attempt.number;
    if (attempt === undefined) this.#primaryDone = true;
    else {
      attempt.done = true;
      // A hedge holds a place in the budget until it settles, late or not.
      policy._budget?._release();
    }
    if (policy._sampled && ok) policy._sample(policy._clock.now() - (attempt?.start ?? this.#primaryStart));
    if (this.#done) {
      policy._late(this.#ctx, number, ok ? { ok: true, value: valueOrError } : { ok: false, error: valueOrError });
      return;
    }
    if (this.#committed !== undefined) {
      this.#settledCommitted(attempt ?? this, ok, valueOrError, number);
      return;
    }
    if (ok && !policy._classifyResults) {
      // The common case: a value, and only errors are judged. It wins.
      policy._budget?._succeeded();
      this.#finish(true, valueOrError, number);
      return;
    }
    const outcome: Outcome<T> = ok ? { ok: true, value: valueOrError as T } : { ok: false, error: valueOrError };
    let handled: boolean;
    try {
      handled = policy._handle(outcome);
    } catch (predicateError) {
      // A throwing predicate ends the call with its own error, as in every policy.
      this.#finish(false, predicateError, number);
      return;
    }
    const budget = policy._budget;
    if (!handled) {
      if (ok) budget?._succeeded();
      this.#finish(ok, valueOrError, number);
      return;
    }
    if (budget !== undefined && (ok || !isLocalRejectionError(valueOrError))) budget._failed();
    if (attempt === undefined) this.#primary = outcome;
    // A server's pushback (set by bulwark/grpc only) delays or stops the next hedge.
    const push = ok ? undefined : pushbackIn(valueOrError);
    if (push !== undefined) {
      if (this.#canHedge()) this.#pushback(push);
    } else if (this.#canHedge()) {
      // A failure starts the next hedge at once (every mode); the delay for the one after restarts from now.
      this.#unschedule();
      if (this.#launch('failure')) this.#schedule();
    }
    // Not while a pushback holds the next hedge back: it is still to come.
    if (this.#running === 0 && this.#queued !== 2 && !this.#done) this.#allFailed(number, outcome);
  }

  /** Every attempt failed and no more will start: the call settles with the primary's failure. */
  #allFailed(number: number, outcome?: Outcome<T>): void {
    const last = this.#primary ?? outcome;
    if (last === undefined) return; // unreachable: the primary settles before the last attempt does
    if (last.ok) this.#finish(true, last.value, number);
    else this.#finish(false, last.error, number);
  }

  /**
   * An attempt settled after the call committed: the committed one's outcome is the call's, whatever it is; another
   * (aborted by the commit) is reported as a late outcome.
   */
  #settledCommitted(scope: CancelScope, ok: boolean, valueOrError: unknown, number: number): void {
    const policy = this.#policy;
    if (scope !== this.#committed) {
      policy._late(this.#ctx, number, ok ? { ok: true, value: valueOrError } : { ok: false, error: valueOrError });
      return;
    }
    const budget = policy._budget;
    if (budget !== undefined) {
      let handled = !ok;
      try {
        handled = policy._handle(ok ? { ok: true, value: valueOrError } : { ok: false, error: valueOrError });
      } catch {
        // The budget's count only: the outcome is the call's whatever the predicate says.
      }
      if (!handled) {
        if (ok) budget._succeeded();
      } else if (ok || !isLocalRejectionError(valueOrError)) budget._failed();
    }
    this.#finish(ok, valueOrError, number);
  }

  /** Settles the call; `winner` is the attempt whose outcome it is (0: none). */
  #finish(ok: boolean, valueOrError: unknown, winner: number): void {
    this.#end(this.#running > 0 ? new HedgeCancelledError(this.#policy.name, winner) : undefined);
    if (ok) this.#resolve(valueOrError as T);
    else this.#reject(valueOrError);
  }

  /** The call is over: no more hedges, the attempts still running are aborted with `reason`. */
  #end(reason: unknown): void {
    this.#done = true;
    this.#unschedule();
    if (this.#subscribed) {
      this.#subscribed = false;
      this.#ctx._unsubscribe(this);
    }
    this.#policy._budget?._leave();
    if (this.#running === 0) return;
    // Not twice: attempts a commit aborted keep its reason.
    if (!this.#primaryDone && !this.aborted) this.abort(reason);
    const hedges = this.#hedges;
    if (hedges !== undefined) for (const h of hedges) if (!h.done && !h.aborted) h.abort(reason);
  }
}

// Keep the per-call maps alive across full GCs (see shapes.ts): without them every full GC threw away the optimised
// code of the hedge's call path (the deopt suite counted 67 deopts of one function in 100 GC-stressed batches). A
// queued call's deadline and a sampled attempt's start hold fractions of a ms.
keepShape(
  new HedgeCall<unknown>(
    undefined as unknown as HedgePolicy,
    undefined as unknown as ExecutionContext,
    () => undefined,
    undefined as unknown as Next,
    () => undefined,
    () => undefined,
  ),
)._deadline = 0.5;
keepShape(new HedgeAttempt(undefined as unknown as HedgeCall<unknown>, 1, 0.5));

/**
 * Commits the hedged call `ctx` is an attempt of (the innermost hedge around it) to that attempt: see
 * `HedgeCall._commit`. Nothing when no hedge is around `ctx`. For integrations whose attempt becomes the call's
 * before it settles (gRFC A6: a gRPC attempt that received response headers or a message).
 * @internal
 */
export function commitHedge(ctx: ExecutionContext): void {
  for (let c: ExecutionContext | undefined = ctx; c !== undefined; c = c._parent) {
    const scope = c._scope;
    if (scope instanceof HedgeCall) {
      scope._commit(scope);
      return;
    }
    if (scope instanceof HedgeAttempt) {
      scope.call._commit(scope);
      return;
    }
  }
}

/**
 * A hedging policy. See {@link hedge}.
 */
export class HedgePolicy extends PolicyBase {
  /** How many attempts may start besides the first. */
  readonly maxHedgedAttempts: number;
  readonly #delay: HedgeDelay;
  readonly #quantile: LatencyQuantile | undefined;
  /** @internal */
  readonly _handle: HandlePredicate<unknown>;
  /** @internal Whether results are judged too (else a value always wins). */
  readonly _classifyResults: boolean;
  /** @internal */
  readonly _budget: RetryBudget | undefined;
  /** @internal Whether attempts are timed (for the quantile). */
  readonly _sampled: boolean;
  /** @internal The deadline queue of a constant delay > 0 (one timer for every call). */
  readonly _queue: DeadlineQueue | undefined;

  /** @internal Use {@link hedge}. */
  constructor(options: HedgeOptions) {
    super(options.name ?? 'hedge', options.clock ?? systemClock);
    this.maxHedgedAttempts = options.maxHedgedAttempts ?? 1;
    this.#delay = options.delayMs ?? 2_000;
    const q: HedgeQuantileDelay | undefined = options.delayQuantile;
    this.#quantile = q === undefined ? undefined : new LatencyQuantile(q.quantile, q.samples ?? 1_000, minSamplesOf(q));
    this._sampled = this.#quantile !== undefined;
    const classify = classification(options.handle);
    this._handle = classify.predicate;
    this._classifyResults = classify.results;
    this._budget = options.budget;
    const d = this.#delay;
    this._queue =
      this.#quantile === undefined && typeof d === 'number' && d > 0 ? new DeadlineQueue(this._clock, d) : undefined;
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (ctx._aborted) return Promise.reject(ctx._reason);
    return new Promise<T>((resolve, reject) => {
      new HedgeCall<T>(this, ctx, op, next, resolve, reject).start();
    });
  }

  /** @internal The delay before hedge number `hedge` (1 for the first), in ms; throws a TypeError for a bad one. */
  _delayFor(hedge: number, ctx: ExecutionContext): number {
    if (this.#quantile !== undefined) {
      const learned = this.#quantile.value();
      if (learned >= 0) return learned;
    }
    const d = this.#delay;
    if (typeof d === 'number') return d;
    const ms = d(hedge, ctx);
    if (typeof ms !== 'number' || Number.isNaN(ms) || ms === Number.POSITIVE_INFINITY) {
      throw new TypeError(
        `hedge "${this.name}": the delayMs function returned ${describe(ms)} for hedge ${hedge}; expected a finite number (> 0: wait, 0: at once, < 0: only after a failure)`,
      );
    }
    return ms;
  }

  /** @internal Records a successful attempt's latency. */
  _sample(ms: number): void {
    this.#quantile?.record(ms);
  }

  /** @internal */
  _launched(ctx: ExecutionContext, attempt: number, trigger: 'delay' | 'failure' | 'parallel'): void {
    if (!this._events.wants(EV.hedgeLaunched)) return;
    this._events.emit(EV.hedgeLaunched, {
      type: 'hedge.launched',
      policy: this.name,
      operation: ctx.operation,
      attempt,
      trigger,
    });
  }

  /** @internal */
  _refused(ctx: ExecutionContext, attempt: number): void {
    if (!this._events.wants(EV.hedgeRefused)) return;
    this._events.emit(EV.hedgeRefused, {
      type: 'hedge.refused',
      policy: this.name,
      operation: ctx.operation,
      attempt,
      reason: 'budget',
    });
  }

  /** @internal */
  _late(ctx: ExecutionContext, attempt: number, outcome: Outcome<unknown>): void {
    if (!this._events.wants(EV.hedgeLateOutcome)) return;
    this._events.emit(EV.hedgeLateOutcome, {
      type: 'hedge.late_outcome',
      policy: this.name,
      operation: ctx.operation,
      attempt,
      outcome,
    });
  }
}

/**
 * The samples a learned delay needs: as given, else 100, or every sample kept when `samples` is smaller. Why the
 * default yields: `{ samples: 50 }` alone was refused, blaming a `minSamples` of 100 the caller never gave.
 */
function minSamplesOf(q: HedgeQuantileDelay): number {
  return q.minSamples ?? Math.min(100, q.samples ?? 1_000);
}

/**
 * Hedges slow calls: when an attempt has not settled after a delay, another one starts, and the first acceptable
 * outcome wins. Modes, as Polly v8 names them, follow the delay: latency (`delayMs` > 0), parallel (0: every attempt
 * at once) and fallback (< 0: the next attempt only after a failure). `delayQuantile` learns the delay from recent
 * latencies (say the p95), so only the slow tail is hedged.
 *
 * - Each attempt runs in its own cancel scope, with its own `ctx.signal` and attempt number (the primary keeps the
 *   call's; hedge k gets the call's + k). The first outcome `handle` does not count as a failure wins: a value, or a
 *   final error (one `handle` rejects). Every other attempt's signal then aborts with a `HedgeCancelledError`; their
 *   late outcomes are reported as `hedge.late_outcome` events and never surface as unhandled rejections.
 * - A handled failure starts the next hedge at once, in every mode. When every attempt failed, the caller gets the
 *   primary attempt's failure.
 * - A call whose properties set `RETRYABLE` to `false` (a request that must not be sent twice) gets no hedge.
 * - With a `budget` (shared with retry policies), each hedge asks it first; a refusal stops hedging for the call
 *   (`hedge.refused`). A hedge holds its place in the budget until it settles.
 * - A caller's abort aborts every attempt with the caller's reason and rejects at once.
 * - A constant delay costs one shared timer per policy, not one per call.
 *
 * Place it inside retry and the circuit breaker (the breaker sees one outcome per call) and outside the timeout (each
 * attempt gets its own time limit) and the bulkhead (each attempt takes a slot): see docs/concepts.md.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const reads = pipeline(retry(), circuitBreaker(), hedge({ delayQuantile: { quantile: 0.95 }, delayMs: 50 }), timeout(1_000));
 * const user = await reads.execute(({ signal }) => fetch(url, { signal }).then((r) => r.json()));
 * ```
 */
export function hedge(options: HedgeOptions = {}): HedgePolicy {
  const check = new Checker('hedge');
  if (check.object('', options, HEDGE_OPTION_NAMES)) {
    check.number('maxHedgedAttempts', options.maxHedgedAttempts, { min: 1, max: 10, integer: true });
    const d = options.delayMs;
    if (d !== undefined && typeof d !== 'function') {
      if (typeof d !== 'number' || !Number.isFinite(d)) {
        check.fail('delayMs', d, 'a finite number (> 0: wait, 0: at once, < 0: only after a failure) or a function');
      }
    }
    const q = options.delayQuantile;
    if (check.object('delayQuantile', q, HEDGE_QUANTILE_OPTION_NAMES) && q !== undefined) {
      check.number('delayQuantile.quantile', q.quantile, { min: 0, max: 1, exclusiveMin: true });
      if (q.quantile === undefined) check.fail('delayQuantile.quantile', undefined, 'a number in (0, 1), such as 0.95');
      else if (q.quantile === 1) check.fail('delayQuantile.quantile', 1, 'a number below 1 (1 would never hedge)');
      const okSamples = check.number('delayQuantile.samples', q.samples, { min: 1, max: 65_535, integer: true });
      const okMin = check.number('delayQuantile.minSamples', q.minSamples, { min: 1, integer: true });
      // Only a minSamples given explicitly can exceed samples: the default yields to a smaller samples (see
      // minSamplesOf), and an invalid samples is reported on its own.
      const samples = (q.samples as number | undefined) ?? 1_000;
      if (okMin && (q.samples === undefined || okSamples) && (q.minSamples as number) > samples) {
        check.fail('delayQuantile.minSamples', q.minSamples, `an integer <= samples (${samples})`);
      }
    }
    checkHandle(check, options.handle);
    if (options.budget !== undefined && !isRetryBudget(options.budget)) {
      check.fail('budget', options.budget, 'a budget made by retryBudget() or retryTokenBudget()');
    }
    check.string('name', options.name);
    check.clock('clock', options.clock);
  }
  check.done();
  return new HedgePolicy(options);
}
