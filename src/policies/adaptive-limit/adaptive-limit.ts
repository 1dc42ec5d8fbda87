import { systemClock } from '../../core/clock.js';
import type { ExecutionContext } from '../../core/context.js';
import type { HandlePredicate } from '../../core/outcome.js';
import { invoke, type Next, type Operation } from '../../core/policy.js';
import { systemRandom } from '../../core/random.js';
import { isLocalRejectionError, isTimeoutError } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import type { AdaptiveLimitChangedEvent } from '../../events/types.js';
import { BulkheadPolicy } from '../bulkhead/bulkhead.js';
import { checkHandle, classification } from '../handle.js';
import {
  AimdAlgorithm,
  Gradient2Algorithm,
  type LimitAlgorithm,
  type LimitBounds,
  VegasAlgorithm,
} from './algorithms.js';
import {
  ADAPTIVE_LIMIT_ALGORITHM_OPTION_NAMES,
  ADAPTIVE_LIMIT_ALGORITHMS,
  ADAPTIVE_LIMIT_BASE_OPTION_NAMES,
  type AdaptiveLimitAlgorithm,
  type AdaptiveLimitOptions,
  type AimdLimitOptions,
  type Gradient2LimitOptions,
  type VegasLimitOptions,
} from './options.js';

/**
 * An adaptive concurrency limit. See {@link adaptiveLimit}.
 *
 * It is a {@link BulkheadPolicy} whose limit an algorithm moves: the same FIFO queue, queue timeout, abort handling,
 * counters, rejections (`BulkheadRejectedError`, event `bulkhead.rejected`) and gauges. Only `limit` is read-only.
 */
export class AdaptiveLimitPolicy extends BulkheadPolicy {
  /** The algorithm that moves the limit. */
  readonly algorithm: AdaptiveLimitAlgorithm;
  readonly #algo: LimitAlgorithm;
  readonly #handle: HandlePredicate<unknown>;
  readonly #classifyResults: boolean;
  readonly #windowSize: number;
  readonly #minWindowMs: number;
  readonly #maxWindowMs: number;
  // The current window: samples, those that were not drops (their latency sum and lowest), most in flight, a drop.
  #wCount = 0;
  #wTimed = 0;
  #wSum = 0;
  #wMin = Number.POSITIVE_INFINITY;
  #wInflight = 0;
  #wDrop = false;
  /** When the current window may close (clock ms). */
  #wEnd = Number.NEGATIVE_INFINITY;

