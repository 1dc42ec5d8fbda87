/**
 * The errors bulwark itself raises. The operation's own errors are never wrapped (unless retry is asked to).
 *
 * `instanceof` works across two copies of the package (an ESM and a CJS build loaded side by side): every error
 * carries a brand under a registry symbol and each class checks the brand and its `code`, not the prototype.
 *
 * @module
 */

import { keepShape } from '../core/shapes.js';

const BRAND: unique symbol = Symbol.for('bulwark.error') as never;

/** The stable codes of bulwark's errors. */
export type ErrorCode =
  | 'ERR_CIRCUIT_OPEN'
  | 'ERR_TIMEOUT'
  | 'ERR_BULKHEAD_REJECTED'
  | 'ERR_INVALID_OPTIONS'
  | 'ERR_RETRY_EXHAUSTED'
  | 'ERR_HEDGE_CANCELLED'
  | 'ERR_RATE_LIMITED'
  | 'ERR_THROTTLED';

/** The `code` of a bulwark error (of any copy), or undefined for anything else; never throws. */
function brandedCode(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as { [BRAND]?: unknown; code?: unknown };
  try {
    return v[BRAND] === true ? v.code : undefined;
  } catch {
    return undefined; // a Proxy or a throwing getter: not one of ours
  }
}

function hasCode(value: unknown, code: string | undefined): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { [BRAND]?: unknown; code?: unknown };
  try {
    return v[BRAND] === true && (code === undefined || v.code === code);
  } catch {
    // A thrown value may be a Proxy or an object with throwing getters: a guard must answer, not throw.
    return false;
  }
}

/*
 * Why fail-fast errors carry no stack and build their message lazily: capturing a stack costs microseconds and
 * formatting a message costs allocations, and a breaker that is open may reject thousands of calls a second. The
 * fields say everything; the stack would only point into bulwark; the message is built when someone reads it.
 * The `fast()` factories set Error.stackTraceLimit to 0 around the constructor (which cannot throw).
 */

/**
 * Base class of every error bulwark raises, with a stable `code`.
 *
 * @example
 * ```ts
 * try { await policy.execute(op); } catch (e) {
 *   if (e instanceof ResilienceError) log.warn({ code: e.code }, e.message);
 * }
 * ```
 */
export class ResilienceError extends Error {
  /** A stable, machine-readable code such as `ERR_CIRCUIT_OPEN`. */
  readonly code: ErrorCode;
  /** The name of the policy that raised it. */
  readonly policy: string;

  constructor(code: ErrorCode, policy: string, message: string | undefined, options?: { cause?: unknown }) {
    // An undefined message creates no own `message` property, so a subclass can compute it in a getter.
    super(message, options);
    this.code = code;
    this.policy = policy;
  }

  /**
   * `instanceof` across two copies of the package (ESM and CJS): checks the bulwark brand and this class's `code`,
   * not the prototype, so `e instanceof TimeoutError` holds for a `TimeoutError` of either copy.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass `instanceof` was asked about.
    return hasCode(value, (this as { CODE?: string }).CODE);
  }
}

Object.defineProperty(ResilienceError.prototype, 'name', { value: 'ResilienceError', writable: true });
// The brand lives on the prototype: every instance has it without a per-error property write.
Object.defineProperty(ResilienceError.prototype, BRAND, { value: true });

/**
 * A fail-fast error is made with Object.create, not the Error constructor: V8's error construction costs several
 * hundred ns even with no stack captured, which would be most of the cost of a rejected call. Such an error is
 * `instanceof Error` and of its class, its `stack` is the one line `Name: message` (a prototype getter), and
 * `util.types.isNativeError()` is false for it.
 */
function fastInstance<T extends object>(proto: T): T {
  return Object.create(proto) as T;
}

/** The `stack` of a fail-fast error: its first line only, computed when read. */
function oneLineStack(this: Error): string {
  return `${this.name}: ${this.message}`;
}

/**
 * Which state of the breaker rejected the call; `'unavailable'`: a shared breaker (bulwark/redis) whose store gave no
 * answer, under `onStoreError: 'fail-closed'`.
 */
export type CircuitRejectionState = 'open' | 'half_open' | 'isolated' | 'unavailable';

/**
 * A circuit breaker rejected the call without running it. Carries no stack (see the docs on errors).
 *
 * @example
 * ```ts
 * if (isCircuitOpenError(e)) res.setHeader('retry-after', Math.ceil(e.retryAfterMs / 1000));
 * ```
 */
export class CircuitOpenError extends ResilienceError {
  static readonly CODE = 'ERR_CIRCUIT_OPEN';
  /** Milliseconds until the breaker may admit a call again; `Infinity` while isolated. */
  readonly retryAfterMs: number;
  /** The state that rejected the call. */
  readonly state: CircuitRejectionState;

