/**
 * The live stateful policies of the process (breakers, bulkheads, rate limiters, adaptive throttles) and retry
 * budgets, for gauges that read their state when a metrics adapter attached process-wide is collected.
 *
 * Why weak: a registry must never keep a policy alive (keyed policies evict and drop theirs), so it holds WeakRefs
 * and a FinalizationRegistry removes an entry once its policy is collected. Why on `globalThis` under a registered
 * symbol: the diagnostics channels are process-wide, so a second copy of bulwark (an ESM and a CJS copy, or two
 * versions) must add its policies to the same set for one adapter to see them all.
 * @internal
 */

/**
 * @internal The kinds of object with a state worth a gauge. A reader must ignore a kind it does not know: another
 * copy of bulwark, newer than the reader, may add kinds to the same set.
 */
export type InstanceKind =
  | 'circuit_breaker'
  | 'bulkhead'
  | 'rate_limit'
  | 'adaptive_throttle'
  | 'retry_budget'
  | 'retry_token_budget';

/** @internal */
export interface InstanceEntry {
  readonly kind: InstanceKind;
  readonly ref: WeakRef<object>;
}

const KEY = Symbol.for('bulwark.instances.v1');
const shared = globalThis as { [KEY]?: Set<InstanceEntry> };
const live: Set<InstanceEntry> = shared[KEY] ?? new Set<InstanceEntry>();
shared[KEY] = live;
const finalizer = new FinalizationRegistry<InstanceEntry>((entry) => live.delete(entry));

/**
 * The kind of every tracked object, for an adapter attached to some policies only: it finds what it reads among
 * them by this, so a policy of another entry point (bulwark/redis's shared bulkhead, say) is read as its kind is.
 */
const KINDS = Symbol.for('bulwark.instance-kinds.v1');
const sharedKinds = globalThis as { [KINDS]?: WeakMap<object, InstanceKind> };
const kinds: WeakMap<object, InstanceKind> = sharedKinds[KINDS] ?? new WeakMap<object, InstanceKind>();
sharedKinds[KINDS] = kinds;

/** @internal Called by the constructor of each kind above (once per object). */
export function trackInstance(kind: InstanceKind, policy: object): void {
  const entry: InstanceEntry = { kind, ref: new WeakRef(policy) };
  live.add(entry);
  finalizer.register(policy, entry);
  kinds.set(policy, kind);
}

/** @internal The kind `policy` was tracked as, or undefined. */
export function trackedKind(policy: object): InstanceKind | undefined {
  return kinds.get(policy);
}

/** @internal The live entries (some may have just been collected: `ref.deref()` can be undefined). */
export function liveInstances(): ReadonlySet<InstanceEntry> {
  return live;
}
