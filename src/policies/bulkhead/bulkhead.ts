import { systemClock } from '../../core/clock.js';
import type { AbortListener, ExecutionContext } from '../../core/context.js';
import { DeadlineQueue, type QueuedDeadline } from '../../core/deadline-queue.js';
import { invoke, type Next, type Operation } from '../../core/policy.js';
import { keepShape } from '../../core/shapes.js';
import { BulkheadRejectedError, type BulkheadRejectionReason } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import { PolicyBase } from '../policy-base.js';
import { BULKHEAD_OPTION_NAMES, type BulkheadOptions } from './options.js';

/**
 * Something waiting in a bulkhead's FIFO queue: a {@link Waiter}, or a fused pipeline's call (policies/fused.ts).
 * @internal
 */
export interface BulkheadEntry {
  _qPrev: BulkheadEntry | undefined;
  _qNext: BulkheadEntry | undefined;
  /** The context its rejection events name. */
  readonly _qCtx: ExecutionContext;
  /** A slot was taken for it: run now. */
  _grant(): void;
  /** It left the queue without a slot (queue timeout, dispose, the caller's abort): fail with `reason`. */
  _refuse(reason: unknown): void;
  /** It left the queue, granted or not: drop its queue timeout and abort subscription. */
  _dequeued(): void;
}

/**
 * A call waiting for a slot: a node of the FIFO list, an abort listener and the call's continuation at once. Why
 * one object: a bulkhead under load holds thousands of these, so each queued call costs one allocation and one
 * promise, and no async frame. With `queueTimeoutMs` it is a {@link TimedWaiter}, which is a deadline entry too.
 *
 * Why `declare` fields assigned in the constructor: see DeadlineEntry (no per-instance initialiser).
 */
class Waiter implements AbortListener, BulkheadEntry {
  declare _qPrev: BulkheadEntry | undefined;
  declare _qNext: BulkheadEntry | undefined;
  declare subscribed: boolean;
  declare readonly ctx: ExecutionContext;
  declare readonly op: Operation<unknown>;
  declare readonly cont: Next;
  declare readonly resolve: (value: unknown) => void;
  declare readonly reject: (reason: unknown) => void;
  declare readonly _owner: BulkheadPolicy;

  constructor(
    owner: BulkheadPolicy,
    ctx: ExecutionContext,
    op: Operation<unknown>,
    cont: Next,
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ) {
    this._qPrev = undefined;
    this._qNext = undefined;
    this.subscribed = false;
    this._owner = owner;
    this.ctx = ctx;
    this.op = op;
    this.cont = cont;
    this.resolve = resolve;
    this.reject = reject;
  }

  get _qCtx(): ExecutionContext {
    return this.ctx;
  }

  _grant(): void {
    this._owner._hold(this.ctx, this.op, this.cont).then(this.resolve, this.reject);
  }

  _refuse(reason: unknown): void {
    this.reject(reason);
  }

  _dequeued(): void {
    if (this.subscribed) {
      this.subscribed = false;
      this.ctx._unsubscribe(this);
    }
  }

  _onAbort(reason: unknown): void {
    this._owner._leave(this, undefined, reason);
  }
}

/**
 * A {@link Waiter} with a queue-wait limit: also an entry of the bulkhead's deadline queue. Why a class of its own:
 * the deadline's three fields (and the boxed number a deadline is) would cost every queued call of every bulkhead,
 * about 40 bytes each, when most bulkheads have no queue timeout.
 */
class TimedWaiter extends Waiter implements QueuedDeadline {
  declare _deadline: number;
  declare _prev: QueuedDeadline | undefined;
  declare _next: QueuedDeadline | undefined;

  constructor(...args: ConstructorParameters<typeof Waiter>) {
    super(...args);
    this._deadline = 0;
    this._prev = undefined;
    this._next = undefined;
  }

  override _dequeued(): void {
    this._owner._timeouts?.remove(this);
    super._dequeued();
  }

  _expire(): void {
    this._owner._leave(this, 'queue_timeout', undefined);
  }
}

// Keep the waiters' maps alive across full GCs (see shapes.ts); a deadline holds a fraction of a ms per call.
const keptWaiterArgs: ConstructorParameters<typeof Waiter> = [
  undefined as unknown as BulkheadPolicy,
  undefined as unknown as ExecutionContext,
  () => undefined,
  () => Promise.resolve(undefined) as never,
  () => undefined,
  () => undefined,
];
keepShape(new Waiter(...keptWaiterArgs));
keepShape(new TimedWaiter(...keptWaiterArgs))._deadline = 0.5;

/**
 * A bulkhead policy. See {@link bulkhead}.
 */
