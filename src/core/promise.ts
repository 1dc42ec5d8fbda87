/**
 * A promise whose resolving functions are handed over without an executor closure per promise.
 *
 * Why: `new Promise((resolve, reject) => { ... })` allocates a closure (and its context) for every promise. Per-call
 * objects that settle a promise later (a fused call, an HTTP or gRPC attempt, a message run) use one module-level
 * executor instead, which parks the two functions here; the caller takes them right after the constructor returns.
 *
 * ```ts
 * const promise = newPromise<T>();
 * const resolve = takeResolve<T>();
 * const reject = takeReject();
 * ```
 * @module
 * @internal
 */

let parkedResolve: ((value: never) => void) | undefined;
let parkedReject: ((reason: unknown) => void) | undefined;

function park(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
  parkedResolve = resolve;
  parkedReject = reject;
}

/** A new pending promise; take its resolving functions at once with {@link takeResolve} and {@link takeReject}. @internal */
export function newPromise<T>(): Promise<T> {
  return new Promise<T>(park as (resolve: (value: T) => void, reject: (reason: unknown) => void) => void);
}

/**
 * The resolve function of the promise {@link newPromise} just made. Taken, not kept: a parked function would hold the
 * last promise (and whoever awaits it) alive. @internal
 */
export function takeResolve<T>(): (value: T | PromiseLike<T>) => void {
  const resolve = parkedResolve as (value: T | PromiseLike<T>) => void;
  parkedResolve = undefined;
  return resolve;
}

/** The reject function of the promise {@link newPromise} just made (taken, not kept). @internal */
export function takeReject(): (reason: unknown) => void {
  const reject = parkedReject as (reason: unknown) => void;
  parkedReject = undefined;
  return reject;
}
