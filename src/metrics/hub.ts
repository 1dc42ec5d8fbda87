import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { isHedgeCancelledError, isTimeoutError } from '../errors/errors.js';
import { Checker } from '../errors/validate.js';
import { channelName, messageOf, warnOnce } from '../events/emitter.js';
import { type InstanceKind, liveInstances, trackedKind } from '../events/instances.js';
import { EVENT_TYPES, type ResilienceEvent } from '../events/types.js';
import { AdaptiveThrottlePolicy } from '../policies/adaptive-throttle/adaptive-throttle.js';
import { BulkheadPolicy } from '../policies/bulkhead/bulkhead.js';
import { CircuitBreakerPolicy } from '../policies/circuit-breaker/circuit-breaker.js';
import { HedgePolicy } from '../policies/hedge/hedge.js';
import { KeyedPolicy } from '../policies/keyed/keyed.js';
import { PipelinePolicy } from '../policies/pipeline.js';
import { PolicyBase } from '../policies/policy-base.js';
import { RateLimitPolicy } from '../policies/rate-limit/rate-limit.js';
import { RetryPolicy } from '../policies/retry/retry.js';
import { type RetryBudget, RetryRatioBudget, RetryTokenBudget } from '../policies/retry-budget/retry-budget.js';

/**
 * What every metrics adapter returns: attach it to the whole process or to chosen policies, detach, close.
 *
 * @example
 * ```ts
 * const m = prometheusMetrics({ registry });
 * const detach = m.attach(payments); // one pipeline (its members, and keyed policies' live members)
 * // or: m.attachAll();            // every policy in the process, through node:diagnostics_channel
 * detach();                         // stop recording this pipeline; its series stay until close()
 * m.close();                        // detach everything and drop the adapter's gauges
 * ```
 */
export interface PolicyMetrics {
  /**
   * Records the events of these policies (a pipeline: itself and its members; a keyed policy: every policy it
   * holds, present and future) and reports the gauges of the breakers, bulkheads, rate limiters and adaptive
   * throttles among them, and of the retry budgets their retry and hedge policies hold.
   * Returns a function that detaches exactly these policies.
   *
   * Attachments may overlap (a policy attached twice, a shared member): each event is still recorded once.
   *
   * @throws InvalidOptionsError when an argument is not a bulwark policy of this copy of bulwark, when none is
   * given, or when the adapter is attached process-wide (a channel and a listener would both see each event).
   */
  attach(...policies: readonly PolicyBase[]): () => void;
  /**
   * Records the events of every policy in the process, of every copy of bulwark, present and future, through
   * `node:diagnostics_channel`, and reports the gauges of every live breaker, bulkhead, rate limiter, adaptive
   * throttle and retry budget. Returns a function that detaches.
   *
   * @throws InvalidOptionsError when the adapter already has attachments of either kind.
   */
  attachAll(): () => void;
  /** Detaches everything and releases what the adapter registered (gauge callbacks; prom-client metrics). */
  close(): void;
}

/** A call's result, as the duration instruments label it. @internal */
export type CallResult = 'success' | 'failure' | 'aborted';

/** Breakers of one name, counted per state. @internal */
export interface BreakerReading {
  closed: number;
  open: number;
  half_open: number;
  isolated: number;
}

/** Bulkheads of one name, summed. @internal */
export interface BulkheadReading {
  active: number;
  queued: number;
  limit: number;
}

/** Rate limiters of one name, summed. @internal */
export interface RateLimitReading {
  /** Tokens (permits, for a window) a call could take now, net of the queued calls' reservations. */
  available: number;
  queued: number;
  /** The burst (token bucket) or the limit (windows). */
  capacity: number;
}

/** Ratio budgets (`retryBudget()`) of one name, summed. @internal */
export interface RetryBudgetReading {
  calls: number;
  retries: number;
  credit: number;
}

/** Token budgets (`retryTokenBudget()`) of one name, summed. @internal */
export interface TokenBudgetReading {
  tokens: number;
}

