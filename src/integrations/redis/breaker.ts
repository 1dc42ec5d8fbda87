/**
 * A circuit breaker whose state is shared by a fleet: outcomes counted in Redis, one half-open probe cluster-wide.
 * @module
 */

import { randomBytes } from 'node:crypto';
import { systemClock, type TimerHandle } from '../../core/clock.js';
import type { ExecutionContext } from '../../core/context.js';
import type { HandlePredicate } from '../../core/outcome.js';
import type { Next, Operation } from '../../core/policy.js';
import { type Random, systemRandom } from '../../core/random.js';
import { CircuitOpenError, type CircuitRejectionState, isLocalRejectionError } from '../../errors/errors.js';
import { Checker, describe } from '../../errors/validate.js';
import { EV } from '../../events/emitter.js';
import { trackInstance } from '../../events/instances.js';
import type { EventType, Listener } from '../../events/types.js';
import { CircuitBreakerPolicy, type CircuitState } from '../../policies/circuit-breaker/circuit-breaker.js';
import { CIRCUIT_OPTION_NAMES, type CircuitBreakerOptions } from '../../policies/circuit-breaker/options.js';
import { checkCircuitBreakerOptions } from '../../policies/circuit-breaker/validate.js';
import { classification } from '../../policies/handle.js';
import { PolicyBase } from '../../policies/policy-base.js';
import type { Backoff } from '../../policies/retry/backoff.js';
import { toScripting } from './client.js';
import { slotKey } from './keys.js';
import { LazyLocal } from './local-fallback.js';
import { RedisScript, RedisStoreError, ScriptRunner } from './runner.js';
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

/**
 * The common head of the breaker's scripts. KEYS: the state hash, the count window's ring (a list of outcome
 * codes), the time window's buckets (a hash), the probe lease (a string holding the prober's token). The last
 * argument is the keys' idle expiry in ms. State fields: g (generation, bumped by every transition), st (0 closed,
 * 1 open: half-open once `u` has passed), u (open until, Redis ms), o (openings in a row), lb (last break ms), fr
 * and sr (the rates that opened it), hs (half-open successes), x (openings ever); window fields c (consecutive
 * failures), n, f, s (the count window's totals).
 */
