import { systemClock } from '../../core/clock.js';
import type { ExecutionContext } from '../../core/context.js';
import type { HandlePredicate } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { type Random, systemRandom } from '../../core/random.js';
import { isLocalRejectionError, ThrottledError } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import { checkHandle, classification } from '../handle.js';
import { PolicyBase } from '../policy-base.js';
import { ADAPTIVE_THROTTLE_OPTION_NAMES, type AdaptiveThrottleOptions } from './options.js';

/**
 * Requests and accepts over the last `windowMs`, in buckets that rotate lazily from the clock (no timer), with
 * running totals so a call reads them without summing the buckets.
 * @internal
 */
export class ThrottleWindow {
  readonly #bucketMs: number;
  readonly #requests: Float64Array;
  readonly #accepts: Float64Array;
  /** The bucket number (time / bucketMs) of the current bucket; -Infinity before the first use. */
  #epoch = Number.NEGATIVE_INFINITY;
  /** Where the current bucket is in the arrays. */
  #slot = 0;
  /** The totals over every bucket in the window. */
  requests = 0;
  accepts = 0;

  constructor(windowMs: number, buckets: number) {
    this.#bucketMs = windowMs / buckets;
    this.#requests = new Float64Array(buckets);
    this.#accepts = new Float64Array(buckets);
  }

  /** Moves the window to `now`: buckets that fell out of it are emptied and leave the totals. */
  advance(now: number): void {
    const epoch = Math.floor(now / this.#bucketMs);
    // A clock never goes back; a reading within the current bucket (the usual case) changes nothing.
    if (epoch <= this.#epoch) return;
    const n = this.#requests.length;
    if (epoch - this.#epoch >= n) {
      this.#requests.fill(0);
      this.#accepts.fill(0);
      this.requests = 0;
      this.accepts = 0;
    } else {
      for (let e = this.#epoch + 1; e <= epoch; e++) {
        const s = e % n;
        this.requests -= this.#requests[s] as number;
        this.accepts -= this.#accepts[s] as number;
        this.#requests[s] = 0;
        this.#accepts[s] = 0;
      }
    }
    this.#epoch = epoch;
    this.#slot = ((epoch % n) + n) % n;
  }

  /** Counts one request in the current bucket (call {@link advance} first), accepted or not. */
  add(accepted: boolean): void {
    const s = this.#slot;
    this.#requests[s] = (this.#requests[s] as number) + 1;
    this.requests++;
    if (accepted) {
      this.#accepts[s] = (this.#accepts[s] as number) + 1;
      this.accepts++;
    }
  }
}

/**
 * An adaptive throttle policy. See {@link adaptiveThrottle}.
 */
export class AdaptiveThrottlePolicy extends PolicyBase {
  /** The multiplier K of the SRE formula. */
  readonly k: number;
  /** How much history the counts cover, in ms. */
  readonly windowMs: number;
  /** The fewest requests in the window before anything is rejected. */
  readonly minRequests: number;
  readonly #window: ThrottleWindow;
  readonly #handle: HandlePredicate<unknown>;
  readonly #classifyResults: boolean;
  readonly #random: Random;
  /** A success whose result is not judged: an accept. One function per policy, so a call makes no closure for it. */
  readonly #accepted = <T>(value: T): T => {
    this.#record(true);
    return value;
  };

  /** @internal Use {@link adaptiveThrottle}. */
  constructor(options: AdaptiveThrottleOptions) {
    super(options.name ?? 'adaptive-throttle', options.clock ?? systemClock);
    this.k = options.k ?? 2;
    this.windowMs = options.windowMs ?? 120_000;
    this.minRequests = options.minRequests ?? 0;
    this.#window = new ThrottleWindow(this.windowMs, options.buckets ?? 20);
    const classify = classification(options.handle);
    this.#handle = classify.predicate;
    this.#classifyResults = classify.results;
    this.#random = options.random ?? systemRandom;
    trackInstance('adaptive_throttle', this);
  }

  /** The requests counted in the window now: calls that reached the upstream, and calls this throttle rejected. */
  get requests(): number {
    this.#window.advance(this._clock.now());
    return this.#window.requests;
  }

  /** The accepts counted in the window now: calls the upstream served (outcomes `handle` does not judge failures). */
  get accepts(): number {
    this.#window.advance(this._clock.now());
    return this.#window.accepts;
  }

  /**
   * The probability that a call starting now is rejected locally: `max(0, (requests - k * accepts) / (requests + 1))`
   * over the window's counts, or 0 while the window holds fewer than `minRequests` requests. Always below 1.
   */
  get probability(): number {
    const w = this.#window;
    w.advance(this._clock.now());
    return this.#probability(w.requests, w.accepts);
  }

  #probability(requests: number, accepts: number): number {
    const excess = requests - this.k * accepts;
    // Why `excess > 0` first: a healthy upstream (the usual case) costs one multiplication and one comparison.
    if (excess <= 0 || requests < this.minRequests) return 0;
    return excess / (requests + 1);
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const w = this.#window;
    w.advance(this._clock.now());
    const p = this.#probability(w.requests, w.accepts);
    // A draw only when there is something to decide: with p = 0 the random source is not called.
    if (p > 0 && this.#random() < p) return Promise.reject(this.#reject(ctx, p));
    const promise = next(ctx, op);
    if (this.#classifyResults) return this.#judge(ctx, promise);
    // Nothing can abort a context with neither a caller's signal nor a timeout's scope (a plain `execute`): its
    // failures are judged by a handler shared by every call, so the call makes no closure. Why the closures live in
    // `#judge` and `#onFailure` and not here: a closure in `_run` (capturing `ctx`, or just `this`) makes `_run`
    // allocate a context for it on every call, whichever branch runs. Counted with callgrind, `async () => 1` op:
    // 1,797 -> 1,657 instructions per call.
    if (ctx._caller === undefined && ctx._scope === undefined) {
      return promise.then(this.#accepted as (value: T) => T, this.#failedUnaborted);
    }
    return promise.then(this.#accepted as (value: T) => T, this.#onFailure(ctx));
  }

  /** `promise` with its result judged by `handle` too. */
  #judge<T>(ctx: ExecutionContext, promise: Promise<T>): Promise<T> {
    return promise.then((value) => this.#judged(value), this.#onFailure(ctx));
  }

  /** The failure handler of one call that can be aborted (see `_run`). */
  #onFailure(ctx: ExecutionContext): (error: unknown) => never {
    return (error) => this.#failed(ctx, error);
  }

  /** A local rejection: it counts as a request (the SRE book counts what the application attempted). */
  #reject(ctx: ExecutionContext, p: number): ThrottledError {
    const w = this.#window;
    if (this._events.wants(EV.throttleRejected)) {
      this._events.emit(EV.throttleRejected, {
        type: 'throttle.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        probability: p,
        requests: w.requests,
        accepts: w.accepts,
      });
    }
    w.add(false);
    return ThrottledError.fast(this.name, p);
  }

  /**
   * Counts one call that reached the upstream, in the current bucket: the bucket of the throttle's latest clock
   * reading, which is at or after the call's start (the call read the clock as it started). Why not read the clock
   * again: that second reading was a quarter of the throttle's cost per call (counted: about 325 instructions of
   * 1,300), and under load, the only time the window matters, some call reads the clock every few microseconds,
   * so the current bucket is the bucket of the moment the call settled.
   */
  #record(accepted: boolean): void {
    this.#window.add(accepted);
  }

  #judged<T>(value: T): T {
    // A predicate that throws rejects the call with its own error, and the call is not counted.
    const refused = this.#handle({ ok: true, value });
    this.#record(!refused);
    return value;
  }

