/**
 * A concurrency limit shared by a fleet (a global bulkhead): permits are leases in one Redis sorted set.
 * @module
 */

import { randomBytes } from 'node:crypto';
import { systemClock, type TimerHandle } from '../../core/clock.js';
import type { AbortListener, ExecutionContext } from '../../core/context.js';
import { invoke, type Next, type Operation } from '../../core/policy.js';
import { BulkheadRejectedError, type BulkheadRejectionReason } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import type { EventType, Listener } from '../../events/types.js';
import { BulkheadPolicy } from '../../policies/bulkhead/bulkhead.js';
import { BULKHEAD_OPTION_NAMES, type BulkheadOptions } from '../../policies/bulkhead/options.js';
import { PolicyBase } from '../../policies/policy-base.js';
import { type RedisScripting, toScripting } from './client.js';
import { slotKey } from './keys.js';
import { LazyLocal } from './local-fallback.js';
import { isRedisStoreError, RedisScript, RedisStoreError, ScriptRunner } from './runner.js';
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

/** Redis `TIME` in ms, the clock of every lease (never a process's own clock). */
const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Takes up to `#ARGV - 4` permits, in order, while fewer than `limit` unexpired leases are held, and records this
 * process's demand. KEYS[1]: the permit set (member: holder id, score: lease expiry in Redis ms); KEYS[2]: the
 * waiting processes (member: instance id, score: when the entry lapses). ARGV: limit, leaseMs, the instance id,
 * how many of its calls wait for a permit (those asked for included), then the holder ids to grant. Returns
 * `{granted, holders, others}`: others is how many other processes have calls waiting. Expired leases (a crashed
 * holder's) and waiting entries are dropped first. The keys expire with their newest entry.
 * @internal
 */
export const ACQUIRE = new RedisScript(`${NOW_MS}
local k, w = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local me = ARGV[3]
local demand = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
redis.call('ZREMRANGEBYSCORE', w, '-inf', now)
local n = redis.call('ZCARD', k)
local granted = 0
for i = 5, #ARGV do
  if n >= limit then break end
  redis.call('ZADD', k, now + lease, ARGV[i])
  n = n + 1
  granted = granted + 1
end
if granted > 0 then redis.call('PEXPIRE', k, lease) end
if demand > granted then
  redis.call('ZADD', w, now + lease, me)
  redis.call('PEXPIRE', w, lease)
else
  redis.call('ZREM', w, me)
end
local others = redis.call('ZCARD', w)
if demand > granted then others = others - 1 end
return {granted, n, others}`);

/** Gives permits back. KEYS[1]: the permit set; ARGV: holder ids. Returns the holders left. @internal */
export const RELEASE = new RedisScript(`local k = KEYS[1]
for i = 1, #ARGV do redis.call('ZREM', k, ARGV[i]) end
return redis.call('ZCARD', k)`);

/**
 * Extends the leases of the permits still held (one call for every permit of the process). A lease that is gone
 * (it expired and another acquire dropped it) is not brought back. KEYS[1]: the permit set; ARGV: leaseMs, holder
 * ids. Returns how many were extended. @internal
 */
export const RENEW = new RedisScript(`${NOW_MS}
local k = KEYS[1]
local lease = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', k, ARGV[i]) then
    redis.call('ZADD', k, now + lease, ARGV[i])
    renewed = renewed + 1
  end
end
if renewed > 0 then redis.call('PEXPIRE', k, lease) end
return renewed`);

/** The options {@link redisBulkhead} adds to a bulkhead's and the store's. */
export interface RedisBulkheadLeaseOptions {
  /**
   * How long a permit is held in Redis without a renewal, in ms (a number in [100, 86_400_000]). Each process
   * renews all its permits in one script call every `leaseMs / 3`; the permits of a process that crashed (or
   * stalled longer than this) come back to the fleet after at most `leaseMs`. @defaultValue 10_000
   */
  leaseMs?: number;
  /**
   * The longest wait between two tries of a queued call to take a permit freed by another process, in ms (a
   * number in [1, 60_000]). The waits start at 5 ms (or `pollMaxMs` if smaller) and double up to it. A permit
   * this process gives back goes to its own first queued call at once, with no round trip, unless other processes
   * have calls waiting (then it goes back to Redis, for everyone's polls). @defaultValue 100
   */
  pollMaxMs?: number;
}

/**
 * Options of {@link redisBulkhead}: those of `bulkhead` (`limit`, `queue`, `queueTimeoutMs`, `name`, `clock`),
 * the Redis store's ({@link RedisStoreOptions}) and {@link RedisBulkheadLeaseOptions} (`leaseMs`, `pollMaxMs`).
 */
export type RedisBulkheadOptions = BulkheadOptions & RedisStoreOptions & RedisBulkheadLeaseOptions;

/** @internal The default `keyPrefix` of the concurrency limit. */
export const BULKHEAD_KEY_PREFIX = 'bulwark:bh:';
const LEASE_OPTION_NAMES = ['leaseMs', 'pollMaxMs'] as const;
const OPTION_NAMES: readonly string[] = [...BULKHEAD_OPTION_NAMES, ...STORE_OPTION_NAMES, ...LEASE_OPTION_NAMES];
const noop = (): void => undefined;

/** A call waiting in this process's queue for a permit. */
class RemoteWaiter implements AbortListener {
  timer: TimerHandle = undefined;
  subscribed = false;
  constructor(
    readonly owner: RedisBulkheadPolicy,
    readonly ctx: ExecutionContext,
    readonly op: Operation<unknown>,
    readonly next: Next,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
  ) {}

  _onAbort(reason: unknown): void {
    this.owner._leave(this, undefined, reason);
  }
}

/**
 * A concurrency limit shared by every process using the same `name` (and `keyPrefix`) on one Redis. See
 * {@link redisBulkhead}.
 */
export class RedisBulkheadPolicy extends PolicyBase {
  /** The fleet's limit: at most this many calls hold a permit at once, across every process. */
  readonly limit: number;
  /** How long a permit lives in Redis without a renewal, in ms. */
  readonly leaseMs: number;
  /** What a call does when Redis gives no answer. */
  readonly onStoreError: OnStoreError;
  readonly #maxQueue: number;
  readonly #queueTimeoutMs: number | undefined;
  readonly #pollMaxMs: number;
  readonly #pollMinMs: number;
  readonly #runner: ScriptRunner;
  readonly #scripting: RedisScripting;
  readonly #keys: readonly string[];
  readonly #limitArg: string;
  readonly #leaseArg: string;
  readonly #local: LazyLocal<BulkheadPolicy> | undefined;
  /** This process's holder ids: a random instance id and a counter. */
  readonly #instance = randomBytes(9).toString('base64url');
  #seq = 0;
  /** The permits this process holds in Redis (holder ids). */
  readonly #held = new Set<string>();
  /** The FIFO queue (a Set keeps insertion order, and deletes in O(1)). */
  readonly #waiters = new Set<RemoteWaiter>();
  #renewTimer: TimerHandle = undefined;
  #pollTimer: TimerHandle = undefined;
  #polling = false;
  #pollDelay: number;
  /** Until when (local clock) other processes are known to have calls waiting; 0: none known. */
  #othersWaitUntil = 0;
  /** The fleet's holders, as of the last answer from Redis. */
  #holders = 0;
  #recoveredMs = -1;
  #disposed = false;

  /** @internal Use {@link redisBulkhead}. */
  constructor(options: RedisBulkheadOptions) {
    super(options.name ?? 'bulkhead', options.clock ?? systemClock);
    this.limit = options.limit;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.onStoreError = options.onStoreError ?? 'local';
    this.#maxQueue = options.queue ?? 0;
    this.#queueTimeoutMs = options.queueTimeoutMs;
    this.#pollMaxMs = options.pollMaxMs ?? 100;
    this.#pollMinMs = Math.min(5, this.#pollMaxMs);
    this.#pollDelay = this.#pollMinMs;
    const base = slotKey(options.keyPrefix ?? BULKHEAD_KEY_PREFIX, this.name, undefined);
    this.#keys = [`${base}:p`, `${base}:w`];
    this.#limitArg = String(this.limit);
    // Redis wants whole milliseconds; rounding up never shortens a lease.
    this.#leaseArg = String(Math.ceil(this.leaseMs));
    this.#scripting = toScripting(options.client);
    this.#runner = new ScriptRunner(this.#scripting, {
      timeoutMs: options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS,
      recheckMs: options.storeRecheckMs ?? DEFAULT_STORE_RECHECK_MS,
      onRecovered: (ms) => {
        this.#recoveredMs = ms;
      },
    });
    if (this.onStoreError === 'local') {
      const local: BulkheadOptions = { limit: options.limit, name: this.name, clock: this._clock };
      if (options.queue !== undefined) local.queue = options.queue;
      if (options.queueTimeoutMs !== undefined) local.queueTimeoutMs = options.queueTimeoutMs;
      this.#local = new LazyLocal(() => new BulkheadPolicy(local));
    }
    // The process-wide bulkhead gauges read it: `active` (this process's permits), `queued`, `limit`.
    trackInstance('bulkhead', this);
  }

  /** Permits this process holds in Redis now (its calls running under the shared limit). */
  get active(): number {
    return this.#held.size;
  }

  /** Calls of this process waiting for a permit now. */
  get queued(): number {
    return this.#waiters.size;
  }

  /** Permits held by the whole fleet, as of the last answer from Redis (Redis is the truth). */
  get fleetActive(): number {
    return this.#holders;
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
   * The in-process bulkhead calls use while Redis gives no answer (`onStoreError: 'local'`), once a call has used
   * it (it is made on first use); undefined before.
   */
  get localFallback(): BulkheadPolicy | undefined {
    return this.#local?.current;
  }

  /**
   * Rejects every queued call with `BulkheadRejectedError` (reason `'disposed'`) and refuses new calls. Running
   * calls finish normally (their leases are renewed until they give their permits back). The Redis client is not
   * closed (it is yours). Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const w of [...this.#waiters]) this._leave(w, 'disposed', undefined);
    if (this.#pollTimer !== undefined) this._clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#local?.current?.dispose();
  }

  /** Subscribes to events of this limit, its local bulkhead included (`onStoreError: 'local'`). */
  override on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const own = this._events.on(type, listener);
    const local = this.#local?.on(type, listener);
    return () => {
      own();
      local?.();
    };
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed'));
    // FIFO: behind queued calls. And a process holding the whole limit knows there is no permit to ask for.
    if (this.#waiters.size > 0 || this.#held.size >= this.limit) return this.#queue(ctx, op, next);
    const member = this.#member();
    const demand = this.#maxQueue > 0 ? '1' : '0';
    return this.#runner.run(ACQUIRE, this.#keys, [this.#limitArg, this.#leaseArg, this.#instance, demand, member]).then(
      (reply) => {
        const parsed = parseAcquire(reply, 1);
        if (parsed === undefined) return this.#fallback(unexpected(reply), ctx, op, next);
        this.#answered(ctx, parsed);
        if (parsed[0] === 1) return this.#start(ctx, op, next, member);
        return this.#queue(ctx, op, next);
      },
      (error: unknown) => {
        this.#compensate(error, [member]);
        return this.#fallback(error, ctx, op, next);
      },
    );
  }

  /**
   * An acquire got no answer in time, but Redis may still run it (a paused connection delivers it later): a
   * release of the same holder ids is sent after it, straight to the client (the runner skips Redis while it is
   * failing), so that such a permit does not stay taken for a whole lease. Sent on the same connection, it runs
   * after the acquire; if the connection dropped instead, the permit (if any) lapses after its lease.
   */
  #compensate(error: unknown, members: readonly string[]): void {
    if (!isRedisStoreError(error) || (error.reason !== 'timeout' && error.reason !== 'error')) return;
    const s = this.#scripting;
    try {
      if (!s.ready()) return;
      Promise.resolve(s.eval(RELEASE.source, this.#keys, members)).then(noop, noop);
    } catch {
      // A throwing client: nothing was sent.
    }
  }

  #member(): string {
    return `${this.#instance}:${(this.#seq++).toString(36)}`;
  }

  #answered(ctx: ExecutionContext | undefined, [, holders, others]: Acquired): void {
    this.#holders = holders;
    // Others' demand, as of now: it stays true for a lease at most (their entries lapse by then).
    this.#othersWaitUntil = others > 0 ? this._clock.now() + this.leaseMs : 0;
    if (ctx === undefined) return;
    if (this.#recoveredMs >= 0) {
      const downMs = this.#recoveredMs;
      this.#recoveredMs = -1;
      emitStoreRecovered(this, ctx.operation, ctx.attempt, downMs);
    }
  }

  /** Runs a call that got the permit `member` (or gives the permit back if the call is gone meanwhile). */
  #start<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, member: string): Promise<T> {
    if (this.#disposed || ctx._aborted) {
      this.#giveBack(member);
      return Promise.reject(ctx._aborted ? ctx._reason : this.#rejection(ctx, 'disposed'));
    }
    this.#held.add(member);
    if (this.#renewTimer === undefined) {
      // One timer for every permit of this policy: each tick renews all of them in one script call.
      this.#renewTimer = this._clock.setTimeout(this.#renew, this.leaseMs / 3, true);
    }
    // Work a timeout inside abandoned keeps the permit until it settles, as in the local bulkhead.
    const mark = next === invoke ? -1 : ctx._orphanMark;
    const done = (): void => {
      if (mark < 0 || !ctx._whenOrphansDone(mark, () => this.#release(member))) this.#release(member);
    };
    return next(ctx, op).then(
      (value) => {
        done();
        return value;
      },
      (error: unknown) => {
        done();
        throw error;
      },
    );
  }

  readonly #renew = (): void => {
    this.#renewTimer = undefined;
    if (this.#held.size === 0) return;
    // A failed renewal is not retried early: the next tick comes well within the lease (a third of it).
    this.#runner.run(RENEW, this.#keys, [this.#leaseArg, ...this.#held]).then(noop, noop);
    this.#renewTimer = this._clock.setTimeout(this.#renew, this.leaseMs / 3, true);
  };

  /** A call holding `member` settled: the permit goes to this process's first queued call, or back to Redis. */
  #release(member: string): void {
    const w = this.#first();
    // Fairness: while other processes have calls waiting, the permit goes back to Redis, where their polls compete
    // with this process's own on equal terms; a process with a long queue would otherwise keep its permits.
    const othersWait = this.#othersWaitUntil > 0 && this._clock.now() < this.#othersWaitUntil;
    if (w !== undefined && !this.#disposed && !othersWait) {
      // Handed over with no round trip: the lease is the same permit's, renewed by the same timer.
      this.#held.delete(member);
      this.#unlink(w);
      this.#start(w.ctx, w.op, w.next, member).then(w.resolve, w.reject);
      return;
    }
    this.#held.delete(member);
    this.#giveBack(member);
    if (w !== undefined) this.#schedulePoll();
  }

  /** Removes a permit from Redis. If that fails, its lease lapses by itself. */
  #giveBack(member: string): void {
    this.#runner.run(RELEASE, this.#keys, [member]).then(noop, noop);
  }

  #first(): RemoteWaiter | undefined {
    for (const w of this.#waiters) return w;
    return undefined;
  }

  #queue<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed'));
    if (this.#waiters.size >= this.#maxQueue) return Promise.reject(this.#rejection(ctx, 'full'));
    if (ctx._aborted) return Promise.reject(ctx._reason);
    return new Promise<T>((resolve, reject) => {
      const w = new RemoteWaiter(this, ctx, op, next, resolve as (value: unknown) => void, reject);
      this.#waiters.add(w);
      w.subscribed = ctx._subscribe(w);
      const t = this.#queueTimeoutMs;
      if (t !== undefined) w.timer = this._clock.setTimeout(() => this._leave(w, 'queue_timeout', undefined), t);
      this.#schedulePoll();
    });
  }

  #schedulePoll(): void {
    if (this.#pollTimer !== undefined || this.#polling || this.#waiters.size === 0 || this.#disposed) return;
    // While this process holds the whole limit, a poll asks for no permit: it reports this process's demand and
    // learns the others' (so that its releases stop handing permits over while they wait).
    this.#pollTimer = this._clock.setTimeout(this.#poll, this.#pollDelay);
  }

  /** Asks Redis for permits for the first queued calls, all in one script call. */
  readonly #poll = (): void => {
    this.#pollTimer = undefined;
    const room = this.limit - this.#held.size;
    if (this.#disposed || this.#waiters.size === 0) return;
    const batch: RemoteWaiter[] = [];
    const members: string[] = [];
    for (const w of this.#waiters) {
      if (batch.length >= room) break;
      batch.push(w);
      members.push(this.#member());
    }
    this.#polling = true;
    const args = [this.#limitArg, this.#leaseArg, this.#instance, String(this.#waiters.size), ...members];
    this.#runner.run(ACQUIRE, this.#keys, args).then(
      (reply) => {
        this.#polling = false;
        const parsed = parseAcquire(reply, members.length);
        if (parsed === undefined) {
          this.#fallbackQueue(unexpected(reply));
          return;
        }
        const granted = parsed[0];
        this.#answered(this.#first()?.ctx, parsed);
        for (let i = 0; i < granted; i++) {
          const member = members[i] as string;
          // The call it was asked for may have left (abort, queue timeout): the permit goes to the next one.
          const w = this.#waiters.has(batch[i] as RemoteWaiter) ? (batch[i] as RemoteWaiter) : this.#first();
          if (w === undefined || this.#disposed) this.#giveBack(member);
          else {
            this.#unlink(w);
            this.#start(w.ctx, w.op, w.next, member).then(w.resolve, w.reject);
          }
        }
        this.#pollDelay = granted > 0 ? this.#pollMinMs : Math.min(this.#pollDelay * 2, this.#pollMaxMs);
        this.#schedulePoll();
      },
      (error: unknown) => {
        this.#polling = false;
        this.#compensate(error, members);
        this.#fallbackQueue(error);
      },
    );
  };

  /** Redis gave no answer to a poll: every queued call takes the fallback now. */
  #fallbackQueue(error: unknown): void {
    this.#pollDelay = this.#pollMinMs;
    for (const w of [...this.#waiters]) {
      this.#unlink(w);
      this.#fallback(error, w.ctx, w.op, w.next).then(w.resolve, w.reject);
    }
  }

  #unlink(w: RemoteWaiter): void {
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

  /** @internal A queued call leaves without a permit: queue timeout or dispose (`own`), or its caller's abort. */
  _leave(w: RemoteWaiter, own: BulkheadRejectionReason | undefined, callerReason: unknown): void {
    if (!this.#waiters.has(w)) return;
    this.#unlink(w);
    w.reject(own !== undefined ? this.#rejection(w.ctx, own) : callerReason);
  }

  #fallback<T>(error: unknown, ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const mode = this.onStoreError;
    emitStoreFallback(this, ctx.operation, ctx.attempt, mode, error);
    if (this.#disposed) return Promise.reject(this.#rejection(ctx, 'disposed'));
    if (ctx._aborted) return Promise.reject(ctx._reason);
    if (mode === 'fail-open') return next(ctx, op);
    if (mode === 'fail-closed') return Promise.reject(this.#rejection(ctx, 'unavailable'));
    return (this.#local as LazyLocal<BulkheadPolicy>).get()._run(ctx, op, next);
  }

  #rejection(ctx: ExecutionContext, reason: BulkheadRejectionReason): BulkheadRejectedError {
    // `active` is the fleet's (as of the last answer from Redis): the limit it is judged against.
    const active = Math.max(this.#holders, this.#held.size);
    if (this._events.wants(EV.bulkheadRejected)) {
      this._events.emit(EV.bulkheadRejected, {
        type: 'bulkhead.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        reason,
        active,
        queued: this.#waiters.size,
      });
    }
    return BulkheadRejectedError.fast(this.name, reason, active, this.#waiters.size);
  }
}

function unexpected(reply: unknown): RedisStoreError {
  // A reply of another shape (a proxy, or a client in a mode that changes replies): the store failed.
  return new RedisStoreError('error', `unexpected reply from the concurrency limit script: ${describe(reply)}`);
}

/** `[granted, holders, others]`: the acquire script's reply. */
type Acquired = [number, number, number];

/** The acquire script's reply, or undefined for anything else. */
function parseAcquire(reply: unknown, asked: number): Acquired | undefined {
  if (!Array.isArray(reply) || reply.length !== 3) return undefined;
  const granted = Number(reply[0]);
  const holders = Number(reply[1]);
  const others = Number(reply[2]);
  if (!Number.isInteger(granted) || granted < 0 || granted > asked || !(holders >= 0) || !(others >= 0)) {
    return undefined;
  }
  return [granted, holders, others];
}

/**
 * A concurrency limit shared by every process of a fleet (a global bulkhead): at most `limit` calls run at once
 * across all processes using the same `name` on one Redis. Same options, error (`BulkheadRejectedError`) and
 * events as `bulkhead`, plus the Redis `client`, the lease and what to do when Redis gives no answer.
 *
 * - A permit is a lease in one Redis sorted set (holder id, scored by its expiry on Redis `TIME`): taken in one
 *   round trip (a Lua script that first drops expired leases), given back when the call settles, success, failure
 *   or abort alike (a round trip after the call, not before its result).
 * - Leases are renewed by one timer per policy, every `leaseMs / 3`, in one script call for all the permits of the
 *   process. A process that crashes (SIGKILL, OOM, a lost host) holds its permits for at most `leaseMs` more.
 * - A call that finds the limit full waits in this process's FIFO queue (`queue`, `queueTimeoutMs`, as a local
 *   bulkhead; a caller's abort leaves at once). Queued calls poll Redis, every 5 ms doubling up to `pollMaxMs`
 *   (one script call asks for as many queued calls as fit, and records that this process has calls waiting). A
 *   permit this process gives back goes to its own first queued call at once, unless other processes have calls
 *   waiting: then it goes back to Redis, so that a busy process cannot starve the others. No busy loop, no
 *   pub/sub connection to manage. There is no FIFO order across processes.
 * - When Redis is slow or down, a call takes `onStoreError`: `'local'` (default: an in-process `bulkhead` with
 *   the same options), `'fail-open'` (runs without a permit) or `'fail-closed'` (`BulkheadRejectedError`, reason
 *   `'unavailable'`), with a `store.fallback` event; queued calls take it too.
 *
 * @throws InvalidOptionsError listing every invalid option (those of `bulkhead`, the store's, the lease's).
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { redisBulkhead } from 'bulwark/redis';
 *
 * const redis = new Redis({ enableOfflineQueue: false });
 * // At most 10 exports at once against the fragile upstream, across the whole fleet.
 * const exports = redisBulkhead({ client: redis, name: 'exports', limit: 10, queue: 100, queueTimeoutMs: 5_000 });
 * await exports.execute(({ signal }) => startExport(job, { signal }));
 * ```
 */
export function redisBulkhead(options: RedisBulkheadOptions): RedisBulkheadPolicy {
  const check = new Checker('redisBulkhead');
  if (check.object('', options, OPTION_NAMES)) {
    const o = options as unknown as Record<string, unknown>;
    if (o.limit === undefined) check.fail('limit', undefined, 'an integer >= 1 (required)');
    check.number('limit', o.limit, { min: 1, integer: true });
    check.number('queue', o.queue, { min: 0, integer: true, infinity: true });
    check.number('queueTimeoutMs', o.queueTimeoutMs, { min: 0, exclusiveMin: true });
    check.string('name', o.name);
    check.clock('clock', o.clock);
    checkStoreOptions(check, o);
    check.number('leaseMs', o.leaseMs, { min: 100, max: 86_400_000 });
    check.number('pollMaxMs', o.pollMaxMs, { min: 1, max: 60_000 });
  } else if (options === undefined) {
    check.fail('limit', undefined, 'an integer >= 1 (required)');
    check.fail('client', undefined, 'a Redis client (required)');
  }
  check.done();
  return new RedisBulkheadPolicy(options);
}
