import { describe, expect, it } from 'vitest';
import {
  FAILURE_CODES,
  FAILURE_STATUSES,
  getHeader,
  IDEMPOTENCY_KEY,
  IDEMPOTENT_METHODS,
  parseRetryAfter,
  withHeader,
} from '../../../src/integrations/undici/classify.js';

const NOW = Date.UTC(2030, 5, 15, 10, 30, 0); // a whole second, as HTTP dates are

describe('parseRetryAfter', () => {
  it('delay-seconds "0" gives no hint (the backoff decides, as with a past date)', () => {
    expect(parseRetryAfter('0', NOW)).toBeUndefined();
  });

  it.each([
    ['1', 1_000],
    ['120', 120_000],
    [' 3 ', 3_000],
    ['007', 7_000],
  ])('delay-seconds %j is %i ms', (value, ms) => {
    expect(parseRetryAfter(value, NOW)).toBe(ms);
  });

  it('an IMF-fixdate in the future is the ms until then, read against the given wall clock', () => {
    expect(parseRetryAfter(new Date(NOW + 5_000).toUTCString(), NOW)).toBe(5_000);
    expect(parseRetryAfter('Sat, 15 Jun 2030 10:31:00 GMT', NOW)).toBe(60_000);
    expect(parseRetryAfter('Sat, 15 Jun 2030 10:31:00 GMT', NOW + 59_000)).toBe(1_000);
  });

  it('the obsolete RFC 850 and asctime date forms are read too', () => {
    expect(parseRetryAfter('Saturday, 15-Jun-30 10:30:10 GMT', NOW)).toBe(10_000);
    expect(parseRetryAfter('Sat Jun 15 10:30:20 2030', NOW)).toBe(20_000); // asctime is UTC too, not local time
    expect(parseRetryAfter('Sat Jun  1 00:00:00 2030', Date.UTC(2030, 5, 1) - 1_000)).toBe(1_000);
  });

  it('an RFC 850 two-digit year is read within 50 years of the wall clock (RFC 9110 5.6.7)', () => {
    const now = Date.UTC(2030, 0, 1);
    expect(parseRetryAfter('Friday, 01-Jan-80 00:00:00 GMT', now)).toBe(Date.UTC(2080, 0, 1) - now);
    expect(parseRetryAfter('Monday, 01-Jan-81 00:00:00 GMT', now)).toBeUndefined(); // 1981: in the past
  });

  // Regression: Date.parse read these as dates (2 Feb 2030, 1 May 2030), so a 503 waited until then.
  it.each([
    '2.5.2030',
    'May 2030',
    '2030-06-16',
    '2030-06-16T10:00:00Z',
    'Sun, 16 Jun 2030 10:00:00 +0000',
    'Sun, 16 Jun 2030 10:00:00 UTC',
    'sun, 16 jun 2030 10:00:00 gmt',
    'Sun, 16 Jun 2030 10:00 GMT',
    'Sun,  16 Jun 2030 10:00:00 GMT',
    'Sun, 31 Jun 2030 10:00:00 GMT',
    'Sun Jun 16 10:00:00 2030 GMT',
    'Sun Jun 6 10:00:00 2030',
    '\u00a0120',
    '\uff11\uff12',
  ])('%j is not an HTTP-date nor delay-seconds: no hint (the backoff decides)', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });

  // Regression: 400 digits parsed to Infinity and then gave no hint, so the request was retried on the backoff.
  it('delay-seconds too large to represent (400 digits) is Infinity: do not retry now', () => {
    expect(parseRetryAfter('9'.repeat(400), NOW)).toBe(Number.POSITIVE_INFINITY);
    expect(parseRetryAfter(String(Number.MAX_SAFE_INTEGER), NOW)).toBe(Number.POSITIVE_INFINITY);
    expect(parseRetryAfter('9007199254740', NOW)).toBe(9_007_199_254_740_000);
  });

  it('a date now or in the past is undefined (the backoff decides)', () => {
    expect(parseRetryAfter(new Date(NOW).toUTCString(), NOW)).toBeUndefined();
    expect(parseRetryAfter(new Date(NOW - 1_000).toUTCString(), NOW)).toBeUndefined();
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:00 GMT', NOW)).toBeUndefined();
  });

  it.each(['', '   ', 'soon', 'ten', '-5', '+5', '5s', '1e3', '0x10', '12 34'])('garbage %j is undefined', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });

  it('absent is undefined; of several values the longest usable one counts (a repeat can only delay)', () => {
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
    expect(parseRetryAfter(['4', '9'], NOW)).toBe(9_000);
    expect(parseRetryAfter(['9', 'soon', '4'], NOW)).toBe(9_000);
    expect(parseRetryAfter(['soon', '1'.repeat(400)], NOW)).toBe(Number.POSITIVE_INFINITY);
    expect(parseRetryAfter([], NOW)).toBeUndefined();
  });
});

