/**
 * The NATS JetStream adapter of `bulwark/messaging`, for nats.js 2.x (`nats`) and 3.x (`@nats-io/transport-node`
 * with `@nats-io/jetstream`): a {@link Delivery} over a `JsMsg`, and a pull-consume loop that feeds a wrapped
 * handler.
 *
 * Nothing is imported from either client, not even types (see `nats-types.ts`): everything bulwark needs comes
 * from the objects the user passes in, and the dead letter's headers are built here (the NATS header block is a
 * protocol format, the same for both clients). Users of the RabbitMQ adapter import the same `bulwark/messaging`
 * entry without any NATS client installed.
 */
import { type Clock, systemClock, type TimerHandle } from '../../core/clock.js';
import { describeError } from '../../core/describe.js';
import { Checker } from '../../errors/validate.js';
import { hasMethod } from '../validate.js';
import type { DeadLetter, Delivery } from './delivery.js';
import {
  type JetStreamConsumer,
  type JetStreamMessage,
  type JetStreamMessages,
  type JetStreamPublisher,
  jetStreamErrorCode,
  type NatsHeaders,
} from './nats-types.js';
import type { WrappedHandler } from './wrap-handler.js';

/**
 * Options of {@link jetstreamDelivery}. `M` is the client's message type (`JsMsg` of nats.js 2.x or 3.x), inferred
 * from the message or consumer you pass.
 */
export interface JetStreamDeliveryOptions<M extends JetStreamMessage = JetStreamMessage> {
  /**
   * Where exhausted and permanently failing messages are published (byte-identical data, the original headers
   * plus the `x-bulwark-*` headers of {@link JETSTREAM_DEAD_LETTER_HEADERS}) before the original is terminated.
   * Needs `js`. A stream must capture this subject (`declareJetStreamTopology` creates one), or the publish fails
   * and the message comes back after ack-wait. Without it a dead letter only terminates the message
   * (`msg.term()`), which drops it. @defaultValue none
   */
  deadLetterSubject?: string;
  /**
   * The JetStream client that publishes dead letters (`nc.jetstream()` with nats.js 2.x, `jetstream(nc)` with 3.x).
   * Required with `deadLetterSubject`.
   */
  js?: JetStreamPublisher;
  /**
   * The delay of a `release` (shutdown, or a consumer that stops pulling), in ms: the message is nak'd with this
   * delay rather than at once, so a consumer restarting in a loop does not spin on it. @defaultValue 1_000
   */
  releaseDelayMs?: number;
  /**
   * Called with a {@link DeadLetterTooLargeError} when a message was dead-lettered without its body (see
   * {@link jetstreamDelivery}), and, by `consumeJetStream`, when settling a delivery fails (an `ackAck` that times
   * out, a dead-letter publish that fails: the message is not lost, the server redelivers it after ack-wait).
   * An exception it throws is ignored. @defaultValue none (ignored)
   */
  onError?: (error: unknown, msg: M) => void;
}

const DELIVERY_OPTIONS = ['deadLetterSubject', 'js', 'releaseDelayMs', 'onError'] as const;

/**
 * The headers a NATS dead letter carries, besides the message's own. The first three are the ones RabbitMQ's dead
 * letters carry (`consumeRabbit`), spelled the same. nats.js looks header names up exactly as written
 * (`msg.headers.get('x-bulwark-reason')`), so read them in this spelling.
 *
 * @example
 * ```ts
 * const letter = await jsm.streams.getMessage('ORDERS_DLQ', { last_by_subj: 'dlq.ORDERS' });
 * const reason = letter.header.get(JETSTREAM_DEAD_LETTER_HEADERS.reason); // 'exhausted' | 'permanent'
 * ```
 */
export const JETSTREAM_DEAD_LETTER_HEADERS = {
  /** Deliveries made, the last one included. */
  attempts: 'x-bulwark-attempts',
  /** `exhausted` (out of deliveries) or `permanent`. */
  reason: 'x-bulwark-reason',
  /** The last failure, `Name: message` on one line (shortened, or absent, if the dead letter would not fit). */
  error: 'x-bulwark-error',
  /** The subject the message was consumed from. */
  originalSubject: 'x-bulwark-original-subject',
  /** The stream the message was consumed from. */
  originalStream: 'x-bulwark-original-stream',
  /** The message's sequence in that stream (`jsm.streams.getMessage(stream, { seq })`). */
  originalSequence: 'x-bulwark-original-sequence',
  /**
   * Only on a dead letter published without its body, because the body did not fit under the server's
   * `max_payload` (or the dead-letter stream's `max_msg_size`): the body's size in bytes.
   */
  bodyOmitted: 'x-bulwark-body-omitted',
} as const;

