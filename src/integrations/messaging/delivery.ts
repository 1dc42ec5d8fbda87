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

/**
 * A short, one-line description of a thrown value for a header or a log line (`Name: message`), at most
 * `maxLength` characters (longer text is cut and ends with `…`). Total: it never throws, whatever was thrown
 * (`Object.create(null)`, an object whose `toString` or `message` getter throws, a revoked `Proxy`, a Symbol, a
 * BigInt, a string of megabytes).
 * @internal
 */
export function describeError(error: unknown, maxLength: number): string {
  let text: string;
  try {
    text = describeUnsafe(error, maxLength);
  } catch {
    // Only the type is safe to read now: a revoked Proxy throws on any other operation.
    text = `[unprintable ${typeof error}]`;
  }
  return oneLine(text, maxLength);
}

function describeUnsafe(error: unknown, max: number): string {
  switch (typeof error) {
    case 'string':
      return error.slice(0, max + 1);
    case 'symbol':
      return error.toString();
    case 'bigint':
      return `${error.toString().slice(0, max)}n`;
    case 'object':
      if (error === null) return 'null';
      break;
    case 'function':
      break;
    default:
      return String(error);
  }
  // An object: every read may run user code (getters, Proxy traps) and throw; each is guarded on its own, so what
  // can be read is.
  let name: unknown;
  let message: unknown;
  try {
    name = (error as { name?: unknown }).name;
  } catch {
    name = undefined;
  }
  try {
    message = (error as { message?: unknown }).message;
  } catch {
    message = undefined;
    if (typeof name === 'string' && name !== '') return `${name.slice(0, max)}: [message unreadable]`;
  }
  const label = typeof name === 'string' && name !== '' ? name.slice(0, max) : undefined;
  if (typeof message === 'string') {
    const m = message.slice(0, max + 1);
    if (label === undefined) return m;
    return m === '' ? label : `${label}: ${m}`;
  }
  let text: string | undefined;
  try {
    text = String(error);
  } catch {
    text = undefined;
  }
  if (text === '[object Object]') {
    try {
      // A plain object thrown as an error ({ code: 'E_X' }): its fields say more than its type.
      const json: unknown = JSON.stringify(error);
      if (typeof json === 'string') text = json;
    } catch {
      // keep '[object Object]'
    }
  }
  if (text !== undefined) return text;
  return label !== undefined ? label : `[unprintable ${typeof error}]`;
}

/** Control characters become spaces (a header or a log line stays one line); cut to `max` with an ellipsis. */
function oneLine(text: string, max: number): string {
  let t = text.length > max ? text.slice(0, Math.max(0, max - 1)) : text;
  // Do not leave half of a surrogate pair at the cut.
  if (t.length > 0 && t.length < text.length) {
    const last = t.charCodeAt(t.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) t = t.slice(0, -1);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters is the point
  t = t.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return t.length < text.length ? `${t}…` : t;
}
