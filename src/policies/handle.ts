import type { HandlePredicate, Outcome } from '../core/outcome.js';

/**
 * Predicates known to ignore successful results. Why: for them a policy can skip building an outcome object on
 * the happy path; a custom predicate must see every result.
 */
const ERROR_ONLY = new WeakSet<object>();

/**
 * The default classification: every error is a failure (except the caller's abort, which never reaches a
 * predicate), no result is.
 *
 * @example
 * ```ts
 * retry({ handle: handleAllErrors }); // the same as the default
 * ```
 */
export const handleAllErrors: HandlePredicate = (outcome) => !outcome.ok;
ERROR_ONLY.add(handleAllErrors);

/**
 * Handles errors for which `test` returns true; results are never failures.
 *
 * @example
 * ```ts
 * retry({ handle: handleErrors((e) => (e as NodeJS.ErrnoException).code === 'ECONNRESET') });
 * ```
 */
export function handleErrors(test: (error: unknown) => boolean): HandlePredicate {
  const predicate: HandlePredicate = (outcome) => !outcome.ok && test(outcome.error);
  ERROR_ONLY.add(predicate);
  return predicate;
}

/**
 * Handles every error, and the results for which `test` returns true (an HTTP 503 response, say).
 *
 * @example
 * ```ts
 * retry({ handle: handleResults<Response>((r) => r.status >= 500) });
 * ```
 */
export function handleResults<T>(test: (value: T) => boolean): HandlePredicate<T> {
  return (outcome: Outcome<T>) => (outcome.ok ? test(outcome.value) : true);
}

/** @internal Whether a predicate may call a successful result a failure, so results must be classified. */
export function classifiesResults(handle: HandlePredicate<never>): boolean {
  return !ERROR_ONLY.has(handle);
}
