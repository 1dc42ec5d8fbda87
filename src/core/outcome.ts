/**
 * The result of one attempt, as classification predicates see it: a value or an error.
 *
 * @example
 * ```ts
 * const handle = (o: Outcome<Response>) => (o.ok ? o.value.status >= 500 : true);
 * ```
 */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Decides whether an outcome is a failure the policy should act on (retry it, count it, fall back from it).
 * A caller's abort never reaches it: it is never handled. If it throws, the call rejects with what it threw.
 */
export type HandlePredicate<T = unknown> = (outcome: Outcome<T>) => boolean;
