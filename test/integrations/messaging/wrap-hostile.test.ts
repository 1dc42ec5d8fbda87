import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeError } from '../../../src/core/describe.js';
import { type Delivery, type Settlement, wrapHandler } from '../../../src/integrations/messaging/index.js';
import { FakeClock } from '../../../src/testing/index.js';

/** Thrown values that break a naive `String(error)` or `error instanceof X`, each with a name for the report. */
function hostileValues(): [string, unknown][] {
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  const trap = () => {
    throw new Error('trap');
  };
  const everyTrap = new Proxy(
    {},
    {
      get: trap,
      has: trap,
      getPrototypeOf: trap,
      ownKeys: trap,
      getOwnPropertyDescriptor: trap,
      apply: trap,
      construct: trap,
      defineProperty: trap,
      deleteProperty: trap,
      isExtensible: trap,
      preventExtensions: trap,
      set: trap,
      setPrototypeOf: trap,
    },
  );
  const throwingToString = {
    toString() {
      throw new Error('no toString');
    },
  };
  const throwingMessage = new Error('x');
  Object.defineProperty(throwingMessage, 'message', { get: trap });
  const throwingName = new Error('readable message');
  Object.defineProperty(throwingName, 'name', { get: trap });
  return [
    ['Object.create(null)', Object.create(null)],
    ['toString throws', throwingToString],
    ['message getter throws', throwingMessage],
    ['name getter throws', throwingName],
    ['a Symbol', Symbol('sym')],
    ['a Proxy throwing on every trap', everyTrap],
    ['a revoked Proxy', revocable.proxy],
    ['a BigInt', 10n ** 30n],
    ['a 1 MB string', 'x'.repeat(1_000_000)],
    ['undefined', undefined],
    ['a function', () => undefined],
  ];
}

function recording(attempt: number) {
  const calls: string[] = [];
  const errors: string[] = [];
  const delivery: Delivery<string> = {
    body: 'm',
    attempt,
    headers: {},
    ack: () => {
      calls.push('ack');
    },
    retryLater: (ms, error) => {
      calls.push(`retryLater(${ms})`);
      errors.push(describeError(error, 512));
    },
    deadLetter: (d) => {
      calls.push(`deadLetter(${d.reason}, ${d.attempts})`);
      errors.push(describeError(d.error, 512));
    },
    release: () => {
      calls.push('release');
    },
  };
  return { delivery, calls, errors };
}

