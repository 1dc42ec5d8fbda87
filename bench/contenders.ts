/**
 * The contenders: the same operation through each library, configured alike (see docs/benchmarks.md).
 * To add one, add an entry to `contenders()`: a name, a group and `make(op)` returning the call and a teardown. The
 * cockatiel and opossum entries repeat for every major the running Node can load (see bench/peers.ts).
 */
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import {
  adaptiveLimit,
  adaptiveThrottle,
  bulkhead,
  circuitBreaker,
  hedge,
  pipeline,
  rateLimit,
  retry,
  retryBudget,
  systemClock,
  timeout,
} from '../src/index.js';
import type { Cockatiel, Opossum, Peer, Peers } from './peers.js';

export type Op = () => Promise<unknown>;

export interface Instance {
  /** Runs the operation once through the contender. */
  readonly call: () => Promise<unknown>;
  /** Releases timers and handles (opossum keeps interval timers per breaker). */
  readonly dispose: () => void;
}

export interface Contender {
  readonly name: string;
  readonly library: 'baseline' | 'floor' | 'bulwark' | 'cockatiel' | 'opossum' | 'p-limit' | 'p-retry';
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
/** Retry with a shared retry budget (its default: 20% of the calls in flight, at least 3). */
function bulwarkRetryBudgeted() {
  return retry({ maxAttempts: SETTINGS.maxAttempts, budget: retryBudget() });
}
/** A hedge whose delay never passes in the bench: what a call pays when no hedge fires. */
function bulwarkHedge() {
  return hedge({ delayMs: SETTINGS.timeoutMs });
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

/** A rate limit so high that no call is ever refused or queued: the cost of the admission check alone. */
function bulwarkRateLimit() {
  return rateLimit({ rate: 1e9 });
}

/** A throttle that never rejects on the happy path: every call is accepted, so its probability stays 0. */
function bulwarkThrottle() {
  return adaptiveThrottle();
}

function cockatielRetry(c: Cockatiel) {
  return c.retry(c.handleAll, { maxAttempts: SETTINGS.maxAttempts - 1, backoff: new c.ExponentialBackoff() });
}
function cockatielBreaker(c: Cockatiel) {
  return c.circuitBreaker(c.handleAll, {
    halfOpenAfter: SETTINGS.breakMs,
    breaker: new c.CountBreaker({ threshold: SETTINGS.failureRate, size: SETTINGS.breakerWindow }),
  });
}
function cockatielTimeout(c: Cockatiel) {
  return c.timeout(SETTINGS.timeoutMs, c.TimeoutStrategy.Cooperative);
}
function cockatielBulkhead(c: Cockatiel, inFlight: number) {
  return c.bulkhead(SETTINGS.limit, inFlight);
}

function policyInstance(p: { execute(op: Op): Promise<unknown> }, op: Op): Instance {
  return { call: () => p.execute(op), dispose: noop };
}

/** cockatiel's four policies alone and wrapped, for one major. */
function cockatielContenders({ label, lib: c }: Peer<Cockatiel>): Contender[] {
  return [
    {
      name: `${label} retry`,
      library: 'cockatiel',
      limiter: false,
      make: (op) => policyInstance(cockatielRetry(c), op),
    },
    {
      name: `${label} circuitBreaker`,
      library: 'cockatiel',
      limiter: false,
      make: (op) => policyInstance(cockatielBreaker(c), op),
    },
    {
      name: `${label} timeout`,
      library: 'cockatiel',
      limiter: false,
      make: (op) => policyInstance(cockatielTimeout(c), op),
    },
    {
      name: `${label} bulkhead`,
      library: 'cockatiel',
      limiter: true,
      make: (op, n) => policyInstance(cockatielBulkhead(c, n), op),
    },
    {
      name: `${label} wrap(4)`,
      library: 'cockatiel',
      limiter: true,
      make: (op, n) =>
        policyInstance(
          c.wrap(cockatielRetry(c), cockatielBreaker(c), cockatielTimeout(c), cockatielBulkhead(c, n)),
          op,
        ),
    },
  ];
}

/** opossum with its defaults and with the least work it can be asked to do, for one major. */
function opossumContenders({ label, lib: CircuitBreaker }: Peer<Opossum>): Contender[] {
  return [
    {
      name: `${label} fire (defaults)`,
      library: 'opossum',
      limiter: false,
      make: (op) => {
        const breaker = new CircuitBreaker(op);
        return { call: () => breaker.fire(), dispose: () => breaker.shutdown() };
      },
    },
    {
      name: `${label} fire (minimal)`,
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
  ];
}

const identity = <T>(value: T): T => value;
const rethrow = (error: unknown): never => {
  throw error;
};

/**
 * Floors: not a library, the cheapest wrappers that can observe how a call ended, so the overhead tables show what ANY
 * policy must pay over a bare call in each mode (a policy has to see the outcome: count it, retry on it, release a
 * slot). One promise reaction (`.then` with two preallocated callbacks) and one `async` function that awaits the op
 * (a promise for the async function, a resume). A third, for the policies that may settle a call before its operation
 * does (a timeout, a hedge, and so any pipeline holding one): a promise of the wrapper's own, settled by one reaction
 * on the op's (`new Promise((resolve, reject) => op().then(resolve, reject))`); such a policy cannot hand back the op's
 * promise or a promise derived from it, since it must be able to reject before the op settles. A fourth, for a policy
 * with an exact deadline (a timeout, and so the pipeline): that promise and one reading of the monotonic clock the
 * policies read (`systemClock.now()`), since the deadline is the moment the call started plus the limit. Why here and
 * not in a library: the same op crossing the event loop inflates every wrapper's cost, and these rows separate that
 * inflation from what a policy itself adds.
 */
/** The floor of a policy that may settle a call before its operation (see {@link FLOORS}). */
export const FLOOR_OWN_PROMISE = 'floor: own promise';
/** The floor of a policy with an exact deadline: its own promise and one clock reading (see {@link FLOORS}). */
export const FLOOR_DEADLINE = 'floor: own promise + clock';

export const FLOORS: readonly Contender[] = [
  {
    name: 'floor: one .then',
    library: 'floor',
    limiter: false,
    make: (op) => ({ call: () => op().then(identity, rethrow), dispose: noop }),
  },
  {
    name: 'floor: async + await',
    library: 'floor',
    limiter: false,
    make: (op) => ({
      call: async () => await op(),
      dispose: noop,
    }),
  },
  {
    name: FLOOR_OWN_PROMISE,
    library: 'floor',
    limiter: false,
    make: (op) => ({
      call: () =>
        new Promise((resolve, reject) => {
          op().then(resolve, reject);
        }),
      dispose: noop,
    }),
  },
  {
    name: FLOOR_DEADLINE,
    library: 'floor',
    limiter: false,
    make: (op) => ({
      call: () =>
        new Promise((resolve, reject) => {
          // The reading is dropped: the floor pays for taking it; keeping a deadline with it is the timeout's own
          // cost. V8 cannot drop the call: the clock calls into Node, which it knows nothing about.
          systemClock.now();
          op().then(resolve, reject);
        }),
      dispose: noop,
    }),
  },
];

/** The overhead suite's contenders: bare, the floors, then every contender as {@link contenders} lists them. */
export function overheadContenders(peers: Peers): readonly Contender[] {
  const [bare, ...rest] = contenders(peers);
  return [bare as Contender, ...FLOORS, ...rest];
}

/**
 * The in-flight suite's contenders: every contender, and after bare the floor `floor: own promise`. Why that floor:
 * a call that may be settled before its operation (a timeout) or that waits for a slot (a bulkhead's queue) must hand
 * its caller a promise of its own, and while pending that promise holds its two resolving functions, their context
 * and a reaction on the operation's promise; so the floor is the least any such policy holds per call in flight,
 * before any state of its own.
 */
export function inFlightContenders(peers: Peers): readonly Contender[] {
  const [bare, ...rest] = contenders(peers);
  const floor = FLOORS.find((f) => f.name === FLOOR_OWN_PROMISE) as Contender;
  return [bare as Contender, floor, ...rest];
}

/** Every contender, bare first (the suites compare with it); cockatiel and opossum once per major loaded. */
export function contenders(peers: Peers): readonly Contender[] {
  return [
    { name: 'bare', library: 'baseline', limiter: false, make: (op) => ({ call: op, dispose: noop }) },
    { name: 'bulwark retry', library: 'bulwark', limiter: false, make: (op) => policyInstance(bulwarkRetry(), op) },
    {
      name: 'bulwark circuitBreaker',
      library: 'bulwark',
      limiter: false,
      make: (op) => policyInstance(bulwarkBreaker(), op),
    },
    {
      name: 'bulwark timeout',
      library: 'bulwark',
      limiter: false,
      make: (op) => policyInstance(bulwarkTimeout(), op),
    },
    {
      name: 'bulwark bulkhead',
      library: 'bulwark',
      limiter: true,
      make: (op, n) => policyInstance(bulwarkBulkhead(n), op),
    },
    {
      name: 'bulwark retry + budget',
      library: 'bulwark',
      limiter: false,
      make: (op) => policyInstance(bulwarkRetryBudgeted(), op),
    },
    {
      name: 'bulwark hedge',
      library: 'bulwark',
      limiter: false,
      make: (op) => policyInstance(bulwarkHedge(), op),
    },
    {
      name: 'bulwark rateLimit',
      library: 'bulwark',
      limiter: false,
      make: (op) => policyInstance(bulwarkRateLimit(), op),
    },
    {
      // Serial calls never reach its limit (20): the cost of sampling each call (two clock readings, a window).
      // Thousands in flight (the in-flight suite) wait in its queue, sized like the bulkhead's.
      name: 'bulwark adaptiveLimit',
      library: 'bulwark',
      limiter: true,
      make: (op, n) => policyInstance(adaptiveLimit({ queue: n }), op),
    },
    {
      name: 'bulwark adaptiveThrottle',
      library: 'bulwark',
      limiter: false,
      make: (op) => policyInstance(bulwarkThrottle(), op),
    },
    {
      name: 'bulwark pipeline(4)',
      library: 'bulwark',
      limiter: true,
      make: (op, n) =>
        policyInstance(pipeline(bulwarkRetry(), bulwarkBreaker(), bulwarkTimeout(), bulwarkBulkhead(n)), op),
    },
    ...peers.cockatiel.flatMap(cockatielContenders),
    ...peers.opossum.flatMap(opossumContenders),
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
}
