/**
 * The broker-neutral view of one message delivery. A broker adapter (RabbitMQ, NATS JetStream) implements it;
 * `wrapHandler` settles every delivery exactly once through it.
 */

/** Why a message was dead-lettered. */
export interface DeadLetter {
  /** `'permanent'`: the handler failed in a way no retry fixes; `'exhausted'`: out of deliveries. */
  readonly reason: 'permanent' | 'exhausted';
  /** The last failure. */
  readonly error: unknown;
  /** Deliveries made, this one included. */
  readonly attempts: number;
}

/**
 * One delivery of a message, as a broker adapter exposes it. Every method settles the delivery; `wrapHandler`
 * calls exactly one of `ack`, `retryLater`, `deadLetter`, `release`, exactly once, and waits for the promise it
 * returns (so does `shutdown()`): an adapter should resolve it once the broker has the settlement, so that closing
 * the connection after `shutdown()` loses nothing.
 *
 * @example
 * ```ts
 * const delivery: Delivery<Buffer> = {
 *   body: msg.content, attempt: 1, headers: {},
 *   ack: () => channel.ack(msg), retryLater: (ms) => republishWithDelay(msg, ms),
 *   deadLetter: (d) => publishToDlq(msg, d), release: () => channel.nack(msg, false, true),
 * };
 * ```
 */
export interface Delivery<M = unknown> {
  /** The message as the handler receives it (decoded by the adapter, or the raw body). */
  readonly body: M;
  /**
   * Which delivery this is, 1 for the first, from broker metadata (JetStream's delivery count, an attempt header
   * for RabbitMQ): a restarted consumer keeps counting.
   */
  readonly attempt: number;
  /** Message headers, as strings. */
  readonly headers: Readonly<Record<string, string>>;
  /** The handler succeeded: remove the message. */
  ack(): void | Promise<void>;
  /** A transient failure: have the broker deliver the message again after `delayMs`, never sooner. */
  retryLater(delayMs: number, error: unknown): void | Promise<void>;
  /** Give up: move the message, byte-identical, to the dead-letter destination with the reason. */
  deadLetter(dead: DeadLetter): void | Promise<void>;
  /** Shutdown: hand the message back unsettled, to be delivered again later (to this or another consumer). */
  release(): void | Promise<void>;
  /** Optional: tell the broker the handler is still working (extends an ack deadline). */
  working?(): void | Promise<void>;
}
