import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  constant,
  type EventType,
  type ExecutionCompletedEvent,
  fallback,
  handleErrors,
  InvalidOptionsError,
  type Outcome,
  PipelinePolicy,
  type Policy,
  pipeline,
  retry,
  TimeoutError,
  timeout,
} from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf, track } from '../helpers/deferred.js';

describe('pipeline: order (first listed is outermost)', () => {
  it('pipeline(fallback, retry): retry runs every attempt, then the fallback replaces the last failure', async () => {
    const clock = new FakeClock();
    const log: string[] = [];
    const p = pipeline(
      fallback({
        value: (o: Outcome<unknown>) => {
          log.push(`fallback(${o.ok ? 'ok' : (o.error as Error).message})`);
          return 'fb';
        },
      }),
      retry({ maxAttempts: 3, backoff: constant(0), clock }),
    );
    p.on('retry.attempt', (e) => log.push(`retry.attempt ${e.attempt}`));
    p.on('fallback.used', () => log.push('fallback.used'));
    const result = await p.execute<string>(({ attempt }) => {
      log.push(`op ${attempt}`);
      throw new Error(`fail ${attempt}`);
    });
    expect(result).toBe('fb');
    expect(log).toEqual([
      'op 1',
      'retry.attempt 1',
      'op 2',
      'retry.attempt 2',
      'op 3',
      'fallback.used',
      'fallback(fail 3)',
    ]);
  });

  it('pipeline(retry, fallback): the inner fallback turns the first failure into a success, so retry never retries', async () => {
    const clock = new FakeClock();
    const log: string[] = [];
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: constant(0), clock }),
      fallback({
        value: () => {
          log.push('fallback');
          return 'fb';
        },
      }),
    );
    p.on('retry.attempt', (e) => log.push(`retry.attempt ${e.attempt}`));
    const result = await p.execute<string>(({ attempt }) => {
      log.push(`op ${attempt}`);
      throw new Error('x');
    });
    expect(result).toBe('fb');
    expect(log).toEqual(['op 1', 'fallback']);
  });

  it('pipeline(retry, timeout): the timeout limits each attempt', async () => {
    const clock = new FakeClock();
    const starts: number[] = [];
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant(10), clock }), timeout({ ms: 50, clock }));
    const call = track(
      p.execute(() => {
        starts.push(clock.now());
        return new Promise<never>(() => {});
      }),
    );
    await clock.advance(169);
    expect(call.settled).toBe(false);
    await clock.advance(1);
    expect(starts).toEqual([0, 60, 120]);
    expect(call.error).toBeInstanceOf(TimeoutError);
  });

  it('pipeline(timeout, retry): the timeout limits the whole call, retries included', async () => {
    const clock = new FakeClock();
    const starts: number[] = [];
    const p = pipeline(timeout({ ms: 50, clock }), retry({ maxAttempts: 10, backoff: constant(20), clock }));
    const call = track(
      p.execute(() => {
        starts.push(clock.now());
        throw new Error('fail');
      }),
    );
    await clock.advance(49);
    expect(call.settled).toBe(false);
    await clock.advance(1);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(starts).toEqual([0, 20, 40]);
    await clock.advance(1_000);
    expect(starts).toEqual([0, 20, 40]);
  });

  it('pipeline(fallback, timeout) falls back on the timeout; pipeline(timeout, fallback) cannot', async () => {
    const clock = new FakeClock();
    const outer = pipeline(fallback({ value: 'fb' }), timeout({ ms: 10, clock }));
    const inner = pipeline(timeout({ ms: 10, clock }), fallback({ value: 'fb' }));
    const a = track(outer.execute(() => new Promise<string>(() => {})));
    const b = track(inner.execute(() => new Promise<string>(() => {})));
    await clock.advance(10);
    expect(a.value).toBe('fb');
    expect(b.error).toBeInstanceOf(TimeoutError);
  });

  it('the fallback predicate of the outer layer sees the error the inner layers produce', async () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    const p = pipeline(
      fallback({
        value: 'fb',
        handle: handleErrors((e) => {
          seen.push((e as Error).name);
          return e instanceof TimeoutError;
        }),
      }),
      retry({ maxAttempts: 2, backoff: constant(0), clock, handle: handleErrors(() => false) }),
      timeout({ ms: 5, clock }),
    );
    const call = track(p.execute(() => new Promise<string>(() => {})));
    await clock.advance(5);
    expect(call.value).toBe('fb');
    expect(seen).toEqual(['TimeoutError']);
  });
});