export class BulkheadPolicy extends PolicyBase {
  #limit: number;
  readonly #maxQueue: number;
  /** @internal The queue-wait deadlines, when `queueTimeoutMs` is set. */
  readonly _timeouts: DeadlineQueue | undefined;
  #active = 0;
  #queued = 0;
  #head: BulkheadEntry | undefined = undefined;
  #tail: BulkheadEntry | undefined = undefined;
  #disposed = false;

  /** @internal Use {@link bulkhead}. */
  constructor(options: BulkheadOptions) {
    super(options.name ?? 'bulkhead', options.clock ?? systemClock);
    this.#limit = options.limit;
    this.#maxQueue = options.queue ?? 0;
    this._timeouts =
      options.queueTimeoutMs === undefined ? undefined : new DeadlineQueue(this._clock, options.queueTimeoutMs);
    trackInstance('bulkhead', this);
  }

  /** Calls running now (holding a slot). */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting in the queue now. */
  get queued(): number {
    return this.#queued;
  }

  /** Slots free now: `limit - active`, never below 0. */
  get available(): number {
    return Math.max(0, this.#limit - this.#active);
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * The concurrency limit. Setting it takes effect at once: raising it starts queued calls; lowering it lets
   * running calls finish and admits no new one until `active` is below the new limit.
   */
  get limit(): number {
    return this.#limit;
  }

  set limit(value: number) {
    const check = new Checker('bulkhead');
    if (value === undefined) check.fail('limit', value, 'an integer >= 1');
    check.number('limit', value, { min: 1, integer: true });
    check.done();
    this._setLimit(value);
  }

  /** @internal Sets the limit, already validated (an adaptive limit moves it), and starts queued calls it allows. */
  _setLimit(value: number): void {
    this.#limit = value;
    this.#drain();
  }

  /**
   * Rejects every queued call with `BulkheadRejectedError` (reason `'disposed'`) and refuses new calls. Running
   * calls finish normally. Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    while (this.#head !== undefined) this._leave(this.#head, 'disposed', undefined);
    this._timeouts?.clear();
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (this.#active < this.#limit && this.#head === undefined && !this.#disposed) {
      this.#active++;
      return this._hold(ctx, op, next);
    }
    if (this.#disposed || this.#queued >= this.#maxQueue) {
      return Promise.reject(this.#rejection(ctx, this.#disposed ? 'disposed' : 'full'));
    }
    if (ctx._aborted) return Promise.reject(ctx._reason);
    return this.#queue(ctx, op, next);
  }

  /**
   * Queues a call for a slot. A method of its own, not written out in `_run`: a closure in `_run` makes `_run`
   * allocate a context for what it captures on every call, the happy path included (counted with callgrind,
   * `async () => 1` op, with `#holdAround`: 1,294 -> 1,262 instructions per call).
   */
  #queue<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The waiter is untyped inside: it hands the value of `op` straight to this promise's resolve.
      const timeouts = this._timeouts;
      const w = new (timeouts === undefined ? Waiter : TimedWaiter)(
        this,
        ctx,
        op,
        next,
        resolve as (value: unknown) => void,
        reject,
      );
      this._enqueue(w);
      w.subscribed = ctx._subscribe(w);
      timeouts?.add(w as TimedWaiter); // with a queue timeout, the waiter made above is a TimedWaiter
    });
  }

  /**
   * @internal Whether a fused pipeline may take and give back this bulkhead's slots itself (see fused.ts): not when
   * a subclass does work per call in {@link _hold} (an adaptive limit samples each call).
   */
  _fusable(): boolean {
    return true;
  }

  /** @internal Takes a slot if one is free and nobody waits (fused pipelines). */
  _tryAcquire(): boolean {
    if (this.#active < this.#limit && this.#head === undefined && !this.#disposed) {
      this.#active++;
      return true;
    }
    return false;
  }

  /** @internal When no slot was free: the rejection if the call may not queue either (emits its event). */
  _refusal(ctx: ExecutionContext): BulkheadRejectedError | undefined {
    if (this.#disposed || this.#queued >= this.#maxQueue) {
      return this.#rejection(ctx, this.#disposed ? 'disposed' : 'full');
    }
    return undefined;
  }

  /** @internal Appends an entry to the FIFO queue. */
  _enqueue(w: BulkheadEntry): void {
    w._qPrev = this.#tail;
    if (this.#tail === undefined) this.#head = w;
    else this.#tail._qNext = w;
    this.#tail = w;
    this.#queued++;
  }

  /** @internal Gives back a slot taken with {@link _tryAcquire} or granted to an entry. */
  _releaseSlot(): void {
    this.#release();
  }

  /**
   * Settle handlers shared by every call whose operation runs directly inside this bulkhead: nothing per call to
   * remember, so no closures per call.
   */
  readonly #releaseOnValue = <T>(value: T): T => {
    this.#release();
    return value;
  };
  readonly #releaseOnError = (error: unknown): never => {
    this.#release();
    throw error;
  };

  /** @internal */
  _hold<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    // Why no orphan check when `next` is the operation itself: only a timeout inside this bulkhead can leave work
    // running that holds the slot, and with nothing between the bulkhead and the operation there is none.
    if (next === invoke) return invoke(ctx, op).then(this.#releaseOnValue, this.#releaseOnError);
    return this.#holdAround(ctx, op, next);
  }

  /** `_hold` with something between the bulkhead and the operation; apart for the reason `#queue` is. */
  #holdAround<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const mark = ctx._orphanMark;
    return next(ctx, op).then(
      (value) => {
        this._settled(ctx, mark);
        return value;
      },
      (error: unknown) => {
        this._settled(ctx, mark);
        throw error;
      },
    );
  }

  /**
   * @internal A call holding a slot settled; `mark` is `ctx._orphanMark` taken when it started, or -1 when the
   * operation ran directly inside (no timeout inside, so no abandoned work). Work a timeout inside this bulkhead
   * abandoned is still running: the slot is kept until it ends.
   */
  _settled(ctx: ExecutionContext, mark: number): void {
    if (mark < 0 || !ctx._whenOrphansDone(mark, this.#releaseLater)) this.#release();
  }

  /** Bound once: gives a slot back once abandoned work has settled. */
  readonly #releaseLater = (): void => this.#release();

  #release(): void {
    this.#active--;
    this.#drain();
  }

  #drain(): void {
    while (this.#head !== undefined && this.#active < this.#limit) {
      const w = this.#head;
      this._unlink(w);
      this.#active++;
      // The slot is taken now; the call runs and settles the waiter's promise.
      w._grant();
    }
  }

  /** @internal Takes a queued entry out of the queue (cancelling its queue timeout and abort subscription). */
  _unlink(w: BulkheadEntry): void {
    if (w._qPrev === undefined) this.#head = w._qNext;
    else w._qPrev._qNext = w._qNext;
    if (w._qNext === undefined) this.#tail = w._qPrev;
    else w._qNext._qPrev = w._qPrev;
    w._qPrev = w._qNext = undefined;
    this.#queued--;
    w._dequeued();
  }

  /** @internal A waiter leaves the queue without a slot: queue timeout, abort (reason) or dispose. */
  _leave(w: BulkheadEntry, own: BulkheadRejectionReason | undefined, callerReason: unknown): void {
    // Only queued waiters get here: unlinking cancels a waiter's queue timeout and abort subscription at once.
    this._unlink(w);
    // Our own rejections are typed; a caller's abort passes its reason through unchanged, whatever it is.
    w._refuse(own !== undefined ? this.#rejection(w._qCtx, own) : callerReason);
  }

  #rejection(ctx: ExecutionContext, reason: BulkheadRejectionReason): BulkheadRejectedError {
    if (this._events.wants(EV.bulkheadRejected)) {
      this._events.emit(EV.bulkheadRejected, {
        type: 'bulkhead.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        reason,
        active: this.#active,
        queued: this.#queued,
      });
    }
    return BulkheadRejectedError.fast(this.name, reason, this.#active, this.#queued);
  }
}

