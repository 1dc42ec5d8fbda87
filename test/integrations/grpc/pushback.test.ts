/**
 * Server pushback (`grpc-retry-pushback-ms`) against a real grpc-js server, under gRFC A6's rules: a valid value
 * (digits, at most 2^31-1) is the next delay exactly; anything else means do not retry; pushback applies to the
 * configured failure codes only; after a pushback the backoff starts again from its first step.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  exponential,
  type RetryAttemptEvent,
  type RetryExhaustedEvent,
  type RetryOptions,
  retry,
} from '../../../src/index.js';
import {
  type GrpcInterceptorOptions,
  GrpcStatusError,
  grpcInterceptor,
  MAX_PUSHBACK_MS,
} from '../../../src/integrations/grpc/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import {
  type Action,
  advanceUntil,
  closeAll,
  greeterClient,
  type Hit,
  PATH,
  type Scripts,
  startGreeter,
  summary,
  unary,
  waitFor,
} from './helpers.js';

afterEach(() => closeAll());

const PUSHBACK = 'grpc-retry-pushback-ms';

const hello = (hit: Hit): Action => ({
  ok: { message: `hello ${(hit.request as { name: string }).name}`, attempt: hit.n },
});

/** A retry on a fake clock with an exact (non-jittered) exponential backoff: 100, 200, 400, 800 ms. */
function recordedRetry(clock: FakeClock, extra: RetryOptions = {}) {
  const policy = retry({
    clock,
    backoff: exponential({ initialMs: 100, factor: 2, maxMs: 10_000, jitter: 'none' }),
    maxAttempts: 5,
    ...extra,
  });
  const attempts: RetryAttemptEvent[] = [];
  const exhausted: RetryExhaustedEvent[] = [];
  policy.on('retry.attempt', (e) => attempts.push(e));
  policy.on('retry.exhausted', (e) => exhausted.push(e));
  return { policy, attempts, exhausted };
}

function attemptError(e: RetryAttemptEvent | undefined): GrpcStatusError {
  const outcome = e?.outcome;
  if (outcome === undefined || outcome.ok) throw new Error('expected a failed attempt');
  expect(outcome.error).toBeInstanceOf(GrpcStatusError);
  return outcome.error as GrpcStatusError;
}

async function setup(scripts: Scripts, options: GrpcInterceptorOptions) {
  const server = await startGreeter(scripts);
  const client = greeterClient(server, [grpcInterceptor(options)]);
  return { server, client };
}