/** Adaptive throttles of one name: counts summed, the highest rejection probability. @internal */
export interface ThrottleReading {
  requests: number;
  accepts: number;
  probability: number;
}

/**
 * The gauges of every breaker, bulkhead, rate limiter, adaptive throttle and retry budget in the adapter's scope,
 * by name. @internal
 */
export interface GaugeReading {
  readonly breakers: Map<string, BreakerReading>;
  readonly bulkheads: Map<string, BulkheadReading>;
  readonly rateLimits: Map<string, RateLimitReading>;
  readonly retryBudgets: Map<string, RetryBudgetReading>;
  readonly tokenBudgets: Map<string, TokenBudgetReading>;
  readonly throttles: Map<string, ThrottleReading>;
}

/**
 * Where a hub sends what it measured: an OpenTelemetry or prom-client back end. Positional arguments, so that
 * recording an event allocates nothing on the hub's side. `errorType` and `reason` are `''` when absent.
 * @internal
 */
export interface MetricsSink {
  /**
   * An event: `reason` is retry.exhausted's, bulkhead.rejected's, rate_limit.rejected's, adaptive_limit.changed's and
   * store.fallback's reason,
   * circuit.rejected's state, chaos.injected's kind, or how a timeout.late_outcome's work settled (`success`,
   * `failure`, `aborted`).
   */
  count(policy: string, operation: string, event: string, errorType: string, reason: string): void;
  execution(seconds: number, policy: string, operation: string, result: CallResult, errorType: string): void;
  attempt(seconds: number, policy: string, operation: string, result: CallResult, errorType: string): void;
}

/**
 * The default `error.type`: bounded, predictable values only.
 * - a failed HTTP response (`HttpStatusError` of bulwark/undici, any copy): `http_` and its status, `http_503`,
 *   for a status from 100 to 599 (otherwise `HttpStatusError`);
 * - a failed gRPC call (`GrpcStatusError` of bulwark/grpc, any copy): `grpc_` and the status name,
 *   `grpc_UNAVAILABLE`, for the 17 codes gRPC defines (otherwise `GrpcStatusError`);
 * - an error with an upper-case string `code`: the code. That covers bulwark's own errors (`ERR_TIMEOUT`,
 *   `ERR_CIRCUIT_OPEN`, `ERR_BULKHEAD_REJECTED`, `ERR_RETRY_EXHAUSTED`), Node's and undici's (`ECONNRESET`,
 *   `UND_ERR_SOCKET`), and keeps a bulwark timeout apart from the `TimeoutError` DOMException of
 *   `AbortSignal.timeout()`;
 * - another `Error`: its `name` (`TypeError`, or your class's name);
 * - anything else that was thrown: `'_OTHER'` (the OpenTelemetry convention's fallback).
 *
 * @example
 * ```ts
 * defaultErrorType(Object.assign(new Error('reset'), { code: 'ECONNRESET' })); // 'ECONNRESET'
 * ```
 */
export function defaultErrorType(error: unknown): string {
  if (error instanceof Error) {
    const e = error as Error & Record<symbol, unknown> & { code?: unknown; status?: unknown };
    if (e[HTTP_STATUS_BRAND] === true) {
      const s = e.status;
      if (typeof s === 'number' && Number.isInteger(s) && s >= 100 && s <= 599) return `http_${s}`;
    } else if (e[GRPC_STATUS_BRAND] === true) {
      const c = e.code;
      const name = typeof c === 'number' && Number.isInteger(c) ? GRPC_STATUS_NAMES[c] : undefined;
      if (name !== undefined) return `grpc_${name}`;
    }
    const code = e.code;
    if (typeof code === 'string' && CODE.test(code)) return code;
    const name = error.name;
    return typeof name === 'string' && name.length > 0 && name.length <= 64 ? name : 'Error';
  }
  return '_OTHER';
}

