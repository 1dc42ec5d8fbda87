import { type InvalidOptionsError, isInvalidOptionsError } from '../../src/index.js';

/** A promise with its resolve and reject exposed, to hold an operation open in a test. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Captures a promise's rejection reason (fails if it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection, got a resolution');
}

/** What {@link track} reports about a promise. */
export interface Tracked<T> {
  settled: boolean;
  value?: T;
  error?: unknown;
  readonly promise: Promise<T>;
}

/** Tracks whether a promise has settled, without awaiting it (and marks its rejection handled). */
export function track<T>(p: Promise<T>): Tracked<T> {
  const state: Tracked<T> = { settled: false, promise: p };
  p.then(
    (v) => {
      state.settled = true;
      state.value = v;
    },
    (e: unknown) => {
      state.settled = true;
      state.error = e;
    },
  );
  return state;
}

/** The InvalidOptionsError `fn` throws (fails if it throws something else or nothing). */
export function invalidOptions(fn: () => unknown): InvalidOptionsError {
  try {
    fn();
  } catch (e) {
    if (isInvalidOptionsError(e)) return e;
    throw e;
  }
  throw new Error('expected InvalidOptionsError, nothing was thrown');
}
