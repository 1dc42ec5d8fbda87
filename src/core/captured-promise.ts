/**
 * A promise whose resolving functions are handed over without a closure made per call.
 *
 * Why: `new Promise((resolve, reject) => { ... })` makes its executor closure on every call, and V8 compiles each
 * new closure lazily on its first call (a trip through `CompileLazy`). A per-call object that keeps the resolving
 * functions needs none of that: one executor shared by every promise hands them over through two module slots,
 * read back at once by the caller.
 *
 * ```ts
 * const promise = capturedPromise<T>();
 * const call = new Call(capturedResolve<T>(), capturedReject());
 * ```
 * @module
 * @internal
 */

let resolveSlot: (value: never) => void = noop;
let rejectSlot: (reason: unknown) => void = noop;

function noop(): void {}

/** The executor shared by every {@link capturedPromise}: it only stores its resolving functions. */
function capture(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
  resolveSlot = resolve;
  rejectSlot = reject;
}

/** A new pending promise; read its resolving functions with {@link capturedResolve} and {@link capturedReject} next. @internal */
export function capturedPromise<T>(): Promise<T> {
  return new Promise<T>(capture);
}

/** The resolve function of the promise {@link capturedPromise} made last. @internal */
export function capturedResolve<T>(): (value: T | PromiseLike<T>) => void {
  return resolveSlot as (value: T | PromiseLike<T>) => void;
}

/** The reject function of the promise {@link capturedPromise} made last. @internal */
export function capturedReject(): (reason: unknown) => void {
  return rejectSlot;
}
