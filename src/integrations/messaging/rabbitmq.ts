import type { Channel, ConfirmChannel, ConsumeMessage, MessageProperties, Options } from 'amqplib';
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
 * @example
 * ```ts
 * const channel = await connection.createConfirmChannel();
 * const { queue, deadLetterQueue } = await declareRabbitTopology(channel, { queue: 'orders' });
 * ```
 */
export async function declareRabbitTopology(channel: Channel, options: RabbitTopologyOptions): Promise<RabbitTopology> {
  if (typeof options?.queue !== 'string' || options.queue === '') {
    throw new TypeError('declareRabbitTopology: options.queue must be a non-empty string');
  }
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
   * refused (the message is then requeued), a handler wrapper that threw. @defaultValue none (ignored)
   */
  onError?: (error: unknown) => void;
}

/** A running consumer, from {@link consumeRabbit}. */
export interface RabbitConsumer {
  /** The broker's tag of the current subscription (a new one after each `resume()`); undefined while paused. */
  readonly consumerTag: string | undefined;
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
const MAX_ERROR_LENGTH = 512;

/** A short, header-safe description of a failure. */
function describe(error: unknown): string {
  let text: string;
  if (error instanceof Error) text = error.message ? `${error.name}: ${error.message}` : error.name;
  else text = String(error);
  return text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH - 1)}…` : text;
}

/** Header values as strings, for `Delivery.headers`. */
function stringHeaders(headers: MessageProperties['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers ?? {})) {
    if (value === undefined || value === null) continue;
    if (Buffer.isBuffer(value)) out[key] = value.toString('utf8');
    else if (typeof value === 'object') out[key] = JSON.stringify(value);
    else out[key] = String(value);
  }
  return out;
}

/** The deliveries so far, from the header; 0 when absent or unreadable. */
function deliveriesOf(msg: ConsumeMessage): number {
  const raw: unknown = msg.properties.headers?.[DELIVERIES_HEADER];
  const n = Number(raw ?? 0);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

/**
 * The publish options of a copy of `msg`: its properties and headers (without broker-owned ones), plus `extra`.
 * `expiration` and `userId` are not copied: the copy gets its own TTL, and a `userId` that differs from this
 * connection's user would make the broker refuse the publish.
 */
function copyOptions(msg: ConsumeMessage, extra: Record<string, unknown>, expiration?: string): Options.Publish {
  const p = msg.properties;
  const headers: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.headers ?? {})) {
    if (!BROKER_HEADERS.has(k) && !k.startsWith('x-last-death-')) headers[k] = v;
  }
  Object.assign(headers, extra);
  const options: Options.Publish = { headers };
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
 * The attempt number is read from the `x-bulwark-deliveries` header (absent: attempt 1), so a restarted consumer
 * keeps counting. A message the broker redelivers after a lost channel or a release keeps its attempt number.
 *
 * A message is only ever settled on the channel it came from; once that channel has closed, its settlements are
 * skipped (the broker redelivers those messages), so a reconnect never produces a 406 "unknown delivery tag".
 * With a confirm channel (`createConfirmChannel`), the retry and dead-letter copies are confirmed by the broker
 * before the original is acked; otherwise they are at least written out first. Delivery is at least once: a channel
 * lost between the copy and the ack delivers the message twice.
 *
 * Backpressure: pass the consumer's `pause` and `resume` to `wrapHandler`'s `onPause` and `onResume`, so an open
 * breaker stops the subscription instead of burning messages into the dead-letter queue.
 *
 * @example
 * ```ts
 * const connection = await connect('amqp://127.0.0.1');
 * const channel = await connection.createConfirmChannel();
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
 *
 * // Graceful shutdown: stop taking messages, then wait for (or release) those in flight.
 * await consumer.cancel();
 * await handle.shutdown(5_000);
 * await connection.close();
 * ```
 */
export async function consumeRabbit(channel: Channel, options: ConsumeRabbitOptions): Promise<RabbitConsumer> {
  const { queue, handler, onError } = options ?? ({} as ConsumeRabbitOptions);
  const prefetch = options?.prefetch ?? 10;
  if (typeof queue !== 'string' || queue === '') {
    throw new TypeError('consumeRabbit: options.queue must be a non-empty string');
  }
  if (typeof handler !== 'function') throw new TypeError('consumeRabbit: options.handler must be a wrapped handler');
  if (!Number.isInteger(prefetch) || prefetch < 0) {
    throw new TypeError(`consumeRabbit: options.prefetch must be an integer >= 0, got ${String(prefetch)}`);
  }
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
  channel.once('close', () => {
    closed = true;
  });

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

  /** Runs a settlement unless the channel is gone; a failure of the channel itself is not the handler's. */
  const onChannel = async (msg: ConsumeMessage, settle: () => void | Promise<void>): Promise<void> => {
    if (closed) return;
    try {
      await settle();
    } catch (error) {
      if (closed) return; // Lost mid-settlement: the broker redelivers the original.
      report(error);
      // The copy was refused: hand the original back rather than leave it unsettled on the channel.
      try {
        channel.nack(msg, false, true);
      } catch (nackError) {
        if (!closed) report(nackError);
      }
    }
  };

  const deliveryOf = (msg: ConsumeMessage): Delivery<Buffer> => {
    const attempt = deliveriesOf(msg) + 1;
    return {
      body: msg.content,
      attempt,
      headers: stringHeaders(msg.properties.headers),
      ack: () => onChannel(msg, () => channel.ack(msg)),
      retryLater: (delayMs, error) =>
        onChannel(msg, async () => {
          const expiration = String(Math.max(1, Math.round(Number.isFinite(delayMs) ? delayMs : 1)));
          const copy = copyOptions(
            msg,
            { [DELIVERIES_HEADER]: attempt, 'x-bulwark-last-error': describe(error) },
            expiration,
          );
          await publish(names.retryQueue, msg.content, copy);
          if (!closed) channel.ack(msg);
        }),
      deadLetter: (dead: DeadLetter) =>
        onChannel(msg, async () => {
          const copy = copyOptions(msg, {
            [DELIVERIES_HEADER]: attempt,
            'x-bulwark-attempts': dead.attempts,
            'x-bulwark-reason': dead.reason,
            'x-bulwark-error': describe(dead.error),
          });
          await publish(names.deadLetterQueue, msg.content, copy);
          if (!closed) channel.ack(msg);
        }),
      release: () => onChannel(msg, () => channel.nack(msg, false, true)),
    };
  };

  const onMessage = (msg: ConsumeMessage | null): void => {
    // null: the broker cancelled the subscription (the queue was deleted, say).
    if (msg === null) {
      consumerTag = undefined;
      return;
    }
    handler(deliveryOf(msg)).catch(report);
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
    consumerTag = (await channel.consume(queue, onMessage, { noAck: false })).consumerTag;
  };
  const unsubscribe = async (): Promise<void> => {
    const tag = consumerTag;
    if (tag === undefined || closed) return;
    consumerTag = undefined;
    await channel.cancel(tag);
  };

  await channel.prefetch(prefetch);
  await serial(subscribe);

  return {
    get consumerTag() {
      return consumerTag;
    },
    pause: () => serial(unsubscribe),
    resume: () => serial(subscribe),
    cancel: () => {
      cancelled = true;
      return serial(unsubscribe);
    },
  };
}
