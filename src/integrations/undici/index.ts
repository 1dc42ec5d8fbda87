/**
 * bulwark for undici: an interceptor for `Dispatcher.compose()` and a fetch built on it.
 *
 * @example
 * ```ts
 * import { interceptor, createFetch } from 'bulwark/undici';
 * ```
 * @module bulwark/undici
 */
export {
  FAILURE_CODES,
  FAILURE_STATUSES,
  IDEMPOTENT_METHODS,
  MAX_RETRY_AFTER_HINT_MS,
  parseRetryAfter,
} from './classify.js';
export { type BulwarkFetch, type BulwarkRequestInit, type CreateFetchOptions, createFetch } from './fetch.js';
export {
  type BulwarkRequestOptions,
  HttpStatusError,
  interceptor,
  type ReplayableBody,
  type UndiciInterceptorOptions,
} from './interceptor.js';
