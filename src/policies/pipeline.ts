import { systemClock } from '../core/clock.js';
import type { ExecutionContext } from '../core/context.js';
import { invoke, type Next, type Operation, type ReportingCaller } from '../core/policy.js';
import { Checker } from '../errors/validate.js';
import { EV } from '../events/emitter.js';
import type { EventType, Listener } from '../events/types.js';
import { type FusedUnit, fuseTail } from './fused.js';
import { PolicyBase } from './policy-base.js';

/**
 * A pipeline of policies: itself a policy.
 *
 * @example
 * ```ts
 * const p: PipelinePolicy = pipeline(retry(), timeout(1_000));
 * p.policies.length; // 2
 * ```
 */
export class PipelinePolicy extends PolicyBase {
  /** The member policies, outermost first (nested pipelines flattened). */
  readonly policies: readonly PolicyBase[];
  readonly #first: PolicyBase | undefined;
  readonly #second: Next;
  /** The whole chain, when it starts with the fused unit (no layered member before it). */
  readonly #all: Next | undefined;
  /** The fused unit, when it is the whole pipeline: it then times `execution.completed` itself. */
  readonly #unit: FusedUnit | undefined;

  /** @internal Use {@link pipeline}. `fuse: false` keeps every member layered (tests compare both ways). */
  constructor(policies: readonly PolicyBase[], fuse = true) {
    // The pipeline times execution.completed on the clock of its outermost member, so a FakeClock shared by the
    // members drives the pipeline's durations too.
    super(
      policies.length === 0 ? 'pipeline' : policies.map((p) => p.name).join('>'),
      policies[0]?._clock ?? systemClock,
    );
    this.policies = policies;
    // The innermost run of retry > circuitBreaker > timeout > bulkhead runs fused: one state machine per call
    // instead of a promise per layer (see fused.ts). The members before it stay layered around it.
    const fused = fuse ? fuseTail(policies) : undefined;
    let end = policies.length;
    let next: Next = invoke;
    if (fused !== undefined) {
      const unit = fused.unit;
      end = fused.start;
      next = <T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> => unit.run(ctx, op, invoke);
    }
    // Why linked here: each layer's continuation is built once, so a call allocates no closure per layer.
    for (let i = end - 1; i >= 1; i--) {
      const policy = policies[i] as PolicyBase;
      const inner = next;
      next = <T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> => policy._run(ctx, op, inner);
    }
    if (end === 0) {
      this.#first = undefined;
      this.#all = next;
    } else {
      this.#first = policies[0];
      this.#all = undefined;
    }
    this.#unit = end === 0 && fused !== undefined ? fused.unit : undefined;
    if (this.#unit !== undefined) this.#unit._observer = this;
    this.#second = next;
  }

  /**
   * @internal An observed call through a fully fused pipeline is timed by the fused call itself: its clock
   * readings serve the attempt and the call, and no promise is chained to time it.
   */
  override _executeObserved<T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> {
    const unit = this.#unit;
    return unit !== undefined ? unit.run(ctx, op, invoke, true) : super._executeObserved(ctx, op);
  }

  /**
   * @internal A fully fused pipeline runs a reporting call as one fused call with no promise at all: the operation
   * is begun through `caller._begin` and reports back to the fused call, which reports to `caller`.
   */
  override _executeReporting<T>(ctx: ExecutionContext, op: Operation<T>, caller: ReportingCaller): void {
    const unit = this.#unit;
    if (unit === undefined) super._executeReporting(ctx, op, caller);
    else unit.runReporting(ctx, op, caller, this._events.wants(EV.executionCompleted));
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const first = this.#first;
    if (first === undefined) {
      if (this.#all !== undefined && next === invoke) return this.#all(ctx, op);
      if (this.policies.length === 0) return next(ctx, op);
      return this.#runNested(0, ctx, op, next);
    }
    if (next !== invoke) {
      // Nested use of a whole pipeline as a member of another chain: link on the fly (rare; pipeline() flattens).
      return this.#runNested(0, ctx, op, next);
    }
    return first._run(ctx, op, this.#second);
  }

  #runNested<T>(i: number, ctx: ExecutionContext, op: Operation<T>, last: Next): Promise<T> {
    const p = this.policies[i];
    if (p === undefined) return last(ctx, op);
    return p._run(ctx, op, (c, o) => this.#runNested(i + 1, c, o, last));
  }

  override _members(): readonly PolicyBase[] {
    return this.policies;
  }

  /** Subscribes to events of the pipeline itself (`execution.completed`) and of every member policy. */
  override on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const offs = [this._events.on(type, listener), ...this.policies.map((p) => p.on(type, listener))];
    return () => {
      for (const off of offs) off();
    };
  }
}

/**
 * Composes policies; the first listed is outermost: `pipeline(a, b, c)` runs `a(b(c(op)))`. The chain is linked
 * once, here. An empty pipeline runs the operation as is. See docs/concepts.md for the recommended order
 * (fallback, retry, circuitBreaker, timeout, bulkhead).
 *
 * @throws InvalidOptionsError when an argument is not a bulwark policy.
 * @example
 * ```ts
 * const payments = pipeline(
 *   retry({ maxAttempts: 3 }),
 *   circuitBreaker({ halfOpenAfterMs: 10_000 }),
 *   timeout(2_000),
 * );
 * await payments.execute(({ signal }) => getQuote(id, { signal }));
 * ```
 */
export function pipeline(...policies: readonly PolicyBase[]): PipelinePolicy {
  const check = new Checker('pipeline');
  const flat: PolicyBase[] = [];
  policies.forEach((p, i) => {
    if (!(p instanceof PolicyBase)) check.fail(`[${i}]`, p, 'a policy made by a bulwark factory');
    else flat.push(...p._members());
  });
  check.done();
  return new PipelinePolicy(flat);
}
