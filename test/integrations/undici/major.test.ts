import * as undici from 'undici';
import { describe, expect, it } from 'vitest';

/*
 * The undici suite runs against undici 7 (vitest.config.ts) and undici 8 (vitest.undici8.config.ts, which aliases
 * 'undici' to the dev dependency 'undici8' and sets BULWARK_UNDICI_MAJOR=8). This checks the alias took effect, so
 * a green run on "undici 8" is never undici 7 twice.
 */
const expected = Number(process.env.BULWARK_UNDICI_MAJOR ?? '7');

describe(`undici suite: runs against undici ${expected}`, () => {
  it(`'undici' resolves to undici ${expected} here`, () => {
    // Dispatcher1Wrapper (the bridge for legacy v1 handlers) is new in undici 8.
    const hasV8Api = typeof (undici as Record<string, unknown>).Dispatcher1Wrapper === 'function';
    expect(hasV8Api, `Dispatcher1Wrapper exported by 'undici'`).toBe(expected >= 8);
  });
});
