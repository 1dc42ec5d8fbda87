import { systemClock } from '../../core/clock.js';
import type { Context, ExecutionContext } from '../../core/context.js';
import type { Outcome } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { type Random, systemRandom } from '../../core/random.js';
import { sleep } from '../../core/sleep.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import type { ChaosKind } from '../../events/types.js';
import { PolicyBase } from '../policy-base.js';
import {
  INJECTION_OPTION_NAMES,
  type InjectBehaviorOptions,
  type InjectFaultOptions,
  type InjectionOptions,
  type InjectLatencyOptions,
  type InjectOutcomeOptions,
} from './options.js';

/**
 * What a kind of chaos does to an injected call, in place of (or before) the rest of the pipeline. `action` is the
 * kind's own option (`fault`, `latencyMs`, `outcome`, `behavior`), validated by its factory.
 */
type Injector = (
  policy: ChaosPolicy,
  action: unknown,
  ctx: ExecutionContext,
  op: Operation<unknown>,
  next: Next,
) => Promise<unknown>;

/**
 * A fault-injection policy: made by {@link injectFault}, {@link injectLatency}, {@link injectOutcome} or
 * {@link injectBehavior}.
 */
export class ChaosPolicy extends PolicyBase {
  /** What it injects. */
  readonly kind: ChaosKind;
  /** The share of calls it injects into, in [0, 1]. */
  readonly injectionRate: number;
  readonly #enabled: boolean | ((ctx: Context) => boolean);
  readonly #random: Random;
  readonly #inject: Injector;
  readonly #action: unknown;

  /** @internal Use the `injectXxx` factories. */
  constructor(kind: ChaosKind, options: InjectionOptions, inject: Injector, action: unknown) {
    super(options.name ?? `chaos-${kind}`, options.clock ?? systemClock);
    this.kind = kind;
    this.injectionRate = options.injectionRate;
    this.#enabled = options.enabled ?? true;
    this.#random = options.random ?? systemRandom;
    this.#inject = inject;
    this.#action = action;
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    try {
      if (!this.#chosen(ctx)) return next(ctx, op);
      return this.#inject(this, this.#action, ctx, op as Operation<unknown>, next) as Promise<T>;
    } catch (error) {
      // A function option that throws (enabled, a generator) rejects the call; `execute` never throws.
      return Promise.reject(error);
    }
  }

  /** Whether this call is injected into: enabled, then the rate (0 and 1 decide without a draw). */
  #chosen(ctx: ExecutionContext): boolean {
    const enabled = this.#enabled;
    if (enabled === false || (typeof enabled === 'function' && enabled(ctx) !== true)) return false;
    const rate = this.injectionRate;
    if (rate >= 1) return true;
    return rate > 0 && this.#random() < rate;
  }

  /** @internal Emits `chaos.injected` for a call (with the delay, for latency). */
  _injected(ctx: ExecutionContext, latencyMs?: number): void {
    if (!this._events.wants(EV.chaosInjected)) return;
    this._events.emit(
      EV.chaosInjected,
      latencyMs === undefined
        ? { type: 'chaos.injected', policy: this.name, operation: ctx.operation, attempt: ctx.attempt, kind: this.kind }
        : {
            type: 'chaos.injected',
            policy: this.name,
            operation: ctx.operation,
            attempt: ctx.attempt,
            kind: this.kind,
            latencyMs,
          },
    );
  }
}

/** Checks the options every kind shares. */
function checkCommon(check: Checker, options: InjectionOptions): void {
  if (options.injectionRate === undefined) check.fail('injectionRate', undefined, 'a number in [0, 1] (required)');
  check.number('injectionRate', options.injectionRate, { min: 0, max: 1 });
  const enabled = options.enabled as unknown;
  if (enabled !== undefined && typeof enabled !== 'boolean' && typeof enabled !== 'function') {
    check.fail('enabled', enabled, 'a boolean or a function of the context returning one');
  }
  check.string('name', options.name);
  check.clock('clock', options.clock);
  check.fn('random', options.random);
}

