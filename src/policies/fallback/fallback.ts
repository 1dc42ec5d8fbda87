import { systemClock } from '../../core/clock.js';
import type { ExecutionContext } from '../../core/context.js';
import type { HandlePredicate, Outcome } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { Checker } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { checkHandle, classification } from '../handle.js';
import { PolicyBase } from '../policy-base.js';
import { FALLBACK_OPTION_NAMES, type FallbackOptions, type FallbackValue } from './options.js';

/**
 * A fallback policy. See {@link fallback}. `R` is the type of the replacement value; `execute` is typed by the
 * operation, so give the operation a result type that includes the replacement's.
 */
export class FallbackPolicy<R = unknown> extends PolicyBase {
  readonly #value: FallbackValue<R>;
  readonly #handle: HandlePredicate<unknown>;
  readonly #classifyResults: boolean;

  /** @internal Use {@link fallback}. */
  constructor(options: FallbackOptions<R>) {
    super(options.name ?? 'fallback', options.clock ?? systemClock);
    this.#value = options.value;
    const classify = classification(options.handle);
    this.#handle = classify.predicate;
    this.#classifyResults = classify.results;
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    // `.then` rather than an async frame: fallback is usually outermost, so this is on every call's path.
    const p = next(ctx, op);
    if (!this.#classifyResults)
      return p.then(undefined, (error: unknown) => this.#onOutcome(ctx, { ok: false, error }));
    return p.then(
      (value) => this.#onOutcome(ctx, { ok: true, value }),
      (error: unknown) => this.#onOutcome(ctx, { ok: false, error }),
    );
  }

  #onOutcome<T>(ctx: ExecutionContext, outcome: Outcome<T>): T | Promise<T> {
    // Never replace the caller's own abort: they asked to stop, not for a default.
    if (!outcome.ok && ctx._aborted) throw outcome.error;
    if (!this.#handle(outcome)) {
      if (outcome.ok) return outcome.value;
      throw outcome.error;
    }
    if (this._events.wants(EV.fallbackUsed)) {
      this._events.emit(EV.fallbackUsed, {
        type: 'fallback.used',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        outcome,
      });
    }
    const v = this.#value;
    // The pipeline's result type is the union of the operation's and the fallback's; inside, T stands for it.
    return (
      typeof v === 'function' ? (v as (f: Outcome<unknown>, c: ExecutionContext) => T | Promise<T>)(outcome, ctx) : v
    ) as T | Promise<T>;
  }
}

/**
 * Replaces a handled failure with a value, or the result of a function of the failure. Never used for a caller's
 * abort. Place it outermost; see docs/concepts.md for the order.
 *
 * @throws InvalidOptionsError when `value` is missing or an option is invalid.
 * @example
 * ```ts
 * const quote = pipeline(
 *   fallback({ value: () => CACHED_QUOTE }),
 *   retry(),
 * );
 * ```
 */
export function fallback<R>(options: FallbackOptions<R>): FallbackPolicy<R> {
  const check = new Checker('fallback');
  if (check.object('', options, FALLBACK_OPTION_NAMES)) {
    if (!('value' in options)) check.fail('value', undefined, 'a value or a function (required)');
    checkHandle(check, options.handle);
    check.string('name', options.name);
    check.clock('clock', options.clock);
  } else if (options === undefined) {
    check.fail('value', undefined, 'a value or a function (required)');
  }
  check.done();
  return new FallbackPolicy<R>(options);
}
