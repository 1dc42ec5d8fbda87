import { systemClock, type TimerHandle } from '../../core/clock.js';
import type { AbortListener, Context, ExecutionContext } from '../../core/context.js';
import type { Next, Operation } from '../../core/policy.js';
import { RateLimitedError, type RateLimitRejectionReason } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import type { EventType, Listener } from '../../events/types.js';
import { KeyedPolicy } from '../../policies/keyed/keyed.js';
import { PolicyBase } from '../../policies/policy-base.js';
import type { RateLimitAlgorithm, RateLimitOptions } from '../../policies/rate-limit/options.js';
import { RATE_LIMIT_OPTION_NAMES } from '../../policies/rate-limit/options.js';
import { checkRateLimitOptions, RateLimitPolicy } from '../../policies/rate-limit/rate-limit.js';
import { toScripting } from './client.js';
import { slotKey } from './keys.js';
import { LazyLocal } from './local-fallback.js';
import { TOKEN_BUCKET, WINDOW } from './rate-limit-scripts.js';
import { type RedisScript, RedisStoreError, ScriptRunner } from './runner.js';
import {
  checkStoreOptions,
  DEFAULT_STORE_RECHECK_MS,
  DEFAULT_STORE_TIMEOUT_MS,
  emitStoreFallback,
  emitStoreRecovered,
  type OnStoreError,
  type RedisStoreOptions,
  STORE_OPTION_NAMES,
} from './store-options.js';

/** The options {@link redisRateLimit} adds to a rate limiter's and the store's. */
export interface RedisRateLimitKeyOptions {
  /**
   * The key of a call (a tenant, a user, an API key): each key has its own limit, counted in Redis under its
   * own key (which expires by itself once the key is idle). Called once per call; a throw rejects the call with
   * what it threw, anything but a string with a `TypeError`. Any string is fine, however long or odd: it is
   * escaped, and hashed past 200 characters. @defaultValue none: one limit for every call
   */
  key?: (ctx: Context) => string;
  /**
   * With `key` and `onStoreError: 'local'`: the most local limiters (one per key) kept while Redis is
   * unavailable, the least recently used dropped past it. An integer >= 1. @defaultValue 1_000
   */
  maxLocalKeys?: number;
}

/**
 * Options of {@link redisRateLimit}: those of `rateLimit` (one algorithm's), the Redis store's
 * ({@link RedisStoreOptions}: `client`, `storeTimeoutMs`, `storeRecheckMs`, `onStoreError`, `keyPrefix`), and
 * {@link RedisRateLimitKeyOptions} (`key`, `maxLocalKeys`).
 */
export type RedisRateLimitOptions = RateLimitOptions & RedisStoreOptions & RedisRateLimitKeyOptions;

const KEY_OPTION_NAMES = ['key', 'maxLocalKeys'] as const;
const EXTRA_NAMES: readonly string[] = [...STORE_OPTION_NAMES, ...KEY_OPTION_NAMES];
/** @internal The default `keyPrefix` of the rate limiter. */
export const RATE_LIMIT_KEY_PREFIX = 'bulwark:rl:';

/** A call waiting (on a timer of its own) for the tokens Redis reserved for it. */
class RedisWaiter implements AbortListener {
  timer: TimerHandle = undefined;
  subscribed = false;
  readonly cost: number;
  readonly ctx: ExecutionContext;
  readonly op: Operation<unknown>;
  readonly next: Next;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  readonly #owner: RedisRateLimitPolicy;

  constructor(
    owner: RedisRateLimitPolicy,
    cost: number,
    ctx: ExecutionContext,
    op: Operation<unknown>,
    next: Next,
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ) {
    this.#owner = owner;
    this.cost = cost;
    this.ctx = ctx;
    this.op = op;
    this.next = next;
    this.resolve = resolve;
    this.reject = reject;
  }

  _onAbort(reason: unknown): void {
    this.#owner._leave(this, reason);
  }
}

/**
 * A rate limiter whose tokens are counted in Redis and shared by every process using the same `name` (and key).
 * See {@link redisRateLimit}.
 */