/**
 * Validates a factory's options: an object with the shared options and its own required one, which `own` checks
 * when it is present. Throws listing every problem.
 */
function validate(
  factory: string,
  options: InjectionOptions | undefined,
  required: string,
  own: (check: Checker, value: unknown) => void,
): void {
  const check = new Checker(factory);
  if (check.object('', options, [required, ...INJECTION_OPTION_NAMES])) {
    if (required in options) own(check, options[required]);
    else check.fail(required, undefined, `${expectedOf(required)} (required)`);
    checkCommon(check, options as unknown as InjectionOptions);
  } else if (options === undefined) {
    check.fail(required, undefined, `${expectedOf(required)} (required)`);
    check.fail('injectionRate', undefined, 'a number in [0, 1] (required)');
  }
  check.done();
}

function expectedOf(option: string): string {
  switch (option) {
    case 'fault':
      return 'a value to reject with, or a function of the context returning one';
    case 'latencyMs':
      return 'a number >= 0, or a function of the context returning one';
    case 'outcome':
      return '{ ok: true, value } or { ok: false, error }, or a function of the context returning one';
    default:
      return 'a function of the context';
  }
}

const injectFaultInto: Injector = (policy, fault, ctx) => {
  const error = typeof fault === 'function' ? (fault as (c: Context) => unknown)(ctx) : fault;
  policy._injected(ctx);
  return Promise.reject(error);
};

function isOutcome(value: unknown): value is Outcome<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    ((value as { ok?: unknown }).ok === true || (value as { ok?: unknown }).ok === false)
  );
}

/**
 * Fault injection: rejects a share of calls (`injectionRate`) with `fault`, without running the operation. For a
 * team's own tests and game days: does the retry retry it, does the breaker open, does the fallback answer?
 *
 * Place it last (innermost) in a pipeline, where the operation would be: every policy outside sees the fault as the
 * upstream's. Nothing is injected unless `injectionRate` says so; `enabled` (a boolean or a function of the call)
 * switches it off. Emits `chaos.injected` (`kind: 'fault'`).
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const api = pipeline(
 *   retry(),
 *   circuitBreaker(),
 *   timeout(2_000),
 *   injectFault({ injectionRate: 0.1, fault: () => new Error('chaos: 503'), enabled: () => flags.chaos }),
 * );
 * ```
 */
export function injectFault(options: InjectFaultOptions): ChaosPolicy {
  validate('injectFault', options, 'fault', () => undefined);
  return new ChaosPolicy('fault', options, injectFaultInto, options.fault);
}

/**
 * Latency injection: delays a share of calls (`injectionRate`) by `latencyMs` before the operation runs. The wait
 * is on `clock`, and a call whose signal aborts during it rejects at once with the caller's reason (the timer is
 * cleared). Use it to check that timeouts fire and that hedges and adaptive limits react.
 *
 * Place it last (innermost), so an outer timeout counts the delay. Emits `chaos.injected` (`kind: 'latency'`, with
 * `latencyMs`).
 *
 * @throws InvalidOptionsError listing every invalid option; a `latencyMs` function that returns anything but a finite
 * number >= 0 rejects that call with a `TypeError`.
 * @example
 * ```ts
 * const slow = injectLatency({ injectionRate: 0.05, latencyMs: () => 500 + Math.random() * 1_500 });
 * const api = pipeline(retry(), timeout(1_000), slow);
 * ```
 */
export function injectLatency(options: InjectLatencyOptions): ChaosPolicy {
  validate('injectLatency', options, 'latencyMs', (check, l) => {
    if (typeof l === 'function') return;
    if (l === undefined) check.fail('latencyMs', l, `${expectedOf('latencyMs')} (required)`);
    else check.number('latencyMs', l, { min: 0 });
  });
  return new ChaosPolicy('latency', options, injectLatencyInto, options.latencyMs);
}

