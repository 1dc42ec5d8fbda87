import type { Context, ExecuteOptions, ExecutionContext } from './context.js';
import { keepShape } from './shapes.js';

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

/** @internal Where an outcome goes when it is reported by a call instead of settling a promise. */
export interface Reporter {
  /** The outcome: a value (`ok`) or an error. Called once. */
  _report(ok: boolean, value: unknown): void;
}

/**
 * @internal A caller that runs a policy by callback instead of a promise (an integration's call object): the policy
 * starts the operation with `_begin` and reports the call's outcome to `_report`, asynchronously (never from
 * within the `_executeReporting` that started it).
 */
export interface ReportingCaller extends Reporter {
  /**
   * Starts one run of the operation under `ctx`, reporting its outcome to `to` once, never synchronously (not from
   * within `_begin`). Never throws. Why not a promise: an integration's attempt ends in a callback (a parser's, a
   * stream's); a promise per attempt, and a reaction on it, cost more than the rest of a fused call.
   */
  _begin(ctx: ExecutionContext, to: Reporter): void;
}

/** @internal A reporter that settles a promise: where a policy needs the operation as a promise. */
function noopReport(): void {}

export class PromiseReporter implements Reporter {
  readonly #resolve: (value: unknown) => void;
  readonly #reject: (error: unknown) => void;
  constructor(resolve: (value: unknown) => void, reject: (error: unknown) => void) {
    this.#resolve = resolve;
    this.#reject = reject;
  }
  _report(ok: boolean, value: unknown): void {
    if (ok) this.#resolve(value);
    else this.#reject(value);
  }
}
// Keep its map alive across full GCs (see shapes.ts): the interceptors make one per layered attempt.
keepShape(new PromiseReporter(noopReport, noopReport));

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
