import { Checker } from '../../errors/validate.js';
import { trackInstance } from '../../events/instances.js';
import {
  RETRY_BUDGET_OPTION_NAMES,
  RETRY_TOKEN_BUDGET_OPTION_NAMES,
  type RetryBudgetOptions,
  type RetryTokenBudgetOptions,
} from './options.js';

/**
 * A budget for retries (and hedges) that many policies share: every `retry({ budget })` holding it asks it before
 * each retry, and gives up (`retry.exhausted`, reason `'budget'`, the last failure unchanged) when it refuses. One
 * budget per upstream, shared by the HTTP, gRPC and message-handler pipelines that call it, bounds the extra load
 * retries put on that upstream, whatever each call's `maxAttempts` says: what stops a retry storm.
 *
 * Made by {@link retryBudget} (a share of the calls in flight) or {@link retryTokenBudget} (gRPC's token bucket).
 * A budget keeps no timer and reads no clock.
 *
 * @example
 * ```ts
 * const budget = retryBudget(); // retries in flight <= max(3, 20% of the calls in flight)
 * const api = pipeline(retry({ maxAttempts: 3, budget }), circuitBreaker(), timeout(2_000));
 * const search = pipeline(retry({ maxAttempts: 5, budget }), timeout(5_000)); // same upstream, same budget
 * ```
 */
export abstract class RetryBudget {
  /** The name given in the options. */
  readonly name: string;
  /** How many retries (and hedges) this budget has refused since it was made. */
  refused = 0;

  /** @internal */
  constructor(name: string) {
    this.name = name;
  }

  /** @internal A call entered a policy that consults this budget. Every `_enter` is matched by one `_leave`. */
  abstract _enter(): void;
  /** @internal That call left it (settled). */
  abstract _leave(): void;
  /** @internal An attempt succeeded (a value its policy does not retry). */
  abstract _succeeded(): void;
  /** @internal An attempt failed in a way its policy would retry (its `handle` said so), not a local rejection. */
  abstract _failed(): void;
  /** @internal Whether one more retry (or hedge) may start now; when true, it is counted until `_release`. */
  abstract _acquire(): boolean;
  /** @internal A retry (or hedge) that `_acquire` allowed has settled, or will not run after all. */
  abstract _release(): void;
}

/** How many calls' worth of retries a ratio budget keeps in credit (see RetryRatioBudget). */
const CREDIT_CALLS = 100;

/**
 * The budget {@link retryBudget} makes: retries in flight as a share of calls in flight. See there.
 */
export class RetryRatioBudget extends RetryBudget {
  /** The share of the calls in flight that may be retries in flight. */
  readonly ratio: number;
  /** Retries that may be in flight whatever the ratio allows. */
  readonly minConcurrency: number;
  #calls = 0;
  #retries = 0;
  /**
   * Retries earned by calls: each call that enters adds `ratio`, each retry beyond the floor takes 1, and at most
   * the retries of {@link CREDIT_CALLS} calls are kept. Why, on top of the share in flight: a share of the calls in
   * flight bounds retries in flight, not retries per second. When first attempts are slow (they wait out a timeout)
   * and retries fail fast, the calls in flight stay many while the retries cycle quickly, and the upstream saw 1.22x
   * its offered load at 3x capacity in the overload simulation (bench/suites/overload.ts). The credit bounds the rate
   * too: over any stretch, retries beyond the floor are at most `ratio` x calls, plus the credit saved before it.
   */
  #credit: number;
  readonly #maxCredit: number;

  /** @internal Use {@link retryBudget}. */
  constructor(options: RetryBudgetOptions) {
    super(options.name ?? 'retry_budget');
    this.ratio = options.ratio ?? 0.2;
    this.minConcurrency = options.minConcurrency ?? 3;
    this.#maxCredit = this.ratio * CREDIT_CALLS;
    this.#credit = this.#maxCredit;
    trackInstance('retry_budget', this);
  }

  /** Calls in flight through the policies that consult this budget (a call through two of them counts twice). */
  get callsInFlight(): number {
    return this.#calls;
  }