const injectLatencyInto: Injector = (policy, latency, ctx, op, next) => {
  const ms = typeof latency === 'function' ? (latency as (c: Context) => unknown)(ctx) : latency;
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
    throw new TypeError(
      `injectLatency "${policy.name}": the latencyMs function returned ${describe(ms)}; expected a finite number >= 0`,
    );
  }
  policy._injected(ctx, ms);
  return sleep(policy._clock, ms, ctx).then(() => next(ctx, op));
};

/**
 * {@link isOutcome} for an option: an object whose `ok` cannot be read (a getter that throws, a proxy) is no outcome.
 * Why not let it throw: options are checked once, up front, and every problem is reported as an InvalidOptionsError.
 */
function isReadableOutcome(value: unknown): boolean {
  try {
    return isOutcome(value);
  } catch {
    return false;
  }
}

/**
 * Outcome injection: settles a share of calls (`injectionRate`) with `outcome` instead of running the operation:
 * a result (`{ ok: true, value }`: a 503 response, an empty list) or an error (`{ ok: false, error }`). Use it to
 * check how callers and result-judging policies (`handleResults`) treat bad answers.
 *
 * Place it last (innermost). Emits `chaos.injected` (`kind: 'outcome'`). Give the operation a result type that
 * includes the injected value's.
 *
 * @throws InvalidOptionsError listing every invalid option; an `outcome` function that returns something else than
 * an outcome rejects that call with a `TypeError`.
 * @example
 * ```ts
 * const flaky = injectOutcome({ injectionRate: 0.2, outcome: { ok: true, value: { status: 503 } } });
 * ```
 */
export function injectOutcome<R>(options: InjectOutcomeOptions<R>): ChaosPolicy {
  validate('injectOutcome', options, 'outcome', (check, o) => {
    if (typeof o !== 'function' && !isReadableOutcome(o)) check.fail('outcome', o, expectedOf('outcome'));
  });
  return new ChaosPolicy('outcome', options, injectOutcomeInto, options.outcome);
}

const injectOutcomeInto: Injector = (policy, outcome, ctx) => {
  const o = typeof outcome === 'function' ? (outcome as (c: Context) => unknown)(ctx) : outcome;
  if (!isOutcome(o)) {
    throw new TypeError(
      `injectOutcome "${policy.name}": the outcome function returned ${describe(o)}; expected { ok: true, value } or { ok: false, error }`,
    );
  }
  policy._injected(ctx);
  return o.ok ? Promise.resolve(o.value) : Promise.reject(o.error);
};

/**
 * Behaviour injection: runs `behavior` before the operation for a share of calls (`injectionRate`): anything your
 * game day needs (drop a connection pool, fill a cache with junk, flip a flag). The operation runs once the behaviour
 * settles; if it throws or rejects, the call rejects with that instead; if the call's signal aborted meanwhile, the
 * call rejects with the caller's reason and the operation does not run.
 *
 * Place it last (innermost). Emits `chaos.injected` (`kind: 'behavior'`) before the behaviour runs.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const resets = injectBehavior({ injectionRate: 0.01, behavior: () => pool.destroyIdleConnections() });
 * ```
 */
export function injectBehavior(options: InjectBehaviorOptions): ChaosPolicy {
  validate('injectBehavior', options, 'behavior', (check, b) => {
    if (typeof b !== 'function') check.fail('behavior', b, expectedOf('behavior'));
  });
  return new ChaosPolicy('behavior', options, injectBehaviorInto, options.behavior);
}

const injectBehaviorInto: Injector = (policy, behavior, ctx, op, next) => {
  policy._injected(ctx);
  const done = (behavior as (c: Context) => unknown)(ctx);
  return Promise.resolve(done).then(() => (ctx._aborted ? Promise.reject(ctx._reason) : next(ctx, op)));
};
