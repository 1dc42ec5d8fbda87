import { Checker } from '../../errors/validate.js';
import { checkHandle } from '../handle.js';
import { isBackoff } from '../retry/backoff.js';
import { CIRCUIT_OPTION_NAMES, type CircuitBreakerOptions } from './options.js';

const STATES = ['closed', 'open', 'half_open', 'isolated'];

/** The largest count window: its ring takes one byte per call, allocated when the breaker is built. */
export const MAX_COUNT_WINDOW = 1_000_000;

/** @internal Checks every option of a circuit breaker and throws one error listing all problems. */
export function validateCircuitBreakerOptions(options: CircuitBreakerOptions): void {
  const check = new Checker('circuitBreaker');
  checkCircuitBreakerOptions(check, options, CIRCUIT_OPTION_NAMES);
  check.done();
}

/**
 * @internal Reports the problems of a breaker's options to `check` (a shared breaker, bulwark/redis, adds options of
 * its own to `allowed` and checks them itself). Returns whether `options` is an object whose options could be read.
 */
export function checkCircuitBreakerOptions(
  check: Checker,
  options: CircuitBreakerOptions,
  allowed: readonly string[],
): boolean {
  if (!check.object('', options, allowed)) return false;
  check.string('name', options.name);
  let kind: string | undefined = 'count';
  let countSize: number | undefined = 100; // undefined: given but invalid, so minimumCalls cannot be judged
  const w = options.window as unknown as Record<string, unknown> | undefined;
  if (w !== undefined) {
    if (typeof w !== 'object' || w === null) {
      check.fail('window', w, "an object such as { kind: 'count', size: 100 }");
      kind = undefined;
    } else {
      let readKind: unknown;
      const read = guarded(check, 'window', w, () => {
        readKind = w.kind;
        for (const key of ['threshold', 'size', 'sizeMs', 'buckets']) void w[key];
      });
      kind = typeof readKind === 'string' ? readKind : undefined;
      if (!read) {
        // Reported by guarded(): nothing more can be checked in it.
      } else if (kind === 'consecutive') {
        check.object('window', w, ['kind', 'threshold']);
        check.number('window.threshold', w.threshold, { min: 1, integer: true });
      } else if (kind === 'count') {
        check.object('window', w, ['kind', 'size']);
        if (check.number('window.size', w.size, { min: 1, integer: true })) {
          countSize = w.size as number;
          if (countSize > MAX_COUNT_WINDOW) {
            // The ring holds one byte per call, allocated up front: a size beyond this is a typo, not a window.
            check.fail(
              'window.size',
              w.size,
              `an integer <= ${MAX_COUNT_WINDOW} (one byte per call, allocated up front)`,
            );
            countSize = undefined;
          }
        } else if (w.size !== undefined) countSize = undefined;
      } else if (kind === 'time') {
        check.object('window', w, ['kind', 'sizeMs', 'buckets']);
        // At least 1 ms: a smaller window cannot be split into buckets of a representable length.
        check.number('window.sizeMs', w.sizeMs, { min: 1 });
        check.number('window.buckets', w.buckets, { min: 1, max: 1000, integer: true });
      } else {
        check.fail('window.kind', w.kind, "one of 'consecutive', 'count', 'time'");
      }
    }
  }
  if (kind === 'consecutive') {
    // Rates mean nothing to a consecutive window; accepting them silently would hide a misconfiguration.
    for (const name of ['failureRate', 'minimumCalls', 'slowCallMs', 'slowCallRate'] as const) {
      if (options[name] !== undefined) {
        check.fail(name, options[name], "no value: it applies to 'count' and 'time' windows only");
      }
    }
  } else {
    check.number('failureRate', options.failureRate, { min: 0, max: 1, exclusiveMin: true });
    if (check.number('minimumCalls', options.minimumCalls, { min: 1, integer: true })) {
      if (kind === 'count' && countSize !== undefined && (options.minimumCalls as number) > countSize) {
        check.fail('minimumCalls', options.minimumCalls, `an integer <= window.size (${countSize})`);
      }
    }
    check.number('slowCallMs', options.slowCallMs, { min: 0, exclusiveMin: true });
    check.number('slowCallRate', options.slowCallRate, { min: 0, max: 1, exclusiveMin: true });
    if (options.slowCallRate !== undefined && options.slowCallMs === undefined) {
      check.fail('slowCallRate', options.slowCallRate, 'slowCallMs to be set too (what is a slow call?)');
    }
  }
  const h = options.halfOpenAfterMs;
  if (h !== undefined && !isBackoff(h)) {
    check.number('halfOpenAfterMs', h, { min: 0 });
  }
  check.number('halfOpenProbes', options.halfOpenProbes, { min: 1, integer: true });
  check.number('halfOpenSuccesses', options.halfOpenSuccesses, { min: 1, integer: true });
  check.number('halfOpenLeaseMs', options.halfOpenLeaseMs, { min: 0, exclusiveMin: true });
  checkHandle(check, options.handle);
  check.clock('clock', options.clock);
  check.fn('random', options.random);
  const s = options.initialState as unknown as Record<string, unknown> | undefined;
  if (s !== undefined) guarded(check, 'initialState', s, () => checkSnapshot(check, s, kind));
  return true;
}

