import {
  InterceptingCall,
  type InterceptingListener,
  type Interceptor,
  type InterceptorOptions,
  Metadata,
  type NextCall,
  type ServiceDefinition,
  status as Status,
  type StatusObject,
} from '@grpc/grpc-js';
import { type Clock, systemClock, type TimerHandle, wallClockNow } from '../../core/clock.js';
import { type AbortListener, CancelScope, type Context, ExecutionContext } from '../../core/context.js';
import { describeMessage } from '../../core/describe.js';
import { type Policy, PromiseReporter, type Reporter, type ReportingCaller } from '../../core/policy.js';
import { RETRYABLE } from '../../core/properties.js';
import { setPushback } from '../../core/pushback.js';
import { keepShape } from '../../core/shapes.js';
import {
  isBulkheadRejectedError,
  isCircuitOpenError,
  isRetryExhaustedError,
  isTimeoutError,
} from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { warnOnce } from '../../events/emitter.js';
import { commitHedge, HedgePolicy } from '../../policies/hedge/hedge.js';
import { KeyedPolicy } from '../../policies/keyed/keyed.js';
import { PolicyBase } from '../../policies/policy-base.js';
import { isPolicyLike, passes } from '../validate.js';

/** How one method runs: its policy, and whether the server may safely run it twice. */
export interface GrpcMethodConfig {
  /** The policy the method's calls run under. */
  policy: Policy;
  /**
   * False when running the call twice could do the work twice: it is then never retried, whatever failed.
   * @defaultValue true
   */
  idempotent?: boolean;
}

/** Options of {@link grpcInterceptor}. */
export interface GrpcInterceptorOptions {
  /**
   * The policy per method, by full path (`'/pkg.Service/Method'`): a map, or a function returning a policy, a
   * config or `undefined`. Unlisted methods pass through untouched. A map is read once, when the interceptor is
   * created (entries added or changed later are not seen: use a function for a table that changes); a function is
   * consulted for every unary call. Required.
   */
  methods:
    | Readonly<Record<string, Policy | GrpcMethodConfig>>
    | ((path: string) => Policy | GrpcMethodConfig | undefined);
  /**
   * Status codes that are failures (A6's `retryableStatusCodes`, and its `nonFatalStatusCodes` for a `hedge`): the
   * policy sees them as `GrpcStatusError`, and server pushback is read on them only. Any other status is delivered
   * as it is, pushback or not (for a hedge, it is fatal: that attempt's status goes to the caller and the other
   * attempts are cancelled): list `status.RESOURCE_EXHAUSTED` here to retry a server's throttling.
   * @defaultValue `[status.UNAVAILABLE]`
   */
  failureCodes?: readonly number[];
  /**
   * The service definitions of the clients the interceptor serves (`Inventory.service`, from
   * `loadPackageDefinition()` or generated code). When given, every key of a `methods` map must be the path of
   * one of their unary methods: a typo, or a streaming method, is an `InvalidOptionsError` at creation instead of
   * a method that silently runs without its policy. Not used for calls.
   * @defaultValue none: keys are checked for their shape only, and a key naming a streaming method is reported
   * (a process warning) at its first call
   */
  services?: readonly ServiceDefinition[];
  /** Measures the call's deadline. @defaultValue `systemClock` */
  clock?: Clock;
  /** Wall-clock ms, to turn a `Date` deadline into a duration. @defaultValue `Date.now` */
  wallClock?: () => number;
}

const OPTION_NAMES = ['methods', 'failureCodes', 'services', 'clock', 'wallClock'] as const;

/**
 * A full method path, `/<service>/<method>` (`/shop.v1.Inventory/GetStock`), as grpc-js sends it: two non-empty
 * names without slashes or white space.
 */
const FULL_PATH = /^\/[^/\s]+\/[^/\s]+$/;

/** The kind of a streaming method, for messages. */
function streamingKind(def: { readonly requestStream: boolean; readonly responseStream: boolean }): string {
  if (def.requestStream && def.responseStream) return 'a bidirectional streaming';
  return def.requestStream ? 'a client streaming' : 'a server streaming';
}

/** The methods of `services` by path, or undefined when `services` is not a list of service definitions. */
function methodsOf(services: unknown): Map<string, { requestStream: boolean; responseStream: boolean }> | undefined {
  try {
    return methodsIn(services);
  } catch {
    return undefined; // a proxy or a getter that throws: not service definitions
  }
}

function methodsIn(services: unknown): Map<string, { requestStream: boolean; responseStream: boolean }> | undefined {
  if (!Array.isArray(services)) return undefined;
  const byPath = new Map<string, { requestStream: boolean; responseStream: boolean }>();
  for (const service of services) {
    if (typeof service !== 'object' || service === null || Array.isArray(service)) return undefined;
    for (const def of Object.values(service as Record<string, unknown>)) {
      const d = def as { path?: unknown; requestStream?: unknown; responseStream?: unknown } | null;
      if (
        typeof d !== 'object' ||
        d === null ||
        typeof d.path !== 'string' ||
        typeof d.requestStream !== 'boolean' ||
        typeof d.responseStream !== 'boolean'
      ) {
        return undefined;
      }
      byPath.set(d.path, { requestStream: d.requestStream, responseStream: d.responseStream });
    }
  }
  return byPath;
}

/** Up to `max` items quoted and joined, with how many more there are. */
function listOf(items: readonly string[], max: number): string {
  const shown = items.slice(0, max).map((i) => `'${i}'`);
  return items.length > max ? `${shown.join(', ')} and ${items.length - max} more` : shown.join(', ');
}

