import { type Clock, systemClock, type TimerHandle } from '../../core/clock.js';
import type { Context } from '../../core/context.js';
import type { Policy } from '../../core/policy.js';
import { type Random, systemRandom } from '../../core/random.js';
import { isCircuitOpenError, TimeoutError } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { pipeline } from '../../policies/pipeline.js';
import { type Backoff, exponential, isBackoff } from '../../policies/retry/backoff.js';
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
   * function. @defaultValue `exponential({ initialMs: 1_000, maxMs: 60_000 })` (full jitter)
   */
  redeliveryDelay?: Backoff | ((attempt: number, error: unknown) => number);
  /** Failures that no retry fixes, besides `PermanentError` and `SyntaxError` (a parse error). */
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

/** A handler wrapped by {@link wrapHandler}: call it with each delivery; it settles the delivery exactly once. */
export interface WrappedHandler<M> {
  (delivery: Delivery<M>): Promise<Settlement>;
  /** Deliveries taken and not yet settled. */
  readonly inFlight: number;
  /** Whether the consumer should hold off (the breaker is open). */
  readonly paused: boolean;
  /**
   * Stops taking messages (later deliveries are released at once), waits up to `graceMs` for those in flight,
   * then aborts their `ctx.signal` and releases them to the broker unsettled. Resolves when every delivery is
   * settled. @param graceMs - @defaultValue 10_000
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** Whether a failure is permanent: never retried, dead-lettered at once. */
function permanent(error: unknown, extra: ((e: unknown) => boolean) | undefined): boolean {
  return error instanceof PermanentError || error instanceof SyntaxError || (extra?.(error) ?? false);
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
    if (options.policy !== undefined && typeof (options.policy as Policy | null)?.execute !== 'function') {
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
  const delayFor = (attempt: number, error: unknown): number =>
    typeof delay === 'function' ? Math.max(0, delay(attempt, error)) : delay.delay(attempt, 0, random);
  const policy = options.policy ?? pipeline();
  const inFlight = new Set<{ abort: (reason: unknown) => void; settled: Promise<unknown> }>();
  let stopping = false;
  let paused = false;
  let resumeTimer: TimerHandle;

  const pause = (ms: number): void => {
    if (paused) return;
    paused = true;
    options.onPause?.(ms);
    resumeTimer = clock.setTimeout(() => {
      paused = false;
      resumeTimer = undefined;
      options.onResume?.();
    }, ms);
  };

  const wrapped = (async (delivery: Delivery<M>): Promise<Settlement> => {
    if (stopping) {
      await delivery.release();
      return 'released';
    }
    const ac = new AbortController();
    let settled = false;
    /** Settles once; later calls (a late result after a timeout or shutdown) do nothing. */
    const settle = async (how: () => void | Promise<void>, s: Settlement): Promise<Settlement> => {
      if (settled) return s;
      settled = true;
      await how();
      return s;
    };
    let timer: TimerHandle;
    let heartbeat: TimerHandle;
    const interrupted = new Promise<{ interrupted: unknown }>((resolve) => {
      ac.signal.addEventListener('abort', () => resolve({ interrupted: ac.signal.reason }), { once: true });
    });
    if (options.handlerTimeoutMs !== undefined) {
      timer = clock.setTimeout(
        () => ac.abort(new TimeoutError('message handler', options.handlerTimeoutMs as number)),
        options.handlerTimeoutMs,
      );
    }
    if (options.workingEveryMs !== undefined && delivery.working !== undefined) {
      const beat = (): void => {
        void delivery.working?.();
        heartbeat = clock.setTimeout(beat, options.workingEveryMs as number);
      };
      heartbeat = clock.setTimeout(beat, options.workingEveryMs);
    }
    // The handler sees the policy's context (signal, attempt, properties) plus the delivery.
    const call = (ctx: Context) =>
      handler(delivery.body, Object.assign(Object.create(ctx) as Context, { delivery }) as HandlerContext<M>);
    const work = policy.execute(call, { signal: ac.signal, operation: 'message' }).then(
      () => ({ ok: true as const }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    let markSettled!: () => void;
    const entry = {
      abort: (reason: unknown) => ac.abort(reason),
      settled: new Promise<void>((resolve) => {
        markSettled = resolve;
      }),
    };
    inFlight.add(entry);
    try {
      const outcome = await Promise.race([work, interrupted]);
      if ('interrupted' in outcome) {
        const reason = outcome.interrupted;
        // Shutdown: hand the message back unsettled. A handler timeout: a transient failure.
        if (reason instanceof ShutdownError) return await settle(() => delivery.release(), 'released');
        return await failed(reason);
      }
      if (outcome.ok) return await settle(() => delivery.ack(), 'acked');
      return await failed(outcome.error);
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
      if (heartbeat !== undefined) clock.clearTimeout(heartbeat);
      inFlight.delete(entry);
      markSettled();
    }

    async function failed(error: unknown): Promise<Settlement> {
      if (permanent(error, options.isPermanent)) {
        return settle(
          () => delivery.deadLetter({ reason: 'permanent', error, attempts: delivery.attempt }),
          'dead_lettered',
        );
      }
      if (delivery.attempt >= maxDeliveries) {
        return settle(
          () => delivery.deadLetter({ reason: 'exhausted', error, attempts: delivery.attempt }),
          'dead_lettered',
        );
      }
      let ms = delayFor(delivery.attempt, error);
      if (isCircuitOpenError(error) && Number.isFinite(error.retryAfterMs)) {
        // The dependency is down: hold the message until the breaker may admit a call, and pause the consumer
        // instead of burning the queue into the dead-letter destination.
        ms = Math.max(ms, error.retryAfterMs);
        pause(error.retryAfterMs);
      }
      return settle(() => delivery.retryLater(ms, error), 'retried');
    }
  }) as WrappedHandler<M>;

  Object.defineProperties(wrapped, {
    inFlight: { get: () => inFlight.size },
    paused: { get: () => paused },
    shutdown: {
      value: async (graceMs = 10_000): Promise<void> => {
        stopping = true;
        if (resumeTimer !== undefined) clock.clearTimeout(resumeTimer);
        if (inFlight.size === 0) return;
        const pending = [...inFlight];
        let graceTimer: TimerHandle;
        const grace = new Promise<void>((resolve) => {
          graceTimer = clock.setTimeout(resolve, graceMs);
        });
        await Promise.race([Promise.all(pending.map((e) => e.settled)), grace]);
        clock.clearTimeout(graceTimer);
        // Past the grace period: abort what still runs; each hands its message back unsettled.
        for (const e of pending) e.abort(new ShutdownError());
        await Promise.all(pending.map((e) => e.settled));
      },
    },
  });
  return wrapped;
}
