import type { Context, ExecuteOptions, ExecutionContext } from './context.js';

/**
 * The work a policy runs: receives a {@link Context}, returns a value or a promise, or throws.
 *
 * @example
 * ```ts
 * const op: Operation<string> = ({ signal }) => fetch(url, { signal }).then((r) => r.text());
 * ```
 */
export type Operation<T> = (ctx: Context) => T | PromiseLike<T>;

/**
 * The continuation a policy calls to run the rest of the pipeline.
 * @internal
 */
export type Next = <T>(ctx: ExecutionContext, op: Operation<T>) => Promise<T>;

/**
 * A resilience policy, or a pipeline of them.
 *
 * @example
 * ```ts
 * const value = await policy.execute(({ signal }) => getQuote(id, { signal }), { signal: req.signal });
 * ```
 */
export interface Policy {
  /** Low-cardinality name used in events, metrics and errors. */
  readonly name: string;
  /**
   * Runs `op` under the policy. Resolves with its value; rejects with its error unchanged, or with a
   * `ResilienceError` of the policy. Never throws synchronously.
   */
  execute<T>(op: Operation<T>, options?: ExecuteOptions): Promise<T>;
}

/**
 * Runs the operation itself: a synchronous throw becomes a rejection, a plain value a resolved promise.
 * @internal
 */
export function invoke<T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> {
  try {
    const r = op(ctx);
    return r instanceof Promise ? r : Promise.resolve(r);
  } catch (error) {
    return Promise.reject(error);
  }
}
