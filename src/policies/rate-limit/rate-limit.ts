import { systemClock, type TimerHandle } from '../../core/clock.js';
import type { AbortListener, Context, ExecutionContext } from '../../core/context.js';
import type { Next, Operation } from '../../core/policy.js';
import { keepShape } from '../../core/shapes.js';
import { RateLimitedError, type RateLimitRejectionReason } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import { PolicyBase } from '../policy-base.js';
import {
  RATE_LIMIT_ALGORITHMS,
  RATE_LIMIT_OPTION_NAMES,
  type RateLimitAlgorithm,
  type RateLimitOptions,
} from './options.js';
import { EPSILON_MS, type RateLimitStore, TokenBucketStore, WindowStore } from './store.js';

/**
 * A call waiting for its reserved tokens: a node of the FIFO list, an abort listener and the call's continuation
 * at once (one allocation and one promise per queued call, no async frame, no timer).
 */
class Waiter implements AbortListener {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  subscribed = false;
  /** When its tokens are available, on the limiter's clock. */
  readonly at: number;
  readonly cost: number;
  readonly ctx: ExecutionContext;
  readonly op: Operation<unknown>;
  readonly cont: Next;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  readonly #owner: RateLimitPolicy;

  constructor(
    owner: RateLimitPolicy,
    at: number,
    cost: number,
    ctx: ExecutionContext,
    op: Operation<unknown>,
    cont: Next,
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ) {
    this.#owner = owner;
    this.at = at;
    this.cost = cost;
    this.ctx = ctx;
    this.op = op;
    this.cont = cont;
    this.resolve = resolve;
    this.reject = reject;
  }

  _onAbort(reason: unknown): void {
    this.#owner._leave(this, reason);
  }
}
keepShape(
  new Waiter(
    undefined as unknown as RateLimitPolicy,
    0.5,
    1,
    undefined as unknown as ExecutionContext,
    () => undefined,
    () => Promise.resolve(undefined) as never,
    () => undefined,
    () => undefined,
  ),
);

/**
 * A rate limiter policy. See {@link rateLimit}.
 */
export class RateLimitPolicy extends PolicyBase {
  /** The algorithm counting the tokens. */
  readonly algorithm: RateLimitAlgorithm;
  readonly #store: RateLimitStore;
  /** The store's key: this limiter's name (a shared store keeps many limiters apart by it). */
  readonly #key: string;
  readonly #cost: number | ((ctx: Context) => number);
  readonly #maxQueue: number;
  readonly #maxWaitMs: number;
  #queued = 0;
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  /** The one timer, armed for the head of the queue while the queue is not empty. */
  #timer: TimerHandle = undefined;
  #armed = false;
  #disposed = false;
  readonly #onTimer = (): void => this.#fire();

  /** @internal Use {@link rateLimit}. */
  constructor(options: RateLimitOptions) {
    super(options.name ?? 'rate-limit', options.clock ?? systemClock);
    this.#key = this.name;
    this.#cost = options.cost ?? 1;
    this.#maxQueue = options.queue ?? 0;
    this.#maxWaitMs = options.queueTimeoutMs ?? Number.POSITIVE_INFINITY;
    if (options.algorithm === 'sliding-window' || options.algorithm === 'fixed-window') {
      this.algorithm = options.algorithm;
      const segments = options.algorithm === 'sliding-window' ? (options.segments ?? DEFAULT_SEGMENTS) : 1;
      this.#store = new WindowStore(options.limit, options.windowMs, segments);
    } else {
      this.algorithm = 'token-bucket';
      const burst = options.burst ?? Math.max(1, options.rate);
      this.#store = new TokenBucketStore(options.rate, options.periodMs ?? 1_000, burst);
    }
    trackInstance('rate_limit', this);
  }

  /** The most tokens one call may take: the burst (token bucket) or the limit (windows). */
  get capacity(): number {
    return this.#store.capacity;
  }

  /** Tokens a call could take now, net of the queued calls' reservations (whole tokens, never below 0). */
  get available(): number {
    return this.#store.available(this.#key, this._clock.now());
  }

