import type { Clock } from '../../core/clock.js';
import type { Context } from '../../core/context.js';
import type { Outcome } from '../../core/outcome.js';
import type { Random } from '../../core/random.js';

/** Options every fault-injection policy takes. */
export interface InjectionOptions {
  /**
   * The share of calls to inject into: a number in [0, 1] (0.05 injects into about 5% of calls; 0 into none; 1 into
   * every call, without a draw). Required: nothing is injected unless you say how often.
   */
  injectionRate: number;
  /**
   * Whether the policy injects at all: a boolean, or a function of the call's context asked on every call (a
   * feature flag, a header, `ctx.properties`). A disabled policy runs the operation as is and draws nothing.
   * If the function throws, the call rejects with what it threw. @defaultValue true
   */
  enabled?: boolean | ((ctx: Context) => boolean);
  /** Name used in events and metrics. @defaultValue `'chaos-fault'`, `'chaos-latency'`, `'chaos-outcome'` or `'chaos-behavior'` */
  name?: string;
  /** Times injected latency (and `execution.completed`). @defaultValue `systemClock` */
  clock?: Clock;
  /** The draw that decides each injection: a function returning a number in [0, 1). @defaultValue `Math.random` */
  random?: Random;
}

/**
 * What {@link injectFault} rejects with: any value, or a function of the call's context that returns one. (Written
 * out rather than `unknown`, which would swallow the function and leave its parameter untyped.)
 */
export type FaultValue =
  | ((ctx: Context) => unknown)
  | object
  | string
  | number
  | bigint
  | boolean
  | symbol
  | null
  | undefined;

/** Options of {@link injectFault}. */
export interface InjectFaultOptions extends InjectionOptions {
  /**
   * What an injected call rejects with, instead of running the operation: any value (an `Error`, usually), or a
   * function of the call's context that returns it (a fresh error per call). To inject a function itself, return
   * it from a function. Required.
   * @example `fault: () => Object.assign(new Error('chaos: connection reset'), { code: 'ECONNRESET' })`
   */
  fault: FaultValue;
}

/** Options of {@link injectLatency}. */
export interface InjectLatencyOptions extends InjectionOptions {
  /**
   * How long an injected call waits before the operation runs, in ms: a number >= 0, or a function of the call's
   * context that returns one (a random spread, say). The wait ends at once, with the caller's reason, when the
   * call's signal aborts. Required.
   */
  latencyMs: number | ((ctx: Context) => number);
}

/** Options of {@link injectOutcome}. */
export interface InjectOutcomeOptions<R> extends InjectionOptions {
  /**
   * What an injected call settles with, instead of running the operation: `{ ok: true, value }` resolves with
   * `value`, `{ ok: false, error }` rejects with `error`; or a function of the call's context that returns one.
   * Required.
   * @example `outcome: { ok: true, value: { status: 503 } }`
   */
  outcome: Outcome<R> | ((ctx: Context) => Outcome<R>);
}

/** Options of {@link injectBehavior}. */
export interface InjectBehaviorOptions extends InjectionOptions {
  /**
   * What an injected call does before the operation runs: a function of the call's context, sync or async (kill
   * a connection, fill a disk, flip a flag). The operation runs once it settles; if it throws or rejects, the call
   * rejects with that instead. Required.
   */
  behavior: (ctx: Context) => void | PromiseLike<void>;
}

/** @internal */
export const INJECTION_OPTION_NAMES = ['injectionRate', 'enabled', 'name', 'clock', 'random'] as const;
