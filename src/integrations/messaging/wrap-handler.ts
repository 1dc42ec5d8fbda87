import { type Clock, systemClock, type TimerHandle } from '../../core/clock.js';
import { CancelScope, type Context, ExecutionContext } from '../../core/context.js';
import { DeadlineQueue } from '../../core/deadline-queue.js';
import type { Policy } from '../../core/policy.js';
import { Properties } from '../../core/properties.js';
import { type Random, systemRandom } from '../../core/random.js';
import { fastConstructor, keepShape } from '../../core/shapes.js';
import { type CircuitOpenError, isCircuitOpenError, TimeoutError } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { PolicyBase } from '../../policies/policy-base.js';
import { type Backoff, exponential, isBackoff } from '../../policies/retry/backoff.js';
import { isPolicyLike } from '../validate.js';
import type { Delivery } from './delivery.js';

const PERMANENT_BRAND = Symbol.for('bulwark.permanent-error');

/**
 * Throw it from a handler for a failure no retry can fix (a message that fails validation, say): the message
 * goes straight to the dead-letter destination.
 *
 * @example
 * ```ts
 * if (!order.id) throw new PermanentError('order without an id');
 * ```
 */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }

  /** `instanceof` across two copies of the package (ESM and CJS). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PERMANENT_BRAND] === true;
  }
}
Object.defineProperty(PermanentError.prototype, PERMANENT_BRAND, { value: true });

/** How a delivery ended. */
export type Settlement = 'acked' | 'retried' | 'dead_lettered' | 'released';

/** What a wrapped handler receives besides the message: the policy's context plus the delivery. */
export interface HandlerContext<M> extends Context {
  readonly delivery: Delivery<M>;
}

/** A message handler: resolves when the message is processed. */
export type MessageHandler<M> = (body: M, ctx: HandlerContext<M>) => void | Promise<void>;

/** Options of {@link wrapHandler}. */
export interface WrapHandlerOptions {
  /** The policy each delivery runs under (in-process retry, timeout, breaker, bulkhead). @defaultValue none */
  policy?: Policy;
  /** Deliveries before a failing message is dead-lettered (the first included). @defaultValue 5 */
  maxDeliveries?: number;
  /**
   * The broker-level delay before a failed message is delivered again, by delivery number: a backoff or a
   * function. A function that throws, or returns something other than a finite number, gets the default backoff for
   * that delivery; a negative delay counts as 0. @defaultValue `exponential({ initialMs: 1_000, maxMs: 60_000 })`
   * (full jitter)
   */
  redeliveryDelay?: Backoff | ((attempt: number, error: unknown) => number);
  /**
   * Failures that no retry fixes, besides `PermanentError` and `SyntaxError` (a parse error). A predicate that throws
   * counts as `false` (the message is retried, then dead-lettered after `maxDeliveries`).
   */
  isPermanent?: (error: unknown) => boolean;
  /** The longest a delivery may run, in ms: its `ctx.signal` aborts and it is retried later. @defaultValue none */
  handlerTimeoutMs?: number;
  /** Calls `delivery.working()` this often while the handler runs (ack-wait extension). @defaultValue none */
  workingEveryMs?: number;
  /**
   * The policy's breaker is open: the consumer should stop taking messages for `resumeAfterMs` instead of
   * failing them into the dead-letter queue. `onResume` is called when it may take messages again.
   */
  onPause?: (resumeAfterMs: number) => void;
  /** See `onPause`. */
  onResume?: () => void;
  /** @defaultValue `systemClock` */
  clock?: Clock;
  /** @defaultValue `Math.random` */
  random?: Random;
}

const OPTION_NAMES = [
  'policy',
  'maxDeliveries',
  'redeliveryDelay',
  'isPermanent',
  'handlerTimeoutMs',
  'workingEveryMs',
  'onPause',
  'onResume',
  'clock',
  'random',
] as const;

/**
 * A handler wrapped by {@link wrapHandler}: call it with each delivery; it settles the delivery exactly once and
 * resolves with how. It rejects only when the adapter's settle method itself fails (the broker then delivers the
 * message again).
 */
