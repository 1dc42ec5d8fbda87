import type { HandlePredicate, Outcome } from '../core/outcome.js';
import type { Checker } from '../errors/validate.js';

/**
 * The brand that marks an outcome classifier made by {@link handleOutcomes} and its kin. A registry symbol, so a
 * classifier made by one copy of bulwark (ESM) is recognised by another (CJS).
 */
const CLASSIFY: unique symbol = Symbol.for('bulwark.outcomeClassifier.v1') as never;

/**
 * A classifier of whole outcomes (results and errors), made by {@link handleOutcomes}, {@link handleResults},
 * {@link handleErrors} or {@link handleAllErrors}. Pass it as `handle`; a plain function there is an error predicate.
 * Opaque on purpose: a union of two function types would leave `handle: (e) => ...` without a parameter type.
 *
 * @example
 * ```ts
 * const handle: OutcomeClassifier<Response> = handleResults<Response>((r) => r.status >= 500);
 * ```
 */
export interface OutcomeClassifier<in T = unknown> {
  /** The predicate itself, under a registry symbol (not meant to be called directly). */
  readonly [CLASSIFY]: HandlePredicate<T>;
  /** Whether it ignores results, so a policy may skip classifying them. */
  readonly errorsOnly: boolean;
}

/**
 * What a `handle` option takes: a predicate of the error (`(error) => boolean`, true for a failure the policy acts
 * on; results are never failures), or an {@link OutcomeClassifier} for results too.
 *
 * @example
 * ```ts
 * retry({ handle: (e) => (e as NodeJS.ErrnoException).code !== 'EPERM' });
 * ```
 */
export type Handle<T = never> = ((error: unknown) => boolean) | OutcomeClassifier<T>;

function classifier<T>(predicate: HandlePredicate<T>, errorsOnly: boolean): OutcomeClassifier<T> {
  return { [CLASSIFY]: predicate, errorsOnly };
}

/**
 * Classifies whole outcomes: `predicate` sees `{ ok: true, value }` for every result and `{ ok: false, error }` for
 * every error (but a caller's abort), and returns true for a failure. Use it when results and errors are judged
 * together.
 *
 * @example
 * ```ts
 * retry({ handle: handleOutcomes<Response>((o) => (o.ok ? o.value.status === 503 : isTransient(o.error))) });
 * ```
 */
export function handleOutcomes<T>(predicate: (outcome: Outcome<T>) => boolean): OutcomeClassifier<T> {
  return classifier(predicate, false);
}

/**
 * The default classification: every error is a failure (except the caller's abort, which never reaches a
 * predicate), no result is.
 *
 * @example
 * ```ts
 * retry({ handle: handleAllErrors }); // the same as the default
 * ```
 */
export const handleAllErrors: OutcomeClassifier<unknown> = classifier((outcome) => !outcome.ok, true);

/**
 * Handles errors for which `test` returns true; results are never failures. The same as passing `test` itself as
 * `handle`; kept for code that reads better with it.
 *
 * @example
 * ```ts
 * retry({ handle: handleErrors((e) => (e as NodeJS.ErrnoException).code === 'ECONNRESET') });
 * ```
 */
export function handleErrors(test: (error: unknown) => boolean): OutcomeClassifier<unknown> {
  return classifier((outcome) => !outcome.ok && test(outcome.error), true);
}

/**
 * Handles every error, and the results for which `test` returns true (an HTTP 503 response, say).
 *
 * @example
 * ```ts
 * retry({ handle: handleResults<Response>((r) => r.status >= 500) });
 * ```
 */
export function handleResults<T>(test: (value: T) => boolean): OutcomeClassifier<T> {
  return classifier((outcome: Outcome<T>) => (outcome.ok ? test(outcome.value) : true), false);
}

/** @internal A `handle` option made into what policies run: an outcome predicate and whether it judges results. */
export interface Classification {
  readonly predicate: HandlePredicate<unknown>;
  readonly results: boolean;
}

const DEFAULT: Classification = { predicate: handleAllErrors[CLASSIFY] as HandlePredicate<unknown>, results: false };

/** @internal Normalises a validated `handle` option. */
export function classification(handle: Handle<never> | undefined): Classification {
  if (handle === undefined) return DEFAULT;
  if (typeof handle === 'function') {
    // A plain function judges errors only: the natural `handle: (e) => ...` (cockatiel's and Polly's meaning).
    return { predicate: (outcome) => !outcome.ok && handle(outcome.error), results: false };
  }
  return { predicate: handle[CLASSIFY] as HandlePredicate<unknown>, results: !handle.errorsOnly };
}

/** Whether a value is an outcome classifier (of any copy of bulwark). */
function isClassifier(value: unknown): value is OutcomeClassifier<never> {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return (
      typeof (value as { [CLASSIFY]?: unknown })[CLASSIFY] === 'function' &&
      typeof (value as { errorsOnly?: unknown }).errorsOnly === 'boolean'
    );
  } catch {
    return false; // a proxy or a getter that throws: not a classifier (and reported as a bad handle, not rethrown)
  }
}

/** @internal Validates a `handle` option. */
export function checkHandle(check: Checker, value: unknown): void {
  if (value === undefined || typeof value === 'function' || isClassifier(value)) return;
  check.fail(
    'handle',
    value,
    'a function (error) => boolean, or handleOutcomes(), handleResults(), handleErrors() or handleAllErrors',
  );
}
