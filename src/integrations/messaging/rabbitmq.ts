import { type EventEmitter, errorMonitor } from 'node:events';
// Types only, and only in internal code: the public signatures take a RabbitChannel (below), so the published
// declarations do not import amqplib (a user of the NATS adapter compiles them without it).
import type { Channel, ConfirmChannel, ConsumeMessage, Message, MessageProperties, Options } from 'amqplib';
import { systemClock, type TimerHandle } from '../../core/clock.js';
import { describeError } from '../../core/describe.js';
import { Checker } from '../../errors/validate.js';
import { hasMethod } from '../validate.js';
import type { DeadLetter, Delivery } from './delivery.js';
import type { WrappedHandler } from './wrap-handler.js';

/** The header counting the deliveries a message has had so far (absent: none, this is the first). */
export const DELIVERIES_HEADER = 'x-bulwark-deliveries';

/** The queues {@link declareRabbitTopology} declares for one work queue. */
export interface RabbitTopology {
  /** The work queue the consumer reads. */
  readonly queue: string;
  /** `<queue>.retry`: messages wait here for their per-message TTL, then dead-letter back to `queue`. */
  readonly retryQueue: string;
  /** `<queue>.dlq`: messages given up on, body byte-identical, with `x-bulwark-*` headers. */
  readonly deadLetterQueue: string;
}

/** Options of {@link declareRabbitTopology}. */
export interface RabbitTopologyOptions {
  /** The work queue's name. */
  queue: string;
}

/** The retry and dead-letter queue names of a work queue. */
function namesOf(queue: string): RabbitTopology {
  return { queue, retryQueue: `${queue}.retry`, deadLetterQueue: `${queue}.dlq` };
}

/**
 * Declares the queues {@link consumeRabbit} needs: the durable work queue `<queue>`, `<queue>.retry` (no consumer:
 * a message published to it with a per-message `expiration` is dead-lettered back to `<queue>` when it expires,
 * which gives a delayed redelivery without a hot requeue loop), and `<queue>.dlq`. Idempotent; asserting a queue
 * that already exists with other arguments fails with a 406 (the broker closes the channel).
 *
 * Note: RabbitMQ expires messages only at the head of a queue, so a retry with a long delay holds back shorter
 * ones queued behind it (they come back late, never early).
 *
 * @returns the three queue names.
 * @throws InvalidOptionsError when `queue` is not a non-empty string (or another option is given).
 * @example
 * ```ts
 * const channel = await connection.createConfirmChannel();
 * const { queue, deadLetterQueue } = await declareRabbitTopology(channel, { queue: 'orders' });
 * ```
 */
export async function declareRabbitTopology(
  rabbitChannel: RabbitChannel,
  options: RabbitTopologyOptions,
): Promise<RabbitTopology> {
  const channel = amqplibChannel(rabbitChannel);
  const check = new Checker('declareRabbitTopology');
  if (check.object('', options, ['queue'])) {
    if (typeof options.queue !== 'string' || options.queue === '') {
      check.fail('queue', options.queue, 'a non-empty string');
    }
  } else if (options === undefined) check.fail('options', options, 'an object with queue');
  if (!hasMethod(channel, 'assertQueue')) {
    check.fail('channel', channel, 'an amqplib channel (connection.createConfirmChannel())');
  }
  check.done();
  const names = namesOf(options.queue);
  await channel.assertQueue(names.queue, { durable: true });
  await channel.assertQueue(names.retryQueue, {
    durable: true,
    // Expired messages go back, through the default exchange, to the work queue.
    deadLetterExchange: '',
    deadLetterRoutingKey: names.queue,
  });
  await channel.assertQueue(names.deadLetterQueue, { durable: true });
  return names;
}

/** A message as amqplib delivers it (`ConsumeMessage`), as far as {@link RabbitChannel} mentions it. */
export interface RabbitMessage {
  readonly content: Buffer;
  readonly fields: { readonly deliveryTag: number };
}

/**
 * An amqplib channel, as bulwark's RabbitMQ adapter takes it: amqplib's `Channel` and `ConfirmChannel`
 * (`connection.createChannel()`, `connection.createConfirmChannel()`) fit. A structural type, so that the published
 * declarations do not import amqplib; the adapter uses the channel's amqplib API (consume, ack, nack,
 * sendToQueue, prefetch, cancel, assertQueue, and its `close`, `return` and `drain` events).
 *
 * @example
 * ```ts
 * const channel: RabbitChannel = await connection.createConfirmChannel();
 * ```
 */