  #failed(ctx: ExecutionContext, error: unknown): never {
    // The caller gave up, or bulwark refused the call before it reached the upstream (an inner bulkhead, breaker
    // or throttle): neither says anything about the upstream, so neither counts.
    if (ctx._aborted) throw error;
    return this.#failedUnaborted(error);
  }

  /** A failure of a call its caller did not abort. One function per policy: see `_run`. */
  readonly #failedUnaborted = (error: unknown): never => {
    if (isLocalRejectionError(error)) throw error;
    const refused = this.#handle({ ok: false, error });
    this.#record(!refused);
    throw error;
  };
}

/**
 * Client-side adaptive throttling, as the Google SRE book describes it ("Handling Overload"): while the upstream
 * keeps refusing calls, reject some locally, before they cost the upstream anything, with probability
 * `max(0, (requests - k * accepts) / (requests + 1))` over the last two minutes.
 *
 * - `requests` counts every call the application attempted through this throttle: those that reached the upstream,
 *   and those the throttle itself rejected (as the book specifies: while the client sheds, requests keep exceeding
 *   accepts, so it keeps shedding until the upstream accepts again). `accepts` counts the calls the upstream served.
 * - Calls pass untouched while `requests <= k * accepts`; then the upstream sees about `k` calls per call it
 *   accepts, however many the application attempts.
 * - A rejected call fails at once with `ThrottledError` (`ERR_THROTTLED`, a local rejection that breakers and token
 *   retry budgets ignore) and emits `throttle.rejected`.
 * - A call is counted when it settles, in the window's current bucket (that of the latest clock reading, at or
 *   after its start). A caller's abort and bulwark's own local rejections from inside (a full bulkhead, an open
 *   breaker) count neither way. No timer: the window rotates lazily from `clock`; the draw comes from `random`.
 *
 * Place it where a circuit breaker goes: inside retry, outside the timeout (so a timeout counts as a refusal);
 * see docs/concepts.md for the order.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const search = pipeline(
 *   retry({ maxAttempts: 3 }),
 *   adaptiveThrottle({ k: 2, handle: (e) => e instanceof HttpStatusError && e.status === 429 }),
 *   timeout(1_000),
 * );
 * const hits = await search.execute(({ signal }) => fetchHits(query, { signal }));
 * ```
 */
export function adaptiveThrottle(options: AdaptiveThrottleOptions = {}): AdaptiveThrottlePolicy {
  const check = new Checker('adaptiveThrottle');
  if (check.object('', options, ADAPTIVE_THROTTLE_OPTION_NAMES)) {
    check.number('k', options.k, { min: 1 });
    check.number('windowMs', options.windowMs, { min: 1 });
    check.number('buckets', options.buckets, { min: 1, max: 1000, integer: true });
    check.number('minRequests', options.minRequests, { min: 0, integer: true });
    checkHandle(check, options.handle);
    check.string('name', options.name);
    check.clock('clock', options.clock);
    check.fn('random', options.random);
  }
  check.done();
  return new AdaptiveThrottlePolicy(options);
}
