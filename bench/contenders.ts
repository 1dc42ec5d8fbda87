/**
 * The contenders: the same operation through each library, configured alike (see docs/benchmarks.md).
 * To add one, append an entry to CONTENDERS: a name, a group and `make(op)` returning the call and a teardown.
 */
import {
  type BulkheadPolicy,
  CountBreaker,
  bulkhead as cBulkhead,
  circuitBreaker as cCircuitBreaker,
  retry as cRetry,
  timeout as cTimeout,
  ExponentialBackoff,
  handleAll,
  TimeoutStrategy,
  wrap,
} from 'cockatiel';
import CircuitBreaker from 'opossum';
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../src/index.js';

export type Op = () => Promise<unknown>;

export interface Instance {
  /** Runs the operation once through the contender. */
  readonly call: () => Promise<unknown>;
  /** Releases timers and handles (opossum keeps interval timers per breaker). */
  readonly dispose: () => void;
}

export interface Contender {
  readonly name: string;
  readonly library: 'baseline' | 'bulwark' | 'cockatiel' | 'opossum' | 'p-limit' | 'p-retry';
  /** Whether it limits concurrency (the in-flight suite sizes its limit at 1,000 and its queue to fit). */
  readonly limiter: boolean;
  make(op: Op, inFlight: number): Instance;
}

const noop = () => undefined;

/** Settings shared by every library, as far as each can express them. */
export const SETTINGS = {
  maxAttempts: 3,
  breakerWindow: 100,
  failureRate: 0.5,
  breakMs: 10_000,
  timeoutMs: 60_000,
  limit: 1_000,
} as const;

function bulwarkRetry() {
  return retry({ maxAttempts: SETTINGS.maxAttempts });
}
function bulwarkBreaker() {
  return circuitBreaker({
    window: { kind: 'count', size: SETTINGS.breakerWindow },
    failureRate: SETTINGS.failureRate,
    halfOpenAfterMs: SETTINGS.breakMs,
  });
}
function bulwarkTimeout() {
  return timeout(SETTINGS.timeoutMs);
}
function bulwarkBulkhead(inFlight: number) {
  return bulkhead({ limit: SETTINGS.limit, queue: inFlight });
}

function cockatielRetry() {
  return cRetry(handleAll, { maxAttempts: SETTINGS.maxAttempts - 1, backoff: new ExponentialBackoff() });
}
function cockatielBreaker() {
  return cCircuitBreaker(handleAll, {
    halfOpenAfter: SETTINGS.breakMs,
    breaker: new CountBreaker({ threshold: SETTINGS.failureRate, size: SETTINGS.breakerWindow }),
  });
}
function cockatielTimeout() {
  return cTimeout(SETTINGS.timeoutMs, TimeoutStrategy.Cooperative);
}
function cockatielBulkhead(inFlight: number): BulkheadPolicy {
  return cBulkhead(SETTINGS.limit, inFlight);
}

function policyInstance(p: { execute(op: Op): Promise<unknown> }, op: Op): Instance {
  return { call: () => p.execute(op), dispose: noop };
}

export const CONTENDERS: readonly Contender[] = [
  { name: 'bare', library: 'baseline', limiter: false, make: (op) => ({ call: op, dispose: noop }) },
  { name: 'bulwark retry', library: 'bulwark', limiter: false, make: (op) => policyInstance(bulwarkRetry(), op) },
  {
    name: 'bulwark circuitBreaker',
    library: 'bulwark',
    limiter: false,
    make: (op) => policyInstance(bulwarkBreaker(), op),
  },
  { name: 'bulwark timeout', library: 'bulwark', limiter: false, make: (op) => policyInstance(bulwarkTimeout(), op) },
  {
    name: 'bulwark bulkhead',
    library: 'bulwark',
    limiter: true,
    make: (op, n) => policyInstance(bulwarkBulkhead(n), op),
  },
  {
    name: 'bulwark pipeline(4)',
    library: 'bulwark',
    limiter: true,
    make: (op, n) =>
      policyInstance(pipeline(bulwarkRetry(), bulwarkBreaker(), bulwarkTimeout(), bulwarkBulkhead(n)), op),
  },
  { name: 'cockatiel retry', library: 'cockatiel', limiter: false, make: (op) => policyInstance(cockatielRetry(), op) },
  {
    name: 'cockatiel circuitBreaker',
    library: 'cockatiel',
    limiter: false,
    make: (op) => policyInstance(cockatielBreaker(), op),
  },
  {
    name: 'cockatiel timeout',
    library: 'cockatiel',
    limiter: false,
    make: (op) => policyInstance(cockatielTimeout(), op),
  },
  {
    name: 'cockatiel bulkhead',
    library: 'cockatiel',
    limiter: true,
    make: (op, n) => policyInstance(cockatielBulkhead(n), op),
  },
  {
    name: 'cockatiel wrap(4)',
    library: 'cockatiel',
    limiter: true,
    make: (op, n) =>
      policyInstance(wrap(cockatielRetry(), cockatielBreaker(), cockatielTimeout(), cockatielBulkhead(n)), op),
  },
  {
    name: 'opossum fire (defaults)',
    library: 'opossum',
    limiter: false,
    make: (op) => {
      const breaker = new CircuitBreaker(op);
      return { call: () => breaker.fire(), dispose: () => breaker.shutdown() };
    },
  },
  {
    name: 'opossum fire (minimal)',
    library: 'opossum',
    limiter: false,
    make: (op) => {
      // The least work opossum can be asked to do: no timeout, no percentiles, no snapshots, no cache.
      const breaker = new CircuitBreaker(op, {
        timeout: false,
        rollingPercentilesEnabled: false,
        enableSnapshots: false,
        cache: false,
      });
      return { call: () => breaker.fire(), dispose: () => breaker.shutdown() };
    },
  },
  {
    name: 'p-limit',
    library: 'p-limit',
    limiter: true,
    make: (op) => {
      const limit = pLimit(SETTINGS.limit);
      return { call: () => limit(op), dispose: noop };
    },
  },
  {
    name: 'p-retry',
    library: 'p-retry',
    limiter: false,
    make: (op) => ({ call: () => pRetry(op, { retries: SETTINGS.maxAttempts - 1 }), dispose: noop }),
  },
];