export interface RabbitChannel {
  /** Declares a queue (`queue.declare`). */
  assertQueue(queue: string, options?: { durable?: boolean }): Promise<unknown>;
  /** Subscribes to a queue (`basic.consume`); `null` when the broker cancels the consumer. */
  consume(
    queue: string,
    onMessage: (msg: RabbitMessage | null) => void,
    options?: { noAck?: boolean },
  ): Promise<unknown>;
  /** Ends a subscription (`basic.cancel`). */
  cancel(consumerTag: string): Promise<unknown>;
  /** Sets the channel's prefetch (`basic.qos`); its reply also proves earlier frames were processed. */
  prefetch(count: number): Promise<unknown>;
  /** Acknowledges a message (`basic.ack`). */
  ack(message: RabbitMessage): void;
  /** Rejects a message (`basic.nack`), requeued or not. */
  nack(message: RabbitMessage, allUpTo?: boolean, requeue?: boolean): void;
  /** Publishes to a queue through the default exchange. */
  sendToQueue(queue: string, content: Buffer): boolean;
  /** Adds an event listener (`'close'`, `'error'`, `'return'`, ...). */
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  /** Adds a one-time event listener. */
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  /** Removes an event listener. */
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** The amqplib channel behind a {@link RabbitChannel} (it is one: see there). */
const amqplibChannel = (channel: RabbitChannel): Channel => channel as unknown as Channel;

/** Options of {@link consumeRabbit}. */
export interface ConsumeRabbitOptions {
  /** The work queue (declared with {@link declareRabbitTopology}). */
  queue: string;
  /** The handler wrapped by `wrapHandler`; the message body is the raw `Buffer`. */
  handler: WrappedHandler<Buffer>;
  /** Unacknowledged messages the broker sends this channel at most (`basic.qos`). @defaultValue 10 */
  prefetch?: number;
  /**
   * Called with failures no delivery can report: a republish to the retry or dead-letter queue that the broker
   * refused (the message is then requeued after `requeueDelayMs`), a handler wrapper that threw.
   * @defaultValue none (ignored)
   */
  onError?: (error: unknown) => void;
  /**
   * How long a message whose retry or dead-letter copy the broker refused is held (unacked, in its prefetch slot)
   * before it is requeued: a refusal that lasts cannot turn into a hot requeue loop. Cut short when the channel
   * closes. @defaultValue 1_000
   */
  requeueDelayMs?: number;
  /**
   * Called once when the consumer stops for good, with why (also the value of {@link RabbitConsumer.closed}):
   * `cancel()`, the broker cancelling the subscription, or the channel or its connection closing (a dropped socket,
   * a broker restart, a channel error). @defaultValue none
   */
  onClose?: (closed: RabbitConsumerClosed) => void;
}

/** Why a {@link RabbitConsumer} stopped. */
export interface RabbitConsumerClosed {
  /**
   * `'cancelled'`: `consumer.cancel()`; `'broker_cancelled'`: the broker ended the subscription (the queue was
   * deleted, say); `'channel_closed'`: the channel or its connection closed (a dropped socket, a broker shutting
   * down, a channel error, or your own `close()`). Only `'cancelled'` is a stop you asked for: on the others,
   * reconnect (see the docs' reconnection example).
   */
  readonly reason: 'cancelled' | 'broker_cancelled' | 'channel_closed';
  /** The error that closed the channel or connection (the socket error, the broker's close), if there was one. */
  readonly error: unknown;
}

/** A running consumer, from {@link consumeRabbit}. */
export interface RabbitConsumer {
  /**
   * The broker's tag of the current subscription (a new one after each `resume()`); undefined while paused and
   * once the consumer has stopped.
   */
  readonly consumerTag: string | undefined;
  /**
   * Resolves (never rejects) once the consumer has stopped for good, with why: after `cancel()`, or when the
   * broker or the connection ended it. Messages already delivered may still be running; their settlements on a
   * closed channel are skipped and the broker delivers those messages again.
   *
   * @example
   * ```ts
   * const { reason, error } = await consumer.closed;
   * if (reason !== 'cancelled') console.error('consumer stopped, reconnecting', error);
   * ```
   */
  readonly closed: Promise<RabbitConsumerClosed>;
  /** Stops the subscription (messages already delivered are still handled and settled). For `onPause`. */
  pause(): Promise<void>;
  /** Subscribes again after `pause()`. For `onResume`. Does nothing once cancelled. */
  resume(): Promise<void>;
  /**
   * Stops taking messages for good. Messages in flight keep running: call the handler's `shutdown()` afterwards
   * to wait for them (or release them to the broker).
   */
  cancel(): Promise<void>;
}

/** Broker-added headers a republished copy must not carry: the broker owns them. */
const BROKER_HEADERS = new Set(['x-death', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason']);
/** The longest `x-bulwark-last-error` / `x-bulwark-error` value, in characters (longer ones are cut with `…`). */
export const MAX_ERROR_HEADER_LENGTH = 512;
/** The longest per-message TTL RabbitMQ accepts is about this (2^32 - 1 ms, 49.7 days); longer delays are capped. */
const MAX_EXPIRATION_MS = 4_294_967_295;

/** Sets an own property, even one named `__proto__`, without touching the object's prototype. */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else target[key] = value;
}

/** Header values as strings, for `Delivery.headers`. Total: whatever a producer put in the headers. */
function stringHeaders(headers: MessageProperties['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof headers !== 'object' || headers === null) return out;
  for (const key of Object.keys(headers)) {
    const value: unknown = headers[key];
    if (value === undefined || value === null) continue;
    let text: string;
    if (typeof value === 'string') text = value;
    else if (Buffer.isBuffer(value)) text = value.toString('utf8');
    else if (typeof value === 'object') {
      try {
        text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? '';
      } catch {
        text = '';
      }
    } else text = String(value);
    define(out, key, text);
  }
  return out;
}

/**
 * The deliveries so far, read from the `x-bulwark-deliveries` value: a whole number from 0 to 2^53 - 2, as a number
 * or as decimal digits. Anything else (absent, negative, fractional, NaN, beyond 2^53 - 2, an array, a table, text)
 * reads as 0: the message gets its full deliveries, and the count then rises from 1 on each retry.
 * @internal
 */
export function deliveriesOf(raw: unknown): number {
  let n: number;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'string' && /^[0-9]{1,16}$/.test(raw)) n = Number(raw);
  else return 0;
  return Number.isSafeInteger(n) && n >= 0 && n < Number.MAX_SAFE_INTEGER ? n : 0;
}

const TIMESTAMP_MAX = 2 ** 64;
const INT64_MIN = -(2 ** 63);

/**
 * Whether amqplib can encode `value` in a header table again. Headers come from any producer: a table with a `'!'`
 * key (amqplib's type trapdoor), a NaN double or a huge negative number would make the republish throw, and the
 * message would never reach the retry or dead-letter queue.
 */
function encodable(value: unknown, depth: number): boolean {
  if (depth > 64) return false;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      // amqplib encodes NaN and numbers below -2^63 as int64, which throws.
      return !Number.isNaN(value) && value >= INT64_MIN;
    case 'object': {
      if (value === null || Buffer.isBuffer(value)) return true;
      if (Array.isArray(value)) return value.every((v) => encodable(v, depth + 1));
      const table = value as Record<string, unknown>;
      if (Object.hasOwn(table, '!')) {
        // The typed values amqplib itself decodes: timestamps and decimals.
        const v = table.value as { places?: unknown; digits?: unknown } | number | undefined;
        if (table['!'] === 'timestamp') {
          return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < TIMESTAMP_MAX;
        }
        return (
          table['!'] === 'decimal' &&
          typeof v === 'object' &&
          v !== null &&
          Number.isInteger(v.places) &&
          (v.places as number) >= 0 &&
          (v.places as number) < 256 &&
          Number.isInteger(v.digits) &&
          (v.digits as number) >= 0 &&
          (v.digits as number) <= 0xffffffff
        );
      }
      for (const key in table) if (!encodable(table[key], depth + 1)) return false;
      return true;
    }
    case 'undefined':
      return true; // skipped by the encoder
    default:
      return false;
  }
}

/**
 * The publish options of a copy of `msg`: its properties and headers (without broker-owned ones), plus `extra`.
 * `expiration` and `userId` are not copied: the copy gets its own TTL, and a `userId` that differs from this
 * connection's user would make the broker refuse the publish.
 */
function copyOptions(
  msg: ConsumeMessage,
  extra: Record<string, unknown>,
  expiration: string | undefined,
  keepHeaders: boolean,
): Options.Publish {
  const p = msg.properties;
  const headers: Record<string, unknown> = {};
  const original = p.headers;
  if (keepHeaders && typeof original === 'object' && original !== null) {
    for (const k of Object.keys(original)) {
      const v: unknown = original[k];
      // A header amqplib could not encode again is left off the copy (the body and the rest are kept).
      if (!BROKER_HEADERS.has(k) && !k.startsWith('x-last-death-') && encodable(v, 0)) define(headers, k, v);
    }
  }
  for (const k of Object.keys(extra)) define(headers, k, extra[k]);
  const options: Options.Publish = { headers, mandatory: true };
  if (p.contentType !== undefined) options.contentType = p.contentType;
  if (p.contentEncoding !== undefined) options.contentEncoding = p.contentEncoding;
  if (p.deliveryMode !== undefined) options.deliveryMode = p.deliveryMode;
  if (p.priority !== undefined) options.priority = p.priority;
  if (p.correlationId !== undefined) options.correlationId = p.correlationId;
  if (p.replyTo !== undefined) options.replyTo = p.replyTo;
  if (p.messageId !== undefined) options.messageId = p.messageId;
  if (p.timestamp !== undefined) options.timestamp = p.timestamp;
  if (p.type !== undefined) options.type = p.type;
  if (p.appId !== undefined) options.appId = p.appId;
  if (expiration !== undefined) options.expiration = expiration;
  return options;
}

/** The consumers watching one connection's errors and close, behind a single listener of each kind. */
interface ConnectionWatch {
  readonly watchers: Set<(error: unknown) => void>;
  readonly onEvent: (error: unknown) => void;
}
const CONNECTION_WATCHES = new WeakMap<object, ConnectionWatch>();

/**
 * Calls `watcher` with the connection's `'error'` events (seen through `errorMonitor`, so they stay unhandled when
 * the application has no listener) and its `'close'` reason. One listener per connection whatever the number of
 * consumers on it (no MaxListenersExceededWarning with many channels). Returns the unsubscribe function.
 */
function watchConnection(connection: unknown, watcher: (error: unknown) => void): () => void {
  const events = connection as Partial<EventEmitter> | null | undefined;
  if (typeof events !== 'object' || events === null || typeof events.on !== 'function' || !events.off) {
    return () => undefined;
  }
  let watch = CONNECTION_WATCHES.get(events);
  if (watch === undefined) {
    const watchers = new Set<(error: unknown) => void>();
    const onEvent = (error: unknown): void => {
      for (const w of [...watchers]) w(error);
    };
    watch = { watchers, onEvent };
    CONNECTION_WATCHES.set(events, watch);
    events.on(errorMonitor, onEvent);
    events.on('close', onEvent);
  }
  const current = watch;
  current.watchers.add(watcher);
  return () => {
    if (!current.watchers.delete(watcher) || current.watchers.size > 0) return;
    CONNECTION_WATCHES.delete(events);
    events.off?.(errorMonitor, current.onEvent);
    events.off?.('close', current.onEvent);
  };
}

/** A copy being published: the broker may return it as unroutable. */
interface PendingCopy {
  readonly routingKey: string;
  readonly content: Buffer;
  returned: boolean;
}

/**
 * Whether a publish failed before anything was sent because amqplib could not encode it (a header table beyond the
 * encoding buffer, a value it cannot encode): then a copy with bulwark's headers only is tried.
 */
function encodingFailed(error: unknown): boolean {
  try {
    const name = (error as { name?: unknown } | null)?.name;
    return name === 'RangeError' || name === 'TypeError';
  } catch {
    return false;
  }
}

/**
 * Whether amqplib refused an operation because the channel or its connection is closing or closed (its
 * `IllegalOperationError`, thrown synchronously before anything is sent): not a refusal by the broker.
 */
function channelGone(error: unknown): boolean {
  try {
    return (error as { name?: unknown } | null)?.name === 'IllegalOperationError';
  } catch {
    return false;
  }
}

const OPTION_NAMES = ['queue', 'handler', 'prefetch', 'onError', 'requeueDelayMs', 'onClose'] as const;

function isConfirmChannel(channel: Channel): channel is ConfirmChannel {
  return typeof (channel as Partial<ConfirmChannel>).waitForConfirms === 'function';
}

/**
 * Consumes `queue` on `channel`, running each message through `handler` (a `wrapHandler` result), which settles it
 * exactly once:
 * - success: `channel.ack`;
 * - a transient failure: a copy (same body and properties, `x-bulwark-deliveries` incremented,
 *   `x-bulwark-last-error` set) is published to `<queue>.retry` with a per-message TTL of the delay, then the
 *   original is acked: it comes back to `<queue>` after the delay, never in a hot loop;
 * - given up (exhausted, permanent): the byte-identical body goes to `<queue>.dlq` with headers
 *   `x-bulwark-attempts`, `x-bulwark-reason`, `x-bulwark-error`, then the original is acked;
 * - shutdown: `channel.nack(msg, false, true)`, the broker redelivers it later.
 *
 * The attempt number is read from the `x-bulwark-deliveries` header (absent or unreadable: attempt 1), so a
 * restarted consumer keeps counting. A message the broker redelivers after a lost channel or a release keeps its
 * attempt number.
 *
 * Each settlement resolves only once the broker has processed it: after the ack or nack, a `basic.qos` round trip
 * on the same channel (settlements of one turn share it). So `handle.shutdown()` resolves only when every
 * settlement has reached the broker, and a `connection.close()` after it loses none. consumeRabbit owns the
 * channel's prefetch: give each consumer its own channel.
 *
 * A message is only ever settled on the channel it came from; once that channel has closed (or is closing), its
 * settlements are skipped (the broker redelivers those messages), so a reconnect never produces a 406 "unknown
 * delivery tag". With a confirm channel (`createConfirmChannel`), the retry and dead-letter copies are confirmed by
 * the broker before the original is acked; otherwise they are at least written out first. Copies are published
 * `mandatory`, so one no queue takes (a deleted retry or dead-letter queue) counts as refused. A copy the broker
 * refuses is reported to `onError` and the original is requeued after `requeueDelayMs`. Delivery is at least once:
 * a channel lost between the copy and the ack delivers the message twice.
 *
 * When the channel or its connection closes, or the broker cancels the subscription, the consumer stops:
 * `consumer.closed` resolves with the reason, `onClose` is called, `consumerTag` becomes undefined. Reconnecting is
 * the application's: a new connection, channel and `consumeRabbit` (see the docs' reconnection example). The
 * consumer watches the channel's and connection's errors without handling them: register your own `'error'`
 * listeners, or a dropped socket is an uncaught error.
 *
 * Backpressure: pass the consumer's `pause` and `resume` to `wrapHandler`'s `onPause` and `onResume`, so an open
 * breaker stops the subscription instead of burning messages into the dead-letter queue.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const connection = await connect('amqp://127.0.0.1');
 * connection.on('error', (error) => console.error('RabbitMQ connection error', error)); // else a drop crashes
 * const channel = await connection.createConfirmChannel();
 * channel.on('error', (error) => console.error('RabbitMQ channel error', error));
 * await declareRabbitTopology(channel, { queue: 'orders' });
 *
 * let consumer: RabbitConsumer | undefined;
 * const handle = wrapHandler(async (body: Buffer) => save(JSON.parse(body.toString())), {
 *   policy: pipeline(retry({ maxAttempts: 2 }), circuitBreaker()),
 *   maxDeliveries: 5,
 *   onPause: () => void consumer?.pause(),
 *   onResume: () => void consumer?.resume(),
 * });
 * consumer = await consumeRabbit(channel, { queue: 'orders', handler: handle, prefetch: 20 });
 * void consumer.closed.then(({ reason, error }) => {
 *   if (reason !== 'cancelled') console.error(`consumer stopped (${reason}): reconnect`, error);
 * });
 *
 * // Graceful shutdown: stop taking messages, then wait for (or release) those in flight: once shutdown() has
 * // resolved, every settlement has reached the broker.
 * await consumer.cancel();
 * await handle.shutdown(5_000);
 * await connection.close();
 * ```
 */
export async function consumeRabbit(
  rabbitChannel: RabbitChannel,
  options: ConsumeRabbitOptions,
): Promise<RabbitConsumer> {
  const channel = amqplibChannel(rabbitChannel);
  const check = new Checker('consumeRabbit');
  if (check.object('', options, OPTION_NAMES)) {
    if (typeof options.queue !== 'string' || options.queue === '') {
      check.fail('queue', options.queue, 'a non-empty string');
    }
    if (typeof options.handler !== 'function') check.fail('handler', options.handler, 'a wrapHandler() result');
    check.number('prefetch', options.prefetch, { min: 0, max: 65_535, integer: true });
    check.fn('onError', options.onError);
    check.number('requeueDelayMs', options.requeueDelayMs, { min: 0, max: 2_147_483_647 });
    check.fn('onClose', options.onClose);
  } else if (options === undefined) check.fail('options', options, 'an object with at least queue and handler');
  if (!hasMethod(channel, 'consume')) {
    check.fail('channel', channel, 'an amqplib channel (connection.createConfirmChannel())');
  }
  check.done();
  const { queue, handler, onError, onClose } = options;
  const prefetch = options.prefetch ?? 10;
  const requeueDelayMs = options.requeueDelayMs ?? 1_000;
  const names = namesOf(queue);
  const report = (error: unknown): void => {
    try {
      onError?.(error);
    } catch {
      // A failing error reporter must not become an unhandled rejection.
    }
  };

  // Delivery tags belong to the channel: once it is closed, acking on it throws, and acking on another channel
  // would be a 406 that closes that one too. The broker redelivers whatever this channel left unsettled.
  let closed = false;
  /** Cut short when the channel closes: requeue delays waiting on it. */
  const onChannelClosed = new Set<() => void>();

  // Why the channel closed. errorMonitor sees 'error' events without handling them: an application without its
  // own 'error' listener still gets Node's default (a crash), as it would without bulwark.
  let closeError: unknown;
  const noteError = (error: unknown): void => {
    closeError ??= error;
  };
  (channel as EventEmitter).on(errorMonitor, noteError);
  const unwatchConnection = watchConnection((channel as { connection?: unknown }).connection, noteError);

  let resolveClosed!: (closed: RabbitConsumerClosed) => void;
  const closedPromise = new Promise<RabbitConsumerClosed>((resolve) => {
    resolveClosed = resolve;
  });
  let stopped = false;
  /** The consumer stopped for good: once, with the first reason. */
  const stop = (reason: RabbitConsumerClosed['reason'], error: unknown): void => {
    if (stopped) return;
    stopped = true;
    consumerTag = undefined;
    const info: RabbitConsumerClosed = { reason, error };
    resolveClosed(info);
    try {
      onClose?.(info);
    } catch (hookError) {
      report(hookError);
    }
  };

  channel.once('close', () => {
    closed = true;
    consumerTag = undefined;
    (channel as EventEmitter).off(errorMonitor, noteError);
    channel.off('return', onReturn);
    for (const wake of [...onChannelClosed]) wake();
    onChannelClosed.clear();
    // A dropped connection emits the channel's 'close' before its own 'close' (which carries the reason): report
    // after the events of this turn.
    queueMicrotask(() => {
      unwatchConnection();
      stop('channel_closed', closeError);
    });
  });

  /**
   * Resolves once the broker has processed every frame this channel sent before the call: a `basic.qos` round trip
   * (with the prefetch already set), whose reply the broker sends only after the frames ahead of it on the
   * channel. amqplib has no confirmation of an ack; without this, a `connection.close()` right after the last ack
   * can overtake it (the frames of each channel are buffered apart) and the broker redelivers a message that was
   * processed. Settlements made in the same turn share one round trip.
   */
  let barrierWaiting: Promise<void> | undefined;
  let barrierTail: Promise<void> = Promise.resolve();
  const synced = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (barrierWaiting !== undefined) return barrierWaiting;
    const next: Promise<void> = barrierTail.then(() => {
      // From here on, a settlement needs the next round trip: this one may be written before it.
      barrierWaiting = undefined;
      if (closed) return;
      return channel.prefetch(prefetch).then(
        () => undefined,
        () => undefined, // The channel closed meanwhile: the broker redelivers what it did not take.
      );
    });
    barrierWaiting = next;
    barrierTail = next;
    return next;
  };

