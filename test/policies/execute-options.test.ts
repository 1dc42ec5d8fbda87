// `execute` with no options takes a path of its own (no options read, no signal checked): it must behave as
// `execute(op, {})` does.
import { describe, expect, it } from 'vitest';
import { bulkhead, type Context, circuitBreaker, type ExecutionCompletedEvent, retry } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

describe('execute without options', () => {
  it('gives each call a context of its own: attempt 1, operation "default", a live signal, fresh properties', async () => {
    const seen: Context[] = [];
    const p = retry({ clock: new FakeClock(), maxAttempts: 1 });
    const op = (ctx: Context) => {
      seen.push(ctx);
      return ctx.properties;
    };
    const a = await p.execute(op);
    const b = await p.execute(op, {});
    const c = await p.execute(op);
    expect(seen.map((ctx) => [ctx.attempt, ctx.operation, ctx.signal.aborted])).toEqual([
      [1, 'default', false],
      [1, 'default', false],
      [1, 'default', false],
    ]);
    expect(new Set([seen[0], seen[1], seen[2]]).size).toBe(3);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(seen[0]?.signal).not.toBe(seen[2]?.signal);
  });

  it('still emits execution.completed, and passes values and errors through unchanged', async () => {
    const clock = new FakeClock();
    const p = circuitBreaker({ clock, window: { kind: 'count', size: 10 }, failureRate: 0.5 });
    const events: ExecutionCompletedEvent[] = [];
    await expect(p.execute(() => 1)).resolves.toBe(1);
    const off = p.on('execution.completed', (e) => events.push(e));
    const boom = new Error('boom');
    await expect(p.execute(() => 2)).resolves.toBe(2);
    await expect(p.execute(() => Promise.reject(boom))).rejects.toBe(boom);
    off();
    await expect(p.execute(() => 3)).resolves.toBe(3);
    expect(events.map((e) => [e.result, e.operation, e.attempt])).toEqual([
      ['success', 'default', 1],
      ['failure', 'default', 1],
    ]);
  });

  it('turns a synchronous throw into a rejection', async () => {
    const boom = new Error('sync');
    const p = bulkhead({ limit: 1 });
    const call = p.execute(() => {
      throw boom;
    });
    await expect(call).rejects.toBe(boom);
    expect(p.active).toBe(0);
  });
});
