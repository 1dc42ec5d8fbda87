/**
 * Suite 10: the effect on a system, in virtual time. Not a timing of bulwark: a simulation, run on a virtual clock
 * ({@link SimClock}) with seeded random sources, of clients calling an upstream through each configuration. Its
 * numbers depend on the model and the seeds only, never on the machine or its load, so they are the same on every
 * run and every Node (the suite's wall time is the only thing the machine changes).
 *
 * Overload: an upstream of capacity C (W workers, exponential service times of mean S, a bounded FIFO queue; see
 * {@link QueueingUpstream}) is offered an open-loop Poisson arrival rate of 0.5C, 1C, 1.5C, 2C and 3C. Two upstreams
 * (scenarios) differ in their queue bound only: a fail-fast one, whose full queue holds less work than the client's
 * timeout (overload shows as fast 503s), and a deep-queue one, whose full queue holds more (overload shows as
 * timeouts, and as work the upstream finishes for clients that have gone: congestion collapse). Each step is a
 * fresh system (new clock, upstream and policies, the same seeds for every configuration, so they all see the same
 * arrivals): a warm-up, then a measured window. Per step and configuration: goodput (calls that succeeded per second,
 * and as a share of C), p50 and p99 of the successful calls' latency as the client sees it (retries and backoff
 * included), load amplification (requests that reached the upstream / calls offered), and how calls failed.
 *
 * Hedging: an upstream far below capacity whose slowest 1% of requests are 50x slower ({@link TailUpstream}), called
 * without and with `hedge({ delayQuantile: { quantile: 0.95 } })`: p50, p99, p99.9 and the extra requests hedging sent.
 */
