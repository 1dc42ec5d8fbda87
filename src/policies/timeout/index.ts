export type { TimeoutEvent } from './events.js';
export type { TimeoutOptions } from './options.js';
export { TimeoutPolicy, timeout } from './timeout.js';
