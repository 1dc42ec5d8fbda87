import { describe, expect, it } from 'vitest';
import {
  type BulkheadPolicy,
  type BulkheadRejectedError,
  bulkhead,
  type Context,
  constant,
  type ExecutionCompletedEvent,
  type FallbackPolicy,
  type FallbackUsedEvent,
  fallback,
  InvalidOptionsError,
  isBulkheadRejectedError,
  KeyedPolicy,
  keyed,
  Properties,
  PropertyKey,
  pipeline,
  retry,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf } from '../../helpers/deferred.js';

const TENANT = new PropertyKey<string>('tenant');
const tenantOf = (ctx: Context): string => ctx.properties.get(TENANT) ?? 'none';
const as = (tenant: string) => ({ properties: new Properties().set(TENANT, tenant) });

/** A factory that records every key it is called with. */
function countingFactory<P>(make: (key: string) => P): { calls: string[]; factory: (key: string) => P } {
  const calls: string[] = [];
  return {
    calls,
    factory: (key: string) => {
      calls.push(key);
      return make(key);
    },
  };
}

describe('keyed: one policy per key', () => {
  it('creates a policy per key on demand, calling the factory once per key', async () => {
    const { calls, factory } = countingFactory((key) => bulkhead({ limit: 1, name: `bh-${key}` }));
    const k = keyed(tenantOf, factory);
    expect(k).toBeInstanceOf(KeyedPolicy);
    expect(k.size).toBe(0);
    expect(calls).toEqual([]);

    expect(await k.execute(() => 1, as('a'))).toBe(1);
    expect(await k.execute(() => 2, as('a'))).toBe(2);
    expect(await k.execute(() => 3, as('b'))).toBe(3);
    expect(await k.execute(() => 4, as('a'))).toBe(4);
    expect(calls).toEqual(['a', 'b']);
    expect(k.size).toBe(2);
    expect(k.peek('a')?.name).toBe('bh-a');
    expect(k.peek('b')?.name).toBe('bh-b');
  });

  it('isolates keys: a full bulkhead for one key does not block another', async () => {
    const k = keyed(tenantOf, () => bulkhead({ limit: 1 }));
    const g = deferred<string>();
    const a1 = k.execute(() => g.promise, as('a'));
    const refused = await rejectionOf(k.execute(() => 'a2', as('a')));
    expect(isBulkheadRejectedError(refused)).toBe(true);
    expect((refused as BulkheadRejectedError).reason).toBe('full');
    expect(await k.execute(() => 'b1', as('b'))).toBe('b1');
    expect(k.get('a').active).toBe(1);
    expect(k.get('b').active).toBe(0);
    g.resolve('a1');
    expect(await a1).toBe('a1');
    expect(k.get('a').active).toBe(0);
  });

  it('runs the rest of a pipeline inside the keyed policy', async () => {
    const clock = new FakeClock();
    const k = keyed(tenantOf, () => fallback({ value: 'fb' }));
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant(0), clock }), k);
    let calls = 0;
    expect(
      await p.execute<string>(() => {
        calls++;
        throw new Error('x');
      }, as('t')),
    ).toBe('fb');
    expect(calls).toBe(1);
    expect(p.policies).toHaveLength(2);
    expect(p.policies[1]).toBe(k);
  });

  it('runs a pipeline made by the factory, linked into the surrounding chain at its place', async () => {
    const clock = new FakeClock();
    const log: string[] = [];
    const k = keyed(tenantOf, (key) =>
      pipeline(
        fallback({
          value: () => {
            log.push(`fallback ${key}`);
            return `fb-${key}`;
          },
        }),
        retry({ maxAttempts: 2, backoff: constant(0), clock }),
      ),
    );
    k.on('retry.attempt', (e) => log.push(`retry.attempt ${e.attempt}`));
    const p = pipeline(k, timeout({ ms: 10, clock }));
    const starts: number[] = [];
    const result = p.execute(() => {
      starts.push(clock.now());
      return new Promise<string>(() => {});
    }, as('acme'));
    await clock.advance(20);
    expect(await result).toBe('fb-acme');
    expect(starts).toEqual([0, 10]);
    expect(log).toEqual(['retry.attempt 1', 'fallback acme']);
  });
});