import {
  adaptiveLimit,
  adaptiveThrottle,
  exponential,
  hedge,
  isLocalRejectionError,
  isTimeoutError,
  type Policy,
  pipeline,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import { progress, type Settings } from '../harness.js';
import {
  exponentialDraw,
  OverloadedError,
  QueueingUpstream,
  rankQuantile,
  SimClock,
  seededRandom,
  TailUpstream,
} from '../sim.js';

/** The overload model's parameters (stored with each run, shown in the docs). */
export interface OverloadModel {
  /** Upstream workers (W). */
  readonly workers: number;
  /** Mean service time in ms (S); capacity C = W / S. */
  readonly serviceMs: number;
  /** The upstreams the configurations are run against (same capacity, different queue bounds). */
  readonly scenarios: readonly OverloadScenario[];
  /** Worker time one 503 costs the upstream, in ms. */
  readonly rejectCostMs: number;
  /** The client's timeout of each attempt, in ms. */
  readonly timeoutMs: number;
  /** Offered loads, as multiples of C. */
  readonly loads: readonly number[];
  /** Virtual seconds of each step before measuring, and measured. */
  readonly warmupSec: number;
  readonly measureSec: number;
}

/** An upstream of the overload experiment: its queue bound, and what that means for the clients. */
export interface OverloadScenario {
  readonly name: string;
  /** Requests that may wait for a worker; one more is rejected at once with a 503. */
  readonly queue: number;
}

/** The scenarios' names, for the targets. */
export const OVERLOAD_SCENARIO = {
  /** A queue of 0.5 s of work, under the client's 1 s timeout: overload shows as fast 503s. */
  failFast: 'fail-fast upstream',
  /** A queue of 2 s of work, past the client's timeout: overload shows as timeouts and wasted work. */
  deepQueue: 'deep-queue upstream',
} as const;

/** The hedging model's parameters. */
export interface HedgeModel {
  /** Latency of a normal request, ms (each within +-10%). */
  readonly normalMs: number;
  /** How many times slower the slow requests are. */
  readonly slowFactor: number;
  /** One request in this many is slow. */
  readonly slowEvery: number;
  /** Calls per second (Poisson). */
  readonly ratePerSec: number;
  /** Calls before measuring (the hedge learns its delay), then calls measured. */
  readonly warmupCalls: number;
  readonly calls: number;
}

export interface OverloadRow {
  readonly scenario: string;
  readonly config: string;
  /** Offered load as a multiple of C. */
  readonly load: number;
  readonly offeredPerSec: number;
  readonly goodputPerSec: number;
  /** Goodput / C. */
  readonly goodputOfCapacity: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Requests that reached the upstream / calls offered. */
  readonly amplification: number;
  /** Shares of the calls that ended in the window: failed with a 503, a timeout, a local rejection (bulwark's own). */
  readonly failed503: number;
  readonly failedTimeout: number;
  readonly failedLocal: number;
  /** Share of the upstream's completed services whose client had given up: wasted work. */
  readonly wasted: number;
}

export interface HedgeRow {
  readonly config: string;
  readonly calls: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** Upstream requests beyond one per call, as a share of the calls. */
  readonly extraCalls: number;
}

export interface OverloadResult {
  readonly model: OverloadModel;
  readonly hedgeModel: HedgeModel;
  readonly rows: OverloadRow[];
  readonly hedge: HedgeRow[];
}

/** What a configuration is built from: the step's clock and a seeded random source for jitter and throttling. */
export interface SimEnv {
  readonly clock: SimClock;
  readonly random: () => number;
  readonly timeoutMs: number;
}

/** One configuration of the overload experiment: a name and the policy a step's clients call through. */
export interface OverloadConfig {
  readonly name: string;
  readonly make: (env: SimEnv) => Policy;
}

/** The configurations' names, for the targets. */
export const OVERLOAD_CONFIG = {
  none: 'no policy (timeout only)',
  retry: 'retry',
  retryBudget: 'retry + retryBudget()',
  retryTokenBudget: 'retry + retryTokenBudget()',
  adaptiveLimit: 'adaptiveLimit()',
  adaptiveThrottle: 'adaptiveThrottle()',
} as const;

/** retry as the suite uses it: 3 attempts, exponential backoff (100 ms, x2, full jitter) drawn from `random`. */
const retry3 = ({ clock, random }: SimEnv, extra: Parameters<typeof retry>[0] = {}) =>
  retry({ maxAttempts: 3, backoff: exponential({ initialMs: 100, jitter: 'full' }), clock, random, ...extra });

/**
 * The configurations compared, in the order of the tables and the chart. Adding one is one entry here: every step
 * runs it with the same arrivals and upstream draws as the others.
 */
export const OVERLOAD_CONFIGS: readonly OverloadConfig[] = [
  { name: OVERLOAD_CONFIG.none, make: ({ clock, timeoutMs }) => timeout({ ms: timeoutMs, clock }) },
  {
    name: OVERLOAD_CONFIG.retry,
    make: (env) => pipeline(retry3(env), timeout({ ms: env.timeoutMs, clock: env.clock })),
  },
  {
    name: OVERLOAD_CONFIG.retryBudget,
    make: (env) => pipeline(retry3(env, { budget: retryBudget() }), timeout({ ms: env.timeoutMs, clock: env.clock })),
  },
  {
    name: OVERLOAD_CONFIG.retryTokenBudget,
    make: (env) =>
      pipeline(retry3(env, { budget: retryTokenBudget() }), timeout({ ms: env.timeoutMs, clock: env.clock })),
  },
  // The upstream's 503s and the timeouts are its drops (its default `handle`: every error).
  {
    name: OVERLOAD_CONFIG.adaptiveLimit,
    make: ({ clock, timeoutMs }) => pipeline(timeout({ ms: timeoutMs, clock }), adaptiveLimit({ clock })),
  },
  // Its `handle` counts the upstream's refusals (503s and timeouts) as rejections; its random source is the step's.
  {
    name: OVERLOAD_CONFIG.adaptiveThrottle,
    make: ({ clock, random, timeoutMs }) =>
      pipeline(
        adaptiveThrottle({ clock, random, handle: (e) => e instanceof OverloadedError || isTimeoutError(e) }),
        timeout({ ms: timeoutMs, clock }),
      ),
  },
];

/** The hedging configurations' names, for the targets. */
export const HEDGE_CONFIG = {
  none: 'no hedge',
  p95: 'hedge at the learned p95',
} as const;

/** One configuration of the hedging experiment: no policy (`undefined`: the bare request) or the policy to call through. */
export interface HedgeConfig {
  readonly name: string;
  readonly make: (clock: SimClock) => Policy | undefined;
}

export const HEDGE_CONFIGS: readonly HedgeConfig[] = [
  { name: HEDGE_CONFIG.none, make: () => undefined },
  // The learned delay needs minSamples (100) successful attempts; until then delayMs (2 s, the default) applies.
  // The warm-up calls cover that.
  { name: HEDGE_CONFIG.p95, make: (clock) => hedge({ delayQuantile: { quantile: 0.95 }, clock }) },
];

export function overloadModel(s: Settings): OverloadModel {
  return {
    workers: 20,
    serviceMs: 20,
    scenarios: [
      { name: OVERLOAD_SCENARIO.failFast, queue: 500 },
      { name: OVERLOAD_SCENARIO.deepQueue, queue: 2_000 },
    ],
    rejectCostMs: 0.2,
    timeoutMs: 1_000,
    loads: [0.5, 1, 1.5, 2, 3],
    // Why 5 s: the deep-queue upstream's collapse is still deepening after 2 s (no policy at 1.5C: 23% of C
    // measured after a 2 s warm-up, 10.5% after 5 s, 9.0% after 10 s); the fail-fast one settles within a second.
    warmupSec: s.quick ? 2 : 5,
    measureSec: s.quick ? 3 : 8,
  };
}

export function hedgeModel(s: Settings): HedgeModel {
  return {
    normalMs: 10,
    slowFactor: 50,
    slowEvery: 100,
    ratePerSec: 200,
    warmupCalls: 1_000,
    calls: s.quick ? 5_000 : 20_000,
  };
}

/** Seeds of a step: the same for every configuration, so all of them see the same arrivals and service draws. */
const seeds = (step: number) => ({ arrivals: 1_000 + step, service: 2_000 + step, client: 3_000 + step });

/** Runs one configuration at one offered load in a fresh system and measures its window. */
export async function overloadStep(
  scenario: OverloadScenario,
  config: OverloadConfig,
  model: OverloadModel,
  step: number,
): Promise<OverloadRow> {
  const load = model.loads[step] as number;
  const seed = seeds(step);
  const clock = new SimClock();
  const upstream = new QueueingUpstream({
    clock,
    random: seededRandom(seed.service),
    workers: model.workers,
    serviceMs: model.serviceMs,
    queue: scenario.queue,
    rejectCostMs: model.rejectCostMs,
  });
  const capacity = upstream.capacityPerSec;
  const policy = config.make({ clock, random: seededRandom(seed.client), timeoutMs: model.timeoutMs });
  const arrivals = seededRandom(seed.arrivals);
  const meanGapMs = 1000 / (load * capacity);
  const from = model.warmupSec * 1000;
  const to = from + model.measureSec * 1000;
  const inWindow = (t: number) => t >= from && t < to;
  const latencies: number[] = [];
  let offered = 0;
  let failed503 = 0;
  let failedTimeout = 0;
  let failedLocal = 0;
  let failedOther = 0;
  const op = ({ signal }: { signal: AbortSignal }) => upstream.request(signal);
  const arrive = () => {
    const start = clock.now();
    if (start >= from) offered++;
    policy.execute(op).then(
      () => {
        const end = clock.now();
        if (inWindow(end)) latencies.push(end - start);
      },
      (e: unknown) => {
        if (!inWindow(clock.now())) return;
        if (e instanceof OverloadedError) failed503++;
        else if (isTimeoutError(e)) failedTimeout++;
        else if (isLocalRejectionError(e) || hasLocalCode(e)) failedLocal++;
        else failedOther++;
      },
    );
    const gap = exponentialDraw(arrivals, meanGapMs);
    if (start + gap < to) clock.setTimeout(arrive, gap);
  };
  clock.setTimeout(arrive, exponentialDraw(arrivals, meanGapMs));
  await clock.advanceTo(from);
  const before = { requests: upstream.requests, served: upstream.served, wasted: upstream.wasted };
  await clock.advanceTo(to);
  if (failedOther > 0)
    throw new Error(`overload suite: ${config.name} failed ${failedOther} calls in an unexpected way`);
  latencies.sort((a, b) => a - b);
  const seconds = model.measureSec;
  const ended = latencies.length + failed503 + failedTimeout + failedLocal;
  const served = upstream.served - before.served;
  return {
    scenario: scenario.name,
    config: config.name,
    load,
    offeredPerSec: offered / seconds,
    goodputPerSec: latencies.length / seconds,
    goodputOfCapacity: latencies.length / seconds / capacity,
    p50Ms: rankQuantile(latencies, 0.5),
    p99Ms: rankQuantile(latencies, 0.99),
    amplification: (upstream.requests - before.requests) / offered,
    failed503: failed503 / ended,
    failedTimeout: failedTimeout / ended,
    failedLocal: failedLocal / ended,
    wasted: served === 0 ? 0 : (upstream.wasted - before.wasted) / served,
  };
}

/**
 * Errors bulwark raises locally that `isLocalRejectionError` does not name (a throttle's rejection): any error with a
 * bulwark code that is not a timeout. Why by code: the suite must build against a main that has not got them yet.
 */
function hasLocalCode(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_') && !isTimeoutError(e);
}

/** Runs the hedging experiment for one configuration. */
export async function hedgeRun(config: HedgeConfig, model: HedgeModel): Promise<HedgeRow> {
  const clock = new SimClock();
  const upstream = new TailUpstream({
    clock,
    random: seededRandom(4_000),
    normalMs: model.normalMs,
    slowFactor: model.slowFactor,
    slowEvery: model.slowEvery,
  });
  const policy = config.make(clock);
  const arrivals = seededRandom(5_000);
  const total = model.warmupCalls + model.calls;
  const latencies: number[] = [];
  let attempts = 0;
  let failures = 0;
  let started = 0;
  const arrive = () => {
    const index = started++;
    const measured = index >= model.warmupCalls;
    const start = clock.now();
    const op = ({ signal }: { signal: AbortSignal }) => {
      if (measured) attempts++;
      return upstream.request(signal);
    };
    const call = policy === undefined ? op({ signal: new AbortController().signal }) : policy.execute(op);
    call.then(
      () => {
        if (measured) latencies.push(clock.now() - start);
      },
      () => {
        failures++;
      },
    );
    if (started < total) clock.setTimeout(arrive, exponentialDraw(arrivals, 1000 / model.ratePerSec));
  };
  clock.setTimeout(arrive, 0);
  // Every call is made by the time the arrivals stop; the slowest ends within slowFactor x normal after that.
  const limit = (total / model.ratePerSec) * 2_000 + 60_000;
  for (let t = 1_000; (started < total || clock.pending > 0) && t < limit; t += 1_000) await clock.advanceTo(t);
  if (clock.pending > 0) throw new Error(`overload suite: ${config.name}: timers still pending at the end`);
  if (failures > 0) throw new Error(`overload suite: ${config.name}: ${failures} hedging calls failed`);
  latencies.sort((a, b) => a - b);
  return {
    config: config.name,
    calls: latencies.length,
    p50Ms: rankQuantile(latencies, 0.5),
    p99Ms: rankQuantile(latencies, 0.99),
    p999Ms: rankQuantile(latencies, 0.999),
    extraCalls: attempts / latencies.length - 1,
  };
}

export async function overloadSuite(s: Settings, step: string): Promise<OverloadResult> {
  const model = overloadModel(s);
  const rows: OverloadRow[] = [];
  for (const scenario of model.scenarios) {
    for (const config of OVERLOAD_CONFIGS) {
      for (let i = 0; i < model.loads.length; i++) {
        progress(`${step} overload: ${scenario.name}, ${config.name} at ${model.loads[i]}C`);
        rows.push(await overloadStep(scenario, config, model, i));
      }
    }
  }
  const hm = hedgeModel(s);
  const hedgeRows: HedgeRow[] = [];
  for (const config of HEDGE_CONFIGS) {
    progress(`${step} overload: hedging, ${config.name}`);
    hedgeRows.push(await hedgeRun(config, hm));
  }
  return { model, hedgeModel: hm, rows, hedge: hedgeRows };
}
