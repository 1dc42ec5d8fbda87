/**
 * statusOf is total: whatever a policy rejected with, the caller gets a gRPC status (a code from grpc-js's
 * `status`, string details, a Metadata), never a throw, and a pushback only within gRFC A6's range.
 */
import { Metadata, status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CircuitOpenError, RetryExhaustedError } from '../../../src/index.js';
import { MAX_PUSHBACK_MS, parsePushback, statusOf } from '../../../src/integrations/grpc/interceptor.js';

const CODES = new Set(Object.values(status).filter((v): v is number => typeof v === 'number'));

/** Values that are hard to describe: no prototype, throwing toString or getters, proxies that throw on any trap. */
const hostile = fc.constantFrom<unknown>(
  Object.create(null),
  {
    toString() {
      throw new Error('toString');
    },
  },
  Object.defineProperty(new Error('x'), 'message', {
    get() {
      throw new Error('getter');
    },
  }),
  new Proxy(
    {},
    {
      get() {
        throw new Error('get');
      },
      getPrototypeOf() {
        throw new Error('getPrototypeOf');
      },
      ownKeys() {
        throw new Error('ownKeys');
      },
    },
  ),
  Symbol('s'),
  10n,
);

const thrown = fc.oneof(
  fc.anything({ withNullPrototype: true, withBoxedValues: true, withMap: true, withSet: true, withBigInt: true }),
  hostile,
  fc.string().map((m) => new Error(m)),
);

describe('statusOf: properties', () => {
  it('is total: any thrown value, bare or wrapped by retry, gives a status with string details', () => {
    fc.assert(
      fc.property(thrown, fc.nat({ max: 3 }), (error, wraps) => {
        let e: unknown = error;
        for (let i = 0; i < wraps; i++) e = new RetryExhaustedError('r', 2, e);
        const s = statusOf(e);
        expect(CODES.has(s.code)).toBe(true);
        expect(typeof s.details).toBe('string');
        expect(s.metadata).toBeInstanceOf(Metadata);
      }),
      { numRuns: 500 },
    );
  });

  it("an open circuit's pushback, when there is one, reads back as a delay within A6's range", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double({ min: 0, noNaN: true }),
          fc.constantFrom(0, 0.1, MAX_PUSHBACK_MS - 0.5, MAX_PUSHBACK_MS, MAX_PUSHBACK_MS + 0.5, 1e300),
        ),
        (ms) => {
          const s = statusOf(new CircuitOpenError('payments', ms, 'open'));
          expect(s.code).toBe(status.UNAVAILABLE);
          const values = s.metadata.get('grpc-retry-pushback-ms');
          const read = parsePushback(values);
          if (values.length === 0) expect(Math.ceil(ms) > MAX_PUSHBACK_MS || !Number.isFinite(ms)).toBe(true);
          else expect(read).toBe(Math.ceil(ms));
        },
      ),
      { numRuns: 500 },
    );
  });
});