describe('getHeader', () => {
  it('reads an object case-insensitively; an array value gives its first element', () => {
    const headers = { 'Idempotency-Key': 'k1', Accept: ['a', 'b'], 'x-none': undefined };
    expect(getHeader(headers, IDEMPOTENCY_KEY)).toBe('k1');
    expect(getHeader(headers, 'accept')).toBe('a');
    expect(getHeader(headers, 'x-none')).toBeUndefined();
    expect(getHeader(headers, 'missing')).toBeUndefined();
  });

  it('reads a flat array (string or Buffer entries) case-insensitively', () => {
    expect(getHeader(['a', '1', 'IDEMPOTENCY-KEY', 'k2'], IDEMPOTENCY_KEY)).toBe('k2');
    expect(getHeader([Buffer.from('Idempotency-Key'), Buffer.from('k3')], IDEMPOTENCY_KEY)).toBe('k3');
    expect(getHeader(['a', '1'], IDEMPOTENCY_KEY)).toBeUndefined();
    expect(getHeader(['dangling'], 'dangling')).toBeUndefined();
  });

  it('reads an iterable of pairs (a Map)', () => {
    expect(getHeader(new Map([['Idempotency-Key', 'k4']]), IDEMPOTENCY_KEY)).toBe('k4');
    expect(getHeader(new Map([['x', 'y']]), IDEMPOTENCY_KEY)).toBeUndefined();
  });

  it('null and undefined headers have no header', () => {
    expect(getHeader(null, IDEMPOTENCY_KEY)).toBeUndefined();
    expect(getHeader(undefined, IDEMPOTENCY_KEY)).toBeUndefined();
  });
});

describe('withHeader', () => {
  it('adds to a copy of an object, leaving the original untouched and dropping undefined values', () => {
    const headers = { Accept: 'text/plain', 'x-list': ['1', '2'], 'x-none': undefined };
    const out = withHeader(headers, IDEMPOTENCY_KEY, 'k');
    expect(out).toEqual({ Accept: 'text/plain', 'x-list': ['1', '2'], [IDEMPOTENCY_KEY]: 'k' });
    expect(out).not.toBe(headers);
    expect(headers).toEqual({ Accept: 'text/plain', 'x-list': ['1', '2'], 'x-none': undefined });
  });

  it('converts a flat array to an object with lowercased names', () => {
    const headers = ['Accept', 'text/plain', Buffer.from('X-Trace'), Buffer.from('t1')];
    expect(withHeader(headers, IDEMPOTENCY_KEY, 'k')).toEqual({
      accept: 'text/plain',
      'x-trace': 't1',
      [IDEMPOTENCY_KEY]: 'k',
    });
    expect(headers).toHaveLength(4);
  });

  it('converts an iterable of pairs', () => {
    expect(withHeader(new Map([['X-A', '1']]), IDEMPOTENCY_KEY, 'k')).toEqual({ 'x-a': '1', [IDEMPOTENCY_KEY]: 'k' });
  });

  it('null or undefined headers give just the new header', () => {
    expect(withHeader(null, IDEMPOTENCY_KEY, 'k')).toEqual({ [IDEMPOTENCY_KEY]: 'k' });
    expect(withHeader(undefined, IDEMPOTENCY_KEY, 'k')).toEqual({ [IDEMPOTENCY_KEY]: 'k' });
  });
});

describe('defaults', () => {
  it('retries only idempotent methods and counts 408, 429 and 5xx gateway statuses as failures', () => {
    expect(IDEMPOTENT_METHODS).toEqual(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
    expect(FAILURE_STATUSES).toEqual([408, 429, 500, 502, 503, 504]);
    expect(FAILURE_CODES).toContain('ECONNRESET');
    expect(FAILURE_CODES).toContain('ECONNREFUSED');
    expect(FAILURE_CODES).toContain('UND_ERR_SOCKET');
    expect(FAILURE_CODES).not.toContain('UND_ERR_ABORTED');
    expect(IDEMPOTENCY_KEY).toBe('idempotency-key');
  });
});
