/**
 * Running a Lua script on Redis the way every bulwark/redis policy needs it: one round trip (EVALSHA, and EVAL
 * only when the server does not know the script yet), a per-operation timeout, no call while the client is not
 * ready, a short "down" spell after a failure during which calls skip Redis at once (one probe at a time finds out
 * when it is back), and one error type for every way it can fail: {@link RedisStoreError}, never the client's.
 * @module
 */

import { createHash } from 'node:crypto';
import { systemClock } from '../../core/clock.js';
import { describeMessage } from '../../core/describe.js';
import type { RedisScripting } from './client.js';

/**
 * Why a call did not get its answer from Redis:
 * - `'not_ready'`: the client was not connected (or was reconnecting), so Redis was not asked;
 * - `'timeout'`: Redis did not answer within the store timeout;
 * - `'error'`: the command failed (a connection error, an error reply such as OOM or a script error);
 * - `'unavailable'`: Redis was not asked, because a recent call failed and the next recheck is not due yet.
 */
export type StoreFailureReason = 'not_ready' | 'timeout' | 'error' | 'unavailable';

/**
 * A bulwark/redis policy could not get its answer from Redis. It is what a policy's fallback is told about (the
 * `store.fallback` event carries it) and never reaches a caller as such: a call gets its policy's own error
 * (`RateLimitedError` with reason `'unavailable'` under `onStoreError: 'fail-closed'`), and the client's own error
 * is only its `cause`.
 *
 * @example
 * ```ts
 * limiter.on('store.fallback', (e) => log.warn({ reason: e.reason, error: e.error }, 'redis unavailable'));
 * ```
 */
export class RedisStoreError extends Error {
  /** `ERR_REDIS_STORE`. */
  readonly code = 'ERR_REDIS_STORE' as const;
  /** Why Redis gave no answer. */
  readonly reason: StoreFailureReason;

  constructor(reason: StoreFailureReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
    this.name = 'RedisStoreError';
  }
}

/**
 * Whether `e` is a {@link RedisStoreError} (of any copy of bulwark).
 * @example `if (isRedisStoreError(e.error)) console.log(e.error.reason);`
 */
export const isRedisStoreError = (e: unknown): e is RedisStoreError =>
  typeof e === 'object' && e !== null && passesCode(e);

function passesCode(e: object): boolean {
  try {
    return (e as { code?: unknown }).code === 'ERR_REDIS_STORE';
  } catch {
    return false;
  }
}

/**
 * A Lua script and its SHA1, computed once: EVALSHA sends the 40-character digest, not the source.
 * @internal
 */
export class RedisScript {
  readonly source: string;
  readonly sha: string;
  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source, 'utf8').digest('hex');
  }
}

/** @internal */
export interface ScriptRunnerOptions {
  /** The longest one operation may take, in ms; then it fails with reason `'timeout'`. */
  readonly timeoutMs: number;
  /** After a failure, calls skip Redis for this long (ms); then one call at a time tries it again. */
  readonly recheckMs: number;
  /** Called when Redis answers again after a failure, with how long it had been failing (ms). */
  readonly onRecovered?: ((downMs: number) => void) | undefined;
}

/** The failed replies that mean "the server does not have this script cached": then EVAL sends the source. */
function isNoScript(error: unknown): boolean {
  return /^NOSCRIPT\b/.test(describeMessage(error, 64).replace(/^\w*Error: /, ''));
}

/**
 * The system clock, never the policy's injected one: the store timeout and the recheck time real network I/O, and
 * a fake clock in a test would otherwise hold a Redis call forever.
 */
const clock = systemClock;
const now = (): number => clock.now();

/**
 * Runs scripts on one client for one policy (see the module comment). Why a health state of its own: under a
 * network partition each call would otherwise wait the whole timeout before its fallback; after one failure the
 * calls skip Redis at once for `recheckMs`, and then a single call (a probe) tries it again, so a partition costs
 * one timeout per `recheckMs`, not one per call.
 * @internal
 */
