/**
 * The limit algorithms of {@link adaptiveLimit}, after Netflix concurrency-limits (AIMDLimit, Gradient2Limit,
 * VegasLimit): each turns one sample (a call's latency, the calls in flight when it started, whether it was a drop)
 * into a new estimate. The policy's limit is the estimate rounded down. Plain arithmetic, no timer, no allocation.
 * @internal
 * @module
 */
import type { Random } from '../../core/random.js';

/** @internal */
export interface LimitAlgorithm {
  /** The current estimate: a number in [min, max]; the limit is its integer part. */
  readonly estimate: number;
  /**
   * Takes one sample: `rttMs`, the call's latency; `inflight`, the calls holding a slot when it was admitted (itself
   * included); `drop`, whether it failed in a way that signals overload.
   */
  sample(rttMs: number, inflight: number, drop: boolean): void;
}

/** @internal */
export interface LimitBounds {
  readonly initial: number;
  readonly min: number;
  readonly max: number;
}

const clamp = (value: number, b: LimitBounds): number => Math.max(b.min, Math.min(b.max, value));

/**
 * AIMD: a drop, or a call slower than `slowCallMs`, multiplies the limit by `backoffRatio` (rounded down); a success
 * adds 1 while at least half the limit is in use. Integer throughout, as Netflix's.
 * @internal
 */
export class AimdAlgorithm implements LimitAlgorithm {
  estimate: number;
  readonly #b: LimitBounds;
  readonly #backoff: number;
  readonly #slowMs: number;

  constructor(b: LimitBounds, backoffRatio: number, slowCallMs: number) {
    this.#b = b;
    this.estimate = b.initial;
    this.#backoff = backoffRatio;
    this.#slowMs = slowCallMs;
  }

  sample(rttMs: number, inflight: number, drop: boolean): void {
    const l = this.estimate;
    if (drop || rttMs > this.#slowMs) this.estimate = clamp(Math.floor(l * this.#backoff), this.#b);
    // Why the in-flight test: a limit that is not used says nothing about the upstream, so it must not grow.
    else if (inflight * 2 >= l) this.estimate = clamp(l + 1, this.#b);
  }
}

/** The warm-up of the long-term average: its first samples are averaged plainly (Netflix: 10). */
const WARMUP = 10;

/**
 * Gradient2: `gradient = max(0.5, min(1, rttTolerance x longRtt / rtt))`, `new = limit x gradient + queueSize`,
 * then smoothed: `limit = limit x (1 - smoothing) + new x smoothing`. `longRtt` is an exponential average over
 * about `longWindow` samples, cut by 5% per sample while it is more than twice the latest latency (so it comes back
 * down quickly after a long overload). The limit does not move while less than half of it is in use.
 *
 * One change from Netflix's Gradient2, which ignores drops: a drop takes the steepest gradient (0.5) without the
 * queue allowance, `limit x (1 - smoothing / 2)` (x0.9 by default, AIMD's backoff), and its latency is left out of
 * the average. Why: an upstream that fails fast under overload would otherwise look healthy and fast.
 * @internal
 */
export class Gradient2Algorithm implements LimitAlgorithm {
  estimate: number;
  readonly #b: LimitBounds;
  readonly #smoothing: number;
  readonly #queueSize: number;
  readonly #factor: number;
  readonly #tolerance: number;
  #long = 0;
  #sum = 0;
  #count = 0;

  constructor(b: LimitBounds, smoothing: number, queueSize: number, longWindow: number, rttTolerance: number) {
    this.#b = b;
    this.estimate = b.initial;
    this.#smoothing = smoothing;
    this.#queueSize = queueSize;
    this.#factor = 2 / (longWindow + 1);
    this.#tolerance = rttTolerance;
  }

  /** @internal The long-term latency average (tests). */
  get longRtt(): number {
    return this.#long;
  }

  sample(rttMs: number, inflight: number, drop: boolean): void {
    const l = this.estimate;
    if (drop) {
      this.estimate = clamp(l * (1 - this.#smoothing / 2), this.#b);
      return;
    }
    let long: number;
    if (this.#count < WARMUP) {
      this.#count++;
      this.#sum += rttMs;
      long = this.#sum / this.#count;
    } else {
      long = this.#long * (1 - this.#factor) + rttMs * this.#factor;
    }
    // The gradient below uses `long` before this cut, as Netflix's does.
    this.#long = long > 2 * rttMs ? long * 0.95 : long;
    if (inflight * 2 < l) return;
    // A zero latency (a fake clock, a cached answer) shows no queueing: gradient 1.
    const ratio = rttMs > 0 ? (this.#tolerance * long) / rttMs : 1;
    const gradient = Math.max(0.5, Math.min(1, ratio));
    const next = l * gradient + this.#queueSize;
    this.estimate = clamp(l * (1 - this.#smoothing) + next * this.#smoothing, this.#b);
  }
}

/** Netflix's Log10RootFunction: `max(1, floor(log10(limit)))`. */
const log10 = (limit: number): number => Math.max(1, Math.floor(Math.log10(Math.floor(limit))));

/**
 * Vegas: `queue = ceil(limit x (1 - rttNoLoad / rtt))` with `rttNoLoad` the lowest latency seen; with
 * `a = max(1, floor(log10 limit))`, the limit grows by 6a when queue <= a, by a when queue < 3a, shrinks by a when
 * queue > 6a, and stays otherwise; a drop shrinks it by a. It does not grow while less than half of it is in use.
 * `rttNoLoad` is taken again from the next sample about every `probeMultiplier x limit` samples (jittered by 0.5 to
 * 1), so it follows an upstream whose base latency rose. Drops never set `rttNoLoad` (a fast failure is no measure
 * of the upstream's latency), a change from Netflix's.
 * @internal
 */
export class VegasAlgorithm implements LimitAlgorithm {
  estimate: number;
  readonly #b: LimitBounds;
  readonly #smoothing: number;
  readonly #probeMultiplier: number;
  readonly #random: Random;
  #jitter: number;
  #probeCount = 0;
  /** The lowest latency seen since the last probe; -1 before the first sample. */
  #noLoad = -1;

  constructor(b: LimitBounds, smoothing: number, probeMultiplier: number, random: Random) {
    this.#b = b;
    this.estimate = b.initial;
    this.#smoothing = smoothing;
    this.#probeMultiplier = probeMultiplier;
    this.#random = random;
    this.#jitter = this.#nextJitter();
  }

  #nextJitter(): number {
    return 0.5 + 0.5 * this.#random();
  }

  sample(rttMs: number, inflight: number, drop: boolean): void {
    const l = this.estimate;
    let next: number;
    if (drop) next = l - log10(l);
    else {
      this.#probeCount++;
      if (this.#jitter * this.#probeMultiplier * l <= this.#probeCount) {
        this.#jitter = this.#nextJitter();
        this.#probeCount = 0;
        this.#noLoad = rttMs;
        return;
      }
      if (this.#noLoad < 0 || rttMs < this.#noLoad) {
        this.#noLoad = rttMs;
        return;
      }
      if (inflight * 2 < l) return;
      const queue = rttMs > 0 ? Math.ceil(l * (1 - this.#noLoad / rttMs)) : 0;
      const a = log10(l);
      if (queue <= a) next = l + 6 * a;
      else if (queue < 3 * a) next = l + a;
      else if (queue > 6 * a) next = l - a;
      else return;
    }
    this.estimate = clamp(l * (1 - this.#smoothing) + clamp(next, this.#b) * this.#smoothing, this.#b);
  }
}
