import { systemClock } from '../../core/clock.js';
import {
  type AbortListener,
  ExecutionContext,
  LIVE,
  type Orphan,
  type Scope,
  type ScopeState,
  scopeAbort,
  scopeAddListener,
  scopeRemoveListener,
  scopeSignal,
} from '../../core/context.js';
import { DeadlineQueue, type QueuedDeadline } from '../../core/deadline-queue.js';
import type { Outcome } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { keepShape } from '../../core/shapes.js';
import { TimeoutError } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { PolicyBase } from '../policy-base.js';
import { TIMEOUT_OPTION_NAMES, type TimeoutOptions } from './options.js';

/**
 * The state of one attempt under a timeout: its cancel scope, its place in the deadline queue, and the promise
 * the caller waits on. One object per attempt, with no closures but the executor and the two reactions on the
 * operation's promise.
 *
 * Why a class of its own and not a subclass of CancelScope (itself a DeadlineEntry): `new` of that three-level
 * chain ran through V8's generic construct stub on every call (callgrind: about 140 instructions per call with
 * `async () => 1`, 90 with a setImmediate). So it holds the same fields, shares the scope's logic through the
 * `scope*` functions, and is both a `Scope` and a `QueuedDeadline` (what the context and the deadline queue take).
 *
 * Why not the view itself (a subclass of ExecutionContext): measured, that was dearer still (a derived `new` that
 * V8 ran through FastNewObject, and more bytes per call). Why the executor closure and not capturedPromise (as the
 * fused path does): measured too, with this class it cost about 120 instructions more per call.
 *
 * Why `declare` fields assigned in the constructor and no private names (`#x`): a field initialiser is a function
 * each instance runs, and private methods stamp a brand on each instance.
 */
class TimeoutAttempt<T> implements AbortListener, ScopeState, Scope, QueuedDeadline {
  // DeadlineEntry's fields.
  declare _deadline: number;
  declare _prev: QueuedDeadline | undefined;
  declare _next: QueuedDeadline | undefined;
  // CancelScope's fields.
  declare _sReason: unknown;
  declare _sAc: AbortController | undefined;
  declare _sListeners: AbortListener | Set<AbortListener> | undefined;
  declare readonly _policy: TimeoutPolicy;
  declare readonly _parent: ExecutionContext;
  declare readonly _resolve: (value: T) => void;
  declare readonly _reject: (reason: unknown) => void;
  declare _subscribed: boolean;
  declare _settled: boolean;
  declare _orphan: Orphan | undefined;

  constructor(
    policy: TimeoutPolicy,
    parent: ExecutionContext,
    resolve: (value: T | PromiseLike<T>) => void,
    reject: (reason: unknown) => void,
  ) {
    this._parent = parent;
    this._deadline = 0;
    this._prev = undefined;
    this._next = undefined;
    this._sReason = LIVE;
    this._sAc = undefined;
    this._sListeners = undefined;
    this._policy = policy;
    this._resolve = resolve;
    this._reject = reject;
    this._subscribed = false;
    this._settled = false;
    this._orphan = undefined;
  }

  // The scope (CancelScope's members).
  get aborted(): boolean {
    return this._sReason !== LIVE;
  }

  get reason(): unknown {
    return this._sReason === LIVE ? undefined : this._sReason;
  }

  get signal(): AbortSignal {
    return scopeSignal(this);
  }

  abort(reason: unknown): void {
    scopeAbort(this, reason);
  }

  addListener(l: AbortListener): void {
    scopeAddListener(this, l);
  }

  removeListener(l: AbortListener): void {
    scopeRemoveListener(this, l);
  }

  start(op: Operation<T>, next: Next): void {
    const parent = this._parent;
    this._subscribed = parent._subscribe(this);
    this._policy._queue.add(this);
    let inner: Promise<T>;
    try {
      inner = next(parent._derive(parent.attempt, this), op);
    } catch (error) {
      // A layer inside that throws instead of rejecting (it never should): the call rejects, as a throw in a
      // promise executor did.
      this._onError(error);
      return;
    }
    // Bound methods, not two arrow closures: a bound function is smaller than a closure plus its share of the
    // closures' context, and a new closure's first call goes through V8's CompileLazy (callgrind: 70 to 90
    // instructions and about 58 bytes in flight less per call).
    inner.then(this._onValue.bind(this), this._onError.bind(this));
  }

  _finish(): void {
    this._settled = true;
    this._policy._queue.remove(this);
    if (this._subscribed) this._parent._unsubscribe(this);
  }

  _onValue(value: T): void {
    if (!this._settled) {
      this._finish();
      this._resolve(value);
    } else this._late({ ok: true, value });
  }

  _onError(error: unknown): void {
    if (!this._settled) {
      this._finish();
      this._reject(error);
    } else this._late({ ok: false, error });
  }

  _late(outcome: Outcome<unknown>): void {
    this._orphan?.finish();
    this._policy._lateOutcome(this._parent, outcome);
  }

  /** The deadline passed: abort the attempt's signal with a TimeoutError and reject with the same error. */
  _expire(): void {
    // Only an unsettled attempt is still in the deadline queue: settling removes it.
    const policy = this._policy;
    const error = new TimeoutError(policy.name, policy.ms);
    this._abandon(error);
    policy._fired(this._parent);
  }