  /** Resolves after `ms`, or at once when the channel closes. */
  const held = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      let timer: TimerHandle;
      const wake = (): void => {
        onChannelClosed.delete(wake);
        systemClock.clearTimeout(timer);
        resolve();
      };
      onChannelClosed.add(wake);
      // Unref'd: a held message alone does not keep the process alive (the broker requeues it if the process ends).
      timer = systemClock.setTimeout(wake, ms, true);
    });

  /** Copies being published, to match the broker's returns (unroutable copies) to. */
  const pendingCopies = new Set<PendingCopy>();
  const onReturn = (returned: Message): void => {
    for (const p of pendingCopies) {
      if (!p.returned && p.routingKey === returned.fields.routingKey && p.content.equals(returned.content)) {
        p.returned = true;
        return;
      }
    }
  };
  channel.on('return', onReturn);

  /** Resolves once the broker (confirm channel) or the socket (plain channel) has taken the publish. */
  const publish = (routingKey: string, content: Buffer, publishOptions: Options.Publish): Promise<void> => {
    if (isConfirmChannel(channel)) {
      return new Promise<void>((resolve, reject) => {
        channel.sendToQueue(routingKey, content, publishOptions, (err: unknown) =>
          err ? reject(err instanceof Error ? err : new Error(`publish to ${routingKey} was refused`)) : resolve(),
        );
      });
    }
    if (channel.sendToQueue(routingKey, content, publishOptions)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        channel.off('drain', done);
        channel.off('close', done);
        resolve();
      };
      channel.on('drain', done);
      channel.on('close', done);
    });
  };

  /**
   * Publishes a copy of `msg` with its headers (those amqplib can encode again) plus `extra`; if even that cannot
   * be encoded (headers beyond the frame size, say), with bulwark's headers only.
   */
  const publishCopy = async (
    routingKey: string,
    msg: ConsumeMessage,
    extra: Record<string, unknown>,
    expiration?: string,
  ): Promise<void> => {
    // Mandatory: a copy no queue takes (the retry or dead-letter queue was deleted) comes back as a basic.return,
    // which the broker sends before the copy's confirm. Without it the copy would be confirmed and dropped, and the
    // original acked: a silent loss.
    const pending: PendingCopy = { routingKey, content: msg.content, returned: false };
    pendingCopies.add(pending);
    try {
      try {
        await publish(routingKey, msg.content, copyOptions(msg, extra, expiration, true));
      } catch (error) {
        if (closed || channelGone(error) || !encodingFailed(error)) throw error;
        report(error);
        await publish(routingKey, msg.content, copyOptions(msg, extra, expiration, false));
      }
      // A plain channel has no confirm: a round trip makes sure any return has arrived.
      if (!isConfirmChannel(channel)) await synced();
      if (pending.returned) {
        throw new Error(
          `consumeRabbit: the broker could not route the copy to queue "${routingKey}" (was it deleted? ` +
            `declareRabbitTopology declares it); the original is requeued`,
        );
      }
    } finally {
      pendingCopies.delete(pending);
    }
  };

  /**
   * Runs a settlement unless the channel is gone, then waits until the broker has processed it (see `synced`), so
   * the wrapped handler's settlement (and `handle.shutdown()`) resolve only once it has reached the broker. A
   * failure of the channel itself is not the handler's.
   */
  const onChannel = async (msg: ConsumeMessage, settle: () => void | Promise<void>): Promise<void> => {
    if (closed) return;
    try {
      await settle();
    } catch (error) {
      // Lost mid-settlement, or closing (the application closed the connection first): the broker redelivers the
      // original, and there is no channel left to requeue it on.
      if (closed || channelGone(error)) return;
      report(error);
      // The copy was refused: hand the original back rather than leave it unsettled on the channel, after a pause,
      // so that a refusal that lasts is not a hot requeue loop.
      await held(requeueDelayMs);
      if (closed) return;
      try {
        channel.nack(msg, false, true);
      } catch (nackError) {
        if (!closed) report(nackError);
      }
    }
    await synced();
  };

  const deliveryOf = (msg: ConsumeMessage): Delivery<Buffer> => {
    const attempt = deliveriesOf(msg.properties.headers?.[DELIVERIES_HEADER]) + 1;
    return {
      body: msg.content,
      attempt,
      headers: stringHeaders(msg.properties.headers),
      ack: () => onChannel(msg, () => channel.ack(msg)),
      retryLater: (delayMs, error) =>
        onChannel(msg, async () => {
          const ms = Number.isFinite(delayMs) ? Math.round(delayMs) : 1;
          const expiration = String(Math.min(MAX_EXPIRATION_MS, Math.max(1, ms)));
          const extra = {
            [DELIVERIES_HEADER]: attempt,
            'x-bulwark-last-error': describeError(error, MAX_ERROR_HEADER_LENGTH),
          };
          await publishCopy(names.retryQueue, msg, extra, expiration);
          if (!closed) channel.ack(msg);
        }),
      deadLetter: (dead: DeadLetter) =>
        onChannel(msg, async () => {
          const extra = {
            [DELIVERIES_HEADER]: attempt,
            // A count that is not a safe integer (a broken adapter) would make amqplib's encoder throw.
            'x-bulwark-attempts': Number.isSafeInteger(dead.attempts) ? dead.attempts : String(dead.attempts),
            'x-bulwark-reason': dead.reason,
            'x-bulwark-error': describeError(dead.error, MAX_ERROR_HEADER_LENGTH),
          };
          await publishCopy(names.deadLetterQueue, msg, extra);
          if (!closed) channel.ack(msg);
        }),
      release: () => onChannel(msg, () => channel.nack(msg, false, true)),
    };
  };

  const onMessage = (msg: ConsumeMessage | null): void => {
    // null: the broker cancelled the subscription (the queue was deleted, say).
    if (msg === null) {
      cancelled = true;
      stop('broker_cancelled', undefined);
      return;
    }
    if (handler.stopping === true && !cancelled) {
      // The handler was shut down while the subscription still runs (no cancel() first): it releases every
      // message, and the broker would hand each straight back, a hot loop. Stop the subscription here.
      cancelled = true;
      serial(unsubscribe)
        .finally(() => stop('cancelled', undefined))
        .catch(report);
    }
    let settled: Promise<unknown>;
    try {
      settled = handler(deliveryOf(msg));
    } catch (error) {
      settled = Promise.reject(error);
    }
    Promise.resolve(settled).catch(report);
  };

  let consumerTag: string | undefined;
  let cancelled = false;
  let busy: Promise<void> = Promise.resolve();
  /** Serialises subscribe and unsubscribe, so a quick pause/resume pair cannot leave two subscriptions. */
  const serial = (step: () => Promise<void>): Promise<void> => {
    const next = busy.then(step, step);
    busy = next.catch(() => undefined);
    return next;
  };
  const subscribe = async (): Promise<void> => {
    if (cancelled || closed || consumerTag !== undefined) return;
    const tag = (await channel.consume(queue, onMessage, { noAck: false })).consumerTag;
    // The channel may have closed, or the broker cancelled, while the subscription was being made.
    if (!closed && !stopped) consumerTag = tag;
  };
  const unsubscribe = async (): Promise<void> => {
    const tag = consumerTag;
    if (tag === undefined || closed) return;
    consumerTag = undefined;
    await channel.cancel(tag);
  };

  try {
    await channel.prefetch(prefetch);
    await serial(subscribe);
  } catch (error) {
    // A channel that is already closed (or closes now) never emits 'close' again: drop the listeners here.
    (channel as EventEmitter).off(errorMonitor, noteError);
    channel.off('return', onReturn);
    unwatchConnection();
    throw error;
  }

  return {
    get consumerTag() {
      return consumerTag;
    },
    closed: closedPromise,
    pause: () => serial(unsubscribe),
    resume: () => serial(subscribe),
    cancel: () => {
      cancelled = true;
      return serial(unsubscribe).finally(() => stop('cancelled', undefined));
    },
  };
}