const HEAD = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local S, R, T, P = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl = ARGV[#ARGV]
local h = redis.call('HMGET', S, 'g', 'st', 'u', 'o', 'lb', 'fr', 'sr', 'hs')
local g = tonumber(h[1]) or 0
local st = tonumber(h[2]) or 0
local u = tonumber(h[3]) or 0
local o = tonumber(h[4]) or 0
local lb = tonumber(h[5]) or 0
local fr = h[6] or '0'
local sr = h[7] or '0'
local hs = tonumber(h[8]) or 0
local dirty = false
local function clear()
  redis.call('HDEL', S, 'c', 'n', 'f', 's')
  redis.call('DEL', R, T)
end
local function open(breakMs, rateF, rateS)
  g = g + 1
  st = 1
  u = now + breakMs
  o = o + 1
  lb = breakMs
  fr = rateF
  sr = rateS
  hs = 0
  dirty = true
  clear()
  redis.call('DEL', P)
  redis.call('HINCRBY', S, 'x', 1)
end
local function close()
  g = g + 1
  st = 0
  u = 0
  o = 0
  hs = 0
  dirty = true
  clear()
  redis.call('DEL', P)
end
local function reply(flag)
  if dirty then
    redis.call('HSET', S, 'g', g, 'st', st, 'u', u, 'o', o, 'lb', lb, 'fr', fr, 'sr', sr, 'hs', hs)
    redis.call('PEXPIRE', S, ttl)
    redis.call('PEXPIRE', R, ttl)
    redis.call('PEXPIRE', T, ttl)
  end
  return {g, st, tostring(u - now), o, tostring(lb), redis.call('PTTL', P), fr, sr, flag}
end
`;

/**
 * Records a batch of outcomes of calls admitted while closed under generation ARGV[1], in order (ARGV[2]: one
 * digit per call, bit 1 failed, bit 2 slow; generation -1: a process that has not read the state yet, whose
 * outcomes count while closed), and opens the breaker the moment the window says so (the rest of the
 * batch is then ignored, as a local breaker ignores outcomes of calls admitted before it opened). An empty batch
 * only reads the state. ARGV[3]: the break if it opens; ARGV[4]: window kind (c, n, t); ARGV[5..9]: threshold or
 * size or bucket ms, buckets, failure rate, slow-call rate, minimum calls. Flag: 1 if this batch opened it.
 * @internal
 */
export const FLUSH = new RedisScript(`${HEAD}
local gen = tonumber(ARGV[1])
local out = ARGV[2]
local breakMs = tonumber(ARGV[3])
local kind = ARGV[4]
local p1 = tonumber(ARGV[5])
local p2 = tonumber(ARGV[6])
local frT = tonumber(ARGV[7])
local srT = tonumber(ARGV[8])
local minC = tonumber(ARGV[9])
local opened = 0
if st == 0 and (gen == g or gen == -1) and #out > 0 then
  dirty = true
  if kind == 'c' then
    local c = tonumber(redis.call('HGET', S, 'c')) or 0
    for i = 1, #out do
      local code = string.byte(out, i) - 48
      if code % 2 == 1 then
        c = c + 1
        if c >= p1 then
          open(breakMs, tostring(c), '0')
          opened = 1
          break
        end
      else
        c = 0
      end
    end
    if opened == 0 then redis.call('HSET', S, 'c', c) end
  elseif kind == 'n' then
    local tot = redis.call('HMGET', S, 'n', 'f', 's')
    local n = tonumber(tot[1]) or 0
    local f = tonumber(tot[2]) or 0
    local s = tonumber(tot[3]) or 0
    for i = 1, #out do
      local code = string.byte(out, i) - 48
      redis.call('RPUSH', R, code)
      if n >= p1 then
        local old = tonumber(redis.call('LPOP', R)) or 0
        if old % 2 == 1 then f = f - 1 end
        if old >= 2 then s = s - 1 end
      else
        n = n + 1
      end
      local failed = code % 2 == 1
      local slow = code >= 2
      if failed then f = f + 1 end
      if slow then s = s + 1 end
      if (failed or slow) and n >= minC and (f / n >= frT or s / n >= srT) then
        open(breakMs, tostring(f / n), tostring(s / n))
        opened = 1
        break
      end
    end
    if opened == 0 then redis.call('HSET', S, 'n', n, 'f', f, 's', s) end
  else
    local cur = math.floor(now / p1)
    local slot = cur % p2
    local bc, bf, bs = 0, 0, 0
    local b = redis.call('HMGET', T, 'e' .. slot, 'c' .. slot, 'f' .. slot, 's' .. slot)
    if tonumber(b[1]) == cur then
      bc, bf, bs = tonumber(b[2]) or 0, tonumber(b[3]) or 0, tonumber(b[4]) or 0
    end
    local n, f, s = bc, bf, bs
    for j = 0, p2 - 1 do
      if j ~= slot then
        local e = redis.call('HMGET', T, 'e' .. j, 'c' .. j, 'f' .. j, 's' .. j)
        local ep = tonumber(e[1])
        if ep and ep > cur - p2 and ep <= cur then
          n = n + (tonumber(e[2]) or 0)
          f = f + (tonumber(e[3]) or 0)
          s = s + (tonumber(e[4]) or 0)
        end
      end
    end
    for i = 1, #out do
      local code = string.byte(out, i) - 48
      local failed = code % 2 == 1
      local slow = code >= 2
      bc = bc + 1
      n = n + 1
      if failed then bf = bf + 1; f = f + 1 end
      if slow then bs = bs + 1; s = s + 1 end
      if (failed or slow) and n >= minC and (f / n >= frT or s / n >= srT) then
        open(breakMs, tostring(f / n), tostring(s / n))
        opened = 1
        break
      end
    end
    if opened == 0 then
      redis.call('HSET', T, 'e' .. slot, cur, 'c' .. slot, bc, 'f' .. slot, bf, 's' .. slot, bs)
    end
  end
end
return reply(opened)`);

/**
 * Takes the probe lease when the breaker is half-open (open, its break passed): SET NX PX with the caller's token
 * (ARGV[1]), for ARGV[2] ms (0: the last break, at least 1 s). Flag: 1 if this caller is the probe.
 * @internal
 */
export const TRY_PROBE = new RedisScript(`${HEAD}
local flag = 0
if st == 1 and now >= u then
  local lease = tonumber(ARGV[2])
  if lease <= 0 then lease = math.max(lb, 1000) end
  -- At most 1e13 ms: Lua writes a number of 15 digits or more in exponent notation, which PX refuses.
  lease = math.min(math.ceil(lease), 1e13)
  if redis.call('SET', P, ARGV[1], 'NX', 'PX', lease) then flag = 1 end
end
return reply(flag)`);

/**
 * A probe settled: ARGV[1] its token, ARGV[2] the generation it probed, ARGV[3] 1 success, 0 failure, 2 neutral
 * (aborted, a local rejection: gives the lease back only), ARGV[4] the break if it reopens, ARGV[5] successes
 * needed. Counted only while the caller still holds the lease (a probe whose lease expired is ignored: another
 * process may be probing). Flag: 1 if counted.
 * @internal
 */
export const PROBE_DONE = new RedisScript(`${HEAD}
local flag = 0
if redis.call('GET', P) == ARGV[1] then
  redis.call('DEL', P)
  flag = 1
  if st == 1 and g == tonumber(ARGV[2]) then
    if ARGV[3] == '1' then
      hs = hs + 1
      dirty = true
      if hs >= tonumber(ARGV[5]) then close() end
    elseif ARGV[3] == '0' then
      open(tonumber(ARGV[4]), fr, sr)
    end
  end
end
return reply(flag)`);

/** Closes the breaker for the whole fleet, with a fresh window. @internal */
export const RESET = new RedisScript(`${HEAD}
close()
return reply(0)`);

/** The options {@link redisCircuitBreaker} adds to a breaker's and the store's. */
export interface RedisCircuitBreakerSyncOptions {
  /**
   * How often a process exchanges with Redis while it has calls, in ms (a number in [1, 60_000]): it sends the
   * outcomes of its calls since the last exchange and reads the shared state back. A failure (or slow call) is
   * sent at once instead. This bounds how stale a process's view is: a breaker opened by other processes is seen
   * within `syncIntervalMs` plus one round trip (the first call after an idle spell starts an exchange at once).
   * @defaultValue 100
   */
  syncIntervalMs?: number;
}

/**
 * Options of {@link redisCircuitBreaker}: those of `circuitBreaker` except `initialState` (the state lives in
 * Redis) and with `halfOpenProbes` 1 only (one probe cluster-wide), the Redis store's ({@link RedisStoreOptions})
 * and {@link RedisCircuitBreakerSyncOptions}.
 */
export type RedisCircuitBreakerOptions = Omit<CircuitBreakerOptions, 'initialState'> &
  RedisStoreOptions &
  RedisCircuitBreakerSyncOptions;

/** @internal The default `keyPrefix` of the shared breaker. */
export const BREAKER_KEY_PREFIX = 'bulwark:cb:';
const LOCAL_NAMES = CIRCUIT_OPTION_NAMES.filter((n) => n !== 'initialState');
const OPTION_NAMES: readonly string[] = [...LOCAL_NAMES, ...STORE_OPTION_NAMES, 'syncIntervalMs'];
/** The most outcomes one exchange sends: more are sent at once. */
const MAX_BATCH = 1_000;
/** Keys of an idle breaker expire after this long (or twice its break, if longer). */
const IDLE_TTL_MS = 86_400_000;
const CLOSED = 0;
const OPEN = 1;
const noop = (): void => undefined;

/** The state in a script's reply. */
interface Reply {
  gen: number;
  open: boolean;
  remainingMs: number;
  opens: number;
  lastBreakMs: number;
  leaseMs: number;
  failureRate: number;
  slowCallRate: number;
  flag: number;
}

function parseReply(reply: unknown): Reply | undefined {
  if (!Array.isArray(reply) || reply.length !== 9) return undefined;
  const n = reply.map((x) => Number(x));
  const [gen, st, remainingMs, opens, lastBreakMs, leaseMs, failureRate, slowCallRate, flag] = n as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (!Number.isInteger(gen) || (st !== 0 && st !== 1) || n.some((x) => Number.isNaN(x))) return undefined;
  return { gen, open: st === 1, remainingMs, opens, lastBreakMs, leaseMs, failureRate, slowCallRate, flag };
}

/** Shared settle handlers of lean calls admitted under one generation (no closure per call). */
class Track {
  constructor(
    readonly gen: number,
    readonly onValue: <T>(value: T) => T,
    readonly onError: (error: unknown) => never,
  ) {}
}

/**
 * A circuit breaker whose state is shared by every process using the same `name` (and `keyPrefix`) on one Redis.
 * See {@link redisCircuitBreaker}.
 */
export class RedisCircuitBreakerPolicy extends PolicyBase {
  /** What a call does when Redis gives no answer. */
  readonly onStoreError: OnStoreError;
  /** How often a process with calls exchanges with Redis, in ms. */
  readonly syncIntervalMs: number;
  readonly #runner: ScriptRunner;
  readonly #keys: readonly string[];
  readonly #windowArgs: readonly string[];
  readonly #handle: HandlePredicate<unknown>;
  readonly #classifyResults: boolean;
  readonly #slowCallMs: number;
  readonly #timed: boolean;
  readonly #breakMs: number | Backoff;
  readonly #needed: string;
  readonly #leaseArg: string;
  readonly #random: Random;
  readonly #local: LazyLocal<CircuitBreakerPolicy> | undefined;
  readonly #instance = randomBytes(9).toString('base64url');
  #seq = 0;
  // The cached shared state.
  #gen = -1;
  #state = CLOSED;
  #openUntil = 0;
  #opens = 0;
  #lastBreakMs = 0;
  /** The generation whose half-open state this process has announced (`circuit.half_open`). */
  #halfOpenSeen = -1;
  /** No probe is asked for before this (local clock): a probe is ours or another's lease runs. */
  #probeAfter = 0;
  #asking = false;
  // Outcomes not sent yet (one digit per call), of calls admitted under #gen.
  #buffer = '';
  #inflight: Promise<void> | undefined = undefined;
  #again = false;
  /** When this process last heard the state from Redis (local clock). */
  #lastApplied = Number.NEGATIVE_INFINITY;
  #syncTimer: TimerHandle = undefined;
  #lastSync = Number.NEGATIVE_INFINITY;
  #busy = false;
  #track: Track | undefined = undefined;
  #recoveredMs = -1;
  /** Round trips made, for the bench and tests. @internal */
  _roundTrips = 0;

  /** @internal Use {@link redisCircuitBreaker}. */
  constructor(options: RedisCircuitBreakerOptions) {
    super(options.name ?? 'circuit-breaker', options.clock ?? systemClock);
    this.onStoreError = options.onStoreError ?? 'local';
    this.syncIntervalMs = options.syncIntervalMs ?? 100;
    const w = options.window ?? { kind: 'count' };
    const minimumCalls = options.minimumCalls ?? (w.kind === 'count' ? Math.min(20, w.size ?? 100) : 20);
    const failureRate = String(options.failureRate ?? 0.5);
    // A rate above 1 is never reached: no slow-call threshold without slowCallMs.
    const slowRate = options.slowCallMs === undefined ? '2' : String(options.slowCallRate ?? 1);
    this.#windowArgs =
      w.kind === 'consecutive'
        ? ['c', String(w.threshold ?? 5), '1', '1', '2', '1']
        : w.kind === 'count'
          ? ['n', String(w.size ?? 100), '1', failureRate, slowRate, String(minimumCalls)]
          : [
              't',
              String((w.sizeMs ?? 60_000) / (w.buckets ?? 10)),
              String(w.buckets ?? 10),
              failureRate,
              slowRate,
              String(minimumCalls),
            ];
    const classify = classification(options.handle);
    this.#handle = classify.predicate;
    this.#classifyResults = classify.results;
    this.#slowCallMs = options.slowCallMs ?? Number.POSITIVE_INFINITY;
    this.#timed = options.slowCallMs !== undefined;
    this.#breakMs = options.halfOpenAfterMs ?? 10_000;
    this.#needed = String(options.halfOpenSuccesses ?? 1);
    this.#leaseArg = String(options.halfOpenLeaseMs ?? 0);
    this.#random = options.random ?? systemRandom;
    const base = slotKey(options.keyPrefix ?? BREAKER_KEY_PREFIX, this.name, undefined);
    this.#keys = [`${base}:s`, `${base}:r`, `${base}:t`, `${base}:p`];
    this.#runner = new ScriptRunner(toScripting(options.client), {
      timeoutMs: options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS,
      recheckMs: options.storeRecheckMs ?? DEFAULT_STORE_RECHECK_MS,
      onRecovered: (ms) => {
        this.#recoveredMs = ms;
      },
    });
    if (this.onStoreError === 'local') {
      const local: Record<string, unknown> = { name: this.name, clock: this._clock };
      for (const n of LOCAL_NAMES) {
        const v = (options as unknown as Record<string, unknown>)[n];
        if (v !== undefined && n !== 'name' && n !== 'clock') local[n] = v;
      }
      this.#local = new LazyLocal(() => new CircuitBreakerPolicy(local as CircuitBreakerOptions));
    }
    // The process-wide breaker gauge reads its `state` (this process's view).
    trackInstance('circuit_breaker', this);
  }

  /**
   * The state as this process last saw it (at most `syncIntervalMs` plus a round trip old while it has calls): an
   * open breaker whose break has passed reports `'half_open'`.
   */
  get state(): CircuitState {
    if (this.#state === CLOSED) return 'closed';
    return this._clock.now() >= this.#openUntil ? 'half_open' : 'open';
  }

  /** Whether the last Redis operation succeeded (false while calls take the fallback). */
  get storeHealthy(): boolean {
    return this.#runner.healthy;
  }

  /**
   * The in-process breaker calls use while Redis gives no answer (`onStoreError: 'local'`), once a call has used it
   * (it is made on first use, with a fresh window); undefined before.
   */
  get localFallback(): CircuitBreakerPolicy | undefined {
    return this.#local?.current;
  }

  /** Subscribes to events of this breaker, its local breaker included (`onStoreError: 'local'`). */
  override on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const own = this._events.on(type, listener);
    const local = this.#local?.on(type, listener);
    return () => {
      own();
      local?.();
    };
  }

  /**
   * Closes the breaker for the whole fleet, with a fresh window (other processes see it at their next exchange).
   * Rejects with a `RedisStoreError` when Redis gives no answer.
   * @example `await breaker.reset();`
   */
  reset(): Promise<void> {
    return this.#send(RESET, ['0']).then((reply) => {
      const r = parseReply(reply);
      if (r === undefined) throw unexpected(reply);
      this.#apply(r, undefined);
    });
  }

  /**
   * Sends the outcomes not sent yet and reads the shared state now (normally done every `syncIntervalMs` while
   * calls run). Rejects with a `RedisStoreError` when Redis gives no answer.
   * @example `await breaker.sync();`
   */
  sync(): Promise<void> {
    return this.#exchange();
  }

  /** @internal */
  _run<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (!this.#runner.healthy) return this.#fallback(undefined, ctx, op, next);
    this.#busy = true;
    if (this.#syncTimer === undefined) {
      // No exchange pending: the process was idle (or just started). A view older than `syncIntervalMs` is read
      // again before the call is decided (one round trip, shared by the calls arriving meanwhile).
      if (this._clock.now() - this.#lastApplied > this.syncIntervalMs) {
        return this.#exchange().then(
          () => {
            if (this.#syncTimer === undefined) this.#arm();
            return this.#decide(ctx, op, next);
          },
          (error: unknown) => this.#fallback(error, ctx, op, next),
        );
      }
      this.#arm();
    }
    return this.#decide(ctx, op, next);
  }

  #decide<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    if (this.#state === CLOSED) return this.#closed(ctx, op, next);
    const now = this._clock.now();
    if (now < this.#openUntil) return Promise.reject(this.#reject(ctx, this.#openUntil - now, 'open'));
    if (this.#halfOpenSeen !== this.#gen) {
      this.#halfOpenSeen = this.#gen;
      if (this._events.wants(EV.circuitHalfOpen)) {
        this._events.emit(EV.circuitHalfOpen, {
          type: 'circuit.half_open',
          policy: this.name,
          operation: ctx.operation,
          attempt: ctx.attempt,
        });
      }
    }
    if (this.#asking || now < this.#probeAfter) {
      return Promise.reject(this.#reject(ctx, Math.max(1, this.#probeAfter - now), 'half_open'));
    }
    return this.#askProbe(ctx, op, next);
  }

  /** A call admitted while closed: its outcome joins the batch of its generation. */
  #closed<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const gen = this.#gen;
    if (!this.#timed && ctx._caller === undefined && ctx._scope === undefined) {
      let t = this.#track;
      if (t === undefined || t.gen !== gen) t = this.#share(gen);
      return next(ctx, op).then(t.onValue, t.onError);
    }
    const start = this.#timed ? this._clock.now() : 0;
    return next(ctx, op).then(
      (value) => {
        this.#outcome(gen, start, true, value);
        return value;
      },
      (error: unknown) => {
        if (!ctx._aborted) this.#outcome(gen, start, false, error);
        throw error;
      },
    );
  }

  #share(gen: number): Track {
    this.#track = new Track(
      gen,
      (value) => {
        if (this.#classifyResults) this.#outcome(gen, 0, true, value);
        else if (gen === this.#gen) this.#record('0');
        return value;
      },
      (error: unknown) => {
        this.#outcome(gen, 0, false, error);
        throw error;
      },
    );
    return this.#track;
  }

  /** Classifies an outcome and records it. Throws the `handle` predicate's own error, if it throws. */
  #outcome(gen: number, start: number, ok: boolean, valueOrError: unknown): void {
    if (gen !== this.#gen) return;
    // bulwark refused the call before it reached the dependency: says nothing about its health.
    if (!ok && isLocalRejectionError(valueOrError)) return;
    const failed = ok
      ? this.#classifyResults && this.#handle({ ok: true, value: valueOrError })
      : this.#handle({ ok: false, error: valueOrError });
    const slow = this.#timed && this._clock.now() - start >= this.#slowCallMs;
    this.#record(failed ? (slow ? '3' : '1') : slow ? '2' : '0');
  }

  #record(code: string): void {
    this.#buffer += code;
    // A failure or slow call is sent at once (it may open the breaker); successes wait for the next exchange.
    if (code !== '0' || this.#buffer.length >= MAX_BATCH) this.#exchange().then(noop, noop);
  }

  /** Arms the exchange timer: due `syncIntervalMs` after the last exchange (at once after an idle spell). */
  #arm(): void {
    const delay = Math.max(0, this.#lastSync + this.syncIntervalMs - this._clock.now());
    this.#syncTimer = this._clock.setTimeout(this.#tick, delay, true);
  }

  readonly #tick = (): void => {
    this.#syncTimer = undefined;
    if (!this.#busy) return; // idle since the last exchange: the next call arms the timer again
    this.#busy = false;
    this.#exchange().then(noop, noop);
    this.#arm();
  };

  /**
   * Sends the buffered outcomes (or nothing: a read) and applies the state Redis answers with. One at a time: while
   * one is in flight, another is due when it returns, and this returns the one in flight.
   */
  #exchange(): Promise<void> {
    if (this.#inflight !== undefined) {
      this.#again = true;
      return this.#inflight;
    }
    const batch = this.#buffer;
    this.#buffer = '';
    this.#lastSync = this._clock.now();
    const args = [String(this.#gen), batch, String(this.#nextBreak(this.#opens)), ...this.#windowArgs];
    this.#inflight = this.#send(FLUSH, args).then(
      (reply) => {
        this.#inflight = undefined;
        const r = parseReply(reply);
        if (r === undefined) {
          const e = unexpected(reply);
          this.#storeFailed(e);
          throw e;
        }
        this.#apply(r, undefined);
        if (this.#again) {
          this.#again = false;
          this.#exchange().then(noop, noop);
        }
      },
      (error: unknown) => {
        this.#inflight = undefined;
        this.#again = false;
        this.#storeFailed(error);
        throw error;
      },
    );
    return this.#inflight;
  }

  #send(script: RedisScript, args: readonly string[]): Promise<unknown> {
    this._roundTrips++;
    return this.#runner.run(script, this.#keys, [...args, String(this.#ttl())]);
  }

  /** Outcomes not sent when Redis failed are dropped; calls take the fallback until Redis answers again. */
  #storeFailed(_error: unknown): void {
    this.#buffer = '';
  }

  #ttl(): number {
    // Capped at 1e13 ms (300 years): an integer PEXPIRE accepts, written without an exponent.
    return Math.min(1e13, Math.max(IDLE_TTL_MS, 2 * Math.ceil(this.#lastBreakMs)));
  }

  /** The break of the opening after `opens` openings in a row (a growing break is computed by its opener). */
  #nextBreak(opens: number): number {
    const b = this.#breakMs;
    return typeof b === 'number' ? b : b.delay(opens + 1, this.#lastBreakMs, this.#random);
  }

  /** Takes the state Redis answered with; announces the transitions this process had not seen. */
  #apply(r: Reply, ctx: ExecutionContext | undefined): void {
    const now = this._clock.now();
    const operation = ctx?.operation ?? 'default';
    const attempt = ctx?.attempt ?? 0;
    if (this.#recoveredMs >= 0) {
      const downMs = this.#recoveredMs;
      this.#recoveredMs = -1;
      emitStoreRecovered(this, operation, attempt, downMs);
    }
    this.#opens = r.opens;
    this.#lastBreakMs = r.lastBreakMs;
    this.#lastApplied = now;
    const first = this.#gen < 0;
    if (r.gen === this.#gen) {
      if (r.open) this.#openUntil = now + r.remainingMs; // the local clock's view of Redis's `until`
      return;
    }
    const wasOpen = this.#state === OPEN;
    const wasHalfOpen = wasOpen && this.#halfOpenSeen === this.#gen;
    this.#gen = r.gen;
    // Outcomes of calls admitted under an older state cannot change the new one. Those of a process that had not
    // read the state yet count if the breaker is closed (Redis counts them so too).
    if (!first || r.open) this.#buffer = '';
    this.#probeAfter = 0;
    if (r.open) {
      this.#state = OPEN;
      this.#openUntil = now + r.remainingMs;
      if (!first && this._events.wants(EV.circuitOpen)) {
        this._events.emit(EV.circuitOpen, {
          type: 'circuit.open',
          policy: this.name,
          operation,
          attempt,
          breakDurationMs: r.lastBreakMs,
          from: wasOpen ? 'half_open' : 'closed',
          failureRate: r.failureRate,
          slowCallRate: r.slowCallRate,
        });
      }
    } else {
      this.#state = CLOSED;
      if (!first && this._events.wants(EV.circuitClosed)) {
        this._events.emit(EV.circuitClosed, {
          type: 'circuit.closed',
          policy: this.name,
          operation,
          attempt,
          from: wasHalfOpen ? 'half_open' : wasOpen ? 'open' : 'closed',
        });
      }
    }
  }

  /** Half-open: asks Redis for the fleet's single probe lease (one round trip, only in this state). */
  #askProbe<T>(ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    this.#asking = true;
    const token = `${this.#instance}:${(this.#seq++).toString(36)}`;
    return this.#send(TRY_PROBE, [token, this.#leaseArg]).then(
      (reply) => {
        this.#asking = false;
        const r = parseReply(reply);
        if (r === undefined) return this.#fallback(unexpected(reply), ctx, op, next);
        this.#apply(r, ctx);
        const now = this._clock.now();
        if (r.flag === 1) {
          // Ours: nobody else may probe before the lease ends, so this process does not ask before it either.
          this.#probeAfter = now + Math.max(1, r.leaseMs);
          return this.#probe(ctx, op, next, token, r.gen);
        }
        if (this.#state === CLOSED) return this.#closed(ctx, op, next); // another process's probes closed it
        if (now < this.#openUntil) return Promise.reject(this.#reject(ctx, this.#openUntil - now, 'open'));
        // Another process holds the lease: ask again when it ends, or at the next exchange, whichever is first.
        const wait = r.leaseMs > 0 ? r.leaseMs : this.syncIntervalMs;
        this.#probeAfter = now + Math.min(wait, this.syncIntervalMs);
        return Promise.reject(this.#reject(ctx, wait, 'half_open'));
      },
      (error: unknown) => {
        this.#asking = false;
        return this.#fallback(error, ctx, op, next);
      },
    );
  }

  /** Runs the fleet's probe, then reports it (the caller does not wait for the report). */
  #probe<T>(ctx: ExecutionContext, op: Operation<T>, next: Next, token: string, gen: number): Promise<T> {
    const start = this.#timed ? this._clock.now() : 0;
    const report = (result: '0' | '1' | '2'): void => {
      this.#send(PROBE_DONE, [token, String(gen), result, String(this.#nextBreak(this.#opens)), this.#needed]).then(
        (reply) => {
          if (this.#probeAfter > 0 && this.#gen === gen) this.#probeAfter = 0;
          const r = parseReply(reply);
          if (r === undefined) return;
          if (r.flag === 0 && result !== '2' && this._events.wants(EV.circuitProbeExpired)) {
            // Its lease had expired: the outcome was ignored (another process may be probing).
            this._events.emit(EV.circuitProbeExpired, {
              type: 'circuit.probe_expired',
              policy: this.name,
              operation: ctx.operation,
              attempt: ctx.attempt,
              probes: 1,
            });
          }
          this.#apply(r, ctx);
        },
        () => {
          // The lease lapses by itself; the state is read again at the next exchange.
          if (this.#gen === gen) this.#probeAfter = 0;
        },
      );
    };
    return next(ctx, op).then(
      (value) => {
        let failed: boolean;
        try {
          failed = this.#classifyResults && this.#handle({ ok: true, value });
        } catch (predicateError) {
          report('2');
          throw predicateError;
        }
        const slow = this.#timed && this._clock.now() - start >= this.#slowCallMs;
        report(failed || slow ? '0' : '1');
        return value;
      },
      (error: unknown) => {
        if (ctx._aborted || isLocalRejectionError(error)) {
          report('2');
          throw error;
        }
        let failed: boolean;
        try {
          failed = this.#handle({ ok: false, error });
        } catch (predicateError) {
          report('2');
          throw predicateError;
        }
        report(failed ? '0' : '1');
        throw error;
      },
    );
  }

  #fallback<T>(error: unknown, ctx: ExecutionContext, op: Operation<T>, next: Next): Promise<T> {
    const mode = this.onStoreError;
    // While Redis is skipped, the exchanges go on (one try per storeRecheckMs): they bring the calls back.
    this.#busy = true;
    if (this.#syncTimer === undefined) this.#arm();
    emitStoreFallback(
      this,
      ctx.operation,
      ctx.attempt,
      mode,
      error ?? new RedisStoreError('unavailable', 'Redis failed recently; it is skipped until it answers'),
    );
    if (ctx._aborted) return Promise.reject(ctx._reason);
    if (mode === 'fail-open') return next(ctx, op);
    if (mode === 'fail-closed') return Promise.reject(this.#reject(ctx, Number.POSITIVE_INFINITY, 'unavailable'));
    return (this.#local as LazyLocal<CircuitBreakerPolicy>).get()._run(ctx, op, next);
  }

  #reject(ctx: ExecutionContext, retryAfterMs: number, state: CircuitRejectionState): CircuitOpenError {
    if (this._events.wants(EV.circuitRejected)) {
      this._events.emit(EV.circuitRejected, {
        type: 'circuit.rejected',
        policy: this.name,
        operation: ctx.operation,
        attempt: ctx.attempt,
        state,
        retryAfterMs,
      });
    }
    return CircuitOpenError.fast(this.name, retryAfterMs, state);
  }
}

function unexpected(reply: unknown): RedisStoreError {
  return new RedisStoreError('error', `unexpected reply from the circuit breaker script: ${describe(reply)}`);
}

/**
 * A circuit breaker whose state is shared by every process of a fleet: the calls of all processes using the same
 * `name` fill one window in Redis, the breaker opens once for all of them, and exactly one call in the fleet
 * probes when it is half-open. Same options (but `initialState`; `halfOpenProbes` is 1), error (`CircuitOpenError`)
 * and events as `circuitBreaker`, plus the Redis `client`, `syncIntervalMs` and what to do when Redis gives no
 * answer.
 *
 * - The closed happy path makes no round trip: each process keeps the state as a cache and sends its outcomes in
 *   batches, every `syncIntervalMs` while it has calls (one script call: the batch in, the state out). A failure
 *   or slow call is sent at once (one exchange in flight at a time; failures meanwhile go with the next one).
 *   The window (consecutive, count or time, as locally) lives in Redis; its time is Redis `TIME`.
 * - Staleness: a process sees a state change made by others within `syncIntervalMs` plus one round trip while it
 *   has calls (after an idle spell, its first call starts an exchange at once). Meanwhile its calls follow the
 *   state it has; outcomes of calls admitted under an older state are dropped (they cannot close a newly opened
 *   breaker, and concurrent failures open it once).
 * - Open: calls are rejected at once, locally. Half-open: one probe in the fleet, holding a lease (SET NX PX with
 *   its token) of `halfOpenLeaseMs` (default: the break, at least 1 s); a prober that crashes or hangs loses it
 *   when it expires, and another process probes. A probe's outcome counts only while its lease is held.
 *   `halfOpenSuccesses` probes in a row close the breaker; a failure opens it again (with a growing break if
 *   `halfOpenAfterMs` is a backoff).
 * - Events (`circuit.open`, `circuit.closed`, `circuit.half_open`, `circuit.rejected`, `circuit.probe_expired`)
 *   are emitted by each process when it learns of the transition.
 * - When Redis is slow or down, calls take `onStoreError`: `'local'` (default: an in-process `circuitBreaker`
 *   with the same options), `'fail-open'` (no breaker) or `'fail-closed'` (`CircuitOpenError`, state
 *   `'unavailable'`), with a `store.fallback` event; the outcomes not sent yet are dropped.
 *
 * @throws InvalidOptionsError listing every invalid option (those of `circuitBreaker`, the store's, the sync's).
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { redisCircuitBreaker } from 'bulwark/redis';
 *
 * const redis = new Redis({ enableOfflineQueue: false });
 * const inventory = redisCircuitBreaker({
 *   client: redis,
 *   name: 'inventory',
 *   window: { kind: 'count', size: 100 },
 *   failureRate: 0.5,
 *   halfOpenAfterMs: 10_000,
 * });
 * await inventory.execute(() => callInventory());
 * ```
 */
export function redisCircuitBreaker(options: RedisCircuitBreakerOptions): RedisCircuitBreakerPolicy {
  const check = new Checker('redisCircuitBreaker');
  if (checkCircuitBreakerOptions(check, options as CircuitBreakerOptions, OPTION_NAMES)) {
    const o = options as unknown as Record<string, unknown>;
    checkStoreOptions(check, o);
    check.number('syncIntervalMs', o.syncIntervalMs, { min: 1, max: 60_000 });
    if (o.halfOpenProbes !== undefined && o.halfOpenProbes !== 1) {
      check.fail('halfOpenProbes', o.halfOpenProbes, '1: a shared breaker admits one probe at a time, fleet-wide');
    }
  } else if (options === undefined) {
    check.fail('client', undefined, 'a Redis client (required)');
  }
  check.done();
  return new RedisCircuitBreakerPolicy(options);
}
