import { isMainThread } from 'node:worker_threads';
import type { Clock, TimerHandle } from './clock.js';

/**
 * Queues whose timer is armed, when keep-alive is lazy (see {@link DeadlineQueue}): the ones to look at when the
 * process is about to exit.
 */
const ARMED = new Set<DeadlineQueue>();
let hooked = false;

/** Once per process: when the event loop runs dry, keep it alive for every deadline still pending. */
function hookBeforeExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('beforeExit', () => {
    for (const q of ARMED) q._keepAlive();
  });
}

/**
 * What a {@link DeadlineQueue} holds: intrusive links and the deadline, so adding and removing allocates nothing.
 * {@link DeadlineEntry} is the base class for it; the per-call objects that are a deadline among other things (a
 * timeout's attempt, a fused call) hold the same fields themselves.
 * @internal
 */
export interface QueuedDeadline {
  _deadline: number;
  _prev: QueuedDeadline | undefined;
  _next: QueuedDeadline | undefined;
  /** Called once when the entry's deadline passes while it is still queued. */
  _expire(): void;
}

/**
 * An entry of a {@link DeadlineQueue}: intrusive links, so adding and removing allocates nothing. An entry belongs to
 * one queue (its policy's) and is only ever added to and removed from that one; it is queued when it has a
 * predecessor or is the head. Why no back pointer to the queue: thousands of these may be pending, and every field
 * is paid for by each.
 * @internal
 */
export abstract class DeadlineEntry implements QueuedDeadline {
  // Why `declare` and assignments in the constructor rather than field initialisers: an initialiser is a function
  // of its own that each level of a class hierarchy runs per instance, and a subclass's `super()` through it was
  // not inlined (callgrind: about 600 instructions per timeout call for the constructor chain alone).
  declare _deadline: number;
  declare _prev: QueuedDeadline | undefined;
  declare _next: QueuedDeadline | undefined;

  constructor() {
    this._deadline = 0;
    this._prev = undefined;
    this._next = undefined;
  }
  /** Called once when the entry's deadline passes while it is still queued. */
  abstract _expire(): void;
}

