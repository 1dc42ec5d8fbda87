/**
 * The NATS JetStream adapter of `bulwark/messaging` (nats.js 2.x): a {@link Delivery} over a `JsMsg`, and a
 * pull-consume loop that feeds a wrapped handler.
 *
 * Only types are imported from `nats` at load time: `nats` is an optional peer dependency, and users of the
 * RabbitMQ adapter import the same `bulwark/messaging` entry without having it installed.
 */
import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg, MsgHdrs } from 'nats';
import { type Clock, systemClock, type TimerHandle } from '../../core/clock.js';
import { Checker } from '../../errors/validate.js';
import type { DeadLetter, Delivery } from './delivery.js';
import type { WrappedHandler } from './wrap-handler.js';

/** Options of {@link jetstreamDelivery}. */
export interface JetStreamDeliveryOptions {
  /**
   * Where exhausted and permanently failing messages are published (byte-identical data, the original headers
   * plus `bulwark-attempts`, `bulwark-reason`, `bulwark-error`) before the original is terminated. Needs `js`.
   * Without it a dead letter only terminates the message (`msg.term()`), which drops it. @defaultValue none
   */
  deadLetterSubject?: string;
  /** The JetStream client that publishes dead letters. Required with `deadLetterSubject`. */
  js?: JetStreamClient;
  /**
   * The delay of a `release` (shutdown, or a consumer that stops pulling), in ms: the message is nak'd with this
   * delay rather than at once, so a consumer restarting in a loop does not spin on it. @defaultValue 1_000
   */
  releaseDelayMs?: number;
}

const DELIVERY_OPTIONS = ['deadLetterSubject', 'js', 'releaseDelayMs'] as const;

/** The dead-letter header values carry one line; NATS headers may not hold CR/LF. */
const MAX_ERROR_HEADER = 1_024;
function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.replace(/[\r\n]+/g, ' ').slice(0, MAX_ERROR_HEADER);
}

function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h === undefined) return out;
  for (const key of h.keys()) out[key] = h.values(key).join(', ');
  return out;
}

/** Checks the delivery fields of options already known to be an object. */
function validateDeliveryOptions(check: Checker, options: JetStreamDeliveryOptions) {
  const { deadLetterSubject, js, releaseDelayMs } = options;
  if (deadLetterSubject !== undefined && (typeof deadLetterSubject !== 'string' || deadLetterSubject === '')) {
    check.fail('deadLetterSubject', deadLetterSubject, 'a non-empty subject');
  }
  if (js !== undefined && typeof (js as JetStreamClient | null)?.publish !== 'function') {
    check.fail('js', js, 'a JetStream client (nc.jetstream())');
  }
  if (deadLetterSubject !== undefined && js === undefined) {
    check.fail('js', js, 'a JetStream client to publish to deadLetterSubject');
  }
  check.number('releaseDelayMs', releaseDelayMs, { min: 0 });
}

/**
 * A {@link Delivery} over one JetStream message. `attempt` is the server's delivery count
 * (`msg.info.deliveryCount`), so a restarted consumer keeps counting; `ack` waits for the server's confirmation
 * (`ackAck`); `retryLater(ms)` is `nak(ms)`, a delayed redelivery; `deadLetter` publishes the data, byte-identical,
 * to `deadLetterSubject` (if given) and then terminates the message; `release` is `nak(releaseDelayMs)`;
 * `working` is `msg.working()` (resets the server's ack-wait timer).
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const js = nc.jetstream();
 * const handle = wrapHandler(async (data: Uint8Array) => save(JSON.parse(new TextDecoder().decode(data))));
 * const msg = await (await js.consumers.get('ORDERS', 'worker')).next();
 * if (msg) await handle(jetstreamDelivery(msg, { deadLetterSubject: 'orders.dead', js }));
 * ```
 */
export function jetstreamDelivery(msg: JsMsg, options: JetStreamDeliveryOptions = {}): Delivery<Uint8Array> {
  const check = new Checker('jetstreamDelivery');
  if (check.object('', options, DELIVERY_OPTIONS)) validateDeliveryOptions(check, options);
  check.done();
  return makeDelivery(msg, options);
}

