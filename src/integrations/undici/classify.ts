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
 * Parses `Retry-After`: delay-seconds or an HTTP date. Returns ms to wait, or undefined when the value is absent,
 * garbage, 0, or a date in the past (the backoff then decides).
 */
export function parseRetryAfter(value: string | string[] | undefined, wallNow: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const text = v.trim();
  // 0 seconds says nothing a backoff would not: like a past date, it falls back to the backoff (as undici does).
  if (/^\d+$/.test(text)) return Number(text) > 0 ? Number(text) * 1_000 : undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  const ms = at - wallNow;
  return ms > 0 ? ms : undefined;
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
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return String(headers[i + 1]);
    }
    return undefined;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of headers as Iterable<[string, string]>) if (k.toLowerCase() === name) return v;
    return undefined;
  }
  for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
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
