/** HTTP classification defaults and header helpers for the undici integration. */

/** Methods retried by default: the idempotent ones (RFC 9110). POST and PATCH need an Idempotency-Key. */
export const IDEMPOTENT_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'];

/** Response statuses that count as failures by default. Every other status is a success for the policy. */
export const FAILURE_STATUSES: readonly number[] = [408, 429, 500, 502, 503, 504];

/** Error codes of network failures, counted as failures by default. Other errors pass through unclassified. */
export const FAILURE_CODES: readonly string[] = [
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
];

/** The header that makes a POST or PATCH safe to retry. */
export const IDEMPOTENCY_KEY = 'idempotency-key';

/**
 * The largest `Retry-After` in ms that `parseRetryAfter` returns as a number (2^53 - 1, about 285,000 years). A
 * longer one cannot be represented exactly and is returned as `Infinity`: "do not retry now".
 */
export const MAX_RETRY_AFTER_HINT_MS: number = Number.MAX_SAFE_INTEGER;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
const MONTH = MONTHS.join('|');
const DAY = 'Mon|Tue|Wed|Thu|Fri|Sat|Sun';
const DAY_L = 'Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** RFC 9110 5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`. Case-sensitive, single spaces, as the grammar says. */
const IMF_FIXDATE = new RegExp(`^(?:${DAY}), (\\d{2}) (${MONTH}) (\\d{4}) ${TIME} GMT$`);
/** Obsolete RFC 850 form: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(`^(?:${DAY_L}), (\\d{2})-(${MONTH})-(\\d{2}) ${TIME} GMT$`);
/** Obsolete asctime form: `Sun Nov  6 08:49:37 1994` (the day is 2DIGIT or SP DIGIT). */
const ASCTIME_DATE = new RegExp(`^(?:${DAY}) (${MONTH}) (\\d{2}| \\d) ${TIME} (\\d{4})$`);
const DELTA_SECONDS = /^\d+$/;

/** Days in a month of the proleptic Gregorian calendar. */
function daysIn(year: number, month: number): number {
  if (month === 1) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month] as number;
}

