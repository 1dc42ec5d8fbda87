export type { HedgeEvent } from './events.js';
export { HedgePolicy, hedge } from './hedge.js';
export type { HedgeDelay, HedgeOptions, HedgeQuantileDelay } from './options.js';
