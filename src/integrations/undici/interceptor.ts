import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { wallClockNow } from '../../core/clock.js';
import { type AbortListener, CancelScope, type Context, ExecutionContext } from '../../core/context.js';
import { describeMessage } from '../../core/describe.js';
import { type Policy, PromiseReporter, type Reporter, type ReportingCaller } from '../../core/policy.js';
import { RETRYABLE } from '../../core/properties.js';
import { fastConstructor } from '../../core/shapes.js';
import { isRetryExhaustedError } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { warnOnce } from '../../events/emitter.js';
import { BulkheadPolicy } from '../../policies/bulkhead/bulkhead.js';
import { CircuitBreakerPolicy } from '../../policies/circuit-breaker/circuit-breaker.js';
import { KeyedPolicy } from '../../policies/keyed/keyed.js';
import { PolicyBase } from '../../policies/policy-base.js';
import { RetryPolicy } from '../../policies/retry/retry.js';
import { TimeoutPolicy } from '../../policies/timeout/timeout.js';
import { hedgeIn } from '../hedge-in.js';
import { isPolicyLike, passes } from '../validate.js';
import {
  FAILURE_CODES,
  FAILURE_STATUSES,
  getHeader,
  IDEMPOTENCY_KEY,
  IDEMPOTENT_METHODS,
  parseRetryAfter,
  withHeader,
} from './classify.js';

/** A request body bulwark can send again on every attempt. */
export type ReplayableBody = string | Buffer | Uint8Array;

/** Per-request options, passed as `bulwark` in the request options (`agent.request({ ..., bulwark })`). */
export interface BulwarkRequestOptions {
  /** Another policy for this request, or `false` to send it without any. */
  policy?: Policy | false;
  /** The low-cardinality operation name for events and metrics. @defaultValue the method, e.g. `'GET'` */
  operation?: string;
  /**
   * Makes a stream body retryable: called once per attempt (attempt 1 included) for a fresh body. Without it a
   * stream or async-iterable body is sent once and the request is never retried.
   */
  body?: (attempt: number) => Dispatcher.DispatchOptions['body'];
  /** Retry this request even if its method is not idempotent (you know the server deduplicates it). */
  retryNonIdempotent?: boolean;
}

declare module 'undici' {
  namespace Dispatcher {
    interface DispatchOptions {
      /** bulwark's per-request options; see `BulwarkRequestOptions`. */
      bulwark?: BulwarkRequestOptions;
    }
  }
}

/** Options of {@link interceptor}. */
export interface UndiciInterceptorOptions {
  /**
   * The policy every request runs under (usually a pipeline), or a function of the origin returning one, so each
   * origin gets its own breaker and bulkhead (at most `maxOrigins`, least recently used evicted). Required.
   */
  policy: Policy | ((origin: string) => Policy);
  /** With a per-origin `policy` function: the most origins kept. @defaultValue 256 */
  maxOrigins?: number;
  /** Methods retried without an Idempotency-Key. @defaultValue GET, HEAD, OPTIONS, PUT, DELETE, TRACE */
  methods?: readonly string[];
  /**
   * Generate an `Idempotency-Key` header (a random UUID, the same on every attempt of the request) for every POST
   * or PATCH that has none, which makes it retryable. Only for servers that deduplicate requests by that header.
   * Needs `honorIdempotencyKey` (the default). Formerly `idempotencyKey`. @defaultValue false
   */
  generateIdempotencyKeys?: boolean;
  /**
   * Treat a request that carries an `Idempotency-Key` header (set by the caller, or generated) as retryable, whatever
   * its method. `false`: only `methods` and `retryNonIdempotent` make a request retryable, for servers that ignore
   * the header. @defaultValue true
   */
  honorIdempotencyKey?: boolean;
  /** Response statuses that are failures. @defaultValue 408, 429, 500, 502, 503, 504 */
  failureStatuses?: readonly number[];
  /** Error codes that are failures (network errors). Other errors pass through as they are. @defaultValue see docs */
  failureCodes?: readonly string[];
  /** Wall-clock ms, to read `Retry-After` dates. @defaultValue `Date.now` */
  wallClock?: () => number;
}

/** @internal The interceptor's option names (createFetch adds `dispatcher`). */
export const OPTION_NAMES: readonly string[] = [
  'policy',
  'maxOrigins',
  'methods',
  'generateIdempotencyKeys',
  'honorIdempotencyKey',
  'failureStatuses',
  'failureCodes',
  'wallClock',
];

/**
 * @internal Options that were renamed or removed: each is refused with what to use instead, never ignored.
 * Keyed by the old name; the text completes "expected ...".
 */
export const RETIRED_OPTIONS: Readonly<Record<string, string>> = {
  idempotencyKey:
    "generateIdempotencyKeys instead (renamed: it generates a key for every POST and PATCH without one; honorIdempotencyKey turns off honouring a caller's key)",
  maxRetryAfterMs:
    'maxRetryAfterMs on the retry policy instead (retry({ maxRetryAfterMs })): it is the one limit on Retry-After; a longer one makes retry give up at once and the caller gets that response',
};

const HTTP_STATUS_BRAND = Symbol.for('bulwark.http-status-error');

/**
 * A response the policy counts as a failure (a 503, say). bulwark's retry retries it (honouring `Retry-After` as
 * `retryAfterMs`); when the policy gives up, the caller receives the response itself, not this error. It is what a
 * `handle` predicate or a fallback sees for a failed response.
 *
 * @example
 * ```ts
 * fallback({ handle: handleErrors((e) => e instanceof HttpStatusError && e.status === 503), value: CACHED });
 * ```
 */
export class HttpStatusError extends Error {
  /** The response status. */
  readonly status: number;
  /** The response headers. */
  readonly headers: IncomingHttpHeaders;
  /**
   * The server's `Retry-After`, in ms, when it sent a usable one; `Infinity` when it was too large to represent
   * (do not retry now). See {@link parseRetryAfter}.
   */
  readonly retryAfterMs: number | undefined;
  /**
   * False when this request must not be retried: a non-idempotent method, a one-shot body, or a `Retry-After` too
   * large to represent (`retryAfterMs` is then `Infinity`: do not retry now).
   */
  readonly retryable: boolean;
  /** @internal The attempt whose response this is. */
  readonly _attempt: unknown;

  constructor(
    status: number,
    headers: IncomingHttpHeaders,
    retryAfterMs: number | undefined,
    retryable: boolean,
    attempt: unknown,
  ) {
    super(`HTTP ${status} response counted as a failure`);
    this.name = 'HttpStatusError';
    this.status = status;
    this.headers = headers;
    this.retryAfterMs = retryAfterMs;
    this.retryable = retryable;
    this._attempt = attempt;
  }