/** Epoch ms of a UTC date and time, or NaN when a field is out of range (31 Feb, 24:00:00, second 61). */
function utc(year: number, monthName: string, day: number, h: string, m: string, s: string): number {
  const month = MONTHS.indexOf(monthName as (typeof MONTHS)[number]);
  const hour = Number(h);
  const minute = Number(m);
  const second = Number(s); // 60 is a leap second (RFC 9110 allows it): read as the next minute's first second
  if (day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 60) return Number.NaN;
  const date = new Date(0);
  date.setUTCFullYear(year, month, day); // unlike Date.UTC, years 0..99 stay themselves
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

/** Epoch ms of an HTTP-date in any of its three forms (RFC 9110 5.6.7), or NaN when `text` is not one. */
function httpDate(text: string, wallNow: number): number {
  let m = IMF_FIXDATE.exec(text);
  if (m !== null)
    return utc(Number(m[3]), m[2] as string, Number(m[1]), m[4] as string, m[5] as string, m[6] as string);
  m = RFC850_DATE.exec(text);
  if (m !== null) {
    // A two-digit year: RFC 9110 says one that appears more than 50 years in the future is the most recent past
    // year with the same last two digits. So: the year with those digits in (now - 50, now + 50].
    const nowYear = new Date(wallNow).getUTCFullYear();
    let year = nowYear - (nowYear % 100) + Number(m[3]);
    if (year > nowYear + 50) year -= 100;
    else if (year <= nowYear - 50) year += 100;
    return utc(year, m[2] as string, Number(m[1]), m[4] as string, m[5] as string, m[6] as string);
  }
  m = ASCTIME_DATE.exec(text);
  if (m !== null)
    return utc(Number(m[6]), m[1] as string, Number(m[2]), m[3] as string, m[4] as string, m[5] as string);
  return Number.NaN;
}

/** One field value: see {@link parseRetryAfter}. */
function parseOne(value: string, wallNow: number): number | undefined {
  // The field value without the optional whitespace (SP, HTAB) around it; nothing else is trimmed.
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  const text = value.slice(start, end);
  let ms: number;
  if (DELTA_SECONDS.test(text)) {
    ms = Number(text) * 1_000; // 400 digits are Infinity here: too large, do not retry now
  } else {
    const at = httpDate(text, wallNow);
    if (Number.isNaN(at)) return undefined;
    ms = at - wallNow;
    if (Number.isNaN(ms)) return undefined; // a wall clock that is not a number: the date cannot be read
  }
  // 0 seconds says nothing a backoff would not: like a past date, it falls back to the backoff (as undici does).
  if (!(ms > 0)) return undefined;
  return ms > MAX_RETRY_AFTER_HINT_MS ? Number.POSITIVE_INFINITY : ms;
}

/**
 * Parses `Retry-After` strictly as RFC 9110 defines it (section 10.2.3): delay-seconds (digits only) or an
 * HTTP-date in one of its three forms, IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and the obsolete RFC 850
 * (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`) forms, all in UTC. `Date.parse` is
 * never used: `2.5.2030`, `May 2030` or `1.5` are not HTTP dates.
 *
 * Returns the ms to wait:
 * - `undefined` (no usable hint: the backoff decides) when the value is absent, not of the grammar, `0`, or a
 *   date now or in the past (or a calendar date that does not exist, such as 31 Feb);
 * - a finite number > 0 and <= {@link MAX_RETRY_AFTER_HINT_MS};
 * - `Infinity` when the value is of the grammar but too large to represent (hundreds of digits, say): "do not
 *   retry now", never "retry sooner".
 *
 * A header repeated with several values (undici gives an array) is read as the longest usable one, so a
 * repeated field can only delay a retry. It never throws.
 *
 * @param value - the `retry-after` response header, as undici gives it.
 * @param wallNow - wall-clock ms (`Date.now()`), to read dates against.
 * @example
 * ```ts
 * parseRetryAfter('120', Date.now()); // 120_000
 * parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.UTC(2026, 9, 21, 7, 27, 0)); // 60_000
 * parseRetryAfter('May 2030', Date.now()); // undefined
 * ```
 */
export function parseRetryAfter(value: string | readonly string[] | undefined, wallNow: number): number | undefined {
  if (typeof value === 'string') return parseOne(value, wallNow);
  if (!Array.isArray(value)) return undefined;
  let longest: number | undefined;
  for (const v of value) {
    const ms = typeof v === 'string' ? parseOne(v, wallNow) : undefined;
    if (ms !== undefined && (longest === undefined || ms > longest)) longest = ms;
  }
  return longest;
}

type Headers =
  | Record<string, string | string[] | undefined>
  | (string | Buffer)[]
  | Iterable<[string, string]>
  | null
  | undefined;

/** Reads a request header (case-insensitive) from any of the shapes undici accepts. */
export function getHeader(headers: Headers, name: string): string | undefined {
  if (headers == null) return undefined;
  // Why the length first: this runs on every request, and most names differ in length from the one looked for, so
  // no lowercased copy is made of them.
  const n = name.length;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const k = String(headers[i]);
      if (k.length === n && k.toLowerCase() === name) return String(headers[i + 1]);
    }
    return undefined;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of headers as Iterable<[string, string]>)
      if (k.length === n && k.toLowerCase() === name) return v;
    return undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  for (const k of Object.keys(record)) {
    if (k.length === n && k.toLowerCase() === name) {
      const v = record[k];
      return Array.isArray(v) ? v[0] : v;
    }
  }
  return undefined;
}

/**
 * Returns headers with `name: value` added, as a new object (names of an array or iterable lowercased; the caller's headers never
 * mutated). A name repeated in a flat array or an iterable keeps every value, as an array.
 */
export function withHeader(headers: Headers, name: string, value: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const add = (k: string, v: string | string[]) => {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else out[k] = [...(Array.isArray(prev) ? prev : [prev]), ...(Array.isArray(v) ? v : [v])];
  };
  if (headers != null) {
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) add(String(headers[i]).toLowerCase(), String(headers[i + 1]));
    } else if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const [k, v] of headers as Iterable<[string, string]>) add(k.toLowerCase(), v);
    } else {
      for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
        if (v !== undefined) add(k, v);
      }
    }
  }
  out[name] = value;
  return out;
}