describe('keyed: get, peek, delete, size', () => {
  it('get creates and returns the same policy; peek never creates; delete forgets', () => {
    const { calls, factory } = countingFactory(() => bulkhead({ limit: 2 }));
    const k = keyed(tenantOf, factory);
    expect(k.peek('x')).toBe(undefined);
    expect(k.size).toBe(0);
    expect(calls).toEqual([]);

    const x = k.get('x');
    expect(k.get('x')).toBe(x);
    expect(k.peek('x')).toBe(x);
    expect(k.size).toBe(1);
    expect(calls).toEqual(['x']);

    expect(k.delete('x')).toBe(true);
    expect(k.delete('x')).toBe(false);
    expect(k.peek('x')).toBe(undefined);
    expect(k.size).toBe(0);

    const x2 = k.get('x');
    expect(x2).not.toBe(x);
    expect(calls).toEqual(['x', 'x']);
  });

  it('throws a TypeError when the factory returns something that is not a policy', () => {
    const k = keyed(tenantOf, (() => ({ execute: () => 1 })) as unknown as (key: string) => BulkheadPolicy, {
      name: 'tenants',
    });
    expect(() => k.get('q')).toThrow(
      new TypeError('keyed "tenants": the factory returned object for key "q", not a policy'),
    );
    expect(k.size).toBe(0);
  });
});

describe('keyed: LRU eviction', () => {
  it('evicts the least recently used key beyond maxKeys and calls onEvict with it', async () => {
    const evicted: [string, BulkheadPolicy][] = [];
    const k = keyed(tenantOf, (key) => bulkhead({ limit: 1, name: key }), {
      maxKeys: 2,
      onEvict: (key, policy) => evicted.push([key, policy]),
    });
    const a = k.get('a');
    const b = k.get('b');
    expect(evicted).toEqual([]);
    // Touch 'a' through a call: 'b' becomes least recently used.
    await k.execute(() => undefined, as('a'));
    k.get('c');
    expect(evicted).toEqual([['b', b]]);
    expect(k.size).toBe(2);
    expect(k.peek('b')).toBe(undefined);
    expect(k.peek('a')).toBe(a);

    // Touch 'a' through get: 'c' is now least recently used.
    k.get('a');
    k.get('d');
    expect(evicted.map(([key]) => key)).toEqual(['b', 'c']);
    expect(k.size).toBe(2);
    expect(k.peek('a')).toBe(a);
    expect(k.peek('d')?.name).toBe('d');
  });

  it('peek does not refresh recency', () => {
    const evicted: string[] = [];
    const k = keyed(tenantOf, () => bulkhead({ limit: 1 }), { maxKeys: 2, onEvict: (key) => evicted.push(key) });
    k.get('a');
    k.get('b');
    k.peek('a');
    k.get('c');
    expect(evicted).toEqual(['a']);
  });

  it('an evicted policy lets its calls in flight finish; the key gets a fresh policy', async () => {
    const { calls, factory } = countingFactory(() => bulkhead({ limit: 1 }));
    const k = keyed(tenantOf, factory, { maxKeys: 1 });
    const g = deferred<string>();
    const inFlight = k.execute(() => g.promise, as('a'));
    const first = k.peek('a');
    expect(first?.active).toBe(1);
    expect(await k.execute(() => 'b', as('b'))).toBe('b');
    expect(k.peek('a')).toBe(undefined);
    // A new policy for 'a': not blocked by the evicted one's running call.
    expect(await k.execute(() => 'a again', as('a'))).toBe('a again');
    expect(k.peek('a')).not.toBe(first);
    g.resolve('finished');
    expect(await inFlight).toBe('finished');
    expect(first?.active).toBe(0);
    expect(calls).toEqual(['a', 'b', 'a']);
  });

  it('keeps at most 1000 keys by default', () => {
    const evicted: string[] = [];
    const k = keyed(tenantOf, () => bulkhead({ limit: 1 }), { onEvict: (key) => evicted.push(key) });
    for (let i = 0; i < 1_001; i++) k.get(`k${i}`);
    expect(k.size).toBe(1_000);
    expect(evicted).toEqual(['k0']);
  });
});

