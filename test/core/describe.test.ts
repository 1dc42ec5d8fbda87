import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeError, describeMessage } from '../../src/core/describe.js';

function explode(): never {
  throw new Error('hostile read');
}

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

const getterThrows = (key: 'name' | 'message', base: object = new Error('readable message')): object =>
  Object.defineProperty(base, key, { get: explode });

describe('describeError: what a thrown value reads as', () => {
  it('primitives', () => {
    expect(describeError('plain', 100)).toBe('plain');
    expect(describeError('', 100)).toBe('');
    expect(describeError(Symbol('sym'), 100)).toBe('Symbol(sym)');
    expect(describeError(10n ** 30n, 100)).toBe('1000000000000000000000000000000n');
    expect(describeError(42, 100)).toBe('42');
    expect(describeError(undefined, 100)).toBe('undefined');
    expect(describeError(null, 100)).toBe('null');
    expect(describeError(false, 100)).toBe('false');
    expect(describeError(Number.NaN, 100)).toBe('NaN');
  });

  it('errors: Name: message, the name alone for an empty message, the message alone without a name', () => {
    expect(describeError(new TypeError('bad input'), 100)).toBe('TypeError: bad input');
    expect(describeError(new Error(''), 100)).toBe('Error');
    expect(describeError({ message: 'no name' }, 100)).toBe('no name');
    expect(describeError({ name: '', message: 'empty name' }, 100)).toBe('empty name');
    expect(describeError({ name: 5, message: 'name not a string' }, 100)).toBe('name not a string');
    expect(describeError({ name: 'OnlyName' }, 100)).toBe('{"name":"OnlyName"}');
  });

  it('describeMessage gives the message alone, and the name only when the message is empty or missing', () => {
    expect(describeMessage(new TypeError('bad input'), 100)).toBe('bad input');
    expect(describeMessage(new Error(''), 100)).toBe('Error');
    expect(describeMessage({ message: 'no name' }, 100)).toBe('no name');
    expect(describeMessage('text', 100)).toBe('text');
    expect(describeMessage(getterThrows('message'), 100)).toBe('Error: [message unreadable]');
  });

  it('objects without a message: their String() form, else their JSON, else their name, else the type', () => {
    expect(describeError({ code: 'E_X' }, 100)).toBe('{"code":"E_X"}');
    expect(describeError(Object.create(null), 100)).toBe('{}');
    expect(describeError({ toString: () => 'custom text' }, 100)).toBe('custom text');
    expect(describeError({ toString: explode }, 100)).toBe('{}');
    expect(describeError([1, 2], 100)).toBe('1,2');
    const fn = function named() {
      return 0;
    };
    // A function has a name ('named') but no message: its source, on one line.
    expect(describeError(fn, 100)).toBe(String(fn).replace(/\s/g, ' '));
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    expect(describeError(cyclic, 100)).toBe('[object Object]');
    const named = Object.assign(Object.create(null) as object, { name: 'Named', self: undefined as unknown });
    (named as { self: unknown }).self = named;
    expect(describeError(named, 100)).toBe('Named');
    expect(describeError({ toJSON: () => undefined }, 100)).toBe('[object Object]'); // no JSON: String() stays
    const unjsonable = Object.assign(Object.create(null) as object, { toJSON: () => undefined });
    expect(describeError(unjsonable, 100)).toBe('[unprintable object]');
  });

  it('hostile reads: each guarded on its own', () => {
    expect(describeError(getterThrows('message'), 100)).toBe('Error: [message unreadable]');
    expect(describeError(getterThrows('name'), 100)).toBe('readable message');
    expect(describeError(getterThrows('message', { name: '' }), 100)).toBe('{"name":""}');
    expect(describeError(revoked(), 100)).toBe('[unprintable object]');
    const trapping = new Proxy(
      {},
      {
        get: explode,
        getPrototypeOf: explode,
        ownKeys: explode,
        getOwnPropertyDescriptor: explode,
        has: explode,
      },
    );
    expect(describeError(trapping, 100)).toBe('[unprintable object]');
    const revokedFn = Proxy.revocable(() => 0, {});
    revokedFn.revoke();
    expect(describeError(revokedFn.proxy, 100)).toBe('[unprintable function]');
  });

  it('a name longer than the limit is cut, with or without a readable message', () => {
    const long = 'N'.repeat(20);
    expect(describeError(getterThrows('message', { name: long }), 10)).toBe(`${'N'.repeat(9)}…`);
    expect(describeError({ name: long, message: 'm' }, 10)).toBe(`${'N'.repeat(9)}…`);
    expect(describeError({ name: long, message: '' }, 30)).toBe(long);
  });

  it('one line: control characters become spaces, nothing else changes', () => {
    expect(describeError(new TypeError('bad\r\nline'), 100)).toBe('TypeError: bad  line');
    expect(describeError('tab\there\u0000nul\u007fdel\u001fus', 100)).toBe('tab here nul del us');
    expect(describeError('  spaced  ', 100)).toBe('  spaced  ');
  });

  it('cut at the limit with an ellipsis, never half a surrogate pair', () => {
    expect(describeError('x'.repeat(10), 10)).toBe('x'.repeat(10));
    expect(describeError('x'.repeat(11), 10)).toBe(`${'x'.repeat(9)}…`);
    expect(describeError('x'.repeat(1_000_000), 512)).toBe(`${'x'.repeat(511)}…`);
    expect(describeError(`${'a'.repeat(8)}\u{1F600}b`, 10)).toBe(`${'a'.repeat(8)}…`);
    expect(describeError(`${'a'.repeat(7)}\u{1F600}b`, 10)).toBe(`${'a'.repeat(7)}\u{1F600}b`); // fits exactly
    expect(describeError(`${'a'.repeat(7)}\u{1F600}bc`, 10)).toBe(`${'a'.repeat(7)}\u{1F600}…`);
    expect(describeError(`${'a'.repeat(9)}\u{1F600}`, 10)).toBe(`${'a'.repeat(9)}…`);
    expect(describeError(new Error('m'.repeat(20)), 10)).toBe(`Error: mm…`);
    expect(describeError(10n ** 40n, 5)).toBe('1000…');
    // A lone high surrogate at the cut, at both ends of its range, is dropped; a low one (and the next code point
    // down) is kept.
    expect(describeError(`abc\ud800xyz`, 5)).toBe('abc…');
    expect(describeError(`abc\udbffxyz`, 5)).toBe('abc…');
    expect(describeError(`abc\udc00xyz`, 5)).toBe('abc\udc00…');
    expect(describeError(`abc\ud7ffxyz`, 5)).toBe('abc\ud7ff…');
    expect(describeError('ab', 1)).toBe('…');
    expect(describeError('a', 1)).toBe('a');
    expect(describeError('abc', 0)).toBe('…');
  });

  it('property: total, one line, within the limit (plus the ellipsis), for any value', () => {
    fc.assert(
      fc.property(
        fc.anything({ withBigInt: true, withMap: true, withSet: true }),
        fc.integer({ min: 1, max: 300 }),
        (v, max) => {
          for (const text of [describeError(v, max), describeMessage(v, max)]) {
            expect(typeof text).toBe('string');
            expect(text.length).toBeLessThanOrEqual(max);
            // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
            expect(/[\u0000-\u001f\u007f]/.test(text)).toBe(false);
          }
        },
      ),
    );
  });
});
