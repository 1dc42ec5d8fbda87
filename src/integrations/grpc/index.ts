/**
 * bulwark for @grpc/grpc-js: a client interceptor that runs unary calls under a policy per method.
 *
 * @example
 * ```ts
 * import { grpcInterceptor } from 'bulwark/grpc';
 * ```
 * @module bulwark/grpc
 */
export {
  type GrpcInterceptorOptions,
  type GrpcMethodConfig,
  GrpcStatusError,
  grpcInterceptor,
  MAX_PUSHBACK_MS,
  pushbackOf,
  statusOf,
} from './interceptor.js';
