/**
 * Options of {@link retryBudget}: retries (and hedges) in flight as a share of the calls in flight (Envoy's
 * `retry_budget`, failsafe-go's budget).
 */
export interface RetryBudgetOptions {
  /**
   * The share of the calls in flight that may be retries (or hedges) in flight at the same time: a number from 0
   * to 1. With 0.2, 100 calls in flight allow 20 retries in flight, so retries add at most about 20% to the
   * upstream's load. @defaultValue 0.2 (Envoy and failsafe-go)
   */
  ratio?: number;
  /**
   * Retries (or hedges) that may be in flight whatever the ratio allows, so a quiet service can still retry its
   * occasional failure: an integer >= 0. @defaultValue 3 (Envoy and failsafe-go)
   */
  minConcurrency?: number;
  /** Name used in events, metrics and errors of the policies that consult it. @defaultValue `'retry_budget'` */
  name?: string;
}

/** @internal */
export const RETRY_BUDGET_OPTION_NAMES = ['ratio', 'minConcurrency', 'name'] as const;

/**
 * Options of {@link retryTokenBudget}: gRPC's `retryThrottling` (gRFC A6), a token bucket that failures drain and
 * successes refill.
 */
export interface RetryTokenBudgetOptions {
  /**
   * The bucket's size: a number > 0. It starts full, and retries (or hedges) are allowed only while more than half
   * of it is left. @defaultValue 10 (the example of gRFC A6)
   */
  maxTokens?: number;
  /**
   * What a successful attempt puts back: a number > 0. A failed attempt that its retry policy handles takes 1.
   * With 0.1, it takes 10 successes to earn back one failure. @defaultValue 0.1 (the example of gRFC A6)
   */
  tokenRatio?: number;
  /** Name used in events, metrics and errors of the policies that consult it. @defaultValue `'retry_budget'` */
  name?: string;
}

/** @internal */
export const RETRY_TOKEN_BUDGET_OPTION_NAMES = ['maxTokens', 'tokenRatio', 'name'] as const;
