import { capturedPromise, capturedReject, capturedResolve } from '../core/captured-promise.js';
import type { Clock } from '../core/clock.js';
import {
  type AbortListener,
  type ExecutionContext,
  LIVE,
  type Orphan,
  type Scope,
  type ScopeState,
  scopeAbort,
  scopeAddListener,
  scopeRemoveListener,
  scopeSignal,
} from '../core/context.js';
import type { QueuedDeadline } from '../core/deadline-queue.js';
import { invoke, type Next, type Operation, type Reporter, type ReportingCaller } from '../core/policy.js';
import { keepShape } from '../core/shapes.js';
import { TimeoutError } from '../errors/errors.js';
import { type BulkheadEntry, BulkheadPolicy } from './bulkhead/bulkhead.js';
import { CircuitBreakerPolicy } from './circuit-breaker/circuit-breaker.js';
import type { PolicyBase } from './policy-base.js';
import { RetryPolicy } from './retry/retry.js';
import { TimeoutPolicy } from './timeout/timeout.js';

/**
 * A fused pipeline: `retry > circuitBreaker > timeout > bulkhead` (any two or more of them, in that order) run as
 * one state machine per call instead of one promise per layer.
 *
 * Why: layered, each policy waits on the promise of the one inside it, so a call through the four of them made
 * five promises, eight closures and six microtask hops before its caller saw the result, and held about 1.8 kB
 * while in flight. Fused, a call is one object (it is also the timeout's cancel scope, its deadline entry and,
 * when it must wait, the bulkhead's queue entry), one promise and one reaction on the operation's promise; each
 * policy's part runs as a synchronous hook at start and at settle.
 *
 * The hooks are the policies' own code (the breaker's admission and recording, the bulkhead's slots and queue, the
 * timeout's deadline queue and events, the retry loop), so behaviour is the same; a differential test runs random
 * pipelines both ways. Anything off the common path runs layered, through the very same policies: a breaker that
 * is not closed, a retry whose attempts are observed or whose results are classified, a bulkhead with a queue
 * timeout, a call that is already aborted. A failed first attempt hands over to the retry loop, whose later
 * attempts run fused again.
 * @internal
 */
export class FusedUnit {
  readonly retry: RetryPolicy | undefined;
  readonly breaker: CircuitBreakerPolicy | undefined;
  readonly timeout: TimeoutPolicy | undefined;
  readonly bulkhead: BulkheadPolicy | undefined;
  /** The same members, layered: the path for calls the fused one does not take. */
  readonly #layered: readonly PolicyBase[];
  readonly #layeredNext: Next;
  /** Whether the retry and the breaker read one clock (then one read times both). */
  readonly #oneClock: boolean;
  /**
   * Whether the members' configuration lets a call run fused at all (checked once here; what can change per call is
   * checked by `_fusedGen`): the retry does not classify results, the bulkhead has no queue-wait limit, and the retry
   * and the breaker do not need two different clocks' readings.
   */
  readonly #fusable: boolean;
  /** Whether the retry timing attempts (`attempt.completed` listened to) stops the call from running fused. */
  readonly #clockConflict: boolean;
  /**
   * @internal The clock every member reads, when they share one (the default): then one reading at the start
   * serves the deadline, the breaker, the attempt and the execution, and one at the end the attempt and the execution.
   */
  readonly _clock: Clock | undefined;
  /** What the retry loop runs for attempts 2..: the members inside the retry, fused when they can be. */
  readonly _belowRetry: Next;
  /**
   * @internal The pipeline made of exactly this unit, set by it: it times its observed calls through the unit
   * (`run(..., observed = true)`), so that the call's own clock readings serve `execution.completed` too.
   */
  _observer: PolicyBase | undefined = undefined;

