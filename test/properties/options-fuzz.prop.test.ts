/**
 * Option fuzzing (issue 11): every public factory, given a random options object (NaN, Infinity, -0, huge,
 * non-integers, wrong types, `__proto__`/`constructor`/`toString` keys, throwing getters, `Object.create(null)`,
 * frozen objects, unknown keys), either builds a policy that runs a trivial operation, or throws ONE
 * `InvalidOptionsError` naming the factory and every bad option, and nothing else. The oracle below is written
 * from the docs (docs/policies/*.md, the adapters' pages), not from the validators.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  exponential,
  fallback,
  InvalidOptionsError,
  isCircuitOpenError,
  keyed,
  linear,
  type OptionProblem,
  pipeline,
  retry,
  timeout,
} from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { consumeJetStream, jetstreamDelivery, wrapHandler } from '../../src/integrations/messaging/index.js';
import { createFetch, interceptor } from '../../src/integrations/undici/index.js';
import { openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 120);

// ---------------------------------------------------------------------------------------------------------------
// Hostile values

/** An object whose every read throws: as an option value, or (below) as a getter on the options themselves. */
function exploding(): object {
  return new Proxy(
    {},
    {
      get() {
        throw new Error('boom: read');
      },
      has() {
        throw new Error('boom: has');
      },
      ownKeys() {
        throw new Error('boom: keys');
      },
      getOwnPropertyDescriptor() {
        throw new Error('boom: descriptor');
      },
    },
  );
}

const SPECIAL: readonly (() => unknown)[] = [
  () => Number.NaN,
  () => Number.POSITIVE_INFINITY,
  () => Number.NEGATIVE_INFINITY,
  () => -1,
  () => -0,
  () => 0,
  () => 0.5,
  () => 1,
  () => 2.5,
  () => 3,
  () => 1e21,
  () => Number.MAX_VALUE,
  () => Number.MIN_VALUE,
  () => 2 ** 53,
  () => 2 ** 40,
  () => '5',
  () => '',
  () => 'x',
  () => 5n,
  () => Symbol('s'),
  () => [],
  () => [1, 2],
  () => ['GET'],
  () => () => false,
  () => null,
  () => undefined,
  () => ({}),
  () => Object.create(null),
  () => Object.freeze({ a: 1 }),
  () => true,
  () => ({
    toString() {
      throw new Error('no toString');
    },
    valueOf() {
      throw new Error('no valueOf');
    },
    toJSON() {
      throw new Error('no toJSON');
    },
  }),
  () => new Date(0),
  () => ({ kind: 'count' }),
  () => ({ execute: 1 }),
];

/** Values nested in generated structures (fast-check itself may not touch a proxy whose every trap throws). */
const hostileNested: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SPECIAL).map((make) => make()) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.integer({ min: -3, max: 1_100 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 4 }) },
);
/** An object whose getters throw (fast-check prints counterexamples by reading them: only a stand-in is generated). */
function throwingGetters(): object {
  return {
    get now() {
      throw new Error('getter');
    },
    get execute() {
      throw new Error('getter');
    },
    get kind() {
      throw new Error('getter');
    },
  };
}
/** Stand-ins in generated values; {@link realize} swaps in the fresh hostile object. */
const EXPLODING = Object.freeze({ stand_in: 'a proxy whose every read throws' });
const GETTERS = Object.freeze({ stand_in: 'an object whose getters throw' });
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: hostileNested },
  { weight: 1, arbitrary: fc.constantFrom(EXPLODING, GETTERS) },
);
const realize = (v: unknown): unknown => (v === EXPLODING ? exploding() : v === GETTERS ? throwingGetters() : v);

// ---------------------------------------------------------------------------------------------------------------
// Predicates: what the docs allow. Each must be total (hostile values included).

type Pred = (v: unknown) => boolean;

function safe(p: Pred): Pred {
  return (v) => {
    try {
      return p(v);
    } catch {
      return false;
    }
  };
}
const num =
  (min: number, o: { exclusive?: boolean; max?: number; integer?: boolean; infinity?: boolean } = {}): Pred =>
  (v) => {
    if (typeof v !== 'number' || Number.isNaN(v)) return false;
    if (v === Number.POSITIVE_INFINITY) return o.infinity === true;
    if (!Number.isFinite(v)) return false;
    if (o.exclusive ? !(v > min) : !(v >= min)) return false;
    if (o.max !== undefined && v > o.max) return false;
    return !o.integer || Number.isInteger(v);
  };
const int = (min: number, o: { max?: number; infinity?: boolean } = {}): Pred => num(min, { ...o, integer: true });
const str: Pred = (v) => typeof v === 'string' && v.length > 0;
const fn: Pred = (v) => typeof v === 'function';
const bool: Pred = (v) => typeof v === 'boolean';
const oneOf =
  (...xs: readonly string[]): Pred =>
  (v) =>
    typeof v === 'string' && xs.includes(v);
const isClock: Pred = safe((v) => {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return (
    typeof c.now === 'function' &&
    typeof c.setTimeout === 'function' &&
    typeof c.clearTimeout === 'function' &&
    (c.setRef === undefined || typeof c.setRef === 'function')
  );
});
const BACKOFFS = new WeakSet<object>();
const isBackoff: Pred = (v) => typeof v === 'object' && v !== null && BACKOFFS.has(v);
const POLICIES = new WeakSet<object>();
const isPolicy: Pred = (v) => typeof v === 'object' && v !== null && POLICIES.has(v);
const ownKeysOnly = (v: unknown, allowed: readonly string[]): boolean =>
  Object.keys(v as object).every((k) => allowed.includes(k));

// ---------------------------------------------------------------------------------------------------------------
// Valid values

const backoffArb: fc.Arbitrary<object> = fc
  .constantFrom(
    () => constant(10),
    () => linear({ initialMs: 1, stepMs: 2, maxMs: 10 }),
    () => exponential({ jitter: 'none' }),
  )
  .map((make) => {
    const b = make();
    BACKOFFS.add(b);
    return b;
  });
const policyArb: fc.Arbitrary<object> = fc
  .constantFrom(
    () => retry({ maxAttempts: 1 }),
    () => timeout(1_000),
    () => bulkhead({ limit: 2 }),
  )
  .map((make) => {
    const p = make();
    POLICIES.add(p);
    return p;
  });