export class RedisRateLimitPolicy extends PolicyBase {
  /** The algorithm counting the tokens. */
  readonly algorithm: RateLimitAlgorithm;
  /** What a call does when Redis gives no answer. */
  readonly onStoreError: OnStoreError;
  /** The most tokens one call may take: the burst (token bucket) or the limit (windows). */
  readonly capacity: number;
  readonly #runner: ScriptRunner;
  readonly #script: RedisScript;
  /** The script's arguments before `cost` and `maxWait` (they depend on the algorithm only). */
  readonly #params: readonly string[];
  readonly #prefix: string;
  /** The Redis key of a limiter without `key` (computed once). */
  readonly #fixedKey: string;
  readonly #suffix: string;
  readonly #keyOf: ((ctx: Context) => string) | undefined;
  readonly #cost: number | ((ctx: Context) => number);
  readonly #maxQueue: number;
  readonly #maxWaitMs: number;
  /** The local limiter (`onStoreError: 'local'`): one, or one per key. */
  /** Made on first use: an idle local limiter under this name would add a full bucket to the process's gauges. */
  readonly #local: LazyLocal<RateLimitPolicy> | undefined;
  readonly #localKeyed: KeyedPolicy<RateLimitPolicy> | undefined;
  readonly #waiters = new Set<RedisWaiter>();
  /** Calls sent to Redis allowed to queue, not answered yet: they count against `queue` (see `_run`). */
  #claims = 0;
  #available: number;
  /** How long Redis had been failing, when it just answered again (reported with the next call's event). */
  #recoveredMs = -1;
  #disposed = false;

