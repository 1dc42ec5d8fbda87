export { type KeyedOptions, KeyedPolicy, keyed } from './keyed.js';
