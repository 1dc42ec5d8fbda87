import { describe, expect, it } from 'vitest';
import { captureWarnings, describeWarning } from './warnings.js';

describe('test warnings helper (keeps stderr quiet, asserts warnings)', () => {
  it('captures each form of process.emitWarning with its name, code and message, nothing printed', () => {
    const outer = captureWarnings();
    const inner = captureWarnings();
    try {
      process.emitWarning('as options', { type: 'BulwarkTestWarning', code: 'BULWARK_TEST' });
      process.emitWarning('as arguments', 'BulwarkTestWarning', 'BULWARK_TEST_2');
      process.emitWarning(Object.assign(new Error('as an error'), { name: 'CustomWarning', code: 'X' }));
      process.emitWarning('plain');
    } finally {
      inner.stop();
    }
    process.emitWarning('after the inner capture stopped', { type: 'BulwarkTestWarning' });
    outer.stop();
    expect(inner.warnings).toEqual([
      { name: 'BulwarkTestWarning', code: 'BULWARK_TEST', message: 'as options' },
      { name: 'BulwarkTestWarning', code: 'BULWARK_TEST_2', message: 'as arguments' },
      { name: 'CustomWarning', code: 'X', message: 'as an error' },
      { name: 'Warning', code: undefined, message: 'plain' },
    ]);
    expect(outer.messages()).toEqual(['after the inner capture stopped']);
  });

  it('the guard of test/helpers/setup.ts is installed, so an uncaptured warning fails its test', () => {
    expect(process.emitWarning.name).toBe('guardedEmitWarning');
    expect(describeWarning('m', 'DeprecationWarning', 'DEP0')).toEqual({
      name: 'DeprecationWarning',
      code: 'DEP0',
      message: 'm',
    });
  });
});