/**
 * One timer for many deadlines of the same length.
 *
 * Why: a timeout or a queue wait has a fixed length per policy, so deadlines are added in increasing order and
 * a FIFO list stays sorted. One clock timer, armed for the head, serves every pending call; a call that settles
 * unlinks itself in O(1) and never re-arms the timer. When the timer fires it expires what is due and re-arms
 * for the new head, or stays disarmed when the list is empty.
 *
 * The timer keeps the process alive only while a deadline is pending: an operation stuck on a lost callback
 * must still time out, even when nothing else holds the event loop. Once the list is empty the timer is
 * unref'd, so a process that has finished its work exits at once instead of waiting for a stale deadline.
 *
 * On the main thread that is done lazily: the timer is never ref'd while the process has other work, and when the
 * event loop runs dry (`beforeExit`) every queue with a deadline pending refs its timer, so the process stays
 * until the deadline fires. Why: ref'ing on the first pending entry and unref'ing on the last cost two calls into
 * Node's timer binding per call for serial callers (about 100 ns, measured), for a guarantee that only matters when
 * nothing else holds the loop. Worker threads (whose `beforeExit` is not a dependable last call) and clocks without
 * `setRef` ref and unref eagerly, as before.
 * @internal
 */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #delayMs: number;
  /**
   * The first entry, but only once there have been two at a time: with one entry (or none) it may be undefined and
   * the head is the tail (`#head ?? #tail`). Why: for a caller with one call in flight, the list goes from empty to
   * one entry and back on every call, and each store of a new (young) entry into this long-lived (old) queue costs
   * a write barrier call in V8; setting the head too cost a second one per call.
   */
  #head: QueuedDeadline | undefined = undefined;
  #tail: QueuedDeadline | undefined = undefined;
  #timer: TimerHandle = undefined;
  #armed = false;
  #reffed = false;
  #size = 0;
  /** Whether the timer is ref'd only at `beforeExit` (main thread, a clock with `setRef`). */
  readonly #lazy: boolean;
  readonly #onTimer = (): void => this.#fire();

  /** `lazyKeepAlive` is for tests; by default it is lazy on the main thread with a clock that has `setRef`. */
  constructor(clock: Clock, delayMs: number, lazyKeepAlive = isMainThread && typeof clock.setRef === 'function') {
    this.#clock = clock;
    this.#delayMs = delayMs;
    this.#lazy = lazyKeepAlive;
  }

  /** @internal `beforeExit`: hold the process for a pending deadline. */
  _keepAlive(): void {
    if (this.#size > 0 && this.#armed && !this.#reffed) this.#ref(true);
  }

  /** Entries waiting for their deadline. */
  get size(): number {
    return this.#size;
  }

  /** `now`: a reading of this queue's clock taken just before, when the caller has one (saves a read). */
  add(entry: QueuedDeadline, now = this.#clock.now()): void {
    entry._deadline = now + this.#delayMs;
    entry._prev = this.#tail;
    entry._next = undefined;
    const tail = this.#tail;
    if (tail !== undefined) {
      if (this.#head === undefined) this.#head = tail;
      tail._next = entry;
    }
    this.#tail = entry;
    const first = this.#size++ === 0;
    // Armed and lazy (or already ref'd), as it stays for serial callers: nothing to do. The rest in a method of its
    // own: V8 inlines a limited amount of bytecode into one optimised function, and this runs on every call.
    if (!this.#armed || (!this.#lazy && !this.#reffed)) this.#wake(first);
  }

  /** `add` on a disarmed timer, or an eager one not holding the process: arm it, or ref it for a first entry. */
  #wake(first: boolean): void {
    if (first && this.#armed && !this.#reffed && !this.#lazy) this.#ref(true);
    if (!this.#armed) this.#arm(this.#delayMs);
  }

  remove(entry: QueuedDeadline): void {
    const { _prev: prev, _next: next } = entry;
    if (prev === undefined && (this.#head ?? this.#tail) !== entry) return; // not queued (settled, expired or cleared)
    if (prev !== undefined) prev._next = next;
    else if (this.#head !== undefined) this.#head = next;
    if (next === undefined) this.#tail = prev;
    else next._prev = prev;
    entry._prev = entry._next = undefined;
    // The timer stays armed: clearing and re-arming per call is the cost this queue exists to avoid. When it
    // fires on an empty list it simply does not re-arm; meanwhile it no longer keeps the process alive.
    if (--this.#size === 0 && this.#reffed) this.#ref(false);
  }

  /** Clears the timer and forgets every entry without expiring it. */
  clear(): void {
    let e = this.#head ?? this.#tail;
    while (e !== undefined) {
      const next = e._next;
      e._prev = e._next = undefined;
      e = next;
    }
    this.#head = this.#tail = undefined;
    this.#size = 0;
    if (this.#armed) this.#clock.clearTimeout(this.#timer);
    this.#armed = false;
    this.#reffed = false;
    this.#timer = undefined;
    ARMED.delete(this);
  }

  #arm(delayMs: number): void {
    this.#armed = true;
    // Armed only with entries pending (add, or a re-arm for the head), so eagerly it starts out keeping the process
    // alive; lazily it never does until `beforeExit` asks.
    this.#reffed = !this.#lazy;
    this.#timer = this.#clock.setTimeout(this.#onTimer, delayMs, this.#lazy);
    if (this.#lazy) {
      ARMED.add(this);
      hookBeforeExit();
    }
  }

  #ref(ref: boolean): void {
    this.#reffed = ref;
    this.#clock.setRef?.(this.#timer, ref);
  }

  #fire(): void {
    this.#armed = false;
    this.#reffed = false;
    this.#timer = undefined;
    if (this.#lazy) ARMED.delete(this);
    const now = this.#clock.now();
    let head = this.#head ?? this.#tail;
    while (head !== undefined && head._deadline <= now) {
      this.remove(head);
      head._expire();
      head = this.#head ?? this.#tail;
    }
    if (head !== undefined && !this.#armed) this.#arm(Math.max(1, Math.ceil(head._deadline - now)));
  }
}