  constructor(
    retry: RetryPolicy | undefined,
    breaker: CircuitBreakerPolicy | undefined,
    timeout: TimeoutPolicy | undefined,
    bulkhead: BulkheadPolicy | undefined,
  ) {
    this.retry = retry;
    this.breaker = breaker;
    this.timeout = timeout;
    this.bulkhead = bulkhead;
    const members = [retry, breaker, timeout, bulkhead].filter((p): p is NonNullable<typeof p> => p !== undefined);
    this.#layered = members;
    this.#oneClock = retry === undefined || breaker === undefined || retry._clock === breaker._clock;
    this.#clockConflict = !this.#oneClock && breaker?._timed() === true;
    this.#fusable =
      (retry === undefined || retry._fusable()) && (bulkhead === undefined || bulkhead._timeouts === undefined);
    const first = members[0] as PolicyBase;
    this._clock = members.every((m) => m._clock === first._clock) ? first._clock : undefined;
    this.#layeredNext = chain(members, invoke);
    const inner = retry === undefined ? undefined : members.slice(1);
    if (inner === undefined) this._belowRetry = this.#layeredNext;
    else if (inner.length >= 2) {
      const below = new FusedUnit(undefined, breaker, timeout, bulkhead);
      this._belowRetry = <T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> => below.run(ctx, op, invoke);
    } else this._belowRetry = chain(inner, invoke);
  }

  /**
   * Runs `op` through the members. `next` is what runs the operation (`invoke`, unless a pipeline is nested in
   * another chain).
   */
  run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, observed = false): Promise<T> {
    const gen = this._fusedGen(ctx, next, observed);
    if (gen < 0) return this.#runLayered(ctx, op, next, observed);
    // No executor closure per call (see captured-promise.ts).
    const promise = capturedPromise<T>();
    const reject = capturedReject();
    try {
      new FusedCall<T>(this, ctx, op, capturedResolve<T>(), reject, gen, observed).start();
    } catch (error) {
      // What a throw in a promise executor did (no member's hook throws on this path).
      reject(error);
    }
    return promise;
  }

  /**
   * Runs a call for a reporting caller (see {@link ReportingCaller}): fused, with no promise at all, the operation
   * begun by `caller._begin` reporting to the fused call; layered, through `op` and a promise. Reports
   * asynchronously.
   */
  runReporting<T>(ctx: ExecutionContext, op: Operation<T>, caller: ReportingCaller, observed: boolean): void {
    const gen = this._fusedGen(ctx, invoke, observed);
    if (gen < 0) {
      this.#runLayered(ctx, op, invoke, observed).then(
        (value) => caller._report(true, value),
        (error: unknown) => caller._report(false, error),
      );
      return;
    }
    new FusedCall<T>(this, ctx, op, caller, undefined, gen, observed).start();
  }

  /**
   * The breaker's closed generation (0 without a breaker) when a call can run fused, else -1. Why the configuration
   * is checked once in the constructor and not here: this runs on every call, and written out in full it was too big
   * for V8 to inline (callgrind, Node 20, pipeline of four: 106 instructions per call as a call of its own).
   */
  _fusedGen(ctx: ExecutionContext, next: Next, observed: boolean): number {
    const breaker = this.breaker;
    const gen = breaker === undefined ? 0 : breaker._closedGen();
    if (
      gen < 0 ||
      next !== invoke ||
      !this.#fusable ||
      (this.#clockConflict && this.retry?._timesAttempts() === true) ||
      (this.timeout !== undefined && ctx._aborted) ||
      // Members on different clocks: the call's own timing cannot share their readings.
      (observed && this._clock === undefined)
    ) {
      return -1;
    }
    return gen;
  }

  #runLayered<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, observed: boolean): Promise<T> {
    if (observed) {
      const observer = this._observer as PolicyBase;
      const start = observer._clock.now();
      return observer._observe(ctx, start, this.#layeredNext(ctx, op));
    }
    return next === invoke ? this.#layeredNext(ctx, op) : chain(this.#layered, next)(ctx, op);
  }
}

/** The layered chain of `members` ending in `last`. */
function chain(members: readonly PolicyBase[], last: Next): Next {
  let next = last;
  for (let i = members.length - 1; i >= 0; i--) {
    const policy = members[i] as PolicyBase;
    const inner = next;
    next = <T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> => policy._run(ctx, op, inner);
  }
  return next;
}

const noop = (): void => undefined;

