// Tests killing mutants that survived `npm run mutation` in timeout/timeout.ts: a limit given as something other
// than a number or an options object is named as `ms`, and null is judged as a (missing) options object.
import { describe, expect, it } from 'vitest';
import { timeout } from '../../../src/index.js';
import { invalidOptions } from '../../helpers/deferred.js';

const problems = (arg: unknown) =>
  invalidOptions(() => timeout(arg as number)).problems.map((p) => `${p.option}: ${p.expected} (got ${p.received})`);

describe('timeout() argument validation (mutation, round 2)', () => {
  it('a string or bigint limit is reported as ms, with what is allowed', () => {
    expect(problems('2000')).toEqual(['ms: a number > 0 (the limit in ms), or { ms, name?, clock? } (got "2000")']);
    expect(problems(2000n)).toEqual(['ms: a number > 0 (the limit in ms), or { ms, name?, clock? } (got 2000n)']);
  });

  it('null and undefined are not read as a limit', () => {
    expect(problems(null)).toEqual(['options: an object (got null)']);
    expect(problems(undefined)).toEqual(['ms: a number > 0 (required) (got undefined)']);
  });
});
