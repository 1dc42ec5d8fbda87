import { afterAll, expect } from 'vitest';

// The suite fails on any unhandled rejection or MaxListenersExceededWarning, wherever it comes from.
const problems: string[] = [];
process.on('unhandledRejection', (reason) => {
  problems.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
});
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') problems.push(`${w.name}: ${w.message}`);
});

afterAll(async () => {
  // Let late rejections surface before judging.
  await new Promise((r) => setImmediate(r));
  expect(problems).toEqual([]);
});
