/** The window part of a {@link CircuitSnapshot}. */
export type WindowSnapshot =
  | { readonly kind: 'consecutive'; readonly failures: number }
  | {
      readonly kind: 'count';
      /** Oldest first; each entry: bit 1 failed, bit 2 slow. */
      readonly outcomes: readonly number[];
    }
  | {
      readonly kind: 'time';
      /** Each bucket's age (how long ago it started, ms) and counts. */
      readonly buckets: readonly {
        readonly ageMs: number;
        readonly calls: number;
        readonly failures: number;
        readonly slow: number;
      }[];
    };

/**
 * A breaker's state as plain JSON, for `initialState`. Times are relative (the clock is monotonic and local),
 * so a snapshot can move to another process.
 */
export interface CircuitSnapshot {
  readonly version: 1;
  readonly state: 'closed' | 'open' | 'half_open' | 'isolated';
  /** While open: ms left before half-open. */
  readonly openRemainingMs: number;
  /** Openings in a row without a close, which drives a growing break duration. */
  readonly consecutiveOpens: number;
  /** The last break duration, in ms. */
  readonly lastBreakMs: number;
  readonly window: WindowSnapshot;
}

/** Counts of a rate window. @internal */
export interface WindowTotals {
  calls: number;
  failures: number;
  slow: number;
}

/** @internal */
export interface Window {
  /** Records one outcome; returns true when the breaker should open. */
  record(failed: boolean, slow: boolean, now: number): boolean;
  reset(): void;
  snapshot(now: number): WindowSnapshot;
  restore(snapshot: WindowSnapshot, now: number): void;
  /** [failure rate, slow-call rate]; the consecutive window reports [consecutive failures, 0]. */
  rates(now: number): [number, number];
}

type Snap<K extends WindowSnapshot['kind']> = Extract<WindowSnapshot, { kind: K }>;

function ratesOf(t: WindowTotals): [number, number] {
  return t.calls === 0 ? [0, 0] : [t.failures / t.calls, t.slow / t.calls];
}

/** @internal */
export class ConsecutiveWindow implements Window {
  failures = 0;
  constructor(readonly threshold: number) {}

  record(failed: boolean): boolean {
    if (!failed) {
      this.failures = 0;
      return false;
    }
    return ++this.failures >= this.threshold;
  }

  reset(): void {
    this.failures = 0;
  }

  snapshot(): WindowSnapshot {
    return { kind: 'consecutive', failures: this.failures };
  }

  restore(s: WindowSnapshot): void {
    // The snapshot's kind was checked against the window when the options were validated.
    this.failures = (s as Snap<'consecutive'>).failures;
  }

  rates(): [number, number] {
    return [this.failures, 0];
  }
}

/** Thresholds shared by the rate windows. @internal */
export interface Rates {
  readonly failureRate: number;
  readonly slowCallRate: number;
  readonly minimumCalls: number;
}

function exceeds(t: WindowTotals, r: Rates): boolean {
  if (t.calls < r.minimumCalls) return false;
  // Divide, not multiply: 0.28 * 25 is 7.000000000000001, so 7 failures of 25 would miss a 0.28 threshold.
  return t.failures / t.calls >= r.failureRate || t.slow / t.calls >= r.slowCallRate;
}

/** The last `size` outcomes in a ring of bytes, with running totals. @internal */
export class CountWindow implements Window {
  readonly #ring: Uint8Array;
  #next = 0;
  readonly totals: WindowTotals = { calls: 0, failures: 0, slow: 0 };

  constructor(
    readonly size: number,
    readonly thresholds: Rates,
  ) {
    this.#ring = new Uint8Array(size);
  }

  record(failed: boolean, slow: boolean): boolean {
    const t = this.totals;
    const i = this.#next;
    if (t.calls === this.size) {
      const old = this.#ring[i] as number;
      if (old & 1) t.failures--;
      if (old & 2) t.slow--;
    } else t.calls++;
    this.#ring[i] = (failed ? 1 : 0) | (slow ? 2 : 0);
    if (failed) t.failures++;
    if (slow) t.slow++;
    this.#next = i + 1 === this.size ? 0 : i + 1;
    return (failed || slow) && exceeds(t, this.thresholds);
  }

