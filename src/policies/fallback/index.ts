export type { FallbackEvent } from './events.js';
export { FallbackPolicy, fallback } from './fallback.js';
export type { FallbackOptions, FallbackValue } from './options.js';
