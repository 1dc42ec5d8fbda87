import { DeadlineEntry } from './deadline-queue.js';
import { Properties } from './properties.js';
import { keepShape } from './shapes.js';

/**
 * What an operation receives when a policy runs it.
 *
 * @example
 * ```ts
 * await policy.execute(({ signal, attempt }) => fetch(url, { signal, headers: { 'x-attempt': String(attempt) } }));
 * ```
 */
export interface Context {
  /**
   * Aborts when this attempt should stop: the caller aborted (reason: the caller's `signal.reason`), a timeout
   * fired (reason: a `TimeoutError`). Created on first read, so an operation that never reads it costs nothing.
   */
  readonly signal: AbortSignal;
  /** The attempt number, 1 for the first call; a retry policy increments it. */
  readonly attempt: number;
  /** The low-cardinality operation name given to `execute` (default `'default'`); used in events and metrics. */
  readonly operation: string;
  /** A typed property bag shared by every policy and attempt of this execution. */
  readonly properties: Properties;
}

/** Something that wants to know when a context aborts. */
export interface AbortListener {
  _onAbort(reason: unknown): void;
}

/**
 * Every bulwark listener of one caller signal, behind a single `abort` listener on it.
 *
 * Why: a service often shares one signal (its shutdown signal, say) across many concurrent calls, and each call
 * may wait under a timeout, a retry backoff or a bulkhead queue. One listener per waiter would pile up on the
 * signal and trip Node's MaxListenersExceededWarning past 10. With a fan-out, bulwark holds at most one listener
 * per signal, added when the first waiter subscribes and removed when the last one leaves.
 */
class SignalFanout {
  readonly #signal: AbortSignal;
  readonly #listeners = new Set<AbortListener>();

  constructor(signal: AbortSignal) {
    this.#signal = signal;
  }