const GRPC_STATUS_BRAND = Symbol.for('bulwark.grpc-status-error');

/**
 * A call that ended with a failure status. Retry retries it (honouring server pushback as `retryAfterMs`); when the
 * policy gives up, the caller receives the status itself. It is what `handle` predicates and fallbacks see.
 *
 * @example
 * ```ts
 * retry({ handle: handleErrors((e) => !(e instanceof GrpcStatusError) || e.code === status.UNAVAILABLE) });
 * ```
 */
export class GrpcStatusError extends Error {
  /** The status code. */
  readonly code: number;
  /** The status details. */
  readonly details: string;
  /** The trailing metadata. */
  readonly metadata: Metadata;
  /** The server's pushback, in ms, when it sent a valid one. */
  readonly retryAfterMs: number | undefined;
  /** False when this call must not be retried (pushback said stop, or the method is not idempotent). */
  readonly retryable: boolean;

  constructor(s: StatusObject, retryAfterMs: number | undefined, retryable: boolean) {
    super(`gRPC status ${Status[s.code] ?? s.code}: ${s.details}`);
    this.name = 'GrpcStatusError';
    this.code = s.code;
    this.details = s.details;
    this.metadata = s.metadata;
    this.retryAfterMs = retryAfterMs;
    this.retryable = retryable;
  }

