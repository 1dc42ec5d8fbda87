/**
 * Randomness, injected. Jitter draws from a {@link Random}; production code calls `Math.random` only here.
 *
 * @module
 */

/** Returns a number in [0, 1), like `Math.random`. */
export type Random = () => number;

/**
 * The default source of randomness: `Math.random`.
 *
 * @example
 * ```ts
 * retry({ random: () => 0.5 }); // deterministic jitter in a test
 * ```
 */
export const systemRandom: Random = () => Math.random();