/** The brands of bulwark/undici's HttpStatusError and bulwark/grpc's GrpcStatusError (shared by every copy). */
const HTTP_STATUS_BRAND = Symbol.for('bulwark.http-status-error');
const GRPC_STATUS_BRAND = Symbol.for('bulwark.grpc-status-error');
/** gRPC status codes 0 to 16 by number, as the gRPC spec names them. */
const GRPC_STATUS_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

const CODE = /^[A-Z][A-Z0-9_]{1,63}$/;

/**
 * Whether abandoned work rejected with an abort reason rather than a failure of its own: a bulwark
 * `TimeoutError` (the one a timeout aborts its work with), a `HedgeCancelledError` (a hedge that lost) or an
 * `AbortError` (a caller's abort, by default).
 */
function isAbortEcho(error: unknown): boolean {
  try {
    return (
      isTimeoutError(error) || isHedgeCancelledError(error) || (error instanceof Error && error.name === 'AbortError')
    );
  } catch {
    return false;
  }
}

/** Options every adapter shares. */
export interface CommonMetricsOptions {
  /**
   * Maps a failure to the `error.type` attribute (`error_type` label). Must return a short string from a small
   * set: it becomes a label value. @defaultValue {@link defaultErrorType}
   */
  errorType?: (error: unknown) => string;
  /**
   * Histogram bucket upper bounds for the duration instruments, in seconds, strictly increasing.
   * @defaultValue `[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60]` (the
   * OpenTelemetry HTTP duration buckets, plus 30 s and 60 s: an execution includes every backoff)
   */
  durationBuckets?: readonly number[];
}

/** @internal */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60,
];

/** @internal Validates the shared options into `check`. */
export function checkCommon(check: Checker, options: CommonMetricsOptions): void {
  check.fn('errorType', options.errorType);
  const b = options.durationBuckets;
  if (b === undefined) return;
  const ok =
    Array.isArray(b) &&
    b.length > 0 &&
    b.every((v, i) => typeof v === 'number' && Number.isFinite(v) && v > 0 && (i === 0 || v > (b[i - 1] as number)));
  if (!ok) check.fail('durationBuckets', b, 'a non-empty array of finite numbers > 0 in seconds, strictly increasing');
}

/** Reports a failure of the metrics layer once per adapter; a call's outcome never depends on metrics. */
function report(owner: object, adapter: string, what: string, error: unknown): void {
  warnOnce(
    owner,
    `${adapter}: ${what} failed (${messageOf(error)}); calls are not affected, metrics may be incomplete, and further failures of this adapter are not reported`,
    'BulwarkMetricsWarning',
    'BULWARK_METRICS_FAILED',
  );
}

/**
 * The part every adapter shares: turns events into labelled measurements for a sink, manages the process-wide
 * or per-policy attachments, and reads the gauges of the stateful policies and retry budgets in scope.
 * @internal
 */
export class MetricsHub implements PolicyMetrics {
  readonly #adapter: string;
  readonly #sink: MetricsSink;
  readonly #errorType: (error: unknown) => string;
  /** Per-policy attachments, each with the unsubscribes of its listeners. */
  readonly #attachments = new Set<Attachment>();
  #all: (() => void) | undefined;
  #closed = false;
  /** Bound once: the same function subscribes and unsubscribes, and no closure is made per event. */
  readonly #onEvent = (event: unknown): void => {
    try {
      this.record(event as ResilienceEvent);
    } catch (error) {
      // A channel subscriber that throws would surface as an uncaught exception on the next tick.
      report(this, this.#adapter, 'recording an event', error);
    }
  };
  /** Called after close(), to release what the back end registered. */
  onClose: (() => void) | undefined;

  constructor(adapter: string, sink: MetricsSink, errorType: ((error: unknown) => string) | undefined) {
    this.#adapter = adapter;
    this.#sink = sink;
    this.#errorType = errorType ?? defaultErrorType;
  }

