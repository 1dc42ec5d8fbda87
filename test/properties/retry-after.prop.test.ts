import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_HINT_MS, parseRetryAfter } from '../../src/integrations/undici/classify.js';

const NUM_RUNS = 1_000;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const DAYS_L = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const time = (d: Date) => `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;

/** The three HTTP-date forms of RFC 9110 5.6.7, written by hand (not by `Date`), for a UTC instant. */
const imfFixdate = (d: Date) =>
  `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCFullYear(), 4)} ${time(d)} GMT`;
const rfc850 = (d: Date) =>
  `${DAYS_L[d.getUTCDay()]}, ${pad(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${pad(d.getUTCFullYear() % 100)} ${time(d)} GMT`;
const asctime = (d: Date) =>
  `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${time(d)} ${pad(d.getUTCFullYear(), 4)}`;

/** What a result may be: no hint, a finite delay in (0, cap], or Infinity ("do not retry now"). */
function isAllowedResult(r: unknown): boolean {
  if (r === undefined || r === Number.POSITIVE_INFINITY) return true;
  return typeof r === 'number' && Number.isFinite(r) && r > 0 && r <= MAX_RETRY_AFTER_HINT_MS;
}

/** Wall-clock values: realistic ones, and the edges a broken clock could return. */
const wallNow = fc.oneof(
  fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2100, 0, 1) }),
  fc.constantFrom(0, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -8.64e15, 8.64e15),
  fc.double(),
);

/** Strings near the grammar: digits, dates, their pieces and their common misspellings, mixed with noise. */
const nearGrammar = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        ...DAYS,
        ...DAYS_L,
        ...MONTHS,
        'GMT',
        'UTC',
        ',',
        ' ',
        '  ',
        '\t',
        '-',
        ':',
        '.',
        '+',
        'e',
        '0',
        '9',
        '00',
        '60',
        '99',
        '2030',
        '1994',
        'May 2030',
        '2.5.2030',
        '1.5',
        '\u00a0',
        '\uff11',
      ),
      fc.stringMatching(/^\d{1,400}$/),
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join(''));

const anyValue = fc.oneof(fc.string({ unit: 'binary' }), nearGrammar, fc.string({ unit: 'grapheme' }));

describe('parseRetryAfter (properties)', () => {
  it('is total: any string or array of strings gives undefined, a finite delay within the cap, or Infinity', () => {
    fc.assert(
      fc.property(fc.oneof(anyValue, fc.array(anyValue, { maxLength: 4 })), wallNow, (value, now) => {
        expect(isAllowedResult(parseRetryAfter(value, now))).toBe(true);
      }),
      { numRuns: NUM_RUNS * 5 },
    );
  });

  it('delta-seconds (1*DIGIT, leading zeros and all) is that many seconds; past the cap it is Infinity', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^\d{1,400}$/), wallNow, (digits, now) => {
        const seconds = Number(digits);
        const expected =
          seconds === 0 ? undefined : seconds * 1_000 > MAX_RETRY_AFTER_HINT_MS ? Infinity : seconds * 1_000;
        expect(parseRetryAfter(digits, now)).toBe(expected);
        expect(parseRetryAfter(` \t${digits}\t `, now)).toBe(expected); // optional whitespace around the value
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('an HTTP-date in each of its three forms round-trips: the delay is the date minus the wall clock', () => {
    const nowYear = 2030;
    const now = fc.integer({ min: Date.UTC(nowYear, 0, 1), max: Date.UTC(nowYear, 11, 31) });
    // Whole seconds, as HTTP dates are. RFC 850's two-digit year reads within 50 years of now.
    const instant = (min: number, max: number) =>
      fc.integer({ min: Math.ceil(min / 1_000), max: Math.floor(max / 1_000) }).map((s) => new Date(s * 1_000));
    const forms: [string, (d: Date) => string, fc.Arbitrary<Date>][] = [
      ['IMF-fixdate', imfFixdate, instant(new Date(0).setUTCFullYear(0, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59))],
      ['RFC 850', rfc850, instant(Date.UTC(nowYear - 49, 0, 1), Date.UTC(nowYear + 50, 11, 31, 23, 59, 59))],
      ['asctime', asctime, instant(Date.UTC(1000, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59))],
    ];
    for (const [name, format, dates] of forms) {
      fc.assert(
        fc.property(dates, now, (date, wall) => {
          const text = format(date);
          const ms = date.getTime() - wall;
          expect({ name, text, result: parseRetryAfter(text, wall) }).toEqual({
            name,
            text,
            result: ms > 0 ? ms : undefined,
          });
        }),
        { numRuns: NUM_RUNS },
      );
    }
  });

  it('an HTTP-date that is not of the grammar or not on the calendar is no hint, never a guess', () => {
    const wall = Date.UTC(2030, 0, 1);
    const future = new Date(Date.UTC(2031, 4, 2, 3, 4, 5));
    const mangle = fc.constantFrom<((s: string) => string)[]>(
      (s) => s.toLowerCase(),
      (s) => s.replace('GMT', 'UTC'),
      (s) => s.replace(' ', '  '),
      (s) => s.replace(',', ''),
      (s) => s.replace(/:(\d\d) /, ':$1.000 '),
      (s) => `${s}Z`,
      (s) => s.replace('May', 'May.'),
    );
    fc.assert(
      fc.property(fc.constantFrom(imfFixdate, rfc850), mangle, (format, m) => {
        const text = m(format(future));
        expect(parseRetryAfter(text, wall)).toBeUndefined();
      }),
    );
    for (const text of [
      'Fri, 31 Feb 2031 00:00:00 GMT',
      'Fri, 30 Feb 2032 00:00:00 GMT',
      'Thu, 29 Feb 2100 00:00:00 GMT',
      'Fri, 02 May 2031 24:00:00 GMT',
      'Fri, 02 May 2031 23:60:00 GMT',
      'Fri, 02 May 2031 23:59:61 GMT',
      'Fri May 2 03:04:05 2031',
      '2.5.2031',
      'May 2031',
      '2031-05-02T03:04:05Z',
    ]) {
      expect({ text, result: parseRetryAfter(text, wall) }).toEqual({ text, result: undefined });
    }
  });
});