  /** Retries (and hedges) in flight: allowed and not yet settled, their backoff delay included. */
  get retriesInFlight(): number {
    return this.#retries;
  }

  /**
   * The retries earned and not yet spent: each call that enters adds `ratio`, each retry beyond `minConcurrency`
   * takes 1; from 0 to `ratio * 100` (the credit of 100 calls), full at first. A retry beyond the floor needs at
   * least 1.
   */
  get credit(): number {
    return this.#credit;
  }

  _enter(): void {
    this.#calls++;
    const c = this.#credit + this.ratio;
    this.#credit = Math.min(c, this.#maxCredit);
  }

  _leave(): void {
    this.#calls--;
  }

  _succeeded(): void {
    // Outcomes do not matter here: only calls and retries.
  }

  _failed(): void {
    // Outcomes do not matter here: only calls and retries.
  }

  _acquire(): boolean {
    const next = this.#retries + 1;
    if (next <= this.minConcurrency) {
      this.#retries = next;
      return true;
    }
    // Why the epsilons: ratio x calls and the sums of ratios are float arithmetic (0.29 x 100 is
    // 28.999999999999996); without them the 29th retry of 100 calls would be refused.
    if (next <= this.ratio * this.#calls + 1e-9 && this.#credit >= 1 - 1e-9) {
      this.#retries = next;
      this.#credit -= 1;
      return true;
    }
    this.refused++;
    return false;
  }

  _release(): void {
    this.#retries--;
  }
}

/** Tokens are counted in thousandths, as gRFC A6 does, so that sums of ratios are exact. */
const MILLI = 1000;

/**
 * The budget {@link retryTokenBudget} makes: gRPC's `retryThrottling` token bucket. See there.
 */
export class RetryTokenBudget extends RetryBudget {
  /** The bucket's size. */
  readonly maxTokens: number;
  /** What a successful attempt puts back. */
  readonly tokenRatio: number;
  readonly #max: number;
  readonly #ratio: number;
  /** Thousandths of a token. */
  #milli: number;

  /** @internal Use {@link retryTokenBudget}. */
  constructor(options: RetryTokenBudgetOptions) {
    super(options.name ?? 'retry_budget');
    this.maxTokens = options.maxTokens ?? 10;
    this.tokenRatio = options.tokenRatio ?? 0.1;
    this.#max = Math.round(this.maxTokens * MILLI);
    this.#ratio = Math.round(this.tokenRatio * MILLI);
    this.#milli = this.#max;
    trackInstance('retry_token_budget', this);
  }

  /** The tokens left: from 0 to `maxTokens`. Retries are allowed while more than `maxTokens / 2` are left. */
  get tokens(): number {
    return this.#milli / MILLI;
  }

  _enter(): void {
    // Calls in flight do not matter here: only how attempts end.
  }

  _leave(): void {
    // Calls in flight do not matter here: only how attempts end.
  }

  _succeeded(): void {
    const m = this.#milli + this.#ratio;
    this.#milli = Math.min(m, this.#max);
  }

  _failed(): void {
    const m = this.#milli - MILLI;
    this.#milli = Math.max(m, 0);
  }