/** Per-origin policy functions made here (they return a policy); any other function is a caller's bug. */
const ORIGIN_FNS = new WeakSet<object>();
function policyOfOrigin(p: object): () => object {
  const f = () => p;
  ORIGIN_FNS.add(f);
  return f;
}
/**
 * Whether a request can run: a policy, or a function made here. Known gap (adapter code): a function returning
 * something else fails each request with a bare `TypeError: policy.execute is not a function`. See the report.
 */
const runnable = (p: unknown): boolean => isPolicy(p) || (typeof p === 'function' && ORIGIN_FNS.has(p));

const fnArb = fc.constant(() => false);
const clockArb = fc.constant(null).map(() => new FakeClock());
const nameArb = fc.constantFrom('a', 'payments', 'x y');

interface Opt {
  /** Values the docs allow (some of them). */
  valid: fc.Arbitrary<unknown>;
  /** Whether the docs allow `v`. */
  ok: Pred;
}
const opt = (valid: fc.Arbitrary<unknown>, ok: Pred): Opt => ({ valid, ok: safe(ok) });
const O = {
  name: opt(nameArb, str),
  clock: opt(clockArb, isClock),
  fn: opt(fnArb, fn),
  bool: opt(fc.boolean(), bool),
  backoffOrFn: opt(fc.oneof(backoffArb, fnArb), (v) => fn(v) || isBackoff(v)),
};

// ---------------------------------------------------------------------------------------------------------------
// Options objects: each option absent, valid or hostile; unknown keys; containers of every shape.

const UNKNOWN_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'then', 'limits'];

type Container = 'plain' | 'nullProto' | 'frozen' | 'instance';

interface Generated {
  readonly values: ReadonlyMap<string, unknown>;
  readonly unknown: readonly string[];
  /** An allowed key (present or not) read through a getter that throws: 'own' or 'inherited'. */
  readonly throwing: { key: string; where: 'own' | 'inherited' } | undefined;
  readonly container: Container;
}

function generated(spec: Readonly<Record<string, Opt>>, proxies = true): fc.Arbitrary<Generated> {
  const bad = proxies ? hostile : hostileNested;
  const keys = Object.keys(spec);
  const perKey = keys.map((k) => {
    const o = spec[k] as Opt;
    return fc.oneof(
      { weight: 3, arbitrary: fc.constant({ present: false as const }) },
      { weight: 3, arbitrary: o.valid.map((v) => ({ present: true as const, v })) },
      { weight: 2, arbitrary: bad.map((v) => ({ present: true as const, v })) },
    );
  });
  return fc
    .record({
      picks: fc.tuple(...perKey),
      unknown: fc.oneof(
        { weight: 5, arbitrary: fc.constant<string[]>([]) },
        { weight: 1, arbitrary: fc.subarray(UNKNOWN_KEYS, { minLength: 1, maxLength: 2 }) },
      ),
      throwing: fc.oneof(
        { weight: 8, arbitrary: fc.constant(undefined) },
        {
          weight: 1,
          arbitrary: fc.record({ key: fc.constantFrom(...keys), where: fc.constantFrom('own' as const, 'inherited') }),
        },
      ),
      container: fc.constantFrom<Container>('plain', 'plain', 'nullProto', 'frozen', 'instance'),
    })
    .map(({ picks, unknown, throwing, container }) => {
      const values = new Map<string, unknown>();
      picks.forEach((p, i) => {
        if (p.present) values.set(keys[i] as string, p.v);
      });
      if (throwing !== undefined) values.delete(throwing.key);
      return { values, unknown, throwing, container };
    });
}

class OptionsInstance {}

/** Builds the options object itself (fresh on each call: frozen and proxy values must not be shared). */
function build(g: Generated): Record<string, unknown> {
  let proto: object | null = Object.prototype;
  if (g.container === 'nullProto') proto = null;
  if (g.container === 'instance') proto = OptionsInstance.prototype;
  if (g.throwing?.where === 'inherited') {
    const key = g.throwing.key;
    proto = Object.create(proto, {
      [key]: {
        get() {
          throw new Error(`getter of ${key} threw`);
        },
      },
    });
  }
  const o = Object.create(proto) as Record<string, unknown>;
  for (const [k, v] of g.values) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true });
  for (const k of g.unknown) Object.defineProperty(o, k, { value: 1, enumerable: true, writable: true });
  if (g.throwing?.where === 'own') {
    const key = g.throwing.key;
    Object.defineProperty(o, key, {
      enumerable: true,
      get() {
        throw new Error(`getter of ${key} threw`);
      },
    });
  }
  if (g.container === 'frozen') Object.freeze(o);
  return o;
}

/** Swaps the stand-ins for fresh hostile objects, once per run (the oracle and the factory see the same ones). */
function realized(g: Generated): Generated {
  return { ...g, values: new Map([...g.values].map(([k, v]) => [k, realize(v)])) };
}

interface Verdict {
  /** Options that must be named. */
  readonly must: Set<string>;
  /** Options that may be named too (a cross-option rule judged only once the rest is valid). */
  readonly may: Set<string>;
}

/**
 * The option names the docs say are wrong in `g`. A getter that throws stops the checks of that object (the
 * validator cannot read the other options without risking more throws, and says so), so then only that key is
 * sure to be named; a cross-option rule is sure only when every option is valid on its own.
 */
function verdict(
  spec: Readonly<Record<string, Opt>>,
  g: Generated,
  required: readonly string[],
  cross?: (values: ReadonlyMap<string, unknown>) => string[],
): Verdict {
  const bad = new Set<string>(g.unknown);
  for (const [k, v] of g.values) if (v !== undefined && !(spec[k] as Opt).ok(v)) bad.add(k);
  // A required option given as undefined is missing (fallback's `value` may be undefined: it is the value).
  for (const k of required) if (g.values.get(k) === undefined && !(k === 'value' && g.values.has(k))) bad.add(k);
  let crossed: string[] = [];
  try {
    crossed = cross?.(g.values) ?? [];
  } catch {
    // A rule that cannot read its values (a proxy): the values are bad on their own.
  }
  if (g.throwing !== undefined) {
    bad.delete(g.throwing.key);
    const must = new Set([g.throwing.key, ...g.unknown]);
    return { must, may: new Set([...bad, ...crossed]) };
  }
  if (bad.size === 0) return { must: new Set(crossed), may: new Set() };
  return { must: bad, may: new Set(crossed) };
}

