import type { Clock, TimerHandle } from './clock.js';
import { type AbortListener, ExecutionContext } from './context.js';
import { keepShape } from './shapes.js';

const RESOLVED: Promise<void> = Promise.resolve();

class Sleep implements AbortListener {
  readonly #clock: Clock;
  readonly #ctx: ExecutionContext;
  readonly #resolve: () => void;
  readonly #reject: (reason: unknown) => void;
  #timer: TimerHandle = undefined;
  #subscribed = false;

  constructor(clock: Clock, ctx: ExecutionContext, ms: number, resolve: () => void, reject: (reason: unknown) => void) {
    this.#clock = clock;
    this.#ctx = ctx;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#subscribed = ctx._subscribe(this);
    // Ref'd on purpose: a pending retry is work the process still has to do, so it must not exit under it.
    this.#timer = clock.setTimeout(() => this.#done(), ms);
  }

  #done(): void {
    if (this.#subscribed) this.#ctx._unsubscribe(this);
    this.#resolve();
  }

  _onAbort(reason: unknown): void {
    this.#clock.clearTimeout(this.#timer);
    this.#ctx._unsubscribe(this);
    this.#reject(reason);
  }
}
// A never-firing timer on a clock of its own: the instance exists only to keep the class's map (see shapes.ts).
keepShape(
  new Sleep(
    { now: () => 0, setTimeout: () => undefined, clearTimeout: () => undefined },
    new ExecutionContext(undefined, 'default', undefined, 1, undefined, undefined),
    1,
    () => undefined,
    () => undefined,
  ),
);

/**
 * Waits `ms` on `clock`, or rejects at once with the abort reason when `ctx` aborts (the timer is cleared and
 * the listener removed either way).
 * @internal
 */
export function sleep(clock: Clock, ms: number, ctx: ExecutionContext): Promise<void> {
  if (ctx._aborted) return Promise.reject(ctx._reason);
  if (ms <= 0) return RESOLVED;
  return new Promise<void>((resolve, reject) => {
    new Sleep(clock, ctx, ms, resolve, reject);
  });
}