  /** @internal Use {@link redisRateLimit}. */
  constructor(options: RedisRateLimitOptions) {
    super(options.name ?? 'rate-limit', options.clock ?? systemClock);
    this.onStoreError = options.onStoreError ?? 'local';
    this.#cost = options.cost ?? 1;
    this.#maxQueue = options.queue ?? 0;
    this.#maxWaitMs = options.queueTimeoutMs ?? Number.POSITIVE_INFINITY;
    this.#keyOf = options.key;
    this.#prefix = options.keyPrefix ?? RATE_LIMIT_KEY_PREFIX;
    if (options.algorithm === 'sliding-window' || options.algorithm === 'fixed-window') {
      this.algorithm = options.algorithm;
      const segments = options.algorithm === 'sliding-window' ? (options.segments ?? 10) : 1;
      this.capacity = options.limit;
      this.#script = WINDOW;
      this.#params = [String(options.windowMs / segments), String(segments), String(options.limit)];
      // The segment count is in the key: a limiter redeployed with other segments starts afresh, never misreads.
      this.#suffix = `:w${segments}`;
    } else {
      this.algorithm = 'token-bucket';
      const rate = options.rate;
      const periodMs = options.periodMs ?? 1_000;
      const burst = options.burst ?? Math.max(1, rate);
      const interval = periodMs / rate;
      this.capacity = burst;
      this.#script = TOKEN_BUCKET;
      this.#params = [String(interval), String(burst * interval)];
      this.#suffix = ':tb';
    }
    this.#available = this.capacity;
    this.#fixedKey = `${slotKey(this.#prefix, this.name, undefined)}${this.#suffix}`;
    this.#runner = new ScriptRunner(toScripting(options.client), {
      timeoutMs: options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS,
      recheckMs: options.storeRecheckMs ?? DEFAULT_STORE_RECHECK_MS,
      onRecovered: (ms) => {
        this.#recoveredMs = ms;
      },
    });
    if (this.onStoreError === 'local') {
      const local = localOptions(options);
      if (this.#keyOf === undefined) this.#local = new LazyLocal(() => new RateLimitPolicy(local));
      else {
        this.#localKeyed = new KeyedPolicy<RateLimitPolicy>(
          () => '',
          () => new RateLimitPolicy(local),
          { maxKeys: options.maxLocalKeys ?? 1_000, name: this.name, clock: this._clock },
        );
      }
    }
    // The rate limiter gauges read it: `available` as of Redis's last answer, `queued` and `capacity` this process's.
    trackInstance('rate_limit', this);
  }

  /**
   * Whole tokens a call could take, as of the last answer from Redis (net of reservations, never below 0); with
   * `key`, of the last call's key. Redis is the truth: other processes take tokens too.
   */
  get available(): number {
    return this.#available;
  }

  /** Calls of this process waiting for their reserved tokens now. */
  get queued(): number {
    return this.#waiters.size;
  }

  /** Whether the last Redis operation succeeded (false while calls take the fallback). */
  get storeHealthy(): boolean {
    return this.#runner.healthy;
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Rejects every queued call with `RateLimitedError` (reason `'disposed'`), clears their timers and refuses new
   * calls, and disposes the local limiters. Running calls finish normally. The Redis client is not closed (it is
   * yours). Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const w of [...this.#waiters]) {
      this.#unlink(w);
      w.reject(this.#rejection(w.ctx, 'disposed', Number.POSITIVE_INFINITY, w.cost));
    }
    this.#local?.current?.dispose();
    for (const p of this.#localKeyed?.values() ?? []) p.dispose();
  }

  /** Subscribes to events of this limiter, its local limiters included (`onStoreError: 'local'`). */
  override on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const own = this._events.on(type, listener);
    const local = (this.#local ?? this.#localKeyed)?.on(type, listener);
    return () => {
      own();
      local?.();
    };
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const c = this.#cost;
    let cost: number;
    let key: string | undefined;
    try {
      cost = typeof c === 'number' ? c : this.#costOf(c, ctx);
      if (this.#keyOf !== undefined) key = this.#keyFor(this.#keyOf, ctx);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed', Number.POSITIVE_INFINITY, cost));
    if (cost > this.capacity) return Promise.reject(this.#rejection(ctx, 'cost', Number.POSITIVE_INFINITY, cost));
    const redisKey = key === undefined ? this.#fixedKey : `${slotKey(this.#prefix, this.name, key)}${this.#suffix}`;
    return this.#ask(ctx, op, next, cost, key, redisKey, false);
  }

  /**
   * Asks Redis for the call's decision. A call that may queue holds a queue place while Redis decides, so that the
   * queue bound holds however many decisions are in flight: Redis reserves tokens only for calls that will have a
   * place (a reservation nobody uses would be lost to the whole fleet).
   */
  #ask<T>(
    ctx: ExecutionContext,
    op: Operation<T>,
    next: Next,
    cost: number,
    key: string | undefined,
    redisKey: string,
    again: boolean,
  ): Promise<T> {
    const queueable = this.#waiters.size + this.#claims < this.#maxQueue;
    const maxWait = queueable ? this.#maxWaitMs : 0;
    if (queueable) this.#claims++;
    const args = [...this.#params, String(cost), maxWait === Number.POSITIVE_INFINITY ? '-1' : String(maxWait)];
    return this.#runner.run(this.#script, [redisKey], args).then(
      (reply) => {
        if (queueable) this.#claims--;
        const parsed = parseReply(reply);
        if (parsed === undefined) {
          // A reply of another shape (a proxy, or a client in a mode that changes replies): the store failed.
          const e = new RedisStoreError('error', `unexpected reply from the rate limit script: ${describe(reply)}`);
          return this.#fallback(e, ctx, op, next, cost, key);
        }
        // Refused only because the queue places were held by decisions in flight, and one is free now: asked
        // again, once, as a call that may queue (a second round trip, only when calls would queue anyway).
        if (
          !queueable &&
          !again &&
          parsed[0] > 0 &&
          this.#maxQueue > 0 &&
          this.#waiters.size + this.#claims < this.#maxQueue
        ) {
          return this.#ask(ctx, op, next, cost, key, redisKey, true);
        }
        return this.#decided(parsed, ctx, op, next, cost, queueable, maxWait);
      },
      (error: unknown) => {
        if (queueable) this.#claims--;
        return this.#fallback(error, ctx, op, next, cost, key);
      },
    );
  }

  #decided<T>(
    [wait, available]: [number, number],
    ctx: ExecutionContext,
    op: Operation<T>,
    next: Next,
    cost: number,
    queueable: boolean,
    maxWait: number,
  ): Promise<T> {
    this.#available = available;
    if (this.#recoveredMs >= 0) this.#recovered(ctx);
    if (wait === 0) return next(ctx, op);
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed', Number.POSITIVE_INFINITY, cost));
    if (wait > maxWait) {
      const reason: RateLimitRejectionReason = !queueable
        ? this.#maxQueue === 0
          ? 'limit'
          : 'queue_full'
        : 'queue_timeout';
      return Promise.reject(this.#rejection(ctx, reason, wait, cost));
    }
    // Reserved in Redis: the tokens are ours in `wait` ms (on Redis's clock; a local timer counts the wait). A call
    // whose signal aborted meanwhile leaves; its reservation lapses (Redis may have reserved after it).
    if (ctx._aborted) return Promise.reject(ctx._reason);
    return new Promise<T>((resolve, reject) => {
      const w = new RedisWaiter(this, cost, ctx, op, next, resolve as (value: unknown) => void, reject);
      this.#waiters.add(w);
      w.subscribed = ctx._subscribe(w);
      w.timer = this._clock.setTimeout(() => this.#start(w), Math.max(0, Math.ceil(wait)));
      if (this._events.wants(EV.rateLimitQueued)) {
        this._events.emit(EV.rateLimitQueued, {
          type: 'rate_limit.queued',
          policy: this.name,
          operation: ctx.operation,
          attempt: ctx.attempt,
          waitMs: wait,
          cost,
          queued: this.#waiters.size,
        });
      }
    });
  }

  #start(w: RedisWaiter): void {
    if (!this.#waiters.has(w)) return;
    w.timer = undefined;
    this.#unlink(w);
    w.next(w.ctx, w.op).then(w.resolve, w.reject);
  }

  /** @internal A queued call's signal aborted: it leaves at once with the caller's reason. */
  _leave(w: RedisWaiter, reason: unknown): void {
    if (!this.#waiters.has(w)) return;
    this.#unlink(w);
    w.reject(reason);
  }

  #unlink(w: RedisWaiter): void {
    this.#waiters.delete(w);
    if (w.timer !== undefined) {
      this._clock.clearTimeout(w.timer);
      w.timer = undefined;
    }
    if (w.subscribed) {
      w.subscribed = false;
      w.ctx._unsubscribe(w);
    }
  }

  #fallback<T>(
    error: unknown,
    ctx: ExecutionContext,
    op: Operation<T>,
    next: Next,
    cost: number,
    key: string | undefined,
  ): Promise<T> {
    const mode = this.onStoreError;
    emitStoreFallback(this, ctx.operation, ctx.attempt, mode, error);
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed', Number.POSITIVE_INFINITY, cost));
    if (mode === 'fail-open') return next(ctx, op);
    if (mode === 'fail-closed') {
      return Promise.reject(this.#rejection(ctx, 'unavailable', Number.POSITIVE_INFINITY, cost));
    }
    const local = this.#local?.get() ?? (this.#localKeyed as KeyedPolicy<RateLimitPolicy>).get(key ?? '');
    return local._run(ctx, op, next);
  }

  #recovered(ctx: ExecutionContext): void {
    const downMs = this.#recoveredMs;
    this.#recoveredMs = -1;
    emitStoreRecovered(this, ctx.operation, ctx.attempt, downMs);
  }

  /** The cost a cost function gives a call; anything but a finite number >= 0 is the caller's bug: a TypeError. */
  #costOf(fn: (ctx: Context) => number, ctx: ExecutionContext): number {
    const cost = fn(ctx);
    if (typeof cost !== 'number' || !(cost >= 0) || cost === Number.POSITIVE_INFINITY) {
      throw new TypeError(
        `rate limiter "${this.name}": the cost function returned ${describe(cost)}; expected a finite number >= 0`,
      );
    }
    return cost;
  }

  #keyFor(fn: (ctx: Context) => string, ctx: ExecutionContext): string {
    const key = fn(ctx);
    if (typeof key !== 'string') {
      throw new TypeError(`rate limiter "${this.name}": the key function returned ${describe(key)}; expected a string`);
    }
    return key;
  }

  #rejection(ctx: ExecutionContext, reason: RateLimitRejectionReason, retryAfterMs: number, cost: number) {
    if (this._events.wants(EV.rateLimitRejected)) {
      this._events.emit(EV.rateLimitRejected, {
        type: 'rate_limit.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        reason,
        retryAfterMs,
        cost,
        queued: this.#waiters.size,
      });
    }
    return RateLimitedError.fast(this.name, reason, retryAfterMs, cost);
  }
}

/** `[wait, available]` from the script's reply (two numeric strings), or undefined for anything else. */
function parseReply(reply: unknown): [number, number] | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  const wait = Number(reply[0]);
  const available = Number(reply[1]);
  if (!(wait >= 0) || !(available >= 0)) return undefined;
  return [wait, available];
}

