import { type Clock, systemClock } from '../../core/clock.js';
import type { Context, ExecutionContext } from '../../core/context.js';
import type { Next, Operation } from '../../core/policy.js';
import { Checker } from '../../errors/validate.js';
import type { EventType, Listener } from '../../events/types.js';
import { PolicyBase } from '../policy-base.js';

/** Options of {@link keyed}. */
export interface KeyedOptions<P extends PolicyBase> {
  /**
   * The most policies kept at once: an integer >= 1. Past it the least recently used key is evicted (its calls
   * in flight finish on the evicted policy). @defaultValue 1_000
   */
  maxKeys?: number;
  /** Called with each evicted policy, to dispose a bulkhead, say. */
  onEvict?: (key: string, policy: P) => void;
  /** Name used in events and metrics. @defaultValue `'keyed'` */
  name?: string;
  /** Times `execution.completed` of calls made through the keyed policy itself. @defaultValue `systemClock` */
  clock?: Clock;
}

/**
 * A policy per key. See {@link keyed}.
 */
export class KeyedPolicy<P extends PolicyBase> extends PolicyBase {
  readonly #keyOf: (ctx: Context) => string;
  readonly #factory: (key: string) => P;
  readonly #maxKeys: number;
  readonly #onEvict: ((key: string, policy: P) => void) | undefined;
  readonly #policies = new Map<string, P>();
  /** How many keys hold each live policy (more than one when the factory returns a shared policy). */
  readonly #holders = new Map<P, number>();
  /** Subscriptions made through `on`, each with its unsubscriber per live policy (dropped with the policy). */
  readonly #subscriptions = new Set<{ type: EventType; listener: Listener<EventType>; offs: Map<P, () => void> }>();

  /** @internal Use {@link keyed}. */
  constructor(keyOf: (ctx: Context) => string, factory: (key: string) => P, options: KeyedOptions<P>) {
    super(options.name ?? 'keyed', options.clock ?? systemClock);
    this.#keyOf = keyOf;
    this.#factory = factory;
    this.#maxKeys = options.maxKeys ?? 1_000;
    this.#onEvict = options.onEvict;
  }

  /** How many keys have a policy now. */
  get size(): number {
    return this.#policies.size;
  }

  /** The policy of `key`, created on demand (and marked most recently used). */
  get(key: string): P {
    const map = this.#policies;
    let p = map.get(key);
    if (p !== undefined) {
      // Re-insert so Map order is least-recently-used first.
      map.delete(key);
      map.set(key, p);
      return p;
    }
    p = this.#factory(key);
    if (!(p instanceof PolicyBase)) {
      throw new TypeError(`keyed "${this.name}": the factory returned ${typeof p} for key "${key}", not a policy`);
    }
    // A factory may return one policy for several keys: subscribe it once, when it first appears.
    const held = this.#holders.get(p) ?? 0;
    this.#holders.set(p, held + 1);
    if (held === 0) for (const s of this.#subscriptions) s.offs.set(p, p.on(s.type, s.listener));
    map.set(key, p);
    if (map.size > this.#maxKeys) {
      const [oldKey, oldPolicy] = map.entries().next().value as [string, P];
      this.#forget(oldKey, oldPolicy);
      this.#onEvict?.(oldKey, oldPolicy);
    }
    return p;
  }

  /**
   * The live policies, one per key, least recently used first, as a copy (it touches none of them). A policy
   * the factory returned for several keys appears once per key. Metrics adapters read their gauges from here.
   *
   * @example
   * ```ts
   * const open = perOrigin.values().filter((b) => b.state === 'open').length;
   * ```
   */
  values(): P[] {
    return [...this.#policies.values()];
  }

  /** The policy of `key` if one exists, without creating or touching it. */
  peek(key: string): P | undefined {
    return this.#policies.get(key);
  }

  /** Forgets the policy of `key`; returns whether there was one. */
  delete(key: string): boolean {
    const p = this.#policies.get(key);
    if (p === undefined) return false;
    this.#forget(key, p);
    return true;
  }

  /** Drops a policy and this keyed policy's listeners on it, so nothing keeps an evicted policy alive. */
  #forget(key: string, p: P): void {
    this.#policies.delete(key);
    const held = (this.#holders.get(p) ?? 1) - 1;
    if (held > 0) {
      // Another key still holds this policy: its listeners stay.
      this.#holders.set(p, held);
      return;
    }
    this.#holders.delete(p);
    for (const s of this.#subscriptions) {
      s.offs.get(p)?.();
      s.offs.delete(p);
    }
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    let policy: P;
    try {
      policy = this.get(this.#keyOf(ctx));
    } catch (error) {
      // A throwing key function or factory rejects the call: execute() never throws synchronously.
      return Promise.reject(error);
    }
    return policy._run(ctx, op, next);
  }

  /** Subscribes to events of every policy of this keyed set, present and future. */
  override on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const sub = { type, listener: listener as unknown as Listener<EventType>, offs: new Map<P, () => void>() };
    for (const p of this.#holders.keys()) sub.offs.set(p, p.on(type, listener));
    this.#subscriptions.add(sub);
    const own = this._events.on(type, listener);
    return () => {
      if (!this.#subscriptions.delete(sub)) return;
      own();
      for (const off of sub.offs.values()) off();
      sub.offs.clear();
    };
  }
}

/**
 * One policy per key (per origin, per tenant), created on demand by `factory`, at most `maxKeys` at once with
 * the least recently used evicted. Use it wherever a single policy would let one bad key trip every other.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * const ORIGIN = new PropertyKey<string>('origin');
 * const perOrigin = keyed(
 *   (ctx) => ctx.properties.get(ORIGIN) ?? 'unknown',
 *   () => circuitBreaker({ halfOpenAfterMs: 5_000 }),
 *   { maxKeys: 500 },
 * );
 * ```
 */
export function keyed<P extends PolicyBase>(
  keyOf: (ctx: Context) => string,
  factory: (key: string) => P,
  options: KeyedOptions<P> = {},
): KeyedPolicy<P> {
  const check = new Checker('keyed');
  if (typeof keyOf !== 'function') check.fail('keyOf', keyOf, 'a function of the context returning a string');
  if (typeof factory !== 'function') check.fail('factory', factory, 'a function of the key returning a policy');
  if (check.object('', options, ['maxKeys', 'onEvict', 'name', 'clock'])) {
    check.clock('clock', options.clock);
    check.number('maxKeys', options.maxKeys, { min: 1, integer: true });
    check.fn('onEvict', options.onEvict);
    check.string('name', options.name);
  }
  check.done();
  return new KeyedPolicy(keyOf, factory, options);
}
