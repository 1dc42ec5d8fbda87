export type { RateLimitEvent } from './events.js';
export type {
  FixedWindowOptions,
  RateLimitAlgorithm,
  RateLimitCommonOptions,
  RateLimitOptions,
  SlidingWindowOptions,
  TokenBucketOptions,
} from './options.js';
export { RateLimitPolicy, rateLimit } from './rate-limit.js';
