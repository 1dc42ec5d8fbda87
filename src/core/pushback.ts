/**
 * The server's pushback an integration attaches to a failure, for a hedge to honour (gRFC A6: a pushback received
 * on a hedged attempt delays the next hedge, or stops hedging). Internal: only an integration that speaks a
 * protocol with pushback sets it (bulwark/grpc), so a hedge around anything else behaves as documented.
 * @internal
 * @module
 */

/**
 * The key of the pushback on a failure: a number of ms (delay the next hedge that long), or `'stop'` (start no
 * more hedges). A registry symbol: an ESM and a CJS copy of the package read each other's errors.
 * @internal
 */
export const PUSHBACK: unique symbol = Symbol.for('bulwark.pushback');

/**
 * The pushback `error` carries: ms >= 0, `'stop'`, or undefined (none, or not an object). Never throws.
 * @internal
 */
export function pushbackIn(error: unknown): number | 'stop' | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  let p: unknown;
  try {
    p = (error as { [PUSHBACK]?: unknown })[PUSHBACK];
  } catch {
    return undefined; // a proxy that throws: no pushback
  }
  if (p === 'stop') return p;
  return typeof p === 'number' && p >= 0 && Number.isFinite(p) ? p : undefined;
}

/**
 * Attaches `pushback` to `error` (nothing for undefined), where {@link pushbackIn} reads it.
 * @internal
 */
export function setPushback(error: object, pushback: number | 'stop' | undefined): void {
  if (pushback !== undefined) (error as { [PUSHBACK]?: unknown })[PUSHBACK] = pushback;
}