/**
 * Reported to `onError` when a message's body is too large to be dead-lettered (with the dead letter's headers it
 * exceeds the server's `max_payload`, or the dead-letter stream's `max_msg_size`). The message was dead-lettered
 * without its body (a record with the `x-bulwark-body-omitted` header and the original's stream and sequence) and
 * then terminated; its body stays in the work stream at `sequence` as long as the stream's retention keeps it.
 *
 * @example
 * ```ts
 * onError: (e) => { if (isDeadLetterTooLargeError(e)) alert(`dead letter without body: ${e.stream}#${e.sequence}`); }
 * ```
 */
export class DeadLetterTooLargeError extends Error {
  /** `ERR_DEAD_LETTER_TOO_LARGE`. */
  readonly code = 'ERR_DEAD_LETTER_TOO_LARGE' as const;
  constructor(
    /** The body's size in bytes. */
    readonly bodyBytes: number,
    /** The limit it met, in bytes (`max_payload`), or undefined when the dead-letter stream refused it. */
    readonly limitBytes: number | undefined,
    /** The work stream holding the original. */
    readonly stream: string,
    /** The original's sequence in that stream. */
    readonly sequence: number,
    /** The dead-letter subject the record went to. */
    readonly deadLetterSubject: string,
  ) {
    super(
      `bulwark/messaging: message ${stream}#${sequence} (${bodyBytes} bytes) is too large to dead-letter to ` +
        `"${deadLetterSubject}" (${limitBytes === undefined ? 'refused by its stream' : `max_payload ${limitBytes}`}); ` +
        'a dead letter without its body was published and the message terminated; the body stays in the work ' +
        'stream at that sequence while its retention keeps it',
    );
    this.name = 'DeadLetterTooLargeError';
  }
}

/**
 * Whether `e` is a {@link DeadLetterTooLargeError} (across package copies).
 * @example `if (isDeadLetterTooLargeError(e)) alert(e.stream, e.sequence);`
 */
export const isDeadLetterTooLargeError = (e: unknown): e is DeadLetterTooLargeError =>
  typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ERR_DEAD_LETTER_TOO_LARGE';

/** The dead-letter error header carries one line, at most this many characters. */
const MAX_ERROR_HEADER = 1_024;

/**
 * A one-line description of whatever a handler threw, for a header, at most 1,024 characters and never empty.
 * Total (see `describeError`): a dead letter must never fail because of its error's description.
 * @internal
 * @example `errorText(new TypeError('bad input')) // 'TypeError: bad input'`
 */
export function errorText(error: unknown): string {
  const line = describeError(error, MAX_ERROR_HEADER).trim();
  return line === '' ? '(an empty description)' : line;
}

function headerRecord(h: NatsHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h === undefined) return out;
  for (const key of h.keys()) out[key] = h.values(key).join(', ');
  return out;
}

/** Checks the delivery fields of options already known to be an object. */
function validateDeliveryOptions<M extends JetStreamMessage>(check: Checker, options: JetStreamDeliveryOptions<M>) {
  const { deadLetterSubject, js, releaseDelayMs } = options;
  if (deadLetterSubject !== undefined && (typeof deadLetterSubject !== 'string' || deadLetterSubject === '')) {
    check.fail('deadLetterSubject', deadLetterSubject, 'a non-empty subject');
  }
  if (js !== undefined && !hasMethod(js, 'publish')) {
    check.fail('js', js, 'a JetStream client (nc.jetstream() with nats 2.x, jetstream(nc) with @nats-io/jetstream)');
  }
  if (deadLetterSubject !== undefined && js === undefined) {
    check.fail('js', js, 'a JetStream client to publish to deadLetterSubject');
  }
  check.number('releaseDelayMs', releaseDelayMs, { min: 0 });
  check.fn('onError', options.onError);
}

/** Calls the user's error callback; one that throws must not turn into an unhandled rejection. */
function report<M extends JetStreamMessage>(options: JetStreamDeliveryOptions<M>, error: unknown, msg: M): void {
  try {
    options.onError?.(error, msg);
  } catch {
    // ignored: see onError
  }
}