/**
 * Limits concurrency: at most `limit` calls run at once, up to `queue` more wait in FIFO order (for at most
 * `queueTimeoutMs`), and the rest are rejected at once with `BulkheadRejectedError`.
 *
 * - A queued call whose signal aborts leaves the queue at once and rejects with the caller's reason.
 * - `active` and `queued` are live counters; `limit` can be changed at run time; `dispose()` rejects the queue.
 * - Work abandoned by a timeout inside the bulkhead keeps its slot until it really settles, so the limit bounds
 *   the work actually running.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const db = bulkhead({ limit: 16, queue: 64, queueTimeoutMs: 1_000 });
 * const rows = await db.execute(() => pool.query(sql));
 * ```
 */
export function bulkhead(options: BulkheadOptions): BulkheadPolicy {
  const check = new Checker('bulkhead');
  if (check.object('', options, BULKHEAD_OPTION_NAMES)) {
    if (options.limit === undefined) check.fail('limit', undefined, 'an integer >= 1 (required)');
    check.number('limit', options.limit, { min: 1, integer: true });
    check.number('queue', options.queue, { min: 0, integer: true, infinity: true });
    check.number('queueTimeoutMs', options.queueTimeoutMs, { min: 0, exclusiveMin: true });
    check.string('name', options.name);
    check.clock('clock', options.clock);
  } else if (options === undefined) {
    check.fail('limit', undefined, 'an integer >= 1 (required)');
  }
  check.done();
  return new BulkheadPolicy(options);
}