function makeDelivery(msg: JsMsg, options: JetStreamDeliveryOptions): Delivery<Uint8Array> {
  const releaseDelayMs = options.releaseDelayMs ?? 1_000;
  return {
    body: msg.data,
    attempt: msg.info.deliveryCount,
    headers: headerRecord(msg.headers),
    async ack() {
      // ackAck: the ack is confirmed by the server; a lost plain ack would mean a redelivery after ack-wait.
      await msg.ackAck();
    },
    retryLater(delayMs: number) {
      // nak with a delay: the server redelivers after delayMs, never in a hot loop.
      msg.nak(Math.max(0, Math.round(delayMs)));
    },
    async deadLetter(dead: DeadLetter) {
      const { deadLetterSubject, js } = options;
      if (deadLetterSubject !== undefined && js !== undefined) {
        // Loaded lazily: nats is an optional peer dependency (see the module comment).
        const { headers } = await import('nats');
        const h = headers();
        const original = msg.headers;
        if (original !== undefined) {
          for (const key of original.keys()) {
            // Nats-* headers (Nats-Msg-Id, Nats-Expected-*) would make the server dedupe or reject the copy.
            if (key.toLowerCase().startsWith('nats-')) continue;
            for (const value of original.values(key)) h.append(key, value);
          }
        }
        h.set('bulwark-attempts', String(dead.attempts));
        h.set('bulwark-reason', dead.reason);
        h.set('bulwark-error', errorText(dead.error));
        h.set('bulwark-original-subject', msg.subject);
        // Published before the term: if the publish fails the original is not terminated and comes back after
        // ack-wait (a possible duplicate in the dead-letter stream rather than a lost message).
        await js.publish(deadLetterSubject, msg.data, { headers: h });
      }
      // No term reason: servers before 2.10.4 ignore a `+TERM <reason>` entirely, leaving the message pending
      // until ack-wait and redelivered; the reason travels in the dead letter's headers instead.
      msg.term();
    },
    release() {
      msg.nak(releaseDelayMs);
    },
    working() {
      msg.working();
    },
  };
}

/** Options of {@link consumeJetStream}. */
export interface ConsumeJetStreamOptions extends JetStreamDeliveryOptions {
  /**
   * Messages pulled per request, and the most deliveries handled at once by this loop (the client buffers up to
   * this many; each waits its turn within the consumer's ack-wait). @defaultValue 100
   */
  maxMessages?: number;
  /**
   * Called when settling a delivery fails (an `ackAck` that times out, a dead-letter publish that fails). The
   * message is not lost: the server redelivers it after ack-wait. @defaultValue none (ignored)
   */
  onError?: (error: unknown, msg: JsMsg) => void;
  /** How often a paused loop checks `handler.paused`, in ms. @defaultValue 100 */
  pausePollMs?: number;
  /** Times the paused poll. @defaultValue `systemClock` */
  clock?: Clock;
}

const CONSUME_OPTIONS = [...DELIVERY_OPTIONS, 'maxMessages', 'onError', 'pausePollMs', 'clock'] as const;

/** A running {@link consumeJetStream} loop. */
export interface JetStreamConsumption {
  /**
   * Stops pulling and waits for the deliveries this loop started to settle. It does not abort handlers: call
   * `handler.shutdown(graceMs)` first (or together) to bound the wait; the unsettled ones are released (nak'd).
   */
  stop(): Promise<void>;
  /** Stops pulling until {@link JetStreamConsumption.resume} (for `wrapHandler`'s `onPause`). */
  pause(): void;
  /** Resumes pulling after {@link JetStreamConsumption.pause} (for `wrapHandler`'s `onResume`). */
  resume(): void;
  /** Resolves when the loop has ended (after `stop`); rejects if pulling failed (the consumer was deleted, say). */
  readonly done: Promise<void>;
}

/**
 * Pulls messages from a JetStream consumer (`consumer.consume()`) and feeds each, as a {@link jetstreamDelivery},
 * to a handler made by `wrapHandler`, at most `maxMessages` at a time.
 *
 * Backpressure: while `handler.paused` (the policy's breaker is open) the loop stops pulling (the pull
 * subscription is stopped, messages buffered by the client go back to the server after ack-wait, none is lost),
 * and it starts a new pull when the handler is no longer paused. The loop notices on its own (it checks before
 * each message and every `pausePollMs` while paused); wiring `onPause`/`onResume` to `pause()`/`resume()` makes
 * it react at once.
 *
 * Max deliveries: set `wrapHandler`'s `maxDeliveries` no higher than the consumer's `max_deliver`. The server
 * stops delivering a message after `max_deliver` deliveries without telling anyone, so with a larger
 * `maxDeliveries` a failing message would vanish instead of being dead-lettered; with
 * `maxDeliveries <= max_deliver` the last delivery is dead-lettered (published to `deadLetterSubject`, then
 * terminated). `max_deliver: -1` (unlimited) is fine.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const nc = await connect({ servers: '127.0.0.1:4222' });
 * const js = nc.jetstream();
 * let loop: JetStreamConsumption | undefined;
 * const handle = wrapHandler(async (data: Uint8Array, { signal }) => process(data, signal), {
 *   maxDeliveries: 5, // <= the consumer's max_deliver
 *   workingEveryMs: 10_000, // < the consumer's ack_wait, for long handlers
 *   onPause: () => loop?.pause(),
 *   onResume: () => loop?.resume(),
 * });
 * loop = consumeJetStream(await js.consumers.get('ORDERS', 'worker'), handle, {
 *   deadLetterSubject: 'orders.dead', js, maxMessages: 10,
 * });
 * // shutdown
 * await Promise.all([handle.shutdown(5_000), loop.stop()]);
 * await nc.drain();
 * ```
 */
