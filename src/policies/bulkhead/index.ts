export { BulkheadPolicy, bulkhead } from './bulkhead.js';
export type { BulkheadEvent } from './events.js';
export type { BulkheadOptions } from './options.js';
