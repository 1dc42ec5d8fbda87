export {
  type Backoff,
  type BackoffFunction,
  constant,
  type ExponentialOptions,
  exponential,
  type Jitter,
  type LinearOptions,
  linear,
} from './backoff.js';
export type { RetryEvent } from './events.js';
export type { RetryOptions } from './options.js';
export { RetryPolicy, retry } from './retry.js';
