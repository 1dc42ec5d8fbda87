/**
 * The parts of a NATS JetStream client that bulwark uses, as structural types. Both nats.js lines fit them: 2.x
 * (the `nats` package) and 3.x (`@nats-io/transport-node` with `@nats-io/jetstream`). Nothing here imports either
 * package, so the published declarations compile for a user who installed only one client, or only amqplib
 * (`skipLibCheck: false`).
 */

/**
 * The headers of a NATS message, as bulwark reads them: nats.js's `MsgHdrs` (2.x and 3.x) fits.
 *
 * @example
 * ```ts
 * const reason = msg.headers?.get(JETSTREAM_DEAD_LETTER_HEADERS.reason);
 * ```
 */
export interface NatsHeaders {
  /** The header names, as written. */
  keys(): string[];
  /** Every value of header `key` (empty if absent). */
  values(key: string): string[];
  /** The first value of header `key` (`''` if absent). */
  get(key: string): string;
}

/**
 * A JetStream message, as bulwark uses it: nats.js's `JsMsg` (2.x and 3.x) fits.
 *
 * @example
 * ```ts
 * const msg = await consumer.next(); // a JsMsg of either client
 * if (msg) await handle(jetstreamDelivery(msg));
 * ```
 */
export interface JetStreamMessage {
  /** The body. */
  readonly data: Uint8Array;
  /** The subject it was published to. */
  readonly subject: string;
  /** Its headers, if it has any. */
  readonly headers?: NatsHeaders | undefined;
  /** Where it is stored, and how many times it was delivered (this delivery included). */
  readonly info: {
    readonly stream: string;
    readonly streamSequence: number;
    readonly deliveryCount: number;
  };
  /** Acks it and waits for the server's confirmation. */
  ackAck(): Promise<unknown>;
  /** Asks for a redelivery after `millis` ms. */
  nak(millis?: number): void;
  /** Terminates it: never delivered again. */
  term(reason?: string): void;
  /** Resets the server's ack-wait timer. */
  working(): void;
}

/**
 * What a JetStream client publishes with: nats.js's `JetStreamClient` (`nc.jetstream()` in 2.x, `jetstream(nc)`
 * from `@nats-io/jetstream` in 3.x) fits.
 *
 * @example
 * ```ts
 * consumeJetStream(consumer, handle, { deadLetterSubject: 'dlq.ORDERS', js: jetstream(nc) });
 * ```
 */
export interface JetStreamPublisher {
  /** Publishes `payload` to `subject` and waits for the stream's acknowledgement. */
  publish(subject: string, payload: Uint8Array, options?: { headers?: NatsHeaders }): Promise<unknown>;
}

/**
 * The messages of one `consume()` call: nats.js's `ConsumerMessages` (2.x and 3.x) fits.
 *
 * @example
 * ```ts
 * const messages = await consumer.consume({ max_messages: 10, abort_on_missing_resource: true });
 * ```
 */
export interface JetStreamMessages<M extends JetStreamMessage = JetStreamMessage> extends AsyncIterable<M> {
  /** Stops pulling; the iteration ends once the buffered messages are taken. */
  stop(): void;
}

/**
 * A JetStream pull consumer, as {@link consumeJetStream} uses it: nats.js's `Consumer` (`js.consumers.get(stream,
 * durable)`, 2.x and 3.x) fits.
 *
 * @example
 * ```ts
 * const consumer = await js.consumers.get('ORDERS', 'worker');
 * consumeJetStream(consumer, handle);
 * ```
 */
export interface JetStreamConsumer<M extends JetStreamMessage = JetStreamMessage> {
  /** Starts a pull subscription. */
  consume(options: { max_messages: number; abort_on_missing_resource: boolean }): Promise<JetStreamMessages<M>>;
  /** The consumer's configuration (`cached`: without asking the server again). */
  info(cached?: boolean): Promise<{ readonly config: { readonly max_deliver?: number | undefined } }>;
}

/** The stream settings {@link declareJetStreamTopology} reads and writes (nats.js's `StreamConfig` fits). */
export interface JetStreamStreamSettings {
  name?: string;
  subjects?: string[];
  /** `'limits'`, `'workqueue'` or `'interest'`. */
  retention?: string;
  /** In nanoseconds. */
  max_age?: number;
}

/** The consumer settings {@link declareJetStreamTopology} reads and writes (nats.js's `ConsumerConfig` fits). */
export interface JetStreamConsumerSettings {
  durable_name?: string;
  /** `'explicit'`, `'all'` or `'none'`. */
  ack_policy?: string;
  deliver_policy?: string;
  filter_subject?: string;
  /** In nanoseconds. */
  ack_wait?: number;
  max_deliver?: number;
  max_ack_pending?: number;
}

/**
 * A JetStream manager, as {@link declareJetStreamTopology} uses it: nats.js's `JetStreamManager`
 * (`await nc.jetstreamManager()` in 2.x, `await jetstreamManager(nc)` from `@nats-io/jetstream` in 3.x) fits.
 *
 * @example
 * ```ts
 * await declareJetStreamTopology(await jetstreamManager(nc), { stream: 'ORDERS', subjects: ['orders.>'], consumer: 'worker' });
 * ```
 */
export interface JetStreamAdmin {
  readonly streams: {
    /** A stream's settings; rejects with a "stream not found" API error (10059) when it does not exist. */
    info(stream: string): Promise<{ readonly config: JetStreamStreamSettings }>;
    /** Creates a stream. */
    add(config: JetStreamStreamSettings): Promise<unknown>;
    /** Updates a stream's settings. */
    update(stream: string, config: JetStreamStreamSettings): Promise<unknown>;
  };
  readonly consumers: {
    /** A durable consumer's settings; rejects with a "consumer not found" API error (10014) when it does not exist. */
    info(stream: string, consumer: string): Promise<{ readonly config: JetStreamConsumerSettings }>;
    /** Creates a durable consumer. */
    add(stream: string, config: JetStreamConsumerSettings): Promise<unknown>;
    /** Updates a durable consumer's settings. */
    update(stream: string, consumer: string, config: JetStreamConsumerSettings): Promise<unknown>;
  };
}

/**
 * The JetStream API error code of `error` (`10059` stream not found, ...), from either client: 2.x puts it at
 * `error.api_error.err_code`, 3.x at `error.code` (a number; 2.x's `code` is a string).
 * @internal
 */
export function jetStreamErrorCode(error: unknown): number | undefined {
  const e = error as { code?: unknown; api_error?: { err_code?: unknown } } | null;
  const code = typeof e?.code === 'number' ? e.code : e?.api_error?.err_code;
  return typeof code === 'number' ? code : undefined;
}