describe('grpc pushback: range (gRFC A6, a signed 32-bit integer of ms)', { timeout: 5_000 }, () => {
  it.each([
    ['310 digits (Number() gives Infinity)', '9'.repeat(310)],
    ['400 digits', '1'.repeat(400)],
    ['2^31 (one above the largest)', '2147483648'],
    ['2^53 + 1', '9007199254740993'],
    ['1e3 (exponent)', '1e3'],
    ['+5 (sign)', '+5'],
  ])('%s means do not retry, even with no retry cap: 1 call, no backoff', async (_what, value) => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock, { maxRetryAfterMs: Number.POSITIVE_INFINITY });
    const { server, client } = await setup(
      { SayHello: () => ({ code: status.UNAVAILABLE, details: 'go away', trailers: { [PUSHBACK]: value } }) },
      { methods: { [PATH.SayHello]: policy } },
    );

    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;

    expect(summary(error, [PUSHBACK])).toEqual({
      code: status.UNAVAILABLE,
      details: 'go away',
      metadata: { [PUSHBACK]: [value] },
    });
    expect(attempts).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(60_000);
    expect(server.hits.length).toBe(1);
  });

  it('2^31-1, the largest valid pushback, is the next delay exactly (retry with no cap waits it out)', async () => {
    expect(MAX_PUSHBACK_MS).toBe(2 ** 31 - 1);
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock, { maxRetryAfterMs: Number.POSITIVE_INFINITY });
    const { server, client } = await setup(
      {
        SayHello: (hit) =>
          hit.n === 1
            ? { code: status.UNAVAILABLE, details: 'later', trailers: { [PUSHBACK]: String(MAX_PUSHBACK_MS) } }
            : hello(hit),
      },
      { methods: { [PATH.SayHello]: policy } },
    );

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => attempts.length === 1 && clock.pendingTimers === 1, 'attempt 1 and the pushback wait');
    expect(attempts.map((e) => [e.attempt, e.delayMs])).toEqual([[1, MAX_PUSHBACK_MS]]);
    expect(attemptError(attempts[0]).retryAfterMs).toBe(MAX_PUSHBACK_MS);

    await clock.advance(MAX_PUSHBACK_MS - 1);
    expect(server.hits.length).toBe(1);
    await clock.advance(1);
    expect((await pending.result).value).toEqual({ message: 'hello ada', attempt: 2 });
  });

  it('with the default retry cap (60 s), a valid but long pushback gives up at once with that status', async () => {
    const clock = new FakeClock();
    const { policy, attempts, exhausted } = recordedRetry(clock);
    const { server, client } = await setup(
      { SayHello: () => ({ code: status.UNAVAILABLE, details: 'later', trailers: { [PUSHBACK]: '60001' } }) },
      { methods: { [PATH.SayHello]: policy } },
    );

    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;

    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(attempts).toEqual([]);
    expect(exhausted.map((e) => [e.attempt, e.reason])).toEqual([[1, 'stopped']]);
    expect(server.hits.length).toBe(1);
  });

  it('a pushback field sent twice (HTTP/2 joins it: "300, 500"): the larger delay', async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { server, client } = await setup(
      {
        SayHello: (hit) =>
          hit.n === 1
            ? { code: status.UNAVAILABLE, details: 'busy', trailers: { [PUSHBACK]: ['300', '500'] } }
            : hello(hit),
      },
      { methods: { [PATH.SayHello]: policy } },
    );

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => attempts.length === 1 && clock.pendingTimers === 1, 'attempt 1 and the pushback wait');
    expect(attemptError(attempts[0]).metadata.get(PUSHBACK)).toEqual(['300, 500']);
    expect(attempts.map((e) => [e.attempt, e.delayMs])).toEqual([[1, 500]]);
    await clock.advance(500);
    expect((await pending.result).value).toEqual({ message: 'hello ada', attempt: 2 });
    expect(server.hits.length).toBe(2);
  });

  it('a pushback field sent twice, one of them negative: do not retry', async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { server, client } = await setup(
      { SayHello: () => ({ code: status.UNAVAILABLE, details: 'busy', trailers: { [PUSHBACK]: ['300', '-1'] } }) },
      { methods: { [PATH.SayHello]: policy } },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(attempts).toEqual([]);
    expect(server.hits.length).toBe(1);
  });
});