/** The root option of a problem: `window.size` -> `window`, `methods['x']` -> `methods`, `[2]` -> `[2]`. */
function rootOf(option: string): string {
  if (option.startsWith('[')) return option;
  const m = /^[^.[]*/.exec(option);
  return m?.[0] ?? option;
}

function expectInvalid(
  run: () => unknown,
  policyNames: string | readonly string[],
  bad: ReadonlySet<string>,
  mayAlso: ReadonlySet<string> = new Set(),
): void {
  const names = typeof policyNames === 'string' ? [policyNames] : policyNames;
  const policy = names[0] as string;
  let thrown: unknown;
  let returned: unknown;
  try {
    returned = run();
  } catch (e) {
    thrown = e;
  }
  if (thrown === undefined) {
    throw new Error(`${policy}: expected InvalidOptionsError naming ${[...bad].join(', ')}; built ${typeof returned}`);
  }
  if (!(thrown instanceof InvalidOptionsError)) {
    throw new Error(`${policy}: expected InvalidOptionsError naming ${[...bad].join(', ')}, got ${String(thrown)}`, {
      cause: thrown,
    });
  }
  expect(names).toContain(thrown.policy);
  expect(thrown.message.startsWith(`${thrown.policy}: invalid options`)).toBe(true);
  const roots = new Set(thrown.problems.map((p: OptionProblem) => rootOf(p.option)));
  for (const k of bad) {
    // Every problem is reported together, each by its name.
    expect(roots, `${policy}: ${k} not named in\n${thrown.message}`).toContain(k);
    expect(thrown.message).toContain(k);
  }
  for (const p of thrown.problems) {
    // Nothing valid is blamed, and each line says what was received and what is allowed.
    const root = rootOf(p.option);
    expect(bad.has(root) || mayAlso.has(root), `${policy}: ${p.option} blamed wrongly in\n${thrown.message}`).toBe(
      true,
    );
    expect(p.received.length).toBeGreaterThan(0);
    expect(p.expected.length).toBeGreaterThan(0);
    expect(thrown.message).toContain(`${p.option}: expected ${p.expected}, got ${p.received}`);
  }
}

/** Fails instead of hanging when a built policy never settles a trivial call. */
async function settles<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: a trivial call hung`)), 2_000);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

interface FactoryCase {
  readonly policy: string;
  readonly spec: Readonly<Record<string, Opt>>;
  readonly required?: readonly string[];
  /** Whether `undefined` (no options at all) is allowed. */
  readonly optional?: boolean;
  readonly cross?: (values: ReadonlyMap<string, unknown>) => string[];
  /** Options a cross rule may blame besides the bad ones. */
  readonly mayAlso?: readonly string[];
  readonly make: (options: unknown) => unknown;
  /** Runs a trivial operation through what `make` built. */
  readonly use: (built: unknown, options: Record<string, unknown>) => Promise<void>;
  /** The name errors carry, when it is not `policy` (see createFetch). */
  readonly names?: readonly string[];
  /** Adjusts the verdict for a known gap (see createFetch). */
  readonly adjust?: (v: Verdict, g: Generated) => Verdict;
  /** Whether option values may be proxies whose every read throws (false: a known gap, see the report). */
  readonly proxies?: boolean;
}

const TOP_LEVEL_HOSTILE: readonly (() => unknown)[] = [
  () => null,
  () => 5,
  () => 'options',
  () => [],
  () => () => ({}),
  () => 5n,
  () => Symbol('o'),
  () => true,
  exploding,
];

function checkFactory(c: FactoryCase): void {
  it(`${c.policy}: random options give a working policy or one InvalidOptionsError naming each bad option`, async () => {
    await fc.assert(
      fc.asyncProperty(generated(c.spec, c.proxies ?? true), async (g) => {
        const r = realized(g);
        const v = verdict(c.spec, r, c.required ?? [], c.cross);
        const { must, may } = c.adjust?.(v, r) ?? v;
        const options = build(r);
        if (must.size > 0) {
          expectInvalid(() => c.make(options), c.names ?? c.policy, must, new Set([...may, ...(c.mayAlso ?? [])]));
          return;
        }
        const built = c.make(options);
        await c.use(built, options);
      }),
      { numRuns: RUNS },
    );
  });

  it(`${c.policy}: options that are not an object are refused clearly`, async () => {
    for (const make of TOP_LEVEL_HOSTILE) {
      const v = make();
      // timeout(ms) takes a number: a bad number is blamed on `ms`.
      if (c.policy === 'timeout' && typeof v === 'number') continue;
      let thrown: unknown;
      try {
        c.make(v);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, `${c.policy}(${typeof v})`).toBeInstanceOf(InvalidOptionsError);
      expect((thrown as InvalidOptionsError).policy).toBe(c.policy);
    }
    if (c.optional) await c.use(c.make(undefined), {});
    else expect(() => c.make(undefined)).toThrow(InvalidOptionsError);
  });
}

async function runs(policy: unknown, what: string): Promise<void> {
  const p = policy as { execute(op: () => number): Promise<number> };
  const value = await settles(
    p
      .execute(() => 42)
      .catch((e: unknown) => {
        // A breaker restored open or isolated rejects: that is working as configured.
        if (isCircuitOpenError(e)) return 42;
        throw e;
      }),
    what,
  );
  expect(value).toBe(42);
}

// ---------------------------------------------------------------------------------------------------------------
// Core factories

const retrySpec = {
  name: O.name,
  maxAttempts: opt(
    fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constant(Number.POSITIVE_INFINITY)),
    int(1, { infinity: true }),
  ),
  backoff: O.backoffOrFn,
  handle: O.fn,
  circuitOpenMaxWaitMs: opt(fc.constantFrom(0, 5, Number.POSITIVE_INFINITY), num(0, { infinity: true })),
  maxRetryAfterMs: opt(fc.constantFrom(0, 5.5, Number.POSITIVE_INFINITY), num(0, { infinity: true })),
  onExhausted: opt(fc.constantFrom('rethrow', 'wrap'), oneOf('rethrow', 'wrap')),
  clock: O.clock,
  random: O.fn,
};

type Kind = 'consecutive' | 'count' | 'time';
const windowKinds = ['consecutive', 'count', 'time'] as const;
const WINDOW_KEYS: Record<Kind, readonly string[]> = {
  consecutive: ['kind', 'threshold'],
  count: ['kind', 'size'],
  time: ['kind', 'sizeMs', 'buckets'],
};
const MAX_COUNT_WINDOW = 1_000_000;
const windowField: Record<string, Pred> = {
  threshold: int(1),
  size: int(1, { max: MAX_COUNT_WINDOW }),
  sizeMs: num(1),
  buckets: int(1, { max: 1000 }),
};
const windowArb: fc.Arbitrary<unknown> = fc
  .record({
    kind: fc.constantFrom(...windowKinds),
    threshold: fc.option(fc.oneof(fc.integer({ min: 1, max: 4 }), hostile), { nil: undefined }),
    size: fc.option(fc.oneof(fc.integer({ min: 1, max: 30 }), hostile), { nil: undefined }),
    sizeMs: fc.option(fc.oneof(fc.constantFrom(1, 1_000, 60_000.5), hostile), { nil: undefined }),
    buckets: fc.option(fc.oneof(fc.integer({ min: 1, max: 20 }), hostile), { nil: undefined }),
  })
  .map((r) => {
    const w: Record<string, unknown> = { kind: r.kind };
    for (const k of WINDOW_KEYS[r.kind])
      if (k !== 'kind' && r[k as keyof typeof r] !== undefined) w[k] = r[k as keyof typeof r];
    return w;
  });
const windowOk: Pred = (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const w = v as Record<string, unknown>;
  const kind = w.kind as Kind;
  if (!windowKinds.includes(kind)) return false;
  if (!ownKeysOnly(w, WINDOW_KEYS[kind])) return false;
  return WINDOW_KEYS[kind].every((k) => k === 'kind' || w[k] === undefined || (windowField[k] as Pred)(w[k]));
};
/** The window kind the breaker will have, as far as the docs say (undefined: not a readable window). */
function kindOf(values: ReadonlyMap<string, unknown>): Kind | undefined {
  const w = values.get('window');
  if (w === undefined) return 'count';
  try {
    const k = (w as { kind?: unknown }).kind;
    return windowKinds.includes(k as Kind) ? (k as Kind) : undefined;
  } catch {
    return undefined;
  }
}

const snapshotArb: fc.Arbitrary<unknown> = fc
  .record({
    state: fc.oneof(fc.constantFrom('closed', 'open', 'half_open', 'isolated'), hostile),
    openRemainingMs: fc.oneof(fc.constantFrom(0, 5), hostile),
    consecutiveOpens: fc.oneof(fc.constantFrom(0, 2), hostile),
    lastBreakMs: fc.oneof(fc.constantFrom(0, 10), hostile),
    kind: fc.constantFrom(...windowKinds),
    failures: fc.oneof(fc.constantFrom(0, 3), hostile),
    outcomes: fc.oneof(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 5 }), hostile),
    buckets: fc.oneof(
      fc.array(
        fc.record({
          ageMs: fc.constantFrom(0, 100),
          calls: fc.constantFrom(0, 4),
          failures: fc.constantFrom(0, 2),
          slow: fc.constantFrom(0, 1),
        }),
        { maxLength: 3 },
      ),
      hostile,
    ),
  })
  .map((r) => {
    const window =
      r.kind === 'consecutive'
        ? { kind: r.kind, failures: r.failures }
        : r.kind === 'count'
          ? { kind: r.kind, outcomes: r.outcomes }
          : { kind: r.kind, buckets: r.buckets };
    return {
      version: 1,
      state: r.state,
      openRemainingMs: r.openRemainingMs,
      consecutiveOpens: r.consecutiveOpens,
      lastBreakMs: r.lastBreakMs,
      window,
    };
  });
function snapshotOk(s: unknown, kind: Kind | undefined): boolean {
  if (typeof s !== 'object' || s === null) return false;
  const r = s as Record<string, unknown>;
  if (r.version !== 1) return false;
  if (!oneOf('closed', 'open', 'half_open', 'isolated')(r.state)) return false;
  if (!num(0)(r.openRemainingMs) || !int(0)(r.consecutiveOpens) || !num(0)(r.lastBreakMs)) return false;
  const w = r.window as Record<string, unknown>;
  if (typeof w !== 'object' || w === null || w.kind !== (kind ?? 'count')) return false;
  if (w.kind === 'consecutive') return int(0)(w.failures);
  if (w.kind === 'count')
    return Array.isArray(w.outcomes) && w.outcomes.every((x) => [0, 1, 2, 3].includes(x as number));
  const b = w.buckets;
  return (
    Array.isArray(b) &&
    b.every((x) => {
      if (typeof x !== 'object' || x === null) return false;
      const e = x as Record<string, number>;
      return (
        ['ageMs', 'calls', 'failures', 'slow'].every((f) => num(0)(e[f])) &&
        (e.failures as number) <= (e.calls as number) &&
        (e.slow as number) <= (e.calls as number)
      );
    })
  );
}

const breakerSpec = {
  name: O.name,
  window: opt(windowArb, windowOk),
  failureRate: opt(fc.constantFrom(0.5, 1, 1e-9), num(0, { exclusive: true, max: 1 })),
  minimumCalls: opt(fc.integer({ min: 1, max: 40 }), int(1)),
  slowCallMs: opt(fc.constantFrom(1, 2_000.5), num(0, { exclusive: true })),
  slowCallRate: opt(fc.constantFrom(0.5, 1), num(0, { exclusive: true, max: 1 })),
  halfOpenAfterMs: opt(fc.oneof(fc.constantFrom(0, 10_000), backoffArb), (v) => isBackoff(v) || num(0)(v)),
  halfOpenProbes: opt(fc.integer({ min: 1, max: 3 }), int(1)),
  halfOpenSuccesses: opt(fc.integer({ min: 1, max: 3 }), int(1)),
  halfOpenLeaseMs: opt(fc.constantFrom(1, 0.5, 5_000), num(0, { exclusive: true })),
  handle: O.fn,
  // Judged against the window in `breakerCross`: here only "an object with version 1".
  initialState: opt(
    snapshotArb,
    (v) => typeof v === 'object' && v !== null && (v as { version?: unknown }).version === 1,
  ),
  clock: O.clock,
  random: O.fn,
};
const RATE_ONLY = ['failureRate', 'minimumCalls', 'slowCallMs', 'slowCallRate'] as const;
function breakerCross(values: ReadonlyMap<string, unknown>): string[] {
  const kind = kindOf(values);
  const out: string[] = [];
  if (kind === 'consecutive') {
    for (const k of RATE_ONLY) if (values.get(k) !== undefined) out.push(k);
  } else {
    if (values.get('slowCallRate') !== undefined && values.get('slowCallMs') === undefined) out.push('slowCallRate');
    let size: unknown = 100;
    try {
      size = (values.get('window') as { size?: unknown } | undefined)?.size ?? 100;
    } catch {
      size = undefined;
    }
    const min = values.get('minimumCalls');
    if (kind === 'count' && typeof size === 'number' && typeof min === 'number' && min > size) out.push('minimumCalls');
  }
  const s = values.get('initialState');
  if (s !== undefined && !safe((v) => snapshotOk(v, kind))(s)) out.push('initialState');
  return out;
}

const bulkheadSpec = {
  limit: opt(fc.integer({ min: 1, max: 8 }), int(1)),
  queue: opt(
    fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(Number.POSITIVE_INFINITY)),
    int(0, { infinity: true }),
  ),
  queueTimeoutMs: opt(fc.constantFrom(1, 0.5, 1_000), num(0, { exclusive: true })),
  name: O.name,
  clock: O.clock,
};

const timeoutSpec = {
  ms: opt(fc.constantFrom(1, 0.5, 2_000, 2 ** 40), num(0, { exclusive: true })),
  name: O.name,
  clock: O.clock,
};

const fallbackSpec = {
  value: opt(fc.constantFrom(0, 'cached', null, undefined), () => true),
  handle: O.fn,
  name: O.name,
  clock: O.clock,
};

const keyedSpec = {
  keyOf: opt(
    fc.constant(() => 'k'),
    fn,
  ),
  factory: opt(policyArb.map(policyOfOrigin), fn),
  maxKeys: opt(fc.integer({ min: 1, max: 5 }), int(1)),
  onEvict: O.fn,
  name: O.name,
  clock: O.clock,
};

const linearSpec = {
  initialMs: opt(fc.constantFrom(0, 1, 100.5, 20_000), num(0)),
  stepMs: opt(fc.constantFrom(0, 1, 50), num(0)),
  maxMs: opt(fc.constantFrom(0, 1, 10_000, 1e6), num(0)),
};
const exponentialSpec = {
  initialMs: opt(fc.constantFrom(0.5, 1, 100, 20_000), num(0, { exclusive: true })),
  maxMs: opt(fc.constantFrom(0, 1, 10_000, 1e6), num(0)),
  factor: opt(fc.constantFrom(1, 1.5, 2, 1e6), num(1)),
  jitter: opt(fc.constantFrom('none', 'full', 'equal', 'decorrelated'), oneOf('none', 'full', 'equal', 'decorrelated')),
};
function capCross(values: ReadonlyMap<string, unknown>): string[] {
  const initial = (values.get('initialMs') as number | undefined) ?? 100;
  const max = (values.get('maxMs') as number | undefined) ?? 10_000;
  return max < initial ? ['maxMs'] : [];
}
async function backoffWorks(b: unknown): Promise<void> {
  const backoff = b as { delay(attempt: number, previousMs: number, random: () => number): number };
  for (let attempt = 1; attempt <= 70; attempt += 7) {
    const d = backoff.delay(attempt, 50, () => 0.5);
    expect(Number.isFinite(d) && d >= 0, `delay(${attempt}) = ${d}`).toBe(true);
  }
}

describe('option fuzzing: core factories', () => {
  checkFactory({
    policy: 'retry',
    spec: retrySpec,
    optional: true,
    make: (o) => retry(o as never),
    use: (p) => runs(p, 'retry'),
  });
  checkFactory({
    policy: 'circuitBreaker',
    spec: breakerSpec,
    optional: true,
    cross: breakerCross,
    mayAlso: ['initialState'],
    make: (o) => circuitBreaker(o as never),
    use: (p) => runs(p, 'circuitBreaker'),
  });
  checkFactory({
    policy: 'bulkhead',
    spec: bulkheadSpec,
    required: ['limit'],
    make: (o) => bulkhead(o as never),
    use: (p) => runs(p, 'bulkhead'),
  });
  checkFactory({
    policy: 'timeout',
    spec: timeoutSpec,
    required: ['ms'],
    make: (o) => timeout(o as never),
    use: (p) => runs(p, 'timeout'),
  });
  checkFactory({
    policy: 'fallback',
    spec: fallbackSpec,
    required: ['value'],
    make: (o) => fallback(o as never),
    use: (p) => runs(p, 'fallback'),
  });
  checkFactory({
    policy: 'linear',
    spec: linearSpec,
    optional: true,
    cross: capCross,
    make: (o) => linear(o as never),
    use: backoffWorks,
  });
  checkFactory({
    policy: 'exponential',
    spec: exponentialSpec,
    optional: true,
    cross: capCross,
    make: (o) => exponential(o as never),
    use: backoffWorks,
  });

  it('keyed: random arguments give a working policy or one InvalidOptionsError naming each', async () => {
    const spec = keyedSpec;
    await fc.assert(
      fc.asyncProperty(generated(spec), async (generatedArgs) => {
        const g = realized(generatedArgs);
        // keyOf and factory are positional; the rest is the options object.
        const values = new Map(g.values);
        const keyOf = values.get('keyOf');
        const factory = values.get('factory');
        values.delete('keyOf');
        values.delete('factory');
        const throwing =
          g.throwing && g.throwing.key !== 'keyOf' && g.throwing.key !== 'factory' ? g.throwing : undefined;
        const rest: Generated = { ...g, values, throwing };
        const { must, may } = verdict(spec, rest, []);
        // Positional arguments are checked before the options object is read.
        if (!fn(keyOf)) must.add('keyOf');
        if (!fn(factory)) must.add('factory');
        const make = () => keyed(keyOf as never, factory as never, build(rest) as never);
        if (must.size > 0) expectInvalid(make, 'keyed', must, may);
        else if (runnable(factory)) await runs(make(), 'keyed');
        // A factory that returns no policy can only be found out per key: the call says so clearly.
        else await expect(make().execute(() => 42)).rejects.toThrow(/factory returned .* not a policy/);
      }),
      { numRuns: RUNS },
    );
  });

  it('pipeline: anything but a policy is refused, each position named', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(policyArb, hostile), { maxLength: 4 }), async (generatedArgs) => {
        const args = generatedArgs.map(realize);
        const bad = new Set<string>();
        args.forEach((a, i) => {
          if (!isPolicy(a)) bad.add(`[${i}]`);
        });
        const make = () => pipeline(...(args as never[]));
        if (bad.size > 0) expectInvalid(make, 'pipeline', bad);
        else await runs(make(), 'pipeline');
      }),
      { numRuns: RUNS },
    );
  });

  it('bulkhead.limit = x: an integer >= 1 takes effect, anything else is refused and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.integer({ min: 1, max: 9 }), hostile), async (generatedValue) => {
        const v = realize(generatedValue);
        const b = bulkhead({ limit: 3 });
        if (int(1)(v)) {
          b.limit = v as number;
          expect(b.limit).toBe(v);
        } else {
          expectInvalid(
            () => {
              b.limit = v as number;
            },
            'bulkhead',
            new Set(['limit']),
          );
          expect(b.limit).toBe(3);
        }
        await runs(b, 'bulkhead');
      }),
      { numRuns: RUNS },
    );
  });

  it('constant: a finite number >= 0, or InvalidOptionsError naming delayMs', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constantFrom(0, 1, 2.5, 1e9), hostile), async (generatedValue) => {
        const v = realize(generatedValue);
        if (num(0)(v)) {
          const b = constant(v as number);
          await backoffWorks(b);
          expect(b.delay(3, 0, () => 0.5)).toBe(v);
        } else expectInvalid(() => constant(v as number), 'constant', new Set(['delayMs']));
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Adapters and metrics (these files are being changed by other work on issue 11: option names follow them)

let server: Server;
let origin: string;
beforeAll(async () => {
  server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const arrayOf =
  (p: Pred): Pred =>
  (v) =>
    Array.isArray(v) && v.every(p);
const httpSpec = {
  policy: opt(fc.oneof(policyArb, policyArb.map(policyOfOrigin)), (v) => fn(v) || isPolicy(v)),
  maxOrigins: opt(fc.integer({ min: 1, max: 5 }), int(1)),
  methods: opt(
    fc.constantFrom(['GET'], ['GET', 'PUT'], []),
    arrayOf((m) => typeof m === 'string'),
  ),
  generateIdempotencyKeys: O.bool,
  failureStatuses: opt(fc.constantFrom([503], [500, 599], []), arrayOf(int(100, { max: 599 }))),
  failureCodes: opt(
    fc.constantFrom(['ECONNRESET'], []),
    arrayOf((c) => typeof c === 'string'),
  ),
  wallClock: opt(
    fc.constant(() => 0),
    fn,
  ),
};

const grpcSpec = {
  methods: opt(
    fc.oneof(
      fc.constant(() => undefined),
      policyArb.map((p) => ({ '/a.B/C': p })),
      policyArb.map((p) => ({ '/a.B/C': { policy: p, idempotent: true } })),
    ),
    (v) => {
      if (typeof v === 'function') return true;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      return Object.values(v).every((e) => {
        if (isPolicy(e)) return true;
        const c = e as { policy?: unknown; idempotent?: unknown } | null;
        return (
          typeof c === 'object' &&
          c !== null &&
          isPolicy(c.policy) &&
          (c.idempotent === undefined || bool(c.idempotent))
        );
      });
    },
  ),
  failureCodes: opt(fc.constantFrom([14], [1, 16], []), arrayOf(int(1, { max: 16 }))),
  clock: O.clock,
  wallClock: O.fn,
};

const wrapSpec = {
  policy: opt(policyArb, (v) => safe((x) => typeof (x as { execute?: unknown }).execute === 'function')(v)),
  maxDeliveries: opt(
    fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constant(Number.POSITIVE_INFINITY)),
    int(1, { infinity: true }),
  ),
  redeliveryDelay: O.backoffOrFn,
  isPermanent: O.fn,
  handlerTimeoutMs: opt(fc.constantFrom(1, 1_000.5), num(0, { exclusive: true })),
  workingEveryMs: opt(fc.constantFrom(1, 1_000.5), num(0, { exclusive: true })),
  onPause: O.fn,
  onResume: O.fn,
  clock: O.clock,
  random: O.fn,
};

const jsClient = { publish: async () => ({}) };
const deliverySpec = {
  deadLetterSubject: opt(fc.constantFrom('dead', 'orders.dead'), str),
  js: opt(
    fc.constant(jsClient),
    safe((v) => typeof (v as { publish?: unknown }).publish === 'function'),
  ),
  releaseDelayMs: opt(fc.constantFrom(0, 1_000.5), num(0)),
};
const deliveryCross = (values: ReadonlyMap<string, unknown>): string[] =>
  values.get('deadLetterSubject') !== undefined && values.get('js') === undefined ? ['js'] : [];
const consumeSpec = {
  ...deliverySpec,
  maxMessages: opt(fc.integer({ min: 1, max: 5 }), int(1)),
  onError: O.fn,
  pausePollMs: opt(fc.constantFrom(1, 0.5), num(0, { exclusive: true })),
  clock: O.clock,
};

const bucketsOk: Pred = (v) =>
  Array.isArray(v) &&
  v.length > 0 &&
  v.every((x, i) => typeof x === 'number' && Number.isFinite(x) && x > 0 && (i === 0 || x > (v[i - 1] as number)));
const promSpec = {
  registry: opt(
    fc.constant(null).map(() => new Registry()),
    (v) => v instanceof Registry,
  ),
  prefix: opt(
    fc.constantFrom('bulwark', 'app_x', 'a:b'),
    (v) => typeof v === 'string' && /^[a-zA-Z_:][a-zA-Z0-9_:]{0,62}$/.test(v),
  ),
  errorType: O.fn,
  durationBuckets: opt(fc.constantFrom([0.1, 1], [5]), bucketsOk),
  maxSeries: opt(
    fc.oneof(fc.integer({ min: 1, max: 10 }), fc.constant(Number.POSITIVE_INFINITY)),
    int(1, { infinity: true }),
  ),
};
const otelSpec = {
  meterProvider: opt(
    fc.constant(null).map(() => new MeterProvider()),
    safe((v) => typeof (v as { getMeter?: unknown }).getMeter === 'function'),
  ),
  meter: opt(
    fc.constant(null).map(() => new MeterProvider().getMeter('t')),
    safe((v) => typeof (v as { createCounter?: unknown }).createCounter === 'function'),
  ),
  prefix: opt(
    fc.constantFrom('bulwark', 'payments.bulwark', 'a-b'),
    (v) => typeof v === 'string' && /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/.test(v),
  ),
  errorType: O.fn,
  durationBuckets: opt(fc.constantFrom([0.1, 1], [5]), bucketsOk),
};

async function metricsWork(m: unknown): Promise<void> {
  const metrics = m as { attach(...p: unknown[]): () => void; close(): void };
  const p = retry({ maxAttempts: 1 });
  const off = metrics.attach(p);
  await runs(p, 'metrics');
  off();
  metrics.close();
}

describe('option fuzzing: adapters and metrics', () => {
  checkFactory({
    policy: 'undici interceptor',
    // Known gap (adapter code, owned by other work): a value whose reads throw escapes raw. See the report.
    proxies: false,
    spec: httpSpec,
    required: ['policy'],
    make: (o) => interceptor(o as never),
    use: async (icpt, options) => {
      if (!runnable(options.policy)) return expect(typeof icpt).toBe('function');
      const agent = new Agent().compose(icpt as never);
      try {
        const res = await settles(agent.request({ origin, path: '/', method: 'GET' }), 'interceptor');
        expect(await res.body.text()).toBe('ok');
      } finally {
        await agent.close();
      }
    },
  });
  checkFactory({
    policy: 'createFetch',
    // Known gap (adapter code, owned by other work): a value whose reads throw escapes raw. See the report.
    proxies: false,
    spec: {
      ...httpSpec,
      dispatcher: opt(
        fc.constant(null).map(() => new Agent()),
        (v) => v instanceof Agent,
      ),
    },
    required: ['policy'],
    // createFetch checks its own option first and passes the rest to interceptor(), whose name is on those.
    make: (o) => createFetch(o as never),
    use: async (f, options) => {
      if (!runnable(options.policy)) return expect(typeof f).toBe('function');
      const bf = f as ((url: string) => Promise<Response>) & { close(): Promise<void> };
      try {
        const res = await settles(bf(origin), 'createFetch');
        expect(await res.text()).toBe('ok');
      } finally {
        await bf.close();
      }
    },
  });
  checkFactory({
    policy: 'grpcInterceptor',
    // Known gap (adapter code, owned by other work): a value whose reads throw escapes raw. See the report.
    proxies: false,
    spec: grpcSpec,
    required: ['methods'],
    make: (o) => grpcInterceptor(o as never),
    use: async (i) => expect(typeof i).toBe('function'),
  });
  checkFactory({
    policy: 'jetstreamDelivery',
    // Known gap (adapter code, owned by other work): a value whose reads throw escapes raw. See the report.
    proxies: false,
    spec: deliverySpec,
    optional: true,
    cross: deliveryCross,
    make: (o) => jetstreamDelivery(fakeJsMsg() as never, o as never),
    use: async (d) => expect((d as { attempt: number }).attempt).toBe(1),
  });
  checkFactory({
    policy: 'prometheusMetrics',
    spec: promSpec,
    required: ['registry'],
    make: (o) => prometheusMetrics(o as never),
    use: metricsWork,
  });
  checkFactory({
    policy: 'openTelemetryMetrics',
    spec: otelSpec,
    optional: true,
    cross: (values) =>
      values.get('meter') !== undefined && values.get('meterProvider') !== undefined ? ['meter'] : [],
    make: (o) => openTelemetryMetrics(o as never),
    use: metricsWork,
  });

  it('wrapHandler: random options give a working handler or one InvalidOptionsError naming each', async () => {
    await fc.assert(
      fc.asyncProperty(
        generated(wrapSpec, false),
        fc.oneof(fnArb, hostileNested),
        async (generatedOptions, generatedHandler) => {
          const g = realized(generatedOptions);
          const handler = realize(generatedHandler);
          const { must, may } = verdict(wrapSpec, g, []);
          if (!fn(handler)) must.add('handler');
          const make = () => wrapHandler(handler as never, build(g) as never);
          if (must.size > 0) return expectInvalid(make, 'wrapHandler', must, may);
          const wrapped = make() as unknown as (d: unknown) => Promise<unknown>;
          let acked = 0;
          const delivery = {
            body: 'm',
            attempt: 1,
            headers: {},
            ack: () => {
              acked++;
            },
            retryLater: () => undefined,
            deadLetter: () => undefined,
            release: () => undefined,
          };
          await settles(wrapped(delivery), 'wrapHandler');
          expect(acked).toBe(1);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('consumeJetStream: random options give a running loop or one InvalidOptionsError naming each', async () => {
    await fc.assert(
      fc.asyncProperty(generated(consumeSpec, false), async (generatedOptions) => {
        const g = realized(generatedOptions);
        const { must, may } = verdict(consumeSpec, g, [], deliveryCross);
        const consumer = fakeConsumer();
        const handler = wrapHandler(async () => undefined);
        const make = () => consumeJetStream(consumer as never, handler, build(g) as never);
        if (must.size > 0) return expectInvalid(make, 'consumeJetStream', must, may);
        const loop = make();
        await settles(loop.stop(), 'consumeJetStream.stop');
      }),
      { numRuns: RUNS },
    );
  });
});

function fakeJsMsg(): object {
  return {
    data: new Uint8Array(),
    headers: undefined,
    subject: 's',
    info: { deliveryCount: 1 },
    redelivered: false,
    ack: () => undefined,
    ackAck: async () => true,
    nak: () => undefined,
    term: () => undefined,
    working: () => undefined,
  };
}

/** A pull consumer whose message iterator yields nothing until stopped. */
function fakeConsumer(): object {
  return {
    consume: async () => {
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        stop = resolve;
      });
      return {
        stop: () => stop(),
        [Symbol.asyncIterator]: () => ({
          // Nothing ever arrives: the first next() resolves as done once the loop stops the messages.
          next: async (): Promise<IteratorResult<never>> => {
            await stopped;
            return { done: true, value: undefined };
          },
        }),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Regressions: the cases the fuzzer found, kept as plain tests.

function invalid(run: () => unknown): InvalidOptionsError {
  try {
    run();
  } catch (e) {
    if (e instanceof InvalidOptionsError) return e;
    throw new Error(`expected InvalidOptionsError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected InvalidOptionsError, got a policy');
}