describe('keyed: key function', () => {
  it('rejects the call with the error of a key function that throws, without calling the factory or the op', async () => {
    const keyError = new Error('no tenant');
    const { calls, factory } = countingFactory(() => bulkhead({ limit: 1 }));
    const k = keyed(() => {
      throw keyError;
    }, factory);
    let ran = false;
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = k.execute(() => {
        ran = true;
      });
    }).not.toThrow();
    expect(await rejectionOf(result as Promise<unknown>)).toBe(keyError);
    expect(ran).toBe(false);
    expect(calls).toEqual([]);
  });

  it('rejects the call (never throws synchronously) when the factory throws', async () => {
    const factoryError = new Error('factory broke');
    const k = keyed(tenantOf, (): BulkheadPolicy => {
      throw factoryError;
    });
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = k.execute(() => 1, as('a'));
    }).not.toThrow();
    expect(await rejectionOf(result as Promise<unknown>)).toBe(factoryError);
  });

  it('rejects the call (never throws synchronously) when the factory returns something that is not a policy', async () => {
    const k = keyed(tenantOf, (() => 'not a policy') as unknown as (key: string) => BulkheadPolicy);
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = k.execute(() => 1, as('a'));
    }).not.toThrow();
    const e = await rejectionOf(result as Promise<unknown>);
    expect(e).toBeInstanceOf(TypeError);
    expect((e as TypeError).message).toBe('keyed "keyed": the factory returned string for key "a", not a policy');
  });

  it('passes the context (operation, properties) to the key function', async () => {
    const seen: string[] = [];
    const k = keyed(
      (ctx) => {
        seen.push(`${ctx.operation}:${ctx.properties.get(TENANT)}`);
        return 'k';
      },
      () => bulkhead({ limit: 1 }),
    );
    await k.execute(() => 1, { operation: 'GET /x', properties: new Properties().set(TENANT, 'acme') });
    expect(seen).toEqual(['GET /x:acme']);
  });
});

describe('keyed: events', () => {
  it('on() reaches policies that exist and policies created later', async () => {
    const k = keyed(tenantOf, (key) => fallback({ value: 'fb', name: `fb-${key}` }));
    k.get('early');
    const events: FallbackUsedEvent[] = [];
    k.on('fallback.used', (e) => events.push(e));
    const boom = (): never => {
      throw new Error('x');
    };
    await k.execute<string>(boom, as('early'));
    await k.execute<string>(boom, as('late'));
    await k.execute<string>(boom, as('late'));
    expect(events.map((e) => e.policy)).toEqual(['fb-early', 'fb-late', 'fb-late']);
  });

  it('unsubscribing stops events from every policy, including ones created after subscribing', async () => {
    const k = keyed(tenantOf, (key): FallbackPolicy<string> => fallback({ value: 'fb', name: `fb-${key}` }));
    k.get('early');
    const events: string[] = [];
    const off = k.on('fallback.used', (e) => events.push(e.policy));
    const boom = (): never => {
      throw new Error('x');
    };
    await k.execute<string>(boom, as('early'));
    await k.execute<string>(boom, as('late'));
    expect(events).toEqual(['fb-early', 'fb-late']);
    off();
    await k.execute<string>(boom, as('early'));
    await k.execute<string>(boom, as('late'));
    await k.execute<string>(boom, as('new'));
    expect(events).toEqual(['fb-early', 'fb-late']);
  });

  it('emits execution.completed from the keyed policy itself', async () => {
    const k = keyed(tenantOf, () => bulkhead({ limit: 1 }), { name: 'per-tenant' });
    const events: ExecutionCompletedEvent[] = [];
    k.on('execution.completed', (e) => events.push(e));
    await k.execute(() => 1, { ...as('a'), operation: 'op' });
    await rejectionOf(
      k.execute(() => {
        throw new Error('x');
      }, as('a')),
    );
    expect(events.map((e) => [e.policy, e.operation, e.result])).toEqual([
      ['per-tenant', 'op', 'success'],
      ['per-tenant', 'default', 'failure'],
    ]);
  });
});

