import { type Channel, channel } from 'node:diagnostics_channel';
import { describeMessage } from '../core/describe.js';
import { keepShape } from '../core/shapes.js';
import { describe } from '../errors/validate.js';
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
 * The id of each event type: its index in {@link EVENT_TYPES}. Policies ask `wants(EV.executionCompleted)`, not
 * `wants('execution.completed')`.
 *
 * Why numbers: `wants` is one small function inlined into every caller, but its property loads keep one feedback
 * slot shared by all of them. Keyed by type string, those loads saw every type and went megamorphic (a stub-cache
 * probe each); indexed by a small integer into an array they stay one element load, whatever the caller. Counted
 * with callgrind: about 200 instructions less per `wants`, two per call through a single policy.
 * @internal
 */
export const EV = {
  retryAttempt: idOf('retry.attempt'),
  retryExhausted: idOf('retry.exhausted'),
  circuitOpen: idOf('circuit.open'),
  circuitHalfOpen: idOf('circuit.half_open'),
  circuitClosed: idOf('circuit.closed'),
  circuitIsolated: idOf('circuit.isolated'),
  circuitRejected: idOf('circuit.rejected'),
  circuitProbeExpired: idOf('circuit.probe_expired'),
  timeoutFired: idOf('timeout.fired'),
  timeoutLateOutcome: idOf('timeout.late_outcome'),
  bulkheadRejected: idOf('bulkhead.rejected'),
  rateLimitRejected: idOf('rate_limit.rejected'),
  rateLimitQueued: idOf('rate_limit.queued'),
  fallbackUsed: idOf('fallback.used'),
  hedgeLaunched: idOf('hedge.launched'),
  hedgeRefused: idOf('hedge.refused'),
  hedgeLateOutcome: idOf('hedge.late_outcome'),
  executionCompleted: idOf('execution.completed'),
  attemptCompleted: idOf('attempt.completed'),
  adaptiveLimitChanged: idOf('adaptive_limit.changed'),
  throttleRejected: idOf('throttle.rejected'),
  chaosInjected: idOf('chaos.injected'),
  storeFallback: idOf('store.fallback'),
  storeRecovered: idOf('store.recovered'),
} as const;

/** An event type's id (see {@link EV}). @internal */
export type EventId = number;

function idOf(type: EventType): EventId {
  return EVENT_TYPES.indexOf(type);
}

/** The diagnostics channel of each event type, by id. */
const CHANNELS: readonly Channel[] = EVENT_TYPES.map((t) => channel(channelName(t)));

/** The listeners an emitter has for one event type (one or more): an event of that type is always wanted. */
class Heard {
  readonly hasSubscribers = true;
  constructor(readonly list: readonly Listener<EventType>[]) {}
}
// Keep its map alive (see shapes.ts): `wants`, inlined into every policy's call path, has seen it once any emitter
// had a listener, and its optimised code would be thrown away when the last listener goes and a full GC frees it.
keepShape(new Heard([]));

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
  /**
   * Per event id (why an array: see {@link EV}): the type's diagnostics channel while this emitter has no listener
   * for it, its listeners ({@link Heard}) while it has some. Either answers `hasSubscribers`, so `wants` is one load
   * and one read. Why not a listener check and a channel check: `wants` is inlined into every policy's per-call path,
   * and V8 inlines a limited amount of bytecode into one optimised function; the two checks took twice the bytecode,
   * taken from the operation's own callees (callgrind, Node 20).
   */
  readonly #gates: (Channel | Heard)[] = CHANNELS.slice();
  /** How many subscriptions hold each listener, per type (made on the first `on`). */
  #counts: Map<EventType, Map<Listener<EventType>, number>> | undefined;

  /** Whether an event of this id would reach anyone: a listener of this emitter or a channel subscriber. */
  wants(id: EventId): boolean {
    return (this.#gates[id] as Channel | Heard).hasSubscribers;
  }

  /** Emits `event`, whose type has the id `id` (the one just passed to {@link wants}). */
  emit(id: EventId, event: ResilienceEvent): void {
    const gate = this.#gates[id];
    if (gate instanceof Heard) {
      for (const fn of gate.list) {
        try {
          (fn as (e: ResilienceEvent) => void)(event);
        } catch (error) {
          reportListenerError(fn, event.type, error);
        }
      }
    }
    const ch = CHANNELS[id] as Channel;
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
    const id = idOf(type);
    if (id < 0) {
      // From plain JavaScript, a misspelt type would otherwise subscribe a listener that is never called.
      throw new TypeError(
        `bulwark: cannot listen to ${describe(type)}: not an event type; expected one of ${EVENT_TYPES.join(', ')}`,
      );
    }
    const counts = (this.#counts ??= new Map());
    let byType = counts.get(type);
    if (byType === undefined) {
      byType = new Map();
      counts.set(type, byType);
    }
    const n = byType.get(fn) ?? 0;
    byType.set(fn, n + 1);
    if (n === 0) {
      const gate = this.#gates[id];
      this.#gates[id] = new Heard(gate instanceof Heard ? [...gate.list, fn] : [fn]);
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
      const gate = this.#gates[id];
      if (!(gate instanceof Heard)) return;
      const next = gate.list.filter((f) => f !== fn);
      this.#gates[id] = next.length === 0 ? (CHANNELS[id] as Channel) : new Heard(next);
    };
  }
}

/** @internal */
export type { EventOf };