  /** `instanceof` across two copies of the package (ESM and CJS): checks a registry brand, not the prototype. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[HTTP_STATUS_BRAND] === true
    );
  }
}
Object.defineProperty(HttpStatusError.prototype, HTTP_STATUS_BRAND, { value: true });

/**
 * What the lone attempt of a call resolves with when the policy counts its response as a success: the call delivers
 * its current attempt. Why a symbol and not the attempt itself: resolving a promise with an object makes V8 look up
 * `then` on it, a lookup without an inline cache that walks the attempt's fields and prototypes (about 550
 * instructions, measured), and the value is resolved twice per request (the attempt's promise, then the policy's).
 * An attempt that may run beside others (a hedged call's, or one started while another still runs) resolves with
 * itself instead, so the call knows which response the policy chose.
 */
const SUCCEEDED: unique symbol = Symbol('bulwark.undici.succeeded');

/** An error that is not a failure: delivered as it is. */
class Passed {
  constructor(
    readonly attempt: undefined,
    readonly error: unknown,
  ) {}
}

/**
 * Requests made by the fetch helper carry their replayable body and options under this key of the dispatch
 * options (fetch hides the body behind a one-shot stream and drops unknown options).
 * @internal
 */
export const FETCH_EXTRA: unique symbol = Symbol('bulwark.fetch');

/** @internal */
export interface FetchExtra {
  body: ReplayableBody | undefined;
  request: BulwarkRequestOptions | undefined;
  /** The caller's own `init.body`, released when the request never sends it. */
  source: unknown;
}

/**
 * Releases a request body that will not be sent (or no longer): destroys a Node stream, cancels an unlocked web
 * stream, returns an iterator, so a file stream nobody reads does not keep its descriptor open. Never throws.
 */
function release(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const b = body as {
    destroy?: unknown;
    destroyed?: unknown;
    cancel?: unknown;
    getReader?: unknown;
    locked?: unknown;
    next?: unknown;
    return?: unknown;
  };
  try {
    let pending: unknown;
    if (typeof b.destroy === 'function') {
      if (b.destroyed !== true) b.destroy();
    } else if (typeof b.cancel === 'function' && typeof b.getReader === 'function') {
      if (b.locked !== true) pending = b.cancel();
    } else if (typeof b.return === 'function' && typeof b.next === 'function') {
      pending = b.return();
    }
    if (typeof (pending as PromiseLike<unknown> | undefined)?.then === 'function') {
      (pending as PromiseLike<unknown>).then(undefined, () => {});
    }
  } catch {
    // A body that fails to release has nothing more we can do for it.
  }
}

interface Config {
  readonly policyOf: (origin: string | URL | undefined) => Policy;
  readonly methods: ReadonlySet<string>;
  readonly generateIdempotencyKeys: boolean;
  readonly honorIdempotencyKey: boolean;
  readonly failureStatuses: ReadonlySet<number>;
  readonly failureCodes: ReadonlySet<string>;
  readonly wallClock: () => number;
  /** The calls the policy has not decided yet, tracked only for a closer (createFetch's `close()`). */
  readonly live: Set<HttpCall> | undefined;
}

/**
 * What an attempt's promise resolves with: {@link SUCCEEDED} (the call's lone attempt), the attempt itself (one of
 * several), or an error that is not a failure.
 */
type AttemptResult = typeof SUCCEEDED | Attempt | Passed;

/** @internal Closes what an interceptor made by {@link createInterceptor} still waits on. */
export interface InterceptorCloser {
  /**
   * A call waiting to retry, or queued, rejects at once with `waiting`; an attempt in flight finishes and its
   * outcome is final (no further attempt); from now on every request is refused at once with `later`, unsent (a
   * request given its own dispatcher too: it is never sent without the policy).
   */
  close(waiting: Error, later: Error): void;
}

/** Errors undici's dispatcher raises, synchronously, when it is closed or destroyed: no attempt on it can succeed. */
const CLOSED_CODES: ReadonlySet<string> = new Set(['UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);

/**
 * undici 7's legacy handler API (`onConnect`, `onHeaders`, ...), the one its own `request()`, `stream()` and `fetch()`
 * speak. Why it matters: on undici 7, a handler of the newer API (`onRequestStart`, ...) is converted on every
 * request, both ways: a WrapHandler around the caller's handler turns the headers object back into buffers, an
 * UnwrapHandler around the dispatched one parses them into an object, and the trailers likewise. That costs about
 * as much CPU per request as everything else the interceptor does. When the caller's handler is undici 7's
 * WrapHandler, the interceptor speaks the legacy API on both sides, and nothing is converted.
 */
interface LegacyHandler {
  onConnect(abort: (reason?: Error) => void, context?: object): void;
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean | undefined;
  onData(chunk: Buffer): boolean | undefined;
  onComplete(rawTrailers: Buffer[] | null): void;
  onError(error: Error): void;
}

/**
 * Whether `handler` is undici 7's WrapHandler (compose wraps every legacy handler in one; undici 8 has none): it
 * answers both APIs, and the dispatcher that composed it accepts legacy handlers.
 */
function isLegacyWrap(handler: Dispatcher.DispatchHandler): boolean {
  const h = handler as Partial<LegacyHandler> & { constructor?: unknown };
  const ctor = h.constructor;
  // The answer for the last constructor seen: one comparison per request instead of reading a function's name.
  if (ctor === lastCtor && ctor !== undefined) return lastLegacy;
  // An object literal (undici 8's fetch handler, a caller's own) is never a WrapHandler: no `name` read (a getter).
  if (ctor === Object) return false;
  const legacy =
    typeof ctor === 'function' &&
    ctor.name === 'WrapHandler' &&
    typeof h.onHeaders === 'function' &&
    typeof h.onData === 'function' &&
    typeof h.onComplete === 'function' &&
    typeof h.onError === 'function' &&
    typeof h.onConnect === 'function';
  // Only classes are remembered: their instances share the methods checked above, on the prototype.
  if (typeof ctor === 'function' && ctor !== Object) {
    lastCtor = ctor;
    lastLegacy = legacy;
  }
  return legacy;
}

let lastCtor: unknown;
let lastLegacy = false;

/** Reports a failure to `to` in a microtask: an attempt never reports from within the call that began it. */
function reportLater(to: Reporter, error: unknown): void {
  queueMicrotask(() => to._report(false, error));
}

/** Raw headers (name, value pairs of buffers) as an object, as undici's own `parseHeaders` makes it. */
function parseRawHeaders(raw: readonly unknown[] | null | undefined): IncomingHttpHeaders {
  const obj: Record<string, string | string[]> = {};
  if (raw == null) return obj;
  const text = (v: unknown): string | string[] =>
    typeof v === 'string' ? v : Array.isArray(v) ? v.map((x) => String(x)) : (v as Buffer).toString('latin1');
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = text(raw[i]).toString().toLowerCase();
    const value = text(raw[i + 1]);
    if (Object.hasOwn(obj, key)) {
      const prev = obj[key] as string | string[];
      obj[key] = (Array.isArray(prev) ? prev : [prev]).concat(value);
    } else if (key === '__proto__') {
      Object.defineProperty(obj, key, { value, enumerable: true, configurable: true, writable: true });
    } else obj[key] = value;
  }
  return obj;
}

/** Bytes of a discarded body drained before the socket is dropped instead. */
const DISCARD_LIMIT = 1 << 20;
/** Bytes of an undecided response kept in memory before its socket is paused. */
const HOLD_LIMIT = 1 << 20;

const WAITING = 0;
const HELD = 1;
const FORWARD = 2;
const DISCARD = 3;

/**
 * One attempt: one dispatch, its response held until the policy decides, then forwarded or discarded. The logic
 * lives here; the two subclasses speak undici's two handler APIs to the dispatcher and to the caller's handler.
 * A success resolves with {@link SUCCEEDED} when the attempt is its call's only one, else with the attempt itself.
 */
abstract class Attempt implements AbortListener {
  /** The dispatcher's controller (newer API only). */
  controller: Dispatcher.DispatchController | undefined = undefined;
  /** The body this attempt sends. */
  body: unknown = undefined;
  /** True until its response headers or its error arrived: the attempt is on the wire. */
  inFlight = true;
  status = 0;
  statusMessage: string | undefined = undefined;
  /** Its response is one the policy counts as a success (the attempt resolved with {@link SUCCEEDED} or itself). */
  succeeded = false;
  /** A foreign policy aborted its signal: the policy is done with it, as with an aborted context. */
  abandoned = false;
  #mode = WAITING;
  /** Chunks of a held response; allocated at the first chunk. */
  #chunks: Buffer[] | undefined = undefined;
  #ended = false;
  /** The response's trailers, as the API in use has them (an object, or raw buffers). */
  protected trailers: unknown = undefined;
  #error: Error | undefined = undefined;
  #discarded = 0;
  #held = 0;
  #pausedByUs = false;
  #abortReason: Error | undefined = undefined;
  /** Whether the dispatcher started it (it can be aborted through the dispatcher now). */
  protected started = false;
  readonly call: HttpCall;
  readonly #ctx: ExecutionContext;
  #subscribed: boolean;
  /** Where the outcome goes (the fused call, or a promise); cleared once reported, so it is reported once. */
  #to: Reporter | undefined;

  constructor(call: HttpCall, ctx: ExecutionContext, to: Reporter) {
    this.call = call;
    this.#ctx = ctx;
    this.#to = to;
    // A per-attempt timeout aborts this attempt only; a caller abort aborts it too. Why not ctx.signal: an
    // AbortSignal listener per request is a measurable cost here, a scope listener is a Set entry.
    this.#subscribed = ctx._subscribe(this);
  }

  /**
   * Reports the attempt's outcome once: an {@link AttemptResult}, or a failure. Why synchronously (from the
   * dispatcher's callbacks): no promise per attempt. Not while the attempt is being dispatched (undici reports a
   * refusal from within `dispatch`): the caller of `_begin` must never see its outcome before `_begin` returns.
   */
  #report(ok: boolean, value: unknown): void {
    const to = this.#to;
    if (to === undefined) return;
    this.#to = undefined;
    if (this.call.dispatching) queueMicrotask(() => to._report(ok, value));
    else to._report(ok, value);
  }

  /**
   * Whether the policy still waits for this attempt's outcome: not reported yet, and neither aborted (a timeout, a
   * hedge's loser, the caller) nor abandoned. A new attempt started meanwhile runs beside it.
   */
  get pending(): boolean {
    return this.#to !== undefined && !this.abandoned && !this.#ctx._aborted;
  }

  /** Whether the policy can no longer choose this attempt: discarded, aborted or abandoned. */
  get dead(): boolean {
    return this.#mode === DISCARD || this.abandoned || this.#ctx._aborted;
  }

  /** Whether its response was dropped (it can no longer be delivered). */
  get discarded(): boolean {
    return this.#mode === DISCARD;
  }

  /** Aborts the request on the wire (the dispatcher's controller, or the legacy abort function). */
  protected abstract wireAbort(reason: Error): void;
  /** Stops reading the response's socket. */
  abstract wirePause(): void;
  /** Resumes reading it. */
  abstract wireResume(): void;
  /** The response headers as an object (HttpStatusError, Retry-After). */
  protected abstract headersObject(): IncomingHttpHeaders;
  /** Hands the response start to the caller's handler. */
  protected abstract deliverStart(): void;
  /** Hands a chunk to the caller's handler. */
  protected abstract deliverData(chunk: Buffer): void;

  _onAbort(reason: unknown): void {
    this.#subscribed = false;
    this.abort(reason as Error);
  }

  abort(reason: Error): void {
    if (this.started) this.wireAbort(reason);
    else this.#abortReason = reason;
  }

  #unsubscribe(): void {
    if (this.#subscribed) {
      this.#subscribed = false;
      this.#ctx._unsubscribe(this);
    }
  }