  add(l: AbortListener): void {
    if (this.#listeners.size === 0) this.#signal.addEventListener('abort', this);
    this.#listeners.add(l);
  }

  delete(l: AbortListener): void {
    if (this.#listeners.delete(l) && this.#listeners.size === 0) this.#signal.removeEventListener('abort', this);
  }

  handleEvent(): void {
    const reason = this.#signal.reason;
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    this.#signal.removeEventListener('abort', this);
    for (const l of listeners) l._onAbort(reason);
  }
}

// Keep the fan-out's map alive across full GCs (see shapes.ts). Not Node's AbortSignal: Node 20 gives every
// signal a hidden class of its own, so there is no shared one to keep.
keepShape(new SignalFanout(new AbortController().signal));

const FANOUTS = new WeakMap<AbortSignal, SignalFanout>();

function fanoutOf(signal: AbortSignal): SignalFanout {
  let f = FANOUTS.get(signal);
  if (f === undefined) {
    f = new SignalFanout(signal);
    FANOUTS.set(signal, f);
  }
  return f;
}

/**
 * A work item a timeout stopped waiting for while it keeps running. Bulkheads look at these to keep their slot
 * until the real work ends.
 * @internal
 */
export class Orphan {
  done = false;
  waiters: (() => void)[] | undefined = undefined;
  /** The context of the timeout that gave up on the work: only bulkheads around it wait for the work. */
  readonly ctx: ExecutionContext | undefined;

  constructor(ctx: ExecutionContext | undefined) {
    this.ctx = ctx;
  }

  finish(): void {
    this.done = true;
    const w = this.waiters;
    this.waiters = undefined;
    if (w !== undefined) for (const fn of w) fn();
  }
}
keepShape(new Orphan(undefined));

/** The reason of a scope that has not aborted: a value no caller can pass. */
export const LIVE: unique symbol = Symbol('bulwark.live');

/**
 * The state a cancel scope keeps: {@link CancelScope}'s fields, shared with the timeout's attempt (which is a
 * context view as well as a scope, so it cannot extend CancelScope). The functions below are the scope's logic
 * for both. @internal
 */
export interface ScopeState {
  _sReason: unknown;
  _sAc: AbortController | undefined;
  _sListeners: AbortListener | Set<AbortListener> | undefined;
}

/** The signal of a scope, its AbortController created on first read. @internal */
export function scopeSignal(s: ScopeState): AbortSignal {
  if (s._sAc === undefined) {
    s._sAc = new AbortController();
    if (s._sReason !== LIVE) s._sAc.abort(s._sReason);
  }
  return s._sAc.signal;
}

/** Aborts a scope: its signal (if created) and every listener. Called once per scope. @internal */
export function scopeAbort(s: ScopeState, reason: unknown): void {
  s._sReason = reason;
  s._sAc?.abort(reason);
  const listeners = s._sListeners;
  s._sListeners = undefined;
  if (listeners instanceof Set) for (const l of listeners) l._onAbort(reason);
  else listeners?._onAbort(reason);
}

/** @internal */
export function scopeAddListener(s: ScopeState, l: AbortListener): void {
  const current = s._sListeners;
  if (current === undefined || current === l) s._sListeners = l;
  else if (current instanceof Set) current.add(l);
  else s._sListeners = new Set([current, l]);
}

/** @internal */
export function scopeRemoveListener(s: ScopeState, l: AbortListener): void {
  const current = s._sListeners;
  if (current === l) s._sListeners = undefined;
  else if (current instanceof Set) current.delete(l);
}

/**
 * What a context view needs of its cancel scope. {@link CancelScope} is the base class for it; the per-call objects
 * that are a scope among other things (a timeout's attempt, a fused call) hold the same fields themselves and share
 * the scope's logic through the `scope*` functions above.
 * @internal
 */
export interface Scope {
  readonly aborted: boolean;
  readonly reason: unknown;
  readonly signal: AbortSignal;
  addListener(l: AbortListener): void;
  removeListener(l: AbortListener): void;
}

/**
 * The cancellation scope of one attempt under a timeout. It aborts when its own deadline passes or when its
 * parent (the caller's signal or an enclosing scope) aborts. Its AbortController is created only when someone
 * reads the signal.
 * @internal
 */
export abstract class CancelScope extends DeadlineEntry implements AbortListener, ScopeState, Scope {
  /** The abort reason, or {@link LIVE} while not aborted. One field for both: thousands of scopes may be pending. */
  declare _sReason: unknown;
  declare _sAc: AbortController | undefined;
  /**
   * Who listens to this scope's abort: usually one (the attempt or the queued call inside it), so one is held as
   * is and a Set is made only for a second.
   */
  declare _sListeners: AbortListener | Set<AbortListener> | undefined;

  // Fields assigned here, not by initialisers, and no private names: see DeadlineEntry. Subclasses made per call
  // follow the same rule.
  constructor() {
    super();
    this._sReason = LIVE;
    this._sAc = undefined;
    this._sListeners = undefined;
  }

  /** Whether the scope has aborted. */
  get aborted(): boolean {
    return this._sReason !== LIVE;
  }

  /** The abort reason (undefined while not aborted; an abort reason may be undefined too). */
  get reason(): unknown {
    return this._sReason === LIVE ? undefined : this._sReason;
  }

  get signal(): AbortSignal {
    return scopeSignal(this);
  }

  /** Aborts the scope: its signal (if created) and every listener, once. */
  abort(reason: unknown): void {
    // Called once: a timeout attempt abandons itself at most once.
    scopeAbort(this, reason);
  }

  addListener(l: AbortListener): void {
    scopeAddListener(this, l);
  }

  removeListener(l: AbortListener): void {
    scopeRemoveListener(this, l);
  }

  abstract _onAbort(reason: unknown): void;
}

/** Per-call state that most calls never touch. @internal */
class CallExtras {
  props: Properties | undefined;
  orphans: Orphan[] | undefined = undefined;
  /** The signal handed out when there is no caller signal and no scope, created on first read. */
  own: AbortController | undefined = undefined;
  /** The fan-out of the caller's signal, once looked up. */
  fanout: SignalFanout | undefined = undefined;

  constructor(props: Properties | undefined) {
    this.props = props;
  }
}
keepShape(new CallExtras(undefined));

/**
 * The context of one execution. The root is created once per `execute`; a timeout or a retry after the first
 * attempt derives a view with its own scope or attempt number. Per-call state (caller signal, properties,
 * orphans) lives on the root and is shared by every view.
 * @internal
 */
export class ExecutionContext implements Context {
  // `declare`: assigned by the constructor, with no per-instance initialiser (see DeadlineEntry).
  declare readonly attempt: number;
  declare readonly operation: string;
  /** The context this view was derived from (undefined for the root). */
  declare readonly _parent: ExecutionContext | undefined;
  declare readonly _caller: AbortSignal | undefined;
  declare _scope: Scope | undefined;
  /**
   * Root only: per-call state most calls never need, allocated on first use. Why apart: every field of this
   * class is paid for by every context, root and view alike, on every call.
   */
  declare _extra: CallExtras | undefined;

  /**
   * Every argument given, none defaulted, and the extras made by the caller: V8 counts a constructor's whole bytecode
   * against its inlining budget wherever it is inlined (a root per call in `execute`, a view per attempt), and default
   * parameters and a conditional `new` there took as much again as the six stores.
   */
  constructor(
    caller: AbortSignal | undefined,
    operation: string,
    extra: CallExtras | undefined,
    attempt: number,
    scope: Scope | undefined,
    parent: ExecutionContext | undefined,
  ) {
    this._caller = caller;
    this.operation = operation;
    this._extra = extra;
    this.attempt = attempt;
    this._scope = scope;
    this._parent = parent;
  }

  /**
   * The root of this view: the context `execute` made. Why a walk and not a field: views are at most a few levels
   * deep (a retry's attempt, a timeout's scope), and a field would cost every context, on every call.
   */
  get _root(): ExecutionContext {
    let c: ExecutionContext = this;
    while (c._parent !== undefined) c = c._parent;
    return c;
  }

  get signal(): AbortSignal {
    if (this._scope !== undefined) return this._scope.signal;
    if (this._caller !== undefined) return this._caller;
    // One never-aborted signal per call, not one shared by the process: operations add listeners to it, and a
    // shared one would collect them from every concurrent call (and keep those never removed forever).
    const extra = this._root._extras();
    if (extra.own === undefined) extra.own = new AbortController();
    return extra.own.signal;
  }

  get properties(): Properties {
    const extra = this._root._extras();
    if (extra.props === undefined) extra.props = new Properties();
    return extra.props;
  }

  /** The root's extras, created on first use. */
  _extras(): CallExtras {
    if (this._extra === undefined) this._extra = new CallExtras(undefined);
    return this._extra;
  }

  /** Whether this view is cancelled: its scope aborted or, with no scope, the caller aborted. */
  get _aborted(): boolean {
    if (this._scope !== undefined) return this._scope.aborted;
    return this._caller?.aborted === true;
  }

  /** The abort reason of this view; only meaningful when `_aborted`. */
  get _reason(): unknown {
    if (this._scope !== undefined) return this._scope.reason;
    return this._caller?.reason;
  }

  /** A view with another attempt number or scope; the root's per-call state is shared. */
  _derive(attempt: number, scope: Scope | undefined): ExecutionContext {
    return new ExecutionContext(this._caller, this.operation, undefined, attempt, scope, this);
  }

  /** Subscribes to this view's abort. Returns whether it subscribed (false when nothing can abort it). */
  _subscribe(l: AbortListener): boolean {
    if (this._scope !== undefined) {
      this._scope.addListener(l);
      return true;
    }
    if (this._caller !== undefined) {
      const extra = this._root._extras();
      if (extra.fanout === undefined) extra.fanout = fanoutOf(this._caller);
      extra.fanout.add(l);
      return true;
    }
    return false;
  }

  _unsubscribe(l: AbortListener): void {
    if (this._scope !== undefined) this._scope.removeListener(l);
    else this._root._extra?.fanout?.delete(l);
  }

  /** Records work that keeps running after a timeout gave up on it. */
  _addOrphan(): Orphan {
    const o = new Orphan(this);
    const extra = this._root._extras();
    (extra.orphans ??= []).push(o);
    return o;
  }

  /** Number of orphans recorded so far in this execution; a mark for {@link _whenOrphansDone}. */
  get _orphanMark(): number {
    const list = this._root._extra?.orphans;
    return list === undefined ? 0 : list.length;
  }

  /**
   * Calls `fn` once every orphan recorded since `mark` by a timeout inside this view (this view or one derived
   * from it) has settled. Returns false and does not call `fn` when none is pending, so the caller can take its
   * fast path. Why inside only: a later attempt's abandoned work (a retry around this view) is not this view's
   * work, and must not hold this view's bulkhead slot.
   */
  _whenOrphansDone(mark: number, fn: () => void): boolean {
    const list = this._root._extra?.orphans;
    if (list === undefined) return false;
    let pending = 0;
    for (let i = mark; i < list.length; i++) if (owns(this, list[i] as Orphan)) pending++;
    if (pending === 0) return false;
    const onDone = (): void => {
      if (--pending === 0) fn();
    };
    for (let i = mark; i < list.length; i++) {
      const o = list[i] as Orphan;
      if (owns(this, o)) (o.waiters ??= []).push(onDone);
    }
    return true;
  }
}

/**
 * Whether `o` is pending work of a timeout inside `view`. A function, not a private method: a class with private
 * methods stamps a brand on every instance it makes.
 */
function owns(view: ExecutionContext, o: Orphan): boolean {
  if (o.done) return false;
  for (let c = o.ctx; c !== undefined; c = c._parent) if (c === view) return true;
  return false;
}

// The root and every derived view share this class's map: keep it alive (see shapes.ts).
keepShape(new ExecutionContext(undefined, 'default', undefined, 1, undefined, undefined));

/** Options of one `execute` call. */
export interface ExecuteOptions {
  /** The caller's signal. A pre-aborted signal rejects at once with its reason, without running the operation. */
  signal?: AbortSignal | undefined;
  /**
   * A low-cardinality operation name for events and metrics, such as `'GET /users/:id'` (never a raw URL).
   * @defaultValue `'default'`
   */
  operation?: string | undefined;
  /** A property bag visible to the operation as `ctx.properties`. */
  properties?: Properties | undefined;
}

/** @internal */
export function rootContext(options: ExecuteOptions | undefined | null): ExecutionContext {
  if (options == null) return new ExecutionContext(undefined, 'default', undefined, 1, undefined, undefined);
  const props = options.properties;
  const extra = props === undefined ? undefined : new CallExtras(props);
  return new ExecutionContext(options.signal, options.operation ?? 'default', extra, 1, undefined, undefined);
}
