import { types } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  InvalidOptionsError,
  isBulkheadRejectedError,
  isCircuitOpenError,
  isInvalidOptionsError,
  isResilienceError,
  isRetryExhaustedError,
  isTimeoutError,
  ResilienceError,
  RetryExhaustedError,
  TimeoutError,
} from '../../src/index.js';

describe('errors', () => {
  const circuit = new CircuitOpenError('payments', 1_500, 'open');
  const timeoutError = new TimeoutError('t', 200);
  const full = new BulkheadRejectedError('db', 'full', 4, 8);
  const exhausted = new RetryExhaustedError('r', 3, new Error('last'));
  const invalid = new InvalidOptionsError('retry', [
    { option: 'maxAttempts', received: '0', expected: 'an integer >= 1' },
  ]);

  it('carry stable codes, names and fields', () => {
    expect(circuit).toMatchObject({
      code: 'ERR_CIRCUIT_OPEN',
      name: 'CircuitOpenError',
      policy: 'payments',
      retryAfterMs: 1_500,
      state: 'open',
    });
    expect(circuit.message).toBe('circuit breaker "payments" is open: call not attempted, retry after 1500 ms');
    expect(timeoutError).toMatchObject({ code: 'ERR_TIMEOUT', name: 'TimeoutError', timeoutMs: 200 });
    expect(timeoutError.message).toBe('timeout "t": the operation did not settle within 200 ms');
    expect(full).toMatchObject({ code: 'ERR_BULKHEAD_REJECTED', name: 'BulkheadRejectedError', reason: 'full' });
    expect(full.message).toBe('bulkhead "db" is full (4 running, 8 queued): call rejected');
    expect(new BulkheadRejectedError('db', 'queue_timeout', 1, 1).message).toMatch(/waited in the queue longer/);
    expect(new BulkheadRejectedError('db', 'disposed', 1, 1).message).toBe('bulkhead "db" is disposed: call rejected');
    expect(exhausted).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', attempts: 3 });
    expect((exhausted.cause as Error).message).toBe('last');
    expect(invalid).toMatchObject({ code: 'ERR_INVALID_OPTIONS', name: 'InvalidOptionsError', policy: 'retry' });
    expect(invalid.message).toBe('retry: invalid options\n  - maxAttempts: expected an integer >= 1, got 0');
    expect(new CircuitOpenError('x', Number.POSITIVE_INFINITY, 'isolated').message).toMatch(/isolated/);
    expect(new CircuitOpenError('x', 12.2, 'half_open').message).toMatch(
      /half-open with every probe slot taken.*13 ms/,
    );
  });

  it('instanceof checks the code, and every bulwark error is a ResilienceError', () => {
    for (const e of [circuit, timeoutError, full, exhausted, invalid]) {
      expect(e).toBeInstanceOf(ResilienceError);
      expect(e).toBeInstanceOf(Error);
      expect(isResilienceError(e)).toBe(true);
    }
    expect(circuit).toBeInstanceOf(CircuitOpenError);
    expect(circuit).not.toBeInstanceOf(TimeoutError);
    expect(invalid).toBeInstanceOf(TypeError);
    expect(invalid).toBeInstanceOf(InvalidOptionsError);
    expect(new Error('x')).not.toBeInstanceOf(ResilienceError);
    expect(null).not.toBeInstanceOf(ResilienceError);
  });

  it('guards agree with the classes', () => {
    const all = [circuit, timeoutError, full, exhausted, invalid, new Error('plain'), 'str', undefined, null];
    const table = all.map((e) => [
      isCircuitOpenError(e),
      isTimeoutError(e),
      isBulkheadRejectedError(e),
      isRetryExhaustedError(e),
      isInvalidOptionsError(e),
    ]);
    expect(table).toEqual([
      [true, false, false, false, false],
      [false, true, false, false, false],
      [false, false, true, false, false],
      [false, false, false, true, false],
      [false, false, false, false, true],
      [false, false, false, false, false],
      [false, false, false, false, false],
      [false, false, false, false, false],
      [false, false, false, false, false],
    ]);
  });

  it('recognises a branded error from another copy of the package', () => {
    const foreign = Object.assign(new Error('from another copy'), {
      code: 'ERR_TIMEOUT',
      [Symbol.for('bulwark.error')]: true,
    });
    expect(foreign).toBeInstanceOf(TimeoutError);
    expect(foreign).not.toBeInstanceOf(CircuitOpenError);
    expect(isTimeoutError(foreign)).toBe(true);
    // A look-alike without the brand is not ours.
    expect(Object.assign(new Error('x'), { code: 'ERR_TIMEOUT' })).not.toBeInstanceOf(TimeoutError);
  });

  it('fail-fast factories build errors without a stack and restore the stack limit', () => {
    const limit = Error.stackTraceLimit;
    const e = CircuitOpenError.fast('p', 10, 'open');
    expect(Error.stackTraceLimit).toBe(limit);
    expect(e.stack ?? '').not.toMatch(/\n\s+at /);
    expect(BulkheadRejectedError.fast('b', 'full', 1, 0).stack ?? '').not.toMatch(/\n\s+at /);
    expect(new TimeoutError('t', 1).stack).toMatch(/\n\s+at /);
    // The lazy message still heads the stack, and is a normal string for loggers.
    expect(e.stack).toBe('CircuitOpenError: circuit breaker "p" is open: call not attempted, retry after 10 ms');
    expect(String(e)).toBe('CircuitOpenError: circuit breaker "p" is open: call not attempted, retry after 10 ms');
    expect(JSON.stringify({ m: e.message })).toContain('retry after 10 ms');
    // Made without the Error constructor: an Error by instanceof, not a native error.
    expect(e).toBeInstanceOf(Error);
    expect(types.isNativeError(e)).toBe(false);
    expect(Object.keys(e).sort()).toEqual(['code', 'policy', 'retryAfterMs', 'state']);
    const full = BulkheadRejectedError.fast('b', 'full', 3, 4);
    expect([full.message, full.active, full.queued]).toEqual([
      'bulkhead "b" is full (3 running, 4 queued): call rejected',
      3,
      4,
    ]);
  });
});
