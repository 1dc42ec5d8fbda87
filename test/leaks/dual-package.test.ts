import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import type * as Bulwark from '../../src/index.js';

type Copy = typeof Bulwark;

const require = createRequire(import.meta.url);
// A path in a variable: the type checker must not depend on dist/ existing; the shape is the source's.
const ESM_PATH = '../../dist/index.js';
const CJS_PATH = '../../dist/index.cjs';

let esm: Copy;
let cjs: Copy;

beforeAll(async () => {
  esm = (await import(/* @vite-ignore */ ESM_PATH)) as Copy;
  cjs = require(CJS_PATH) as Copy;
});

type Kind = 'circuit' | 'timeout' | 'bulkhead' | 'retry' | 'options';

/** Every class and guard of a copy, by the kind of error it recognises. */
function classesOf(
  copy: Copy,
): Record<Kind, { cls: abstract new (...args: never[]) => unknown; is: (e: unknown) => boolean }> {
  return {
    circuit: { cls: copy.CircuitOpenError, is: copy.isCircuitOpenError },
    timeout: { cls: copy.TimeoutError, is: copy.isTimeoutError },
    bulkhead: { cls: copy.BulkheadRejectedError, is: copy.isBulkheadRejectedError },
    retry: { cls: copy.RetryExhaustedError, is: copy.isRetryExhaustedError },
    options: { cls: copy.InvalidOptionsError, is: copy.isInvalidOptionsError },
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** Makes one real error of each kind with the given copy's policies, as a user would meet them. */
async function errorsFrom(copy: Copy): Promise<Record<Kind, unknown>> {
  const breaker = copy.circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 60_000 });
  await rejection(breaker.execute(() => Promise.reject(new Error('down'))));
  const circuit = await rejection(breaker.execute(() => 1));

  const timeoutError = await rejection(
    copy.timeout(1).execute(
      ({ signal }) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => reject(new Error('aborted late')), { once: true });
        }),
    ),
  );

  const bh = copy.bulkhead({ limit: 1 });
  let release = (): void => {};
  const holder = bh.execute(() => new Promise<void>((r) => (release = r)));
  const bulkheadError = await rejection(bh.execute(() => 1));
  release();
  await holder;

  const retryError = await rejection(
    copy.retry({ maxAttempts: 2, backoff: copy.constant(0), onExhausted: 'wrap' }).execute(() => {
      throw new Error('always');
    }),
  );

  let optionsError: unknown;
  try {
    copy.timeout(-1);
  } catch (e) {
    optionsError = e;
  }
  return { circuit, timeout: timeoutError, bulkhead: bulkheadError, retry: retryError, options: optionsError };
}

describe('dual package (ESM dist and CJS dist loaded together)', () => {
  it('loads two distinct copies', () => {
    expect(esm.CircuitOpenError).not.toBe(cjs.CircuitOpenError);
    expect(esm.circuitBreaker).not.toBe(cjs.circuitBreaker);
  });

  it("a CircuitOpenError from the CJS copy's open breaker is an instance of the ESM copy's classes", async () => {
    const breaker = cjs.circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
    await rejection(breaker.execute(() => Promise.reject(new Error('down'))));
    const e = await rejection(breaker.execute(() => 1));
    expect(e).toBeInstanceOf(cjs.CircuitOpenError);
    expect(e).toBeInstanceOf(esm.CircuitOpenError);
    expect(e).toBeInstanceOf(esm.ResilienceError);
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(esm.TimeoutError);
    expect(e).not.toBeInstanceOf(esm.BulkheadRejectedError);
    expect(esm.isCircuitOpenError(e)).toBe(true);
    expect(esm.isTimeoutError(e)).toBe(false);
    expect(esm.isResilienceError(e)).toBe(true);
    expect((e as Bulwark.CircuitOpenError).retryAfterMs).toBeGreaterThan(0);
  });

  for (const [fromName, toName] of [
    ['cjs', 'esm'],
    ['esm', 'cjs'],
  ] as const) {
    it(`errors of the ${fromName} copy: instanceof and guards of the ${toName} copy agree with its own`, async () => {
      const from = fromName === 'cjs' ? cjs : esm;
      const to = toName === 'cjs' ? cjs : esm;
      const errors = await errorsFrom(from);
      const own = classesOf(from);
      const other = classesOf(to);
      const kinds = Object.keys(own) as Kind[];
      for (const made of kinds) {
        const e = errors[made];
        expect(e, `${fromName} made a ${made} error`).toBeInstanceOf(Error);
        for (const k of kinds) {
          const expected = k === made;
          expect(e instanceof own[k].cls, `${made} error instanceof ${fromName}.${k}`).toBe(expected);
          expect(e instanceof other[k].cls, `${made} error instanceof ${toName}.${k}`).toBe(expected);
          expect(own[k].is(e), `${fromName} guard ${k} on a ${made} error`).toBe(expected);
          expect(other[k].is(e), `${toName} guard ${k} on a ${made} error`).toBe(expected);
        }
        // Every bulwark error is a ResilienceError by instanceof and by guard, in both copies.
        expect(e instanceof from.ResilienceError, `${made} instanceof ${fromName}.ResilienceError`).toBe(true);
        expect(e instanceof to.ResilienceError, `${made} instanceof ${toName}.ResilienceError`).toBe(true);
        expect(from.isResilienceError(e)).toBe(true);
        expect(to.isResilienceError(e)).toBe(true);
      }
      expect(errors.options).toBeInstanceOf(TypeError);
    });
  }

  it('foreign values are instances of neither copy, and both copies agree', () => {
    class Lookalike extends Error {
      readonly code = 'ERR_CIRCUIT_OPEN';
    }
    const values: unknown[] = [
      new Error('plain'),
      new Lookalike('same code, no brand'),
      { code: 'ERR_TIMEOUT' },
      Object.create(null),
      null,
      undefined,
      'ERR_CIRCUIT_OPEN',
      42,
    ];
    for (const v of values) {
      for (const copy of [esm, cjs]) {
        expect(v instanceof copy.ResilienceError).toBe(false);
        expect(v instanceof copy.CircuitOpenError).toBe(false);
        expect(v instanceof copy.TimeoutError).toBe(false);
        expect(copy.isResilienceError(v)).toBe(false);
        expect(copy.isCircuitOpenError(v)).toBe(false);
        expect(copy.isTimeoutError(v)).toBe(false);
      }
    }
  });
});