describe('option fuzzing: regressions', () => {
  it('a getter that throws, own or inherited, is reported as that option (not rethrown)', () => {
    const own = {
      queue: 2,
      get limit(): number {
        throw new Error('no limit here');
      },
    };
    const e = invalid(() => bulkhead(own));
    expect(e.problems).toEqual([
      { option: 'limit', received: 'a getter that threw "no limit here"', expected: expect.stringContaining('getter') },
    ]);
    const inherited = Object.create({
      get ms(): number {
        throw new Error('x');
      },
    }) as { ms: number };
    expect(invalid(() => timeout(inherited)).problems.map((p) => p.option)).toEqual(['ms']);
    const unknownGetter = {
      get retries(): number {
        throw new Error('x');
      },
    };
    expect(invalid(() => retry(unknownGetter as never)).problems).toEqual([
      expect.objectContaining({ option: 'retries', received: 'a getter that threw "x"' }),
    ]);
  });

  it('options whose keys cannot be listed (a proxy) are refused clearly', () => {
    const e = invalid(() => circuitBreaker(exploding() as never));
    expect(e.problems.map((p) => p.option)).toEqual(['options']);
    expect(e.message).toContain('listing them threw');
  });

  it('a clock whose getters throw is "not a clock", not a crash', () => {
    const clock = {
      get now(): () => number {
        throw new Error('x');
      },
    };
    expect(invalid(() => retry({ clock } as never)).problems.map((p) => p.option)).toEqual(['clock']);
  });

  it('-0 is printed as -0', () => {
    expect(invalid(() => timeout(-0)).message).toContain('got -0');
  });

  it('linear(null) and exponential(null) throw InvalidOptionsError, not a TypeError', () => {
    expect(invalid(() => linear(null as never)).message).toBe(
      'linear: invalid options\n  - options: expected an object, got null',
    );
    expect(invalid(() => exponential(null as never)).policy).toBe('exponential');
    const getter = {
      get initialMs(): number {
        throw new Error('x');
      },
    };
    expect(invalid(() => exponential(getter)).problems.map((p) => p.option)).toEqual(['initialMs']);
  });

  it('circuitBreaker: a count window beyond 1_000_000 calls is refused (it threw a RangeError or took GBs)', () => {
    expect(invalid(() => circuitBreaker({ window: { kind: 'count', size: 2 ** 40 } })).problems).toEqual([
      {
        option: 'window.size',
        received: '1099511627776',
        expected: 'an integer <= 1000000 (one byte per call, allocated up front)',
      },
    ]);
    expect(() => circuitBreaker({ window: { kind: 'count', size: 1_000_000 } })).not.toThrow();
  });

  it('circuitBreaker: a time window under 1 ms is refused (its buckets had length 0 and it never opened)', () => {
    expect(invalid(() => circuitBreaker({ window: { kind: 'time', sizeMs: 5e-324 } })).problems).toEqual([
      { option: 'window.sizeMs', received: '5e-324', expected: 'a number >= 1' },
    ]);
  });

  it('circuitBreaker: minimumCalls is not blamed for an invalid window.size', () => {
    const e = invalid(() => circuitBreaker({ window: { kind: 'count', size: -1 }, minimumCalls: 5 }));
    expect(e.problems.map((p) => p.option)).toEqual(['window.size']);
  });

  it('circuitBreaker: a window or initialState whose reads throw is reported as that option', () => {
    const window = {
      get kind(): 'count' {
        throw new Error('x');
      },
    };
    expect(invalid(() => circuitBreaker({ window, failureRate: 2 })).problems.map((p) => p.option)).toEqual([
      'window',
      'failureRate',
    ]);
    const e = invalid(() => circuitBreaker({ initialState: exploding() as never }));
    expect(e.problems.map((p) => p.option)).toEqual(['initialState']);
  });

  it('prometheusMetrics: a symbol prefix or a registry whose reads throw give InvalidOptionsError', () => {
    const e = invalid(() => prometheusMetrics({ registry: new Registry(), prefix: Symbol('p') as never }));
    expect(e.problems.map((p) => p.option)).toEqual(['prefix']);
    expect(e.message).toContain('got Symbol(p)');
    const r = invalid(() => prometheusMetrics({ registry: exploding() as never }));
    expect(r.problems.map((p) => p.option)).toEqual(['registry']);
  });

  it('openTelemetryMetrics: a meterProvider or meter whose reads throw is "not one", not a crash', () => {
    const e = invalid(() => openTelemetryMetrics({ meterProvider: exploding() as never, meter: exploding() as never }));
    expect(e.problems.map((p) => p.option)).toEqual(['meterProvider', 'meter', 'meter']);
  });

  it('timeout: a limit given as a string or a bigint is blamed on ms, saying a number is expected', () => {
    expect(invalid(() => timeout('2000' as never)).message).toBe(
      'timeout: invalid options\n  - ms: expected a number > 0 (the limit in ms), or { ms, name?, clock? }, got "2000"',
    );
    expect(invalid(() => timeout(2000n as never)).problems.map((p) => p.option)).toEqual(['ms']);
  });
});