  /** `instanceof` across two copies of the package (ESM and CJS): checks a registry brand, not the prototype. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[GRPC_STATUS_BRAND] === true
    );
  }
}
Object.defineProperty(GrpcStatusError.prototype, GRPC_STATUS_BRAND, { value: true });

/**
 * The largest pushback gRFC A6 allows, 2^31-1 ms (about 24.8 days): the value is a signed 32-bit integer. A larger
 * one means "do not retry", like a negative or unparseable one.
 *
 * @example
 * ```ts
 * if (typeof p === 'number') console.log(`server asks for ${p} ms (at most ${MAX_PUSHBACK_MS})`);
 * ```
 */
export const MAX_PUSHBACK_MS = 2_147_483_647;

/** One element of the value: ASCII digits, with the spaces and tabs HTTP allows around a list element. */
const ELEMENT = /^[ \t]*([0-9]+)[ \t]*$/;

/**
 * What the values of `grpc-retry-pushback-ms` ask for, under gRFC A6's rules. Total: never throws, whatever
 * `values` holds.
 *
 * - no value: `undefined` (no pushback);
 * - every value ASCII digits (leading zeros allowed) of at most {@link MAX_PUSHBACK_MS}: the largest, in ms. A
 *   pushback can only delay a retry, never hasten it. Values are also split at commas, since HTTP/2 joins a
 *   repeated field into one (`'300, 500'` is 300 and 500, so 500);
 * - any value (or element) negative, above 2^31-1 (`'2147483648'`, 400 digits), empty, with a sign, a decimal
 *   point or an exponent, or not a string: `'stop'` (A6: "negative or unparseable" means do not retry).
 * @internal
 */
export function parsePushback(values: readonly unknown[]): number | 'stop' | undefined {
  if (!Array.isArray(values) || values.length === 0) return undefined;
  let ms = -1;
  for (const value of values) {
    if (typeof value !== 'string') return 'stop';
    for (const element of value.split(',')) {
      const digits = ELEMENT.exec(element)?.[1];
      if (digits === undefined) return 'stop';
      const n = Number(digits);
      if (!(n <= MAX_PUSHBACK_MS)) return 'stop';
      if (n > ms) ms = n;
    }
  }
  return ms;
}

/**
 * Reads the server's pushback, the `grpc-retry-pushback-ms` metadata of gRFC A6: the delay in ms before the next
 * attempt (an integer from 0 to {@link MAX_PUSHBACK_MS}), `'stop'` when the server says not to retry (a negative,
 * out-of-range or unparseable value), or `undefined` when there is none. With several values (or a value the
 * transport joined with commas), any that says stop wins, else the largest delay.
 *
 * @example
 * ```ts
 * const p = pushbackOf(error.metadata); // 2000, 'stop' or undefined
 * ```
 */
export function pushbackOf(metadata: Metadata): number | 'stop' | undefined {
  return parsePushback(metadata.get('grpc-retry-pushback-ms'));
}

/**
 * A status the caller can act on, for an error raised by bulwark itself (or anything else). Total: whatever was
 * thrown (an object without a prototype, a `toString` that throws, a hostile proxy), it returns a status.
 *
 * - `GrpcStatusError`: its own status;
 * - `RetryExhaustedError` (`onExhausted: 'wrap'`): the status of its `cause`, the last failure;
 * - `CircuitOpenError`: UNAVAILABLE, with a `grpc-retry-pushback-ms` of its `retryAfterMs` rounded up when that
 *   is within gRFC A6's range (0 to {@link MAX_PUSHBACK_MS}; none for an isolated breaker);
 * - `BulkheadRejectedError`: RESOURCE_EXHAUSTED; `TimeoutError`: DEADLINE_EXCEEDED;
 * - anything else: UNKNOWN, with `bulwark: ` and the error's message as details.
 *
 * @example
 * ```ts
 * policy.execute(work).then((v) => callback(null, v), (e: unknown) => callback(statusOf(e)));
 * ```
 */
export function statusOf(error: unknown): StatusObject {
  try {
    return mapStatus(error);
  } catch {
    // Reading the error threw (a proxy, a getter): still a status, never a throw.
    return { code: Status.UNKNOWN, details: `bulwark: ${textOf(error)}`, metadata: new Metadata() };
  }
}

function mapStatus(error: unknown): StatusObject {
  // A wrapped failure maps to what it wraps; bounded, since a cause can point back at its wrapper.
  for (let depth = 0; depth < 8 && isRetryExhaustedError(error); depth++) error = error.cause;
  const metadata = new Metadata();
  if (error instanceof GrpcStatusError) return { code: error.code, details: error.details, metadata: error.metadata };
  if (isCircuitOpenError(error)) {
    const ms = Math.ceil(error.retryAfterMs);
    // Out of A6's range a pushback would mean "do not retry" to an A6 client, and overflow grpc-js's own timer.
    if (ms >= 0 && ms <= MAX_PUSHBACK_MS) metadata.set('grpc-retry-pushback-ms', String(ms));
    return { code: Status.UNAVAILABLE, details: error.message, metadata };
  }
  if (isBulkheadRejectedError(error)) return { code: Status.RESOURCE_EXHAUSTED, details: error.message, metadata };
  if (isTimeoutError(error)) return { code: Status.DEADLINE_EXCEEDED, details: error.message, metadata };
  return { code: Status.UNKNOWN, details: `bulwark: ${textOf(error)}`, metadata };
}

/** The message of a thrown value, whatever it is: never throws (a status's details, at most 1,024 characters). */
function textOf(error: unknown): string {
  return describeMessage(error, 1_024);
}

type InterceptingCallInterface = ReturnType<NextCall>;

/** The timeout grpc-js can encode in `grpc-timeout` stops below 10^8 hours (its own check). */
const GRPC_JS_MAX_TIMEOUT_MS = 1e8 * 3_600_000;

/** Why the caller's deadline passed: delivered as DEADLINE_EXCEEDED. */
class DeadlinePassed extends Error {
  constructor() {
    super('bulwark: the call deadline passed');
    this.name = 'DeadlinePassed';
  }
}

/** What every call of one interceptor shares. */
interface Shared {
  /** The status codes that are failures. */
  readonly failures: ReadonlySet<number>;
  /** Measures the call's deadline. */
  readonly clock: Clock;
  /** Wall-clock ms, to turn a `Date` deadline into a duration. */
  readonly wallClock: () => number;
}

/**
 * How the calls of one method run, worked out once: per map entry when the interceptor is made, per policy a
 * `methods` function returns. Why one object: a call holds one field for it instead of three, and asks nothing of the
 * policy per call (no `instanceof`, no member walk).
 */
type MethodRun = (
  | {
      readonly policy: PolicyBase;
      /** A bulwark policy: the call runs it in the reporting form (see `GrpcCall.halfClose`). */
      readonly bulwark: true;
    }
  | { readonly policy: Policy; readonly bulwark: false }
) & {
  /** False when the method must not run twice. */
  readonly idempotent: boolean;
  /** Whether the policy may hedge: attempts then commit the call on response headers or a message (gRFC A6). */
  readonly hedged: boolean;
};

function methodRun(policy: Policy, idempotent: boolean): MethodRun {
  const hedged = mayHedge(policy);
  return policy instanceof PolicyBase
    ? { policy, bulwark: true, idempotent, hedged }
    : { policy, bulwark: false, idempotent, hedged };
}

/**
 * One attempt: one call on the channel. It is its own listener (grpc-js calls its methods), its own abort listener
 * and its own `abort` event listener on a foreign policy's signal, so an attempt allocates no closure. A reply that
 * is not a failure is reported as the attempt itself, which holds what to deliver: to the fused call that began it,
 * or (a policy that needs the operation as a promise) to the promise `GrpcCall._attempt` made for it.
 */
class GrpcAttempt implements InterceptingListener, AbortListener {
  // Why `declare` fields assigned in the constructor and no private names (`#x`): a field initialiser is a function
  // V8 runs per instance, and a class with private methods stamps and checks a brand on each; both are paid per
  // attempt (as in fused.ts and the timeout's attempt). The `_` members are internal: the class is not exported.
  /** The response metadata, when the server sent any. */
  declare metadata: Metadata | undefined;
  /** The first message (a unary call has one). */
  declare message: unknown;
  /** How many messages arrived; the ones after the first are in `more`. */
  declare count: number;
  declare more: unknown[] | undefined;
  declare status: StatusObject | undefined;
  declare readonly _owner: GrpcCall;
  declare readonly _ctx: ExecutionContext;
  declare readonly _signal: AbortSignal | undefined;
  declare readonly _subscribed: boolean;
  /** Where the outcome goes (the fused call, or a promise); cleared once reported, so it is reported once. */
  declare _to: Reporter | undefined;
  /** True while the attempt is handed to grpc-js: an outcome reported now is deferred to a microtask. */
  declare _sending: boolean;
  declare _call: InterceptingCallInterface | undefined;

  constructor(owner: GrpcCall, ctx: ExecutionContext, signal: AbortSignal | undefined, to: Reporter) {
    this.metadata = undefined;
    this.message = undefined;
    this.count = 0;
    this.more = undefined;
    this.status = undefined;
    this._owner = owner;
    this._ctx = ctx;
    this._signal = signal;
    this._to = to;
    this._sending = false;
    this._call = undefined;
    this._subscribed = ctx._subscribe(this);
    signal?.addEventListener('abort', this);
  }

  send(call: InterceptingCallInterface, metadata: Metadata, message: unknown): void {
    this._call = call;
    this._sending = true;
    try {
      call.start(metadata, this);
      call.sendMessage(message);
      call.halfClose();
    } finally {
      this._sending = false;
    }
  }

