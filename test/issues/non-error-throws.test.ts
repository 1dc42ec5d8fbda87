import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  EVENT_TYPES,
  fallback,
  handleErrors,
  keyed,
  type Operation,
  type Policy,
  pipeline,
  retry,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

class DomainError extends Error {
  override readonly name = 'DomainError';
  readonly status = 503;
}

function explode(): never {
  throw new Error('read of a hostile value');
}

function revokedProxy(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

function trappingProxy(): object {
  const traps: ProxyHandler<object> = {};
  for (const trap of [
    'get',
    'has',
    'getPrototypeOf',
    'getOwnPropertyDescriptor',
    'ownKeys',
    'defineProperty',
    'set',
    'deleteProperty',
    'isExtensible',
    'preventExtensions',
    'setPrototypeOf',
  ] as const) {
    traps[trap] = explode;
  }
  return new Proxy({}, traps);
}

/** Values an operation may throw; each must come out of every policy as the very same value. */
const THROWN: readonly { readonly label: string; readonly value: unknown }[] = [
  { label: "the string 'str'", value: 'str' },
  { label: 'undefined', value: undefined },
  { label: 'null', value: null },
  { label: '0', value: 0 },
  { label: 'NaN', value: Number.NaN },
  { label: 'false', value: false },
  { label: 'a symbol', value: Symbol('thrown') },
  { label: 'a frozen object', value: Object.freeze({ code: 'E_FROZEN', nested: Object.freeze({ a: 1 }) }) },
  { label: 'a frozen Error', value: Object.freeze(new Error('frozen error')) },
  { label: 'an Error subclass', value: new DomainError('subclass') },
  { label: 'an object with a null prototype', value: Object.create(null) as unknown },
  { label: 'a function', value: () => 'I was thrown' },
  // biome-ignore lint/suspicious/noThenProperty: a thrown object with a 'then' field, on purpose.
  { label: "an object with a non-callable 'then'", value: { then: 'not callable' } },
  // Hostile values (issue 11): every read or conversion of them throws. A policy may not even look at them safely,
  // yet must rethrow them unchanged, never a TypeError of its own.
  { label: 'a revoked Proxy', value: revokedProxy() },
  { label: 'a Proxy whose every trap throws', value: trappingProxy() },
  {
    label: 'an Error whose retryable, retryAfterMs, code, name and message getters throw',
    value: Object.defineProperties(new Error('getters'), {
      retryable: { get: explode },
      retryAfterMs: { get: explode },
      code: { get: explode },
      name: { get: explode },
      message: { get: explode },
    }),
  },
  {
    label: 'an object whose toString throws',
    value: {
      toString: explode,
    },
  },
  {
    label: 'a thenable (must not be adopted as a value)',
    value: {
      // biome-ignore lint/suspicious/noThenProperty: a thrown thenable, on purpose.
      then(resolve: (v: unknown) => void) {
        resolve('adopted');
      },
    },
  },
];

/** The ways an operation can fail. */
const HOW: readonly { readonly label: string; readonly make: (v: unknown) => Operation<never> }[] = [
  {
    label: 'sync throw',
    make: (v) => () => {
      throw v;
    },
  },
  { label: 'async rejection', make: (v) => () => Promise.reject(v) },
  {
    label: 'async function throw',
    make: (v) => async () => {
      throw v;
    },
  },
  {
    label: 'rejecting thenable',
    make: (v) => () =>
      ({
        // biome-ignore lint/suspicious/noThenProperty: a PromiseLike the operation returns, on purpose.
        then: (_: unknown, reject: (e: unknown) => void) => reject(v),
      }) as unknown as PromiseLike<never>,
  },
];

/** Every policy alone, and a full pipeline, each made fresh (a breaker must not open across cases). */
const POLICIES: readonly { readonly label: string; readonly make: () => Policy }[] = [
  { label: 'retry', make: () => retry({ maxAttempts: 3, backoff: constant(0) }) },
  { label: 'retry (one attempt)', make: () => retry({ maxAttempts: 1 }) },
  { label: 'circuitBreaker (count)', make: () => circuitBreaker() },
  {
    label: 'circuitBreaker (consecutive)',
    make: () => circuitBreaker({ window: { kind: 'consecutive', threshold: 100 } }),
  },
  { label: 'timeout', make: () => timeout({ ms: 60_000, clock: new FakeClock() }) },
  { label: 'bulkhead', make: () => bulkhead({ limit: 1, queue: 1 }) },
  {
    label: 'fallback (not handling it)',
    make: () => fallback({ value: 'fallback', handle: handleErrors(() => false) }),
  },
  {
    label: 'keyed',
    make: () =>
      keyed(
        () => 'k',
        () => circuitBreaker(),
      ),
  },
  {
    label: 'pipeline(fallback, retry, circuitBreaker, timeout, bulkhead)',
    make: () => {
      const clock = new FakeClock();
      return pipeline(
        fallback({ value: 'fallback', handle: handleErrors(() => false) }),
        retry({ maxAttempts: 3, backoff: constant(0), clock }),
        circuitBreaker({ clock }),
        timeout({ ms: 60_000, clock }),
        bulkhead({ limit: 1, queue: 1, clock }),
      );
    },
  },
  {
    label: 'the full pipeline with a listener on every event',
    make: () => {
      const clock = new FakeClock();
      const p = pipeline(
        fallback({ value: 'fallback', handle: handleErrors(() => false) }),
        retry({ maxAttempts: 3, backoff: constant(0), clock }),
        circuitBreaker({ window: { kind: 'consecutive', threshold: 100 }, clock }),
        timeout({ ms: 60_000, clock }),
        bulkhead({ limit: 1, queue: 1, clock }),
      );
      for (const type of EVENT_TYPES) p.on(type, () => undefined);
      return p;
    },
  },
  {
    label: 'nested pipelines',
    make: () => pipeline(pipeline(retry({ backoff: constant(0) }), circuitBreaker()), pipeline(timeout(60_000))),
  },
];

async function outcomeOf(p: Promise<unknown>): Promise<{ rejected: boolean; value: unknown }> {
  try {
    return { rejected: false, value: await p };
  } catch (error) {
    return { rejected: true, value: error };
  }
}

describe("the operation's own throws pass through unchanged", () => {
  for (const policy of POLICIES) {
    describe(policy.label, () => {
      for (const how of HOW) {
        it(`${how.label}: every kind of thrown value comes out identical (Object.is)`, async () => {
          for (const thrown of THROWN) {
            const result = await outcomeOf(policy.make().execute(how.make(thrown.value)));
            expect(result.rejected, `${thrown.label} rejects`).toBe(true);
            expect(Object.is(result.value, thrown.value), `${thrown.label} is rethrown as the same value`).toBe(true);
          }
        });
      }

      it('a frozen error keeps its own fields (nothing was written onto it or into a wrapper)', async () => {
        const frozen = Object.freeze(new DomainError('frozen'));
        const result = await outcomeOf(policy.make().execute(HOW[0]?.make(frozen) ?? (() => 0)));
        expect(result.value).toBe(frozen);
        expect(Object.getOwnPropertyNames(result.value as object).sort()).toEqual(
          Object.getOwnPropertyNames(frozen).sort(),
        );
      });
    });
  }

  it('retry runs every attempt and still rethrows the identical value, wrapped only when asked', async () => {
    for (const thrown of THROWN) {
      let attempts = 0;
      const op = (): never => {
        attempts++;
        throw thrown.value;
      };
      const r = await outcomeOf(retry({ maxAttempts: 3, backoff: constant(0) }).execute(op));
      expect(attempts, thrown.label).toBe(3);
      expect(Object.is(r.value, thrown.value), thrown.label).toBe(true);
      const wrapped = await outcomeOf(retry({ maxAttempts: 2, backoff: constant(0), onExhausted: 'wrap' }).execute(op));
      expect(Object.is((wrapped.value as { cause?: unknown }).cause, thrown.value), thrown.label).toBe(true);
    }
  });
});