export function consumeJetStream(
  consumer: Consumer,
  handler: WrappedHandler<Uint8Array>,
  options: ConsumeJetStreamOptions = {},
): JetStreamConsumption {
  const check = new Checker('consumeJetStream');
  if (typeof (consumer as Consumer | null)?.consume !== 'function') {
    check.fail('consumer', consumer, 'a JetStream pull consumer (js.consumers.get(stream, durable))');
  }
  if (typeof handler !== 'function') check.fail('handler', handler, 'a handler made by wrapHandler');
  if (check.object('', options, CONSUME_OPTIONS)) {
    validateDeliveryOptions(check, options);
    check.number('maxMessages', options.maxMessages, { min: 1, integer: true });
    check.fn('onError', options.onError);
    check.number('pausePollMs', options.pausePollMs, { min: 0, exclusiveMin: true });
    check.clock('clock', options.clock);
  }
  check.done();

  const maxMessages = options.maxMessages ?? 100;
  const pausePollMs = options.pausePollMs ?? 100;
  const clock = options.clock ?? systemClock;
  // A superset of the delivery options: makeDelivery reads only deadLetterSubject, js and releaseDelayMs.
  const deliveryOptions: JetStreamDeliveryOptions = options;
  let stopped = false;
  let pausedByCall = false;
  let messages: ConsumerMessages | undefined;
  const running = new Set<Promise<void>>();
  /** Wakes the loop: a delivery settled, resume() or stop() was called. */
  let wake: (() => void) | undefined;
  const signal = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const sleep = (ms: number | undefined): Promise<void> =>
    new Promise((resolve) => {
      const timer: TimerHandle = ms === undefined ? undefined : clock.setTimeout(() => signal(), ms);
      wake = () => {
        if (timer !== undefined) clock.clearTimeout(timer);
        resolve();
      };
    });
  const isPaused = (): boolean => pausedByCall || handler.paused;

  const feed = (msg: JsMsg): void => {
    const p = handler(makeDelivery(msg, deliveryOptions)).then(
      () => undefined,
      (error: unknown) => options.onError?.(error, msg),
    );
    const tracked = p.finally(() => {
      running.delete(tracked);
      signal();
    });
    running.add(tracked);
  };

  const loop = async (): Promise<void> => {
    while (!stopped) {
      if (isPaused()) {
        await sleep(pausePollMs);
        continue;
      }
      const current = await consumer.consume({ max_messages: maxMessages });
      messages = current;
      // stop() or pause() may have come while consume() was starting.
      if (stopped || isPaused()) current.stop();
      for await (const msg of current) {
        if (stopped || isPaused()) {
          // Taken off the wire after the loop decided to stop: hand it back with a delay, not at once.
          msg.nak(options.releaseDelayMs ?? 1_000);
          current.stop();
          continue;
        }
        feed(msg);
        // The concurrency limit: wait for a slot before taking the next message.
        while (running.size >= maxMessages && !stopped) await sleep(undefined);
        if (isPaused()) current.stop();
      }
      messages = undefined;
    }
  };

  const done = loop();
  // `done` is observed by stop(); this keeps a failure from being an unhandled rejection when nobody awaits it.
  done.catch(() => undefined);

  return {
    async stop() {
      stopped = true;
      messages?.stop();
      signal();
      try {
        await done;
      } finally {
        await Promise.all(running);
      }
    },
    pause() {
      pausedByCall = true;
      messages?.stop();
    },
    resume() {
      pausedByCall = false;
      signal();
    },
    done,
  };
}