  /**
   * Reports the outcome once. Why synchronously (from grpc-js's onReceiveStatus): that is where grpc-js itself
   * calls a caller's callback, so the caller sees the reply one hop sooner and no promise is made per attempt. Not
   * from within `send`: the caller of `_begin` must never see its outcome before `_begin` returns.
   */
  _report(ok: boolean, value: unknown): void {
    const to = this._to;
    if (to === undefined) return;
    this._to = undefined;
    if (this._sending) queueMicrotask(() => to._report(ok, value));
    else to._report(ok, value);
  }

  /** The attempt could not be sent (grpc-js threw). */
  fail(error: unknown): void {
    this._report(false, error);
  }

  /** Cancels the call on the wire: with a GrpcStatusError's status when that is the reason. */
  _onAbort(reason: unknown): void {
    const s = reason instanceof GrpcStatusError ? reason : undefined;
    this._call?.cancelWithStatus(s?.code ?? Status.CANCELLED, s?.details ?? 'bulwark: attempt aborted');
  }

  /** A foreign policy's signal aborted. */
  handleEvent(): void {
    this._onAbort(this._signal?.reason);
  }

  onReceiveMetadata(metadata: Metadata): void {
    this.metadata = metadata;
    // gRFC A6: response headers commit the call to this attempt (a trailers-only reply has none: grpc-js then only
    // reports the status).
    if (this._owner.run.hedged) commitHedge(this._ctx);
  }

  onReceiveMessage(message: unknown): void {
    if (this.count++ === 0) {
      this.message = message;
      // Why not null: grpc-js's unary call reports a null message just before a status that came without one (a
      // failure); a message the server sent is never null.
      if (this._owner.run.hedged && message !== null) commitHedge(this._ctx);
    } else (this.more ??= []).push(message);
  }

  onReceiveStatus(s: StatusObject): void {
    const ctx = this._ctx;
    const signal = this._signal;
    this._call = undefined; // ended: nothing to cancel, and grpc-js's call objects need not outlive it
    if (this._subscribed) ctx._unsubscribe(this);
    signal?.removeEventListener('abort', this);
    // Our own cancel (caller, deadline, a timeout) first: its status is CANCELLED, which is not a failure.
    if (ctx._aborted) {
      this._report(false, ctx._reason);
      return;
    }
    if (signal?.aborted) {
      this._report(false, signal.reason);
      return;
    }
    const owner = this._owner;
    if (!owner.shared.failures.has(s.code)) {
      this.status = s;
      this._report(true, this);
      return;
    }
    // Pushback is read on failure statuses only (gRFC A6: it applies to retryable codes).
    const pushback = pushbackOf(s.metadata);
    const error = new GrpcStatusError(
      s,
      typeof pushback === 'number' ? pushback : undefined,
      pushback !== 'stop' && owner.run.idempotent,
    );
    // For a hedge around this attempt: A6's pushback delays (ms) or stops the next hedge.
    setPushback(error, pushback);
    this._report(false, error);
  }

  /** Hands the reply to the caller's listener. */
  deliver(listener: Partial<InterceptingListener>): void {
    if (this.metadata !== undefined) listener.onReceiveMetadata?.(this.metadata);
    if (this.count > 0) {
      listener.onReceiveMessage?.(this.message);
      if (this.more !== undefined) for (const m of this.more) listener.onReceiveMessage?.(m);
    }
    listener.onReceiveStatus?.(this.status as StatusObject);
  }
}

/**
 * One unary call through the policy, and the call grpc-js sees: it implements grpc-js's call interface itself (an
 * InterceptingCall around it cost a requester object, four closures and three bound listener methods per call). It
 * forwards nothing: every attempt is a fresh call. Also the call's root cancel scope (caller cancel, deadline).
 */
class GrpcCall extends CancelScope implements InterceptingCallInterface, ReportingCaller {
  // `declare` fields and no private names, as in GrpcAttempt: no initialiser function and no brand per call.
  declare _listener: Partial<InterceptingListener> | undefined;
  declare _metadata: Metadata | undefined;
  declare _message: unknown;
  declare _timer: TimerHandle;
  declare _done: boolean;
  /** Attempts sent on the channel so far. */
  declare _sent: number;
  /** Whether the caller's metadata had no entry when the first attempt was made (undefined before it). */
  declare _empty: boolean | undefined;
  /** The call options of each attempt: the caller's, or a copy without a deadline too far for grpc-js. */
  declare _attemptOptions: InterceptorOptions;
  declare readonly options: InterceptorOptions;
  declare readonly nextCall: NextCall;
  /** The method's policy and how to run it. */
  declare readonly run: MethodRun;
  /** What every call of the interceptor shares. Why one field for several: each field is paid for by every call. */
  declare readonly shared: Shared;

  constructor(options: InterceptorOptions, nextCall: NextCall, run: MethodRun, shared: Shared) {
    super();
    this._listener = undefined;
    this._metadata = undefined;
    this._message = undefined;
    this._timer = undefined;
    this._done = false;
    this._sent = 0;
    this._empty = undefined;
    this._attemptOptions = options;
    this.options = options;
    this.nextCall = nextCall;
    this.run = run;
    this.shared = shared;
  }

