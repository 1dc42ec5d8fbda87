/**
 * bulwark on Redis: policies whose state is shared by every process of a fleet (a rate limit, a concurrency limit
 * and a circuit breaker counted in Redis), on ioredis or node-redis (`redis`), both optional peers. Each decision is
 * one Lua script (one round trip, Redis `TIME` as the clock, every key declared and sharing one hash tag, so Redis
 * Cluster works), with a per-operation timeout and an explicit fallback when Redis is slow or down.
 *
 * @example
 * ```ts
 * import { fromIoredis } from 'bulwark/redis';
 * ```
 * @module bulwark/redis
 */

export {
  type RedisCircuitBreakerOptions,
  RedisCircuitBreakerPolicy,
  type RedisCircuitBreakerSyncOptions,
  redisCircuitBreaker,
} from './breaker.js';
export {
  fromIoredis,
  fromNodeRedis,
  type IoredisClient,
  type NodeRedisClient,
  type RedisClientLike,
  type RedisScripting,
} from './client.js';
export {
  type RedisBulkheadLeaseOptions,
  type RedisBulkheadOptions,
  RedisBulkheadPolicy,
  redisBulkhead,
} from './concurrency.js';
export {
  type RedisRateLimitKeyOptions,
  type RedisRateLimitOptions,
  RedisRateLimitPolicy,
  redisRateLimit,
} from './rate-limit.js';
export { isRedisStoreError, RedisStoreError, type StoreFailureReason } from './runner.js';
export type { OnStoreError, RedisStoreOptions } from './store-options.js';