  _acquire(): boolean {
    // gRFC A6: retries are allowed while the count is above half the maximum. Both are whole thousandths.
    if (this.#milli * 2 > this.#max) return true;
    this.refused++;
    return false;
  }

  _release(): void {
    // Nothing is held: the bucket counts outcomes, not retries in flight.
  }
}

/**
 * A retry budget that keeps retries (and hedges) in flight to a share of the calls in flight, as Envoy's
 * `retry_budget` and failsafe-go's budget do, and their rate to the same share of the calls made: a retry may start
 * while the retries in flight, itself included, are at most `minConcurrency`, or at most `ratio` times the calls in
 * flight through the policies sharing the budget with a retry's worth of credit left (each call adds `ratio`, each
 * retry beyond the floor takes 1, at most 100 calls' worth is kept).
 *
 * - A retry counts from the moment retry decides on it (before its backoff delay) until its attempt settles, so a
 *   storm of failures cannot queue up retries behind their delays.
 * - A refused retry is not attempted: retry gives up with the last failure unchanged and emits `retry.exhausted`
 *   with `reason: 'budget'`. Retry's other reasons to stop (attempts used up, an open circuit, a server's hint)
 *   are checked first, so the budget is asked only for a retry that would otherwise happen.
 * - It reads no clock and keeps no timer: it reacts at once when load changes, and saves nothing up while things
 *   go well (a window of past requests would let the first seconds of an outage spend the retries saved up).
 * - Share one budget between the pipelines that call the same upstream (HTTP, gRPC, message handlers). A call that
 *   goes through two retries holding the same budget counts twice, so put it on one retry per call path.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const budget = retryBudget({ ratio: 0.2, minConcurrency: 3 });
 * const payments = pipeline(retry({ maxAttempts: 4, budget }), circuitBreaker(), timeout(2_000));
 * // During an outage each call still fails after its own attempts, but retries in flight stay <= max(3, 20%).
 * ```
 */
export function retryBudget(options: RetryBudgetOptions = {}): RetryRatioBudget {
  const check = new Checker('retryBudget');
  if (check.object('', options, RETRY_BUDGET_OPTION_NAMES)) {
    check.number('ratio', options.ratio, { min: 0, max: 1 });
    check.number('minConcurrency', options.minConcurrency, { min: 0, integer: true });
    check.string('name', options.name);
  }
  check.done();
  return new RetryRatioBudget(options);
}

/**
 * A retry budget as gRPC's `retryThrottling` (gRFC A6): a bucket of `maxTokens` tokens, full at first. Every attempt
 * that fails in a way its retry handles takes one token; every attempt that succeeds puts back `tokenRatio`.
 * Retries (and hedges) are allowed only while more than half the bucket is left.
 *
 * - Under an outage the bucket drains in a few failures and retries stop altogether, fleet-wide for the pipelines
 *   sharing it; they come back once successes refill it. A failure retry does not handle (a caller's abort, an
 *   error its `handle` rejects) and a local rejection by bulwark itself (a full bulkhead, an open breaker) take
 *   nothing.
 * - Tokens are counted in thousandths, as in gRPC, so `maxTokens` and `tokenRatio` take at most three decimals.
 * - No clock, no timer. A refused retry ends the call as {@link retryBudget} describes (`reason: 'budget'`).
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const budget = retryTokenBudget({ maxTokens: 10, tokenRatio: 0.1 });
 * const users = pipeline(retry({ maxAttempts: 3, budget }), timeout(1_000));
 * ```
 */
export function retryTokenBudget(options: RetryTokenBudgetOptions = {}): RetryTokenBudget {
  const check = new Checker('retryTokenBudget');
  if (check.object('', options, RETRY_TOKEN_BUDGET_OPTION_NAMES)) {
    milli(check, 'maxTokens', options.maxTokens);
    milli(check, 'tokenRatio', options.tokenRatio);
    check.string('name', options.name);
  }
  check.done();
  return new RetryTokenBudget(options);
}

/**
 * A finite number > 0 with at most three decimals (whole thousandths). Why at least one thousandth, not just > 0: a
 * value below it (1e-10, say) is within the rounding tolerance of 0 thousandths, and was taken as a bucket of 0
 * tokens (no retry ever) or a refill of 0 (never refilled).
 */
function milli(check: Checker, option: string, value: unknown): void {
  if (value === undefined) return;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value > 0 &&
    value <= 1e9 &&
    Math.round(value * MILLI) >= 1 &&
    Math.abs(value * MILLI - Math.round(value * MILLI)) < 1e-6;
  if (!ok) {
    check.fail(
      option,
      value,
      'a finite number > 0 (and <= 1e9) with at most three decimals (tokens count in thousandths)',
    );
  }
}

/**
 * Whether `value` is a budget made by {@link retryBudget} or {@link retryTokenBudget} of this copy of bulwark.
 * @internal
 */
export function isRetryBudget(value: unknown): value is RetryBudget {
  return value instanceof RetryBudget;
}
