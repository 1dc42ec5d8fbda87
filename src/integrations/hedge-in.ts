/**
 * Finds a `hedge()` inside a policy: the undici interceptor runs a call that may be hedged with several attempts
 * kept in flight (and one attempt at a time otherwise).
 * @internal
 * @module
 */

import { HedgePolicy } from '../policies/hedge/hedge.js';
import { KeyedPolicy } from '../policies/keyed/keyed.js';
import { PolicyBase } from '../policies/policy-base.js';

/**
 * The first hedge policy in `policy`: itself, a member of a pipeline (nested pipelines are flat), or a policy a
 * keyed member has made so far. Why only so far: a keyed factory runs per key, during calls; what it will return
 * cannot be known before. Undefined for a policy written outside bulwark (its inside cannot be seen).
 * @internal
 */
export function hedgeIn(policy: unknown, depth = 0): HedgePolicy | undefined {
  if (!(policy instanceof PolicyBase) || depth > 8) return undefined; // bounded: a keyed set may hold itself
  for (const m of policy._members()) {
    if (m instanceof HedgePolicy) return m;
    if (m instanceof KeyedPolicy) {
      for (const p of m.values() as unknown[]) {
        const found = hedgeIn(p, depth + 1);
        if (found !== undefined) return found;
      }
    }
  }
  return undefined;
}
