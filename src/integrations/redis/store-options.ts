/**
 * The options every bulwark/redis policy shares (the client, the timeout, the fallback), their defaults and checks.
 * @module
 */

import type { Checker } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import type { PolicyBase } from '../../policies/policy-base.js';
import { CLIENT_EXPECTED, clientKind, type RedisClientLike } from './client.js';
import { isRedisStoreError } from './runner.js';

/**
 * What a bulwark/redis policy does with a call when Redis gives no answer (not connected, too slow, an error):
 * - `'fail-open'`: the call runs, as if the policy were not there;
 * - `'fail-closed'`: the call is refused with the policy's own error;
 * - `'local'`: an in-process policy with the same options decides (each process then enforces the whole limit by
 *   itself).
 *
 * Each such call emits a `store.fallback` event (counted by the metrics adapters with its reason).
 */
export type OnStoreError = 'fail-open' | 'fail-closed' | 'local';

/** Options every bulwark/redis policy takes. */
export interface RedisStoreOptions {
  /**
   * The Redis client: an ioredis `Redis` or `Cluster`, a node-redis client (`createClient()`, `createCluster()`),
   * or a {@link RedisScripting} of yours. Connect it yourself; bulwark never connects, quits nor configures it.
   * Required.
   */
  client: RedisClientLike;
  /**
   * The longest one Redis operation may take, in ms (a finite number > 0); then the call takes its fallback.
   * Loopback answers in about 0.1 ms, a network in about 1 ms. @defaultValue 50
   */
  storeTimeoutMs?: number;
  /**
   * After Redis failed (a timeout or an error), calls skip it for this long (ms, a finite number >= 0) and take the
   * fallback at once; then one call at a time tries Redis again, and the first answer brings every call back to
   * it. 0 tries Redis on every call. @defaultValue 500
   */
  storeRecheckMs?: number;
  /** What a call does when Redis gives no answer. @defaultValue `'local'` */
  onStoreError?: OnStoreError;
  /**
   * The start of every Redis key the policy writes: a string of at most 100 characters, without `{` or `}` (the
   * hash tag follows it). @defaultValue per policy, `'bulwark:rl:'` for the rate limiter
   */
  keyPrefix?: string;
}

/** @internal */
export const STORE_OPTION_NAMES = ['client', 'storeTimeoutMs', 'storeRecheckMs', 'onStoreError', 'keyPrefix'] as const;
/** @internal */
export const ON_STORE_ERROR: readonly OnStoreError[] = ['fail-open', 'fail-closed', 'local'];
/** @internal */
export const DEFAULT_STORE_TIMEOUT_MS = 50;
/** @internal */
export const DEFAULT_STORE_RECHECK_MS = 500;
/** @internal */
export const MAX_KEY_PREFIX = 100;

/**
 * Reports the problems of the shared store options in `o` (an object whose reads do not throw: checked by
 * `check.object` first).
 * @internal
 * @example `checkStoreOptions(new Checker('redisRateLimit'), options)`
 */
export function checkStoreOptions(check: Checker, o: Record<string, unknown>): void {
  if (o.client === undefined) check.fail('client', undefined, `${CLIENT_EXPECTED} (required)`);
  else if (clientKind(o.client) === undefined) check.fail('client', o.client, CLIENT_EXPECTED);
  check.number('storeTimeoutMs', o.storeTimeoutMs, { min: 0, exclusiveMin: true });
  check.number('storeRecheckMs', o.storeRecheckMs, { min: 0 });
  check.oneOf('onStoreError', o.onStoreError, ON_STORE_ERROR);
  const p = o.keyPrefix;
  if (p !== undefined && (typeof p !== 'string' || p.length > MAX_KEY_PREFIX || /[{}]/.test(p))) {
    check.fail('keyPrefix', p, `a string of at most ${MAX_KEY_PREFIX} characters without '{' or '}'`);
  }
}

/**
 * Emits `store.fallback` for a call of `policy` that took its fallback `mode` because of `error` (a
 * RedisStoreError, whose reason the event carries; anything else is reason `'error'`). One place for the three
 * bulwark/redis policies. @internal
 */
export function emitStoreFallback(
  policy: PolicyBase,
  operation: string,
  attempt: number,
  mode: OnStoreError,
  error: unknown,
): void {
  if (!policy._events.wants(EV.storeFallback)) return;
  policy._events.emit(EV.storeFallback, {
    type: 'store.fallback',
    policy: policy.name,
    operation,
    attempt,
    reason: isRedisStoreError(error) ? error.reason : 'error',
    fallback: mode,
    error,
  });
}

/** Emits `store.recovered`: Redis answered `policy` again after failing for `downMs`. @internal */
export function emitStoreRecovered(policy: PolicyBase, operation: string, attempt: number, downMs: number): void {
  if (!policy._events.wants(EV.storeRecovered)) return;
  policy._events.emit(EV.storeRecovered, { type: 'store.recovered', policy: policy.name, operation, attempt, downMs });
}