  /**
   * The operation the policy runs, for every call: it finds its call from the context (the root context's scope is
   * the call), so a call allocates no closure for it. Only for bulwark's own policies, whose contexts are
   * `ExecutionContext`s derived from the root this call made.
   */
  static readonly _op = (ctx: Context): Promise<GrpcAttempt> =>
    ((ctx as ExecutionContext)._root._scope as GrpcCall)._attempt(ctx);

  start(metadata: Metadata, listener: Partial<InterceptingListener> | undefined): void {
    this._metadata = metadata;
    this._listener = listener;
  }

  sendMessageWithContext(_context: unknown, message: unknown): void {
    this._message = message;
  }

  sendMessage(message: unknown): void {
    this._message = message;
  }

  startRead(): void {}

  getPeer(): string {
    return '';
  }

  getAuthContext(): ReturnType<InterceptingCallInterface['getAuthContext']> {
    return null;
  }

  /** The caller cancelled (its status is not used: the caller gets CANCELLED, "Cancelled on client"). */
  cancelWithStatus(): void {
    this.cancel();
  }

  halfClose(): void {
    const deadline = this.options.deadline;
    if (deadline !== undefined && deadline !== Number.POSITIVE_INFINITY) {
      const at = deadline instanceof Date ? deadline.getTime() : deadline;
      const left = at - this.shared.wallClock();
      // An invalid deadline (an invalid Date, NaN) has passed, as grpc-js itself treats it.
      const ms = Number.isNaN(left) ? 0 : Math.max(0, left);
      // grpc-js cannot send a timeout of 10^8 hours or more: it rejects inside the call ("Deadline is too far in
      // the future", an unhandled rejection) and the call never ends. The attempts go without one; the timer below
      // still holds the call to its deadline.
      if (ms >= GRPC_JS_MAX_TIMEOUT_MS) this._attemptOptions = { ...this.options, deadline: Number.POSITIVE_INFINITY };
      // The deadline covers every attempt and every backoff: when it passes, everything of the call stops.
      // Ref'd like every bulwark deadline: it must fire even if nothing else holds the event loop.
      this._timer = this.shared.clock.setTimeout(() => this.abort(new DeadlinePassed()), ms);
    }
    const operation = this.options.method_definition.path;
    const run = this.run;
    if (run.bulwark) {
      // The reporting form: a fused pipeline begins each attempt through `_begin` and reports the call's outcome to
      // `_report`, with no promise for the attempt or the call, no PromiseReporter and no reaction closures (other
      // policies run as a promise inside `_executeReporting`). Measured on an in-process fake channel driven as
      // grpc-js's client drives a call, 64 in flight, the four-policy pipeline (Node 20): 2,650 instructions and
      // about 910 B in flight less per call than the promise form, and 0.4-0.7 µs less time per call.
      run.policy._executeReporting(
        new ExecutionContext(undefined, operation, undefined, 1, this, undefined),
        GrpcCall._op,
        this,
      );
      return;
    }
    const op = (ctx: Context) => this._attempt(ctx);
    const ac = new AbortController();
    this.addListener({ _onAbort: (reason) => ac.abort(reason) });
    // A policy written elsewhere may break its contract (throw, or return a value that is not a promise): the
    // call must still end, with a status, instead of throwing inside grpc-js and leaving the deadline timer.
    let result: Promise<GrpcAttempt>;
    try {
      result = Promise.resolve(run.policy.execute(op, { signal: ac.signal, operation }));
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (reply) => this._finish(reply),
      (error: unknown) => this._finish(error, true),
    );
  }

  cancel(): void {
    if (!this.aborted)
      this.abort(
        new GrpcStatusError(
          { code: Status.CANCELLED, details: 'Cancelled on client', metadata: new Metadata() },
          undefined,
          false,
        ),
      );
  }

  _onAbort(): void {}
  _expire(): void {}

  /** ReportingCaller: starts one attempt under `ctx` (a fused pipeline's attempt), reporting to `to`. */
  _begin(ctx: ExecutionContext, to: Reporter): void {
    this._send(ctx, ctx, undefined, to);
  }

  /** ReportingCaller: the policy's outcome, an attempt that was not a failure or the error the call ends with. */
  _report(ok: boolean, value: unknown): void {
    this._finish(value, !ok);
  }

  /**
   * One attempt. `ctx` is bulwark's own context, or (under a policy written outside bulwark) the public one: the
   * attempt then runs on an internal view of this call and follows `ctx.signal` for aborts.
   */
  _attempt(given: Context): Promise<GrpcAttempt> {
    // Why an executor closure and not a shared parked executor: callgrind measured the closure cheaper
    // (1,604 vs 1,873 instructions per promise), and the attempt is started inside it, as a promise usually is.
    return new Promise<GrpcAttempt>((resolve, reject) =>
      this._launch(given, new PromiseReporter(resolve as (value: unknown) => void, reject)),
    );
  }

  /** Sends one attempt, its outcome reported to `to` once, never before this returns. */
  _launch(given: Context, to: Reporter): void {
    if (given instanceof ExecutionContext) this._send(given, given, undefined, to);
    else {
      const view = new ExecutionContext(undefined, given.operation, undefined, given.attempt, this, undefined);
      this._send(view, given, given.signal, to);
    }
  }

