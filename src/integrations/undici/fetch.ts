import { Agent, type Dispatcher, errors, fetch as undiciFetch } from 'undici';
import { isResilienceError } from '../../errors/errors.js';
import { Checker } from '../../errors/validate.js';
import { hasMethod } from '../validate.js';
import {
  type BulwarkRequestOptions,
  checkInterceptorOptions,
  createInterceptor,
  FETCH_EXTRA,
  type FetchExtra,
  OPTION_NAMES,
  OWN_ERRORS,
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
export interface BulwarkFetch {
  (input: Parameters<typeof undiciFetch>[0], init?: BulwarkRequestInit): ReturnType<typeof undiciFetch>;
  /** The composed dispatcher requests go through. */
  readonly dispatcher: Dispatcher;
  /**
   * Closes the dispatcher (the one it created, or the one you passed): call it at shutdown. A request waiting to
   * retry (a backoff, a `Retry-After`) or queued in a bulkhead rejects at once with a `ClientClosedError` (code
   * `UND_ERR_CLOSED`) saying so, and leaves no timer; an attempt in flight finishes and is not retried; a later
   * request rejects at once with a `ClientClosedError` too, unsent. Resolves when the dispatcher has closed.
   */
  close(): Promise<void>;
}

const FETCH_OPTION_NAMES: readonly string[] = ['dispatcher', ...OPTION_NAMES];

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
  // One checker for every option, the interceptor's included: each problem is reported, together, as createFetch's.
  const check = new Checker('createFetch');
  if (checkInterceptorOptions(check, options, FETCH_OPTION_NAMES)) {
    const d = (options as CreateFetchOptions).dispatcher as unknown;
    if (d !== undefined && !hasMethod(d, 'compose')) {
      check.fail('dispatcher', d, 'an undici Dispatcher (Agent, Pool, Client)');
    }
  }
  check.done();
  const { dispatcher, ...rest } = options;
  const { interceptor: icpt, closer } = createInterceptor(rest, true, true); // checked above, before anything is created
  const base = dispatcher ?? new Agent();
  const composed = base.compose(icpt);
  const fetch = async (input: Parameters<typeof undiciFetch>[0], init?: BulwarkRequestInit) => {
    const store: FetchExtra = { body: replayable(init?.body), request: init?.bulwark, source: init?.body };
    const { bulwark: _omit, ...plain } = init ?? {};
    void _omit;
    try {
      // A dispatcher given per call gets the same interceptor.
      const via = plain.dispatcher !== undefined ? plain.dispatcher.compose(icpt) : composed;
      // fetch hands the interceptor a one-shot stream for every body and drops unknown options, so this call's
      // replayable body and options ride in the dispatch options, added by a thin per-call dispatcher. Why not
      // AsyncLocalStorage: on Node 20 its first use slows every promise in the process.
      const carrier = {
        dispatch: (o: Dispatcher.DispatchOptions, h: Dispatcher.DispatchHandler) =>
          via.dispatch({ ...o, [FETCH_EXTRA]: store } as Dispatcher.DispatchOptions, h),
      };
      return await undiciFetch(input, { ...plain, dispatcher: carrier as unknown as Dispatcher });
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      if (
        error instanceof TypeError &&
        (isResilienceError(cause) ||
          (cause !== undefined && closedErrors.has(cause)) ||
          (typeof cause === 'object' && cause !== null && OWN_ERRORS.has(cause)))
      ) {
        throw cause;
      }
      throw error;
    }
  };
  const closedErrors = new Set<unknown>();
  const close = (): Promise<void> => {
    if (closedErrors.size === 0) {
      const waiting = new errors.ClientClosedError(
        'bulwark/undici: fetch.close() was called while this request waited to be sent again (a retry backoff, a Retry-After or a bulkhead queue); it was not sent again',
      );
      const later = new errors.ClientClosedError(
        'bulwark/undici: fetch.close() was called before this request; it was not sent',
      );
      closedErrors.add(waiting).add(later);
      closer.close(waiting, later);
    }
    return base.close();
  };
  return Object.assign(fetch, { dispatcher: composed, close });
}