  reset(): void {
    this.#ring.fill(0);
    this.#next = 0;
    this.totals.calls = this.totals.failures = this.totals.slow = 0;
  }

  snapshot(): WindowSnapshot {
    const n = this.totals.calls;
    const outcomes: number[] = [];
    const start = n === this.size ? this.#next : 0;
    for (let k = 0; k < n; k++) outcomes.push(this.#ring[(start + k) % this.size] as number);
    return { kind: 'count', outcomes };
  }

  restore(s: WindowSnapshot): void {
    this.reset();
    const list = (s as Snap<'count'>).outcomes.slice(-this.size);
    for (const code of list) this.record((code & 1) !== 0, (code & 2) !== 0);
  }

  rates(): [number, number] {
    return ratesOf(this.totals);
  }
}

/**
 * Counts per time bucket. Buckets rotate lazily: a bucket whose epoch is stale is cleared when it is next
 * written, and ignored when totals are read, so an idle breaker costs no timer and no CPU. @internal
 */
export class TimeWindow implements Window {
  readonly #bucketMs: number;
  readonly #epochs: Float64Array;
  readonly #calls: Float64Array;
  readonly #failures: Float64Array;
  readonly #slow: Float64Array;

  constructor(
    readonly sizeMs: number,
    readonly buckets: number,
    readonly thresholds: Rates,
  ) {
    this.#bucketMs = sizeMs / buckets;
    this.#epochs = new Float64Array(buckets).fill(Number.NaN);
    this.#calls = new Float64Array(buckets);
    this.#failures = new Float64Array(buckets);
    this.#slow = new Float64Array(buckets);
  }

  #slot(now: number): number {
    const epoch = Math.floor(now / this.#bucketMs);
    const slot = ((epoch % this.buckets) + this.buckets) % this.buckets;
    if (this.#epochs[slot] !== epoch) {
      this.#epochs[slot] = epoch;
      this.#calls[slot] = this.#failures[slot] = this.#slow[slot] = 0;
    }
    return slot;
  }

  totals(now: number): WindowTotals {
    const current = Math.floor(now / this.#bucketMs);
    const t: WindowTotals = { calls: 0, failures: 0, slow: 0 };
    for (let i = 0; i < this.buckets; i++) {
      const e = this.#epochs[i] as number;
      if (e > current - this.buckets && e <= current) {
        t.calls += this.#calls[i] as number;
        t.failures += this.#failures[i] as number;
        t.slow += this.#slow[i] as number;
      }
    }
    return t;
  }

  record(failed: boolean, slow: boolean, now: number): boolean {
    const slot = this.#slot(now);
    this.#calls[slot] = (this.#calls[slot] as number) + 1;
    if (failed) this.#failures[slot] = (this.#failures[slot] as number) + 1;
    if (slow) this.#slow[slot] = (this.#slow[slot] as number) + 1;
    return (failed || slow) && exceeds(this.totals(now), this.thresholds);
  }

  reset(): void {
    this.#epochs.fill(Number.NaN);
  }

  snapshot(now: number): WindowSnapshot {
    const current = Math.floor(now / this.#bucketMs);
    const buckets: { ageMs: number; calls: number; failures: number; slow: number }[] = [];
    for (let i = 0; i < this.buckets; i++) {
      const e = this.#epochs[i] as number;
      if (e > current - this.buckets && e <= current) {
        buckets.push({
          ageMs: now - e * this.#bucketMs,
          calls: this.#calls[i] as number,
          failures: this.#failures[i] as number,
          slow: this.#slow[i] as number,
        });
      }
    }
    buckets.sort((a, b) => b.ageMs - a.ageMs);
    return { kind: 'time', buckets };
  }

  restore(s: WindowSnapshot, now: number): void {
    this.reset();
    for (const b of (s as Snap<'time'>).buckets) {
      if (!(b.ageMs >= 0 && b.ageMs < this.sizeMs)) continue;
      const slot = this.#slot(now - b.ageMs);
      this.#calls[slot] = (this.#calls[slot] as number) + b.calls;
      this.#failures[slot] = (this.#failures[slot] as number) + b.failures;
      this.#slow[slot] = (this.#slow[slot] as number) + b.slow;
    }
  }

  rates(now: number): [number, number] {
    return ratesOf(this.totals(now));
  }
}