  /**
   * Sends one attempt on `ctx` (bulwark's context), `given` being the context the policy passed (the public one,
   * under a foreign policy, whose `signal` is `signal`). Reports to `to` once, never before this returns.
   */
  _send(ctx: ExecutionContext, given: Context, signal: AbortSignal | undefined, to: Reporter): void {
    if (ctx._aborted) {
      reportLater(to, ctx._reason);
      return;
    }
    if (signal?.aborted) {
      reportLater(to, signal.reason);
      return;
    }
    // A method that must not run twice: once an attempt is sent, whatever fails (a timeout too) is final. Set on
    // the attempt that sends, not on attempt 1: an attempt refused locally (open breaker, full bulkhead) sent nothing.
    if (!this.run.idempotent) given.properties.set(RETRYABLE, false);
    let attempt: GrpcAttempt | undefined;
    try {
      const metadata = this._attemptMetadata();
      // gRFC A6 counts the attempts actually sent, not those refused before reaching the channel.
      if (this._sent > 0) metadata.set('grpc-previous-rpc-attempts', String(this._sent));
      attempt = new GrpcAttempt(this, ctx, signal, to);
      const call = this.nextCall(this._attemptOptions);
      this._sent++;
      attempt.send(call, metadata, this._message);
    } catch (error) {
      // Reported once: an attempt that grpc-js has already ended keeps its own outcome.
      if (attempt !== undefined) queueMicrotask(() => attempt?.fail(error));
      else reportLater(to, error);
    }
  }

  /**
   * The metadata of the next attempt: a copy of the caller's, or, for the first attempt of a call whose metadata is
   * empty (most calls), the caller's own object. Why: a copy costs a Metadata and a Map per call (about 240 B), and
   * grpc-js copies the metadata itself before it sends (ResolvingCall), so nothing of bulwark's or grpc-js's writes
   * to it; only an interceptor after this one could, as it would without bulwark. Later attempts then start from an
   * empty Metadata with the caller's options, which is what the caller sent, whatever was added to it since.
   */
  _attemptMetadata(): Metadata {
    const caller = this._metadata;
    if (caller === undefined) return new Metadata();
    if (this._empty === undefined) this._empty = isEmpty(caller);
    if (!this._empty) return caller.clone();
    return this._sent === 0 ? caller : new Metadata(caller.getOptions());
  }

