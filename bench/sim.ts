/**
 * The overload suite's simulation kit: a virtual clock with a binary heap of timers, a seeded random source and two
 * simulated upstreams (one with workers and a bounded queue, one with a slow tail). Everything runs in virtual time,
 * so a simulation's results depend on its seeds only, never on the machine or its load.
 */
import type { Clock, TimerHandle } from '../src/index.js';

/** A timer of {@link SimClock}: ordered by due time, then by creation (ties fire in the order they were set). */
class SimTimer {
  constructor(
    readonly at: number,
    readonly seq: number,
    readonly callback: () => void,
  ) {}
  live = true;
}

const before = (a: SimTimer, b: SimTimer) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Lets every promise continuation queued so far run (and those they queue): one macrotask turn of the event loop. */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A virtual clock implementing bulwark's {@link Clock}: time moves only in {@link SimClock.advanceTo}. Timers live
 * in a binary heap (O(log n) to set and fire; a cleared timer is marked dead and dropped when it reaches the top).
 * Why not `FakeClock` from bulwark/testing: it scans its timers on every advance, O(n) per timer, and a simulation
 * keeps tens of thousands of timers pending.
 *
 * At each instant with due timers, the clock fires all of them in order (due time, then the order they were set),
 * then lets promise continuations run (one `setImmediate` turn, which empties the microtask queue), and repeats while
 * timers are due at that same instant (a timer set with delay 0 by a continuation fires at the same virtual time).
 */
