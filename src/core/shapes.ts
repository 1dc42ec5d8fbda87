/**
 * Keeps the hidden classes of bulwark's per-call objects alive across full garbage collections.
 *
 * Why: V8 builds an object's hidden class (its "map") step by step as class fields are added, and links those
 * steps weakly. Between bursts of calls no per-call object (a context, a timeout attempt, a bulkhead waiter) may be
 * alive; a full GC then frees their maps, and every optimised function that embeds one is thrown away ("deopt:
 * weak objects"). The next calls rebuild the maps and run unoptimised until V8 optimises them again: measured, a
 * batch of calls right after a full GC ran about 5x slower than the next. One instance of each class, held here
 * for the life of the process, keeps its map (and the chain leading to it) alive, so optimised code survives.
 *
 * A kept instance must have the same fields, added in the same order, as the objects made per call: create it
 * with the class's own constructor. A number field that holds fractions per call (a deadline) must hold a
 * fraction in the kept instance too, so its map is the "double field" one the calls use.
 *
 * @module
 * @internal
 */

/**
 * Where kept instances live. Why on `globalThis`: a module-level array that nothing reads is removed by the
 * bundler's tree shaking, and with it the whole point. A registry symbol keeps it out of everyone's way.
 */
const KEPT: object[] = ((globalThis as Record<symbol, object[] | undefined>)[Symbol.for('bulwark.keptShapes.v1')] ??=
  []);

/**
 * The classes passed to {@link fastConstructor}: {@link keepShape} passes every kept subclass, so the rule holds for
 * each per-call class without a call of its own (a test checks the hot ones).
 */
const FAST: unknown[] = [];

/**
 * Holds `instance` for the life of the process and returns it. Cost: one small object per class, once.
 * @internal
 */
export function keepShape<T extends object>(instance: T): T {
  KEPT.push(instance);
  // A per-call subclass (its constructor calls super()) needs its constructor in fast mode too: see fastConstructor.
  const ctor = instance.constructor;
  if (typeof ctor === 'function' && Object.getPrototypeOf(ctor) !== Function.prototype && !FAST.includes(ctor)) {
    fastConstructor(ctor as abstract new (...args: never[]) => unknown);
  }
  return instance;
}

/**
 * Makes V8 keep a class constructor's properties in fast mode, once, when its module loads. {@link keepShape} calls it
 * for every kept subclass; call it yourself after a per-call class whose constructor calls `super()` and that is not
 * kept.
 *
 * Why: the bundle keeps class names (esbuild's keepNames), which redefines `name` on every class constructor in a
 * static block. The constructor then ended up as a dictionary-mode prototype map, and V8 (Node 20 and 24), which
 * optimises a subclass constructor's `super()` by relying on that map being stable (a dictionary map never is), threw
 * away every optimised compile of the constructor when it finished ("aborted optimizing FusedCall ... dependency
 * change", a StableMapDependency) and compiled it again a few thousand calls later. Measured under the undici
 * interceptor: TurboFan ran in steady state, about 2,000 to 3,000 instructions per request; without the static
 * blocks, or after this, no compile is aborted. A property read through an inline cache marks the constructor as a
 * prototype that should stay fast; a function gets its inline caches only after a few calls, hence the loop.
 * @internal
 */
export function fastConstructor(ctor: abstract new (...args: never[]) => unknown): void {
  for (let i = 0; i < 64; i++) nameOf(ctor);
  FAST.push(ctor);
}

/** @internal */
export function fastConstructors(): readonly string[] {
  return FAST.map((c) => (c as { name: string }).name);
}

function nameOf(f: { readonly name: string }): string {
  return f.name;
}

/** The instances kept so far (tests check that the hot classes are all here). @internal */
export function keptShapes(): readonly object[] {
  return KEPT;
}

// The commonest thrown value is a plain Error: retry and the breaker read properties of it (`retryable`,
// `retryAfterMs`), and optimised code that does embeds its map. Keep that map alive too. Other classes of errors
// are the caller's; their code is re-optimised after a full GC like any other.
keepShape(new Error('kept by bulwark for its hidden class'));
