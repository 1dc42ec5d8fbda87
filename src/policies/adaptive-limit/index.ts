export { AdaptiveLimitPolicy, adaptiveLimit } from './adaptive-limit.js';
export type { AdaptiveLimitEvent } from './events.js';
export type {
  AdaptiveLimitAlgorithm,
  AdaptiveLimitBaseOptions,
  AdaptiveLimitOptions,
  AimdLimitOptions,
  Gradient2LimitOptions,
  VegasLimitOptions,
} from './options.js';
