/**
 * The state of a rate limiter, behind one small boundary (DESIGN principle 11).
 *
 * The policy ({@link RateLimitPolicy}) owns everything about a call: its cost, its queue place, its abort, its
 * events and errors, the one timer that starts the head of the queue. A store owns only the counting, and
 * answers one question per call: "this call, costing `cost`, arrives at `nowMs`; when are its tokens available?"
 * It answers with a wait in ms, and it *reserves* the tokens (for that future moment) when the wait is at most
 * `maxWaitMs`. So:
 *
 * - `0`: admitted now (the tokens are taken);
 * - `0 < w <= maxWaitMs`: reserved, the call may start at `nowMs + w` and no other call gets those tokens;
 * - `w > maxWaitMs` (or `Infinity`): refused, nothing changed, and `w` is the exact `retryAfterMs`.
 *
 * Why reservations: a queued call then waits exactly until its own tokens exist, computed once from the clock,
 * and the next arrival's answer already accounts for everyone queued before it (FIFO, no overtaking), in O(1).
 * A queue that is only re-examined when a timer fires would need a timer per poll, or a walk of the queue to tell
 * a new call whether it could ever be served within `queueTimeoutMs`.
 *
 * How issue 15's shared store plugs in here: a Redis store answers the same question in one round trip (a Lua
 * script that reads Redis `TIME` as `nowMs`, applies the same arithmetic as the classes below to the key's state,
 * writes it back with an expiry, and returns the wait). It is asynchronous, so it gets its own interface (the
 * same method returning a promise of the same number); the policy branches on the kind of store once, at
 * construction, and the local path below stays synchronous: no promise on the admit path but the operation's own.
 * `refund` is best effort and local only: in a shared store other processes may have reserved after us, so a
 * lapsed reservation is simply not given back there.
 * @internal
 */
export interface RateLimitStore {
  /** The most tokens one call may take: the burst (token bucket) or the limit (windows). */
  readonly capacity: number;
  /**
   * Takes `cost` tokens for a call arriving at `nowMs`, now or, when it waits at most `maxWaitMs`, by reserving
   * them for later. Returns the wait in ms (see above); `Infinity` when `cost > capacity`.
   */
  acquire(key: string, cost: number, nowMs: number, maxWaitMs: number): number;
  /**
   * Gives back the tokens of the latest reservation (a call that left the queue before its time). Only called
   * for the newest reservation while its time is still ahead, when no call can have taken tokens since, so
   * undoing it restores exactly the state before it.
   */
  refund(key: string, cost: number): void;
  /** Tokens a call could take now, net of every reservation (never below 0). */
  available(key: string, nowMs: number): number;
}

/**
 * Float noise allowed when comparing times, in ms (a nanosecond): `performance.now()` readings are large, and a
 * wait of 1e-13 ms computed from them is no wait.
 * @internal
 */
export const EPSILON_MS = 1e-6;

/**
 * A token bucket stored as GCRA does: the theoretical arrival time `tat`, when the bucket would be full again if
 * nothing else were taken. Tokens now = `burst - max(0, tat - now) / interval`, where `interval = periodMs / rate`
 * is the time one token takes to come back. Taking `cost` tokens moves `tat` by `cost * interval`; a reservation
 * moves it the same way, past the present, so the next caller sees the bucket as it will be once the queue has
 * been served.
 * @internal
 */
export class TokenBucketStore implements RateLimitStore {
  readonly capacity: number;
  /** ms per token. */
  readonly #interval: number;
  /** `burst * interval`: how far `tat` may run ahead of now before a call must wait. */
  readonly #span: number;
  #tat = Number.NEGATIVE_INFINITY;

  constructor(rate: number, periodMs: number, burst: number) {
    this.capacity = burst;
    this.#interval = periodMs / rate;
    this.#span = burst * this.#interval;
  }

  acquire(_key: string, cost: number, nowMs: number, maxWaitMs: number): number {
    if (cost > this.capacity) return Number.POSITIVE_INFINITY;
    // Differences of nearby readings, not sums of large ones: the wait keeps its precision late in a process.
    const debt = this.#tat > nowMs ? this.#tat - nowMs : 0;
    const taken = cost * this.#interval;
    const wait = debt + taken - this.#span;
    if (wait <= EPSILON_MS) {
      this.#tat = nowMs + debt + taken;
      return 0;
    }
    if (wait <= maxWaitMs) this.#tat = nowMs + debt + taken;
    return wait;
  }

  refund(_key: string, cost: number): void {
    this.#tat -= cost * this.#interval;
  }

