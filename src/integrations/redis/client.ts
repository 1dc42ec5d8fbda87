/**
 * The Redis client boundary of bulwark/redis: the few things its policies need from a client (run a Lua script by
 * its SHA1 or by its source, and say whether the client is connected), with one adapter per client. No client
 * is imported, not even its types: the shapes below are structural, so either client (or both, or neither) may be
 * installed.
 * @module
 */

import { hasMethod, passes } from '../validate.js';

/**
 * What bulwark/redis needs from a Redis client: run a Lua script and say whether the client is connected. Made by
 * {@link fromIoredis} and {@link fromNodeRedis}; implement it yourself for another client. Every key a script
 * touches is passed in `keys` (Redis Cluster routes the call by them), and the arguments are strings.
 *
 * Implementations only forward: bulwark adds the per-operation timeout, the EVALSHA-then-EVAL dance, the
 * readiness check and the error handling around them. A method may reject with anything; it must not throw
 * synchronously (a throw is treated as a rejection anyway).
 *
 * @example
 * ```ts
 * const scripting: RedisScripting = {
 *   ready: () => myClient.connected,
 *   evalSha: (sha, keys, args) => myClient.command('EVALSHA', sha, keys.length, ...keys, ...args),
 *   eval: (source, keys, args) => myClient.command('EVAL', source, keys.length, ...keys, ...args),
 * };
 * ```
 */
export interface RedisScripting {
  /**
   * Whether the client can send a command now (connected, not reconnecting). While it answers false, bulwark does
   * not call Redis at all: the call takes the policy's fallback at once instead of waiting for a reconnect.
   */
  ready(): boolean;
  /** `EVALSHA sha numkeys ...keys ...args`: resolves with the script's reply, rejects with the client's error. */
  evalSha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
  /** `EVAL source numkeys ...keys ...args` (also loads the script into the server's cache). */
  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown>;
}

/**
 * The part of an ioredis client (`Redis` or `Cluster`, ioredis 5 or 6) bulwark uses: `status`, `evalsha` and
 * `eval`. An ioredis client is one without declaring anything.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * const client: IoredisClient = new Redis();
 * ```
 */
export interface IoredisClient {
  /** `'ready'` when connected; `'connecting'`, `'reconnecting'`, `'end'`, ... otherwise. */
  readonly status: string;
  /** `EVALSHA sha numkeys ...keys ...args`. */
  evalsha(...args: [sha1: string, numkeys: number, ...args: string[]]): Promise<unknown>;
  /** `EVAL script numkeys ...keys ...args`. */
  eval(...args: [script: string, numkeys: number, ...args: string[]]): Promise<unknown>;
}

/**
 * The part of a node-redis client (`createClient()` or `createCluster()` of `redis` 5 or 6) bulwark uses:
 * `isReady`, `evalSha` and `eval`.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client: NodeRedisClient = await createClient().connect();
 * ```
 */
export interface NodeRedisClient {
  /** True while the client is connected and ready for commands. */
  readonly isReady: boolean;
  /** `EVALSHA sha numkeys ...keys ...args`. */
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** `EVAL script numkeys ...keys ...args`. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** A client bulwark/redis accepts: an ioredis client, a node-redis client, or a {@link RedisScripting} of yours. */
export type RedisClientLike = IoredisClient | NodeRedisClient | RedisScripting;

/**
 * The {@link RedisScripting} of an ioredis client (`Redis` or `Cluster`). Ready while `client.status` is
 * `'ready'`: an ioredis client that is reconnecting would otherwise hold commands in its offline queue, and the
 * call would wait for the reconnect.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * const scripting = fromIoredis(new Redis({ host: '127.0.0.1', port: 6379 }));
 * ```
 */
export function fromIoredis(client: IoredisClient): RedisScripting {
  return {
    ready: () => client.status === 'ready',
    // Spread into one array: ioredis takes numkeys, then keys and arguments, as separate arguments.
    evalSha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
    eval: (source, keys, args) => client.eval(source, keys.length, ...keys, ...args),
  };
}

/**
 * The {@link RedisScripting} of a node-redis client (`createClient()` or `createCluster()`, `redis` 5 or 6).
 * Ready while `client.isReady`: node-redis would otherwise queue commands while it reconnects.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const scripting = fromNodeRedis(await createClient({ url: 'redis://127.0.0.1:6379' }).connect());
 * ```
 */
export function fromNodeRedis(client: NodeRedisClient): RedisScripting {
  return {
    ready: () => client.isReady,
    evalSha: (sha, keys, args) => client.evalSha(sha, { keys: keys as string[], arguments: args as string[] }),
    eval: (source, keys, args) => client.eval(source, { keys: keys as string[], arguments: args as string[] }),
  };
}

/**
 * Which kind of client `value` is, by its shape (never by `instanceof`: the client is an optional peer, and may be
 * another copy of it): a {@link RedisScripting} (`ready`, `evalSha`, `eval` functions), a node-redis client
 * (`evalSha`, `eval` and a boolean `isReady`) or an ioredis client (`evalsha`, `eval` and a string `status`).
 * Undefined for anything else, and for a value whose reads throw.
 * @internal
 * @example `clientKind(new Redis()) // 'ioredis'`
 */
export function clientKind(value: unknown): 'scripting' | 'node-redis' | 'ioredis' | undefined {
  if (!hasMethod(value, 'eval')) return undefined;
  const v = value as Record<string, unknown>;
  if (hasMethod(value, 'ready') && hasMethod(value, 'evalSha')) return 'scripting';
  if (hasMethod(value, 'evalSha') && passes(() => typeof v.isReady === 'boolean')) return 'node-redis';
  if (hasMethod(value, 'evalsha') && passes(() => typeof v.status === 'string')) return 'ioredis';
  return undefined;
}

/**
 * The {@link RedisScripting} of a client of any kind {@link clientKind} recognises.
 * @internal
 * @example `toScripting(new Redis()).ready()`
 */
export function toScripting(client: RedisClientLike): RedisScripting {
  const kind = clientKind(client);
  if (kind === 'ioredis') return fromIoredis(client as IoredisClient);
  if (kind === 'node-redis') return fromNodeRedis(client as NodeRedisClient);
  return client as RedisScripting;
}

/** What a `client` option must be, for error messages. @internal */
export const CLIENT_EXPECTED =
  'an ioredis client (Redis or Cluster), a node-redis client (createClient() or createCluster()), or a RedisScripting';