  constructor(policy: string, retryAfterMs: number, state: CircuitRejectionState) {
    super('ERR_CIRCUIT_OPEN', policy, undefined);
    this.retryAfterMs = retryAfterMs;
    this.state = state;
  }

  override get message(): string {
    if (this.state === 'unavailable') {
      return `circuit breaker "${this.policy}": its shared store gave no answer (onStoreError 'fail-closed'): call not attempted`;
    }
    return this.state === 'isolated'
      ? `circuit breaker "${this.policy}" is isolated: calls are refused until reset() or until every isolate() is released`
      : `circuit breaker "${this.policy}" is ${this.state === 'open' ? 'open' : 'half-open with every probe slot taken'}: call not attempted, retry after ${Math.ceil(this.retryAfterMs)} ms`;
  }

  /** @internal Builds the error without the Error constructor (see fastInstance). */
  static fast(policy: string, retryAfterMs: number, state: CircuitRejectionState): CircuitOpenError {
    const e = fastInstance(CircuitOpenError.prototype) as {
      -readonly [K in keyof CircuitOpenError]: CircuitOpenError[K];
    };
    e.code = 'ERR_CIRCUIT_OPEN';
    e.policy = policy;
    e.retryAfterMs = retryAfterMs;
    e.state = state;
    return e as CircuitOpenError;
  }
}
Object.defineProperty(CircuitOpenError.prototype, 'name', { value: 'CircuitOpenError', writable: true });
Object.defineProperty(CircuitOpenError.prototype, 'stack', { get: oneLineStack, configurable: true });
// The map of an Object.create'd error is held weakly by its prototype: keep one alive (see shapes.ts).
keepShape(CircuitOpenError.fast('circuit-breaker', 0.5, 'open'));

/**
 * A timeout policy gave up waiting. It is also the `reason` of the attempt's aborted signal.
 *
 * @example
 * ```ts
 * if (isTimeoutError(e)) metrics.timeouts.inc();
 * ```
 */
export class TimeoutError extends ResilienceError {
  static readonly CODE = 'ERR_TIMEOUT';
  /** The timeout that passed, in milliseconds. */
  readonly timeoutMs: number;

