import { keepShape } from './shapes.js';
/**
 * A typed key into a call's {@link Properties} bag.
 *
 * @example
 * ```ts
 * const TENANT = new PropertyKey<string>('tenant');
 * await policy.execute((ctx) => fetchFor(ctx.properties.get(TENANT)), {
 *   properties: new Properties().set(TENANT, 'acme'),
 * });
 * ```
 */
export class PropertyKey<T> {
  /** Phantom field that carries the value type; never set. */
  declare readonly _type: T;
  /** A label for debugging; two keys with the same description are still different keys. */
  readonly description: string;

  constructor(description: string) {
    this.description = description;
  }
}

/**
 * A typed property bag that travels with one execution (shared by every policy and attempt of that call).
 * Created on first use, so a call that never touches it allocates nothing.
 *
 * @example
 * ```ts
 * const ATTEMPTS = new PropertyKey<number>('attempts');
 * const props = new Properties().set(ATTEMPTS, 0);
 * props.get(ATTEMPTS); // 0
 * ```
 */
export class Properties {
  readonly #map = new Map<PropertyKey<unknown>, unknown>();

  /** The value stored under `key`, or `undefined`. */
  get<T>(key: PropertyKey<T>): T | undefined {
    return this.#map.get(key) as T | undefined;
  }

  /** The value stored under `key`, or `fallback` when there is none. */
  getOr<T>(key: PropertyKey<T>, fallback: T): T {
    return this.#map.has(key) ? (this.#map.get(key) as T) : fallback;
  }

  /** Whether a value is stored under `key`. */
  has(key: PropertyKey<unknown>): boolean {
    return this.#map.has(key);
  }

  /** Stores `value` under `key`; returns the bag for chaining. */
  set<T>(key: PropertyKey<T>, value: T): this {
    this.#map.set(key, value);
    return this;
  }

  /** Removes the value under `key`; returns whether there was one. */
  delete(key: PropertyKey<unknown>): boolean {
    return this.#map.delete(key);
  }

  /** Number of stored values. */
  get size(): number {
    return this.#map.size;
  }
}
// Keep the bag's map alive across full GCs (see shapes.ts).
keepShape(new Properties());

/**
 * Set to `false` in a call's properties to stop every retry policy of that call from starting another attempt,
 * whatever failed (a timeout included). For work that must not run twice once it has started, such as a POST
 * without an idempotency key; `bulwark/undici` sets it for such requests.
 *
 * @example
 * ```ts
 * await policy.execute((ctx) => {
 *   ctx.properties.set(RETRYABLE, false); // from here on, a failure is final
 *   return send(order);
 * });
 * ```
 */
export const RETRYABLE = new PropertyKey<boolean>('bulwark.retryable');
