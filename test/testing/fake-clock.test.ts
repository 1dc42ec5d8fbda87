import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/testing/index.js';

describe('FakeClock', () => {
  it('stands still until advanced and fires due timers in order, each at its own time', async () => {
    const clock = new FakeClock(1_000);
    const log: string[] = [];
    clock.setTimeout(() => log.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => log.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => log.push(`a2@${clock.now()}`), 10);
    const cleared = clock.setTimeout(() => log.push('never'), 5);
    clock.clearTimeout(cleared);
    expect(clock.now()).toBe(1_000);
    expect(clock.pendingTimers).toBe(3);
    expect(clock.nextTimerAt).toBe(1_010);
    await clock.advance(15);
    expect(log).toEqual(['a@1010', 'a2@1010']);
    expect(clock.now()).toBe(1_015);
    await clock.advance(5);
    expect(log).toEqual(['a@1010', 'a2@1010', 'b@1020']);
    expect(clock.nextTimerAt).toBeUndefined();
  });

  it('runs promise continuations between timers, so chained timers within the span fire', async () => {
    const clock = new FakeClock();
    const log: number[] = [];
    const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
    const task = (async () => {
      await sleep(10);
      log.push(clock.now());
      await sleep(10);
      log.push(clock.now());
    })();
    await clock.advance(20);
    await task;
    expect(log).toEqual([10, 20]);
  });

  it('next() and runAll() fire what is pending; runAll() guards against timers that re-arm forever', async () => {
    const clock = new FakeClock();
    expect(await clock.next()).toBe(false);
    let n = 0;
    clock.setTimeout(() => n++, 7);
    expect(await clock.next()).toBe(true);
    expect([n, clock.now()]).toEqual([1, 7]);
    const rearm = () => clock.setTimeout(rearm, 1);
    rearm();
    await expect(clock.runAll(5)).rejects.toThrow(/still 1 timers after firing 5/);
    await expect(clock.advance(-1)).rejects.toThrow(RangeError);
    clock.setTimeout(() => n++, -5);
    await clock.flush();
    await clock.advance(0);
    expect(n).toBe(2);
  });
});
