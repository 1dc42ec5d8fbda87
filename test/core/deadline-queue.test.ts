import { describe, expect, it } from 'vitest';
import { DeadlineEntry, DeadlineQueue } from '../../src/core/deadline-queue.js';
import { FakeClock } from '../../src/testing/index.js';

class Entry extends DeadlineEntry {
  constructor(
    readonly id: string,
    readonly log: string[],
  ) {
    super();
  }
  _expire(): void {
    this.log.push(`${this.id}@`);
  }
}

describe('DeadlineQueue', () => {
  it('expires entries in order at their own deadlines with one timer', async () => {
    const clock = new FakeClock();
    const q = new DeadlineQueue(clock, 100);
    const log: string[] = [];
    const a = new Entry('a', log);
    const b = new Entry('b', log);
    const c = new Entry('c', log);
    q.add(a);
    await clock.advance(30);
    q.add(b);
    q.add(c);
    expect(q.size).toBe(3);
    expect(clock.pendingTimers).toBe(1);
    q.remove(b);
    q.remove(b); // idempotent
    await clock.advance(69);
    expect(log).toEqual([]);
    await clock.advance(1);
    expect(log).toEqual(['a@']);
    expect(clock.nextTimerAt).toBe(130);
    await clock.advance(30);
    expect(log).toEqual(['a@', 'c@']);
    expect(q.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does not re-arm when the list is empty at fire time, and re-arms on the next add', async () => {
    const clock = new FakeClock();
    const q = new DeadlineQueue(clock, 50);
    const log: string[] = [];
    const a = new Entry('a', log);
    q.add(a);
    q.remove(a);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(50);
    expect(clock.pendingTimers).toBe(0);
    q.add(new Entry('b', log));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(50);
    expect(log).toEqual(['b@']);
  });

  it('keeps its order through every shrink and growth past one entry (the head is kept lazily)', async () => {
    // One entry at a time, then two, back to one (either end removed), then growth again: the head must be right
    // at each step, including a removed entry that is removed again (a no-op) once the list has another head.
    const clock = new FakeClock();
    const q = new DeadlineQueue(clock, 100);
    const log: string[] = [];
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((id) => new Entry(id, log)) as [
      Entry,
      Entry,
      Entry,
      Entry,
      Entry,
    ];
    q.add(a);
    q.remove(a);
    q.remove(a);
    expect(q.size).toBe(0);
    q.add(a); // t=0, alone
    await clock.advance(10);
    q.add(b); // t=10: two
    q.remove(a); // the head goes: b alone
    q.remove(a);
    await clock.advance(10);
    q.add(c); // t=20: b, c
    q.remove(c); // the tail goes: b alone
    q.remove(c);
    await clock.advance(10);
    q.add(d); // t=30: b, d
    q.add(e); // t=30: b, d, e
    q.remove(d); // the middle goes
    expect(q.size).toBe(2);
    await clock.advance(79); // t=109
    expect(log).toEqual([]);
    await clock.advance(1); // t=110
    expect(log).toEqual(['b@']);
    q.remove(b); // already expired: a no-op, e stays queued
    expect(q.size).toBe(1);
    await clock.advance(19); // t=129
    expect(log).toEqual(['b@']);
    await clock.advance(1); // t=130
    expect(log).toEqual(['b@', 'e@']);
    expect(q.size).toBe(0);
    q.add(c); // reusable after expiring and being removed
    await clock.advance(100);
    expect(log).toEqual(['b@', 'e@', 'c@']);
  });

  it('removes the head, the tail and a middle entry, and clear() forgets everything', async () => {
    const clock = new FakeClock();
    const q = new DeadlineQueue(clock, 10);
    const log: string[] = [];
    const es = ['a', 'b', 'c', 'd'].map((id) => new Entry(id, log));
    for (const e of es) q.add(e);
    q.remove(es[0] as Entry);
    q.remove(es[3] as Entry);
    q.remove(es[1] as Entry);
    expect(q.size).toBe(1);
    q.clear();
    expect(q.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    expect(log).toEqual([]);
    q.clear();
  });
});

describe('DeadlineQueue keeps the process alive only while a deadline is pending', () => {
  it('refs its timer while entries are queued and unrefs it when the last one leaves', async () => {
    const clock = new FakeClock();
    const refs: boolean[] = [];
    const recording = {
      now: () => clock.now(),
      setTimeout: (cb: () => void, ms: number) => clock.setTimeout(cb, ms),
      clearTimeout: (h: unknown) => clock.clearTimeout(h),
      setRef: (_h: unknown, ref: boolean) => {
        refs.push(ref);
      },
    };
    const q = new DeadlineQueue(recording, 100, false); // eager, as on a worker thread
    const log: string[] = [];
    const a = new Entry('a', log);
    const b = new Entry('b', log);
    q.add(a); // arms a ref'd timer
    q.add(b);
    q.remove(a);
    expect(refs).toEqual([]);
    q.remove(b); // empty: the armed timer must not hold the process
    expect(refs).toEqual([false]);
    q.add(a); // pending again while the same timer is armed
    expect(refs).toEqual([false, true]);
    q.remove(a);
    expect(refs).toEqual([false, true, false]);
    await clock.advance(100); // fires on an empty list: not re-armed
    expect(clock.pendingTimers).toBe(0);
    q.add(a); // disarmed: arms a new timer, which holds the process from the start (no setRef call needed)
    q.add(b);
    expect(clock.pendingTimers).toBe(1);
    expect(refs).toEqual([false, true, false]);
    await clock.advance(100);
    expect(log).toEqual(['a@', 'b@']);
    expect(q.size).toBe(0);
  });
});

describe('DeadlineQueue keeps the process alive lazily on the main thread', () => {
  it('refs nothing per call; at beforeExit a pending deadline refs the timer, and the last entry out unrefs it', async () => {
    const clock = new FakeClock();
    const refs: boolean[] = [];
    const unrefArms: boolean[] = [];
    const recording = {
      now: () => clock.now(),
      setTimeout: (cb: () => void, ms: number, unref?: boolean) => {
        unrefArms.push(unref === true);
        return clock.setTimeout(cb, ms);
      },
      clearTimeout: (h: unknown) => clock.clearTimeout(h),
      setRef: (_h: unknown, ref: boolean) => {
        refs.push(ref);
      },
    };
    const q = new DeadlineQueue(recording, 100);
    const log: string[] = [];
    const a = new Entry('a', log);
    for (let i = 0; i < 3; i++) {
      q.add(a);
      q.remove(a);
    }
    expect(refs).toEqual([]); // serial calls: no timer binding call per call
    expect(unrefArms).toEqual([true]); // armed once, not holding the process
    q._keepAlive(); // beforeExit with nothing pending: nothing to hold
    expect(refs).toEqual([]);
    q.add(a);
    q._keepAlive(); // beforeExit with a deadline pending: hold the process until it fires
    expect(refs).toEqual([true]);
    q.remove(a); // the last one out lets go
    expect(refs).toEqual([true, false]);
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
    q.add(a); // disarmed: arms again, still not holding the process, and expires it on time
    expect(unrefArms).toEqual([true, true]);
    expect(refs).toEqual([true, false]);
    await clock.advance(100);
    expect(log).toEqual(['a@']);
  });
});

describe('DeadlineQueue membership without a back pointer', () => {
  it('removing an entry that is not queued (never added, removed, expired) changes nothing, head or not', async () => {
    const { DeadlineEntry: Base, DeadlineQueue: Queue } = await import('../../src/core/deadline-queue.js');
    const { FakeClock: Clock } = await import('../../src/testing/index.js');
    const fired: string[] = [];
    class E extends Base {
      constructor(readonly id: string) {
        super();
      }
      _expire(): void {
        fired.push(this.id);
      }
    }
    const clock = new Clock();
    const q = new Queue(clock, 10);
    const a = new E('a');
    const b = new E('b');
    const stranger = new E('stranger');
    q.add(a);
    q.remove(stranger); // never added: a stays the head
    expect(q.size).toBe(1);
    q.add(b);
    q.remove(a);
    q.remove(a); // twice: b is now the head and must stay
    expect(q.size).toBe(1);
    await clock.advance(10);
    expect(fired).toEqual(['b']);
    q.remove(b); // expired already
    expect(q.size).toBe(0);
  });
});
