/**
 * Test helpers for code that uses bulwark: a fake clock to drive policies without real waiting.
 *
 * @example
 * ```ts
 * import { FakeClock } from 'bulwark/testing';
 * ```
 * @module bulwark/testing
 */
export { FakeClock } from './fake-clock.js';