/** The options of the local limiter: the rate limiter's own, without the store's. */
function localOptions(options: RedisRateLimitOptions): RateLimitOptions {
  const names = RATE_LIMIT_OPTION_NAMES[options.algorithm ?? 'token-bucket'];
  const out: Record<string, unknown> = {};
  for (const n of names) {
    const v = (options as unknown as Record<string, unknown>)[n];
    if (v !== undefined) out[n] = v;
  }
  return out as unknown as RateLimitOptions;
}

/**
 * A rate limiter shared by every process of a fleet: the tokens are counted in Redis, so `{ rate: 100 }` is 100
 * per second for all of them together, not per process. Same options, algorithms, errors and events as
 * `rateLimit` (a token bucket, a sliding window or a fixed window; `cost`, `queue`, `queueTimeoutMs`), plus the
 * Redis `client`, a per-call `key` (a limit per tenant) and what to do when Redis gives no answer.
 *
 * - One round trip per decision: a Lua script reads the limiter's key, decides with Redis `TIME` as the clock
 *   (never a process's own clock), writes the key back with an expiry, and returns the wait. Processes whose
 *   clocks disagree by seconds still share the limit exactly.
 * - `RateLimitedError` with the exact `retryAfterMs` (from Redis's state); a queued call's tokens are reserved in
 *   Redis, and the call waits for them on a local timer.
 * - Redis Cluster: each decision touches one key, whose hash tag is the limiter's name (and the call's key).
 * - When Redis is slow or down (not connected, no answer within `storeTimeoutMs`, an error), the call takes
 *   `onStoreError`: `'local'` (default: an in-process `rateLimit` with the same options), `'fail-open'` or
 *   `'fail-closed'` (`RateLimitedError` with reason `'unavailable'`); each such call emits `store.fallback`. After a
 *   failure calls skip Redis for `storeRecheckMs`, then one call tries it again; when it answers, `store.recovered`
 *   is emitted and decisions come from Redis again. A Redis client's error never reaches the caller.
 *
 * @throws InvalidOptionsError listing every invalid option (those of `rateLimit`, and the store's).
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * import { redisRateLimit } from 'bulwark/redis';
 *
 * const redis = new Redis({ enableOfflineQueue: false });
 * // 100 calls per second per tenant across the fleet, bursts of 20.
 * const perTenant = redisRateLimit({
 *   client: redis,
 *   name: 'api',
 *   rate: 100,
 *   burst: 20,
 *   key: (ctx) => ctx.properties.get(TENANT) ?? 'anonymous',
 * });
 * await perTenant.execute(() => handle(request), { properties });
 * ```
 */
export function redisRateLimit(options: RedisRateLimitOptions): RedisRateLimitPolicy {
  const check = new Checker('redisRateLimit');
  checkRateLimitOptions(check, options, EXTRA_NAMES, (o) => {
    checkStoreOptions(check, o);
    check.fn('key', o.key);
    check.number('maxLocalKeys', o.maxLocalKeys, { min: 1, integer: true });
    if (
      o.maxLocalKeys !== undefined &&
      (o.key === undefined || o.onStoreError === 'fail-open' || o.onStoreError === 'fail-closed')
    ) {
      check.fail(
        'maxLocalKeys',
        o.maxLocalKeys,
        "nothing without `key` and onStoreError 'local' (it bounds the local limiters per key)",
      );
    }
  });
  if (options === undefined) check.fail('client', undefined, 'a Redis client (required)');
  check.done();
  return new RedisRateLimitPolicy(options);
}
