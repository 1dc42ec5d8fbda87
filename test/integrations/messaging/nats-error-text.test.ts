import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { errorText } from '../../../src/integrations/messaging/nats.js';

/** One header line: no control characters, at most 1,024 characters, never empty. */
function isHeaderLine(text: unknown): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: checking their absence
  return typeof text === 'string' && text.length > 0 && text.length <= 1_024 && !/[\u0000-\u001f\u007f]/.test(text);
}

const hostile: [string, () => unknown][] = [
  ['Object.create(null)', () => Object.create(null)],
  [
    'a throwing toString',
    () => ({
      toString: () => {
        throw new Error('no');
      },
    }),
  ],
  ['a toString returning an object', () => ({ toString: () => ({}) })],
  [
    'a throwing Symbol.toPrimitive',
    () => ({
      [Symbol.toPrimitive]: () => {
        throw new Error('no');
      },
    }),
  ],
  ['a symbol', () => Symbol('s')],
  [
    'a revoked Proxy',
    () => {
      const p = Proxy.revocable({}, {});
      p.revoke();
      return p.proxy;
    },
  ],
  [
    'a Proxy whose every trap throws',
    () =>
      new Proxy(
        {},
        {
          get: () => {
            throw new Error('get');
          },
          getPrototypeOf: () => {
            throw new Error('proto');
          },
        },
      ),
  ],
  [
    'an Error with a throwing name getter',
    () => {
      const e = new Error('m');
      Object.defineProperty(e, 'name', {
        get: () => {
          throw new Error('n');
        },
      });
      return e;
    },
  ],
  [
    'an Error with an object message',
    () => {
      const e = new Error('m');
      Object.defineProperty(e, 'message', { value: Object.create(null) });
      return e;
    },
  ],
  ['an Error with a multi-line message', () => new Error('a\r\nb\u0000c')],
  ['a string of 10,000 characters', () => 'x'.repeat(10_000)],
  ['an empty string', () => ''],
  ['undefined', () => undefined],
];

describe('errorText (the dead letter error header)', () => {
  for (const [name, make] of hostile) {
    it(`is total for ${name}`, () => {
      expect(isHeaderLine(errorText(make()))).toBe(true);
    });
  }

  it('keeps the usual Name: message form', () => {
    expect(errorText(new TypeError('bad input'))).toBe('TypeError: bad input');
    expect(errorText(new Error(''))).toBe('Error');
    expect(errorText('plain')).toBe('plain');
    expect(errorText(Object.create(null))).toBe('{}'); // String() throws on it: its (empty) fields instead
  });

  it('property: any value gives one header line, never a throw', () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true, withNullPrototype: true, withBigInt: true }), (value) =>
        isHeaderLine(errorText(value)),
      ),
    );
  });
});