  /** The dispatcher started the request: an abort that came first is applied now. */
  protected onStarted(): void {
    this.started = true;
    if (this.#abortReason !== undefined) this.wireAbort(this.#abortReason);
  }

  /** The response started (headers stored by the subclass): classify it and hold it while the policy decides. */
  protected onStatus(status: number, statusMessage: string | undefined): void {
    this.inFlight = false;
    this.status = status;
    this.statusMessage = statusMessage;
    this.#mode = HELD;
    const cfg = this.call.cfg;
    if (!cfg.failureStatuses.has(status)) {
      this.succeeded = true;
      // Final already when no policy of the chain can judge a success: streamed from here, not held and replayed.
      // Delivered before it is reported: the report may settle the call at once, and a delivered call stays so.
      const call = this.call;
      if (call.direct && !this.#ctx._aborted) call.deliverNow(this);
      // Which attempt succeeded: implied for a call's lone attempt, the attempt itself when others may run.
      this.#report(true, call.hedged || call.others !== undefined ? this : SUCCEEDED);
      return;
    }
    // The body is kept in memory while the policy decides (error bodies are small), so the connection goes back
    // to the pool when it ends even if a retry waits out a long backoff; past HOLD_LIMIT the socket is paused.
    // The limit on a Retry-After is the retry's own `maxRetryAfterMs` (one source of truth): a longer hint makes it
    // give up at once, and the caller gets this response. Infinity (a value too large to represent) means "do not
    // retry now" to any policy, one that only reads `retryable` included.
    const headers = this.headersObject();
    const retryAfter = parseRetryAfter(headers['retry-after'], cfg.wallClock());
    const stop = retryAfter === Number.POSITIVE_INFINITY;
    this.#report(false, new HttpStatusError(status, headers, retryAfter, this.call.retryable && !stop, this));
  }

  protected onChunk(chunk: Buffer): void {
    const mode = this.#mode;
    if (mode === FORWARD) this.deliverData(chunk);
    else if (mode === DISCARD) {
      this.#discarded += chunk.length;
      // Draining keeps the connection for reuse; past a limit it is cheaper to drop the socket.
      if (this.#discarded > DISCARD_LIMIT) this.wireAbort(new Error('bulwark: discarded response body'));
    } else {
      (this.#chunks ??= []).push(chunk);
      this.#held += chunk.length;
      if (this.#held > HOLD_LIMIT && !this.#pausedByUs) {
        this.#pausedByUs = true;
        this.wirePause();
      }
    }
  }

  /** The response ended (trailers stored by the subclass). */
  protected onEnd(): void {
    this.#unsubscribe();
    if (this.#mode === FORWARD) this.call.finishWith(this, undefined);
    else this.#ended = true;
  }

  protected onFailed(error: Error): void {
    this.#unsubscribe();
    const mode = this.#mode;
    if (mode === WAITING) {
      this.inFlight = false;
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && this.call.cfg.failureCodes.has(code)) {
        // A dispatcher that refused the attempt at once because it is closed would refuse every retry too.
        const closed = this.call.dispatching && CLOSED_CODES.has(code);
        if (!this.call.retryable || closed) {
          Object.defineProperty(error, 'retryable', { value: false, configurable: true });
        }
        this.#report(false, error);
      } else if (this.#ctx._aborted && error === this.#ctx._reason) {
        this.#report(false, error); // our own abort (a timeout, the caller): the policy knows what it means
      } else {
        this.#report(true, new Passed(undefined, error)); // not a failure: delivered as it is, never retried
      }
    } else if (mode === FORWARD) {
      this.call.finishWith(undefined, error);
    } else if (mode === HELD) {
      this.#error = error;
    } else if (this.call.hedged) {
      // Discarded before its outcome came (a hedge's loser): the outcome still goes to the policy, which reports it
      // as a late outcome and frees what the attempt held (a budget's place).
      this.#report(false, error);
    }
  }

  /** Reports a failure (the dispatcher threw instead of reporting). */
  fail(error: unknown): void {
    this.#report(false, error);
  }

  /** Ends the call with this response's end: the caller's terminal callback. */
  abstract deliverTerminal(): void;

  /** Streams this response to the caller: what arrived while held, then the rest as it comes. */
  deliver(): void {
    const call = this.call;
    this.#mode = FORWARD;
    this.deliverStart();
    const chunks = this.#chunks;
    if (chunks !== undefined) {
      this.#chunks = undefined;
      for (const chunk of chunks) this.deliverData(chunk);
    }
    if (this.#error !== undefined) call.finishWith(undefined, this.#error);
    else if (this.#ended) call.finishWith(this, undefined);
    else if (this.#pausedByUs && !call.paused) {
      this.#pausedByUs = false;
      this.wireResume();
    }
  }

  /** Drops this response: drains its body (or drops the socket past 1 MiB) so no connection leaks. */
  discard(): void {
    const mode = this.#mode;
    if (mode === FORWARD || mode === DISCARD) return;
    this.#mode = DISCARD;
    this.#chunks = undefined;
    if (mode === WAITING) this.abort(new Error('bulwark: attempt abandoned'));
    else if (!this.#ended && this.#error === undefined && this.#pausedByUs) {
      this.#pausedByUs = false;
      this.wireResume();
    }
  }
}

/** An attempt dispatched with undici's handler API (`onRequestStart`, ...): undici 8, or a newer-API caller. */
class ModernAttempt extends Attempt implements Dispatcher.DispatchHandler {
  headers: IncomingHttpHeaders | undefined = undefined;

  protected wireAbort(reason: Error): void {
    this.controller?.abort(reason);
  }
  wirePause(): void {
    this.controller?.pause();
  }
  wireResume(): void {
    this.controller?.resume();
  }
  protected headersObject(): IncomingHttpHeaders {
    return (this.headers ??= {});
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.onStarted();
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (status < 200) return; // 1xx: informational, not the response
    this.headers = headers;
    this.onStatus(status, statusMessage);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.onChunk(chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.trailers = trailers;
    this.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.onFailed(error);
  }

  protected deliverStart(): void {
    const call = this.call;
    call.handler.onResponseStart?.(call, this.status, this.headersObject(), this.statusMessage);
  }
  protected deliverData(chunk: Buffer): void {
    const call = this.call;
    call.handler.onResponseData?.(call, chunk);
  }
  deliverTerminal(): void {
    const call = this.call;
    call.handler.onResponseEnd?.(call, (this.trailers as IncomingHttpHeaders | undefined) ?? {});
  }
}

/**
 * An attempt dispatched with undici 7's legacy API, for a caller whose handler is undici 7's WrapHandler: headers
 * and trailers stay the raw buffers undici read, handed to the caller's legacy callbacks as they are.
 */
class LegacyAttempt extends Attempt {
  #abort: ((reason?: Error) => void) | undefined = undefined;
  #resume: (() => void) | undefined = undefined;
  #paused = false;
  #aborted = false;
  rawHeaders: Buffer[] | undefined = undefined;
  #headers: IncomingHttpHeaders | undefined = undefined;

  protected wireAbort(reason: Error): void {
    if (this.#aborted || this.#abort === undefined) return;
    this.#aborted = true;
    this.#abort(reason);
  }
  wirePause(): void {
    this.#paused = true;
  }
  wireResume(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#resume?.();
    }
  }
  protected headersObject(): IncomingHttpHeaders {
    return (this.#headers ??= parseRawHeaders(this.rawHeaders));
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    this.onStarted();
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText?: string): boolean {
    if (status < 200) return true; // 1xx: informational, not the response
    this.#resume = resume;
    this.rawHeaders = rawHeaders;
    this.onStatus(status, statusText);
    return !this.#paused;
  }

  onData(chunk: Buffer): boolean {
    this.onChunk(chunk);
    return !this.#paused;
  }

  onComplete(rawTrailers: Buffer[] | null): void {
    this.trailers = rawTrailers;
    this.onEnd();
  }

  onError(error: Error): void {
    this.onFailed(error);
  }

  protected deliverStart(): void {
    const call = this.call;
    const handler = call.handler as unknown as LegacyHandler;
    const status = this.status;
    if (handler.onHeaders(status, this.rawHeaders ?? [], call.resumer(), this.statusMessage ?? '') === false) {
      call.pause();
    }
  }
  protected deliverData(chunk: Buffer): void {
    const call = this.call;
    if ((call.handler as unknown as LegacyHandler).onData(chunk) === false) call.pause();
  }
  deliverTerminal(): void {
    (this.call.handler as unknown as LegacyHandler).onComplete((this.trailers as Buffer[] | null | undefined) ?? []);
  }
}

/**
 * One request through the policy: its attempts, the caller's handler and the stable controller. It is also the
 * call's root cancel scope: the caller's abort reaches retry backoffs, bulkhead queues and timeouts through it,
 * with no AbortController unless an operation reads `ctx.signal`.
 */
class HttpCall extends CancelScope implements Dispatcher.DispatchController, ReportingCaller {
  #paused = false;
  /** Whether a success is delivered from the parser's callbacks (see {@link deliversDirectly}). */
  readonly direct: boolean;
  delivered: Attempt | undefined;
  /** The latest attempt. */
  #current: Attempt | undefined;
  /**
   * The earlier attempts the policy may still choose, beside `#current`: made only when an attempt starts while
   * another one runs (a hedge), or, in a hedged call, while an earlier failure may still be the final outcome.
   */
  others: Attempt[] | undefined = undefined;
  /**
   * Whether the policy holds a hedge: its attempts resolve with themselves, and an attempt's failure is kept when
   * the next one starts (a hedge answers with its primary's failure when every attempt failed).
   */
  readonly hedged: boolean;
  #done = false;
  readonly retryable: boolean;
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #replay: ReplayableBody | undefined;
  readonly #bodyFactory: BulwarkRequestOptions['body'];
  /** fetch's `init.body` (what `opts.body` streams), released if never sent. */
  readonly #source: unknown;
  /** Every body handed to an attempt, released at the end unless it is the delivered attempt's. */
  #sent: unknown[] | undefined;
  #released = false;
  /** True while an attempt is being handed to the dispatcher (an error now is the dispatcher refusing it). */
  dispatching = false;
  /** Where the call's properties live: bulwark's root context, or the context a foreign policy passed. */
  #propsOf: { readonly properties: Context['properties'] } | undefined;

  readonly cfg: Config;
  readonly dispatch: Dispatcher['dispatch'];
  readonly handler: Dispatcher.DispatchHandler;
  /** The caller's handler is undici 7's WrapHandler: attempts speak undici 7's legacy API (see LegacyHandler). */
  readonly #legacy: boolean;
  /** The resume function handed to a legacy caller's onHeaders, made once. */
  #resumer: (() => void) | undefined = undefined;

  constructor(
    cfg: Config,
    dispatch: Dispatcher['dispatch'],
    opts: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
    request: BulwarkRequestOptions | undefined,
    fetchBody: ReplayableBody | undefined,
    fetchSource: unknown,
    method: string,
    traits: number,
  ) {
    super();
    this.#source = fetchSource;
    this.cfg = cfg;
    this.dispatch = dispatch;
    this.handler = handler;
    this.#legacy = isLegacyWrap(handler);
    this.direct = (traits & DIRECT) !== 0;
    this.hedged = (traits & HEDGED) !== 0;
    let headers = opts.headers as Parameters<typeof getHeader>[0];
    const key: unknown = getHeader(headers, IDEMPOTENCY_KEY); // a caller's object headers may hold null
    const hasKey = key != null;
    // Only a key with a value makes a request retryable: an empty (or blank, or null) header deduplicates nothing.
    let keyed = hasKey && cfg.honorIdempotencyKey && String(key).trim() !== '';
    if (!hasKey && cfg.generateIdempotencyKeys && (method === 'POST' || method === 'PATCH')) {
      headers = withHeader(headers, IDEMPOTENCY_KEY, randomUUID());
      keyed = true; // generateIdempotencyKeys requires honorIdempotencyKey
    }
    this.#bodyFactory = request?.body;
    const body = opts.body;
    this.#replay =
      fetchBody ??
      (typeof body === 'string' || body instanceof Uint8Array || body == null ? (body ?? undefined) : undefined);
    const replayable = this.#bodyFactory !== undefined || body == null || this.#replay !== undefined;
    this.retryable = replayable && (cfg.methods.has(method) || keyed || request?.retryNonIdempotent === true);
    this.#opts =
      headers == null ? opts : { ...opts, headers: headers as NonNullable<Dispatcher.DispatchOptions['headers']> };
  }

  // The controller handed to the caller's handler is the call itself: stable across attempts, forwarding to the
  // delivered attempt. Why not an object of its own: one allocation less per request. Its `aborted` and `reason` are
  // the root scope's: the caller's abort, or close() cancelling a call that waits.

  /** The abort reason, null while not aborted (the controller's contract). */
  override get reason(): Error | null {
    return this.aborted ? (super.reason as Error) : null;
  }
  get paused(): boolean {
    return this.#paused;
  }
  /**
   * The delivered response's raw headers, as undici's own controller has them. undici 8 reads them here (fetch,
   * `request({ responseHeaders: 'raw' })`, pipeline, upgrade): without them fetch saw a response with no headers.
   */
  get rawHeaders(): NonNullable<Dispatcher.DispatchController['rawHeaders']> | null {
    return this.delivered?.controller?.rawHeaders ?? null;
  }
  /** The delivered response's raw trailers, once it ended. */
  get rawTrailers(): NonNullable<Dispatcher.DispatchController['rawTrailers']> | null {
    return this.delivered?.controller?.rawTrailers ?? null;
  }
  /** Cancels everything of this call (the caller aborted, or close()): once. */
  override abort(reason: Error): void {
    if (this.aborted) return;
    super.abort(reason);
    this.delivered?.abort(reason);
  }
  pause(): void {
    this.#paused = true;
    this.delivered?.wirePause();
  }
  resume(): void {
    this.#paused = false;
    this.delivered?.wireResume();
  }

  start(policy: Policy, operation: string): void {
    // The caller's handler gets the stable controller now, so its abort reaches a backoff or a queued call too.
    this.handler.onRequestStart?.(this, {});
    if (this.aborted) {
      this.#releaseUnsent();
      this.finishWith(undefined, this.reason as Error);
      return;
    }
    this.cfg.live?.add(this);
    if (policy instanceof PolicyBase) {
      const root = new ExecutionContext(undefined, operation, undefined, 1, this, undefined);
      this.#propsOf = root;
      // Reported to `_report`: through a fused pipeline, with no promise per call or per attempt.
      policy._executeReporting(root, HttpCall.#op, this);
      return;
    }
    // A policy from elsewhere only has the public API: give it a signal.
    const ac = new AbortController();
    this.addListener({ _onAbort: (reason) => ac.abort(reason) });
    const result: Promise<AttemptResult> = policy.execute((ctx: Context) => this.#attempt(ctx), {
      signal: ac.signal,
      operation,
    });
    result.then(
      (value) => this.#settle(value),
      (error: unknown) => this.#settle(error, true),
    );
  }

  /** Ends the call at once with `reason`, unsent (its body released): the interceptor was closed. */
  refuse(reason: Error): void {
    this.handler.onRequestStart?.(this, {});
    this.#releaseUnsent();
    this.finishWith(undefined, this.reason ?? reason);
  }

  /**
   * The dispatcher is closing: an attempt in flight finishes and its outcome is final (retry gives up after it);
   * a call with none in flight (waiting out a backoff or a Retry-After, queued in a bulkhead) rejects at once with
   * `reason`, clearing its timer.
   */
  close(reason: Error): void {
    if (this.#done || this.delivered !== undefined) return;
    this.#propsOf?.properties.set(RETRYABLE, false);
    if (this.#current?.inFlight !== true && this.others?.some((a) => a.inFlight) !== true) this.abort(reason);
  }

  /** A root scope has no parent to hear from. */
  _onAbort(): void {}

  /** A root scope is never queued on a deadline. */
  _expire(): void {}

  #bodyFor(attempt: number): NonNullable<Dispatcher.DispatchOptions['body']> | null {
    if (this.#bodyFactory !== undefined) return this.#bodyFactory(attempt) ?? null;
    if (this.#replay !== undefined) return this.#replay;
    return this.#opts.body ?? null;
  }

  /**
   * One attempt. `given` is bulwark's own context, or (under a policy written outside bulwark) the public one: the
   * attempt then runs on an internal view of this call, and an abort of `given.signal` aborts it.
   */
  #attempt(given: Context): Promise<AttemptResult> {
    // A closure executor: cheaper per call than a shared parked executor (measured with callgrind).
    return new Promise<AttemptResult>((resolve, reject) =>
      this.#launch(given, new PromiseReporter(resolve as (value: unknown) => void, reject)),
    );
  }

  /**
   * The operation bulwark's own policies run, for every call: it finds its call from the context (the root
   * context's scope is the call), so a call allocates no closure for it.
   */
  static readonly #op = (ctx: Context): Promise<AttemptResult> =>
    ((ctx as ExecutionContext)._root._scope as HttpCall).#attempt(ctx);

  /** @internal The policy's outcome (see {@link ReportingCaller}). */
  _report(ok: boolean, value: unknown): void {
    this.#settle(value, !ok);
  }

  /** @internal One attempt for a fused pipeline, reporting to it (see {@link ReportingCaller}). */
  _begin(ctx: ExecutionContext, to: Reporter): void {
    this.#launch(ctx, to);
  }

  /**
   * Sends one attempt, its outcome reported to `to` once, never before this returns. The attempt before it is
   * discarded when the policy is done with it (a retry: it reported, or a timeout abandoned it), as it always was;
   * it is kept, its response held, when it still runs (a hedge started beside it) or, in a hedged call, when its
   * failure may still be the call's outcome. The policy's decision then delivers one and discards the others.
   */
  #launch(given: Context, to: Reporter): void {
    const previous = this.#current;
    const beside = previous !== undefined && this.#keeps(previous);
    if (previous !== undefined && !beside) previous.discard();
    let ctx: ExecutionContext;
    let attempt: Attempt | undefined;
    if (given instanceof ExecutionContext) ctx = given;
    else {
      ctx = new ExecutionContext(undefined, given.operation, undefined, given.attempt, this, undefined);
      const signal = given.signal;
      if (signal.aborted) {
        reportLater(to, signal.reason);
        return;
      }
      // This attempt's signal: it aborts this attempt (not a later one started meanwhile).
      signal.addEventListener(
        'abort',
        () => {
          if (attempt === undefined) return;
          attempt.abandoned = true;
          attempt.abort(signal.reason as Error);
        },
        { once: true },
      );
      this.#propsOf = given;
    }
    if (ctx._aborted) {
      reportLater(to, ctx._reason);
      return;
    }
    // A request that must not be sent twice never has two attempts at once: the hedge policy starts none once an
    // attempt is sent (RETRYABLE, below), and one started before that (the first still queued in a bulkhead) is
    // refused here, unsent.
    if (beside && !this.retryable) {
      reportLater(to, notTwice());
      return;
    }
    // A request that must not be sent twice: once an attempt is sent, whatever fails (a timeout too) is final.
    // Set on the attempt that sends, not on attempt 1: an attempt turned away before sending (an open breaker,
    // a full bulkhead) sent nothing.
    if (!this.retryable) given.properties.set(RETRYABLE, false);
    // The body first: a factory that throws rejects this attempt before it exists (no attempt left "in flight").
    let body: NonNullable<Dispatcher.DispatchOptions['body']> | null;
    try {
      body = this.#bodyFor(ctx.attempt);
    } catch (error) {
      reportLater(to, error);
      return;
    }
    attempt = this.#legacy ? new LegacyAttempt(this, ctx, to) : new ModernAttempt(this, ctx, to);
    if (beside) (this.others ??= []).push(previous as Attempt);
    if (this.others !== undefined) this.#prune();
    this.#current = attempt;
    attempt.body = body;
    // Only what could need releasing is kept (not a Buffer: the common replayed body costs nothing here).
    if (typeof body === 'object' && body !== null && !(body instanceof Uint8Array)) (this.#sent ??= []).push(body);
    // The abandoned attempt's body (a factory's stream) will never be read again: release it now, not at the end.
    if (previous !== undefined && !beside && previous.body !== body) release(previous.body);
    // The options are copied only when the body differs: most attempts send the caller's options as they are. Why
    // `??`: no body is null here and undefined (or absent) in the options; a copy for that cost a spread per request,
    // and undici reads a spread copy's properties several times slower than the caller's own object.
    const own = this.#opts.body;
    this.dispatching = true;
    try {
      this.dispatch(
        body === own || (body === null && own == null) ? this.#opts : { ...this.#opts, body },
        attempt as unknown as Dispatcher.DispatchHandler,
      );
    } catch (error) {
      attempt.inFlight = false; // thrown, not reported: this attempt is not on the wire (the promise rejects)
      attempt.fail(error);
    } finally {
      this.dispatching = false;
    }
  }

  /**
   * Whether an earlier attempt is kept when a new one starts: the policy still waits for it (it runs beside the new
   * one), or, in a hedged call, it may still be the outcome (a failure the hedge answers with when all fail).
   */
  #keeps(attempt: Attempt): boolean {
    return attempt.pending || (this.hedged && !attempt.dead);
  }

  /** Discards the kept earlier attempts the policy can no longer choose. */
  #prune(): void {
    const others = this.others as Attempt[];
    let n = 0;
    for (const a of others) {
      if (this.#keeps(a)) others[n++] = a;
      else a.discard();
    }
    others.length = n;
    if (n === 0) this.others = undefined;
  }

  /** Discards every kept earlier attempt but `winner`. */
  #dropOthers(winner: Attempt | undefined): void {
    const others = this.others as Attempt[];
    this.others = undefined;
    for (const a of others) if (a !== winner) a.discard();
  }

  #settle(outcome: unknown, failed = false): void {
    this.cfg.live?.delete(this);
    // Delivered already: a success streamed from the parser's callbacks (`direct`), final when it arrived.
    if (this.#done || this.delivered !== undefined) return;
    let value = outcome;
    if (failed && isRetryExhaustedError(value) && value.cause instanceof HttpStatusError) value = value.cause;
    const current = this.#current;
    // SUCCEEDED is the lone attempt's success: the current one (an attempt the policy resolves with after a new one
    // replaced it has no response left). An attempt that may have run beside others names itself; a failed response
    // names its attempt. Either is delivered unless it was discarded meanwhile.
    let attempt: Attempt | undefined;
    if (value === SUCCEEDED) attempt = current?.succeeded === true ? current : undefined;
    else if (value instanceof Attempt) attempt = value.succeeded && value.call === this ? value : undefined;
    else if (value instanceof HttpStatusError && value._attempt instanceof Attempt) attempt = value._attempt;
    if (attempt?.discarded === true) attempt = undefined;
    if (current !== attempt) current?.discard();
    if (this.others !== undefined) this.#dropOthers(attempt);
    if (attempt !== undefined) {
      this.deliverNow(attempt);
      return;
    }
    this.#releaseUnsent();
    let error = value instanceof Passed ? value.error : value;
    if (value === SUCCEEDED || value instanceof Attempt) {
      error = new TypeError(
        'bulwark/undici: the policy resolved with the success of an attempt it had already replaced by another one; its response was dropped.',
      );
    } else if (!failed && !(value instanceof Passed)) {
      error = new TypeError(
        "bulwark/undici: the policy resolved with a value that is not an HTTP response (a fallback inside the interceptor's policy?). Put fallbacks around your request call instead.",
      );
    }
    this.finishWith(undefined, error as Error);
  }

  /** Delivers `attempt`'s response: the policy's decision, or a success no policy of the chain can judge. */
  deliverNow(attempt: Attempt): void {
    this.delivered = attempt;
    this.#releaseUnsent();
    try {
      attempt.deliver();
    } catch (error) {
      // The caller's handler threw (a stream() factory, say): as undici itself does, the request fails with
      // that error instead of hanging, and the response is dropped.
      attempt.abort(error as Error);
      this.finishWith(undefined, error as Error);
    }
  }

  /**
   * Once the policy has decided: releases every body that is not being sent, that is all of them but the delivered
   * attempt's: the caller's own body when a factory or a replay replaced it, the bodies of abandoned attempts, and
   * the unsent body of a call the policy refused (open breaker, full bulkhead) or the caller aborted.
   */
  #releaseUnsent(): void {
    if (this.#released) return;
    this.#released = true;
    const kept = this.delivered?.body;
    const original = this.#opts.body;
    if (this.#sent !== undefined) for (const body of this.#sent) if (body !== kept) release(body);
    if (original !== kept) {
      release(original);
      release(this.#source);
    }
  }

  /**
   * Ends the call once: the terminal callback of the caller's handler, the end of `attempt`'s response or `error`.
   * Arguments rather than a closure: this runs once per request.
   */
  finishWith(attempt: Attempt | undefined, error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    try {
      if (attempt !== undefined) attempt.deliverTerminal();
      else this.handler.onResponseError?.(this, error as Error);
    } catch {
      // A handler that throws from its own terminal callback has nothing left to tell: never an unhandled error.
    }
  }

  /** The resume function a legacy caller's onHeaders receives (made once per call, on first use). */
  resumer(): () => void {
    if (this.#resumer === undefined) {
      this.#resumer = () => this.resume();
    }
    return this.#resumer;
  }
}
// Not kept (see shapes.ts): its constructor in fast mode all the same, as for every per-call subclass.
fastConstructor(HttpCall);

/**
 * An undici interceptor that runs every request under a bulwark policy: `agent.compose(interceptor({ policy }))`.
 * Each attempt is a fresh dispatch. Failed responses (408, 429, 5xx by default) and network errors are failures;
 * other statuses are successes for the policy (a 404 never opens a breaker). Only idempotent methods, or requests
 * with an `Idempotency-Key`, are retried or hedged (a `hedge` in the policy: the winner's response is delivered, the
 * other attempts aborted); a stream body is never sent twice. The caller gets the final response
 * streamed as it arrives, or bulwark's own error (an open circuit, a full bulkhead) when the policy refused it.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * import { Agent } from 'undici';
 * import { pipeline, retry, circuitBreaker, timeout } from 'bulwark';
 * import { interceptor } from 'bulwark/undici';
 *
 * const agent = new Agent().compose(
 *   interceptor({ policy: (origin) => pipeline(retry(), circuitBreaker(), timeout(2_000)) }),
 * );
 * const res = await agent.request({ origin: 'http://127.0.0.1:8080', path: '/quote', method: 'GET' });
 * ```
 */
export function interceptor(options: UndiciInterceptorOptions): Dispatcher.DispatcherComposeInterceptor {
  return createInterceptor(options, false).interceptor;
}

/**
 * @internal {@link interceptor}, and with `closable` a closer that settles the calls it still waits on (createFetch's
 * `close()`). Tracking costs a Set entry per call, so the public interceptor does without.
 */
export function createInterceptor(
  options: UndiciInterceptorOptions,
  closable: boolean,
  checked = false,
): { interceptor: Dispatcher.DispatcherComposeInterceptor; closer: InterceptorCloser } {
  if (!checked) {
    const check = new Checker('undici interceptor');
    checkInterceptorOptions(check, options, OPTION_NAMES);
    check.done();
  }
  for (const m of options.methods ?? []) if (!REGISTERED_METHODS.has(m.toUpperCase())) warnUnknownMethod(m);

  const cfg: Config = {
    policyOf: perOrigin(options.policy, options.maxOrigins ?? 256),
    methods: new Set((options.methods ?? IDEMPOTENT_METHODS).map((m) => m.toUpperCase())),
    generateIdempotencyKeys: options.generateIdempotencyKeys ?? false,
    honorIdempotencyKey: options.honorIdempotencyKey ?? true,
    failureStatuses: new Set(options.failureStatuses ?? FAILURE_STATUSES),
    failureCodes: new Set(options.failureCodes ?? FAILURE_CODES),
    wallClock: options.wallClock ?? wallClockNow,
    live: closable ? new Set() : undefined,
  };
  let refusal: Error | undefined;
  const closer: InterceptorCloser = {
    close(waiting, later) {
      refusal = later;
      if (cfg.live === undefined) return;
      const calls = [...cfg.live];
      cfg.live.clear();
      for (const call of calls) call.close(waiting);
    },
  };

  const make: Dispatcher.DispatcherComposeInterceptor = (dispatch) =>
    function bulwarkInterceptor(opts, handler) {
      const fromFetch = (opts as { [FETCH_EXTRA]?: FetchExtra })[FETCH_EXTRA];
      const request = opts.bulwark ?? fromFetch?.request;
      let rest = opts;
      if (opts.bulwark !== undefined) {
        const { bulwark: _omit, ...others } = opts;
        void _omit;
        rest = others;
      }
      // An upgrade or CONNECT hands the socket over: there is no response to classify or replay.
      const method = upperMethod(rest.method);
      const tunnel = rest.upgrade != null || method === 'CONNECT';
      let policy = request?.policy === false || tunnel ? undefined : (request?.policy ?? cfg.policyOf(opts.origin));
      if (request?.policy !== undefined && policy !== undefined) {
        // A request's own policy is checked here, per request: only requests that bring one pay for it.
        if (!isPolicyLike(policy)) {
          policy = notAPolicy(
            `undici interceptor: the request's bulwark.policy is ${describe(policy)}, not a policy (a bulwark policy, or false to send the request without one)`,
          );
        }
      }
      if (policy === undefined) return dispatch(rest, handler);
      const body = rest.body != null ? fromFetch?.body : undefined;
      const traits = policy === lastPolicy ? lastTraits : traitsOf(policy);
      const call = new HttpCall(cfg, dispatch, rest, handler, request, body, fromFetch?.source, method, traits);
      // Once closed, a request is refused at once, unsent: no policy, so no retry of a refusal and no timer.
      if (refusal !== undefined) call.refuse(refusal);
      else call.start(policy, request?.operation ?? method);
      return true;
    };
  return { interceptor: make, closer };
}

/** A call's trait: see {@link deliversDirectly}. */
const DIRECT = 1;
/** A call's trait: its policy holds a hedge (see HttpCall.hedged). */
const HEDGED = 2;

/**
 * What calls under `policy` are ({@link DIRECT}, {@link HEDGED}), remembered for the last policy seen (usually the
 * only one): one comparison per request. Not remembered for a policy holding a `keyed` member: it may make a hedge
 * for a key later, so it is looked at again on every request.
 */
function traitsOf(policy: Policy): number {
  const traits = (deliversDirectly(policy) ? DIRECT : 0) | (hedgeIn(policy) !== undefined ? HEDGED : 0);
  if (!(policy instanceof PolicyBase) || !policy._members().some((m) => m instanceof KeyedPolicy)) {
    lastPolicy = policy;
    lastTraits = traits;
  }
  return traits;
}

/**
 * Whether a success (a status that is not a failure) is final the moment its headers arrive under `policy`, so the
 * response can stream to the caller from the parser's callbacks instead of being held until the policy settles and
 * then replayed. True when no member can turn a success into anything else: a retry that classifies only errors, a
 * timeout, a bulkhead, a circuit breaker (it only records a success; a result classifier there sees bulwark's internal
 * value, not the response, see docs). Any other policy (a fallback, a hedge, a retry judging results, a policy from
 * elsewhere) may decide after seeing the result: its calls hold the response. A member may answer for itself with
 * `_judgesResults()`.
 */
function deliversDirectly(policy: Policy): boolean {
  let direct = policy instanceof PolicyBase;
  if (direct) {
    for (const m of (policy as PolicyBase)._members()) {
      const own = (m as { _judgesResults?: () => boolean })._judgesResults;
      if (typeof own === 'function') direct = !own.call(m);
      else if (m instanceof RetryPolicy) direct = m._fusable();
      else direct = m instanceof TimeoutPolicy || m instanceof BulkheadPolicy || m instanceof CircuitBreakerPolicy;
      if (!direct) break;
    }
  }
  return direct;
}

/** The traits of the last policy seen (usually the only one): one comparison per request. */
let lastPolicy: Policy | undefined;
let lastTraits = 0;

/**
 * The error an attempt started beside another one is refused with when its request must not be sent twice (see
 * HttpCall#launch). Not retryable: nothing retries it.
 */
function notTwice(): Error {
  const error = new Error(
    'bulwark/undici: attempt not sent: this request must not be sent twice (a method that is not idempotent without an Idempotency-Key, or a one-shot body), and another attempt of it is already sent',
  );
  Object.defineProperty(error, 'retryable', { value: false, configurable: true });
  return error;
}

/**
 * The method in upper case. Why not `toUpperCase()` alone: it showed in the profile per request, and nearly every
 * request's method is one of these, already upper case.
 */
function upperMethod(method: string): string {
  return method === 'GET' || method === 'POST' || method === 'PUT' || method === 'HEAD' || method === 'DELETE'
    ? method
    : method.toUpperCase();
}

/** What `policy` must be, for messages. */
const POLICY_EXPECTED = 'a bulwark policy or a function of the origin returning one (required)';

/** An HTTP method token (RFC 9110 section 9.1: a method is a token; section 5.6.2: tchar). */
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The methods of the IANA HTTP Method Registry (RFC 9110 and its extensions). Another valid token is accepted (a
 * custom method, such as PURGE) with a process warning once per name, so that a typo (`'GTE'`) is not silent.
 */
const REGISTERED_METHODS: ReadonlySet<string> = new Set([
  'ACL',
  'BASELINE-CONTROL',
  'BIND',
  'CHECKIN',
  'CHECKOUT',
  'CONNECT',
  'COPY',
  'DELETE',
  'GET',
  'HEAD',
  'LABEL',
  'LINK',
  'LOCK',
  'MERGE',
  'MKACTIVITY',
  'MKCALENDAR',
  'MKCOL',
  'MKREDIRECTREF',
  'MKWORKSPACE',
  'MOVE',
  'OPTIONS',
  'ORDERPATCH',
  'PATCH',
  'POST',
  'PRI',
  'PROPFIND',
  'PROPPATCH',
  'PUT',
  'QUERY',
  'REBIND',
  'REPORT',
  'SEARCH',
  'TRACE',
  'UNBIND',
  'UNCHECKOUT',
  'UNLINK',
  'UNLOCK',
  'UPDATE',
  'UPDATEREDIRECTREF',
  'VERSION-CONTROL',
]);

/** One owner per unregistered method name: each is reported once per process. */
const unknownMethodOwners = new Map<string, object>();

function warnUnknownMethod(method: string): void {
  const name = method.toUpperCase();
  let owner = unknownMethodOwners.get(name);
  if (owner === undefined) unknownMethodOwners.set(name, (owner = {}));
  warnOnce(
    owner,
    `bulwark/undici: methods includes '${method}', which is not a registered HTTP method (IANA HTTP Method Registry). Requests with this method will be retried without an Idempotency-Key. If it is a typo, fix it; if it is a custom method your server handles idempotently, ignore this warning.`,
    'BulwarkHttpWarning',
    'BULWARK_HTTP_UNKNOWN_METHOD',
  );
}

/**
 * @internal Checks the interceptor's options (createFetch passes its own checker, and its names, so that every
 * problem is reported together under its name). Returns whether `options` can be read (then every option in it is
 * valid once `check` has no problem).
 */
export function checkInterceptorOptions(
  check: Checker,
  options: unknown,
  allowed: readonly string[],
): options is UndiciInterceptorOptions {
  if (!checkNames(check, options, allowed)) {
    if (options === undefined) check.fail('policy', undefined, POLICY_EXPECTED);
    return false;
  }
  const o = options as Partial<Record<keyof UndiciInterceptorOptions, unknown>>;
  const p = o.policy;
  if (typeof p !== 'function' && !isPolicyLike(p)) check.fail('policy', p, POLICY_EXPECTED);
  check.number('maxOrigins', o.maxOrigins, { min: 1, integer: true });
  const methods = o.methods;
  if (methods !== undefined) {
    if (!Array.isArray(methods)) {
      check.fail('methods', methods, 'an array of HTTP method names (["GET", "PUT"])');
    } else {
      const expected = 'an HTTP method name: a token of letters, digits and !#$%&\'*+-.^_`|~ (RFC 9110), such as "GET"';
      for (let i = 0; i < methods.length; i++) {
        let m: unknown;
        try {
          m = methods[i];
        } catch (error) {
          check.problems.push({
            option: `methods[${i}]`,
            received: `a getter that threw ${JSON.stringify(describeMessage(error, 60))}`,
            expected,
          });
          continue;
        }
        if (typeof m !== 'string' || !METHOD_TOKEN.test(m)) check.fail(`methods[${i}]`, m, expected);
      }
    }
  }
  for (const name of ['generateIdempotencyKeys', 'honorIdempotencyKey'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'boolean') check.fail(name, o[name], 'a boolean');
  }
  if (o.generateIdempotencyKeys === true && o.honorIdempotencyKey === false) {
    check.fail(
      'honorIdempotencyKey',
      false,
      'true (or unset) with generateIdempotencyKeys: true: a generated key is only worth sending if it makes the request retryable',
    );
  }
  const statuses = o.failureStatuses;
  if (
    statuses !== undefined &&
    !passes(() => Array.isArray(statuses) && statuses.every((s) => Number.isInteger(s) && s >= 100 && s <= 599))
  ) {
    check.fail('failureStatuses', statuses, 'an array of HTTP statuses (100..599)');
  }
  const codes = o.failureCodes;
  if (codes !== undefined && !passes(() => Array.isArray(codes) && codes.every((c) => typeof c === 'string'))) {
    check.fail('failureCodes', codes, 'an array of error codes');
  }
  check.fn('wallClock', o.wallClock);
  return true;
}

/**
 * @internal Checks that `options` is an object of known names; a renamed or removed option is reported with what to
 * use instead (never silently ignored). Returns whether `options` is an object.
 */
export function checkNames(
  check: Checker,
  options: unknown,
  allowed: readonly string[] = OPTION_NAMES,
): options is Record<string, unknown> {
  let keys: string[] | undefined;
  if (typeof options === 'object' && options !== null) {
    try {
      keys = Object.keys(options);
    } catch {
      keys = undefined; // a proxy: check.object reports it
    }
  }
  if (keys === undefined) return check.object('', options, allowed);
  // Read like every option (own or inherited): a retired one is refused wherever it is.
  const record = options as Record<string, unknown>;
  let retired = false;
  for (const key of Object.keys(RETIRED_OPTIONS)) {
    let received: string | undefined;
    try {
      const value = record[key];
      if (value !== undefined) received = describe(value); // undefined, as for every option: not given
    } catch (error) {
      received = `a getter that threw ${JSON.stringify(describeMessage(error, 60))}`;
    }
    if (received !== undefined) {
      retired = true;
      check.problems.push({ option: key, received, expected: RETIRED_OPTIONS[key] as string });
    }
  }
  if (!retired && !keys.some((key) => Object.hasOwn(RETIRED_OPTIONS, key))) return check.object('', options, allowed);
  // The other options, checked as check.object does, through a view without the retired names: an own option
  // reads through to `options`, an inherited one through its prototype.
  let proto: object | null = null;
  try {
    proto = Object.getPrototypeOf(options) as object | null;
  } catch {
    proto = null;
  }
  const view = Object.create(proto) as Record<string, unknown>;
  for (const key of keys) {
    if (!Object.hasOwn(RETIRED_OPTIONS, key)) {
      Object.defineProperty(view, key, { get: () => record[key], enumerable: true });
    }
  }
  return check.object('', view, allowed);
}

/** The origin as a key: a URL and its string form give the same key (`URL.origin` has no trailing slash). */
function originOf(origin: string | URL | undefined): string {
  if (origin === undefined) return '';
  if (typeof origin !== 'string') return origin.origin;
  try {
    const o = new URL(origin).origin; // lowercased scheme and host, default port dropped, no trailing slash
    return o === 'null' ? origin : o; // not http(s) (a unix socket, say): keep the string as its own key
  } catch {
    return origin;
  }
}

/**
 * A stand-in for a policy that is not one: every request under it fails at once, unsent, with a `TypeError` saying
 * what was given (instead of `policy.execute is not a function` from deep inside).
 */
function notAPolicy(message: string): Policy {
  return refusing(() => new TypeError(message));
}

/** A policy whose every call rejects at once with a new error of `make`, delivered as it is (see OWN_ERRORS). */
function refusing(make: () => Error): Policy {
  return {
    name: 'undici interceptor',
    execute: () => {
      const error = make();
      OWN_ERRORS.add(error);
      return Promise.reject(error);
    },
  };
}

/** @internal Errors of bulwark's own making that createFetch delivers as they are, not as fetch's `cause`. */
export const OWN_ERRORS: WeakSet<object> = new WeakSet();

/**
 * One policy per origin, least recently used evicted past `max`. The origin is normalised (a URL parse) only for a
 * per-origin function, and only the first time a raw origin string is seen.
 */
function perOrigin(
  policy: UndiciInterceptorOptions['policy'],
  max: number,
): (origin: string | URL | undefined) => Policy {
  if (typeof policy !== 'function') return () => policy;
  const make = policy;
  const map = new Map<string, Policy>();
  const normalised = new Map<string, string>();
  return (raw) => {
    let origin: string;
    if (typeof raw === 'string') {
      let n = normalised.get(raw);
      if (n === undefined) {
        n = originOf(raw);
        if (normalised.size >= max * 4) normalised.clear(); // bounded: raw spellings are few in practice
        normalised.set(raw, n);
      }
      origin = n;
    } else origin = originOf(raw);
    let p = map.get(origin);
    if (p !== undefined) {
      map.delete(origin);
      map.set(origin, p);
      return p;
    }
    p = make(origin);
    // Not kept: the function is asked again on the next request to this origin.
    if (!isPolicyLike(p)) {
      return notAPolicy(
        `undici interceptor: the policy function returned ${describe(p)} for origin "${origin}", not a policy (a bulwark policy, such as pipeline(retry(), timeout(2_000)))`,
      );
    }
    map.set(origin, p);
    if (map.size > max) map.delete(map.keys().next().value as string);
    return p;
  };
}