  constructor(policy: string, timeoutMs: number) {
    super('ERR_TIMEOUT', policy, `timeout "${policy}": the operation did not settle within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}
Object.defineProperty(TimeoutError.prototype, 'name', { value: 'TimeoutError', writable: true });

/**
 * Why a bulkhead refused a call: `'full'`, `'queue_timeout'`, `'disposed'`, or `'unavailable'` (a shared
 * concurrency limit, bulwark/redis, got no answer from its store and fails closed).
 */
export type BulkheadRejectionReason = 'full' | 'queue_timeout' | 'disposed' | 'unavailable';

/**
 * A bulkhead refused the call: every slot and queue place was taken, the call waited longer than
 * `queueTimeoutMs`, or the bulkhead was disposed. Carries no stack.
 *
 * @example
 * ```ts
 * if (isBulkheadRejectedError(e)) reply.code(503).send();
 * ```
 */
export class BulkheadRejectedError extends ResilienceError {
  static readonly CODE = 'ERR_BULKHEAD_REJECTED';
  /** Why the call was refused. */
  readonly reason: BulkheadRejectionReason;
  /** Calls running when it was refused. */
  readonly active: number;
  /** Calls queued when it was refused. */
  readonly queued: number;

  constructor(policy: string, reason: BulkheadRejectionReason, active: number, queued: number) {
    super('ERR_BULKHEAD_REJECTED', policy, undefined);
    this.reason = reason;
    this.active = active;
    this.queued = queued;
  }

  override get message(): string {
    return this.reason === 'full'
      ? `bulkhead "${this.policy}" is full (${this.active} running, ${this.queued} queued): call rejected`
      : this.reason === 'queue_timeout'
        ? `bulkhead "${this.policy}": call waited in the queue longer than its queueTimeoutMs and was rejected`
        : this.reason === 'unavailable'
          ? `bulkhead "${this.policy}": its shared store gave no answer (onStoreError 'fail-closed'): call rejected`
          : `bulkhead "${this.policy}" is disposed: call rejected`;
  }

  /** @internal Builds the error without the Error constructor (see fastInstance). */
  static fast(policy: string, reason: BulkheadRejectionReason, active: number, queued: number): BulkheadRejectedError {
    const e = fastInstance(BulkheadRejectedError.prototype) as {
      -readonly [K in keyof BulkheadRejectedError]: BulkheadRejectedError[K];
    };
    e.code = 'ERR_BULKHEAD_REJECTED';
    e.policy = policy;
    e.reason = reason;
    e.active = active;
    e.queued = queued;
    return e as BulkheadRejectedError;
  }
}
Object.defineProperty(BulkheadRejectedError.prototype, 'name', { value: 'BulkheadRejectedError', writable: true });
Object.defineProperty(BulkheadRejectedError.prototype, 'stack', { get: oneLineStack, configurable: true });
keepShape(BulkheadRejectedError.fast('bulkhead', 'full', 0, 0));

/**
 * The abort reason of a hedged attempt that lost: another attempt of the same call settled first, and a hedge
 * policy cancelled this one. An operation sees it as `ctx.signal.reason`; no caller ever receives it.
 *
 * @example
 * ```ts
 * signal.addEventListener('abort', () => {
 *   if (isHedgeCancelledError(signal.reason)) stats.hedgeLosers++; // not a caller abort, not a timeout
 * });
 * ```
 */
export class HedgeCancelledError extends ResilienceError {
  static readonly CODE = 'ERR_HEDGE_CANCELLED';
  /** The attempt that won. */
  readonly winner: number;

  constructor(policy: string, winner: number) {
    super(
      'ERR_HEDGE_CANCELLED',
      policy,
      `hedge "${policy}": attempt ${winner} settled first; this attempt was cancelled`,
    );
    this.winner = winner;
  }
}
Object.defineProperty(HedgeCancelledError.prototype, 'name', { value: 'HedgeCancelledError', writable: true });

/**
 * Why a rate limiter refused a call:
 * - `'limit'`: no tokens (permits) now, and the limiter has no queue;
 * - `'queue_full'`: no tokens now, and every queue place is taken;
 * - `'queue_timeout'`: its tokens would come later than `queueTimeoutMs` from now (rejected at once, not after
 *   waiting);
 * - `'cost'`: the call costs more than the limiter can ever hold (its burst or limit);
 * - `'disposed'`: the limiter was disposed;
 * - `'unavailable'`: a shared limiter (bulwark/redis) got no answer from its store and fails closed
 *   (`onStoreError: 'fail-closed'`); `retryAfterMs` is `Infinity` (unknown).
 */
export type RateLimitRejectionReason = 'limit' | 'queue_full' | 'queue_timeout' | 'cost' | 'disposed' | 'unavailable';

/**
 * A rate limiter refused the call without running it. `retryAfterMs` is exact: the time, from the limiter's own
 * state, after which a call of the same cost would be admitted at once (if no other call takes the tokens first);
 * `Infinity` for `'cost'` and `'disposed'`, which no wait cures. An outer `retry` waits it (see the rate-limit docs).
 * Carries no stack.
 *
 * @example
 * ```ts
 * if (isRateLimitedError(e)) res.status(429).set('Retry-After', String(Math.ceil(e.retryAfterMs / 1000))).end();
 * ```
 */
export class RateLimitedError extends ResilienceError {
  static readonly CODE = 'ERR_RATE_LIMITED';
  /** Why the call was refused. */
  readonly reason: RateLimitRejectionReason;
  /** Milliseconds until a call of this cost would be admitted at once; `Infinity` when never. */
  readonly retryAfterMs: number;
  /** What the call cost, in tokens (permits). */
  readonly cost: number;

  constructor(policy: string, reason: RateLimitRejectionReason, retryAfterMs: number, cost: number) {
    super('ERR_RATE_LIMITED', policy, undefined);
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
    this.cost = cost;
  }

  override get message(): string {
    const r = this.reason;
    return r === 'cost'
      ? `rate limiter "${this.policy}": a call costing ${this.cost} can never be admitted (more than its burst or limit)`
      : r === 'disposed'
        ? `rate limiter "${this.policy}" is disposed: call rejected`
        : r === 'unavailable'
          ? `rate limiter "${this.policy}": its shared store (Redis) did not answer and it fails closed: call rejected`
          : `rate limiter "${this.policy}": ${r === 'limit' ? 'rate limit reached' : r === 'queue_full' ? 'rate limit reached and its queue is full' : 'rate limit reached and the wait would exceed queueTimeoutMs'}: call rejected, retry after ${Math.ceil(this.retryAfterMs)} ms`;
  }

  /** @internal Builds the error without the Error constructor (see fastInstance). */
  static fast(policy: string, reason: RateLimitRejectionReason, retryAfterMs: number, cost: number): RateLimitedError {
    const e = fastInstance(RateLimitedError.prototype) as {
      -readonly [K in keyof RateLimitedError]: RateLimitedError[K];
    };
    e.code = 'ERR_RATE_LIMITED';
    e.policy = policy;
    e.reason = reason;
    e.retryAfterMs = retryAfterMs;
    e.cost = cost;
    return e as RateLimitedError;
  }
}
Object.defineProperty(RateLimitedError.prototype, 'name', { value: 'RateLimitedError', writable: true });
Object.defineProperty(RateLimitedError.prototype, 'stack', { get: oneLineStack, configurable: true });
keepShape(RateLimitedError.fast('rate-limit', 'limit', 0.5, 1));

/**
 * An adaptive throttle rejected the call locally, without running it: the upstream has recently refused so large a
 * share of this client's calls that the throttle sheds some of them itself (see `adaptiveThrottle`). Carries no
 * stack.
 *
 * @example
 * ```ts
 * if (isThrottledError(e)) log.debug(`shed locally (p = ${e.probability.toFixed(2)})`);
 * ```
 */
export class ThrottledError extends ResilienceError {
  static readonly CODE = 'ERR_THROTTLED';
  /** The rejection probability the throttle drew against, in [0, 1). */
  readonly probability: number;

  constructor(policy: string, probability: number) {
    super('ERR_THROTTLED', policy, undefined);
    this.probability = probability;
  }

  override get message(): string {
    return `adaptive throttle "${this.policy}" rejected the call locally (rejection probability ${this.probability.toFixed(3)}): the upstream has been refusing calls`;
  }

  /** @internal Builds the error without the Error constructor (see fastInstance). */
  static fast(policy: string, probability: number): ThrottledError {
    const e = fastInstance(ThrottledError.prototype) as { -readonly [K in keyof ThrottledError]: ThrottledError[K] };
    e.code = 'ERR_THROTTLED';
    e.policy = policy;
    e.probability = probability;
    return e as ThrottledError;
  }
}
Object.defineProperty(ThrottledError.prototype, 'name', { value: 'ThrottledError', writable: true });
Object.defineProperty(ThrottledError.prototype, 'stack', { get: oneLineStack, configurable: true });
keepShape(ThrottledError.fast('adaptive_throttle', 0.5));

/**
 * A retry policy used up its attempts and was asked (`onExhausted: 'wrap'`) to say so; `cause` is the last error.
 *
 * @example
 * ```ts
 * if (isRetryExhaustedError(e)) console.error(`gave up after ${e.attempts} attempts`, e.cause);
 * ```
 */
export class RetryExhaustedError extends ResilienceError {
  static readonly CODE = 'ERR_RETRY_EXHAUSTED';
  /** How many attempts ran. */
  readonly attempts: number;

  constructor(policy: string, attempts: number, cause: unknown) {
    super('ERR_RETRY_EXHAUSTED', policy, `retry "${policy}" gave up after ${attempts} attempts`, { cause });
    this.attempts = attempts;
  }
}
Object.defineProperty(RetryExhaustedError.prototype, 'name', { value: 'RetryExhaustedError', writable: true });

/** One problem found in a policy's options. */
export interface OptionProblem {
  /** The option's path, such as `window.size`. */
  readonly option: string;
  /** What was given, printed for humans. */
  readonly received: string;
  /** What is allowed. */
  readonly expected: string;
}

/**
 * A policy's options were invalid. Thrown by the factory, never at call time. A `TypeError`, and also a
 * `ResilienceError` by `instanceof`. Lists every problem at once.
 *
 * @example
 * ```ts
 * retry({ attempts: 3 } as never);
 * // InvalidOptionsError: retry: invalid options
 * //   - attempts: expected a known option (unknown name; allowed: name, maxAttempts, ...), got 3
 * ```
 */
export class InvalidOptionsError extends TypeError {
  static readonly CODE = 'ERR_INVALID_OPTIONS';
  readonly code = 'ERR_INVALID_OPTIONS' as const;
  /** The kind of policy whose options were checked, such as `retry`. */
  readonly policy: string;
  /** Every problem found. */
  readonly problems: readonly OptionProblem[];

  constructor(policy: string, problems: readonly OptionProblem[]) {
    super(
      `${policy}: invalid options\n${problems.map((p) => `  - ${p.option}: expected ${p.expected}, got ${p.received}`).join('\n')}`,
    );
    this.policy = policy;
    this.problems = problems;
  }

  /** `instanceof` across two copies of the package (ESM and CJS): checks the bulwark brand and the code. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasCode(value, 'ERR_INVALID_OPTIONS');
  }
}
Object.defineProperty(InvalidOptionsError.prototype, 'name', { value: 'InvalidOptionsError', writable: true });
Object.defineProperty(InvalidOptionsError.prototype, BRAND, { value: true });

/** Whether `e` is any bulwark error (across package copies). @example `if (isResilienceError(e)) e.code;` */
export const isResilienceError = (e: unknown): e is ResilienceError | InvalidOptionsError => hasCode(e, undefined);
/** Whether `e` is a {@link CircuitOpenError}. @example `if (isCircuitOpenError(e)) wait(e.retryAfterMs);` */
export const isCircuitOpenError = (e: unknown): e is CircuitOpenError => hasCode(e, CircuitOpenError.CODE);
/** Whether `e` is a {@link TimeoutError}. @example `if (isTimeoutError(e)) count();` */
export const isTimeoutError = (e: unknown): e is TimeoutError => hasCode(e, TimeoutError.CODE);
/** Whether `e` is a {@link BulkheadRejectedError}. @example `if (isBulkheadRejectedError(e)) shed();` */
export const isBulkheadRejectedError = (e: unknown): e is BulkheadRejectedError =>
  hasCode(e, BulkheadRejectedError.CODE);
/** Whether `e` is a {@link RateLimitedError}. @example `if (isRateLimitedError(e)) wait(e.retryAfterMs);` */
export const isRateLimitedError = (e: unknown): e is RateLimitedError => hasCode(e, RateLimitedError.CODE);
/** Whether `e` is a {@link RetryExhaustedError}. @example `if (isRetryExhaustedError(e)) e.cause;` */
export const isRetryExhaustedError = (e: unknown): e is RetryExhaustedError => hasCode(e, RetryExhaustedError.CODE);
/** Whether `e` is a {@link HedgeCancelledError} (across package copies). @example `isHedgeCancelledError(signal.reason)` */
export const isHedgeCancelledError = (e: unknown): e is HedgeCancelledError => hasCode(e, HedgeCancelledError.CODE);
/** Whether `e` is a {@link ThrottledError}. @example `if (isThrottledError(e)) shedLocally();` */
export const isThrottledError = (e: unknown): e is ThrottledError => hasCode(e, ThrottledError.CODE);
/**
 * Whether `e` is one of bulwark's own local rejections: a call refused before it reached the dependency, by a full
 * bulkhead (`BulkheadRejectedError`), an open inner breaker (`CircuitOpenError`), a rate limiter
 * (`RateLimitedError`) or an adaptive throttle (`ThrottledError`). They say nothing about the dependency's health, so a circuit breaker never counts them as
 * failures (nor as successes), and a token retry budget takes nothing for them.
 *
 * @example
 * ```ts
 * if (isLocalRejectionError(e)) res.status(503).set('Retry-After', '1').end(); // shed load, upstream is fine
 * ```
 */
export const isLocalRejectionError = (
  e: unknown,
): e is BulkheadRejectedError | CircuitOpenError | RateLimitedError | ThrottledError => {
  const code = brandedCode(e);
  return (
    code === BulkheadRejectedError.CODE ||
    code === CircuitOpenError.CODE ||
    code === RateLimitedError.CODE ||
    code === ThrottledError.CODE
  );
};
/** Whether `e` is an {@link InvalidOptionsError}. @example `if (isInvalidOptionsError(e)) e.problems;` */
export const isInvalidOptionsError = (e: unknown): e is InvalidOptionsError => hasCode(e, InvalidOptionsError.CODE);
