import type { Clock } from '../core/clock.js';
import { type ExecuteOptions, ExecutionContext, rootContext } from '../core/context.js';
import { invoke, type Next, type Operation, type Policy, type ReportingCaller } from '../core/policy.js';
import { Emitter, EV } from '../events/emitter.js';
import type { EventType, Listener } from '../events/types.js';

/**
 * What every policy and pipeline offers beyond `execute`: typed event subscription.
 *
 * @example
 * ```ts
 * const off = policy.on('execution.completed', (e) => histogram.record(e.durationMs, { result: e.result }));
 * off(); // unsubscribe
 * ```
 */
export interface ObservablePolicy extends Policy {
  /**
   * Subscribes to events of `type` emitted by this policy (a pipeline: by itself and every policy in it).
   * Returns a function that unsubscribes. A listener that throws never changes a call's outcome. A function
   * subscribed more than once to a policy (say through two pipelines sharing it) is called once per event, until
   * every returned unsubscribe has been called.
   */
  on<K extends EventType>(type: K, listener: Listener<K>): () => void;
}

/**
 * The base class of every bulwark policy: the public `execute` (root context, pre-abort check, optional
 * `execution.completed` event) around the policy's own logic, and `on` for events. Not meant to be subclassed
 * outside bulwark; its underscore members are internal.
 *
 * @example
 * ```ts
 * const p: PolicyBase = retry();
 * p.on('retry.attempt', (e) => console.log(e.delayMs));
 * ```
 */
export abstract class PolicyBase implements ObservablePolicy {
  readonly name: string;
  /** @internal */
  readonly _events = new Emitter();
  /** @internal */
  readonly _clock: Clock;

  constructor(name: string, clock: Clock) {
    this.name = name;
    this._clock = clock;
  }

  /** @internal Runs this policy around `next`. */
  abstract _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T>;

  /** @internal The policies a pipeline is built from; a plain policy is its own only member. */
  _members(): readonly PolicyBase[] {
    return [this];
  }

  execute<T>(op: Operation<T>, options?: ExecuteOptions): Promise<T> {
    // `_execute`'s body written out, and no options read or signal checked when none were given: V8 inlines a
    // limited amount of bytecode into one optimised function, and what the shared path spends of it is taken from
    // the policy's own logic and the operation (measured: a call less, and the operation's own callees inlined).
    // For the same reason the options path is a method of its own: V8 counts a function's whole bytecode wherever it
    // inlines it, branches never taken included.
    if (options !== undefined) return this._executeWith(op, options);
    const ctx = new ExecutionContext(undefined, 'default', undefined, 1, undefined, undefined);
    if (!this._events.wants(EV.executionCompleted)) return this._run(ctx, op, invoke);
    return this._executeObserved(ctx, op);
  }

  /** @internal `execute` with options. */
  _executeWith<T>(op: Operation<T>, options: ExecuteOptions): Promise<T> {
    const ctx = rootContext(options);
    if (ctx._caller?.aborted) return Promise.reject(ctx._caller.reason);
    return this._execute(ctx, op);
  }

  /**
   * @internal `execute` with a root context made by the caller (an integration that cancels through a scope of its
   * own instead of an AbortSignal).
   */
  _execute<T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> {
    if (!this._events.wants(EV.executionCompleted)) return this._run(ctx, op, invoke);
    return this._executeObserved(ctx, op);
  }

  /**
   * @internal `_execute` reporting the outcome to `caller` instead of returning a promise. `op` is the operation as
   * a promise, for a member that needs one; a fused pipeline starts the operation with `caller._begin` instead
   * (see {@link ReportingCaller}). Reports asynchronously.
   */
  _executeReporting<T>(ctx: ExecutionContext, op: Operation<T>, caller: ReportingCaller): void {
    this._execute(ctx, op).then(
      (value) => caller._report(true, value),
      (error: unknown) => caller._report(false, error),
    );
  }

  /**
   * @internal `_execute` when someone listens to `execution.completed` (a pipeline made of one fused unit times
   * the call itself). `.then` rather than an async frame: measurably cheaper per observed call.
   */
  _executeObserved<T>(ctx: ExecutionContext, op: Operation<T>): Promise<T> {
    const start = this._clock.now();
    return this._observe(ctx, start, this._run(ctx, op, invoke));
  }

  /** @internal `promise`, emitting `execution.completed` for a call that started at `start` when it settles. */
  _observe<T>(ctx: ExecutionContext, start: number, promise: Promise<T>): Promise<T> {
    return promise.then(
      (value) => {
        this._executionCompleted(ctx, start, this._clock.now(), false, undefined);
        return value;
      },
      (error: unknown) => {
        this._executionCompleted(ctx, start, this._clock.now(), true, error);
        throw error;
      },
    );
  }

  /** @internal Emits `execution.completed` for a call from `start` to `end` on this policy's clock. */
  _executionCompleted(ctx: ExecutionContext, start: number, end: number, failed: boolean, error: unknown): void {
    this._events.emit(
      EV.executionCompleted,
      failed
        ? {
            type: 'execution.completed',
            policy: this.name,
            operation: ctx.operation,
            attempt: ctx.attempt,
            durationMs: end - start,
            result: ctx._aborted ? 'aborted' : 'failure',
            error,
          }
        : {
            type: 'execution.completed',
            policy: this.name,
            operation: ctx.operation,
            attempt: ctx.attempt,
            durationMs: end - start,
            result: 'success',
          },
    );
  }

  on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    return this._events.on(type, listener);
  }
}
