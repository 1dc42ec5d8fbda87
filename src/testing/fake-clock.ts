import type { Clock, TimerHandle } from '../core/clock.js';

interface FakeTimer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/** Lets every pending promise continuation run: one macrotask turn drains the microtask queue. */
function flush(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * A clock for tests: time stands still until you advance it, and timers fire in order, with promise
 * continuations run between them. No real waiting, no global timer patching.
 *
 * @example
 * ```ts
 * import { FakeClock } from 'bulwark/testing';
 * const clock = new FakeClock();
 * const policy = retry({ clock, backoff: constant(1_000) });
 * const p = policy.execute(flakyOp);
 * await clock.advance(1_000); // the retry runs now
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, FakeTimer>();

  /** @param startMs - the initial `now()`. @defaultValue 0 */
  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, delayMs), seq, callback });
    return seq;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** How many timers are pending. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** The time the next timer is due, or undefined when none is pending. */
  get nextTimerAt(): number | undefined {
    return this.#next()?.at;
  }

  #next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers.values()) {
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in order (each at its own time), and letting
   * promise continuations run after each. Timers set by those continuations fire too if due within the span.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: expected ms >= 0, got ${ms}`);
    await flush();
    const end = this.#now + ms;
    for (;;) {
      const t = this.#next();
      if (t === undefined || t.at > end) break;
      this.#timers.delete(t.seq);
      this.#now = Math.max(this.#now, t.at);
      t.callback();
      await flush();
    }
    this.#now = end;
    await flush();
  }

  /** Advances to the next pending timer and fires it (and any due at the same time). Returns false if none. */
  async next(): Promise<boolean> {
    await flush();
    const t = this.#next();
    if (t === undefined) return false;
    await this.advance(t.at - this.#now);
    return true;
  }

  /** Fires timers until none is pending, up to `limit` of them (a guard against timers that re-arm forever). */
  async runAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit; i++) if (!(await this.next())) return;
    throw new Error(`FakeClock.runAll: still ${this.#timers.size} timers after firing ${limit}`);
  }

  /** Lets pending promise continuations run without moving time. */
  flush(): Promise<void> {
    return flush();
  }
}