/** The largest nak delay, in ms: its nanoseconds still fit the server's int64 duration. */
const MAX_NAK_DELAY_MS = 9e12;

/**
 * A nak delay the server reads as asked. nats.js sends no delay for 0 or NaN (an immediate redelivery) and `null`
 * for Infinity; a redelivery must never come sooner than asked, so Infinity and huge delays become the largest
 * delay the server accepts (about 285 years), and NaN the release delay.
 */
function nakDelay(delayMs: number, fallbackMs: number): number {
  if (Number.isNaN(delayMs)) return fallbackMs;
  return Math.min(MAX_NAK_DELAY_MS, Math.max(0, Math.round(delayMs)));
}

/** The server's `max_payload` through the client's connection (nats.js 2.x and 3.x keep it at `js.nc`). */
function maxPayloadOf(js: JetStreamPublisher): number | undefined {
  const limit = (js as { nc?: { info?: { max_payload?: unknown } } }).nc?.info?.max_payload;
  return typeof limit === 'number' && limit > 0 ? limit : undefined;
}

/** Whether a publish failed because the message is too large (the client's check, or the stream's limit). */
function isTooLarge(error: unknown): boolean {
  // 10054: the stream's max_msg_size (JSStreamMessageExceedsMaximumErr).
  return isOverMaxPayload(error) || jetStreamErrorCode(error) === 10054;
}