  available(_key: string, nowMs: number): number {
    const debt = this.#tat > nowMs ? this.#tat - nowMs : 0;
    const tokens = (this.#span - debt) / this.#interval;
    return tokens <= 0 ? 0 : Math.floor(tokens + EPSILON_MS);
  }
}

/**
 * A sliding window of `segments` segments of `windowMs / segments` each (a fixed window is one segment): segment
 * `k` covers `[k * s, (k + 1) * s)` of the clock, and the window at segment `K` is segments `K - segments + 1` to
 * `K`. A call is admitted in a segment when the window there holds at most `limit` tokens with it.
 *
 * The counts are a sorted list of (segment, tokens) with tokens > 0, from the oldest segment still in the window
 * to the newest reservation. A reservation lands in the earliest segment, not before the newest one already
 * reserved (FIFO), where enough old tokens have left the window. The list holds at most `segments` entries plus
 * one per queued call.
 * @internal
 */
export class WindowStore implements RateLimitStore {
  readonly capacity: number;
  readonly #segments: number;
  readonly #segmentMs: number;
  /** Segment indexes and their tokens, from `#head` to the end: two parallel arrays, compacted now and then. */
  #index: number[] = [];
  #tokens: number[] = [];
  #head = 0;
  /** Tokens of every entry from `#head` on. */
  #total = 0;

  constructor(limit: number, windowMs: number, segments: number) {
    this.capacity = limit;
    this.#segments = segments;
    this.#segmentMs = windowMs / segments;
  }

  /**
   * The segment of `nowMs`. A reading within a nanosecond of a boundary counts as past it: a wait computed as
   * `boundary - now` and added back to `now` may land a rounding error short of the boundary it aimed at.
   */
  #segment(nowMs: number): number {
    return Math.floor((nowMs + EPSILON_MS) / this.#segmentMs);
  }

  /** Drops the entries that have left the window at segment `k`. */
  #trim(k: number): void {
    const oldest = k - this.#segments;
    const index = this.#index;
    let h = this.#head;
    while (h < index.length && (index[h] as number) <= oldest) {
      this.#total -= this.#tokens[h] as number;
      h++;
    }
    if (h === index.length) {
      // Empty: start over without keeping the dead prefix.
      if (h > 0) {
        this.#index = [];
        this.#tokens = [];
      }
      this.#head = 0;
      this.#total = 0;
    } else {
      this.#head = h;
      if (h > 64 && h * 2 > index.length) {
        this.#index = index.slice(h);
        this.#tokens = this.#tokens.slice(h);
        this.#head = 0;
      }
    }
  }

  #add(k: number, cost: number): void {
    if (cost === 0) return;
    const last = this.#index.length - 1;
    if (last >= this.#head && this.#index[last] === k) this.#tokens[last] = (this.#tokens[last] as number) + cost;
    else {
      this.#index.push(k);
      this.#tokens.push(cost);
    }
    this.#total += cost;
  }

  acquire(_key: string, cost: number, nowMs: number, maxWaitMs: number): number {
    if (cost > this.capacity) return Number.POSITIVE_INFINITY;
    const k = this.#segment(nowMs);
    this.#trim(k);
    const index = this.#index;
    const newest = index.length > this.#head ? (index[index.length - 1] as number) : k;
    // Every call is admitted at or after the newest reservation's segment (FIFO): from there on, the window only
    // loses tokens, so the first segment where enough have left it is the answer.
    let at = Math.max(newest, k);
    const need = this.#total + cost - this.capacity;
    if (need > EPSILON_MS) {
      let freed = 0;
      let h = this.#head;
      // Bounded by the list too: `#total` and the entries' sum may differ by float noise for fractional costs.
      while (freed < need - EPSILON_MS && h < index.length) {
        freed += this.#tokens[h] as number;
        h++;
      }
      const leaves = (index[h - 1] as number) + this.#segments;
      if (leaves > at) at = leaves;
    }
    if (at === k) {
      this.#add(k, cost);
      return 0;
    }
    const wait = at * this.#segmentMs - nowMs;
    if (wait <= maxWaitMs) this.#add(at, cost);
    return wait;
  }

  refund(_key: string, cost: number): void {
    if (cost === 0) return;
    const last = this.#index.length - 1;
    const left = (this.#tokens[last] as number) - cost;
    this.#total -= cost;
    if (left > EPSILON_MS) this.#tokens[last] = left;
    else {
      this.#index.pop();
      this.#tokens.pop();
    }
  }

  available(_key: string, nowMs: number): number {
    const k = this.#segment(nowMs);
    this.#trim(k);
    const index = this.#index;
    // With a reservation ahead, nothing can be taken now.
    if (index.length > this.#head && (index[index.length - 1] as number) > k) return 0;
    const left = this.capacity - this.#total;
    return left <= 0 ? 0 : Math.floor(left + EPSILON_MS);
  }
}
