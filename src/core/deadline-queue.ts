import type { Clock, TimerHandle } from './clock.js';

/**
 * An entry of a {@link DeadlineQueue}: intrusive links, so adding and removing allocates nothing. An entry belongs to
 * one queue (its policy's) and is only ever added to and removed from that one; it is queued when it has a
 * predecessor or is the head. Why no back pointer to the queue: thousands of these may be pending, and every field
 * is paid for by each.
 * @internal
 */
export abstract class DeadlineEntry {
  _deadline = 0;
  _prev: DeadlineEntry | undefined = undefined;
  _next: DeadlineEntry | undefined = undefined;
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
 * @internal
 */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #delayMs: number;
  #head: DeadlineEntry | undefined = undefined;
  #tail: DeadlineEntry | undefined = undefined;
  #timer: TimerHandle = undefined;
  #armed = false;
  #reffed = false;
  #size = 0;
  readonly #onTimer = (): void => this.#fire();

  constructor(clock: Clock, delayMs: number) {
    this.#clock = clock;
    this.#delayMs = delayMs;
  }

  /** Entries waiting for their deadline. */
  get size(): number {
    return this.#size;
  }

  add(entry: DeadlineEntry): void {
    entry._deadline = this.#clock.now() + this.#delayMs;
    entry._prev = this.#tail;
    entry._next = undefined;
    if (this.#tail === undefined) this.#head = entry;
    else this.#tail._next = entry;
    this.#tail = entry;
    if (this.#size++ === 0 && this.#armed && !this.#reffed) this.#ref(true);
    if (!this.#armed) this.#arm(this.#delayMs);
  }

  remove(entry: DeadlineEntry): void {
    const { _prev: prev, _next: next } = entry;
    if (prev === undefined && this.#head !== entry) return; // not queued (settled, expired or cleared)
    if (prev === undefined) this.#head = next;
    else prev._next = next;
    if (next === undefined) this.#tail = prev;
    else next._prev = prev;
    entry._prev = entry._next = undefined;
    // The timer stays armed: clearing and re-arming per call is the cost this queue exists to avoid. When it
    // fires on an empty list it simply does not re-arm; meanwhile it no longer keeps the process alive.
    if (--this.#size === 0 && this.#reffed) this.#ref(false);
  }

  /** Clears the timer and forgets every entry without expiring it. */
  clear(): void {
    let e = this.#head;
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
  }

  #arm(delayMs: number): void {
    this.#armed = true;
    // Armed only with entries pending (add, or a re-arm for the head), so it starts out keeping the process alive.
    this.#reffed = true;
    this.#timer = this.#clock.setTimeout(this.#onTimer, delayMs, false);
  }

  #ref(ref: boolean): void {
    this.#reffed = ref;
    this.#clock.setRef?.(this.#timer, ref);
  }

  #fire(): void {
    this.#armed = false;
    this.#reffed = false;
    this.#timer = undefined;
    const now = this.#clock.now();
    let head = this.#head;
    while (head !== undefined && head._deadline <= now) {
      this.remove(head);
      head._expire();
      head = this.#head;
    }
    if (head !== undefined && !this.#armed) this.#arm(Math.max(1, Math.ceil(head._deadline - now)));
  }
}