/**
 * Runs the checks of a nested option. A getter or proxy that throws while it is read is reported as a problem of
 * that option (replacing what its checks found so far), never rethrown.
 */
function guarded(check: Checker, option: string, value: unknown, checks: () => void): boolean {
  const before = check.problems.length;
  try {
    checks();
    return true;
  } catch {
    check.problems.splice(before);
    check.fail(option, value, 'a value whose fields can be read (reading one threw)');
    return false;
  }
}

function checkSnapshot(check: Checker, s: Record<string, unknown>, kind: string | undefined): void {
  if (typeof s !== 'object' || s === null || s.version !== 1) {
    check.fail('initialState', s, 'a snapshot from snapshot() (version 1)');
  } else {
    check.oneOf('initialState.state', s.state, STATES);
    check.number('initialState.openRemainingMs', s.openRemainingMs, { min: 0 });
    check.number('initialState.consecutiveOpens', s.consecutiveOpens, { min: 0, integer: true });
    check.number('initialState.lastBreakMs', s.lastBreakMs, { min: 0 });
    const sw = s.window as Record<string, unknown> | undefined;
    if (typeof sw !== 'object' || sw === null || sw.kind !== kind) {
      check.fail('initialState.window', sw, `a window snapshot of kind '${kind ?? 'count'}' (the breaker's window)`);
    } else if (kind === 'consecutive') {
      if (sw.failures === undefined) check.fail('initialState.window.failures', undefined, 'an integer >= 0');
      check.number('initialState.window.failures', sw.failures, { min: 0, integer: true });
    } else if (kind === 'count') {
      const o = sw.outcomes;
      if (!Array.isArray(o) || !o.every((x) => x === 0 || x === 1 || x === 2 || x === 3)) {
        check.fail('initialState.window.outcomes', o, 'an array of outcome codes 0..3');
      }
    } else {
      const b = sw.buckets;
      const ok = (x: unknown) => {
        if (typeof x !== 'object' || x === null) return false;
        const r = x as Record<string, unknown>;
        const numbers = ['ageMs', 'calls', 'failures', 'slow'].every((f) => {
          const v = r[f];
          return typeof v === 'number' && Number.isFinite(v) && v >= 0;
        });
        return numbers && (r.failures as number) <= (r.calls as number) && (r.slow as number) <= (r.calls as number);
      };
      if (!Array.isArray(b) || !b.every(ok)) {
        check.fail('initialState.window.buckets', b, 'an array of { ageMs, calls, failures, slow } with numbers >= 0');
      }
    }
  }
}
