/**
 * Option checks shared by the adapters. Every one is total: a value whose reads throw (a proxy, a getter) is
 * "not valid", never a raw throw out of a factory.
 * @internal
 * @module
 */

/**
 * Whether `value` is an object (or function) whose `name` is a function. False, not a throw, when reading it throws.
 * @internal
 * @example `hasMethod(policy, 'execute') // true for any bulwark policy`
 */
export function hasMethod(value: unknown, name: string): boolean {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  try {
    return typeof (value as Record<string, unknown>)[name] === 'function';
  } catch {
    return false;
  }
}

/**
 * Runs a check of an option's value; a throw (a proxy or a getter in it) counts as "not valid".
 * @internal
 * @example `passes(() => list.every((s) => typeof s === 'string'))`
 */
export function passes(test: () => boolean): boolean {
  try {
    return test();
  } catch {
    return false;
  }
}

/**
 * Whether `value` is a policy: an object with an `execute` method (a bulwark policy, or one written against its
 * public API). False, not a throw, for a value whose reads throw.
 * @internal
 * @example `isPolicyLike(retry()) // true`
 */
export function isPolicyLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && hasMethod(value, 'execute');
}