describe('grpc pushback: only on failure codes (gRFC A6: retryable codes)', { timeout: 5_000 }, () => {
  it('RESOURCE_EXHAUSTED with pushback is delivered as it is when it is not a failure code (the default)', async () => {
    const clock = new FakeClock();
    const { policy, attempts, exhausted } = recordedRetry(clock);
    const { server, client } = await setup(
      {
        SayHello: (hit) =>
          hit.n === 1
            ? { code: status.RESOURCE_EXHAUSTED, details: 'quota', trailers: { [PUSHBACK]: '500' } }
            : hello(hit),
      },
      { methods: { [PATH.SayHello]: policy } },
    );

    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;

    expect(summary(error, [PUSHBACK])).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: 'quota',
      metadata: { [PUSHBACK]: ['500'] },
    });
    expect([attempts, exhausted]).toEqual([[], []]);
    await clock.advance(10_000);
    expect(server.hits.length).toBe(1);
  });

  it('RESOURCE_EXHAUSTED with pushback is not retried when failureCodes lists other codes only', async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { server, client } = await setup(
      { SayHello: () => ({ code: status.RESOURCE_EXHAUSTED, details: 'quota', trailers: { [PUSHBACK]: '0' } }) },
      { methods: { [PATH.SayHello]: policy }, failureCodes: [status.UNAVAILABLE, status.ABORTED] },
    );

    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;

    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(attempts).toEqual([]);
    expect(server.hits.length).toBe(1);
  });

  it('RESOURCE_EXHAUSTED listed in failureCodes: its pushback is the next delay', async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { server, client } = await setup(
      {
        SayHello: (hit) =>
          hit.n === 1
            ? { code: status.RESOURCE_EXHAUSTED, details: 'quota', trailers: { [PUSHBACK]: '500' } }
            : hello(hit),
      },
      { methods: { [PATH.SayHello]: policy }, failureCodes: [status.UNAVAILABLE, status.RESOURCE_EXHAUSTED] },
    );

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => attempts.length === 1 && clock.pendingTimers === 1, 'attempt 1 and the pushback wait');
    expect(attempts.map((e) => [e.attempt, e.delayMs])).toEqual([[1, 500]]);
    expect(attemptError(attempts[0]).code).toBe(status.RESOURCE_EXHAUSTED);
    await clock.advance(499);
    expect(server.hits.length).toBe(1);
    await clock.advance(1);
    expect((await pending.result).value).toEqual({ message: 'hello ada', attempt: 2 });
  });

  it('a pushback that says stop on a status that is not a failure changes nothing: delivered as it is', async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { client } = await setup(
      { SayHello: () => ({ code: status.NOT_FOUND, details: 'no such user', trailers: { [PUSHBACK]: '-1' } }) },
      { methods: { [PATH.SayHello]: policy } },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(summary(error, [PUSHBACK])).toEqual({
      code: status.NOT_FOUND,
      details: 'no such user',
      metadata: { [PUSHBACK]: ['-1'] },
    });
    expect(attempts).toEqual([]);
  });
});

describe('grpc pushback: the backoff restarts after a pushback (gRFC A6)', { timeout: 5_000 }, () => {
  const script: Record<number, Action> = {
    1: { code: status.UNAVAILABLE, details: 'down 1' },
    2: { code: status.UNAVAILABLE, details: 'busy', trailers: { [PUSHBACK]: '500' } },
    3: { code: status.UNAVAILABLE, details: 'down 3' },
    4: { code: status.UNAVAILABLE, details: 'down 4' },
  };

  it("the adapter's part: only the attempt that got a pushback carries it, as retryAfterMs", async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { server, client } = await setup(
      { SayHello: (hit) => script[hit.n] ?? hello(hit) },
      { methods: { [PATH.SayHello]: policy } },
    );

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await advanceUntil(clock, 50, () => pending.settled !== undefined, 'the call to end');

    expect(pending.settled?.value).toEqual({ message: 'hello ada', attempt: 5 });
    expect(attempts.map((e) => [attemptError(e).details, attemptError(e).retryAfterMs])).toEqual([
      ['down 1', undefined],
      ['busy', 500],
      ['down 3', undefined],
      ['down 4', undefined],
    ]);
    expect(server.hits.length).toBe(5);
  });

  // Needs the core change "after an attempt whose delay came from a server hint, the backoff restarts from its
  // first step" in src/policies/retry/retry.ts: until it is merged, the delays are 100, 500, 400, 800.
  it('UNAVAILABLE (backoff step 1), then pushback 500, then UNAVAILABLE: the third delay is the first step', async () => {
    const clock = new FakeClock();
    const { policy, attempts } = recordedRetry(clock);
    const { client } = await setup(
      { SayHello: (hit) => script[hit.n] ?? hello(hit) },
      { methods: { [PATH.SayHello]: policy } },
    );

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await advanceUntil(clock, 50, () => pending.settled !== undefined, 'the call to end');

    expect(pending.settled?.value).toEqual({ message: 'hello ada', attempt: 5 });
    // 100 (step 1), 500 (the pushback, exactly), then 100 and 200 again: not 400 and 800 (steps 3 and 4).
    expect(attempts.map((e) => [e.attempt, e.delayMs])).toEqual([
      [1, 100],
      [2, 500],
      [3, 100],
      [4, 200],
    ]);
  });
});