export class ScriptRunner {
  readonly #scripting: RedisScripting;
  readonly #timeoutMs: number;
  readonly #recheckMs: number;
  readonly #onRecovered: ((downMs: number) => void) | undefined;
  /** When the current failure spell started (monotonic ms), or undefined while Redis answers. */
  #downSince: number | undefined = undefined;
  /** While down: when the next probe may go. */
  #recheckAt = 0;
  /** While down: a probe is in flight (no second one until it settles). */
  #probing = false;

  constructor(scripting: RedisScripting, options: ScriptRunnerOptions) {
    this.#scripting = scripting;
    this.#timeoutMs = options.timeoutMs;
    this.#recheckMs = options.recheckMs;
    this.#onRecovered = options.onRecovered;
  }

  /** Whether the last operation succeeded (no failure spell in progress). */
  get healthy(): boolean {
    return this.#downSince === undefined;
  }

  /**
   * Runs `script` with `keys` and `args`: resolves with its reply, or rejects with a {@link RedisStoreError}
   * within `timeoutMs` (at once when Redis is skipped).
   */
  run(script: RedisScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    let ready: boolean;
    try {
      ready = this.#scripting.ready();
    } catch {
      ready = false; // a throwing readiness check: treated as not ready
    }
    if (!ready) {
      // Marks a failure spell (so the recovery is reported) without delaying the next try: asking `ready()` is
      // free, so the first call after the client reconnects goes to Redis.
      if (this.#downSince === undefined) this.#downSince = now();
      return Promise.reject(new RedisStoreError('not_ready', 'the Redis client is not ready (not connected)'));
    }
    let probe = false;
    if (this.#downSince !== undefined) {
      const t = now();
      if (this.#probing || t < this.#recheckAt) {
        return Promise.reject(
          new RedisStoreError('unavailable', 'Redis failed recently; it is skipped until the next recheck'),
        );
      }
      this.#probing = probe = true;
    }
    return new Promise<unknown>((resolve, reject) => {
      let done = false;
      // Unref'd: a pending operation must not keep the process alive by itself (the client's socket decides that).
      const timer = clock.setTimeout(
        () => {
          if (done) return;
          done = true;
          this.#settled(probe, false);
          reject(new RedisStoreError('timeout', `Redis did not answer within ${this.#timeoutMs} ms`));
        },
        this.#timeoutMs,
        true,
      );
      const ok = (reply: unknown): void => {
        if (done) return;
        done = true;
        clock.clearTimeout(timer);
        this.#settled(probe, true);
        resolve(reply);
      };
      const failed = (error: unknown): void => {
        if (done) return;
        done = true;
        clock.clearTimeout(timer);
        this.#settled(probe, false);
        reject(new RedisStoreError('error', `Redis command failed: ${describeMessage(error, 300)}`, { cause: error }));
      };
      this.#call(() => this.#scripting.evalSha(script.sha, keys, args)).then(ok, (error: unknown) => {
        // The server restarted or the script cache was flushed: EVAL sends the source (and caches it again).
        if (!done && isNoScript(error))
          this.#call(() => this.#scripting.eval(script.source, keys, args)).then(ok, failed);
        else failed(error);
      });
    });
  }

  /** Calls a client method; a synchronous throw becomes a rejection. */
  #call(fn: () => Promise<unknown>): Promise<unknown> {
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #settled(probe: boolean, ok: boolean): void {
    if (probe) this.#probing = false;
    if (!ok) {
      this.#fail(now());
      return;
    }
    const since = this.#downSince;
    if (since === undefined) return;
    this.#downSince = undefined;
    this.#onRecovered?.(now() - since);
  }

  #fail(t: number): void {
    if (this.#downSince === undefined) this.#downSince = t;
    // A failure during a spell pushes the recheck back; a not-ready client is checked again on every call (it is
    // free to ask), so this only spaces out the calls that would wait for a timeout.
    this.#recheckAt = t + this.#recheckMs;
  }
}