/** Not started, or waiting in the bulkhead's queue. */
const QUEUED = 0;
/** The operation is running. */
const RUNNING = 1;
/** The timeout or the caller gave up while the operation kept running: its outcome will be late. */
const ABANDONED = 2;
/** Settled. */
const DONE = 3;
const PHASE = 3;
/** Holds a bulkhead slot. */
const SLOT = 4;
/** Listens to its context's abort. */
const SUBSCRIBED = 8;
/** Someone times the retry's attempts: `attempt.completed` is due when the attempt settles. */
const TIMES_ATTEMPT = 16;
/**
 * The pipeline this unit is whole of times the call for `execution.completed` ({@link FusedUnit._observer}). Its
 * start is the attempt's ({@link FusedCall.#start}): one reading serves both. A bit, not fields: a call's size is
 * paid by every call in flight.
 */
const OBSERVED = 32;
/** Inside `start()`: an outcome reported now reaches a reporting caller in a microtask, never synchronously. */
const STARTING = 64;

/**
 * One call through a fused unit: the timeout's cancel scope and deadline entry, the bulkhead's queue entry and the
 * breaker's tracking, in one object.
 */
class FusedCall<T> implements BulkheadEntry, Reporter, AbortListener, ScopeState, Scope, QueuedDeadline {
  // `declare` fields assigned in the constructor, no private names: see TimeoutAttempt (no per-instance
  // initialiser or brand). The accessors below are public: V8 (Node 20) ran private accessors (`get #phase`)
  // through a runtime call each time, about 250 instructions per call. The common path (`_begin`, `_run`,
  // `_settled`, `_leaveTimeout`) writes the bit operations out instead of using them: once V8 had spent its inlining
  // budget on the start of a call, each accessor there was a call of its own (callgrind, Node 20, pipeline of four
  // with a setImmediate op: about 140 instructions per call for `set _slot` and `set _subscribed`, and with them
  // gone the context view's constructor was inlined too; 106 instructions per call less in all).
  // Why not a subclass of CancelScope: as for TimeoutAttempt, V8 ran `new` of that derived chain through its
  // generic construct stub on every call. It holds a DeadlineEntry's and a CancelScope's fields itself, shares the
  // scope's logic through the `scope*` functions, and is both a `Scope` and a `QueuedDeadline`.
  declare _deadline: number;
  declare _prev: QueuedDeadline | undefined;
  declare _next: QueuedDeadline | undefined;
  declare _sReason: unknown;
  declare _sAc: AbortController | undefined;
  declare _sListeners: AbortListener | Set<AbortListener> | undefined;
  declare _qPrev: BulkheadEntry | undefined;
  declare _qNext: BulkheadEntry | undefined;
  declare readonly _unit: FusedUnit;
  /** The context the unit received (the retry's and the breaker's). */
  declare readonly _ctx: ExecutionContext;
  declare readonly _op: Operation<T>;
  /** The promise's resolve function, or (with no `_reject`) the reporting caller. One field: it is per call. */
  declare readonly _resolve: ((value: T | PromiseLike<T>) => void) | ReportingCaller;
  declare readonly _reject: ((reason: unknown) => void) | undefined;
  declare readonly _gen: number;
  /** When the attempt started, read once if the breaker or someone timing attempts needs it; else 0. */
  declare _start: number;
  /** The phase (two low bits), {@link SLOT} and {@link SUBSCRIBED}: one field, since thousands may be queued. */
  declare _bits: number;
  declare _orphan: Orphan | undefined;

