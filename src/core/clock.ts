/**
 * Time, injected. Every policy that reads time or waits takes a {@link Clock}; production code never calls
 * `setTimeout`, `performance.now` or `Date.now` outside this module (a test scans `src/` to enforce it).
 *
 * @module
 */

// Why the module's own `performance` and not the global: Node 20 serves `globalThis.performance` through a lazy
// getter on every read, which made each clock read about half again as costly (counted in instructions).
import { performance as perf } from 'node:perf_hooks';

/** An opaque handle returned by {@link Clock.setTimeout}; pass it back to {@link Clock.clearTimeout}. */
export type TimerHandle = unknown;

/**
 * A monotonic clock with timers. Policies use it for backoff delays, timeouts, queue waits and breaker windows.
 *
 * @example
 * ```ts
 * import { FakeClock } from 'bulwark/testing';
 * const clock = new FakeClock();
 * const policy = retry({ clock });
 * ```
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin. Never goes backwards; not wall-clock time. */
  now(): number;
  /**
   * Calls `callback` once, after `delayMs`. Delays above 2^31-1 ms must be honoured (not fire early).
   * `unref` asks the clock not to keep the process alive for this timer alone.
   */
  setTimeout(callback: () => void, delayMs: number, unref?: boolean): TimerHandle;
  /** Cancels a timer; a handle that already fired or was cleared is ignored. */
  clearTimeout(handle: TimerHandle): void;
  /**
   * Optional: whether a pending timer keeps the process alive (`ref`) or not. A clock without it (a fake clock)
   * ignores the distinction.
   */
  setRef?(handle: TimerHandle, ref: boolean): void;
}

/** The largest delay Node's own timers accept; longer delays are chunked, never shortened. */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

/**
 * Node's timers overflow above 2^31-1 ms and fire after 1 ms instead, which turns a long break duration or a
 * `Retry-After` of a month into a hot loop. A long delay is therefore run as a chain of maximal timers.
 */
class LongTimer {
  handle: NodeJS.Timeout | undefined;
  readonly #callback: () => void;
  #unref: boolean;
  #remaining: number;

  constructor(callback: () => void, delayMs: number, unref: boolean) {
    this.#callback = callback;
    this.#unref = unref;
    this.#remaining = delayMs;
    this.#arm();
  }

  #arm(): void {
    const step = Math.min(this.#remaining, MAX_TIMER_DELAY_MS);
    this.#remaining -= step;
    this.handle = setTimeout(() => {
      if (this.#remaining > 0) this.#arm();
      else this.#callback();
    }, step);
    if (this.#unref) this.handle.unref();
  }

  clear(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
  }

  setRef(ref: boolean): void {
    this.#unref = !ref;
    if (ref) this.handle?.ref();
    else this.handle?.unref();
  }
}

/**
 * The delay to give Node's timers so that at least `delayMs` has passed on `performance.now()` when they fire.
 * Why: Node counts a timer from the event loop's time in whole milliseconds (the current time, truncated) and fires
 * it once that count reaches the delay, so a timer can fire up to 1 ms early by `performance.now()`: a retry that
 * waited a rate limiter's `retryAfterMs` of 399.64 ms was refused again, 0.35 ms too soon. Rounded up, plus the
 * millisecond lost to truncation: a timer fires at most about 2 ms late (plus the event loop's own delay), never
 * early.
 */
function notEarly(delayMs: number): number {
  // Capped: one more than Node's largest delay would overflow, and Node would fire after 1 ms.
  return delayMs > 0 ? Math.min(Math.ceil(delayMs) + 1, MAX_TIMER_DELAY_MS) : delayMs;
}

/**
 * The real clock: `performance.now()` and Node's timers. The default of every policy.
 *
 * @example
 * ```ts
 * const t0 = systemClock.now();
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => perf.now(),
  setTimeout(callback: () => void, delayMs: number, unref?: boolean): TimerHandle {
    if (delayMs > MAX_TIMER_DELAY_MS) return new LongTimer(callback, delayMs, unref === true);
    const handle = setTimeout(callback, notEarly(delayMs));
    if (unref === true) handle.unref();
    return handle;
  },
  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof LongTimer) handle.clear();
    else clearTimeout(handle as NodeJS.Timeout);
  },
  setRef(handle: TimerHandle, ref: boolean): void {
    if (handle instanceof LongTimer) handle.setRef(ref);
    else if (ref) (handle as NodeJS.Timeout).ref();
    else (handle as NodeJS.Timeout).unref();
  },
});

/**
 * Wall-clock milliseconds since the epoch, for the few places that must compare with a date from outside (an HTTP
 * `Retry-After` date). Policies never use it for durations: those come from the monotonic {@link Clock}.
 *
 * @example
 * ```ts
 * const msUntil = Date.parse(retryAfter) - wallClockNow();
 * ```
 */
export const wallClockNow = (): number => Date.now();
