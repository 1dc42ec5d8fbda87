import type { Context } from '../../core/context.js';
import type { Outcome } from '../../core/outcome.js';
import type { Random } from '../../core/random.js';
import { Checker } from '../../errors/validate.js';

/** How random the exponential delay is. See docs/policies/retry.md for the formulas. */
export type Jitter = 'none' | 'full' | 'equal' | 'decorrelated';

/**
 * A delay schedule between attempts. Built by {@link constant}, {@link linear} or {@link exponential}; delays are
 * always finite, >= 0 and <= the schedule's cap.
 */
export interface Backoff {
  readonly kind: 'constant' | 'linear' | 'exponential';
  /**
   * The delay after failed attempt `attempt` (1 for the first), given the previous delay (0 before the first
   * retry) and a random source.
   */
  delay(attempt: number, previousMs: number, random: Random): number;
}

/**
 * A delay computed from the failure itself, for `Retry-After` or gRPC pushback: return milliseconds, or
 * `'stop'` to give up now. Must return a finite number >= 0 or `'stop'`; anything else rejects the call with a
 * `TypeError` whose `cause` is the last failure.
 */
export type BackoffFunction = (attempt: number, outcome: Outcome<unknown>, ctx: Context) => number | 'stop';

const JITTERS: readonly Jitter[] = ['none', 'full', 'equal', 'decorrelated'];

class ConstantBackoff implements Backoff {
  readonly kind = 'constant';
  constructor(readonly delayMs: number) {}
  delay(): number {
    return this.delayMs;
  }
}

/**
 * The same delay before every retry.
 *
 * @param delayMs - milliseconds, finite and >= 0.
 * @throws InvalidOptionsError when `delayMs` is not a finite number >= 0.
 * @example
 * ```ts
 * retry({ maxAttempts: 5, backoff: constant(200) });
 * ```
 */
export function constant(delayMs: number): Backoff {
  const check = new Checker('constant');
  if (delayMs === undefined) check.fail('delayMs', delayMs, 'a number >= 0');
  check.number('delayMs', delayMs, { min: 0 });
  check.done();
  return new ConstantBackoff(delayMs);
}

/** Options of {@link linear}. */
export interface LinearOptions {
  /** The first delay. @defaultValue 100 */
  initialMs?: number;
  /** Added per further retry. @defaultValue `initialMs` */
  stepMs?: number;
  /** The cap. @defaultValue 10_000 */
  maxMs?: number;
}

class LinearBackoff implements Backoff {
  readonly kind = 'linear';
  constructor(
    readonly initialMs: number,
    readonly stepMs: number,
    readonly maxMs: number,
  ) {}
  delay(attempt: number): number {
    return Math.min(this.maxMs, this.initialMs + this.stepMs * (attempt - 1));
  }
}

/**
 * A delay growing by a fixed step: `min(maxMs, initialMs + stepMs * (attempt - 1))`.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * retry({ backoff: linear({ initialMs: 100, stepMs: 100, maxMs: 1_000 }) }); // 100, 200, 300, ...
 * ```
 */
export function linear(options: LinearOptions = {}): Backoff {
  const check = new Checker('linear');
  if (check.object('', options, ['initialMs', 'stepMs', 'maxMs'])) {
    check.number('initialMs', options.initialMs, { min: 0 });
    check.number('stepMs', options.stepMs, { min: 0 });
    check.number('maxMs', options.maxMs, { min: 0 });
    checkCap(check, options.initialMs as number | undefined, options.maxMs as number | undefined);
  }
  check.done(); // before any read below: options that are not an object, or whose getters throw, stop here
  const initialMs = options.initialMs ?? 100;
  return new LinearBackoff(initialMs, options.stepMs ?? initialMs, options.maxMs ?? 10_000);
}

/** Options of {@link exponential}. */
export interface ExponentialOptions {
  /** The base of the first delay. @defaultValue 100 */
  initialMs?: number;
  /** The cap: no delay exceeds it. @defaultValue 10_000 */
  maxMs?: number;
  /** Growth per retry. @defaultValue 2 */
  factor?: number;
  /** @defaultValue `'full'` */
  jitter?: Jitter;
}

class ExponentialBackoff implements Backoff {
  readonly kind = 'exponential';
  constructor(
    readonly initialMs: number,
    readonly maxMs: number,
    readonly factor: number,
    readonly jitter: Jitter,
  ) {}

  delay(attempt: number, previousMs: number, random: Random): number {
    if (this.jitter === 'decorrelated') {
      // AWS "decorrelated jitter": between the base and three times the previous delay. The previous delay is
      // bounded by the cap, so the product can never overflow to Infinity and the result is never NaN.
      const prev = Math.min(this.maxMs, Math.max(this.initialMs, previousMs));
      const upper = Math.min(this.maxMs, prev * 3);
      return Math.min(this.maxMs, this.initialMs + random() * Math.max(0, upper - this.initialMs));
    }
    // Math.min before anything else: factor ** attempt may be Infinity for large attempts, never NaN.
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** (attempt - 1));
    switch (this.jitter) {
      case 'none':
        return base;
      case 'full':
        return random() * base;
      default:
        // Math.min: the halves can round one ulp above base.
        return Math.min(base, base / 2 + (random() * base) / 2);
    }
  }
}

/**
 * Exponential backoff: `base = min(maxMs, initialMs * factor^(attempt-1))`, then jitter: `none` (base), `full`
 * (uniform in [0, base)), `equal` (base/2 plus uniform in [0, base/2)) or `decorrelated` (uniform between
 * `initialMs` and three times the previous delay, capped). The default of `retry`.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * retry({ backoff: exponential({ initialMs: 50, maxMs: 2_000, jitter: 'equal' }) });
 * ```
 */
export function exponential(options: ExponentialOptions = {}): Backoff {
  const check = new Checker('exponential');
  if (check.object('', options, ['initialMs', 'maxMs', 'factor', 'jitter'])) {
    check.number('initialMs', options.initialMs, { min: 0, exclusiveMin: true });
    check.number('maxMs', options.maxMs, { min: 0 });
    check.number('factor', options.factor, { min: 1 });
    check.oneOf('jitter', options.jitter, JITTERS);
    checkCap(check, options.initialMs as number | undefined, options.maxMs as number | undefined);
  }
  check.done(); // before any read below: options that are not an object, or whose getters throw, stop here
  return new ExponentialBackoff(
    options.initialMs ?? 100,
    options.maxMs ?? 10_000,
    options.factor ?? 2,
    options.jitter ?? 'full',
  );
}

/** `maxMs` must not be below `initialMs` (their defaults 10_000 and 100 included); judged once both are valid. */
function checkCap(check: Checker, initial: number | undefined, max: number | undefined): void {
  const initialMs = initial ?? 100;
  const maxMs = max ?? 10_000;
  if (check.problems.length === 0 && maxMs < initialMs)
    check.fail('maxMs', maxMs, `a number >= initialMs (${initialMs})`);
}

/** @internal Whether `value` is a backoff made by one of the factories. */
export function isBackoff(value: unknown): value is Backoff {
  return value instanceof ConstantBackoff || value instanceof LinearBackoff || value instanceof ExponentialBackoff;
}