  /** @internal Use {@link adaptiveLimit}. */
  constructor(options: AdaptiveLimitOptions, algorithm: AdaptiveLimitAlgorithm, algo: LimitAlgorithm) {
    super({
      limit: Math.floor(algo.estimate),
      ...(options.queue === undefined ? {} : { queue: options.queue }),
      ...(options.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: options.queueTimeoutMs }),
      name: options.name ?? 'adaptive_limit',
      clock: options.clock ?? systemClock,
    });
    this.algorithm = algorithm;
    this.#algo = algo;
    const c = classification(options.handle);
    this.#handle = c.predicate;
    this.#classifyResults = c.results;
    this.#windowSize = options.windowSize ?? 10;
    this.#minWindowMs = options.minWindowMs ?? 100;
    this.#maxWindowMs = options.maxWindowMs ?? Math.max(1_000, this.#minWindowMs);
  }

  /**
   * The concurrency limit now: a whole number in [minLimit, maxLimit] that the algorithm moves after each call.
   * Read-only (set `minLimit` and `maxLimit` to bound it). Lowering it lets running calls finish and admits no new
   * one until `active` is below it; raising it starts queued calls at once.
   */
  override get limit(): number {
    return super.limit;
  }

  /**
   * The algorithm's estimate before rounding down to {@link limit} (AIMD's is always whole; Gradient2's and Vegas'
   * move by fractions).
   */
  get estimate(): number {
    return this.#algo.estimate;
  }

  /** @internal Never fused: every call must reach {@link _hold}. */
  override _fusable(): boolean {
    return false;
  }

  /**
   * @internal Runs a call holding a slot and turns its outcome into a sample. Costs two clock readings (one here,
   * one when it settles) and two closures per call, on top of the bulkhead's work.
   */
  override _hold<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const start = this._clock.now();
    // The calls holding a slot, this one included: the in-use test of every algorithm ("is the limit used?").
    const inflight = this.active;
    // As the bulkhead's: with nothing between this policy and the operation, no timeout can leave work running.
    const mark = next === invoke ? -1 : ctx._orphanMark;
    return next(ctx, op).then(
      (value) => {
        this.#settle(ctx, mark, start, inflight, true, value);
        return value;
      },
      (error: unknown) => {
        this.#settle(ctx, mark, start, inflight, false, error);
        throw error;
      },
    );
  }

  #settle(ctx: ExecutionContext, mark: number, start: number, inflight: number, ok: boolean, v: unknown): void {
    try {
      this.#sample(ctx, start, inflight, ok, v);
    } finally {
      // The bulkhead's own release: a slot held by work a timeout inside abandoned is kept until that work ends.
      this._settled(ctx, mark);
    }
  }

  /** Feeds one call's outcome to the algorithm. Throws the `handle` predicate's own error, if it throws. */
  #sample(ctx: ExecutionContext, start: number, inflight: number, ok: boolean, v: unknown): void {
    if (this.disposed) return;
    let drop: boolean;
    if (ok) drop = this.#classifyResults && this.#handle({ ok: true, value: v });
    else if (ctx._aborted) {
      // A timeout outside this policy gave up on the call: a drop (judged as its TimeoutError). Any other abort is
      // the caller's: it says nothing about the upstream, and its latency is cut short.
      const reason = ctx._reason;
      if (!isTimeoutError(reason)) return;
      drop = this.#handle({ ok: false, error: reason });
    } else if (isLocalRejectionError(v)) {
      // Refused by bulwark before it reached the upstream (an inner bulkhead or breaker): no sample at all.
      return;
    } else drop = this.#handle({ ok: false, error: v });
    const now = this._clock.now();
    const rtt = now - start;
    this.#wCount++;
    if (inflight > this.#wInflight) this.#wInflight = inflight;
    if (drop) this.#wDrop = true;
    else {
      this.#wTimed++;
      this.#wSum += rtt;
      if (rtt < this.#wMin) this.#wMin = rtt;
    }
    if (this.#wCount < this.#windowSize || now < this.#wEnd) return;
    // The window closes: one sample of it for the algorithm, and the next window opens.
    const timed = this.#wTimed;
    const lowest = timed > 0 ? this.#wMin : 0;
    this.#wEnd = now + Math.min(this.#maxWindowMs, Math.max(this.#minWindowMs, 2 * lowest));
    const avg = timed > 0 ? this.#wSum / timed : 0;
    const most = this.#wInflight;
    const dropped = this.#wDrop;
    this.#wCount = this.#wTimed = this.#wSum = this.#wInflight = 0;
    this.#wMin = Number.POSITIVE_INFINITY;
    this.#wDrop = false;
    const from = this.limit;
    this.#algo.sample(avg, most, dropped);
    const to = Math.floor(this.#algo.estimate);
    if (to === from) return;
    this._setLimit(to);
    if (this._events.wants(EV.adaptiveLimitChanged)) {
      const event: AdaptiveLimitChangedEvent = {
        type: 'adaptive_limit.changed',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        from,
        to,
        reason: dropped ? 'drop' : to < from ? 'latency' : 'growth',
      };
      this._events.emit(EV.adaptiveLimitChanged, event);
    }
  }
}

/** Netflix concurrency-limits' defaults, per algorithm. */
const DEFAULT_BOUNDS: Readonly<Record<AdaptiveLimitAlgorithm, LimitBounds>> = {
  gradient2: { initial: 20, min: 20, max: 200 },
  aimd: { initial: 20, min: 20, max: 200 },
  vegas: { initial: 20, min: 1, max: 1000 },
};

/**
 * A concurrency limit that follows the upstream: a bulkhead whose limit an algorithm raises while calls succeed
 * quickly with the limit in use, and lowers when latency grows or calls fail with a drop.
 *
 * - `algorithm`: `'gradient2'` (default: latency against its long-term average, so it backs off as queues build,
 *   before anything fails), `'aimd'` (drops, and calls slower than `slowCallMs`) or `'vegas'` (latency against the
 *   lowest seen). Netflix concurrency-limits' defaults: limits 20 to 200 from 20 (Vegas: 1 to 1000).
 * - A drop is a failure `handle` accepts (by default every error), a timeout inside or outside the policy included.
 *   bulwark's local rejections and the caller's abort never count, and the limit never grows while less than half
 *   of it is in use.
 * - Otherwise a bulkhead: `queue`, `queueTimeoutMs`, abort, `dispose()`, `active`/`queued`, `BulkheadRejectedError`
 *   and `bulkhead.rejected` when full. `limit` is read-only; `adaptive_limit.changed` reports each change, and the
 *   metrics adapters show it as the bulkhead gauges.
 * - Place it innermost, where a bulkhead would go. It runs layered: a pipeline around it is not fused.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const upstream = adaptiveLimit({ algorithm: 'gradient2', maxLimit: 500, queue: 100, queueTimeoutMs: 1_000 });
 * const body = await upstream.execute(({ signal }) => fetch(url, { signal }).then((r) => r.text()));
 * ```
 */
export function adaptiveLimit(options: AdaptiveLimitOptions = {}): AdaptiveLimitPolicy {
  const check = new Checker('adaptiveLimit');
  let algorithm: AdaptiveLimitAlgorithm = 'gradient2';
  // Read the algorithm first: it decides which other options are known.
  let given: unknown;
  try {
    given = (options as { algorithm?: unknown } | undefined)?.algorithm;
  } catch {
    given = undefined; // reported by check.object below
  }
  if (typeof given === 'string' && (ADAPTIVE_LIMIT_ALGORITHMS as readonly string[]).includes(given)) {
    algorithm = given as AdaptiveLimitAlgorithm;
  }
  const names = [...ADAPTIVE_LIMIT_BASE_OPTION_NAMES, ...ADAPTIVE_LIMIT_ALGORITHM_OPTION_NAMES[algorithm]];
  const d = DEFAULT_BOUNDS[algorithm];
  let bounds: LimitBounds = d;
  if (check.object('', options, names)) {
    check.oneOf('algorithm', options.algorithm, ADAPTIVE_LIMIT_ALGORITHMS);
    const okMin = check.number('minLimit', options.minLimit, { min: 1, integer: true });
    const okMax = check.number('maxLimit', options.maxLimit, { min: 1, integer: true });
    const okInitial = check.number('initialLimit', options.initialLimit, { min: 1, integer: true });
    const givenMin = okMin ? (options.minLimit as number) : undefined;
    const givenMax = okMax ? (options.maxLimit as number) : undefined;
    const givenInitial = okInitial ? (options.initialLimit as number) : undefined;
    // A default bound yields to the options given (maxLimit 10 alone: min 10; initialLimit 5 alone: min 5), so
    // only bounds given explicitly can contradict each other.
    const min = givenMin ?? Math.min(d.min, givenMax ?? d.min, givenInitial ?? d.min);
    const max = givenMax ?? Math.max(d.max, givenMin ?? d.max, givenInitial ?? d.max);
    const initial = givenInitial ?? Math.min(Math.max(d.initial, min), max);
    if (min > max) check.fail('minLimit', min, `an integer <= maxLimit (${max})`);
    else if (initial < min || initial > max) {
      check.fail('initialLimit', initial, `an integer in [minLimit, maxLimit], here [${min}, ${max}]`);
    }
    bounds = { initial, min, max };
    check.number('windowSize', options.windowSize, { min: 1, integer: true });
    const okMinW = check.number('minWindowMs', options.minWindowMs, { min: 0 });
    if (check.number('maxWindowMs', options.maxWindowMs, { min: 0 }) && okMinW) {
      const lo = options.minWindowMs as number;
      if ((options.maxWindowMs as number) < lo)
        check.fail('maxWindowMs', options.maxWindowMs, `a number >= minWindowMs (${lo})`);
    }
    checkHandle(check, options.handle);
    check.number('queue', options.queue, { min: 0, integer: true, infinity: true });
    check.number('queueTimeoutMs', options.queueTimeoutMs, { min: 0, exclusiveMin: true });
    check.string('name', options.name);
    check.clock('clock', options.clock);
    if (algorithm === 'gradient2') {
      const o = options as unknown as Gradient2LimitOptions;
      check.number('smoothing', o.smoothing, { min: 0, max: 1, exclusiveMin: true });
      check.number('queueSize', o.queueSize, { min: 0 });
      check.number('longWindow', o.longWindow, { min: 1, integer: true });
      check.number('rttTolerance', o.rttTolerance, { min: 1 });
    } else if (algorithm === 'aimd') {
      const o = options as unknown as AimdLimitOptions;
      const r = o.backoffRatio;
      if (r !== undefined && !(typeof r === 'number' && r > 0 && r < 1)) {
        check.fail('backoffRatio', r, 'a number in (0, 1), both excluded');
      }
      check.number('slowCallMs', o.slowCallMs, { min: 0, exclusiveMin: true });
    } else {
      const o = options as unknown as VegasLimitOptions;
      check.number('smoothing', o.smoothing, { min: 0, max: 1, exclusiveMin: true });
      check.number('probeMultiplier', o.probeMultiplier, { min: 1, integer: true });
      check.fn('random', o.random);
    }
  }
  check.done();
  return new AdaptiveLimitPolicy(options, algorithm, makeAlgorithm(options, algorithm, bounds));
}

function makeAlgorithm(
  options: AdaptiveLimitOptions,
  algorithm: AdaptiveLimitAlgorithm,
  b: LimitBounds,
): LimitAlgorithm {
  if (algorithm === 'aimd') {
    const o = options as unknown as AimdLimitOptions;
    return new AimdAlgorithm(b, o.backoffRatio ?? 0.9, o.slowCallMs ?? 5_000);
  }
  if (algorithm === 'vegas') {
    const o = options as unknown as VegasLimitOptions;
    return new VegasAlgorithm(b, o.smoothing ?? 1, o.probeMultiplier ?? 30, o.random ?? systemRandom);
  }
  const o = options as unknown as Gradient2LimitOptions;
  return new Gradient2Algorithm(b, o.smoothing ?? 0.2, o.queueSize ?? 4, o.longWindow ?? 600, o.rttTolerance ?? 1.5);
}
