/**
 * The check that keeps `hedge()` out of the HTTP and gRPC interceptors until they support it (issue 14).
 * @internal
 * @module
 */

import type { OptionProblem } from '../errors/errors.js';
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

/**
 * The problem to report for a policy holding `found`, under `option`, with `expected` saying why and what to do.
 * @internal
 */
export function hedgeProblem(option: string, found: HedgePolicy, expected: string): OptionProblem {
  return { option, received: `a policy containing hedge ${JSON.stringify(found.name)}`, expected };
}
