import { Agent, type Dispatcher, fetch as undiciFetch } from 'undici';
import { isResilienceError } from '../../errors/errors.js';
import {
  type BulwarkRequestOptions,
  fetchStore,
  interceptor,
  type ReplayableBody,
  type UndiciInterceptorOptions,
} from './interceptor.js';

/** Options of {@link createFetch}: the interceptor's, plus the dispatcher to compose it onto. */
export interface CreateFetchOptions extends UndiciInterceptorOptions {
  /** The dispatcher requests go through. @defaultValue a new undici `Agent` */
  dispatcher?: Dispatcher;
}

/** `init` of the returned fetch: undici's, plus `bulwark` per-request options. */
export type BulwarkRequestInit = NonNullable<Parameters<typeof undiciFetch>[1]> & { bulwark?: BulwarkRequestOptions };

/** A fetch that runs every request under a bulwark policy. */
export type BulwarkFetch = (
  input: Parameters<typeof undiciFetch>[0],
  init?: BulwarkRequestInit,
) => ReturnType<typeof undiciFetch>;

function replayable(body: unknown): ReplayableBody | undefined {
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (body instanceof URLSearchParams) return body.toString();
  return undefined;
}

/**
 * A `fetch` built on {@link interceptor}: the same policy, classification and retry rules, with the WHATWG API.
 * String, Buffer, ArrayBuffer and URLSearchParams bodies are replayed on retries; a stream body is sent once and
 * never retried. When the policy refuses a request (an open circuit, a full bulkhead), the promise rejects with
 * bulwark's own error, not fetch's `TypeError('fetch failed')`.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @example
 * ```ts
 * import { createFetch } from 'bulwark/undici';
 * const fetch = createFetch({ policy: pipeline(retry(), timeout(2_000)) });
 * const res = await fetch('http://127.0.0.1:8080/quote');
 * ```
 */
export function createFetch(options: CreateFetchOptions): BulwarkFetch {
  const { dispatcher, ...rest } = options;
  const composed = (dispatcher ?? new Agent()).compose(interceptor(rest));
  return async (input, init) => {
    const store = { body: replayable(init?.body), request: init?.bulwark };
    const { bulwark: _omit, ...plain } = init ?? {};
    void _omit;
    try {
      // Why AsyncLocalStorage: fetch hands the interceptor a one-shot stream for every body and drops unknown
      // options, so the replayable body and per-request options travel beside the request instead.
      return await fetchStore.run(store, () => undiciFetch(input, { ...plain, dispatcher: composed }));
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      if (error instanceof TypeError && isResilienceError(cause)) throw cause;
      throw error;
    }
  };
}