export class SimClock implements Clock {
  #now = 0;
  #seq = 0;
  #live = 0;
  readonly #heap: SimTimer[] = [];
  /** Instants at which at least one timer fired (each cost one event-loop turn). */
  instants = 0;

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    // A negative, zero or NaN delay fires at the current instant, as Node's timers do (after the running code).
    // biome-ignore lint/complexity/useMathMinMax: Math.max(NaN, 0) is NaN; a NaN delay must become 0.
    const timer = new SimTimer(this.#now + (delayMs > 0 ? delayMs : 0), this.#seq++, callback);
    this.#push(timer);
    this.#live++;
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof SimTimer && handle.live) {
      handle.live = false;
      this.#live--;
    }
  }

  /** Timers set and neither fired nor cleared. */
  get pending(): number {
    return this.#live;
  }

  /** Moves time to `t`, firing every timer due on the way (see the class comment); `now()` is `t` afterwards. */
  async advanceTo(t: number): Promise<void> {
    const heap = this.#heap;
    const due: SimTimer[] = [];
    for (;;) {
      while (heap.length > 0 && !(heap[0] as SimTimer).live) this.#pop();
      const top = heap[0];
      if (top === undefined || top.at > t) break;
      this.#now = top.at;
      // Pop the whole instant first, then fire: a timer set by one of these callbacks waits for the next pass, after
      // the continuations of this one, as a zero-delay timer set in a Node timer callback does.
      while (heap.length > 0 && (heap[0] as SimTimer).at <= this.#now) due.push(this.#pop());
      for (const timer of due) {
        // An earlier callback of the same instant may have cleared it.
        if (!timer.live) continue;
        timer.live = false;
        this.#live--;
        timer.callback();
      }
      due.length = 0;
      this.instants++;
      await drain();
    }
    if (t > this.#now) this.#now = t;
  }

  /** Advances by `ms` (see {@link SimClock.advanceTo}). */
  advance(ms: number): Promise<void> {
    return this.advanceTo(this.#now + ms);
  }

  #push(timer: SimTimer): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(timer);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as SimTimer;
      if (!before(timer, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = timer;
  }

  #pop(): SimTimer {
    const heap = this.#heap;
    const top = heap[0] as SimTimer;
    const last = heap.pop() as SimTimer;
    if (heap.length === 0) return top;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(heap[r] as SimTimer, heap[l] as SimTimer) ? r : l;
      const c = heap[child] as SimTimer;
      if (!before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

/** A seeded random source in [0, 1) (mulberry32: 32 bits of state, fast, good enough for a simulation). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A draw from the exponential distribution of mean `mean` (inter-arrival times of a Poisson process, service times). */
export function exponentialDraw(random: () => number, mean: number): number {
  return -Math.log(1 - random()) * mean;
}

/**
 * The value below which a share `q` of `sorted` (ascending) lies, by rank: `sorted[floor(q * n)]`, so a share of at
 * most `1 - q` lies strictly above it and p99 of 10,000 latencies is the 9,901st, the fastest of the slowest 1%. No
 * interpolation: a latency reported is one that was measured.
 */
export function rankQuantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** What the simulated upstream answers when its queue is full: a 503 that costs it almost nothing. */
export class OverloadedError extends Error {
  readonly status = 503;
  readonly code = 'E_SIM_OVERLOADED';
  constructor() {
    super('503 Service Unavailable (simulated upstream: queue full)');
    this.name = 'OverloadedError';
  }
}

/** The shape of {@link QueueingUpstream}. */
export interface QueueingUpstreamOptions {
  readonly clock: SimClock;
  /** Service-time draws. */
  readonly random: () => number;
  /** Requests served at once. */
  readonly workers: number;
  /** Mean service time in ms (exponentially distributed), so capacity is `workers / serviceMs * 1000` per second. */
  readonly serviceMs: number;
  /** Requests that may wait for a worker (FIFO); one more is rejected at once with {@link OverloadedError}. */
  readonly queue: number;
  /** Worker time one rejection costs (ms), paid by the next request to start service. */
  readonly rejectCostMs: number;
}

interface Job {
  readonly signal: AbortSignal | undefined;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
  onAbort: (() => void) | undefined;
  /** The client stopped waiting (its signal aborted). */
  gaveUp: boolean;
  inService: boolean;
}

/**
 * An upstream with `workers` workers, exponential service times of mean `serviceMs` and a bounded FIFO queue: an
 * M/M/W/W+queue system. Latency grows with load as the queue fills; once it is full, requests are rejected at once
 * with {@link OverloadedError} (each rejection costs `rejectCostMs` of worker time). A request whose client gives up
 * (its signal aborts) while it waits leaves the queue (the server sees the closed connection before it starts the
 * work); one that already reached a worker is served to the end anyway: wasted work.
 */
export class QueueingUpstream {
  readonly #o: QueueingUpstreamOptions;
  #busy = 0;
  #queue: (Job | undefined)[] = [];
  #head = 0;
  /** Jobs in the queue whose client still waits. */
  #waiting = 0;
  /** Rejection work owed, paid by the next service to start. */
  #debt = 0;
  /** Requests that reached the upstream: served, queued, rejected. */
  requests = 0;
  rejected = 0;
  /** Services completed, whether or not the client still waited. */
  served = 0;
  /** Services completed after their client gave up. */
  wasted = 0;
  /** Requests that left the queue because their client gave up. */
  abandoned = 0;

  constructor(options: QueueingUpstreamOptions) {
    this.#o = options;
  }

  /** Capacity in requests per second (ignoring rejection work). */
  get capacityPerSec(): number {
    return (this.#o.workers / this.#o.serviceMs) * 1000;
  }

  /** Requests in service. */
  get busy(): number {
    return this.#busy;
  }

  /** Requests waiting for a worker. */
  get waiting(): number {
    return this.#waiting;
  }

  /** One request: resolves when served, rejects with `OverloadedError` or, once `signal` aborts, its reason. */
  request(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.requests++;
    if (this.#busy >= this.#o.workers && this.#waiting >= this.#o.queue) {
      this.rejected++;
      this.#debt += this.#o.rejectCostMs;
      return Promise.reject(new OverloadedError());
    }
    return new Promise<void>((resolve, reject) => {
      const job: Job = { signal, resolve, reject, onAbort: undefined, gaveUp: false, inService: false };
      if (signal !== undefined) {
        job.onAbort = () => {
          job.gaveUp = true;
          job.onAbort = undefined;
          if (!job.inService) {
            this.#waiting--;
            this.abandoned++;
          }
          reject(signal.reason);
        };
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      if (this.#busy < this.#o.workers) this.#start(job);
      else {
        this.#queue.push(job);
        this.#waiting++;
      }
    });
  }

  #start(job: Job): void {
    this.#busy++;
    job.inService = true;
    const ms = exponentialDraw(this.#o.random, this.#o.serviceMs) + this.#debt;
    this.#debt = 0;
    this.#o.clock.setTimeout(() => this.#finish(job), ms);
  }

  #finish(job: Job): void {
    this.#busy--;
    this.served++;
    if (job.gaveUp) this.wasted++;
    else {
      if (job.onAbort !== undefined) job.signal?.removeEventListener('abort', job.onAbort);
      job.resolve();
    }
    const next = this.#next();
    if (next !== undefined) this.#start(next);
  }

  /** The oldest queued job whose client still waits; abandoned ones are dropped on the way. */
  #next(): Job | undefined {
    const q = this.#queue;
    while (this.#head < q.length) {
      const job = q[this.#head] as Job;
      q[this.#head++] = undefined;
      if (job.gaveUp) continue;
      this.#waiting--;
      this.#compact();
      return job;
    }
    this.#compact();
    return undefined;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** The shape of {@link TailUpstream}. */
export interface TailUpstreamOptions {
  readonly clock: SimClock;
  readonly random: () => number;
  /** Latency of a normal request in ms; each draws uniformly within +-10% of it. */
  readonly normalMs: number;
  /** How many times slower a slow request is. */
  readonly slowFactor: number;
  /** One request in each run of this many is slow, at a random place in the run. */
  readonly slowEvery: number;
}

/**
 * An upstream far below its capacity (no queueing, latency independent of load) with a slow tail: in every run of
 * `slowEvery` consecutive requests, exactly one, at a random place, takes `slowFactor` times longer. Stratified rather
 * than a coin per request so that 1 in `slowEvery` is exact over any whole number of runs, and a percentile at that
 * boundary is not a coin toss. An aborted request stops at once (it costs the upstream nothing more).
 */
export class TailUpstream {
  readonly #o: TailUpstreamOptions;
  #slowAt = 0;
  requests = 0;

  constructor(options: TailUpstreamOptions) {
    this.#o = options;
  }

  request(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { clock, random, normalMs, slowFactor, slowEvery } = this.#o;
    const inRun = this.requests % slowEvery;
    if (inRun === 0) this.#slowAt = Math.floor(random() * slowEvery);
    this.requests++;
    const ms = normalMs * (0.9 + 0.2 * random()) * (inRun === this.#slowAt ? slowFactor : 1);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clock.clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
