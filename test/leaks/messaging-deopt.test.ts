import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIST = new URL('../../dist/messaging.js', import.meta.url);

/** wrapHandler's per-delivery functions (names as V8 prints them in the built bundle). */
const HOT = ['MessageRun', 'DirectContext', 'Consumer', 'wrapped', 'follow', 'finish', 'capture', '#end'];

/**
 * Batches of deliveries, each right after a full GC, with no delivery alive in between (a consumer idle for a
 * moment). The deliveries' own map is kept alive: it belongs to the adapter, not to wrapHandler.
 */
const CHILD = `
import { wrapHandler } from ${JSON.stringify(DIST.href)};
const counter = { acks: 0 };
const delivery = (body) => ({ body, attempt: 1, headers: {}, ack: () => { counter.acks++; }, retryLater() {}, deadLetter() {}, release() {} });
globalThis.keep = delivery(-1);
const handle = wrapHandler(async () => {});
for (let batch = 0; batch < 30; batch++) {
  globalThis.gc();
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => { while (next < 4000) await handle(delivery(next++)); }));
}
console.log('done', counter.acks);
`;

describe('wrapHandler after full GCs', () => {
  it('dist/ is built (npm test runs tsup first)', () => {
    expect(existsSync(fileURLToPath(DIST))).toBe(true);
  });

  it('keeps its optimised code: no "weak objects" deopt of its per-delivery functions across 30 GC-ed batches', () => {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', '--trace-deopt', '--trace-deopt-verbose', '--input-type=module', '--eval', CHILD],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 60_000 },
    );
    expect(child.status, child.stderr).toBe(0);
    expect(child.stdout).toMatch(/^done 120000$/m);
    const weak = new Map<string, number>();
    for (const line of child.stdout.split('\n')) {
      if (!line.includes('reason: weak objects')) continue;
      const name = /<SharedFunctionInfo ([^>\s]+)>/.exec(line)?.[1];
      if (name !== undefined && HOT.includes(name)) weak.set(name, (weak.get(name) ?? 0) + 1);
    }
    // Before the fix each of them was thrown away after nearly every GC (about 18 times each in 30 batches).
    for (const [name, n] of weak) expect(n, `${name}: ${n} weak-objects deopts`).toBeLessThanOrEqual(2);
  });
});