describe('pipeline: structure', () => {
  it('an empty pipeline runs the operation as is', async () => {
    const p = pipeline();
    expect(p).toBeInstanceOf(PipelinePolicy);
    expect(p.policies).toEqual([]);
    expect(p.name).toBe('pipeline');
    expect(await p.execute(() => 1)).toBe(1);
    expect(await p.execute(async () => 'async')).toBe('async');
    const err = new Error('x');
    expect(
      await rejectionOf(
        p.execute(() => {
          throw err;
        }),
      ),
    ).toBe(err);
    expect(
      await rejectionOf(
        p.execute(() => {
          throw 'str';
        }),
      ),
    ).toBe('str');
  });

  it('an empty pipeline rejects a pre-aborted call without running the op', async () => {
    const reason = new Error('pre');
    let ran = false;
    const e = await rejectionOf(
      pipeline().execute(
        () => {
          ran = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(e).toBe(reason);
    expect(ran).toBe(false);
  });

  it('flattens nested pipelines, keeping the order', async () => {
    const f = fallback({ value: 0 });
    const r = retry({ maxAttempts: 2, backoff: constant(0) });
    const t = timeout(1_000);
    const b = bulkhead({ limit: 1 });
    const p = pipeline(pipeline(f, r), pipeline(pipeline(t)), b);
    expect(p.policies).toHaveLength(4);
    expect(p.policies[0]).toBe(f);
    expect(p.policies[1]).toBe(r);
    expect(p.policies[2]).toBe(t);
    expect(p.policies[3]).toBe(b);
    expect(p.name).toBe('fallback>retry>timeout>bulkhead');
    expect(pipeline(pipeline(), pipeline()).policies).toHaveLength(0);
    expect(await p.execute(() => 'ok')).toBe('ok');
  });

  it('a pipeline is a policy usable where one is expected', async () => {
    const p: Policy = pipeline(bulkhead({ limit: 1 }));
    expect(await p.execute(() => 3)).toBe(3);
  });

  it('throws InvalidOptionsError for an argument that is not a policy, listing each one', () => {
    const e = invalidOptions(() => pipeline({ execute: () => 1 } as never));
    expect(e).toBeInstanceOf(InvalidOptionsError);
    expect(e).toBeInstanceOf(TypeError);
    expect(e.policy).toBe('pipeline');
    expect(e.problems).toEqual([{ option: '[0]', received: '{}', expected: 'a policy made by a bulwark factory' }]);
    const e2 = invalidOptions(() => pipeline(timeout(5), null as never, 'retry' as never));
    expect(e2.problems).toEqual([
      { option: '[1]', received: 'null', expected: 'a policy made by a bulwark factory' },
      { option: '[2]', received: '"retry"', expected: 'a policy made by a bulwark factory' },
    ]);
    expect(e2.message).toBe(
      'pipeline: invalid options\n' +
        '  - [1]: expected a policy made by a bulwark factory, got null\n' +
        '  - [2]: expected a policy made by a bulwark factory, got "retry"',
    );
  });
});

describe('pipeline: events', () => {
  it('on() reaches every member, and unsubscribing stops them all', async () => {
    const clock = new FakeClock();
    const p = pipeline(
      fallback({ value: 'fb', name: 'f' }),
      retry({ maxAttempts: 2, backoff: constant(0), clock, name: 'r' }),
      timeout({ ms: 10, clock, name: 't' }),
    );
    const seen: string[] = [];
    const types: EventType[] = ['fallback.used', 'retry.attempt', 'retry.exhausted', 'timeout.fired'];
    const offs = types.map((type) => p.on(type, (e) => seen.push(`${e.type}@${e.policy}`)));
    const call = track(p.execute(() => new Promise<string>(() => {})));
    await clock.advance(10);
    await clock.advance(10);
    expect(call.value).toBe('fb');
    expect(seen).toEqual([
      'timeout.fired@t',
      'retry.attempt@r',
      'timeout.fired@t',
      'retry.exhausted@r',
      'fallback.used@f',
    ]);
    for (const off of offs) off();
    const again = track(p.execute(() => new Promise<string>(() => {})));
    await clock.advance(20);
    expect(again.value).toBe('fb');
    expect(seen).toHaveLength(5);
  });

  it('emits execution.completed once per call, with durationMs from the FakeClock of its members', async () => {
    const clock = new FakeClock(10_000);
    const p = pipeline(timeout({ ms: 100, clock }), bulkhead({ limit: 1, clock }));
    const events: ExecutionCompletedEvent[] = [];
    p.on('execution.completed', (e) => events.push(e));
    const g = deferred<string>();
    const call = track(p.execute(() => g.promise, { operation: 'quote' }));
    await clock.advance(50);
    g.resolve('v');
    await clock.flush();
    expect(call.value).toBe('v');
    expect(events).toEqual([
      {
        type: 'execution.completed',
        policy: 'timeout>bulkhead',
        operation: 'quote',
        attempt: 1,
        durationMs: 50,
        result: 'success',
      },
    ]);
  });

  it('execution.completed reports success, failure and aborted results', async () => {
    const clock = new FakeClock();
    const p = pipeline(timeout({ ms: 100, clock }));
    const results: ExecutionCompletedEvent['result'][] = [];
    const errors: unknown[] = [];
    p.on('execution.completed', (e) => {
      results.push(e.result);
      errors.push(e.error);
    });

    expect(await p.execute(() => 1)).toBe(1);

    const err = new Error('fail');
    expect(
      await rejectionOf(
        p.execute(() => {
          throw err;
        }),
      ),
    ).toBe(err);

    const timedOut = track(p.execute(() => new Promise<never>(() => {})));
    await clock.advance(100);
    expect(timedOut.error).toBeInstanceOf(TimeoutError);

    const controller = new AbortController();
    const aborted = track(p.execute(() => new Promise<never>(() => {}), { signal: controller.signal }));
    const reason = new Error('caller');
    controller.abort(reason);
    await clock.flush();
    expect(aborted.error).toBe(reason);

    expect(results).toEqual(['success', 'failure', 'failure', 'aborted']);
    expect(errors).toEqual([undefined, err, timedOut.error, reason]);
  });

  it('execution.completed on a pipeline: durationMs of a timed-out call is exactly the timeout', async () => {
    const clock = new FakeClock();
    const p = pipeline(timeout({ ms: 100, clock }));
    const durations: number[] = [];
    p.on('execution.completed', (e) => durations.push(e.durationMs));
    const call = track(p.execute(() => new Promise<never>(() => {})));
    await clock.advance(100);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(durations).toEqual([100]);
  });

  it('no execution.completed without a listener, and none after unsubscribing', async () => {
    const p = pipeline(fallback({ value: 0 }));
    const events: ExecutionCompletedEvent[] = [];
    const off = p.on('execution.completed', (e) => events.push(e));
    await p.execute(() => 1);
    off();
    await p.execute(() => 2);
    expect(events.map((e) => e.result)).toEqual(['success']);
  });
});