export interface WrappedHandler<M> {
  (delivery: Delivery<M>): Promise<Settlement>;
  /** Deliveries taken and not yet settled. */
  readonly inFlight: number;
  /** Whether the consumer should hold off (the breaker is open). */
  readonly paused: boolean;
  /**
   * Whether `shutdown()` was called: every later delivery is released at once. A consumer should stop its
   * subscription (the RabbitMQ adapter does so by itself), or the broker hands the released messages straight back.
   */
  readonly stopping: boolean;
  /**
   * Stops taking messages (later deliveries are released at once), waits up to `graceMs` for those in flight,
   * then aborts the `ctx.signal` of those still running (never of a handler that already finished) and releases
   * them to the broker unsettled. Resolves when every delivery is settled, that is when each adapter settle method
   * has resolved (the RabbitMQ adapter's resolve once the broker has processed the settlement). Final: a shut-down
   * handler never takes messages again (make a new one).
   * @param graceMs - @defaultValue 10_000
   * @example
   * ```ts
   * await consumer.cancel();
   * await handle.shutdown(10_000);
   * await connection.close();
   * ```
   */
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * Whether a failure is permanent: never retried, dead-lettered at once. Total: a thrown value that throws when
 * looked at (a Proxy, a revoked Proxy) and a predicate that throws count as "not permanent", so the message still
 * goes through its deliveries and reaches the dead letter after `maxDeliveries`.
 */
function permanent(error: unknown, extra: ((e: unknown) => boolean) | undefined): boolean {
  return (
    guarded(() => error instanceof PermanentError) ||
    guarded(() => error instanceof SyntaxError) ||
    (extra !== undefined && guarded(() => Boolean(extra(error))))
  );
}

/** The wait of an open breaker's `CircuitOpenError`, if `error` is one with a finite wait. Never throws. */
function openCircuitWait(error: unknown): number | undefined {
  try {
    if (!isCircuitOpenError(error)) return undefined;
    const ms = (error as CircuitOpenError).retryAfterMs;
    return typeof ms === 'number' && Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}

/** `test()`, or false when it throws. */
function guarded(test: () => boolean): boolean {
  try {
    return test();
  } catch {
    return false;
  }
}

/**
 * What the handler receives under a policy: the policy's context (its attempt, its signal), read through, plus the
 * delivery.
 */
class MessageContext<M> implements HandlerContext<M> {
  readonly #ctx: Context;
  readonly delivery: Delivery<M>;
  constructor(ctx: Context, delivery: Delivery<M>) {
    this.#ctx = ctx;
    this.delivery = delivery;
  }
  get signal(): AbortSignal {
    return this.#ctx.signal;
  }
  get attempt(): number {
    return this.#ctx.attempt;
  }
  get operation(): string {
    return this.#ctx.operation;
  }
  get properties(): HandlerContext<M>['properties'] {
    return this.#ctx.properties;
  }
}

/** How a failed delivery is settled: its settlement and the adapter call that makes it. */
type FailureSettlement = [Settlement, () => void | Promise<void>];

/**
 * What the handler receives when no policy is set: attempt 1, operation `'message'`, the delivery's signal. Why
 * not the run itself: it would hand the handler the run's internals (`abort()` among them).
 */
class DirectContext<M> implements HandlerContext<M> {
  readonly #run: MessageRun<M>;
  /** An own field, as in {@link MessageContext}: `{ ...ctx }` keeps it. */
  readonly delivery: Delivery<M>;
  constructor(run: MessageRun<M>) {
    this.#run = run;
    this.delivery = run.delivery;
  }
  get signal(): AbortSignal {
    return this.#run.signal;
  }
  get attempt(): number {
    return 1;
  }
  get operation(): string {
    return 'message';
  }
  get properties(): Properties {
    return this.#run.properties;
  }
}

/**
 * What every delivery of one wrapped handler shares, set up once by {@link wrapHandler}, and the deliveries in
 * flight. Why an intrusive list rather than a `Set`: adding and removing a delivery then allocate and hash nothing.
 */
class Consumer<M> {
  readonly handler: MessageHandler<M>;
  readonly clock: Clock;
  readonly timeoutMs: number;
  /**
   * The pending handler timeouts, with `handlerTimeoutMs`. Why a queue rather than a timer per delivery: every
   * delivery waits the same time, so one timer serves them all, and a delivery that settles unlinks itself without
   * clearing or re-arming a timer.
   */
  readonly timeouts: DeadlineQueue | undefined;
  readonly workingEveryMs: number | undefined;
  readonly onFailure: (d: Delivery<M>, error: unknown) => FailureSettlement;
  head: MessageRun<M> | undefined = undefined;
  size = 0;

  constructor(
    handler: MessageHandler<M>,
    clock: Clock,
    timeoutMs: number | undefined,
    workingEveryMs: number | undefined,
    onFailure: (d: Delivery<M>, error: unknown) => FailureSettlement,
  ) {
    this.handler = handler;
    this.clock = clock;
    this.timeoutMs = timeoutMs ?? Number.POSITIVE_INFINITY;
    this.timeouts = timeoutMs === undefined ? undefined : new DeadlineQueue(clock, timeoutMs);
    this.workingEveryMs = workingEveryMs;
    this.onFailure = onFailure;
  }

  add(run: MessageRun<M>): void {
    const head = this.head;
    run._nextRun = head;
    if (head !== undefined) head._prevRun = run;
    this.head = run;
    this.size++;
  }

  remove(run: MessageRun<M>): void {
    const prev = run._prevRun;
    const next = run._nextRun;
    if (prev !== undefined) prev._nextRun = next;
    else this.head = next;
    if (next !== undefined) next._prevRun = prev;
    run._prevRun = undefined;
    run._nextRun = undefined;
    this.size--;
  }

  /** The deliveries in flight now, oldest first. */
  pending(): MessageRun<M>[] {
    const out: MessageRun<M>[] = [];
    for (let r = this.head; r !== undefined; r = r._nextRun) out.push(r);
    return out.reverse();
  }
}

const unset = (): void => undefined;

/**
 * One delivery being handled: the root cancel scope of its execution (handler timeout, shutdown) and the owner of
 * its single settlement. Whatever happens first (the handler settles, the timeout fires, shutdown aborts) settles
 * the delivery; everything later is ignored.
 */
class MessageRun<M> extends CancelScope {
  readonly delivery: Delivery<M>;
  /** Resolves with the settlement once the adapter's settle method has resolved; rejects if that fails. */
  readonly result: Promise<Settlement>;
  readonly #consumer: Consumer<M>;
  // Not readonly: set by the promise's executor in the constructor.
  #resolve: (s: Settlement) => void = unset;
  #reject: (e: unknown) => void = unset;
  #done = false;
  #heartbeat: TimerHandle = undefined;
  #props: Properties | undefined = undefined;
  /** Links of the consumer's in-flight list. */
  _prevRun: MessageRun<M> | undefined = undefined;
  _nextRun: MessageRun<M> | undefined = undefined;

  constructor(delivery: Delivery<M>, consumer: Consumer<M>) {
    super();
    this.delivery = delivery;
    this.#consumer = consumer;
    // An executor closure: fewer instructions per message than a shared parked executor (counted with callgrind).
    this.result = new Promise<Settlement>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    consumer.timeouts?.add(this);
    if (consumer.workingEveryMs !== undefined && delivery.working !== undefined) this.#beat(consumer.workingEveryMs);
  }

  /** Arms the next heartbeat (`delivery.working()`), every `everyMs` until the delivery settles. */
  #beat(everyMs: number): void {
    const clock = this.#consumer.clock;
    const delivery = this.delivery;
    const beat = (): void => {
      // A heartbeat that fails (a closed connection) must not become an uncaught error: the broker's own
      // ack deadline then decides, and the settlement reports any real problem.
      try {
        Promise.resolve(delivery.working?.()).catch(() => undefined);
      } catch {
        // ignored, as above
      }
      this.#heartbeat = clock.setTimeout(beat, everyMs);
    };
    this.#heartbeat = clock.setTimeout(beat, everyMs);
  }

  /** The delivery's property bag (no policy: the policy's context holds it otherwise), created on first read. */
  get properties(): Properties {
    if (this.#props === undefined) this.#props = new Properties();
    return this.#props;
  }

  /** Settles the delivery when `work` (the handler, under the policy if any) settles. */
  follow(work: Promise<unknown>): void {
    work.then(
      () => this.finish(undefined, false),
      (error: unknown) => this.finish(error, true),
    );
  }

  /**
   * A timeout or shutdown: abort the handler's signal and settle now (release on shutdown, else a failure). A
   * delivery already settled (its handler finished) is left alone: its signal never aborts after the fact.
   */
  override abort(reason: unknown): void {
    if (this.aborted || this.#done) return;
    super.abort(reason);
    this.finish(reason, true);
  }

  finish(error: unknown, failed: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#consumer.timeouts?.remove(this);
    if (this.#heartbeat !== undefined) this.#consumer.clock.clearTimeout(this.#heartbeat);
    const delivery = this.delivery;
    let settlement: Settlement;
    let pending: unknown;
    // A settlement the broker refuses (a closed channel, a failed publish, a settle method that throws) rejects the
    // wrapped handler's promise with that error: the message is not lost, the broker delivers it again.
    try {
      if (!failed) {
        settlement = 'acked';
        pending = delivery.ack();
      } else if (guarded(() => error instanceof ShutdownError)) {
        settlement = 'released';
        pending = delivery.release();
      } else {
        const [how, settle] = this.#consumer.onFailure(delivery, error);
        settlement = how;
        pending = settle();
      }
    } catch (refused) {
      this.#end();
      this.#reject(refused);
      return;
    }
    // A settle method that returns nothing (or a plain value) is done: resolve now, without a promise hop. Anything
    // else is awaited as a promise (a thenable is adopted, as `await` would).
    if ((typeof pending !== 'object' || pending === null) && typeof pending !== 'function') {
      this.#end();
      this.#resolve(settlement);
      return;
    }
    Promise.resolve(pending).then(
      () => {
        this.#end();
        this.#resolve(settlement);
      },
      (refused: unknown) => {
        this.#end();
        this.#reject(refused);
      },
    );
  }

  /** Leaves the in-flight list: the delivery is settled (or its settlement failed). */
  #end(): void {
    this.#consumer.remove(this);
  }

  _onAbort(): void {}

  /** The handler timeout passed (the consumer's queue removed this run first). */
  _expire(): void {
    this.abort(new TimeoutError('message handler', this.#consumer.timeoutMs));
  }
}
// Kept only on the first wrapHandler (see anchorMaps): its constructor in fast mode from load, as for every per-call
// subclass (see shapes.ts).
fastConstructor(MessageRun);

/** Runs an adapter's settle method as a promise, a synchronous throw included. */
function settle(how: () => void | Promise<void>): Promise<void> {
  try {
    return Promise.resolve(how());
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * One instance of each per-delivery class, alive as long as the module, made by the first `wrapHandler`.
 *
 * Why: V8 keeps the hidden classes ("maps") an object goes through as its fields are set only while some object
 * uses them. When a full GC finds no delivery in flight (a consumer idle for a moment), those maps die, and every
 * optimised function that embeds them is thrown away ("weak objects" in `--trace-deopt --trace-deopt-verbose`),
 * to be re-optimised only after thousands more messages: the first batch after each full GC ran about 2x slower.
 * A live instance of each keeps the maps, and the optimised code, valid.
 */
/** Whether {@link anchorMaps} has run: once per process, on the first `wrapHandler`. */
let anchored = false;

function anchorMaps(): readonly object[] {
  const noop = (): void => undefined;
  const delivery: Delivery<undefined> = {
    body: undefined,
    attempt: 1,
    headers: {},
    ack: noop,
    retryLater: noop,
    deadLetter: noop,
    release: noop,
  };
  const consumer = new Consumer<undefined>(noop, systemClock, undefined, undefined, () => ['acked', noop]);
  const run = new MessageRun(delivery, consumer);
  return [
    run,
    new DirectContext(run),
    new MessageContext(new ExecutionContext(undefined, 'message', undefined, 1, undefined, undefined), delivery),
  ];
}

class ShutdownError extends Error {
  constructor() {
    super('bulwark/messaging: the consumer is shutting down');
    this.name = 'ShutdownError';
  }
}

/**
 * Turns a message handler into one that settles every delivery exactly once: ack on success; on a handled failure
 * (after the policy's own in-process retries) a broker-level delayed redelivery, up to `maxDeliveries`, then a
 * dead letter; a permanent failure is dead-lettered at once. A late result after a handler timeout or shutdown
 * never settles a delivery twice. Deliveries are counted from the broker's metadata (`delivery.attempt`).
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const handle = wrapHandler(async (order: Order, { signal }) => { await save(order, { signal }); }, {
 *   policy: pipeline(retry({ maxAttempts: 2 }), circuitBreaker()),
 *   maxDeliveries: 5,
 * });
 * ```
 */
export function wrapHandler<M>(handler: MessageHandler<M>, options: WrapHandlerOptions = {}): WrappedHandler<M> {
  const check = new Checker('wrapHandler');
  if (typeof handler !== 'function') check.fail('handler', handler, 'a function (message, ctx) => Promise<void>');
  if (check.object('', options, OPTION_NAMES)) {
    if (options.policy !== undefined && !isPolicyLike(options.policy)) {
      check.fail('policy', options.policy, 'a bulwark policy');
    }
    check.number('maxDeliveries', options.maxDeliveries, { min: 1, integer: true, infinity: true });
    const d = options.redeliveryDelay;
    if (d !== undefined && typeof d !== 'function' && !isBackoff(d)) {
      check.fail('redeliveryDelay', d, 'a backoff (constant(), linear(), exponential()) or a function');
    }
    check.fn('isPermanent', options.isPermanent);
    check.number('handlerTimeoutMs', options.handlerTimeoutMs, { min: 0, exclusiveMin: true });
    check.number('workingEveryMs', options.workingEveryMs, { min: 0, exclusiveMin: true });
    check.fn('onPause', options.onPause);
    check.fn('onResume', options.onResume);
    check.clock('clock', options.clock);
    check.fn('random', options.random);
  }
  check.done();

  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  const maxDeliveries = options.maxDeliveries ?? 5;
  const delay = options.redeliveryDelay ?? exponential({ initialMs: 1_000, maxMs: 60_000 });
  const fallbackDelay = exponential({ initialMs: 1_000, maxMs: 60_000 });
  /**
   * The redelivery delay. A `redeliveryDelay` function that throws or returns something other than a finite number
   * gets the default backoff for that delivery instead: a broken delay function must neither lose the message nor
   * redeliver it at once.
   */
  const delayFor = (attempt: number, error: unknown): number => {
    let ms: unknown;
    try {
      ms = typeof delay === 'function' ? delay(attempt, error) : delay.delay(attempt, 0, random);
    } catch {
      ms = undefined;
    }
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return fallbackDelay.delay(attempt, 0, random);
    return Math.max(0, ms);
  };
  // No policy: the handler is called directly (an empty pipeline would only add a context and a promise hop).
  const policy = options.policy;
  let stopping = false;
  let paused = false;
  let resumeTimer: TimerHandle;

  const pause = (ms: number): void => {
    if (paused) return;
    paused = true;
    // A hook that throws must not keep the delivery from being settled, nor become an uncaught timer error.
    guarded(() => {
      options.onPause?.(ms);
      return true;
    });
    resumeTimer = clock.setTimeout(() => {
      paused = false;
      resumeTimer = undefined;
      guarded(() => {
        options.onResume?.();
        return true;
      });
    }, ms);
  };

  /** Settles a delivery for a failure: dead letter (permanent or out of deliveries) or a delayed redelivery. */
  const failed = (delivery: Delivery<M>, error: unknown): FailureSettlement => {
    if (permanent(error, options.isPermanent)) {
      return ['dead_lettered', () => delivery.deadLetter({ reason: 'permanent', error, attempts: delivery.attempt })];
    }
    // Written so that an attempt that is not a number (a broken adapter) dead-letters rather than loops.
    if (!(delivery.attempt < maxDeliveries)) {
      return ['dead_lettered', () => delivery.deadLetter({ reason: 'exhausted', error, attempts: delivery.attempt })];
    }
    let ms = delayFor(delivery.attempt, error);
    const retryAfterMs = openCircuitWait(error);
    if (retryAfterMs !== undefined) {
      // The dependency is down: hold the message until the breaker may admit a call, and pause the consumer
      // instead of burning the queue into the dead-letter destination.
      ms = Math.max(ms, retryAfterMs);
      pause(retryAfterMs);
    }
    return ['retried', () => delivery.retryLater(ms, error)];
  };

  if (!anchored) {
    // Held by the core's keeper (core/shapes.ts), which survives the bundler's tree shaking.
    anchored = true;
    for (const o of anchorMaps()) keepShape(o);
  }
  const consumer = new Consumer<M>(handler, clock, options.handlerTimeoutMs, options.workingEveryMs, failed);
  /**
   * The operation a bulwark policy runs: one function for every delivery. The policy hands it a view of the root
   * context made below (`_derive` keeps the root), whose scope is the delivery's run. Every policy test of
   * wrapHandler goes through here, so a change to that contract in the core fails them at once.
   */
  const call = (c: Context): void | Promise<void> => {
    const run = (c as ExecutionContext)._root._scope as MessageRun<M>;
    return handler(run.delivery.body, new MessageContext(c, run.delivery));
  };

  const wrapped = ((delivery: Delivery<M>): Promise<Settlement> => {
    if (stopping) return settle(() => delivery.release()).then(() => 'released' as const);
    // One object per delivery: its cancel scope (handler timeout, shutdown) and its single settlement. Why not an
    // AbortController and Promise.race: both cost several microseconds per message; the scope creates a signal only
    // if the handler reads ctx.signal.
    const run = new MessageRun<M>(delivery, consumer);
    consumer.add(run);
    let work: Promise<unknown>;
    try {
      let r: unknown;
      if (policy === undefined) r = handler(delivery.body, new DirectContext(run));
      else if (policy instanceof PolicyBase) {
        r = policy._execute(new ExecutionContext(undefined, 'message', undefined, 1, run, undefined), call);
      } else {
        // A policy written outside bulwark only has the public API: give it a signal that follows this delivery.
        const ac = new AbortController();
        run.addListener({ _onAbort: (reason) => ac.abort(reason) });
        r = policy.execute((c) => handler(delivery.body, new MessageContext(c, delivery)), {
          signal: ac.signal,
          operation: 'message',
        });
      }
      // Whatever the handler or policy returned (a value, a thenable) is awaited as a promise. Inside the try: even
      // `instanceof` throws on a hostile return value (a Proxy), which then fails the delivery like a throw.
      work = r instanceof Promise ? r : Promise.resolve(r);
    } catch (error) {
      work = Promise.reject(error);
    }
    run.follow(work);
    return run.result;
  }) as WrappedHandler<M>;

  Object.defineProperties(wrapped, {
    inFlight: { get: () => consumer.size },
    paused: { get: () => paused },
    stopping: { get: () => stopping },
    shutdown: {
      value: async (graceMs = 10_000): Promise<void> => {
        const checkGrace = new Checker('wrapHandler shutdown()');
        checkGrace.number('graceMs', graceMs, { min: 0, infinity: true });
        checkGrace.done();
        stopping = true;
        if (resumeTimer !== undefined) clock.clearTimeout(resumeTimer);
        if (consumer.size === 0) return;
        const pending = consumer.pending();
        let graceTimer: TimerHandle;
        const grace = new Promise<void>((resolve) => {
          graceTimer = clock.setTimeout(resolve, graceMs);
        });
        await Promise.race([Promise.all(pending.map((e) => e.result)), grace]);
        clock.clearTimeout(graceTimer);
        // Past the grace period: abort what still runs; each hands its message back unsettled.
        for (const e of pending) e.abort(new ShutdownError());
        await Promise.all(pending.map((e) => e.result));
      },
    },
  });
  return wrapped;
}