  /** Calls waiting for their tokens now. */
  get queued(): number {
    return this.#queued;
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Rejects every queued call with `RateLimitedError` (reason `'disposed'`), clears the timer and refuses new
   * calls. Running calls finish normally. Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#disarm();
    while (this.#head !== undefined) {
      const w = this.#head;
      this.#unlink(w);
      w.reject(this.#rejection(w.ctx, 'disposed', Number.POSITIVE_INFINITY, w.cost));
    }
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const c = this.#cost;
    let cost: number;
    if (typeof c === 'number') cost = c;
    else {
      try {
        cost = this.#costOf(c, ctx);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed', Number.POSITIVE_INFINITY, cost));
    const store = this.#store;
    if (cost > store.capacity) return Promise.reject(this.#rejection(ctx, 'cost', Number.POSITIVE_INFINITY, cost));
    const now = this._clock.now();
    const queueable = this.#queued < this.#maxQueue;
    const maxWait = queueable ? this.#maxWaitMs : 0;
    const wait = store.acquire(this.#key, cost, now, maxWait);
    if (wait === 0) return next(ctx, op);
    if (wait > maxWait) {
      const reason: RateLimitRejectionReason = !queueable
        ? this.#maxQueue === 0
          ? 'limit'
          : 'queue_full'
        : 'queue_timeout';
      return Promise.reject(this.#rejection(ctx, reason, wait, cost));
    }
    // Reserved: the tokens are ours at now + wait. A call whose signal has already aborted gives them back (it is
    // the newest reservation) instead of queueing.
    if (ctx._aborted) {
      store.refund(this.#key, cost);
      return Promise.reject(ctx._reason);
    }
    return new Promise<T>((resolve, reject) => {
      const w = new Waiter(this, now + wait, cost, ctx, op, next, resolve as (value: unknown) => void, reject);
      this.#enqueue(w);
      w.subscribed = ctx._subscribe(w);
      if (this._events.wants(EV.rateLimitQueued)) {
        this._events.emit(EV.rateLimitQueued, {
          type: 'rate_limit.queued',
          policy: this.name,
          operation: ctx.operation,
          attempt: ctx.attempt,
          waitMs: wait,
          cost,
          queued: this.#queued,
        });
      }
    });
  }

  /** The cost a cost function gives a call; anything but a finite number >= 0 is the caller's bug: a TypeError. */
  #costOf(fn: (ctx: Context) => number, ctx: ExecutionContext): number {
    const cost = fn(ctx);
    if (typeof cost !== 'number' || !(cost >= 0) || cost === Number.POSITIVE_INFINITY) {
      throw new TypeError(
        `rate limiter "${this.name}": the cost function returned ${describe(cost)}; expected a finite number >= 0`,
      );
    }
    return cost;
  }

  #enqueue(w: Waiter): void {
    w.prev = this.#tail;
    if (this.#tail === undefined) this.#head = w;
    else this.#tail.next = w;
    this.#tail = w;
    this.#queued++;
    // Reservations are made in FIFO order, so the head's time is the earliest: one timer, armed for it.
    if (!this.#armed) this.#arm(w.at);
  }

  #unlink(w: Waiter): void {
    if (w.prev === undefined) this.#head = w.next;
    else w.prev.next = w.next;
    if (w.next === undefined) this.#tail = w.prev;
    else w.next.prev = w.prev;
    w.prev = w.next = undefined;
    this.#queued--;
    if (w.subscribed) {
      w.subscribed = false;
      w.ctx._unsubscribe(w);
    }
  }

  /** @internal A queued call's signal aborted: it leaves the queue at once with the caller's reason. */
  _leave(w: Waiter, reason: unknown): void {
    // The newest reservation can be given back exactly, while its time is still ahead: then no call has taken
    // tokens since (every later call would have queued behind it). An older one lapses, and so does one already
    // due (its timer is late, and a call may have started meanwhile): its tokens are not reused, so the limiter
    // admits less, never more, and the calls after it keep the times they were promised.
    if (w === this.#tail && w.at > this._clock.now() + EPSILON_MS) this.#store.refund(this.#key, w.cost);
    this.#unlink(w);
    // No timer when idle. With calls left, the armed timer is for an earlier time than the new head's: it fires,
    // finds nothing due and re-arms.
    if (this.#head === undefined) this.#disarm();
    w.reject(reason);
  }

  #arm(at: number): void {
    // Never early: a timer that fires before the head's time would only re-arm.
    const delay = Math.max(0, Math.ceil(at - this._clock.now() - EPSILON_MS));
    this.#armed = true;
    this.#timer = this._clock.setTimeout(this.#onTimer, delay);
  }

  #disarm(): void {
    if (!this.#armed) return;
    this.#armed = false;
    this._clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #fire(): void {
    this.#armed = false;
    this.#timer = undefined;
    const now = this._clock.now();
    let w = this.#head;
    while (w !== undefined && w.at <= now + EPSILON_MS) {
      this.#unlink(w);
      w.cont(w.ctx, w.op).then(w.resolve, w.reject);
      w = this.#head;
    }
    if (w !== undefined && !this.#armed) this.#arm(w.at);
  }

  #rejection(ctx: ExecutionContext, reason: RateLimitRejectionReason, retryAfterMs: number, cost: number) {
    if (this._events.wants(EV.rateLimitRejected)) {
      this._events.emit(EV.rateLimitRejected, {
        type: 'rate_limit.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        reason,
        retryAfterMs,
        cost,
        queued: this.#queued,
      });
    }
    return RateLimitedError.fast(this.name, reason, retryAfterMs, cost);
  }
}

/** Segments of a sliding window by default. */
const DEFAULT_SEGMENTS = 10;

/**
 * The times the store divides by, derived from options each valid alone: the ms one token takes to come back
 * (`periodMs / rate`) and the bucket's span (`burst` of them), or one segment of a window (`windowMs / segments`).
 * Each must be a finite number > 0.
 */
function checkDerived(check: Checker, o: Record<string, unknown>, algorithm: RateLimitAlgorithm): void {
  if (algorithm === 'token-bucket') {
    const rate = o.rate as number;
    const periodMs = (o.periodMs as number | undefined) ?? 1_000;
    const interval = periodMs / rate;
    const span = ((o.burst as number | undefined) ?? Math.max(1, rate)) * interval;
    if (!(interval > 0 && Number.isFinite(interval) && Number.isFinite(span))) {
      check.fail(
        'periodMs',
        periodMs,
        `a period that, divided by rate (${rate}), gives a finite number of ms > 0 per token (and times burst, a finite number): got ${interval} ms per token`,
      );
    }
    return;
  }
  const segments = algorithm === 'sliding-window' ? ((o.segments as number | undefined) ?? DEFAULT_SEGMENTS) : 1;
  const segmentMs = (o.windowMs as number) / segments;
  if (!(segmentMs > 0)) {
    check.fail('windowMs', o.windowMs, `a window that, split in ${segments} segments, gives segments longer than 0 ms`);
  }
}

/** Reports the problems of a token bucket's or a window's own options. */
function checkAlgorithm(check: Checker, o: Record<string, unknown>, algorithm: RateLimitAlgorithm): void {
  if (algorithm === 'token-bucket') {
    if (o.rate === undefined) check.fail('rate', undefined, 'a finite number > 0 (required)');
    check.number('rate', o.rate, { min: 0, exclusiveMin: true });
    check.number('periodMs', o.periodMs, { min: 0, exclusiveMin: true });
    check.number('burst', o.burst, { min: 1 });
    return;
  }
  if (o.limit === undefined) check.fail('limit', undefined, 'an integer >= 1 (required)');
  check.number('limit', o.limit, { min: 1, integer: true });
  if (o.windowMs === undefined) check.fail('windowMs', undefined, 'a finite number > 0 (required)');
  check.number('windowMs', o.windowMs, { min: 0, exclusiveMin: true });
  if (algorithm === 'sliding-window') check.number('segments', o.segments, { min: 1, max: 1_000, integer: true });
}

/**
 * Limits the rate of calls: a token bucket (`rate` per `periodMs`, `burst`), a sliding window (`limit` per
 * `windowMs` in `segments`) or a fixed window (`limit` per `windowMs`). A call takes `cost` tokens (1 by default);
 * without them it waits in a bounded FIFO queue (`queue`, `queueTimeoutMs`) or is rejected at once with
 * `RateLimitedError`, whose `retryAfterMs` is exact.
 *
 * - No timer per call and none when idle: tokens refill lazily from the clock, and one timer, armed only while
 *   calls wait, starts the head of the queue.
 * - A queued call reserves its tokens when it arrives and starts exactly when they are available; a call that
 *   could not start within `queueTimeoutMs` is rejected at once instead of waiting; a queued call whose signal
 *   aborts leaves the queue at once with the signal's reason; `dispose()` rejects the queue.
 * - Its rejections are local: an outer circuit breaker never counts them, and an outer retry waits
 *   `retryAfterMs` (when at most its `maxRetryAfterMs`) before trying again.
 *
 * Place it inside `timeout` (which then bounds the queue wait), next to the bulkhead; see docs/concepts.md.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const github = rateLimit({ rate: 10, burst: 20, queue: 100, queueTimeoutMs: 5_000 }); // 10/s, bursts of 20
 * const repo = await github.execute(({ signal }) => fetch(url, { signal }).then((r) => r.json()));
 * ```
 */
export function rateLimit(options: RateLimitOptions): RateLimitPolicy {
  const check = new Checker('rateLimit');
  checkRateLimitOptions(check, options);
  check.done();
  return new RateLimitPolicy(options);
}

/**
 * Reports every problem of a rate limiter's options in `check`. `extraNames` are further option names allowed
 * (a policy that builds on these options, such as bulwark/redis's, checks them in `extra`, called with the options
 * once they are known to be an object with only allowed names).
 * @internal
 */
export function checkRateLimitOptions(
  check: Checker,
  given: unknown,
  extraNames: readonly string[] = [],
  extra?: (o: Record<string, unknown>) => void,
): void {
  if (given === undefined) check.fail('rate', undefined, 'a finite number > 0 (required)');
  // Which names are allowed depends on the algorithm: read it first (safely), then check the rest against it. An
  // unknown algorithm is reported, and the other names are checked against every algorithm's.
  const algorithm = algorithmOf(check, given);
  const names = algorithm === undefined ? ALL_NAMES : RATE_LIMIT_OPTION_NAMES[algorithm];
  if (check.object('', given, extraNames.length === 0 ? names : [...names, ...extraNames]) && algorithm !== undefined) {
    const o = given as Record<string, unknown>;
    checkAlgorithm(check, o, algorithm);
    if (typeof o.cost !== 'function') check.number('cost', o.cost, { min: 0 });
    check.number('queue', o.queue, { min: 0, integer: true, infinity: true });
    check.number('queueTimeoutMs', o.queueTimeoutMs, { min: 0, exclusiveMin: true, infinity: true });
    check.string('name', o.name);
    check.clock('clock', o.clock);
    // Each option can be valid alone while their ratio is not a time: 0.5 tokens per 1e308 ms is a token every
    // Infinity ms (a call would wait forever), 1 ms split in 1e9 tokens' worth of 1e-320 ms rounds to 0.
    if (check.problems.length === 0) checkDerived(check, o, algorithm);
    if (check.problems.length === 0 && typeof o.cost === 'number') {
      const tb = algorithm === 'token-bucket';
      const capacity = tb ? ((o.burst as number | undefined) ?? Math.max(1, o.rate as number)) : (o.limit as number);
      if (o.cost > capacity) {
        check.fail('cost', o.cost, `a number <= ${tb ? 'burst' : 'limit'} (${capacity}): no call could ever run`);
      }
    }
    extra?.(o);
  }
}

const ALL_NAMES: readonly string[] = [...new Set(Object.values(RATE_LIMIT_OPTION_NAMES).flat())];

/** The algorithm the options name (token bucket when absent), or undefined (reported) when it is not one. */
function algorithmOf(check: Checker, given: unknown): RateLimitAlgorithm | undefined {
  if (typeof given !== 'object' || given === null) return 'token-bucket';
  let a: unknown;
  try {
    a = (given as { algorithm?: unknown }).algorithm;
  } catch {
    return undefined; // a throwing getter: check.object reports it
  }
  if (a === undefined) return 'token-bucket';
  return check.oneOf('algorithm', a, RATE_LIMIT_ALGORITHMS) ? (a as RateLimitAlgorithm) : undefined;
}