  constructor(
    unit: FusedUnit,
    ctx: ExecutionContext,
    op: Operation<T>,
    resolve: ((value: T | PromiseLike<T>) => void) | ReportingCaller,
    reject: ((reason: unknown) => void) | undefined,
    gen: number,
    observed: boolean,
  ) {
    this._deadline = 0;
    this._prev = undefined;
    this._next = undefined;
    this._sReason = LIVE;
    this._sAc = undefined;
    this._sListeners = undefined;
    this._qPrev = undefined;
    this._qNext = undefined;
    this._unit = unit;
    this._ctx = ctx;
    this._op = op;
    this._resolve = resolve;
    this._reject = reject;
    this._gen = gen;
    this._start = 0;
    this._bits = observed ? OBSERVED : QUEUED;
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

  get _phase(): number {
    return this._bits & PHASE;
  }

  set _phase(phase: number) {
    this._bits = (this._bits & ~PHASE) | phase;
  }

  /** Whether it holds a bulkhead slot. */
  get _slot(): boolean {
    return (this._bits & SLOT) !== 0;
  }

  set _slot(held: boolean) {
    this._bits = held ? this._bits | SLOT : this._bits & ~SLOT;
  }

  /** Whether it listens to its context's abort. */
  get _subscribed(): boolean {
    return (this._bits & SUBSCRIBED) !== 0;
  }

  set _subscribed(on: boolean) {
    this._bits = on ? this._bits | SUBSCRIBED : this._bits & ~SUBSCRIBED;
  }

  get _qCtx(): ExecutionContext {
    return this._ctx;
  }

  start(): void {
    this._bits |= STARTING;
    this._begin();
    this._bits &= ~STARTING;
  }

  _begin(): void {
    const { retry, breaker, timeout, bulkhead } = this._unit;
    const ctx = this._ctx;
    // One clock read serves both (the unit runs layered when they have different clocks and both need one).
    const timesAttempts = retry?._timesAttempts() === true;
    const breakerTimed = breaker?._timed() === true;
    const observed = (this._bits & OBSERVED) !== 0;
    const clock = this._unit._clock;
    let now = -1;
    if (clock !== undefined && (observed || breakerTimed || timesAttempts)) {
      // One reading for every member and the observer (they share the clock; an observed call's unit always does).
      now = clock.now();
      this._start = now;
    } else if (breakerTimed) this._start = (breaker as CircuitBreakerPolicy)._startTime();
    else if (timesAttempts) this._start = (retry as RetryPolicy)._clock.now();
    if (timesAttempts) this._bits |= TIMES_ATTEMPT;
    // Counted in flight until it settles: on success below (_succeed), after a failure by the retry loop.
    retry?._budget?._enter();
    if (timeout !== undefined) {
      if (ctx._subscribe(this)) this._bits |= SUBSCRIBED;
      if (now >= 0) timeout._queue.add(this, now);
      else timeout._queue.add(this);
    }
    if (bulkhead === undefined || bulkhead._tryAcquire()) {
      if (bulkhead !== undefined) this._bits |= SLOT;
      this._run();
      return;
    }
    // Refused or queued: the context is the caller's (the view, made when the operation runs, differs only by this
    // call's own scope, which nothing has aborted yet).
    const refusal = bulkhead._refusal(ctx);
    if (refusal !== undefined) {
      this._failBeforeRun(refusal);
      return;
    }
    if (ctx._aborted) {
      this._failBeforeRun(ctx._reason);
      return;
    }
    bulkhead._enqueue(this);
    // Without a timeout, only a queued call listens to the caller (a running one leaves that to the operation).
    if (timeout === undefined) this._subscribed = ctx._subscribe(this);
  }

  _run(): void {
    this._bits = (this._bits & ~PHASE) | RUNNING;
    // The operation's context: with a timeout, a view with this call as its scope. Made here, not at the start, and
    // not kept: a call waiting in the bulkhead's queue does not need it, and thousands may wait (72 bytes each, and a
    // field of 8 more).
    const ctx = this._ctx;
    const view = this._unit.timeout === undefined ? ctx : ctx._derive(ctx.attempt, this);
    if (this._reject === undefined) {
      (this._resolve as ReportingCaller)._begin(view, this);
      return;
    }
    // Bound methods, not arrow closures: see TimeoutAttempt.start.
    invoke(view, this._op).then(this._onValue.bind(this), this._onError.bind(this));
  }

  _onValue(value: unknown): void {
    this._settled(true, value);
  }

  _onError(error: unknown): void {
    this._settled(false, error);
  }

  /** A reporting caller's operation settled (see {@link ReportingCaller._begin}). */
  _report(ok: boolean, value: unknown): void {
    this._settled(ok, value);
  }

  /** The outcome of the call, to its promise or its reporting caller. */
  _out(ok: boolean, value: unknown): void {
    const reject = this._reject;
    if (reject !== undefined) {
      if (ok) (this._resolve as (value: unknown) => void)(value);
      else reject(value);
      return;
    }
    const caller = this._resolve as ReportingCaller;
    if ((this._bits & STARTING) !== 0) queueMicrotask(() => caller._report(ok, value));
    else caller._report(ok, value);
  }

  /** The outcome is `promise`'s (the retry loop's). */
  _outLater(promise: Promise<T>): void {
    if (this._reject !== undefined) {
      (this._resolve as (value: T | PromiseLike<T>) => void)(promise);
      return;
    }
    const caller = this._resolve as ReportingCaller;
    promise.then(
      (value) => caller._report(true, value),
      (error: unknown) => caller._report(false, error),
    );
  }

  /** The operation settled. */
  _settled(ok: boolean, valueOrError: unknown): void {
    if ((this._bits & SLOT) !== 0) {
      this._bits &= ~SLOT;
      this._unit.bulkhead?._releaseSlot();
    }
    if ((this._bits & PHASE) === ABANDONED) {
      this._late(ok, valueOrError);
      return;
    }
    this._bits |= DONE; // both phase bits
    this._leaveTimeout();
    if (ok) this._succeed(valueOrError as T);
    else this._fail(valueOrError);
  }

  /** The bulkhead refused it, or the caller aborted it, before it ran. */
  _failBeforeRun(reason: unknown): void {
    this._phase = DONE;
    this._leaveTimeout();
    this._fail(reason);
  }

  _leaveTimeout(): void {
    const timeout = this._unit.timeout;
    if (timeout !== undefined) timeout._queue.remove(this);
    if ((this._bits & SUBSCRIBED) !== 0) {
      this._bits &= ~SUBSCRIBED;
      this._ctx._unsubscribe(this);
    }
  }

  /** Success as the breaker and the retry see it. */
  _succeed(value: T): void {
    const breaker = this._unit.breaker;
    if (breaker !== undefined) {
      try {
        breaker._succeeded(this._ctx, this._gen, this._start, value);
      } catch (predicateError) {
        this._retryOrReject(predicateError);
        return;
      }
    }
    const budget = this._unit.retry?._budget;
    if (budget !== undefined) {
      budget._succeeded();
      budget._leave();
    }
    const observer = (this._bits & OBSERVED) !== 0 ? this._unit._observer : undefined;
    const timesAttempt = (this._bits & TIMES_ATTEMPT) !== 0;
    if (timesAttempt || observer !== undefined) {
      // One reading ends both the attempt and the call (they share the clock), else each reads its own.
      const end = this._unit._clock?.now() ?? -1;
      if (timesAttempt) this._unit.retry?._attemptCompleted(this._ctx, this._start, false, undefined, end);
      if (observer !== undefined) {
        // An observed call's unit shares one clock (run() goes layered otherwise), so `end` is on the observer's.
        observer._executionCompleted(this._ctx, this._start, end, false, undefined);
      }
    }
    this._out(true, value);
  }

  /** Failure as the breaker and the retry see it. */
  _fail(error: unknown): void {
    const breaker = this._unit.breaker;
    if (breaker !== undefined) {
      try {
        breaker._failed(this._ctx, this._gen, this._start, error);
      } catch (predicateError) {
        this._retryOrReject(predicateError);
        return;
      }
    }
    this._retryOrReject(error);
  }

  _retryOrReject(error: unknown): void {
    const unit = this._unit;
    if ((this._bits & TIMES_ATTEMPT) !== 0) unit.retry?._attemptCompleted(this._ctx, this._start, true, error);
    const observer = (this._bits & OBSERVED) !== 0 ? unit._observer : undefined;
    if (unit.retry === undefined) {
      observer?._executionCompleted(this._ctx, this._start, observer._clock.now(), true, error);
      this._out(false, error);
    } else {
      const rest = unit.retry._afterFailure(this._ctx, this._op, unit._belowRetry, error);
      this._outLater(observer === undefined ? rest : observer._observe(this._ctx, this._start, rest));
    }
  }

  // BulkheadEntry: a slot was taken for this queued call.
  _grant(): void {
    this._slot = true;
    if (this._unit.timeout === undefined && this._subscribed) {
      this._subscribed = false;
      this._ctx._unsubscribe(this);
    }
    this._run();
  }

  // BulkheadEntry: left the queue without a slot (the bulkhead was disposed).
  _refuse(reason: unknown): void {
    this._failBeforeRun(reason);
  }

  _dequeued(): void {
    // Subscriptions are this call's own: released where it settles.
  }

  /** The timeout's deadline passed (the deadline queue has already dropped this entry). */
  _expire(): void {
    const timeout = this._unit.timeout as TimeoutPolicy;
    const error = new TimeoutError(timeout.name, timeout.ms);
    this._abandon(error);
    timeout._fired(this._ctx);
    this._fail(error);
  }

  /** The caller (or an enclosing timeout) aborted: fail with its reason, not as a timeout. */
  _onAbort(reason: unknown): void {
    if (this._phase !== QUEUED && this._phase !== RUNNING) return;
    this._abandon(reason);
    this._fail(reason);
  }

  /** Stops waiting for the operation: out of the queue, or left running as an orphan; aborts the scope. */
  _abandon(reason: unknown): void {
    const queued = this._phase === QUEUED;
    this._phase = queued ? DONE : ABANDONED;
    this._leaveTimeout();
    if (queued) this._unit.bulkhead?._unlink(this);
    // Record the still-running work before anyone sees the rejection, so a bulkhead around this call (in an
    // enclosing chain) keeps its slot until the work really ends. This unit's own bulkhead does so by itself.
    else this._orphan = this._ctx._addOrphan();
    if (this._unit.timeout !== undefined) this.abort(reason);
  }

  /** The operation settled after the timeout or the caller gave up on it. */
  _late(ok: boolean, valueOrError: unknown): void {
    this._phase = DONE;
    this._orphan?.finish();
    this._unit.timeout?._lateOutcome(
      this._ctx,
      ok ? { ok: true, value: valueOrError } : { ok: false, error: valueOrError },
    );
  }
}

// Keep the call's map alive across full GCs (see shapes.ts); a deadline holds a fraction of a ms per call.
keepShape(
  new FusedCall<unknown>(
    undefined as unknown as FusedUnit,
    undefined as unknown as ExecutionContext,
    noop,
    noop,
    noop,
    0,
    false,
  ),
)._deadline = 0.5;

/**
 * The fusable tail of a pipeline's members: the longest suffix made of `retry`, `circuitBreaker`, `timeout` and
 * `bulkhead` (each at most once, in that order) with at least two of them, as a unit; or undefined.
 * @internal
 */
export function fuseTail(members: readonly PolicyBase[]): { start: number; unit: FusedUnit } | undefined {
  const order = [RetryPolicy, CircuitBreakerPolicy, TimeoutPolicy, BulkheadPolicy];
  const found: (PolicyBase | undefined)[] = [undefined, undefined, undefined, undefined];
  let start = members.length;
  let rank = order.length;
  // Walk back from the innermost member while each one is a kind strictly outside the one after it.
  while (start > 0) {
    const p = members[start - 1] as PolicyBase;
    const r = order.findIndex((kind) => p instanceof kind);
    // An adaptive limit is a BulkheadPolicy that must see each call's latency and outcome: it stays layered.
    if (r < 0 || r >= rank || (r === 3 && !(p as BulkheadPolicy)._fusable())) break;
    found[r] = p;
    rank = r;
    start--;
  }
  if (members.length - start < 2) return undefined;
  const [retry, breaker, timeout, bulkhead] = found as [
    RetryPolicy | undefined,
    CircuitBreakerPolicy | undefined,
    TimeoutPolicy | undefined,
    BulkheadPolicy | undefined,
  ];
  return { start, unit: new FusedUnit(retry, breaker, timeout, bulkhead) };
}
