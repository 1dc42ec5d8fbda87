/**
 * The in-process policy a bulwark/redis policy falls back to (`onStoreError: 'local'`), made on first use.
 * @module
 */

import type { EventType, Listener } from '../../events/types.js';
import type { PolicyBase } from '../../policies/policy-base.js';

interface Subscription {
  readonly type: EventType;
  readonly listener: Listener<EventType>;
  off: (() => void) | undefined;
}

/**
 * Holds the local fallback policy, made the first time a call needs it. Why lazily: a local bulkhead or breaker
 * registers itself for the process-wide gauges, and an idle one under the same name would add its limit and its
 * state to the shared policy's series although no call uses it. The subscriptions made on the shared policy before
 * the local one exists are passed on to it when it is made.
 * @internal
 * @example `const local = new LazyLocal(() => new BulkheadPolicy(options)); local.get()._run(ctx, op, next);`
 */
export class LazyLocal<P extends PolicyBase> {
  #policy: P | undefined = undefined;
  readonly #make: () => P;
  readonly #subscriptions = new Set<Subscription>();

  constructor(make: () => P) {
    this.#make = make;
  }

  /** The local policy if a call has used it, else undefined. */
  get current(): P | undefined {
    return this.#policy;
  }

  /** The local policy, made now if it does not exist yet (with every live subscription). */
  get(): P {
    if (this.#policy === undefined) {
      const p = this.#make();
      this.#policy = p;
      for (const s of this.#subscriptions) s.off = p.on(s.type, s.listener);
    }
    return this.#policy;
  }

  /** Subscribes `listener` to the local policy's events, now or when it is made; returns the unsubscribe. */
  on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const s: Subscription = { type, listener: listener as unknown as Listener<EventType>, off: undefined };
    this.#subscriptions.add(s);
    if (this.#policy !== undefined) s.off = this.#policy.on(type, listener);
    return () => {
      this.#subscriptions.delete(s);
      s.off?.();
      s.off = undefined;
    };
  }
}