  #typeOf(error: unknown): string {
    try {
      const t = this.#errorType(error);
      if (typeof t === 'string') return t;
      throw new TypeError(`errorType returned ${typeof t}, not a string`);
    } catch (e) {
      report(this, this.#adapter, 'the errorType function', e);
      return '_OTHER';
    }
  }

  /** @internal Turns one event into one measurement. */
  record(e: ResilienceEvent): void {
    const sink = this.#sink;
    switch (e.type) {
      case 'execution.completed':
      case 'attempt.completed': {
        const errorType = e.result === 'failure' ? this.#typeOf(e.error) : '';
        if (e.type === 'execution.completed') {
          sink.execution(e.durationMs / 1000, e.policy, e.operation, e.result, errorType);
        } else {
          sink.attempt(e.durationMs / 1000, e.policy, e.operation, e.result, errorType);
        }
        return;
      }
      case 'timeout.late_outcome':
      case 'hedge.late_outcome': {
        // Work that settles after its timeout fired. When it rejects with the abort reason it was given (the
        // timeout's own TimeoutError, or a caller's AbortError), it only acknowledges the abort: that timeout is
        // already counted by timeout.fired, so it is `aborted` with no error type, never a second ERR_TIMEOUT.
        const o = e.outcome;
        if (o.ok) sink.count(e.policy, e.operation, e.type, '', 'success');
        else if (isAbortEcho(o.error)) sink.count(e.policy, e.operation, e.type, '', 'aborted');
        else sink.count(e.policy, e.operation, e.type, this.#typeOf(o.error), 'failure');
        return;
      }
      default: {
        const errorType = 'outcome' in e && !e.outcome.ok ? this.#typeOf(e.outcome.error) : '';
        const reason =
          e.type === 'retry.exhausted' ||
          e.type === 'bulkhead.rejected' ||
          e.type === 'hedge.refused' ||
          e.type === 'rate_limit.rejected' ||
          e.type === 'adaptive_limit.changed' ||
          e.type === 'store.fallback'
            ? e.reason
            : e.type === 'circuit.rejected'
              ? e.state
              : e.type === 'hedge.launched'
                ? e.trigger
                : e.type === 'chaos.injected'
                  ? e.kind
                  : '';
        sink.count(e.policy, e.operation, e.type, errorType, reason);
      }
    }
  }

