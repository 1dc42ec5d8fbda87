/**
 * Option fuzzing (issue 11): every public factory, given a random options object (NaN, Infinity, -0, huge,
 * non-integers, wrong types, `__proto__`/`constructor`/`toString` keys, throwing getters, `Object.create(null)`,
 * frozen objects, unknown keys), either builds a policy that runs a trivial operation, or throws ONE
 * `InvalidOptionsError` naming the factory and every bad option, and nothing else. The oracle below is written
 * from the docs (docs/policies/*.md, the adapters' pages), not from the validators.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { connect as amqpConnect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import fc from 'fast-check';
import { type JetStreamManager, type NatsConnection, connect as natsConnect } from 'nats';
import { Registry } from 'prom-client';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdaptiveLimitPolicy,
  adaptiveLimit,
  adaptiveThrottle,
  bulkhead,
  type ChaosPolicy,
  circuitBreaker,
  constant,
  exponential,
  fallback,
  handleAllErrors,
  handleErrors,
  handleOutcomes,
  handleResults,
  hedge,
  InvalidOptionsError,
  injectBehavior,
  injectFault,
  injectLatency,
  injectOutcome,
  isCircuitOpenError,
  keyed,
  linear,
  type OptionProblem,
  pipeline,
  rateLimit,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import {
  consumeJetStream,
  consumeRabbit,
  declareJetStreamTopology,
  declareRabbitTopology,
  jetstreamDelivery,
  type RabbitConsumer,
  wrapHandler,
} from '../../src/integrations/messaging/index.js';
import { createFetch, interceptor } from '../../src/integrations/undici/index.js';
import { openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';
import { captureWarnings } from '../helpers/warnings.js';
import { RABBIT_URL } from '../integrations/messaging/rabbit-harness.js';

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
/** Retry budgets made here: what `budget` takes (a plain object, or a policy, is not one). */
const BUDGETS = new WeakSet<object>();
const isBudget: Pred = (v) => typeof v === 'object' && v !== null && BUDGETS.has(v);
const budgetArb: fc.Arbitrary<object> = fc
  .constantFrom(
    () => retryBudget(),
    () => retryBudget({ ratio: 1, minConcurrency: 0 }),
    () => retryTokenBudget({ maxTokens: 4 }),
  )
  .map((make) => {
    const b = make();
    BUDGETS.add(b);
    return b;
  });
/** Per-origin policy functions made here (they return a policy); any other function is a caller's bug. */
const ORIGIN_FNS = new WeakSet<object>();
function policyOfOrigin(p: object): () => object {
  const f = () => p;
  ORIGIN_FNS.add(f);
  return f;
}
/**
 * Whether a request can run: a policy, or a function made here. A function returning something else is valid at
 * creation (it cannot be called then) and fails each request with a TypeError saying what it returned.
 */
const runnable = (p: unknown): boolean => isPolicy(p) || (typeof p === 'function' && ORIGIN_FNS.has(p));

const fnArb = fc.constant(() => false);
/** Outcome classifiers made by the documented helpers: what `handle` takes besides an error predicate. */
const CLASSIFIERS = new WeakSet<object>();
const classifierArb: fc.Arbitrary<object> = fc
  .constantFrom(
    () => handleOutcomes((o) => !o.ok),
    () => handleResults(() => false),
    () => handleErrors(() => true),
    () => handleAllErrors,
  )
  .map((make) => {
    const c = make();
    CLASSIFIERS.add(c);
    return c;
  });
/** Objects that look like classifiers but were not made by a helper (a brand of the wrong type, a copy). */
const fakeClassifierArb: fc.Arbitrary<unknown> = fc
  .constantFrom(
    () => ({ errorsOnly: true }),
    () => ({ [Symbol.for('bulwark.outcomeClassifier.v1')]: true, errorsOnly: true }),
    () => ({ [Symbol.for('bulwark.outcomeClassifier.v1')]: () => true }),
    () => ({ ...handleErrors(() => true) }), // a spread copy keeps the symbol: it is one (see `handleOk`)
    () => ({ handle: () => true }),
  )
  .map((make) => make());
/** `handle`: an error predicate, or a classifier (a helper's, or an object with its brand and shape: the docs say copies of bulwark recognise each other's, through a registry symbol). */
const handleOk: Pred = (v) => {
  if (fn(v) || (typeof v === 'object' && v !== null && CLASSIFIERS.has(v))) return true;
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string | symbol, unknown>;
  return typeof c[Symbol.for('bulwark.outcomeClassifier.v1')] === 'function' && typeof c.errorsOnly === 'boolean';
};
const clockArb = fc.constant(null).map(() => new FakeClock());
const nameArb = fc.constantFrom('a', 'payments', 'x y');