/** Whether the client refused a publish over the server's max_payload (2.x: code, 3.x: an InvalidArgumentError). */
function isOverMaxPayload(error: unknown): boolean {
  const e = error as { code?: unknown; name?: unknown; message?: unknown } | null;
  if (e?.code === 'MAX_PAYLOAD_EXCEEDED') return true;
  return e?.name === 'InvalidArgumentError' && typeof e.message === 'string' && /max_payload/.test(e.message);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The headers of a dead letter, in the NATS header block format (`NATS/1.0`, a CRLF line per value, a blank line:
 * the protocol's, ADR-4). nats.js 2.x and 3.x publish any `MsgHdrs` by calling its `encode()`, so this object is
 * what both clients' `headers()` return, without importing either. Names are kept as written, like the clients'
 * default (exact match); a value's CR and LF, which would break the block, become spaces.
 * @internal
 */
export class DeadLetterHeaders implements NatsHeaders, Iterable<[string, string[]]> {
  readonly hasError = false;
  readonly status = '';
  readonly code = 0;
  readonly description = '';
  readonly #values = new Map<string, string[]>();

  get(key: string): string {
    return this.#values.get(key)?.[0] ?? '';
  }
  last(key: string): string {
    return this.#values.get(key)?.at(-1) ?? '';
  }
  has(key: string): boolean {
    return this.#values.has(key);
  }
  keys(): string[] {
    return [...this.#values.keys()];
  }
  values(key: string): string[] {
    return [...(this.#values.get(key) ?? [])];
  }
  set(key: string, value: string): void {
    this.#values.set(key, [clean(value)]);
  }
  append(key: string, value: string): void {
    const list = this.#values.get(key);
    if (list === undefined) this.#values.set(key, [clean(value)]);
    else list.push(clean(value));
  }
  delete(key: string): void {
    this.#values.delete(key);
  }
  [Symbol.iterator](): Iterator<[string, string[]]> {
    return this.#values.entries();
  }
  /** The header block as sent on the wire. */
  encode(): Uint8Array {
    let text = 'NATS/1.0';
    for (const [key, values] of this.#values) for (const value of values) text += `\r\n${key}: ${value}`;
    return encoder.encode(`${text}\r\n\r\n`);
  }
}

/** A header value on one line, trimmed (as nats.js stores it). */
const clean = (value: string): string => value.replace(/[\r\n]+/g, ' ').trim();

/** The size of headers on the wire. */
const headerBytes = (h: DeadLetterHeaders): number => h.encode().length;

/** `text` cut to at most `bytes` UTF-8 bytes, on a character boundary. */
function cutToBytes(text: string, bytes: number): string {
  const encoded = encoder.encode(text);
  if (encoded.length <= bytes) return text;
  return decoder.decode(encoded.subarray(0, Math.max(0, bytes))).replace(/\uFFFD$/, '');
}

/**
 * A {@link Delivery} over one JetStream message. `attempt` is the server's delivery count
 * (`msg.info.deliveryCount`), so a restarted consumer keeps counting; `ack` waits for the server's confirmation
 * (`ackAck`); `retryLater(ms)` is `nak(ms)`, a delayed redelivery; `deadLetter` publishes the data, byte-identical,
 * to `deadLetterSubject` (if given) and then terminates the message; `release` is `nak(releaseDelayMs)`;
 * `working` is `msg.working()` (resets the server's ack-wait timer).
 *
 * A dead letter must fit under the server's `max_payload`: if the body plus the headers do not, the
 * `x-bulwark-error` header is shortened (or dropped) first; if the body alone does not fit (or the dead-letter
 * stream's `max_msg_size` refuses it), a dead letter without the body is published (headers
 * `x-bulwark-body-omitted` and `x-bulwark-original-sequence` say which message it was), the message is terminated,
 * and `onError` receives a {@link DeadLetterTooLargeError}. Any other failed publish leaves the message
 * unterminated: the server redelivers it after ack-wait and it is dead-lettered again.
 *
 * Works with nats.js 2.x and 3.x: `msg` is either client's `JsMsg`, `js` either client's JetStream client.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const js = nc.jetstream(); // nats.js 3.x: jetstream(nc), from '@nats-io/jetstream'
 * const handle = wrapHandler(async (data: Uint8Array) => save(JSON.parse(new TextDecoder().decode(data))));
 * const msg = await (await js.consumers.get('ORDERS', 'worker')).next();
 * if (msg) await handle(jetstreamDelivery(msg, { deadLetterSubject: 'dlq.ORDERS', js }));
 * ```
 */
export function jetstreamDelivery<M extends JetStreamMessage>(
  msg: M,
  options: JetStreamDeliveryOptions<M> = {},
): Delivery<Uint8Array> {
  const check = new Checker('jetstreamDelivery');
  if (check.object('', options, DELIVERY_OPTIONS)) validateDeliveryOptions(check, options);
  check.done();
  return makeDelivery(msg, options);
}

/** Publishes the dead letter of `msg`, shortened to fit; returns the error to report if the body was left out. */
async function publishDeadLetter(
  msg: JetStreamMessage,
  dead: DeadLetter,
  subject: string,
  js: JetStreamPublisher,
): Promise<DeadLetterTooLargeError | undefined> {
  const limit = maxPayloadOf(js);
  const H = JETSTREAM_DEAD_LETTER_HEADERS;
  /** The dead letter's headers; `error` undefined leaves the error header out. */
  const build = (withOriginal: boolean, error: string | undefined, omitted?: number): DeadLetterHeaders => {
    const h = new DeadLetterHeaders();
    const original = msg.headers;
    if (withOriginal && original !== undefined) {
      for (const key of original.keys()) {
        // Nats-* headers (Nats-Msg-Id, Nats-Expected-*) would make the server dedupe or reject the copy; x-bulwark-*
        // ones are this dead letter's own (a message dead-lettered before and replayed).
        const lower = key.toLowerCase();
        if (lower.startsWith('nats-') || lower.startsWith('x-bulwark-')) continue;
        for (const value of original.values(key)) h.append(key, value);
      }
    }
    h.set(H.attempts, String(dead.attempts));
    h.set(H.reason, dead.reason);
    h.set(H.originalSubject, msg.subject);
    h.set(H.originalStream, msg.info.stream);
    h.set(H.originalSequence, String(msg.info.streamSequence));
    if (omitted !== undefined) h.set(H.bodyOmitted, String(omitted));
    if (error !== undefined && error !== '') h.set(H.error, error);
    return h;
  };
  const error = errorText(dead.error);
  const size = (h: DeadLetterHeaders, body: number): number => headerBytes(h) + body;
  let h = build(true, error);
  /** The limit reported: undefined when the stream, not max_payload, refused the dead letter. */
  let refusedBy = limit;
  if (limit !== undefined && size(h, msg.data.length) > limit) {
    // Too large: shorten bulwark's own error description first, down to nothing.
    const without = build(true, undefined);
    const line = encoder.encode(`\r\n${H.error}: `).length;
    const room = limit - size(without, msg.data.length) - line;
    h = room >= 16 ? build(true, `${cutToBytes(error, room - 3)}…`) : without;
  }
  if (limit === undefined || size(h, msg.data.length) <= limit) {
    try {
      await js.publish(subject, msg.data, { headers: h });
      return undefined;
    } catch (e) {
      if (!isTooLarge(e)) throw e;
      // Refused for its size (the dead-letter stream's max_msg_size, say): published without the body below.
      if (!isOverMaxPayload(e)) refusedBy = undefined;
    }
  }
  // The body itself does not fit: a record of the dead letter without it, which points at the original. Without
  // the original's headers (they may be what is large) and, if need be, without the error description.
  let record = build(false, error, msg.data.length);
  if (limit !== undefined && size(record, 0) > limit) record = build(false, undefined, msg.data.length);
  await js.publish(subject, new Uint8Array(0), { headers: record });
  return new DeadLetterTooLargeError(msg.data.length, refusedBy, msg.info.stream, msg.info.streamSequence, subject);
}

function makeDelivery<M extends JetStreamMessage>(msg: M, options: JetStreamDeliveryOptions<M>): Delivery<Uint8Array> {
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
      msg.nak(nakDelay(delayMs, releaseDelayMs));
    },
    async deadLetter(dead: DeadLetter) {
      const { deadLetterSubject, js } = options;
      let omitted: DeadLetterTooLargeError | undefined;
      if (deadLetterSubject !== undefined && js !== undefined) {
        // Published before the term: if the publish fails the original is not terminated and comes back after
        // ack-wait (a possible duplicate in the dead-letter stream rather than a lost message).
        omitted = await publishDeadLetter(msg, dead, deadLetterSubject, js);
      }
      // No term reason: servers before 2.10.4 ignore a `+TERM <reason>` entirely, leaving the message pending
      // until ack-wait and redelivered; the reason travels in the dead letter's headers instead.
      msg.term();
      if (omitted !== undefined) report(options, omitted, msg);
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
export interface ConsumeJetStreamOptions<M extends JetStreamMessage = JetStreamMessage>
  extends JetStreamDeliveryOptions<M> {
  /**
   * Messages pulled per request, and the most deliveries handled at once by this loop (the client buffers up to
   * this many; each waits its turn within the consumer's ack-wait). @defaultValue 100
   */
  maxMessages?: number;
  /** How often a paused loop checks `handler.paused`, in ms. @defaultValue 100 */
  pausePollMs?: number;
  /** Times the paused poll. @defaultValue `systemClock` */
  clock?: Clock;
  /**
   * Called once when the loop stops pulling, with why (the value of {@link JetStreamConsumption.closed}). An
   * exception it throws is ignored. @defaultValue none
   */
  onClose?: (closed: JetStreamClosed) => void;
}

const CONSUME_OPTIONS = [...DELIVERY_OPTIONS, 'maxMessages', 'pausePollMs', 'clock', 'onClose'] as const;

/**
 * Why a {@link consumeJetStream} loop ended: `'stopped'` (`stop()` was called), `'connection_closed'` (the NATS
 * connection closed for good: `nc.close()`, or the client gave up reconnecting), `'consumer_deleted'` (the
 * consumer or its stream is gone), `'failed'` (pulling failed otherwise: permissions, say).
 */
export type JetStreamCloseReason = 'stopped' | 'connection_closed' | 'consumer_deleted' | 'failed';

/** How a {@link consumeJetStream} loop ended: {@link JetStreamConsumption.closed}. */
export interface JetStreamClosed {
  readonly reason: JetStreamCloseReason;
  /** The error behind it (none for `'stopped'`, nor for a connection closed without one). */
  readonly error?: unknown;
}

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
  /**
   * Resolves, never rejects, as soon as the loop stops pulling, with why: after `stop()`, or on its own when the
   * connection closes or the consumer is deleted (then start a new loop on a new connection or consumer, or exit
   * and let the supervisor restart the process). Handlers still running keep running; their settlements fail on
   * a closed connection and the server redelivers those messages.
   */
  readonly closed: Promise<JetStreamClosed>;
  /**
   * Resolves when the loop has ended after `stop()` and rejects with the error when it ended on its own (the
   * connection closed, the consumer was deleted): `closed`, as a promise that fails.
   */
  readonly done: Promise<void>;
}

/** What bulwark reads of a NATS connection. */
interface ConnectionState {
  closed(): Promise<unknown>;
  isClosed(): boolean;
}

/** The connection a nats.js 2.x or 3.x consumer pulls through (`consumer.api.nc`), to learn when it closes. */
function connectionOf(consumer: JetStreamConsumer<JetStreamMessage>): ConnectionState | undefined {
  const nc = (consumer as { api?: { nc?: { closed?: unknown; isClosed?: unknown } } }).api?.nc;
  if (typeof nc?.closed !== 'function' || typeof nc.isClosed !== 'function') return undefined;
  return nc as ConnectionState;
}

/** Why pulling failed with `error`. */
function closeReasonOf(error: unknown, connectionClosed: boolean): JetStreamCloseReason {
  if (connectionClosed) return 'connection_closed';
  const e = error as { code?: unknown; message?: unknown } | null;
  // 2.x: a NatsError coded CONNECTION_CLOSED; 3.x: a ClosedConnectionError.
  if (e?.code === 'CONNECTION_CLOSED' || (e as { name?: unknown } | null)?.name === 'ClosedConnectionError') {
    return 'connection_closed';
  }
  const message = typeof e?.message === 'string' ? e.message : '';
  if (/consumer deleted|consumer not found|stream not found/i.test(message)) return 'consumer_deleted';
  return 'failed';
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
 * Max deliveries: the consumer's `max_deliver` must be -1 (unlimited) or greater than `wrapHandler`'s
 * `maxDeliveries`, so that bulwark, not the server, decides when a message is dead-lettered: the server stops
 * delivering a message after `max_deliver` deliveries without telling anyone, so a dead letter whose publish
 * failed on the last allowed delivery would never come back. `declareJetStreamTopology` sets it up so.
 *
 * Stopping: `closed` resolves with the reason when the loop stops, whether by `stop()`, a connection closed for
 * good, or a deleted consumer. nats.js reconnects on its own first (`maxReconnectAttempts`), and the loop keeps
 * pulling across a reconnect.
 *
 * Works with nats.js 2.x (`nats`) and 3.x (`@nats-io/transport-node` with `@nats-io/jetstream`): pass either
 * client's consumer and JetStream client; `onError` receives that client's `JsMsg`.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * // nats.js 3.x; with 2.x: connect from 'nats', nc.jetstream(), await nc.jetstreamManager()
 * const nc = await connect({ servers: '127.0.0.1:4222', maxReconnectAttempts: -1 });
 * const js = jetstream(nc);
 * const topology = await declareJetStreamTopology(await jetstreamManager(nc), {
 *   stream: 'ORDERS', subjects: ['orders.>'], consumer: 'worker', maxDeliveries: 5, handlerTimeoutMs: 30_000,
 * });
 * let loop: JetStreamConsumption | undefined;
 * const handle = wrapHandler(async (data: Uint8Array, { signal }) => process(data, signal), {
 *   maxDeliveries: 5,
 *   handlerTimeoutMs: 30_000,
 *   onPause: () => loop?.pause(),
 *   onResume: () => loop?.resume(),
 * });
 * loop = consumeJetStream(await js.consumers.get(topology.stream, topology.consumer), handle, {
 *   deadLetterSubject: topology.deadLetterSubject, js, maxMessages: 10,
 * });
 * void loop.closed.then(({ reason, error }) => {
 *   if (reason !== 'stopped') console.error('the consumer stopped', reason, error);
 * });
 * // shutdown
 * await Promise.all([handle.shutdown(5_000), loop.stop()]);
 * await nc.drain();
 * ```
 */
export function consumeJetStream<M extends JetStreamMessage>(
  consumer: JetStreamConsumer<M>,
  handler: WrappedHandler<Uint8Array>,
  options: ConsumeJetStreamOptions<M> = {},
): JetStreamConsumption {
  const check = new Checker('consumeJetStream');
  if (!hasMethod(consumer, 'consume')) {
    check.fail('consumer', consumer, 'a JetStream pull consumer (js.consumers.get(stream, durable))');
  }
  if (typeof handler !== 'function') check.fail('handler', handler, 'a handler made by wrapHandler');
  if (check.object('', options, CONSUME_OPTIONS)) {
    validateDeliveryOptions(check, options);
    check.number('maxMessages', options.maxMessages, { min: 1, integer: true });
    check.number('pausePollMs', options.pausePollMs, { min: 0, exclusiveMin: true });
    check.clock('clock', options.clock);
    check.fn('onClose', options.onClose);
  }
  check.done();

  const maxMessages = options.maxMessages ?? 100;
  const pausePollMs = options.pausePollMs ?? 100;
  const releaseDelayMs = options.releaseDelayMs ?? 1_000;
  const clock = options.clock ?? systemClock;
  // A superset of the delivery options: makeDelivery reads only the delivery ones.
  const deliveryOptions: JetStreamDeliveryOptions<M> = options;
  /** Set once, by whatever ends the loop first. */
  let ended: JetStreamClosed | undefined;
  let pausedByCall = false;
  let messages: JetStreamMessages<M> | undefined;
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
  const end = (closed: JetStreamClosed): void => {
    ended ??= closed;
    messages?.stop();
    signal();
  };

  // The connection closing for good ends the loop: a pull on a closed connection neither ends nor fails.
  const connection = connectionOf(consumer);
  connection?.closed().then(
    (error) => end({ reason: 'connection_closed', ...(error instanceof Error ? { error } : {}) }),
    (error: unknown) => end({ reason: 'connection_closed', error }),
  );

  /**
   * A settlement failed: the server redelivers the message after ack-wait, unless this was its last delivery
   * (`max_deliver`), when it would vanish without a word. Then the error says so (the consumer's configuration,
   * cached by nats.js, is read only on this path).
   */
  const lastDelivery = async (error: unknown, msg: M): Promise<unknown> => {
    try {
      const maxDeliver = (await consumer.info(true)).config.max_deliver;
      if (maxDeliver === undefined || maxDeliver < 1 || msg.info.deliveryCount < maxDeliver) return error;
      return new Error(
        `bulwark/messaging: settling message ${msg.info.stream}#${msg.info.streamSequence} failed on its last ` +
          `delivery (the consumer's max_deliver is ${maxDeliver}): the server will not deliver it again. Set ` +
          "max_deliver to -1 or above wrapHandler's maxDeliveries (declareJetStreamTopology does)",
        { cause: error },
      );
    } catch {
      return error;
    }
  };

  const feed = (msg: M): void => {
    let p: Promise<void>;
    try {
      p = handler(makeDelivery(msg, deliveryOptions)).then(
        () => undefined,
        async (error: unknown) => report(options, await lastDelivery(error, msg), msg),
      );
    } catch (error) {
      // A handler that throws instead of rejecting: reported; the server redelivers the message after ack-wait.
      report(options, error, msg);
      return;
    }
    const tracked = p.finally(() => {
      running.delete(tracked);
      signal();
    });
    running.add(tracked);
  };

  const loop = async (): Promise<void> => {
    while (ended === undefined) {
      if (isPaused()) {
        await sleep(pausePollMs);
        continue;
      }
      // abort_on_missing_resource: a deleted consumer or stream ends the pull with an error, instead of the
      // client retrying in silence until one of that name reappears.
      const current = await consumer.consume({ max_messages: maxMessages, abort_on_missing_resource: true });
      messages = current;
      // stop() or pause() may have come while consume() was starting.
      if (ended !== undefined || isPaused()) current.stop();
      for await (const msg of current) {
        if (ended !== undefined || isPaused()) {
          // Taken off the wire after the loop decided to stop: hand it back with a delay, not at once.
          msg.nak(releaseDelayMs);
          current.stop();
          continue;
        }
        feed(msg);
        // The concurrency limit: wait for a slot before taking the next message.
        while (running.size >= maxMessages && ended === undefined) await sleep(undefined);
        if (isPaused()) current.stop();
      }
      messages = undefined;
    }
  };

  const closed: Promise<JetStreamClosed> = loop().then(
    () => ended ?? { reason: 'stopped' },
    (error: unknown) => ended ?? { reason: closeReasonOf(error, connection?.isClosed() ?? false), error },
  );
  void closed.then((c) => {
    try {
      options.onClose?.(c);
    } catch {
      // ignored: see onClose
    }
  });
  const done = closed.then((c) => {
    if (c.reason !== 'stopped') {
      throw c.error ?? new Error(`bulwark/messaging: the JetStream consumer stopped (${c.reason})`);
    }
  });
  // `done` is observed by stop(); this keeps a failure from being an unhandled rejection when nobody awaits it.
  done.catch(() => undefined);

  return {
    async stop() {
      end({ reason: 'stopped' });
      try {
        await closed;
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
    closed,
    done,
  };
}