  _finish(outcome: unknown, failed = false): void {
    if (this._done) return;
    this._done = true;
    if (this._timer !== undefined) this.shared.clock.clearTimeout(this._timer);
    const listener = this._listener;
    // Why: something may hold the call after it ends (the caller's call object, a policy's context): it must not
    // keep grpc-js's listener, the request and the metadata alive, which would be promoted to the old generation.
    this._listener = undefined;
    this._message = undefined;
    this._metadata = undefined;
    if (listener === undefined) return;
    if (!failed) {
      // A reply is an attempt of this very call. Why not `instanceof GrpcAttempt`: callgrind showed V8 running it
      // through its generic builtin here, and the owner check also refuses another call's attempt.
      if (!isReplyOf(this, outcome)) {
        // A fallback inside the policy resolved with its own value: there is no reply to deliver.
        listener.onReceiveStatus?.({
          code: Status.UNKNOWN,
          details:
            "bulwark/grpc: the policy resolved with a value that is not a gRPC reply (a fallback inside the interceptor's policy?). Put fallbacks around your call instead.",
          metadata: new Metadata(),
        });
        return;
      }
      outcome.deliver(listener);
      return;
    }
    let error = outcome;
    // onExhausted: 'wrap' must not hide what happened: the caller acts on the status of the last failure.
    if (isRetryExhaustedError(error)) error = error.cause;
    if (error instanceof DeadlinePassed) {
      listener.onReceiveStatus?.({
        code: Status.DEADLINE_EXCEEDED,
        details: 'Deadline exceeded',
        metadata: new Metadata(),
      });
      return;
    }
    listener.onReceiveStatus?.(statusOf(error));
  }
}

// Keep the per-call classes' maps alive across full GCs, so optimised code that embeds them survives (see shapes.ts).
{
  const kept = keepShape(
    new GrpcCall(
      undefined as unknown as InterceptorOptions,
      undefined as unknown as NextCall,
      methodRun({ name: '', execute: () => Promise.reject(new Error()) }, true),
      {
        failures: new Set(),
        clock: systemClock,
        wallClock: wallClockNow,
      },
    ),
  );
  const noop = (): void => undefined;
  keepShape(
    new GrpcAttempt(
      kept,
      new ExecutionContext(undefined, 'default', undefined, 1, undefined, undefined),
      undefined,
      new PromiseReporter(noop, noop),
    ),
  );
}

/**
 * Whether a Metadata has no entry, read without a copy. Its entries live in a Map that grpc-js declares protected
 * (`internalRepr`, unchanged since 1.0); should a version not have it, the answer is "not known empty", and every
 * attempt gets a copy as before.
 */
function isEmpty(metadata: Metadata): boolean {
  const repr = (metadata as unknown as { internalRepr?: unknown }).internalRepr;
  return repr instanceof Map && repr.size === 0;
}

/**
 * Whether `outcome` (what the policy resolved with) is a reply of `call`: one of its attempts. Total: a value that a
 * fallback inside the policy made (a getter that throws, a proxy) is not a reply, and the call still ends.
 */
function isReplyOf(call: GrpcCall, outcome: unknown): outcome is GrpcAttempt {
  if (typeof outcome !== 'object' || outcome === null) return false;
  try {
    return (outcome as GrpcAttempt)._owner === call;
  } catch {
    return false;
  }
}

/** Reports a failure to `to` in a microtask: an attempt never reports from within the call that began it. */
function reportLater(to: Reporter, error: unknown): void {
  queueMicrotask(() => to._report(false, error));
}

function isPolicy(value: unknown): value is Policy {
  return isPolicyLike(value);
}

/**
 * A `methods` map entry read once (a getter is not read twice): its policy and `idempotent`, or undefined when it
 * is neither a policy nor a `{ policy, idempotent? }` whose fields can be read.
 */
function configIn(entry: unknown): { policy: Policy; idempotent: unknown } | undefined {
  if (isPolicy(entry)) return { policy: entry, idempotent: undefined };
  if (typeof entry !== 'object' || entry === null) return undefined;
  try {
    const { policy, idempotent } = entry as { policy?: unknown; idempotent?: unknown };
    return isPolicy(policy) ? { policy, idempotent } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The config a `methods` function returned, checked (a function's results cannot be checked at creation). One
 * that is not a config ends the call with UNKNOWN and says why, instead of throwing inside grpc-js.
 */
function configOf(path: string, found: unknown): GrpcMethodConfig {
  const c = configIn(found);
  if (c !== undefined && (c.idempotent === undefined || typeof c.idempotent === 'boolean')) {
    return c as GrpcMethodConfig;
  }
  return brokenConfig(
    `grpcInterceptor: methods('${path}') returned ${describe(found)}; expected a policy, { policy, idempotent?: boolean }, or undefined to pass the call through`,
  );
}

/**
 * Whether `policy` may hedge: it holds a `hedge()` (itself, or a member of a pipeline), or a `keyed` member, whose
 * factory may make one during calls. Why ask: only then do attempts look for a hedge to commit (a walk up the
 * attempt's context), which the other calls need not pay for. A policy written outside bulwark runs its attempts
 * on contexts of its own, where no hedge of bulwark's can be found.
 */
function mayHedge(policy: Policy): boolean {
  if (!(policy instanceof PolicyBase)) return false;
  for (const m of policy._members()) if (m instanceof HedgePolicy || m instanceof KeyedPolicy) return true;
  return false;
}

/** A config whose policy rejects at once with a `TypeError`: the call ends with UNKNOWN, nothing is sent. */
function brokenConfig(message: string, cause?: unknown): GrpcMethodConfig {
  return refusedConfig(new TypeError(message, { cause }));
}

/** A config whose policy rejects at once with `problem`: the call ends with UNKNOWN, nothing is sent. */
function refusedConfig(problem: Error): GrpcMethodConfig {
  return { policy: { name: 'grpcInterceptor', execute: () => Promise.reject(problem) }, idempotent: false };
}

/**
 * A grpc-js client interceptor that runs unary calls under a bulwark policy per method. Each attempt is a fresh
 * call with the same metadata and message (attempts after the first carry `grpc-previous-rpc-attempts`); the
 * call's deadline covers every attempt and backoff; UNAVAILABLE is the default failure; server pushback
 * (`grpc-retry-pushback-ms`, 0 to 2^31-1 ms, read on failure codes only) sets the next delay, and a negative,
 * out-of-range or malformed one stops retrying. Streaming methods and unlisted methods pass through untouched. Map
 * keys must be full paths (and, with `services`, unary methods of those services). bulwark's own errors reach the
 * caller as statuses: an open circuit as UNAVAILABLE, a full bulkhead as RESOURCE_EXHAUSTED, a timeout as
 * DEADLINE_EXCEEDED.
 *
 * A `hedge()` in a policy hedges as gRFC A6 does: the first attempt to receive response headers, a message or a
 * status that is not a failure code is committed (the others are cancelled, no hedge starts after, only its reply
 * reaches the caller); a failure code sends the next hedge at once; pushback delays the next hedge, or stops
 * hedging. Streaming calls are not hedged (they pass through untouched).
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const client = new Greeter('127.0.0.1:50051', credentials.createInsecure(), {
 *   interceptors: [
 *     grpcInterceptor({
 *       methods: {
 *         '/hello.Greeter/SayHello': pipeline(retry(), circuitBreaker()),
 *         '/hello.Greeter/GetGreeting': pipeline(circuitBreaker(), hedge({ delayMs: 50 }), timeout(1_000)),
 *       },
 *       services: [Greeter.service], // keys checked against it: a typo throws here
 *     }),
 *   ],
 * });
 * ```
 */
export function grpcInterceptor(options: GrpcInterceptorOptions): Interceptor {
  const check = new Checker('grpcInterceptor');
  /** The entries of a `methods` map, each read once, here. */
  const configs = new Map<string, { policy: Policy; idempotent: unknown }>();
  if (check.object('', options, OPTION_NAMES)) {
    const m = options.methods as unknown;
    if (typeof m !== 'function' && (typeof m !== 'object' || m === null || Array.isArray(m))) {
      check.fail('methods', m, 'a map from method path to a policy, or a function of the path (required)');
    }
    const known = options.services === undefined ? undefined : methodsOf(options.services);
    if (options.services !== undefined && known === undefined) {
      check.fail(
        'services',
        options.services,
        "an array of grpc-js service definitions (a client constructor's `service`, such as Inventory.service)",
      );
    }
    let entries: [string, unknown][] = [];
    if (typeof m === 'object' && m !== null && !Array.isArray(m)) {
      try {
        entries = Object.entries(m);
      } catch (error) {
        check.fail(
          'methods',
          m,
          `a map from method path to a policy whose entries can be read (reading them threw ${JSON.stringify(textOf(error))})`,
        );
      }
    }
    for (const [path, entry] of entries) {
      const config = configIn(entry);
      if (config === undefined) {
        check.fail(`methods['${path}']`, entry, 'a policy, or { policy, idempotent? }');
      } else if (config.idempotent !== undefined && typeof config.idempotent !== 'boolean') {
        check.fail(`methods['${path}'].idempotent`, config.idempotent, 'a boolean');
      } else configs.set(path, config);
      // A key that is not a full path never matches a call: the method would run without its policy. (A path of
      // `services` is what grpc-js sends, whatever its shape: a hand-made definition may use any string.)
      if (!FULL_PATH.test(path) && known?.has(path) !== true) {
        check.fail(
          `methods['${path}']`,
          path,
          "a key that is a full method path, '/<package>.<Service>/<Method>' (as in Inventory.service.GetStock.path)",
        );
      } else if (known !== undefined) {
        const def = known.get(path);
        if (def === undefined) {
          const unary = [...known].filter(([, d]) => !d.requestStream && !d.responseStream).map(([p]) => p);
          check.fail(
            `methods['${path}']`,
            path,
            `the path of a unary method of \`services\` (${unary.length === 0 ? 'they have none' : listOf(unary.sort(), 8)})`,
          );
        } else if (def.requestStream || def.responseStream) {
          check.fail(
            `methods['${path}']`,
            path,
            `a unary method (this is ${streamingKind(def)} method: streaming calls pass through untouched, so its policy would never run)`,
          );
        }
      }
    }
    const codes = options.failureCodes;
    if (
      codes !== undefined &&
      !passes(() => Array.isArray(codes) && codes.every((c) => Number.isInteger(c) && c > 0 && c <= 16))
    ) {
      check.fail('failureCodes', options.failureCodes, 'an array of gRPC status codes (1..16)');
    }
    check.clock('clock', options.clock);
    check.fn('wallClock', options.wallClock);
  } else if (options === undefined) {
    check.fail('methods', undefined, 'a map from method path to a policy, or a function of the path (required)');
  }
  check.done();
  const methods = options.methods;
  const byFunction = typeof methods === 'function' ? methods : undefined;
  /**
   * A map's methods and how each runs, from the entries read once above. Why not the object itself per call: an
   * entry added later was never checked, and a getter would run again on every call.
   */
  const runs = new Map<string, MethodRun>();
  for (const [path, config] of configs) runs.set(path, methodRun(config.policy, config.idempotent !== false));
  /** One owner object per map key, so that each key that cannot work is reported once. */
  const warned = new Map<string, object>();
  const warnStreaming = (def: InterceptorOptions['method_definition']): void => {
    let owner = warned.get(def.path);
    if (owner === undefined) warned.set(def.path, (owner = {}));
    warnOnce(
      owner,
      `grpcInterceptor: methods['${def.path}'] names ${streamingKind(def)} method. Streaming calls pass through untouched, so this entry's policy never runs. Remove the entry, protect the stream in your own code, or pass \`services\` to have keys checked when the interceptor is created.`,
      'BulwarkGrpcWarning',
      'BULWARK_GRPC_STREAMING_METHOD',
    );
  };
  /**
   * The path of the last call and its run (a map). Why the path and not the definition object: grpc-js makes a new
   * definition per call, but a generated client passes its method's own path string each time, so a call of the same
   * method as the last compares one pointer instead of hashing the path.
   */
  let lastPath: string | undefined;
  let lastRun: MethodRun | undefined;
  /** The run of the last policy a `methods` function returned (idempotent): one comparison per call. */
  let lastPolicyRun: MethodRun | undefined;
  /** What a `methods` function says of `path`, per call (it is consulted for every call). */
  const runFor = (fn: (path: string) => Policy | GrpcMethodConfig | undefined, path: string): MethodRun | undefined => {
    let found: unknown;
    try {
      found = fn(path);
    } catch (error) {
      // A methods function that throws: the call ends with a status saying so, never a throw inside grpc-js.
      const broken = brokenConfig(`grpcInterceptor: methods('${path}') threw: ${textOf(error)}`, error);
      return methodRun(broken.policy, false);
    }
    if (found === undefined) return undefined;
    if (found === lastPolicyRun?.policy) return lastPolicyRun;
    if (isPolicy(found)) return (lastPolicyRun = methodRun(found, true));
    const config = configOf(path, found);
    const idempotent = config.idempotent !== false;
    // A config object may be made per call: the policy's own answers (bulwark, hedged) are reused when known.
    const known =
      config.policy === lastPolicyRun?.policy ? lastPolicyRun : (lastPolicyRun = methodRun(config.policy, true));
    return idempotent ? known : { ...known, idempotent };
  };
  const shared: Shared = {
    failures: new Set(options.failureCodes ?? [Status.UNAVAILABLE]),
    clock: options.clock ?? systemClock,
    wallClock: options.wallClock ?? wallClockNow,
  };

  return (callOptions, nextCall) => {
    const def = callOptions.method_definition;
    if (def.requestStream || def.responseStream) {
      // Only known at the first call (without `services`): a listed method turns out to be streaming.
      if (byFunction === undefined && runs.has(def.path)) warnStreaming(def);
      return new InterceptingCall(nextCall(callOptions));
    }
    let run: MethodRun | undefined;
    if (byFunction !== undefined) run = runFor(byFunction, def.path);
    else if (def.path === lastPath) run = lastRun;
    else {
      run = runs.get(def.path);
      lastPath = def.path;
      lastRun = run;
    }
    if (run === undefined) return new InterceptingCall(nextCall(callOptions));
    // grpc-js only calls the call interface's methods (no instanceof check): the call itself serves as one.
    return new GrpcCall(callOptions, nextCall, run, shared) as unknown as InterceptingCall;
  };
}