interface Opt {
  /** Values the docs allow (some of them). */
  valid: fc.Arbitrary<unknown>;
  /** Whether the docs allow `v`. */
  ok: Pred;
  /** Near misses of this option (besides the hostile values every option gets), judged by `ok` too. */
  near?: fc.Arbitrary<unknown>;
}
const opt = (valid: fc.Arbitrary<unknown>, ok: Pred, near?: fc.Arbitrary<unknown>): Opt => ({
  valid,
  ok: safe(ok),
  ...(near === undefined ? {} : { near }),
});
const O = {
  name: opt(nameArb, str),
  clock: opt(clockArb, isClock),
  fn: opt(fnArb, fn),
  bool: opt(fc.boolean(), bool),
  handle: opt(fc.oneof(fnArb, classifierArb), handleOk, fakeClassifierArb),
  backoffOrFn: opt(fc.oneof(backoffArb, fnArb), (v) => fn(v) || isBackoff(v)),
  budget: opt(budgetArb, isBudget, fc.oneof(policyArb, fc.constantFrom({ ratio: 0.2 }, { _acquire: () => true }))),
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

function generated(spec: Readonly<Record<string, Opt>>): fc.Arbitrary<Generated> {
  const bad = hostile;
  const keys = Object.keys(spec);
  const perKey = keys.map((k) => {
    const o = spec[k] as Opt;
    return fc.oneof(
      { weight: 3, arbitrary: fc.constant({ present: false as const }) },
      { weight: 3, arbitrary: o.valid.map((v) => ({ present: true as const, v })) },
      {
        weight: 2,
        arbitrary: (o.near === undefined ? bad : fc.oneof(bad, o.near)).map((v) => ({ present: true as const, v })),
      },
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

/**
 * Options valid on their own (the required ones present, each other one absent or valid), in any container: for
 * factories with several required options, where {@link generated} rarely yields a valid whole. Cross rules may
 * still make them invalid.
 */
function mostlyValid(spec: Readonly<Record<string, Opt>>, required: readonly string[]): fc.Arbitrary<Generated> {
  const keys = Object.keys(spec);
  const perKey = keys.map((k) => {
    const valid = (spec[k] as Opt).valid.map((v) => ({ present: true as const, v }));
    return required.includes(k) ? valid : fc.oneof(fc.constant({ present: false as const }), valid);
  });
  return fc
    .record({
      picks: fc.tuple(...perKey),
      container: fc.constantFrom<Container>('plain', 'nullProto', 'frozen', 'instance'),
    })
    .map(({ picks, container }) => {
      const values = new Map<string, unknown>();
      picks.forEach((p, i) => {
        if (p.present) values.set(keys[i] as string, p.v);
      });
      return { values, unknown: [], throwing: undefined, container };
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

const MAY_BE_UNDEFINED: readonly string[] = ['value', 'fault'];

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
  unknownGiven?: (values: ReadonlyMap<string, unknown>) => readonly string[],
): Verdict {
  // Options the others make unknown (adaptiveLimit's of another algorithm) are refused whatever their value. A
  // getter on one is not read: an own one is an unknown option, an inherited one is ignored, as any unknown name.
  const notHere = unknownGiven?.(g.values) ?? [];
  const unknown = [...g.unknown, ...[...g.values.keys()].filter((k) => notHere.includes(k))];
  let throwing = g.throwing;
  if (throwing !== undefined && notHere.includes(throwing.key)) {
    if (throwing.where === 'own') unknown.push(throwing.key);
    throwing = undefined;
  }
  const bad = new Set<string>(unknown);
  for (const [k, v] of g.values) if (v !== undefined && !(spec[k] as Opt).ok(v)) bad.add(k);
  // A required option given as undefined is missing; fallback's `value` and injectFault's `fault` may be undefined
  // (it is what the call returns or rejects with).
  for (const k of required)
    if (g.values.get(k) === undefined && !(MAY_BE_UNDEFINED.includes(k) && g.values.has(k))) bad.add(k);
  let crossed: string[] = [];
  try {
    crossed = cross?.(g.values) ?? [];
  } catch {
    // A rule that cannot read its values (a proxy): the values are bad on their own.
  }
  if (throwing !== undefined) {
    bad.delete(throwing.key);
    const must = new Set([throwing.key, ...unknown]);
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
  let thrown: unknown;
  let returned: unknown;
  try {
    returned = run();
  } catch (e) {
    thrown = e;
  }
  judge(thrown, returned, policyNames, bad, mayAlso);
}

/** {@link expectInvalid} of a factory that rejects (an async one): a synchronous throw is a defect too. */
async function expectRejected(
  run: () => Promise<unknown>,
  policyNames: string | readonly string[],
  bad: ReadonlySet<string>,
  mayAlso: ReadonlySet<string> = new Set(),
): Promise<void> {
  let thrown: unknown;
  let returned: unknown;
  let promise: Promise<unknown>;
  try {
    promise = run();
  } catch (e) {
    throw new Error(`${String(policyNames)}: threw synchronously instead of rejecting`, { cause: e });
  }
  try {
    returned = await settles(promise, String(policyNames));
  } catch (e) {
    thrown = e;
  }
  judge(thrown, returned, policyNames, bad, mayAlso);
}

function judge(
  thrown: unknown,
  returned: unknown,
  policyNames: string | readonly string[],
  bad: ReadonlySet<string>,
  mayAlso: ReadonlySet<string>,
): void {
  const names = typeof policyNames === 'string' ? [policyNames] : policyNames;
  const policy = names[0] as string;
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
  /** The options the others make unknown (adaptiveLimit: those of the other algorithms). */
  readonly unknownGiven?: (values: ReadonlyMap<string, unknown>) => readonly string[];
  /**
   * More options to try, valid on their own (see {@link mostlyValid}): for factories with many options, of which
   * {@link generated} rarely makes a valid whole.
   */
  readonly alsoValid?: fc.Arbitrary<Generated>;
  readonly make: (options: unknown) => unknown;
  /** Whether `make` returns a promise, which rejects with the InvalidOptionsError (an async factory). */
  readonly async?: boolean;
  /** Runs a trivial operation through what `make` built (what its promise resolved with, for an async one). */
  readonly use: (built: unknown, options: Record<string, unknown>) => Promise<void>;
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
    // A generated custom HTTP method (`PURGE`) is valid and warned about once per process: the only warning
    // options may cause. Anything else captured here fails the test.
    const warnings = captureWarnings();
    try {
      await fuzzOnce(c);
      await warnings.flush();
    } finally {
      warnings.stop();
    }
    expect(warnings.codes().filter((code) => code !== 'BULWARK_HTTP_UNKNOWN_METHOD')).toEqual([]);
  });

  it(`${c.policy}: options that are not an object are refused clearly`, async () => {
    for (const make of TOP_LEVEL_HOSTILE) {
      const v = make();
      // timeout(ms) takes a number: a bad number is blamed on `ms`.
      if (c.policy === 'timeout' && typeof v === 'number') continue;
      let thrown: unknown;
      try {
        const made = c.make(v);
        if (c.async) await made;
      } catch (e) {
        thrown = e;
      }
      expect(thrown, `${c.policy}(${typeof v})`).toBeInstanceOf(InvalidOptionsError);
      expect((thrown as InvalidOptionsError).policy).toBe(c.policy);
      // Blamed once, on the options (timeout's may be its limit: `ms`), not once more as a missing option.
      const blamed = (thrown as InvalidOptionsError).problems.map((p) => p.option);
      expect(blamed).toHaveLength(1);
      expect(c.policy === 'timeout' ? ['ms', 'options'] : ['options']).toContain(blamed[0]);
    }
    if (c.optional) await c.use(c.make(undefined), {});
    else if (c.async) await expect(c.make(undefined)).rejects.toThrow(InvalidOptionsError);
    else expect(() => c.make(undefined)).toThrow(InvalidOptionsError);
  });
}

async function fuzzOnce(c: FactoryCase): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      c.alsoValid === undefined ? generated(c.spec) : fc.oneof(generated(c.spec), c.alsoValid),
      async (g) => {
        const r = realized(g);
        const { must, may } = verdict(c.spec, r, c.required ?? [], c.cross, c.unknownGiven);
        const options = build(r);
        if (must.size > 0) {
          const mayAlso = new Set([...may, ...(c.mayAlso ?? [])]);
          if (c.async) await expectRejected(() => c.make(options) as Promise<unknown>, c.policy, must, mayAlso);
          else expectInvalid(() => c.make(options), c.policy, must, mayAlso);
          return;
        }
        const built = c.async ? await settles(c.make(options) as Promise<unknown>, c.policy) : c.make(options);
        await c.use(built, options);
      },
    ),
    { numRuns: RUNS },
  );
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
  handle: O.handle,
  circuitOpenMaxWaitMs: opt(fc.constantFrom(0, 5, Number.POSITIVE_INFINITY), num(0, { infinity: true })),
  maxRetryAfterMs: opt(fc.constantFrom(0, 5.5, Number.POSITIVE_INFINITY), num(0, { infinity: true })),
  onExhausted: opt(fc.constantFrom('rethrow', 'wrap'), oneOf('rethrow', 'wrap')),
  budget: O.budget,
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
  handle: O.handle,
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

// The token bucket (the default algorithm); the windows' options are fuzzed in test/policies/rate-limit.
const rateLimitSpec = {
  rate: opt(fc.constantFrom(1, 0.5, 1e9), num(0, { exclusive: true })),
  periodMs: opt(fc.constantFrom(1, 0.5, 1_000), num(0, { exclusive: true })),
  burst: opt(fc.constantFrom(1, 2.5, 3), num(1)),
  cost: opt(
    fc.oneof(
      fc.constantFrom(0, 1, 2.5),
      fc.constant(() => 1),
    ),
    (v) => fn(v) || num(0)(v),
  ),
  queue: opt(
    fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(Number.POSITIVE_INFINITY)),
    int(0, { infinity: true }),
  ),
  queueTimeoutMs: opt(
    fc.constantFrom(1, 0.5, 1_000, Number.POSITIVE_INFINITY),
    num(0, { exclusive: true, infinity: true }),
  ),
  name: O.name,
  clock: O.clock,
};
/** A fixed cost above the bucket (`burst`, by default `rate` but at least 1) could never be admitted. */
function rateLimitCross(values: ReadonlyMap<string, unknown>): string[] {
  const cost = values.get('cost');
  const rate = values.get('rate') as number;
  const capacity = (values.get('burst') as number | undefined) ?? Math.max(1, rate);
  // The ms a token takes to come back, and the bucket's span, must be finite numbers > 0 (0.5 per 1e308 ms is not).
  const interval = ((values.get('periodMs') as number | undefined) ?? 1_000) / rate;
  if (!(interval > 0 && Number.isFinite(interval) && Number.isFinite(capacity * interval))) return ['periodMs'];
  return typeof cost === 'number' && cost > capacity ? ['cost'] : [];
}
/** A call goes through; a cost function that returns no finite number >= 0 rejects it with a TypeError (docs). */
async function rateLimitRuns(p: unknown, options: Record<string, unknown>): Promise<void> {
  try {
    await runs(p, 'rateLimit');
  } catch (e) {
    if (typeof options.cost === 'function' && e instanceof TypeError && /the cost function returned/.test(e.message)) {
      return;
    }
    throw e;
  }
}

const timeoutSpec = {
  ms: opt(fc.constantFrom(1, 0.5, 2_000, 2 ** 40), num(0, { exclusive: true })),
  name: O.name,
  clock: O.clock,
};

const fallbackSpec = {
  value: opt(fc.constantFrom(0, 'cached', null, undefined), () => true),
  handle: O.handle,
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
    policy: 'rateLimit',
    spec: rateLimitSpec,
    required: ['rate'],
    cross: rateLimitCross,
    make: (o) => rateLimit(o as never),
    use: rateLimitRuns,
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
// Overload and chaos factories (issue 14): hedge, retry budgets, adaptiveLimit, adaptiveThrottle, fault injection

/** Whether the call is pending after the event loop turns once (a timer it waits on has not fired). */
async function stillPending(p: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending');
  const first = await Promise.race([p, new Promise((resolve) => setImmediate(() => resolve(pending)))]);
  return first === pending;
}
/** Lets microtasks and immediates run, so events a call emits before its first await are seen. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const quantileArb: fc.Arbitrary<unknown> = fc
  .record({
    quantile: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(0.5, 0.95, 0.999) },
      { weight: 1, arbitrary: hostileNested },
    ),
    samples: fc.oneof(fc.constant(undefined), fc.constantFrom(1, 5, 100, 1_000, 65_535), hostileNested),
    minSamples: fc.oneof(fc.constant(undefined), fc.constantFrom(1, 5, 100, 1_000), hostileNested),
  })
  .map(({ quantile, samples, minSamples }) => {
    const q: Record<string, unknown> = { quantile };
    if (samples !== undefined) q.samples = samples;
    if (minSamples !== undefined) q.minSamples = minSamples;
    return q;
  });
/** `{ quantile, samples?, minSamples? }`: quantile in (0, 1), samples 1..65_535, minSamples 1..samples (1_000). */
const quantileOk: Pred = (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const q = v as Record<string, unknown>;
  if (!ownKeysOnly(q, ['quantile', 'samples', 'minSamples'])) return false;
  if (!num(0, { exclusive: true })(q.quantile) || (q.quantile as number) >= 1) return false;
  if (q.samples !== undefined && !int(1, { max: 65_535 })(q.samples)) return false;
  const samples = (q.samples as number | undefined) ?? 1_000;
  return q.minSamples === undefined || int(1, { max: samples })(q.minSamples);
};
const hedgeSpec = {
  maxHedgedAttempts: opt(fc.integer({ min: 1, max: 10 }), int(1, { max: 10 }), fc.constantFrom(0, 11)),
  delayMs: opt(
    fc.oneof(
      fc.constantFrom(-1, 0, 5, 2_000.5),
      fc.constantFrom(
        () => 5,
        () => 0,
        () => -1,
      ),
    ),
    (v) => fn(v) || (typeof v === 'number' && Number.isFinite(v)),
  ),
  delayQuantile: opt(quantileArb, quantileOk),
  handle: O.handle,
  budget: O.budget,
  name: O.name,
  clock: O.clock,
};
/** A call goes through; a delay function that returns no finite number rejects it with a TypeError (docs). */
async function hedgeRuns(p: unknown, options: Record<string, unknown>): Promise<void> {
  try {
    await runs(p, 'hedge');
  } catch (e) {
    if (
      typeof options.delayMs === 'function' &&
      e instanceof TypeError &&
      /the delayMs function returned/.test(e.message)
    ) {
      return;
    }
    throw e;
  }
}

/** Runs a call whose first attempt fails through `retry({ budget })`: retried when the budget allows one. */
async function budgetRetries(budget: unknown, allowed: boolean, what: string): Promise<void> {
  const p = retry({ maxAttempts: 2, backoff: constant(0), budget: budget as never });
  let n = 0;
  const first = new Error('first attempt');
  const r = await settles(
    p
      .execute(() => {
        if (n++ === 0) throw first;
        return 42;
      })
      .catch((e: unknown) => e),
    what,
  );
  expect(r, `${what}: retried (${allowed ? 'allowed' : 'refused'})`).toBe(allowed ? 42 : first);
}
const retryBudgetSpec = {
  ratio: opt(fc.constantFrom(0, 0.2, 0.29, 1), num(0, { max: 1 })),
  minConcurrency: opt(fc.integer({ min: 0, max: 5 }), int(0)),
  name: O.name,
};
/** A number > 0 (at most 1e9) with at most three decimals. */
const thousandths: Pred = (v) => {
  if (!num(0, { exclusive: true, max: 1e9 })(v)) return false;
  const rounded = Number((v as number).toFixed(3));
  return rounded > 0 && Math.abs((v as number) - rounded) <= 1e-9;
};
const retryTokenBudgetSpec = {
  maxTokens: opt(
    fc.constantFrom(0.001, 2, 2.001, 10, 1e9),
    thousandths,
    fc.constantFrom(0.0001, 1e-10, 1.0005, 1e9 + 1),
  ),
  tokenRatio: opt(fc.constantFrom(0.001, 0.1, 1, 1e9), thousandths, fc.constantFrom(0.0005, 1e-12, 0.1234)),
  name: O.name,
};

const LIMIT_ALGORITHMS = {
  gradient2: ['smoothing', 'queueSize', 'longWindow', 'rttTolerance'],
  aimd: ['backoffRatio', 'slowCallMs'],
  vegas: ['smoothing', 'probeMultiplier', 'random'],
} as const;
type LimitAlgorithm = keyof typeof LIMIT_ALGORITHMS;
const LIMIT_ALGORITHM_NAMES = Object.keys(LIMIT_ALGORITHMS) as LimitAlgorithm[];
const adaptiveLimitSpec = {
  algorithm: opt(
    fc.constantFrom(...LIMIT_ALGORITHM_NAMES),
    oneOf(...LIMIT_ALGORITHM_NAMES),
    fc.constantFrom('AIMD', 'gradient'),
  ),
  initialLimit: opt(fc.integer({ min: 1, max: 300 }), int(1)),
  minLimit: opt(fc.integer({ min: 1, max: 40 }), int(1)),
  maxLimit: opt(fc.integer({ min: 1, max: 2_000 }), int(1)),
  windowSize: opt(fc.integer({ min: 1, max: 20 }), int(1)),
  minWindowMs: opt(fc.constantFrom(0, 0.5, 100, 5_000), num(0)),
  maxWindowMs: opt(fc.constantFrom(0, 50, 1_000, 10_000), num(0)),
  handle: O.handle,
  queue: bulkheadSpec.queue,
  queueTimeoutMs: bulkheadSpec.queueTimeoutMs,
  name: O.name,
  clock: O.clock,
  smoothing: opt(fc.constantFrom(1e-9, 0.2, 1), num(0, { exclusive: true, max: 1 })),
  queueSize: opt(fc.constantFrom(0, 2.5, 4), num(0)),
  longWindow: opt(fc.integer({ min: 1, max: 1_000 }), int(1)),
  rttTolerance: opt(fc.constantFrom(1, 1.5, 10), num(1)),
  backoffRatio: opt(fc.constantFrom(1e-9, 0.5, 0.9, 0.999), (v) => num(0, { exclusive: true })(v) && (v as number) < 1),
  slowCallMs: opt(fc.constantFrom(0.5, 5_000), num(0, { exclusive: true })),
  probeMultiplier: opt(fc.integer({ min: 1, max: 50 }), int(1)),
  random: O.fn,
};
/** The algorithm the options pick: gradient2 unless `algorithm` names another. */
function limitAlgorithm(values: ReadonlyMap<string, unknown>): LimitAlgorithm {
  const a = values.get('algorithm');
  return LIMIT_ALGORITHM_NAMES.find((n) => n === a) ?? 'gradient2';
}
/** Options of the other algorithms are refused (docs: "Options of another algorithm are refused"). */
const otherAlgorithms = (values: ReadonlyMap<string, unknown>): string[] => {
  const mine: readonly string[] = LIMIT_ALGORITHMS[limitAlgorithm(values)];
  return [...new Set(Object.values(LIMIT_ALGORITHMS).flat())].filter((k) => !mine.includes(k));
};
/** Bounds given explicitly must agree (min <= initial <= max); a default bound yields. And maxWindowMs >= minWindowMs. */
function adaptiveLimitCross(values: ReadonlyMap<string, unknown>): string[] {
  const given = (k: string) => (int(1)(values.get(k)) ? (values.get(k) as number) : undefined);
  const [min, max, initial] = [given('minLimit'), given('maxLimit'), given('initialLimit')];
  const out: string[] = [];
  if (min !== undefined && max !== undefined && min > max) out.push('minLimit');
  else if (initial !== undefined && ((min !== undefined && initial < min) || (max !== undefined && initial > max))) {
    out.push('initialLimit');
  }
  const lo = values.get('minWindowMs');
  const hi = values.get('maxWindowMs');
  if (num(0)(lo) && num(0)(hi) && (hi as number) < (lo as number)) out.push('maxWindowMs');
  return out;
}
/** Options valid on their own, of one algorithm each. */
const adaptiveLimitValid: fc.Arbitrary<Generated> = fc.constantFrom(...LIMIT_ALGORITHM_NAMES).chain((a) => {
  const others = otherAlgorithms(new Map([['algorithm', a]]));
  const spec = Object.fromEntries(
    Object.entries(adaptiveLimitSpec)
      .filter(([k]) => !others.includes(k))
      .map(([k, o]) => [k, k === 'algorithm' ? { ...o, valid: fc.constant(a) } : o]),
  );
  return mostlyValid(spec, a === 'gradient2' ? [] : ['algorithm']);
});
/** A few calls go through, and the limit stays a whole number >= 1. */
async function limitRuns(p: unknown): Promise<void> {
  for (let i = 0; i < 4; i++) await runs(p, 'adaptiveLimit');
  const limit = (p as AdaptiveLimitPolicy).limit;
  expect(Number.isInteger(limit) && limit >= 1, `limit ${limit}`).toBe(true);
}

const adaptiveThrottleSpec = {
  k: opt(fc.constantFrom(1, 1.1, 2, 1e6), num(1)),
  windowMs: opt(fc.constantFrom(1, 1_000.5, 120_000), num(1)),
  buckets: opt(fc.integer({ min: 1, max: 1_000 }), int(1, { max: 1_000 }), fc.constantFrom(0, 1_001)),
  minRequests: opt(fc.integer({ min: 0, max: 10 }), int(0)),
  handle: O.handle,
  name: O.name,
  clock: O.clock,
  random: O.fn,
};

const injectionSpec = {
  injectionRate: opt(fc.constantFrom(0, 0.5, 1), num(0, { max: 1 }), fc.constantFrom(1.0001, -1e-9)),
  enabled: opt(
    fc.oneof(
      fc.boolean(),
      fc.constantFrom(
        () => true,
        () => false,
      ),
    ),
    (v) => bool(v) || fn(v),
  ),
  name: O.name,
  clock: O.clock,
  random: opt(
    fc.constantFrom(
      () => 0,
      () => 0.5,
      () => 0.999,
    ),
    fn,
  ),
};
const FAULT = new Error('chaos: injected');
const faultSpec = {
  ...injectionSpec,
  fault: opt(
    fc.constantFrom(FAULT, 'reset', 0, null, undefined, () => FAULT),
    () => true,
  ),
};
const latencySpec = {
  ...injectionSpec,
  latencyMs: opt(
    fc.constantFrom(0, 1, 5.5, () => 1),
    (v) => fn(v) || num(0)(v),
  ),
};
const isOutcomeValue: Pred = (v) =>
  typeof v === 'object' && v !== null && ((v as { ok?: unknown }).ok === true || (v as { ok?: unknown }).ok === false);
const outcomeSpec = {
  ...injectionSpec,
  outcome: opt(
    fc.constantFrom({ ok: true, value: 42 }, { ok: true, value: 'other' }, { ok: false, error: FAULT }, () => ({
      ok: true,
      value: 42,
    })),
    (v) => fn(v) || isOutcomeValue(v),
    fc.constantFrom({ ok: 'true', value: 1 }, { value: 42 }, { ok: 1 }, { error: FAULT }),
  ),
};
const behaviorSpec = {
  ...injectionSpec,
  behavior: opt(
    fc.constantFrom(
      () => undefined,
      async () => undefined,
    ),
    fn,
  ),
};

/**
 * A call through a chaos policy: settles as it is injected (seen by its `chaos.injected` event) or not. `expect`
 * judges an injected call's settlement; one that is not injected returns 42, unless `own` is a function of the
 * context returning something the kind does not take (a TypeError, naming the option, per the docs).
 */
async function chaosRuns(
  p: unknown,
  ownOption: string,
  options: Record<string, unknown>,
  injectedOk: (r: { ok: boolean; v: unknown }) => void,
): Promise<void> {
  const policy = p as ChaosPolicy;
  const injected: (number | undefined)[] = [];
  policy.on('chaos.injected', (e) => injected.push(e.latencyMs));
  const ac = new AbortController();
  const call = policy
    .execute(() => 42, { signal: ac.signal })
    .then(
      (v: unknown) => ({ ok: true, v }),
      (v: unknown) => ({ ok: false, v }),
    );
  await turn();
  const ms = injected[0];
  if (ms !== undefined && ms > 10) {
    // A long injected latency is waited out: the call is still pending (its timer did not fire early), and the
    // caller's abort ends it with the caller's reason.
    if (options.clock instanceof FakeClock) await options.clock.advance(10);
    else await new Promise((resolve) => setTimeout(resolve, 12));
    expect(await stillPending(call), `injectLatency(${ms}): settled early`).toBe(true);
    const reason = new Error('caller gave up');
    ac.abort(reason);
    expect(await settles(call, 'injectLatency')).toEqual({ ok: false, v: reason });
    return;
  }
  if (ms !== undefined && options.clock instanceof FakeClock) await options.clock.advance(ms);
  const r = await settles(call, policy.name);
  if (injected.length > 0) injectedOk(r);
  else if (!r.ok && typeof options[ownOption] === 'function' && r.v instanceof TypeError) {
    expect(r.v.message).toMatch(new RegExp(`the ${ownOption} function returned`));
  } else expect(r).toEqual({ ok: true, v: 42 });
}

describe('option fuzzing: overload and chaos factories', () => {
  checkFactory({
    policy: 'hedge',
    spec: hedgeSpec,
    optional: true,
    alsoValid: mostlyValid(hedgeSpec, []),
    make: (o) => hedge(o as never),
    use: hedgeRuns,
  });
  checkFactory({
    policy: 'retryBudget',
    spec: retryBudgetSpec,
    optional: true,
    make: (o) => retryBudget(o as never),
    // The floor, or a ratio of 1 (one retry per call in flight, with the credit full), allows the retry.
    use: (b, o) =>
      budgetRetries(b, ((o.minConcurrency as number | undefined) ?? 3) >= 1 || o.ratio === 1, 'retryBudget'),
  });
  checkFactory({
    policy: 'retryTokenBudget',
    spec: retryTokenBudgetSpec,
    optional: true,
    make: (o) => retryTokenBudget(o as never),
    // The failure takes a token; the retry needs more than half the bucket left: maxTokens - 1 > maxTokens / 2.
    use: (b, o) => budgetRetries(b, ((o.maxTokens as number | undefined) ?? 10) > 2, 'retryTokenBudget'),
  });
  checkFactory({
    policy: 'adaptiveLimit',
    spec: adaptiveLimitSpec,
    optional: true,
    cross: adaptiveLimitCross,
    unknownGiven: otherAlgorithms,
    alsoValid: adaptiveLimitValid,
    make: (o) => adaptiveLimit(o as never),
    use: limitRuns,
  });
  checkFactory({
    policy: 'adaptiveThrottle',
    spec: adaptiveThrottleSpec,
    optional: true,
    alsoValid: mostlyValid(adaptiveThrottleSpec, []),
    make: (o) => adaptiveThrottle(o as never),
    use: async (p) => {
      for (let i = 0; i < 3; i++) await runs(p, 'adaptiveThrottle');
    },
  });
  checkFactory({
    policy: 'injectFault',
    spec: faultSpec,
    required: ['fault', 'injectionRate'],
    alsoValid: mostlyValid(faultSpec, ['fault', 'injectionRate']),
    make: (o) => injectFault(o as never),
    use: (p, o) =>
      chaosRuns(p, 'fault', o, (r) => {
        expect(r.ok).toBe(false);
        // A function is called and the call fails with what it returns (the generated ones return a constant and
        // ignore the context): `() => FAULT` from the valid set, but also any other function the fuzzer draws.
        expect(r.v).toBe(typeof o.fault === 'function' ? (o.fault as () => unknown)() : o.fault);
      }),
  });
  checkFactory({
    policy: 'injectLatency',
    spec: latencySpec,
    required: ['latencyMs', 'injectionRate'],
    alsoValid: mostlyValid(latencySpec, ['latencyMs', 'injectionRate']),
    make: (o) => injectLatency(o as never),
    use: (p, o) => chaosRuns(p, 'latencyMs', o, (r) => expect(r).toEqual({ ok: true, v: 42 })),
  });
  checkFactory({
    policy: 'injectOutcome',
    spec: outcomeSpec,
    required: ['outcome', 'injectionRate'],
    alsoValid: mostlyValid(outcomeSpec, ['outcome', 'injectionRate']),
    make: (o) => injectOutcome(o as never),
    use: (p, o) =>
      chaosRuns(p, 'outcome', o, (r) => {
        const given = (typeof o.outcome === 'function' ? o.outcome() : o.outcome) as {
          ok: boolean;
          value?: unknown;
          error?: unknown;
        };
        expect(r).toEqual({ ok: given.ok, v: given.ok ? given.value : given.error });
      }),
  });
  checkFactory({
    policy: 'injectBehavior',
    spec: behaviorSpec,
    required: ['behavior', 'injectionRate'],
    alsoValid: mostlyValid(behaviorSpec, ['behavior', 'injectionRate']),
    make: (o) => injectBehavior(o as never),
    use: (p, o) => chaosRuns(p, 'behavior', o, (r) => expect(r).toEqual({ ok: true, v: 42 })),
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
beforeAll(async () => {
  nc = await natsConnect({ servers: '127.0.0.1:4222', timeout: 3_000, maxReconnectAttempts: 0 });
  jsm = await nc.jetstreamManager();
});
afterAll(async () => {
  await nc?.drain();
});
beforeAll(async () => {
  amqp = await amqpConnect(RABBIT_URL);
  amqp.on('error', () => undefined); // a dropped socket fails the tests that use it, not the process
  spare = await amqp.createConfirmChannel();
  spare.on('error', () => undefined);
  await declareRabbitTopology(spare, { queue: RABBIT_QUEUE });
});
afterAll(async () => {
  for (const name of [RABBIT_QUEUE, `${RABBIT_QUEUE}.retry`, `${RABBIT_QUEUE}.dlq`]) await spare.deleteQueue(name);
  await amqp.close();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const arrayOf =
  (p: Pred): Pred =>
  (v) =>
    Array.isArray(v) && v.every(p);
/** An HTTP method: a non-empty token (RFC 9110 section 5.6.2), any case; a custom one (PURGE) too. */
const methodOk: Pred = (m) => typeof m === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(m);
/** Retired options: refused whatever their value, naming what to use instead (docs/integrations/http.md). */
const retired = opt(fc.constantFrom(true, false, 0, 1_000, Number.POSITIVE_INFINITY), () => false);
const httpSpec = {
  policy: opt(fc.oneof(policyArb, policyArb.map(policyOfOrigin)), (v) => fn(v) || isPolicy(v)),
  maxOrigins: opt(fc.integer({ min: 1, max: 5 }), int(1)),
  methods: opt(
    fc.constantFrom(['GET'], ['GET', 'PUT'], [], ['get', 'Delete'], ['PROPFIND', 'purge']),
    arrayOf(methodOk),
    fc.constantFrom([''], ['GET '], ['G E T'], ['GET', 5], ['GET\r\n'], ['GÉT'], [null], [['GET']], 'GET'),
  ),
  generateIdempotencyKeys: O.bool,
  honorIdempotencyKey: O.bool,
  failureStatuses: opt(fc.constantFrom([503], [500, 599], []), arrayOf(int(100, { max: 599 }))),
  failureCodes: opt(
    fc.constantFrom(['ECONNRESET'], []),
    arrayOf((c) => typeof c === 'string'),
  ),
  wallClock: opt(
    fc.constant(() => 0),
    fn,
  ),
  idempotencyKey: retired,
  maxRetryAfterMs: retired,
};
/** A generated key would not be honoured: refused (generateIdempotencyKeys needs honorIdempotencyKey). */
const httpCross = (values: ReadonlyMap<string, unknown>): string[] =>
  values.get('generateIdempotencyKeys') === true && values.get('honorIdempotencyKey') === false
    ? ['honorIdempotencyKey']
    : [];

const PROTO = new URL('../fixtures/greeter.proto', import.meta.url).pathname;
const greeterPkg = loadPackageDefinition(loadSync(PROTO, { keepCase: true, defaults: true }));
const Greeter = ((greeterPkg.bulwark as GrpcObject).test as GrpcObject).Greeter as ServiceClientConstructor;
/** The unary methods of the test service; its other two stream. */
const UNARY = ['/bulwark.test.Greeter/SayHello', '/bulwark.test.Greeter/CreateOrder'];
const STREAMING = ['/bulwark.test.Greeter/StreamHellos', '/bulwark.test.Greeter/CollectHellos'];
/** A grpc-js method definition, as far as the docs need one: its path, and whether each side streams. */
const isMethodDef: Pred = (m) => {
  const d = m as { path?: unknown; requestStream?: unknown; responseStream?: unknown } | null;
  return (
    typeof d === 'object' &&
    d !== null &&
    typeof d.path === 'string' &&
    typeof d.requestStream === 'boolean' &&
    typeof d.responseStream === 'boolean'
  );
};
/** `services`: grpc-js service definitions (a client constructor's `service`: method name to definition). */
const servicesOk: Pred = (v) =>
  Array.isArray(v) &&
  v.every((d) => typeof d === 'object' && d !== null && !Array.isArray(d) && Object.values(d).every(isMethodDef));
/** The unary paths of valid `services`. */
const unaryOf = (services: readonly object[]): string[] =>
  services.flatMap((d) =>
    Object.values(d as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>)
      .filter((m) => !m.requestStream && !m.responseStream)
      .map((m) => m.path),
  );
const grpcEntry = (p: object): fc.Arbitrary<unknown> =>
  fc.constantFrom(p, { policy: p }, { policy: p, idempotent: true }, { policy: p, idempotent: false });
const grpcSpec = {
  methods: opt(
    fc.oneof(
      fc.constant(() => undefined),
      fc
        .tuple(fc.subarray(UNARY, { minLength: 1 }), policyArb)
        .chain(([keys, p]) =>
          fc.tuple(...keys.map(() => grpcEntry(p))).map((es) => Object.fromEntries(keys.map((k, i) => [k, es[i]]))),
        ),
      fc.constant({}),
    ),
    (v) => {
      if (typeof v === 'function') return true;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      // Keys are full method paths (the shape only: which method they name is judged with `services`).
      return Object.entries(v).every(([k, e]) => {
        if (!/^\/[^/\s]+\/[^/\s]+$/.test(k)) return false;
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
    fc
      .tuple(
        fc.constantFrom(
          'Unary',
          'SayHello',
          'bulwark.test.Greeter/SayHello',
          '/a/b/c',
          '/ a/b',
          ...STREAMING,
          '/bulwark.test.Greeter/SayHelo',
        ),
        policyArb,
      )
      .map(([k, p]) => ({ [k]: p })),
  ),
  services: opt(
    fc.constant([Greeter.service]),
    servicesOk,
    fc.constantFrom([Greeter], Greeter.service, [{ SayHello: { path: 5 } }], [[Greeter.service]]),
  ),
  failureCodes: opt(fc.constantFrom([14], [1, 16], []), arrayOf(int(1, { max: 16 }))),
  clock: O.clock,
  wallClock: O.fn,
};
/** With `services`, every key of a `methods` map must be the path of one of their unary methods. */
function grpcCross(values: ReadonlyMap<string, unknown>): string[] {
  const m = values.get('methods');
  const services = values.get('services');
  if (!safe(servicesOk)(services) || typeof m !== 'object' || m === null) return [];
  const unary = unaryOf(services as object[]);
  return Object.keys(m).some((k) => !unary.includes(k)) ? ['methods'] : [];
}

const wrapSpec = {
  policy: opt(policyArb, isPolicy),
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
const JS_CLIENTS = new WeakSet<object>([jsClient]);
const deliverySpec = {
  deadLetterSubject: opt(fc.constantFrom('dead', 'orders.dead'), str),
  js: opt(fc.constant(jsClient), (v) => JS_CLIENTS.has(v as object), fc.constantFrom({ publish: 1 }, { nc: {} })),
  releaseDelayMs: opt(fc.constantFrom(0, 1_000.5), num(0)),
  onError: O.fn,
};
const deliveryCross = (values: ReadonlyMap<string, unknown>): string[] =>
  values.get('deadLetterSubject') !== undefined && values.get('js') === undefined ? ['js'] : [];
const consumeSpec = {
  ...deliverySpec,
  maxMessages: opt(fc.integer({ min: 1, max: 5 }), int(1)),
  pausePollMs: opt(fc.constantFrom(1, 0.5), num(0, { exclusive: true })),
  clock: O.clock,
  onClose: O.fn,
};

// RabbitMQ (the real broker on 127.0.0.1:5672): one work queue for the whole file, declared and deleted here.
const RUN_ID = randomUUID().slice(0, 8);
const RABBIT_QUEUE = `bulwark-fuzz-${RUN_ID}`;
let amqp: ChannelModel;
/** A channel options are checked against: nothing is ever done on it when they are invalid. */
let spare: ConfirmChannel;
const HANDLERS = new WeakSet<object>();
const wrappedArb = fc.constant(null).map(() => {
  const h = wrapHandler(async () => undefined);
  HANDLERS.add(h);
  return h;
});
const consumeRabbitSpec = {
  queue: opt(fc.constant(RABBIT_QUEUE), str),
  // The docs say "the wrapHandler result"; any function is taken (it cannot be told from one).
  handler: opt(wrappedArb, fn),
  prefetch: opt(fc.constantFrom(0, 1, 10, 65_535), int(0, { max: 65_535 }), fc.constantFrom(65_536, -1, 1.5)),
  onError: O.fn,
  requeueDelayMs: opt(fc.constantFrom(0, 1_000.5, 2_147_483_647), num(0, { max: 2_147_483_647 }), fc.constant(2 ** 31)),
  onClose: O.fn,
};
let topologyCount = 0;
const rabbitTopologySpec = {
  queue: opt(
    fc.constant(null).map(() => `bulwark-fuzz-${RUN_ID}-topology-${++topologyCount}`),
    str,
  ),
};

// NATS JetStream (the real server on 127.0.0.1:4222): every stream a valid run declares is deleted after it.
let nc: NatsConnection;
let jsm: JetStreamManager;
let natsCount = 0;
const natsId = () => `${RUN_ID}_${++natsCount}`;
/** A stream or consumer name (NATS ADR-6): no whitespace, `.`, `*`, `>`, `/` or `\\`. */
const natsName: Pred = (v) => typeof v === 'string' && /^[^\s.*>/\\]+$/.test(v);
/** A subject: dot-separated non-empty tokens, no whitespace; `*` a whole token, `>` the last token only. */
function subjectOk(v: unknown, wildcards: boolean): boolean {
  if (typeof v !== 'string' || v === '' || /\s/.test(v)) return false;
  const tokens = v.split('.');
  return tokens.every((t, i) =>
    t === '>' ? wildcards && i === tokens.length - 1 : t === '*' ? wildcards : t !== '' && !/[*>]/.test(t),
  );
}
/** Whether filter `f` matches subject `s` (a literal one). */
function subjectMatches(f: string, s: string): boolean {
  const a = f.split('.');
  const b = s.split('.');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '>') return b.length > i;
    if (i >= b.length || (a[i] !== '*' && a[i] !== b[i])) return false;
  }
  return a.length === b.length;
}
/** Whether every subject filter `a` matches is matched by `b` too. */
function subset(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  return (
    x.every((t, i) => {
      if (y.slice(0, i).includes('>')) return true;
      if (i >= y.length) return false;
      if (y[i] === '>') return true;
      return t !== '>' && (y[i] === '*' || t === y[i]);
    }) && (y.includes('>') ? x.length >= y.indexOf('>') + 1 : x.length === y.length)
  );
}
/** Durations the server stores as int64 nanoseconds: at most 9e12 ms (3e12 for those the ack wait is made of). */
const MAX_NATS_MS = 9e12;
const jsTopologySpec = {
  stream: opt(
    fc.constant(null).map(() => `FZ_${natsId()}`),
    natsName,
    fc.constantFrom('a.b', 'a b', 'a*', 'a/b', 'a>'),
  ),
  subjects: opt(
    fc.constant(null).map(() => [`fz${natsId()}.>`, `fz${natsId()}.*.new`]),
    (v) => Array.isArray(v) && v.length > 0 && v.every((x) => subjectOk(x, true)),
    fc.constantFrom(['a..b'], ['a.>.b'], ['a b'], ['>'], ['a.b*']),
  ),
  consumer: opt(fc.constantFrom('worker', 'w-1'), natsName),
  filterSubject: opt(
    fc.constantFrom('>', '*.>', '*.a'),
    (v) => subjectOk(v, true),
    fc.constantFrom('zz.none', 'a.>.b', 'a.'),
  ),
  deadLetterStream: opt(
    fc.constant(null).map(() => `FZDLQ_${natsId()}`),
    natsName,
  ),
  deadLetterSubject: opt(
    fc.constant(null).map(() => `dlqfz.${natsId()}`),
    (v) => subjectOk(v, false),
    fc.constantFrom('dlq.*', 'dlq.>', 'dlq..x'),
  ),
  maxDeliveries: opt(
    fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(Number.POSITIVE_INFINITY)),
    int(1, { infinity: true }),
  ),
  maxDeliver: opt(fc.constantFrom(-1, 7, 100), (v) => v === -1 || int(1)(v), fc.constantFrom(-2, 1.5)),
  handlerTimeoutMs: opt(fc.constantFrom(1, 1_000, 30_000.5), num(0, { exclusive: true, max: MAX_NATS_MS / 3 })),
  workingEveryMs: opt(fc.constantFrom(1, 1_000.5, 12_345.7), num(0, { exclusive: true, max: MAX_NATS_MS / 3 })),
  ackWaitMs: opt(fc.constantFrom(60_000, 120_000), int(1, { max: MAX_NATS_MS })),
  maxAckPending: opt(fc.constantFrom(1, 1_000), int(1, { max: Number.MAX_SAFE_INTEGER })),
  retention: opt(fc.constantFrom('limits', 'workqueue'), oneOf('limits', 'workqueue')),
  maxAgeMs: opt(fc.constantFrom(0, 60_000), int(0, { max: MAX_NATS_MS })),
};
/** The rules between options (docs/integrations/messaging.md), each judged only on values valid on their own. */
function jsTopologyCross(values: ReadonlyMap<string, unknown>): string[] {
  const ok = (k: keyof typeof jsTopologySpec) => {
    const v = values.get(k);
    return v !== undefined && jsTopologySpec[k].ok(v);
  };
  const out: string[] = [];
  const deliveries = values.get('maxDeliveries');
  if (ok('maxDeliver') && (deliveries === undefined || ok('maxDeliveries'))) {
    const md = values.get('maxDeliver') as number;
    if (md !== -1 && !(md > ((deliveries as number | undefined) ?? 5))) out.push('maxDeliver');
  }
  if (ok('ackWaitMs')) {
    const min = ok('workingEveryMs')
      ? 2 * (values.get('workingEveryMs') as number)
      : ok('handlerTimeoutMs')
        ? (values.get('handlerTimeoutMs') as number) + 1_000
        : 1_000;
    if ((values.get('ackWaitMs') as number) < min) out.push('ackWaitMs');
  }
  const subjects = values.get('subjects');
  const filter = values.get('filterSubject');
  if (ok('filterSubject') && Array.isArray(subjects)) {
    const f = filter as string;
    const wildcard = f.split('.').some((t) => t === '*' || t === '>');
    const fits = (x: string) => subset(f, x) || (wildcard && subset(x, f));
    if (!subjects.some((x) => subjectOk(x, true) && fits(x as string))) out.push('filterSubject');
  }
  const given = values.get('deadLetterSubject');
  const stream = values.get('stream');
  const dlq =
    given !== undefined
      ? ok('deadLetterSubject')
        ? given
        : undefined
      : typeof stream === 'string'
        ? `dlq.${stream}`
        : undefined;
  if (typeof dlq === 'string' && Array.isArray(subjects)) {
    if (subjects.some((x) => subjectOk(x, true) && subjectMatches(x as string, dlq)))
      out.push(given === undefined ? 'deadLetterSubject (default)' : 'deadLetterSubject');
  }
  if (values.get('deadLetterStream') !== undefined && values.get('deadLetterStream') === stream)
    out.push('deadLetterStream');
  return out;
}

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

/** The request fails at once, unsent, saying the policy function returned no policy (docs: http.md). */
const NOT_A_POLICY =
  /undici interceptor: the policy function returned .* for origin "http:\/\/127\.0\.0\.1:\d+", not a policy/;

describe('option fuzzing: adapters and metrics', () => {
  checkFactory({
    policy: 'undici interceptor',
    spec: httpSpec,
    required: ['policy'],
    cross: httpCross,
    make: (o) => interceptor(o as never),
    use: async (icpt, options) => {
      const agent = new Agent().compose(icpt as never);
      try {
        const request = settles(agent.request({ origin, path: '/', method: 'GET' }), 'interceptor');
        if (!runnable(options.policy)) {
          await expect(request).rejects.toThrow(NOT_A_POLICY);
          return;
        }
        expect(await (await request).body.text()).toBe('ok');
      } finally {
        await agent.close();
      }
    },
  });
  checkFactory({
    policy: 'createFetch',
    spec: {
      ...httpSpec,
      dispatcher: opt(
        fc.constant(null).map(() => new Agent()),
        (v) => v instanceof Agent,
      ),
    },
    required: ['policy'],
    cross: httpCross,
    make: (o) => createFetch(o as never),
    use: async (f, options) => {
      const bf = f as ((url: string) => Promise<Response>) & { close(): Promise<void> };
      try {
        const response = settles(bf(origin), 'createFetch');
        if (!runnable(options.policy)) {
          // bulwark's own error, not fetch's `TypeError('fetch failed')`.
          await expect(response).rejects.toThrow(NOT_A_POLICY);
          return;
        }
        expect(await (await response).text()).toBe('ok');
      } finally {
        await bf.close();
      }
    },
  });
  checkFactory({
    policy: 'grpcInterceptor',
    spec: grpcSpec,
    required: ['methods'],
    cross: grpcCross,
    make: (o) => grpcInterceptor(o as never),
    use: async (i) => expect(typeof i).toBe('function'),
  });
  checkFactory({
    policy: 'jetstreamDelivery',
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

  it('consumeRabbit: random arguments give a consumer, or a rejection with one InvalidOptionsError naming each', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(generated(consumeRabbitSpec), mostlyValid(consumeRabbitSpec, ['queue', 'handler'])),
        fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: hostile }),
        async (generatedOptions, generatedChannel) => {
          const g = realized(generatedOptions);
          const { must, may } = verdict(consumeRabbitSpec, g, ['queue', 'handler']);
          if (generatedChannel !== undefined) must.add('channel');
          const options = build(g);
          if (must.size > 0) {
            const channel = generatedChannel === undefined ? spare : realize(generatedChannel);
            return expectRejected(() => consumeRabbit(channel as never, options as never), 'consumeRabbit', must, may);
          }
          const channel = await amqp.createConfirmChannel();
          channel.on('error', () => undefined);
          if (options.queue !== RABBIT_QUEUE) {
            // Valid, but not a queue of the broker's (a name the hostile values hold): the broker's 404, as it is.
            const e = await settles(consumeRabbit(channel, options as never), 'consumeRabbit').then(
              () => undefined,
              (error: unknown) => error,
            );
            expect(e).not.toBeInstanceOf(InvalidOptionsError);
            expect(String((e as Error | undefined)?.message)).toMatch(/404 \(NOT-FOUND\)/);
            return;
          }
          try {
            const consumer: RabbitConsumer = await settles(consumeRabbit(channel, options as never), 'consumeRabbit');
            expect(typeof consumer.consumerTag).toBe('string');
            await consumer.cancel();
            expect((await consumer.closed).reason).toBe('cancelled');
          } finally {
            await channel.close();
          }
        },
      ),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it('declareRabbitTopology: random arguments declare the queues, or reject with one InvalidOptionsError', async () => {
    await fc.assert(
      fc.asyncProperty(
        generated(rabbitTopologySpec),
        fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: hostile }),
        async (generatedOptions, generatedChannel) => {
          const g = realized(generatedOptions);
          const { must, may } = verdict(rabbitTopologySpec, g, ['queue']);
          if (generatedChannel !== undefined) must.add('channel');
          const channel = generatedChannel === undefined ? spare : realize(generatedChannel);
          const options = build(g);
          if (must.size > 0) {
            return expectRejected(
              () => declareRabbitTopology(channel as never, options as never),
              'declareRabbitTopology',
              must,
              may,
            );
          }
          const topology = await settles(declareRabbitTopology(spare, options as never), 'declareRabbitTopology');
          const names = [topology.queue, topology.retryQueue, topology.deadLetterQueue];
          expect(names).toEqual([options.queue, `${options.queue}.retry`, `${options.queue}.dlq`]);
          for (const name of names) await spare.deleteQueue(name);
        },
      ),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it('declareJetStreamTopology: random arguments declare the topology, or reject with one InvalidOptionsError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(generated(jsTopologySpec), mostlyValid(jsTopologySpec, ['stream', 'subjects', 'consumer'])),
        fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: hostile }),
        async (generatedOptions, generatedJsm) => {
          const g = realized(generatedOptions);
          const { must, may } = verdict(jsTopologySpec, g, ['stream', 'subjects', 'consumer'], jsTopologyCross);
          if (generatedJsm !== undefined) must.add('jsm');
          const manager = generatedJsm === undefined ? jsm : realize(generatedJsm);
          const options = build(g);
          if (must.size > 0) {
            return expectRejected(
              () => declareJetStreamTopology(manager as never, options as never),
              'declareJetStreamTopology',
              must,
              may,
            );
          }
          try {
            const t = await settles(declareJetStreamTopology(jsm, options as never), 'declareJetStreamTopology');
            const info = await jsm.consumers.info(t.stream, t.consumer);
            expect(info.config.max_deliver).toBe(t.maxDeliver);
            expect(info.config.ack_wait).toBe(t.ackWaitMs * 1_000_000);
            expect((await jsm.streams.info(t.deadLetterStream)).config.subjects).toContain(t.deadLetterSubject);
          } finally {
            const dlq = (options.deadLetterStream as string | undefined) ?? `${options.stream as string}_DLQ`;
            for (const name of [options.stream as string, dlq]) await jsm.streams.delete(name).catch(() => false);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('declareJetStreamTopology: options that are not an object are refused clearly', async () => {
    for (const make of TOP_LEVEL_HOSTILE) {
      const e = await declareJetStreamTopology(jsm, make() as never).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(e).toBeInstanceOf(InvalidOptionsError);
      expect((e as InvalidOptionsError).problems.map((p) => p.option)).toEqual(['options']);
    }
  });

  it('consumeRabbit and declareRabbitTopology: options that are not an object are refused clearly', async () => {
    for (const make of TOP_LEVEL_HOSTILE) {
      for (const run of [
        () => consumeRabbit(spare, make() as never),
        () => declareRabbitTopology(spare, make() as never),
      ]) {
        const e = await run().then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(e).toBeInstanceOf(InvalidOptionsError);
        expect((e as InvalidOptionsError).problems.map((p) => p.option)).toEqual(['options']);
      }
    }
  });

  it('wrapHandler: random options give a working handler or one InvalidOptionsError naming each', async () => {
    await fc.assert(
      fc.asyncProperty(generated(wrapSpec), fc.oneof(fnArb, hostile), async (generatedOptions, generatedHandler) => {
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
      }),
      { numRuns: RUNS },
    );
  });

  it('consumeJetStream: random options give a running loop or one InvalidOptionsError naming each', async () => {
    await fc.assert(
      fc.asyncProperty(
        generated(consumeSpec),
        fc.oneof(fc.constant(undefined), hostile),
        async (generatedOptions, generatedConsumer) => {
          const g = realized(generatedOptions);
          const { must, may } = verdict(consumeSpec, g, [], deliveryCross);
          // Positional: a pull consumer (the stand-in below), or anything else, blamed as `consumer`.
          const consumer = generatedConsumer === undefined ? fakeConsumer() : realize(generatedConsumer);
          if (generatedConsumer !== undefined) must.add('consumer');
          const handler = wrapHandler(async () => undefined);
          const make = () => consumeJetStream(consumer as never, handler, build(g) as never);
          if (must.size > 0) return expectInvalid(make, 'consumeJetStream', must, may);
          const loop = make();
          await settles(loop.stop(), 'consumeJetStream.stop');
        },
      ),
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

  it('adapters: a policy, client or consumer whose reads throw is blamed on its option (it escaped raw)', () => {
    const getter = () => ({
      get execute(): unknown {
        throw new Error('boom');
      },
      get publish(): unknown {
        throw new Error('boom');
      },
      get consume(): unknown {
        throw new Error('boom');
      },
    });
    for (const p of [exploding(), getter()]) {
      expect(invalid(() => interceptor({ policy: p as never })).problems.map((x) => x.option)).toEqual(['policy']);
      expect(invalid(() => createFetch({ policy: p as never })).problems.map((x) => x.option)).toEqual(['policy']);
      const grpc = invalid(() => grpcInterceptor({ methods: { '/a.B/C': p as never } }));
      expect(grpc.problems.map((x) => x.option)).toEqual(["methods['/a.B/C']"]);
      expect(invalid(() => wrapHandler(async () => {}, { policy: p as never })).problems.map((x) => x.option)).toEqual([
        'policy',
      ]);
      const delivery = invalid(() => jetstreamDelivery(fakeJsMsg() as never, { js: p as never }));
      expect(delivery.problems.map((x) => x.option)).toEqual(['js']);
      const loop = invalid(() =>
        consumeJetStream(
          p as never,
          wrapHandler(async () => {}),
        ),
      );
      expect(loop.problems.map((x) => x.option)).toEqual(['consumer']);
      expect(invalid(() => retry({ handle: p as never })).problems.map((x) => x.option)).toEqual(['handle']);
    }
    expect(invalid(() => grpcInterceptor({ methods: exploding() as never })).problems.map((x) => x.option)).toEqual([
      'methods',
    ]);
    expect(
      invalid(() => grpcInterceptor({ methods: { '/a.B/C': retry() }, services: [exploding()] as never })).problems.map(
        (x) => x.option,
      ),
    ).toEqual(['services']);
  });

  it('createFetch: every problem is reported together, under its own name', () => {
    expect(invalid(() => createFetch({ policy: retry(), maxOrigins: 0 })).message).toBe(
      'createFetch: invalid options\n  - maxOrigins: expected an integer >= 1, got 0',
    );
    const e = invalid(() => createFetch({ policy: retry(), maxOrigins: 0, bogus: 1 } as never));
    expect(e.policy).toBe('createFetch');
    expect(e.problems.map((x) => x.option)).toEqual(['bogus', 'maxOrigins']);
    const all = invalid(() => createFetch({ dispatcher: 5, idempotencyKey: true, methods: ['G T'] } as never));
    expect(all.problems.map((x) => x.option)).toEqual(['idempotencyKey', 'policy', 'methods[0]', 'dispatcher']);
  });

  it('undici: a policy function that returns no policy fails each request, naming what it returned', async () => {
    const agent = new Agent().compose(interceptor({ policy: () => ({}) as never }));
    try {
      const request = agent.request({ origin, path: '/', method: 'GET' });
      await expect(request).rejects.toThrow(
        new TypeError(
          `undici interceptor: the policy function returned {} for origin "${origin}", not a policy (a bulwark policy, such as pipeline(retry(), timeout(2_000)))`,
        ),
      );
      // The same for a per-request policy that is not one.
      const perRequest = agent.request({ origin, path: '/', method: 'GET', bulwark: { policy: 5 as never } });
      await expect(perRequest).rejects.toThrow(
        "undici interceptor: the request's bulwark.policy is 5, not a policy (a bulwark policy, or false to send the request without one)",
      );
    } finally {
      await agent.close();
    }
    const f = createFetch({ policy: () => undefined as never });
    try {
      await expect(f(origin)).rejects.toThrow(/^undici interceptor: the policy function returned undefined for origin/);
    } finally {
      await f.close();
    }
  });

  it('undici: methods are HTTP method tokens; an unregistered one is allowed but warned about once', async () => {
    for (const [methods, option] of [
      [['GET', ''], 'methods[1]'],
      [['G T'], 'methods[0]'],
      [['GET\r\n'], 'methods[0]'],
      [[5], 'methods[0]'],
      ['GET', 'methods'],
    ] as const) {
      const e = invalid(() => interceptor({ policy: retry(), methods: methods as never }));
      expect(e.problems.map((x) => x.option)).toEqual([option]);
    }
    expect(invalid(() => interceptor({ policy: retry(), methods: [''] })).message).toBe(
      'undici interceptor: invalid options\n  - methods[0]: expected an HTTP method name: a token of letters, digits and !#$%&\'*+-.^_`|~ (RFC 9110), such as "GET", got ""',
    );
    const warnings = captureWarnings();
    try {
      interceptor({ policy: retry(), methods: ['GET', 'get', 'PROPFIND', 'GTEX'] });
      interceptor({ policy: retry(), methods: ['gtex'] }); // the same name, any case: once
      await warnings.flush();
    } finally {
      warnings.stop();
    }
    expect(warnings.warnings.map((w) => [w.code, w.message])).toEqual([
      [
        'BULWARK_HTTP_UNKNOWN_METHOD',
        "bulwark/undici: methods includes 'GTEX', which is not a registered HTTP method (IANA HTTP Method Registry). Requests with this method will be retried without an Idempotency-Key. If it is a typo, fix it; if it is a custom method your server handles idempotently, ignore this warning.",
      ],
    ]);
  });

  it('undici: the retired options name their replacement, own or inherited; undefined is not given', () => {
    const inherited = Object.create({ idempotencyKey: true }) as object;
    Object.assign(inherited, { policy: retry() });
    expect(invalid(() => interceptor(inherited as never)).problems.map((x) => x.option)).toEqual(['idempotencyKey']);
    expect(() => interceptor({ policy: retry(), idempotencyKey: undefined } as never)).not.toThrow();
    const both = invalid(() =>
      interceptor({ policy: retry(), generateIdempotencyKeys: true, honorIdempotencyKey: false }),
    );
    expect(both.problems.map((x) => x.option)).toEqual(['honorIdempotencyKey']);
  });

  it("handle: a plain object is refused, saying what handle takes; a helper's classifier is taken", () => {
    for (const make of [
      (h: unknown) => retry({ handle: h as never }),
      (h: unknown) => circuitBreaker({ handle: h as never }),
      (h: unknown) => fallback({ value: 1, handle: h as never }),
    ]) {
      const e = invalid(() => make({ errorsOnly: true }));
      expect(e.problems).toEqual([
        {
          option: 'handle',
          received: '{"errorsOnly":true}',
          expected:
            'a function (error) => boolean, or handleOutcomes(), handleResults(), handleErrors() or handleAllErrors',
        },
      ]);
      for (const h of [
        handleOutcomes(() => true),
        handleResults(() => true),
        handleErrors(() => true),
        handleAllErrors,
      ])
        expect(() => make(h)).not.toThrow();
    }
  });

  it('declareJetStreamTopology: refuses what the server would refuse, and blames only an unreadable option', async () => {
    const problems = async (options: object) => {
      const e = await declareJetStreamTopology(jsm, options as never).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (!(e instanceof InvalidOptionsError)) throw new Error(`expected InvalidOptionsError, got ${String(e)}`);
      return e.problems.map((p) => p.option);
    };
    const base = { stream: 'S', subjects: ['orders.>'], consumer: 'w' };
    // The server: "consumer filter subject is not a valid subset of the interest subjects".
    expect(await problems({ ...base, filterSubject: '*.eu' })).toEqual(['filterSubject']);
    expect(await problems({ ...base, deadLetterStream: 'S' })).toEqual(['deadLetterStream']);
    // maxDeliver is judged on its own when maxDeliveries is invalid (it was not reported at all).
    expect(await problems({ ...base, maxDeliveries: 0, maxDeliver: 'x' })).toEqual(['maxDeliveries', 'maxDeliver']);
    // Beyond int64 nanoseconds (the server refused them, after the streams were made).
    expect(await problems({ ...base, handlerTimeoutMs: 1e13, ackWaitMs: 1e13, maxAgeMs: 2 ** 60 })).toEqual([
      'handlerTimeoutMs',
      'maxAgeMs',
      'ackWaitMs',
    ]);
    const getter = {
      ...base,
      get retention(): string {
        throw new Error('x');
      },
    };
    expect(await problems(getter)).toEqual(['retention']);
  });

  it('timeout: a limit given as a string or a bigint is blamed on ms, saying a number is expected', () => {
    expect(invalid(() => timeout('2000' as never)).message).toBe(
      'timeout: invalid options\n  - ms: expected a number > 0 (the limit in ms), or { ms, name?, clock? }, got "2000"',
    );
    expect(invalid(() => timeout(2000n as never)).problems.map((p) => p.option)).toEqual(['ms']);
  });
});
