import { type Channel, channel } from 'node:diagnostics_channel';
import { describeMessage } from '../core/describe.js';
import { EVENT_TYPES, type EventOf, type EventType, type Listener, type ResilienceEvent } from './types.js';

/**
 * The `node:diagnostics_channel` name an event type is published on: `'retry.attempt'` goes to
 * `'bulwark:retry:attempt'`. Channels are process-wide, so APM tools see every policy of every copy of bulwark.
 *
 * @example
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(channelName('circuit.open'), (e) => console.warn('breaker opened', e));
 * ```
 */
export function channelName(type: EventType): string {
  return `bulwark:${type.replace('.', ':')}`;
}

/**
 * One property per event type, not a Map: a policy asks with a constant type (`wants('execution.completed')`), which
 * optimised code turns into one field load instead of hashing a string per call.
 */
const CHANNELS = {} as Record<EventType, Channel>;
for (const t of EVENT_TYPES) CHANNELS[t] = channel(channelName(t));

/** @internal */
export function channelOf(type: EventType): Channel {
  return CHANNELS[type];
}

/** A table with every event type as a property, all starting undefined: one hidden class for every emitter. */
function emptyTable(): Record<EventType, Listener<EventType>[] | undefined> {
  const table = {} as Record<EventType, Listener<EventType>[] | undefined>;
  for (const t of EVENT_TYPES) table[t] = undefined;
  return table;
}

const warned = new WeakSet<object>();

/**
 * Emits a process warning the first time `owner` reports one, and never again for it: a mistake stays visible
 * without flooding the log.
 * @internal
 */
export function warnOnce(owner: object, message: string, type: string, code: string): void {
  if (warned.has(owner)) return;
  warned.add(owner);
  process.emitWarning(message, { type, code });
}

/** @internal The message of a thrown value, for a warning. */
export function messageOf(error: unknown): string {
  // Total: a listener or metrics backend may throw anything (a null-prototype object, a revoked Proxy), and
  // reporting it must never become a second error that changes the call's outcome.
  return describeMessage(error, 500);
}

/**
 * A listener that throws must not change the call's outcome, nor become an unhandled error. It is reported once
 * per listener.
 */
function reportListenerError(listener: object, type: EventType, error: unknown): void {
  warnOnce(
    listener,
    `a bulwark "${type}" listener threw (${messageOf(error)}); the call was not affected, and further throws of this listener are not reported`,
    'BulwarkListenerWarning',
    'BULWARK_LISTENER_THREW',
  );
}

/**
 * Per-policy listeners plus the process-wide diagnostics channels.
 *
 * Why `wants()` first: a policy asks before it builds an event or reads the clock for one, so with no listener
 * and no channel subscriber an event costs one property read and one `hasSubscribers` check.
 * @internal
 */
export class Emitter {
  /** Listeners per event type (undefined: none). Why an object with every type: see {@link CHANNELS}. */
  readonly #listeners = emptyTable();
  /** How many subscriptions hold each listener, per type (made on the first `on`). */
  #counts: Map<EventType, Map<Listener<EventType>, number>> | undefined;

  wants(type: EventType): boolean {
    return this.#listeners[type] !== undefined || CHANNELS[type].hasSubscribers;
  }

  emit(event: ResilienceEvent): void {
    const list = this.#listeners[event.type];
    if (list !== undefined) {
      for (const fn of list) {
        try {
          (fn as (e: ResilienceEvent) => void)(event);
        } catch (error) {
          reportListenerError(fn, event.type, error);
        }
      }
    }
    const ch = CHANNELS[event.type];
    // No try/catch: diagnostics_channel catches a throwing subscriber itself and rethrows it on the next tick,
    // as it does for every publisher in the process. The call's outcome is unaffected either way.
    if (ch.hasSubscribers) ch.publish(event);
  }

  /**
   * Adds a listener. The same function added again (directly, or through pipelines and keyed policies that share
   * this policy) is not added twice: it is counted, called once per event, and removed when every unsubscribe
   * returned for it has been called. Why: a listener reaching a shared policy by two paths must not see each
   * event twice, and one path letting go must not silence the other.
   */
  on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const fn = listener as unknown as Listener<EventType>;
    const counts = (this.#counts ??= new Map());
    let byType = counts.get(type);
    if (byType === undefined) {
      byType = new Map();
      counts.set(type, byType);
    }
    const n = byType.get(fn) ?? 0;
    byType.set(fn, n + 1);
    if (n === 0) {
      const list = this.#listeners[type];
      this.#listeners[type] = list === undefined ? [fn] : [...list, fn];
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (byType.get(fn) ?? 1) - 1;
      if (left > 0) {
        byType.set(fn, left);
        return;
      }
      byType.delete(fn);
      const current = this.#listeners[type];
      if (current === undefined) return;
      const next = current.filter((f) => f !== fn);
      this.#listeners[type] = next.length === 0 ? undefined : next;
    };
  }
}

/** @internal */
export type { EventOf };
