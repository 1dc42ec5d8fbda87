import { afterAll, afterEach, expect } from 'vitest';
import { activeSink, type CapturedWarning, describeWarning } from './warnings.js';

// The suite fails on any unhandled rejection or MaxListenersExceededWarning, wherever it comes from.
const problems: string[] = [];
process.on('unhandledRejection', (reason) => {
  problems.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
});
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') problems.push(`${w.name}: ${w.message}`);
});

// Process warnings never reach stderr unasked: a test that provokes one captures and asserts it
// (captureWarnings() in test/helpers/warnings.ts); any other warning fails the test that emitted it.
// Deprecation and experimental warnings (from Node or a dependency, not ours to fix in a test) pass through.
const unexpected: CapturedWarning[] = [];
const ORIGINAL = Symbol.for('bulwark.test.emitWarning');
const holder = process as unknown as Record<symbol, typeof process.emitWarning | undefined>;
const original = holder[ORIGINAL] ?? process.emitWarning;
holder[ORIGINAL] = original;
process.emitWarning = function guardedEmitWarning(warning: string | Error, options?: unknown, ...rest: unknown[]) {
  const w = describeWarning(warning, options, rest[0]);
  const sink = activeSink();
  if (sink) return sink(w);
  if (w.name === 'DeprecationWarning' || w.name === 'ExperimentalWarning') {
    return Reflect.apply(original, process, [warning, options, ...rest]);
  }
  unexpected.push(w);
} as typeof process.emitWarning;

const takeUnexpected = (): string[] =>
  unexpected.splice(0).map((w) => `${w.name}${w.code === undefined ? '' : ` [${w.code}]`}: ${w.message}`);

afterEach(() => {
  // The guard records at the emitWarning call (delivery to 'warning' listeners comes a tick later).
  expect(takeUnexpected(), 'process warnings nobody captured (use captureWarnings() and assert them)').toEqual([]);
});

afterAll(async () => {
  // Let late rejections surface before judging.
  await new Promise((r) => setImmediate(r));
  expect(problems).toEqual([]);
  expect(takeUnexpected(), 'process warnings after the last test').toEqual([]);
});
