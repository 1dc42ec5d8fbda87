// Tests killing mutants that survived `npm run mutation` in policies/handle.ts: what each helper marks as
// errors-only, how a `handle` option is normalised, and which values are recognised as classifiers.
import { describe, expect, it } from 'vitest';
import type { Outcome } from '../../src/index.js';
import { handleAllErrors, handleErrors, handleOutcomes, handleResults, retry } from '../../src/index.js';
import { classification } from '../../src/policies/handle.js';
import { invalidOptions } from '../helpers/deferred.js';

const CLASSIFY = Symbol.for('bulwark.outcomeClassifier.v1');
const BAD_HANDLE =
  'a function (error) => boolean, or handleOutcomes(), handleResults(), handleErrors() or handleAllErrors';

const handleProblems = (handle: unknown) =>
  invalidOptions(() => retry({ handle } as never)).problems.map((p) => `${p.option}: ${p.expected}`);

const ok = (value: unknown): Outcome<unknown> => ({ ok: true, value });
const err = (error: unknown): Outcome<unknown> => ({ ok: false, error });

describe('handle helpers (mutation, round 2)', () => {
  it('mark whether they judge results', () => {
    expect(handleAllErrors.errorsOnly).toBe(true);
    expect(handleErrors(() => true).errorsOnly).toBe(true);
    expect(handleResults(() => true).errorsOnly).toBe(false);
    expect(handleOutcomes(() => true).errorsOnly).toBe(false);
  });

  it('carry their predicate under the registry symbol', () => {
    const errors = handleErrors((e) => e === 'transient') as unknown as Record<
      symbol,
      (o: Outcome<unknown>) => boolean
    >;
    expect(errors[CLASSIFY]?.(err('transient'))).toBe(true);
    expect(errors[CLASSIFY]?.(err('fatal'))).toBe(false);
    expect(errors[CLASSIFY]?.(ok('transient'))).toBe(false);
    const all = handleAllErrors as unknown as Record<symbol, (o: Outcome<unknown>) => boolean>;
    expect(all[CLASSIFY]?.(err(undefined))).toBe(true);
    expect(all[CLASSIFY]?.(ok(1))).toBe(false);
  });
});

describe('classification() (mutation, round 2)', () => {
  it('the default judges errors only: every error is a failure, no result is', () => {
    const c = classification(undefined);
    expect(c.results).toBe(false);
    expect(c.predicate(err(new Error('x')))).toBe(true);
    expect(c.predicate(ok(503))).toBe(false);
  });

  it('a plain function judges errors only, and never sees a result', () => {
    const seen: unknown[] = [];
    const c = classification((e: unknown) => {
      seen.push(e);
      return e === 'transient';
    });
    expect(c.results).toBe(false);
    expect(c.predicate(err('transient'))).toBe(true);
    expect(c.predicate(err('fatal'))).toBe(false);
    expect(c.predicate(ok('transient'))).toBe(false);
    expect(seen).toEqual(['transient', 'fatal']);
  });

  it('a classifier judges results unless it is errors-only', () => {
    expect(classification(handleErrors(() => true)).results).toBe(false);
    expect(classification(handleAllErrors).results).toBe(false);
    expect(classification(handleResults<number>((v) => v === 503) as never).results).toBe(true);
    expect(classification(handleOutcomes(() => true) as never).results).toBe(true);
  });
});

describe('handle validation (mutation, round 2)', () => {
  it('accepts functions and classifiers', () => {
    for (const handle of [() => true, handleAllErrors, handleErrors(() => true), handleResults(() => true)]) {
      expect(() => retry({ handle: handle as never })).not.toThrow();
    }
    // A classifier from another copy of bulwark: the registry symbol and a boolean errorsOnly.
    expect(() => retry({ handle: { [CLASSIFY]: () => true, errorsOnly: false } as never })).not.toThrow();
  });

  it('rejects an object with the symbol but no boolean errorsOnly', () => {
    expect(handleProblems({ [CLASSIFY]: () => true })).toEqual([`handle: ${BAD_HANDLE}`]);
    expect(handleProblems({ [CLASSIFY]: () => true, errorsOnly: 'yes' })).toEqual([`handle: ${BAD_HANDLE}`]);
    expect(handleProblems({ [CLASSIFY]: 1, errorsOnly: true })).toEqual([`handle: ${BAD_HANDLE}`]);
  });

  it('reports a proxy whose reads throw as a bad handle, never rethrowing', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('no reads');
        },
      },
    );
    expect(handleProblems(hostile)).toEqual([`handle: ${BAD_HANDLE}`]);
  });

  it('a primitive is never a classifier, even when its prototype carries the brand', () => {
    const proto = Number.prototype as unknown as Record<PropertyKey, unknown>;
    proto[CLASSIFY] = () => true;
    proto.errorsOnly = true;
    try {
      expect(handleProblems(5)).toEqual([`handle: ${BAD_HANDLE}`]);
      expect(handleProblems(null)).toEqual([`handle: ${BAD_HANDLE}`]);
    } finally {
      delete proto[CLASSIFY];
      delete proto.errorsOnly;
    }
  });
});