describe('keyed: options', () => {
  it('defaults its name to keyed', () => {
    expect(keyed(tenantOf, () => bulkhead({ limit: 1 })).name).toBe('keyed');
    expect(keyed(tenantOf, () => bulkhead({ limit: 1 }), { name: 'x' }).name).toBe('x');
  });

  it('rejects a non-function key function and factory', () => {
    const e = invalidOptions(() => keyed('tenant' as never, 5 as never));
    expect(e).toBeInstanceOf(InvalidOptionsError);
    expect(e.policy).toBe('keyed');
    expect(e.problems).toEqual([
      { option: 'keyOf', received: '"tenant"', expected: 'a function of the context returning a string' },
      { option: 'factory', received: '5', expected: 'a function of the key returning a policy' },
    ]);
  });

  it.each([
    [0, '0'],
    [-3, '-3'],
    [1.5, '1.5'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
  ])('rejects maxKeys %s', (maxKeys, received) => {
    const e = invalidOptions(() => keyed(tenantOf, () => bulkhead({ limit: 1 }), { maxKeys }));
    expect(e.problems).toEqual([{ option: 'maxKeys', received, expected: 'an integer >= 1' }]);
    expect(e.message).toBe(`keyed: invalid options\n  - maxKeys: expected an integer >= 1, got ${received}`);
  });

  it('reports every problem at once', () => {
    const e = invalidOptions(() =>
      keyed(tenantOf, () => bulkhead({ limit: 1 }), { maxKeys: 0, onEvict: 'x', name: '', max: 3 } as never),
    );
    expect(e.problems).toEqual([
      {
        option: 'max',
        received: '3',
        expected: 'a known option (unknown name; allowed: maxKeys, onEvict, name, clock)',
      },
      { option: 'maxKeys', received: '0', expected: 'an integer >= 1' },
      { option: 'onEvict', received: '"x"', expected: 'a function' },
      { option: 'name', received: '""', expected: 'a non-empty string' },
    ]);
  });

  it('rejects options that are not an object', () => {
    expect(invalidOptions(() => keyed(tenantOf, () => bulkhead({ limit: 1 }), 7 as never)).problems).toEqual([
      { option: 'options', received: '7', expected: 'an object' },
    ]);
  });
});

describe('keyed: a factory that returns one policy for several keys', () => {
  it('subscribes the shared policy once and keeps it subscribed while any key holds it', async () => {
    const shared = bulkhead({ name: 'shared', limit: 1 });
    const k = keyed(
      (ctx) => ctx.operation,
      () => shared,
      { maxKeys: 2 },
    );
    let calls = 0;
    const off = k.on('execution.completed', () => {
      calls++;
    });
    await k.execute(async () => 1, { operation: 'x' });
    await k.execute(async () => 1, { operation: 'y' });
    expect(k.values()).toEqual([shared, shared]);
    calls = 0;
    await shared.execute(async () => 1);
    expect(calls).toBe(1);
    // Deleting one key leaves the other holding the policy, listeners included.
    k.delete('x');
    await shared.execute(async () => 1);
    expect(calls).toBe(2);
    // Eviction by a new key: 'y' then 'z' hold it.
    await k.execute(async () => 1, { operation: 'z' });
    calls = 0;
    await shared.execute(async () => 1);
    expect(calls).toBe(1);
    off();
    await shared.execute(async () => 1);
    expect(calls).toBe(1);
  });

  it('unsubscribes the shared policy when the last key holding it goes', async () => {
    const shared = bulkhead({ name: 'shared', limit: 1 });
    const k = keyed(
      (ctx) => ctx.operation,
      () => shared,
    );
    let calls = 0;
    k.on('execution.completed', () => {
      calls++;
    });
    await k.execute(async () => 1, { operation: 'x' });
    await k.execute(async () => 1, { operation: 'y' });
    k.delete('x');
    k.delete('y');
    calls = 0;
    await shared.execute(async () => 1);
    expect(calls).toBe(0);
  });
});
