/**
 * Recent latencies and their quantile, for hedging after (say) the p95.
 *
 * A histogram of log-spaced buckets (each 2% wider than the last, from 10 µs) over the last `samples` latencies,
 * kept by a ring of bucket indexes: recording is O(1), and the quantile is recomputed by a walk over the buckets at
 * most once every {@link REFRESH} samples. Why not sort the samples: a sort per call of 1,000 numbers costs
 * microseconds, and a quantile 2% off is as good a hedge delay as an exact one.
 * @internal
 */
export class LatencyQuantile {
  readonly #quantile: number;
  readonly #minSamples: number;
  readonly #ring: Uint16Array;
  readonly #counts = new Uint32Array(BUCKETS);
  #size = 0;
  #next = 0;
  #sinceRefresh = 0;
  #value = -1;

  constructor(quantile: number, samples: number, minSamples: number) {
    this.#quantile = quantile;
    this.#minSamples = minSamples;
    this.#ring = new Uint16Array(samples);
  }

  /** Records one latency in ms. */
  record(ms: number): void {
    const b = bucketOf(ms);
    const ring = this.#ring;
    if (this.#size === ring.length) (this.#counts[ring[this.#next] as number] as number)--;
    else this.#size++;
    ring[this.#next] = b;
    (this.#counts[b] as number)++;
    this.#next = this.#next + 1 === ring.length ? 0 : this.#next + 1;
    this.#sinceRefresh++;
  }

  /** The quantile in ms (a bucket's upper bound), or -1 while fewer than `minSamples` latencies were recorded. */
  value(): number {
    if (this.#size < this.#minSamples) return -1;
    if (this.#value < 0 || this.#sinceRefresh >= REFRESH) {
      this.#sinceRefresh = 0;
      const rank = Math.ceil(this.#quantile * this.#size);
      let seen = 0;
      let b = 0;
      for (; b < BUCKETS - 1; b++) {
        seen += this.#counts[b] as number;
        if (seen >= rank) break;
      }
      this.#value = upperOf(b);
    }
    return this.#value;
  }
}

/** Buckets: 0 for <= 10 µs, then each 2% wider, up to about 8 hours; the last takes everything above. */
const BUCKETS = 1_100;
const FLOOR_MS = 0.01;
const GROWTH = Math.log(1.02);
/** Samples between two recomputations of the quantile. */
const REFRESH = 16;

function bucketOf(ms: number): number {
  if (!(ms > FLOOR_MS)) return 0; // also NaN: a clock that went backwards
  const b = 1 + Math.floor(Math.log(ms / FLOOR_MS) / GROWTH);
  return b < BUCKETS ? b : BUCKETS - 1;
}

function upperOf(bucket: number): number {
  return FLOOR_MS * Math.exp(GROWTH * bucket);
}