  attach(...policies: readonly PolicyBase[]): () => void {
    const check = new Checker(this.#adapter);
    if (this.#closed) check.fail('attach', 'a closed adapter', 'an adapter that was not closed');
    if (this.#all !== undefined) {
      check.fail('attach', 'a policy', 'no policy while attachAll() is in force (its events would count twice)');
    }
    if (policies.length === 0) check.fail('attach', policies, 'at least one policy (or use attachAll())');
    policies.forEach((p, i) => {
      if (!(p instanceof PolicyBase)) check.fail(`attach[${i}]`, p, 'a policy made by a bulwark factory');
    });
    check.done();
    // Overlaps are fine: a policy's emitter holds one listener however many paths reach it (see Emitter.on).
    const offs = policies.flatMap((p) => EVENT_TYPES.map((type) => p.on(type, this.#onEvent)));
    const attachment: Attachment = {
      policies,
      off: () => {
        for (const off of offs) off();
      },
    };
    this.#attachments.add(attachment);
    return () => {
      if (this.#attachments.delete(attachment)) attachment.off();
    };
  }

  attachAll(): () => void {
    const check = new Checker(this.#adapter);
    if (this.#closed) check.fail('attachAll', 'a closed adapter', 'an adapter that was not closed');
    if (this.#all !== undefined) check.fail('attachAll', 'a second call', 'one attachAll() at a time');
    if (this.#attachments.size > 0) {
      check.fail('attachAll', 'an adapter with attached policies', 'none attached (their events would count twice)');
    }
    check.done();
    for (const type of EVENT_TYPES) subscribe(channelName(type), this.#onEvent);
    const off = (): void => {
      if (this.#all !== off) return;
      this.#all = undefined;
      for (const type of EVENT_TYPES) unsubscribe(channelName(type), this.#onEvent);
    };
    this.#all = off;
    return off;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#all?.();
    for (const a of this.#attachments) a.off();
    this.#attachments.clear();
    this.onClose?.();
  }

  /**
   * @internal The gauges of every stateful policy and retry budget in scope, read from their state now: nothing is
   * recorded per call for them. Never throws (an object that cannot be read is left out).
   */
  read(): GaugeReading {
    const reading: GaugeReading = {
      breakers: new Map(),
      bulkheads: new Map(),
      rateLimits: new Map(),
      retryBudgets: new Map(),
      tokenBudgets: new Map(),
      throttles: new Map(),
    };
    const add = (kind: InstanceKind, p: object): void => {
      // One object that cannot be read (a broken copy, a throwing getter) must not hide the others.
      try {
        addReading(reading, kind, p);
      } catch (error) {
        report(this, this.#adapter, 'reading gauges', error);
      }
    };
    if (this.#all !== undefined) {
      // Each object is in the registry once: a budget shared by many policies is read once.
      for (const entry of liveInstances()) {
        const p = entry.ref.deref();
        if (p !== undefined) add(entry.kind, p);
      }
    } else {
      const seen = new Set<object>();
      const once = (kind: InstanceKind, p: object): void => {
        if (seen.has(p)) return;
        seen.add(p);
        add(kind, p);
      };
      for (const q of this.#attachments) {
        for (const p of contents(q.policies)) {
          if (p instanceof CircuitBreakerPolicy) once('circuit_breaker', p);
          else if (p instanceof BulkheadPolicy) once('bulkhead', p);
          else if (p instanceof RateLimitPolicy) once('rate_limit', p);
          else if (p instanceof AdaptiveThrottlePolicy) once('adaptive_throttle', p);
          else if (p instanceof RetryPolicy || p instanceof HedgePolicy) {
            // A budget is no policy: it is found through the retry and hedge policies in scope that hold it, and
            // read once however many of them share it.
            const b: RetryBudget | undefined = p._budget;
            if (b instanceof RetryRatioBudget) once('retry_budget', b);
            else if (b instanceof RetryTokenBudget) once('retry_token_budget', b);
          } else {
            // A policy of another entry point with a gauge's state (bulwark/redis's limiters and breaker): read as
            // the kind it registered as.
            const kind = trackedKind(p);
            if (kind !== undefined) once(kind, p);
          }
        }
      }
    }
    return reading;
  }
}

/**
 * Adds one object's state to the reading. The members are read by shape, not `instanceof`: with `attachAll()` the
 * object may come from another copy of bulwark. A kind this copy does not know (from a newer copy) is skipped.
 */
function addReading(reading: GaugeReading, kind: InstanceKind, p: object): void {
  switch (kind) {
    case 'circuit_breaker':
      addBreaker(reading, p as Breakerish);
      break;
    case 'bulkhead':
      addBulkhead(reading, p as Bulkheadish);
      break;
    case 'rate_limit':
      addRateLimit(reading, p as RateLimitish);
      break;
    case 'adaptive_throttle':
      addThrottle(reading, p as Throttleish);
      break;
    case 'retry_budget':
      addRetryBudget(reading, p as RetryBudgetish);
      break;
    case 'retry_token_budget':
      addTokenBudget(reading, p as TokenBudgetish);
      break;
    default:
      break;
  }
}

/** The members a breaker gauge reads (by shape: a policy of another copy of bulwark is not an `instanceof`). */
interface Breakerish {
  readonly name: string;
  readonly state: string;
}

interface Bulkheadish {
  readonly name: string;
  readonly disposed: boolean;
  readonly active: number;
  readonly queued: number;
  readonly limit: number;
}

interface RateLimitish {
  readonly name: string;
  readonly disposed: boolean;
  readonly available: number;
  readonly queued: number;
  readonly capacity: number;
}

interface Throttleish {
  readonly name: string;
  readonly requests: number;
  readonly accepts: number;
  readonly probability: number;
}

interface RetryBudgetish {
  readonly name: string;
  readonly callsInFlight: number;
  readonly retriesInFlight: number;
  readonly credit: number;
}

interface TokenBudgetish {
  readonly name: string;
  readonly tokens: number;
}

function addBreaker(reading: GaugeReading, b: Breakerish): void {
  // Read first: a breaker whose state cannot be read adds no series at all.
  const state = b.state as keyof BreakerReading;
  let r = reading.breakers.get(b.name);
  if (r === undefined) {
    r = { closed: 0, open: 0, half_open: 0, isolated: 0 };
    reading.breakers.set(b.name, r);
  }
  if (state in r) r[state]++;
}

function addBulkhead(reading: GaugeReading, b: Bulkheadish): void {
  // A disposed bulkhead admits nothing: its limit no longer counts, and once its last calls have finished it is
  // left out altogether, even before it is garbage-collected.
  const disposed = b.disposed === true;
  const { active, queued } = b;
  if (disposed && active === 0 && queued === 0) return;
  const limit = disposed ? 0 : b.limit;
  const r = reading.bulkheads.get(b.name);
  if (r === undefined) reading.bulkheads.set(b.name, { active, queued, limit });
  else {
    r.active += active;
    r.queued += queued;
    r.limit += limit;
  }
}

function addRateLimit(reading: GaugeReading, l: RateLimitish): void {
  // A disposed limiter has rejected its queue and admits nothing more: it is left out at once (its running calls
  // hold no tokens, unlike a bulkhead's slots).
  if (l.disposed === true) return;
  // `available` is computed from the clock now (the tokens refilled since the last call): no timer keeps it.
  const { available, queued, capacity } = l;
  const r = reading.rateLimits.get(l.name);
  if (r === undefined) reading.rateLimits.set(l.name, { available, queued, capacity });
  else {
    r.available += available;
    r.queued += queued;
    r.capacity += capacity;
  }
}

function addThrottle(reading: GaugeReading, t: Throttleish): void {
  // Each getter moves the window to now first (buckets rotate lazily): the three agree on one instant.
  const { requests, accepts, probability } = t;
  const r = reading.throttles.get(t.name);
  if (r === undefined) reading.throttles.set(t.name, { requests, accepts, probability });
  else {
    r.requests += requests;
    r.accepts += accepts;
    // Why the highest, not a sum or a mean: a probability does not add up, and the throttle shedding most is the
    // one an operator looks for (a uniquely named throttle reads exactly its own).
    if (probability > r.probability) r.probability = probability;
  }
}

function addRetryBudget(reading: GaugeReading, b: RetryBudgetish): void {
  const { callsInFlight: calls, retriesInFlight: retries, credit } = b;
  const r = reading.retryBudgets.get(b.name);
  if (r === undefined) reading.retryBudgets.set(b.name, { calls, retries, credit });
  else {
    r.calls += calls;
    r.retries += retries;
    r.credit += credit;
  }
}

function addTokenBudget(reading: GaugeReading, b: TokenBudgetish): void {
  const tokens = b.tokens;
  const r = reading.tokenBudgets.get(b.name);
  if (r === undefined) reading.tokenBudgets.set(b.name, { tokens });
  else r.tokens += tokens;
}

interface Attachment {
  readonly policies: readonly PolicyBase[];
  readonly off: () => void;
}

/** Every policy in `roots` and inside them: pipeline members (nested too) and keyed policies' live policies. */
function contents(roots: readonly PolicyBase[]): Set<PolicyBase> {
  const into = new Set<PolicyBase>();
  const visit = (p: PolicyBase): void => {
    if (into.has(p)) return;
    into.add(p);
    if (p instanceof PipelinePolicy) for (const m of p.policies) visit(m);
    else if (p instanceof KeyedPolicy) for (const m of p.values()) visit(m as PolicyBase);
  };
  for (const p of roots) visit(p);
  return into;
}