  /** The caller (or an enclosing timeout) aborted: reject with its reason, not as a timeout. */
  _onAbort(reason: unknown): void {
    if (!this._settled) this._abandon(reason);
  }

  _abandon(reason: unknown): void {
    this._finish();
    // Record the still-running work before anyone sees the rejection, so a bulkhead around this timeout keeps
    // its slot until the work really ends.
    this._orphan = this._parent._addOrphan();
    this.abort(reason);
    this._reject(reason);
  }
}

/**
 * A timeout policy. See {@link timeout}.
 */
export class TimeoutPolicy extends PolicyBase {
  /** The time limit of each attempt, in ms. */
  readonly ms: number;
  /** @internal One timer for every pending attempt (deadlines of one length arrive in order). */
  readonly _queue: DeadlineQueue;

  /** @internal Use {@link timeout}. */
  constructor(options: TimeoutOptions) {
    super(options.name ?? 'timeout', options.clock ?? systemClock);
    this.ms = options.ms;
    this._queue = new DeadlineQueue(this._clock, this.ms);
  }

  /** @internal Emits `timeout.fired` for an attempt under `ctx`. */
  _fired(ctx: ExecutionContext): void {
    if (!this._events.wants(EV.timeoutFired)) return;
    this._events.emit(EV.timeoutFired, {
      type: 'timeout.fired',
      policy: this.name,
      operation: ctx.operation,
      attempt: ctx.attempt,
      timeoutMs: this.ms,
    });
  }

  /** @internal Emits `timeout.late_outcome`: work under `ctx` settled after the timeout gave up on it. */
  _lateOutcome(ctx: ExecutionContext, outcome: Outcome<unknown>): void {
    if (!this._events.wants(EV.timeoutLateOutcome)) return;
    this._events.emit(EV.timeoutLateOutcome, {
      type: 'timeout.late_outcome',
      policy: this.name,
      operation: ctx.operation,
      attempt: ctx.attempt,
      outcome,
    });
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (ctx._aborted) return Promise.reject(ctx._reason);
    // Why a closure here and not capturedPromise (as the fused path does): while the attempt was a CancelScope
    // subclass, V8 (Node 20) threw away the optimised caller again and again ("dependency change": a stable map);
    // with the flat class it no longer does, but measured it cost about 120 instructions more per call than this
    // closure. An executor bound to its arguments (`fn.bind(this, ctx, op, next)`) was not inlined: far dearer.
    return new Promise<T>((resolve, reject) => {
      new TimeoutAttempt<T>(this, ctx, resolve, reject).start(op, next);
    });
  }
}

// Keep the attempt's map alive across full GCs (see shapes.ts); a deadline holds a fraction of a ms per call.
keepShape(
  new TimeoutAttempt<unknown>(
    undefined as unknown as TimeoutPolicy,
    new ExecutionContext(undefined, 'default', undefined, 1, undefined, undefined),
    () => undefined,
    () => undefined,
  ),
)._deadline = 0.5;

/**
 * Limits each attempt to `ms`. When the time passes, the attempt's `ctx.signal` aborts with a `TimeoutError` as
 * its reason and the call rejects with that `TimeoutError`.
 *
 * - It never aborts the caller's signal; a caller's abort is reported as the caller's abort, not a timeout.
 * - On success nothing is aborted and nothing is scheduled for the call: one shared timer per policy serves
 *   every attempt; it keeps the process alive only while an attempt is pending and is not re-armed after.
 * - Work that ignores its signal and runs on after the timeout still holds the slot of a bulkhead around it until
 *   it settles; its late result or rejection is discarded and reported as a `timeout.late_outcome` event.
 *
 * @param msOrOptions - the limit in ms, or {@link TimeoutOptions}.
 * @throws InvalidOptionsError when `ms` is not a number > 0, or an option is unknown.
 * @example
 * ```ts
 * const policy = timeout(2_000);
 * await policy.execute(({ signal }) => fetch(url, { signal }));
 * ```
 */
export function timeout(msOrOptions: number | TimeoutOptions): TimeoutPolicy {
  const options: TimeoutOptions = typeof msOrOptions === 'number' ? { ms: msOrOptions } : msOrOptions;
  const check = new Checker('timeout');
  const v = msOrOptions as unknown;
  if (v !== undefined && v !== null && typeof v !== 'number' && typeof v !== 'object') {
    // timeout('2000'), timeout(2000n): the caller meant a limit in ms; say so rather than "expected an object".
    check.fail('ms', v, 'a number > 0 (the limit in ms), or { ms, name?, clock? }');
  } else if (check.object('', options, TIMEOUT_OPTION_NAMES)) {
    if (options.ms === undefined) check.fail('ms', undefined, 'a number > 0 (required)');
    check.number('ms', options.ms, { min: 0, exclusiveMin: true });
    check.string('name', options.name);
    check.clock('clock', options.clock);
  } else if (options === undefined) {
    check.fail('ms', undefined, 'a number > 0 (required)');
  }
  check.done();
  return new TimeoutPolicy(options);
}
