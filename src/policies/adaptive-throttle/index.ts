export { AdaptiveThrottlePolicy, adaptiveThrottle } from './adaptive-throttle.js';
export type { AdaptiveThrottleEvent } from './events.js';
export type { AdaptiveThrottleOptions } from './options.js';