describe('wrapHandler with hostile thrown values', () => {
  for (const [name, value] of hostileValues()) {
    it(`${name}: retried with a delay, then dead-lettered after maxDeliveries`, async () => {
      const handle = wrapHandler(
        () => {
          throw value;
        },
        { maxDeliveries: 3, redeliveryDelay: (attempt) => attempt * 100 },
      );
      const settlements: Settlement[] = [];
      const calls: string[] = [];
      for (const attempt of [1, 2, 3]) {
        const r = recording(attempt);
        settlements.push(await handle(r.delivery));
        calls.push(...r.calls);
        for (const text of r.errors) {
          expect(typeof text).toBe('string');
          expect(text.length).toBeLessThanOrEqual(512);
        }
      }
      expect(settlements).toEqual(['retried', 'retried', 'dead_lettered']);
      expect(calls).toEqual(['retryLater(100)', 'retryLater(200)', 'deadLetter(exhausted, 3)']);
      expect(handle.inFlight).toBe(0);
    });
  }

  it('describes what can be read, and never throws', () => {
    const text = new Map(hostileValues().map(([name, value]) => [name, describeError(value, 512)]));
    expect(text.get('Object.create(null)')).toBe('{}'); // String() throws: its (empty) fields instead
    expect(text.get('toString throws')).toBe('{}');
    expect(text.get('message getter throws')).toBe('Error: [message unreadable]');
    expect(text.get('name getter throws')).toBe('readable message');
    expect(text.get('a Symbol')).toBe('Symbol(sym)');
    expect(text.get('a Proxy throwing on every trap')).toBe('[unprintable object]');
    expect(text.get('a revoked Proxy')).toBe('[unprintable object]');
    expect(text.get('a BigInt')).toBe('1000000000000000000000000000000n');
    expect(text.get('a 1 MB string')).toBe(`${'x'.repeat(511)}…`);
    expect(describeError(new TypeError('bad\r\nline'), 512)).toBe('TypeError: bad  line');
    expect(describeError({ code: 'E_X' }, 512)).toBe('{"code":"E_X"}');
    expect(describeError(`${'a'.repeat(8)}\u{1F600}b`, 10)).toBe(`${'a'.repeat(8)}…`); // no half surrogate
  });

  it('property: describeError is total, one line, and within its bound, for any value', () => {
    fc.assert(
      fc.property(
        fc.anything({ withBigInt: true, withMap: true, withSet: true }),
        fc.integer({ min: 1, max: 600 }),
        (value, max) => {
          const text = describeError(value, max);
          expect(typeof text).toBe('string');
          expect(text.length).toBeLessThanOrEqual(max);
          // biome-ignore lint/suspicious/noControlCharactersInRegex: checking there are none
          expect(/[\u0000-\u001f\u007f]/.test(text)).toBe(false);
        },
      ),
    );
  });

  it('an isPermanent predicate or a redeliveryDelay that throws still retries with a delay, then dead-letters', async () => {
    const handle = wrapHandler(
      () => {
        throw new Error('down');
      },
      {
        maxDeliveries: 2,
        isPermanent: () => {
          throw new Error('predicate bug');
        },
        redeliveryDelay: () => {
          throw new Error('delay bug');
        },
        random: () => 0.5,
      },
    );
    const first = recording(1);
    await expect(handle(first.delivery)).resolves.toBe('retried');
    expect(first.calls).toEqual(['retryLater(500)']); // the default backoff: full jitter of 1 s, at 0.5
    const last = recording(2);
    await expect(handle(last.delivery)).resolves.toBe('dead_lettered');
    expect(last.calls).toEqual(['deadLetter(exhausted, 2)']);
  });

  it('a redeliveryDelay returning NaN or Infinity gets the default backoff, never an immediate redelivery', async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const handle = wrapHandler(
        () => {
          throw new Error('down');
        },
        { redeliveryDelay: () => bad, random: () => 0.25 },
      );
      const r = recording(1);
      await handle(r.delivery);
      expect(r.calls).toEqual(['retryLater(250)']);
    }
  });

  it('a delivery whose attempt is not a number is dead-lettered, not retried forever', async () => {
    const handle = wrapHandler(() => {
      throw new Error('down');
    });
    const r = recording(Number.NaN);
    await expect(handle(r.delivery)).resolves.toBe('dead_lettered');
  });

  it('onPause and onResume hooks that throw neither block the settlement nor escape from the timer', async () => {
    const clock = new FakeClock();
    const { circuitBreaker } = await import('../../../src/policies/circuit-breaker/index.js');
    const handle = wrapHandler(
      () => {
        throw new Error('down');
      },
      {
        policy: circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 1_000, clock }),
        redeliveryDelay: () => 10,
        clock,
        onPause: () => {
          throw new Error('pause hook bug');
        },
        onResume: () => {
          throw new Error('resume hook bug');
        },
      },
    );
    await handle(recording(1).delivery); // opens the breaker
    const second = recording(1);
    await expect(handle(second.delivery)).resolves.toBe('retried');
    expect(second.calls).toEqual(['retryLater(1000)']);
    expect(handle.paused).toBe(true);
    await clock.advance(1_000);
    expect(handle.paused).toBe(false);
  });

  it('a handler returning a thenable that never settles is released at shutdown', async () => {
    const clock = new FakeClock();
    // biome-ignore lint/suspicious/noThenProperty: a thenable is the point of the test
    const never = { then() {} } as unknown as Promise<void>;
    const handle = wrapHandler(() => never, { clock });
    const r = recording(1);
    const result = handle(r.delivery);
    const done = handle.shutdown(100);
    await clock.advance(100);
    await done;
    await expect(result).resolves.toBe('released');
    expect(r.calls).toEqual(['release']);
  });

  it('a handler returning a hostile object (a Proxy throwing on every trap) is a failure like any other', async () => {
    const everyTrap = hostileValues().find(([n]) => n === 'a Proxy throwing on every trap')?.[1];
    const handle = wrapHandler(() => everyTrap as Promise<void>, { redeliveryDelay: () => 7 });
    const r = recording(1);
    await expect(handle(r.delivery)).resolves.toBe('retried');
    expect(r.calls).toEqual(['retryLater(7)']);
  });

  it('a delivery arriving after shutdown whose release throws rejects instead of throwing synchronously', async () => {
    const handle = wrapHandler(() => undefined);
    await handle.shutdown(0);
    const r = recording(1);
    const refused = new Error('release refused');
    const result = handle({
      ...r.delivery,
      release: () => {
        throw refused;
      },
    });
    await expect(result).rejects.toBe(refused);
  });
});
