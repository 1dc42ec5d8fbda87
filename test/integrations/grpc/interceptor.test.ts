import {
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServiceError,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  constant,
  InvalidOptionsError,
  type Policy,
  pipeline,
  type RetryAttemptEvent,
  RetryExhaustedError,
  type RetryExhaustedEvent,
  type RetryOptions,
  retry,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import {
  type GrpcInterceptorOptions,
  GrpcStatusError,
  grpcInterceptor,
  pushbackOf,
  statusOf,
} from '../../../src/integrations/grpc/index.js';
import { FusedUnit } from '../../../src/policies/fused.js';
import { TimeoutPolicy } from '../../../src/policies/timeout/timeout.js';
import { FakeClock } from '../../../src/testing/index.js';
import {
  type Action,
  advanceUntil,
  captureWarnings,
  closeAll,
  type GreeterClient,
  type GreeterServer,
  greeterClient,
  type HelloReply,
  type Hit,
  openCalls,
  PATH,
  startGreeter,
  summary,
  unary,
  waitFor,
} from './helpers.js';

afterEach(() => closeAll());

const PREVIOUS = 'grpc-previous-rpc-attempts';
const PUSHBACK = 'grpc-retry-pushback-ms';

const down = (hit: Hit): Action => ({ code: status.UNAVAILABLE, details: `down #${hit.n}` });
const hello = (hit: Hit): Action => ({
  ok: { message: `hello ${(hit.request as { name: string }).name}`, attempt: hit.n },
});

/** UNAVAILABLE twice, then a reply with headers and trailers that name the attempt. */
const thirdTimeLucky = (hit: Hit): Action =>
  hit.n < 3
    ? down(hit)
    : {
        ok: { message: 'hello ada', attempt: hit.n },
        initial: { 'x-served-by': `attempt-${hit.n}` },
        trailers: { 'x-trailer': `t${hit.n}` },
      };

/** A retry on a fake clock with a constant backoff, recording its events. */
function recordedRetry(clock: FakeClock, backoffMs: number, extra: RetryOptions = {}) {
  const policy = retry({ clock, backoff: constant(backoffMs), maxAttempts: 3, ...extra });
  const attempts: RetryAttemptEvent[] = [];
  const exhausted: RetryExhaustedEvent[] = [];
  policy.on('retry.attempt', (e) => attempts.push(e));
  policy.on('retry.exhausted', (e) => exhausted.push(e));
  return { policy, attempts, exhausted };
}

/** The error of a failed attempt as the retry saw it. */
function attemptError(e: RetryAttemptEvent | undefined): GrpcStatusError {
  const outcome = e?.outcome;
  if (outcome === undefined || outcome.ok) throw new Error('expected a failed attempt');
  expect(outcome.error).toBeInstanceOf(GrpcStatusError);
  return outcome.error as GrpcStatusError;
}

async function setup(
  scripts: Parameters<typeof startGreeter>[0],
  options: GrpcInterceptorOptions,
): Promise<{ server: GreeterServer; client: GreeterClient }> {
  const server = await startGreeter(scripts);
  const client = greeterClient(server, [grpcInterceptor(options)]);
  return { server, client };
}

/**
 * Two calls of a method whose policy holds a bulkhead of one named greeter-bulkhead: the first hangs on the server; the
 * second must end with RESOURCE_EXHAUSTED without reaching it, and the first then completes when released. `settle`
 * waits for the second to end (a fake clock may have to run a retry's backoff).
 */
async function expectBulkheadRefusal(
  policy: Policy,
  settle: (second: ReturnType<typeof unary>) => Promise<unknown> = (second) => second.result,
): Promise<void> {
  const { server, client } = await setup(
    { SayHello: (hit) => (hit.n === 1 ? 'hang' : hello(hit)) },
    { methods: { [PATH.SayHello]: policy } },
  );
  const first = unary(client, 'SayHello', { name: 'ada' });
  await waitFor(() => server.hits.length === 1, 'the first call to reach the server');
  const second = unary(client, 'SayHello', { name: 'bob' });
  await settle(second);

  expect(summary(second.settled?.error ?? null)).toEqual({
    code: status.RESOURCE_EXHAUSTED,
    details: 'bulkhead "greeter-bulkhead" is full (1 running, 0 queued): call rejected',
    metadata: {},
  });
  expect(server.hits.length).toBe(1);
  server.hits[0]?.respond({ ok: { message: 'late', attempt: 1 } });
  expect(await first.result).toEqual({ error: null, value: { message: 'late', attempt: 1 } });
}

/**
 * A call whose method hangs on the server, cancelled by the caller mid-attempt: CANCELLED at once, the server sees the
 * cancel, no call is left on the channel, `timersLeft` timers are pending on the fake clock (a timeout policy's shared
 * timer stays armed by design), and nothing is sent again (the fake clock then runs 10 s).
 */
async function expectCancelMidAttempt(policy: Policy, clock: FakeClock, timersLeft: number): Promise<void> {
  const { server, client } = await setup({ SayHello: () => 'hang' }, { methods: { [PATH.SayHello]: policy } });

  const pending = unary(client, 'SayHello', { name: 'ada' });
  await waitFor(() => server.hits.length === 1, 'the call to reach the server');
  pending.call.cancel();
  const { error } = await pending.result;

  expect(summary(error)).toEqual({ code: status.CANCELLED, details: 'Cancelled on client', metadata: {} });
  await waitFor(() => server.hits[0]?.cancelled === true, 'the server to see the cancel');
  await waitFor(() => openCalls(client) === 0, 'the channel to have no call left');
  expect(clock.pendingTimers).toBe(timersLeft);
  await clock.advance(10_000);
  expect(server.hits.length).toBe(1);
}

/**
 * A non-idempotent method (CreateOrder) whose server answers UNAVAILABLE: the caller gets that status from the one
 * attempt sent, `timersLeft` timers are pending on the fake clock, and nothing is sent again (the clock then runs 10 s).
 */
async function expectSentOnce(policy: Policy, clock: FakeClock, timersLeft: number): Promise<void> {
  const { server, client } = await setup(
    { CreateOrder: down },
    { methods: { [PATH.CreateOrder]: { policy, idempotent: false } } },
  );
  const { error } = await unary(client, 'CreateOrder', { name: 'order-1' }).result;

  expect(summary(error)).toEqual({ code: status.UNAVAILABLE, details: 'down #1', metadata: {} });
  expect(clock.pendingTimers).toBe(timersLeft);
  await clock.advance(10_000);
  expect(server.hits.length).toBe(1);
}

describe('grpcInterceptor against a real grpc-js server', { timeout: 5_000 }, () => {
  describe('classification and retries', () => {
    it('surfaces INTERNAL after one attempt, with its details and trailers', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 1_000);
      const { server, client } = await setup(
        { SayHello: () => ({ code: status.INTERNAL, details: 'boom', trailers: { 'x-why': 'db' } }) },
        { methods: { [PATH.SayHello]: policy } },
      );

      const { error, value } = await unary(client, 'SayHello', { name: 'ada' }).result;

      expect(value).toBeUndefined();
      expect(summary(error, ['x-why'])).toEqual({
        code: status.INTERNAL,
        details: 'boom',
        metadata: { 'x-why': ['db'] },
      });
      expect(server.hits.length).toBe(1);
      expect(attempts).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
      await clock.advance(10_000);
      expect(server.hits.length).toBe(1);
    });

    it('retries UNAVAILABLE twice and succeeds on attempt 3, resending the same metadata and message', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 1_000);
      const { server, client } = await setup(
        {
          SayHello: thirdTimeLucky,
        },
        { methods: { [PATH.SayHello]: policy } },
      );
      const metadata = new Metadata();
      metadata.set('x-request-id', 'req-42');
      metadata.set('x-blob-bin', Buffer.from([1, 2, 3]));

      const pending = unary(client, 'SayHello', { name: 'ada' }, { metadata });
      await advanceUntil(clock, 1_000, () => server.hits.length === 3, '3 server calls');
      const { error, value } = await pending.result;

      expect(error).toBeNull();
      expect(value).toEqual({ message: 'hello ada', attempt: 3 });
      expect(server.hits.map((h) => h.metadata.get(PREVIOUS))).toEqual([[], ['1'], ['2']]);
      expect(server.hits.map((h) => h.metadata.get('x-request-id'))).toEqual([['req-42'], ['req-42'], ['req-42']]);
      expect(server.hits.map((h) => h.metadata.get('x-blob-bin'))).toEqual([
        [Buffer.from([1, 2, 3])],
        [Buffer.from([1, 2, 3])],
        [Buffer.from([1, 2, 3])],
      ]);
      expect(server.hits.map((h) => h.request)).toEqual([{ name: 'ada' }, { name: 'ada' }, { name: 'ada' }]);
      // The caller's own metadata is not changed by the attempts.
      expect(metadata.get(PREVIOUS)).toEqual([]);
      // The caller sees the headers and trailers of the attempt that succeeded.
      expect(pending.headers?.get('x-served-by')).toEqual(['attempt-3']);
      expect(pending.status?.code).toBe(status.OK);
      expect(pending.status?.metadata.get('x-trailer')).toEqual(['t3']);

      expect(attempts.map((e) => [e.attempt, e.delayMs, e.operation])).toEqual([
        [1, 1_000, PATH.SayHello],
        [2, 1_000, PATH.SayHello],
      ]);
      const first = attemptError(attempts[0]);
      expect([first.code, first.details, first.retryAfterMs, first.retryable]).toEqual([
        status.UNAVAILABLE,
        'down #1',
        undefined,
        true,
      ]);
      expect(clock.pendingTimers).toBe(0);
      expect(openCalls(client)).toBe(0);
    });

    it('empty caller metadata: each attempt starts from what the caller sent, whatever a later interceptor adds', async () => {
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 1_000);
      const server = await startGreeter({ SayHello: (hit) => (hit.n < 3 ? down(hit) : hello(hit)) });
      // An interceptor after bulwark's that adds (not sets) an entry on every call it sees.
      const adding: Interceptor = (options, nextCall) =>
        new InterceptingCall(nextCall(options), {
          start: (metadata, listener, next) => {
            metadata.add('x-added', 'once');
            next(metadata, listener);
          },
        });
      const client = greeterClient(server, [grpcInterceptor({ methods: { [PATH.SayHello]: policy } }), adding]);
      const metadata = new Metadata({ waitForReady: true });

      const pending = unary(client, 'SayHello', { name: 'ada' }, { metadata });
      await advanceUntil(clock, 1_000, () => pending.settled !== undefined, 'the call to end');

      expect(pending.settled?.error ?? null).toBeNull();
      expect(server.hits.map((h) => h.metadata.get('x-added'))).toEqual([['once'], ['once'], ['once']]);
      expect(server.hits.map((h) => h.metadata.get(PREVIOUS))).toEqual([[], ['1'], ['2']]);
      // bulwark itself writes nothing to the caller's object (the interceptor after it may, as without bulwark).
      expect(metadata.get(PREVIOUS)).toEqual([]);
    });

    it('delivers the last UNAVAILABLE once the attempts run out', async () => {
      const clock = new FakeClock();
      const { policy, exhausted } = recordedRetry(clock, 1_000);
      const { server, client } = await setup({ SayHello: down }, { methods: { [PATH.SayHello]: policy } });

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 1_000, () => pending.settled !== undefined, 'the call to end');

      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.UNAVAILABLE,
        details: 'down #3',
        metadata: {},
      });
      expect(server.hits.length).toBe(3);
      expect(exhausted.map((e) => [e.attempt, e.reason])).toEqual([[3, 'attempts']]);
      expect(clock.pendingTimers).toBe(0);
    });

    it("unwraps the status from a RetryExhaustedError (onExhausted: 'wrap')", async () => {
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 1_000, { maxAttempts: 2, onExhausted: 'wrap' });
      const { server, client } = await setup({ SayHello: down }, { methods: { [PATH.SayHello]: policy } });

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 1_000, () => pending.settled !== undefined, 'the call to end');

      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.UNAVAILABLE,
        details: 'down #2',
        metadata: {},
      });
      expect(server.hits.length).toBe(2);
    });

    it('treats the codes listed in failureCodes as failures, and only those', async () => {
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 10);
      const { server, client } = await setup(
        {
          SayHello: (hit) => (hit.n === 1 ? { code: status.INTERNAL, details: 'flaky' } : hello(hit)),
          CreateOrder: down,
        },
        { methods: { [PATH.SayHello]: policy, [PATH.CreateOrder]: policy }, failureCodes: [status.INTERNAL] },
      );

      const retried = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 10, () => retried.settled !== undefined, 'SayHello to end');
      expect(retried.settled).toEqual({ error: null, value: { message: 'hello ada', attempt: 2 } });

      const surfaced = await unary(client, 'CreateOrder', { name: 'ada' }).result;
      expect(summary(surfaced.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #3', metadata: {} });
      expect(server.of('SayHello').length).toBe(2);
      expect(server.of('CreateOrder').length).toBe(1);
    });
  });

  describe('deadline', () => {
    it('ends at the deadline with DEADLINE_EXCEEDED when the backoff is longer, with no further server call', async () => {
      const clock = new FakeClock();
      const base = Date.now();
      const { policy, attempts } = recordedRetry(clock, 120_000);
      const { server, client } = await setup(
        { SayHello: down },
        { methods: { [PATH.SayHello]: policy }, clock, wallClock: () => base + clock.now() },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' }, { deadline: base + 60_000 });
      // The deadline timer and the backoff are both on the fake clock.
      await waitFor(() => server.hits.length === 1 && clock.pendingTimers === 2, 'attempt 1 and the backoff');
      expect(clock.nextTimerAt).toBe(60_000);
      expect(attempts.map((e) => e.delayMs)).toEqual([120_000]);
      // The attempt carried the call's deadline to the server.
      expect(Number.isFinite(Number(server.hits[0]?.deadline))).toBe(true);

      await clock.advance(59_999);
      expect(pending.settled).toBeUndefined();
      await clock.advance(1);
      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.DEADLINE_EXCEEDED,
        details: 'Deadline exceeded',
        metadata: {},
      });

      expect(clock.pendingTimers).toBe(0);
      await clock.advance(200_000);
      expect(server.hits.length).toBe(1);
      expect(openCalls(client)).toBe(0);
    });

    it('clears its deadline timer when the call succeeds', async () => {
      const clock = new FakeClock();
      const base = Date.now();
      const { policy } = recordedRetry(clock, 1_000);
      const { server, client } = await setup(
        { SayHello: hello },
        { methods: { [PATH.SayHello]: policy }, clock, wallClock: () => base + clock.now() },
      );

      const { error, value } = await unary(client, 'SayHello', { name: 'ada' }, { deadline: new Date(base + 60_000) })
        .result;

      expect(error).toBeNull();
      expect(value).toEqual({ message: 'hello ada', attempt: 1 });
      expect(server.hits.length).toBe(1);
      expect(clock.pendingTimers).toBe(0);
    });

    it('the deadline passing during an attempt under a bulwark timeout: DEADLINE_EXCEEDED, attempt cancelled', async () => {
      const clock = new FakeClock();
      const base = Date.now();
      const { policy: outer, attempts } = recordedRetry(clock, 1_000);
      const { server, client } = await setup(
        { SayHello: () => 'hang' },
        {
          methods: { [PATH.SayHello]: pipeline(outer, timeout({ ms: 100_000, clock })) },
          clock,
          wallClock: () => base + clock.now(),
        },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' }, { deadline: base + 60_000 });
      await waitFor(() => server.hits.length === 1, 'the call to reach the server');
      await clock.advance(59_999);
      expect(pending.settled).toBeUndefined();
      await clock.advance(1);

      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.DEADLINE_EXCEEDED,
        details: 'Deadline exceeded',
        metadata: {},
      });
      expect(attempts).toEqual([]);
      await waitFor(() => server.hits[0]?.cancelled === true, 'the server to see the cancel');
      await waitFor(() => openCalls(client) === 0, 'the channel to have no call left');
      // Only the timeout policy's shared timer is left (it stays armed by design and fires on an empty queue).
      expect([clock.pendingTimers, clock.nextTimerAt]).toEqual([1, 100_000]);
      await clock.advance(200_000);
      expect(clock.pendingTimers).toBe(0);
      expect(server.hits.length).toBe(1);
    });

    it('a deadline already passed: DEADLINE_EXCEEDED without a server call or a retry', async () => {
      const clock = new FakeClock();
      const base = Date.now();
      const { policy, attempts } = recordedRetry(clock, 1_000);
      const { server, client } = await setup(
        { SayHello: hello },
        { methods: { [PATH.SayHello]: policy }, clock, wallClock: () => base + clock.now() },
      );

      const { error } = await unary(client, 'SayHello', { name: 'ada' }, { deadline: base - 1_000 }).result;

      expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
      expect(error?.details).toMatch(/^Deadline exceeded/); // grpc-js's own wording, with timings
      expect(attempts).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
      expect(server.hits.length).toBe(0);
    });
  });

  describe('server pushback', () => {
    it('grpc-retry-pushback-ms: 2000 sets the delay before the next attempt', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        {
          SayHello: (hit) =>
            hit.n === 1 ? { code: status.UNAVAILABLE, details: 'busy', trailers: { [PUSHBACK]: '2000' } } : hello(hit),
        },
        { methods: { [PATH.SayHello]: policy } },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === 1 && clock.pendingTimers === 1, 'attempt 1 and the backoff');
      expect(attempts.map((e) => [e.attempt, e.delayMs])).toEqual([[1, 2_000]]);
      const error = attemptError(attempts[0]);
      expect([error.code, error.retryAfterMs, error.retryable]).toEqual([status.UNAVAILABLE, 2_000, true]);
      expect(error.metadata.get(PUSHBACK)).toEqual(['2000']);

      await clock.advance(1_999);
      expect(server.hits.length).toBe(1);
      await clock.advance(1);
      const { value } = await pending.result;
      expect(value).toEqual({ message: 'hello ada', attempt: 2 });
      expect(server.hits.length).toBe(2);
    });

    it.each([
      ['-1', 'negative'],
      ['-250', 'negative'],
      ['soon', 'malformed'],
      ['1.5', 'malformed'],
    ])('pushback %j (%s) stops retrying: the caller gets the status after 1 call', async (pushback) => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        { SayHello: () => ({ code: status.UNAVAILABLE, details: 'busy', trailers: { [PUSHBACK]: pushback } }) },
        { methods: { [PATH.SayHello]: policy } },
      );

      const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;

      expect(summary(error, [PUSHBACK])).toEqual({
        code: status.UNAVAILABLE,
        details: 'busy',
        metadata: { [PUSHBACK]: [pushback] },
      });
      expect(attempts).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
      await clock.advance(10_000);
      expect(server.hits.length).toBe(1);
    });

    it('RESOURCE_EXHAUSTED with pushback, listed in failureCodes, is retried after the pushback', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
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
      await advanceUntil(clock, 100, () => pending.settled !== undefined, 'the call to end');

      expect(pending.settled).toEqual({ error: null, value: { message: 'hello ada', attempt: 2 } });
      expect(attempts.map((e) => [e.attempt, e.delayMs])).toEqual([[1, 500]]);
      expect(attemptError(attempts[0]).code).toBe(status.RESOURCE_EXHAUSTED);
      expect(server.hits.length).toBe(2);
    });

    it('RESOURCE_EXHAUSTED without pushback is not retried', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        { SayHello: () => ({ code: status.RESOURCE_EXHAUSTED, details: 'quota' }) },
        { methods: { [PATH.SayHello]: policy } },
      );

      const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;

      expect(summary(error)).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'quota', metadata: {} });
      expect(attempts).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits.length).toBe(1);
    });
  });

  describe('idempotency', () => {
    it('a non-idempotent method is not retried on UNAVAILABLE', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      await expectSentOnce(policy, clock, 0);
      expect(attempts).toEqual([]);
    });

    it('a non-idempotent method is not retried after a bulwark timeout either', async () => {
      const clock = new FakeClock();
      const { policy: outer, attempts } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        { CreateOrder: () => 'hang' },
        {
          methods: { [PATH.CreateOrder]: { policy: pipeline(outer, timeout({ ms: 100, clock })), idempotent: false } },
        },
      );

      const pending = unary(client, 'CreateOrder', { name: 'order-1' });
      await waitFor(() => server.hits.length === 1, 'attempt 1');
      await clock.advance(100);
      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.DEADLINE_EXCEEDED,
        details: 'timeout "timeout": the operation did not settle within 100 ms',
        metadata: {},
      });
      expect(attempts).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits.length).toBe(1);
      await waitFor(() => server.hits[0]?.cancelled === true, 'the server to see the cancel');
    });

    it('idempotent: true (explicit) is retried', async () => {
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        { CreateOrder: (hit) => (hit.n === 1 ? down(hit) : hello(hit)) },
        { methods: { [PATH.CreateOrder]: { policy, idempotent: true } } },
      );

      const pending = unary(client, 'CreateOrder', { name: 'order-1' });
      await advanceUntil(clock, 100, () => pending.settled !== undefined, 'the call to end');

      expect(pending.settled).toEqual({ error: null, value: { message: 'hello order-1', attempt: 2 } });
      expect(server.hits.length).toBe(2);
    });
  });

  describe('bulwark errors become statuses', () => {
    it('an open breaker: UNAVAILABLE naming the breaker and the retry-after, without a server call', async () => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({
        name: 'greeter-breaker',
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 5_000,
        clock,
      });
      const { server, client } = await setup({ SayHello: down }, { methods: { [PATH.SayHello]: breaker } });

      const first = await unary(client, 'SayHello', { name: 'ada' }).result;
      expect(summary(first.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #1', metadata: {} });
      expect(breaker.state).toBe('open');

      await clock.advance(1_234);
      const second = await unary(client, 'SayHello', { name: 'ada' }).result;
      expect(summary(second.error, [PUSHBACK])).toEqual({
        code: status.UNAVAILABLE,
        details: 'circuit breaker "greeter-breaker" is open: call not attempted, retry after 3766 ms',
        metadata: { [PUSHBACK]: ['3766'] },
      });
      expect(server.hits.length).toBe(1);
    });

    it('an open breaker behind a retry that will not wait that long: the same UNAVAILABLE', async () => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({
        name: 'greeter-breaker',
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 5_000,
        clock,
      });
      const { policy, exhausted } = recordedRetry(clock, 100, { circuitOpenMaxWaitMs: 1_000 });
      const { server, client } = await setup(
        { SayHello: down },
        { methods: { [PATH.SayHello]: pipeline(policy, breaker) } },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 100, () => pending.settled !== undefined, 'the call to end');

      expect(summary(pending.settled?.error ?? null, [PUSHBACK])).toEqual({
        code: status.UNAVAILABLE,
        details: 'circuit breaker "greeter-breaker" is open: call not attempted, retry after 4900 ms',
        metadata: { [PUSHBACK]: ['4900'] },
      });
      expect(exhausted.map((e) => [e.attempt, e.reason])).toEqual([[2, 'circuit_open']]);
      expect(server.hits.length).toBe(1);
    });

    it('a full bulkhead: RESOURCE_EXHAUSTED, without a server call', async () => {
      await expectBulkheadRefusal(bulkhead({ name: 'greeter-bulkhead', limit: 1 }));
    });

    it('a bulwark timeout: DEADLINE_EXCEEDED, and the attempt is cancelled on the wire', async () => {
      const clock = new FakeClock();
      const { server, client } = await setup(
        { SayHello: () => 'hang' },
        { methods: { [PATH.SayHello]: timeout({ ms: 100, clock, name: 'greeter-timeout' }) } },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === 1, 'the call to reach the server');
      await clock.advance(99);
      expect(pending.settled).toBeUndefined();
      await clock.advance(1);

      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.DEADLINE_EXCEEDED,
        details: 'timeout "greeter-timeout": the operation did not settle within 100 ms',
        metadata: {},
      });
      await waitFor(() => server.hits[0]?.cancelled === true, 'the server to see the cancel');
      await waitFor(() => openCalls(client) === 0, 'the channel to have no call left');
      expect(server.open()).toBe(0);
    });
  });

  describe('cancellation', () => {
    it('call.cancel() mid-backoff: CANCELLED at once, no further server call, no timer, no call left', async () => {
      const clock = new FakeClock();
      const base = Date.now();
      const { policy } = recordedRetry(clock, 1_000);
      const { server, client } = await setup(
        { SayHello: (hit) => (hit.n === 1 ? down(hit) : hello(hit)) },
        { methods: { [PATH.SayHello]: policy }, clock, wallClock: () => base + clock.now() },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' }, { deadline: base + 60_000 });
      await waitFor(() => server.hits.length === 1 && clock.pendingTimers === 2, 'attempt 1 and the backoff');
      expect(openCalls(client)).toBe(0);

      pending.call.cancel();
      await clock.flush(); // no time passes
      expect(summary(pending.settled?.error ?? null)).toEqual({
        code: status.CANCELLED,
        details: 'Cancelled on client',
        metadata: {},
      });
      expect(pending.status?.code).toBe(status.CANCELLED);
      expect(clock.pendingTimers).toBe(0);
      expect(openCalls(client)).toBe(0);

      await clock.advance(10_000);
      expect(server.hits.length).toBe(1);

      // The channel is still usable: the next call goes through on attempt 1.
      const next = await unary(client, 'SayHello', { name: 'bob' }).result;
      expect(next).toEqual({ error: null, value: { message: 'hello bob', attempt: 2 } });
      expect(server.hits.map((h) => h.metadata.get(PREVIOUS))).toEqual([[], []]);
      expect(openCalls(client)).toBe(0);
    });

    it('call.cancel() during an attempt: CANCELLED, the server sees the cancel, nothing is left', async () => {
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 1_000);
      await expectCancelMidAttempt(policy, clock, 0);
    });
  });

  describe('the four-policy pipeline (run fused: attempts begun and reported by callback)', () => {
    /** retry > circuitBreaker > timeout > bulkhead on one fake clock, as the README composes them. */
    function four(clock: FakeClock, bulkheadLimit = 10) {
      const r = recordedRetry(clock, 1_000);
      const policy = pipeline(
        r.policy,
        circuitBreaker({ clock, name: 'greeter-breaker' }),
        timeout({ ms: 5_000, clock, name: 'greeter-timeout' }),
        bulkhead({ limit: bulkheadLimit, name: 'greeter-bulkhead' }),
      );
      // The interceptor must take the fused reporting path (no promise per attempt), and every attempt must run
      // fused: the layered path would run the timeout's own `_run`, which a fused call never does.
      const fused = vi.spyOn(FusedUnit.prototype, 'runReporting');
      const layered = vi.spyOn(TimeoutPolicy.prototype, '_run');
      onTestFinished(() => {
        fused.mockRestore();
        layered.mockRestore();
      });
      return { ...r, policy, fused, layered };
    }

    it('retries UNAVAILABLE and delivers the reply, headers and trailers of the attempt that succeeded', async () => {
      const clock = new FakeClock();
      const { policy, attempts, fused, layered } = four(clock);
      const { server, client } = await setup(
        {
          SayHello: thirdTimeLucky,
        },
        { methods: { [PATH.SayHello]: policy } },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 1_000, () => pending.settled !== undefined, 'the call to end');

      expect(fused).toHaveBeenCalledTimes(1);
      expect(layered).not.toHaveBeenCalled();
      expect(pending.settled).toEqual({ error: null, value: { message: 'hello ada', attempt: 3 } });
      expect(pending.headers?.get('x-served-by')).toEqual(['attempt-3']);
      expect(pending.status?.metadata.get('x-trailer')).toEqual(['t3']);
      expect(server.hits.map((h) => h.metadata.get(PREVIOUS))).toEqual([[], ['1'], ['2']]);
      expect(attempts.map((e) => e.attempt)).toEqual([1, 2]);
      // The timeout's shared timer stays armed by design; nothing else is left.
      await clock.advance(10_000);
      expect(clock.pendingTimers).toBe(0);
      expect(openCalls(client)).toBe(0);
    });

    it('a full bulkhead: RESOURCE_EXHAUSTED without a server call (refused while the call starts)', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = four(clock, 1);
      // The retry's defaults retry the refusal too (twice, 1 s apart), each refused before reaching the channel.
      await expectBulkheadRefusal(policy, (second) =>
        advanceUntil(clock, 1_000, () => second.settled !== undefined, 'the second call to end'),
      );
      expect(attempts.map((e) => (e.outcome.ok ? 'ok' : (e.outcome.error as Error).name))).toEqual([
        'BulkheadRejectedError',
        'BulkheadRejectedError',
      ]);
    });

    it("the pipeline's timeout ends attempt 1 (cancelled on the wire) and the retry's attempt 2 succeeds", async () => {
      const clock = new FakeClock();
      const { policy, attempts } = four(clock);
      const { server, client } = await setup(
        { SayHello: (hit) => (hit.n === 1 ? 'hang' : hello(hit)) },
        { methods: { [PATH.SayHello]: policy } },
      );

      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === 1, 'the call to reach the server');
      await clock.advance(5_000);
      await waitFor(() => server.hits[0]?.cancelled === true, 'the server to see the cancel');
      await advanceUntil(clock, 1_000, () => pending.settled !== undefined, 'the retry to succeed');

      expect(pending.settled).toEqual({ error: null, value: { message: 'hello ada', attempt: 2 } });
      expect(attempts.map((e) => [e.attempt, e.outcome.ok ? 'ok' : (e.outcome.error as Error).name])).toEqual([
        [1, 'TimeoutError'],
      ]);
      await waitFor(() => openCalls(client) === 0, 'the channel to have no call left');
    });

    it('without a retry: a full bulkhead refused while the call starts still ends the call after halfClose', async () => {
      const fused = vi.spyOn(FusedUnit.prototype, 'runReporting');
      onTestFinished(() => fused.mockRestore());
      await expectBulkheadRefusal(pipeline(circuitBreaker(), bulkhead({ limit: 1, name: 'greeter-bulkhead' })));
      expect(fused).toHaveBeenCalledTimes(2);
    });

    it('call.cancel() during an attempt: CANCELLED, the server sees the cancel, no retry', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = four(clock);
      await expectCancelMidAttempt(policy, clock, 1);
      expect(attempts).toEqual([]);
    });

    it('a non-idempotent method: its UNAVAILABLE is final, one server call', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = four(clock);
      await expectSentOnce(policy, clock, 1);
      expect(attempts).toEqual([]);
    });
  });

  describe('what passes through untouched', () => {
    it('a streaming method passes through even when listed: no retry, no grpc-previous-rpc-attempts', async () => {
      const captured = captureWarnings();
      onTestFinished(() => captured.restore());
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        {
          StreamHellos: (hit) =>
            hit.n === 1
              ? { messages: ['a', 'b'] }
              : { messages: ['c'], error: { code: status.UNAVAILABLE, details: 'stream down' } },
          CollectHellos: down,
        },
        {
          methods: { [PATH.StreamHellos]: policy, [PATH.CollectHellos]: policy },
        },
      );
      const metadata = new Metadata();
      metadata.set('x-request-id', 'req-7');

      const read = async () => {
        const stream = client.StreamHellos({ name: 'ada' }, metadata);
        const messages: string[] = [];
        let error: ServiceError | undefined;
        stream.on('data', (m: HelloReply) => messages.push(m.message));
        stream.on('error', (e: ServiceError) => {
          error = e;
        });
        const s = await new Promise<StatusObject>((resolve) => stream.on('status', resolve));
        return { messages, code: s.code, details: s.details, error: error?.code };
      };

      expect(await read()).toEqual({ messages: ['a', 'b'], code: status.OK, details: 'OK', error: undefined });
      expect(await read()).toEqual({
        messages: ['c'],
        code: status.UNAVAILABLE,
        details: 'stream down',
        error: status.UNAVAILABLE,
      });

      const collected = await new Promise<ServiceError | null>((resolve) => {
        const stream = client.CollectHellos(new Metadata(), {}, (e) => resolve(e));
        stream.write({ name: 'x' });
        stream.write({ name: 'y' });
        stream.end();
      });
      expect(summary(collected)).toEqual({ code: status.UNAVAILABLE, details: 'down #3', metadata: {} });

      await clock.advance(10_000);
      expect(server.hits.map((h) => [h.method, h.metadata.get(PREVIOUS)])).toEqual([
        ['StreamHellos', []],
        ['StreamHellos', []],
        ['CollectHellos', []],
      ]);
      expect(server.of('StreamHellos').map((h) => h.metadata.get('x-request-id'))).toEqual([['req-7'], ['req-7']]);
      expect(server.of('CollectHellos')[0]?.request).toEqual([{ name: 'x' }, { name: 'y' }]);
      expect(attempts).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
      // Each listed streaming method is reported once, at its first call.
      expect(captured.warnings.map((w) => [w.code, w.message.split('. ')[0]])).toEqual([
        [
          'BULWARK_GRPC_STREAMING_METHOD',
          "grpcInterceptor: methods['/bulwark.test.Greeter/StreamHellos'] names a server streaming method",
        ],
        [
          'BULWARK_GRPC_STREAMING_METHOD',
          "grpcInterceptor: methods['/bulwark.test.Greeter/CollectHellos'] names a client streaming method",
        ],
      ]);
    });

    it('an unlisted unary method passes through: no retry on UNAVAILABLE, metadata as sent', async () => {
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const { server, client } = await setup(
        { SayHello: (hit) => (hit.n === 1 ? down(hit) : hello(hit)), CreateOrder: hello },
        { methods: { [PATH.CreateOrder]: policy } },
      );
      const metadata = new Metadata();
      metadata.set('x-request-id', 'req-9');

      const failed = await unary(client, 'SayHello', { name: 'ada' }, { metadata }).result;
      expect(summary(failed.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #1', metadata: {} });
      const ok = await unary(client, 'SayHello', { name: 'bob' }, { metadata }).result;
      expect(ok).toEqual({ error: null, value: { message: 'hello bob', attempt: 2 } });

      await clock.advance(10_000);
      expect(server.hits.map((h) => [h.metadata.get(PREVIOUS), h.metadata.get('x-request-id')])).toEqual([
        [[], ['req-9']],
        [[], ['req-9']],
      ]);
      expect(clock.pendingTimers).toBe(0);
    });
  });

  describe('methods', () => {
    it('as a function of the path: consulted per unary call, never for streams; may return a config', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      const seen: string[] = [];
      const { server, client } = await setup(
        {
          SayHello: (hit) => (hit.n === 1 ? down(hit) : hello(hit)),
          CreateOrder: down,
          StreamHellos: () => ({ messages: ['s'] }),
        },
        {
          methods: (path) => {
            seen.push(path);
            if (path === PATH.SayHello) return policy;
            if (path === PATH.CreateOrder) return { policy, idempotent: false };
            return undefined;
          },
        },
      );

      const hi = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 100, () => hi.settled !== undefined, 'SayHello to end');
      expect(hi.settled).toEqual({ error: null, value: { message: 'hello ada', attempt: 2 } });

      const order = await unary(client, 'CreateOrder', { name: 'order-1' }).result;
      expect(summary(order.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #3', metadata: {} });

      const stream = client.StreamHellos({ name: 'ada' }, new Metadata());
      await new Promise<void>((resolve) => {
        stream.on('data', () => {});
        stream.on('status', () => resolve());
      });

      expect(seen).toEqual([PATH.SayHello, PATH.CreateOrder]);
      expect(server.hits.map((h) => h.method)).toEqual(['SayHello', 'SayHello', 'CreateOrder', 'StreamHellos']);
      expect(attempts.map((e) => e.operation)).toEqual([PATH.SayHello]);
    });

    it('as a map: read once, when the interceptor is created (a getter runs once, a later entry is not seen)', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      let reads = 0;
      const methods: Record<string, Policy> = {
        get [PATH.SayHello]() {
          reads++;
          return policy;
        },
      };
      const { server, client } = await setup(
        { SayHello: (hit) => (hit.n % 2 === 1 ? down(hit) : hello(hit)), CreateOrder: down },
        { methods },
      );
      // Added after creation: never checked, so never used (the call passes through untouched).
      methods[PATH.CreateOrder] = policy;
      const readsAtCreation = reads;

      for (const name of ['ada', 'bob']) {
        const hi = unary(client, 'SayHello', { name });
        await advanceUntil(clock, 100, () => hi.settled !== undefined, 'SayHello to end');
        expect(hi.settled?.error).toBeNull();
      }
      const order = await unary(client, 'CreateOrder', { name: 'order-1' }).result;

      expect(reads).toBe(readsAtCreation);
      expect(reads).toBe(1);
      expect(summary(order.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #5', metadata: {} });
      expect(attempts.map((e) => e.operation)).toEqual([PATH.SayHello, PATH.SayHello]);
      expect(server.hits.map((h) => h.method)).toEqual(['SayHello', 'SayHello', 'SayHello', 'SayHello', 'CreateOrder']);
    });

    it('as a function: the same policy returned bare and in a non-idempotent config is run as each says', async () => {
      const clock = new FakeClock();
      const { policy, attempts } = recordedRetry(clock, 100);
      let call = 0;
      const { server, client } = await setup(
        { CreateOrder: (hit) => (hit.n === 3 ? hello(hit) : down(hit)) },
        // Odd calls: a config saying not idempotent; even calls: the policy itself (idempotent).
        { methods: () => (++call % 2 === 1 ? { policy, idempotent: false } : policy) },
      );

      const first = await unary(client, 'CreateOrder', { name: 'order-1' }).result;
      expect(summary(first.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #1', metadata: {} });
      const second = unary(client, 'CreateOrder', { name: 'order-2' });
      await advanceUntil(clock, 100, () => second.settled !== undefined, 'the second call to end');
      expect(second.settled).toEqual({ error: null, value: { message: 'hello order-2', attempt: 3 } });
      const third = await unary(client, 'CreateOrder', { name: 'order-3' }).result;
      expect(summary(third.error)).toEqual({ code: status.UNAVAILABLE, details: 'down #4', metadata: {} });

      expect(server.hits.length).toBe(4);
      expect(attempts.map((e) => e.attempt)).toEqual([1]);
    });

    it('a Policy that is not a bulwark policy object (a delegate) runs the call and can be cancelled', async () => {
      const clock = new FakeClock();
      const { policy: inner, attempts } = recordedRetry(clock, 1_000);
      const delegate: Policy = { name: 'delegate', execute: (op, options) => inner.execute(op, options) };
      const { server, client } = await setup(
        { SayHello: (hit) => (hit.n === 1 ? down(hit) : hello(hit)) },
        { methods: { [PATH.SayHello]: delegate } },
      );

      const ok = unary(client, 'SayHello', { name: 'ada' });
      await advanceUntil(clock, 1_000, () => ok.settled !== undefined, 'the call to end');
      expect(ok.settled).toEqual({ error: null, value: { message: 'hello ada', attempt: 2 } });
      expect(server.hits.map((h) => h.metadata.get(PREVIOUS))).toEqual([[], ['1']]);
      expect(attempts.map((e) => e.operation)).toEqual([PATH.SayHello]);

      const { policy: inner2 } = recordedRetry(clock, 1_000);
      const server2 = await startGreeter({ SayHello: down });
      const client2 = greeterClient(server2, [
        grpcInterceptor({
          methods: { [PATH.SayHello]: { name: 'delegate', execute: (op, options) => inner2.execute(op, options) } },
        }),
      ]);
      const cancelled = unary(client2, 'SayHello', { name: 'ada' });
      await waitFor(() => server2.hits.length === 1 && clock.pendingTimers === 1, 'attempt 1 and the backoff');
      cancelled.call.cancel();
      await clock.flush();
      expect(summary(cancelled.settled?.error ?? null)).toEqual({
        code: status.CANCELLED,
        details: 'Cancelled on client',
        metadata: {},
      });
      expect(clock.pendingTimers).toBe(0);
      await clock.advance(10_000);
      expect(server2.hits.length).toBe(1);
    });
  });

  describe('options', () => {
    const methodsExpected = 'a map from method path to a policy, or a function of the path (required)';

    function problem(options: unknown): string {
      try {
        grpcInterceptor(options as GrpcInterceptorOptions);
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidOptionsError);
        expect(e).toBeInstanceOf(TypeError);
        return (e as Error).message;
      }
      throw new Error('expected grpcInterceptor to throw');
    }

    it('requires methods', () => {
      expect(problem({})).toBe(
        `grpcInterceptor: invalid options\n  - methods: expected ${methodsExpected}, got undefined`,
      );
      expect(problem(undefined)).toBe(
        `grpcInterceptor: invalid options\n  - methods: expected ${methodsExpected}, got undefined`,
      );
      expect(problem({ methods: null })).toBe(
        `grpcInterceptor: invalid options\n  - methods: expected ${methodsExpected}, got null`,
      );
      expect(problem({ methods: [] })).toBe(
        `grpcInterceptor: invalid options\n  - methods: expected ${methodsExpected}, got an array of 0`,
      );
      expect(problem({ methods: 'all' })).toBe(
        `grpcInterceptor: invalid options\n  - methods: expected ${methodsExpected}, got "all"`,
      );
      expect(problem(null)).toBe('grpcInterceptor: invalid options\n  - options: expected an object, got null');
    });

    it('rejects an unknown option', () => {
      expect(problem({ methods: {}, retries: 3 })).toBe(
        'grpcInterceptor: invalid options\n  - retries: expected a known option (unknown name; allowed: methods, failureCodes, services, clock, wallClock), got 3',
      );
    });

    it.each([
      [[0], 'an array of 1'],
      [[17], 'an array of 1'],
      [[14, 1.5], 'an array of 2'],
      [['UNAVAILABLE'], 'an array of 1'],
      [14, '14'],
      [null, 'null'],
    ])('rejects failureCodes %j', (failureCodes, received) => {
      expect(problem({ methods: {}, failureCodes })).toBe(
        `grpcInterceptor: invalid options\n  - failureCodes: expected an array of gRPC status codes (1..16), got ${received}`,
      );
    });

    it('reports every problem at once', () => {
      expect(problem({ methods: 5, failureCodes: [99], clock: {}, wallClock: 'now', extra: true })).toBe(
        [
          'grpcInterceptor: invalid options',
          '  - extra: expected a known option (unknown name; allowed: methods, failureCodes, services, clock, wallClock), got true',
          `  - methods: expected ${methodsExpected}, got 5`,
          '  - failureCodes: expected an array of gRPC status codes (1..16), got an array of 1',
          '  - clock: expected a Clock (an object with now(), setTimeout() and clearTimeout()), got {}',
          '  - wallClock: expected a function, got "now"',
        ].join('\n'),
      );
    });

    it('accepts valid options', () => {
      const clock = new FakeClock();
      expect(typeof grpcInterceptor({ methods: {} })).toBe('function');
      expect(
        typeof grpcInterceptor({ methods: () => undefined, failureCodes: [1, 16], clock, wallClock: () => 0 }),
      ).toBe('function');
      expect(typeof grpcInterceptor({ methods: {}, failureCodes: [] })).toBe('function');
    });
  });
});

describe('statusOf', () => {
  it('returns a GrpcStatusError as its own status', () => {
    const metadata = new Metadata();
    metadata.set('x-k', 'v');
    const error = new GrpcStatusError({ code: status.ABORTED, details: 'conflict', metadata }, undefined, true);
    const s = statusOf(error);
    expect(s.code).toBe(status.ABORTED);
    expect(s.details).toBe('conflict');
    expect(s.metadata).toBe(metadata);
  });

  it('maps an open circuit to UNAVAILABLE with the pushback rounded up', () => {
    const error = new CircuitOpenError('payments', 1_234.2, 'open');
    const s = statusOf(error);
    expect([s.code, s.details, s.metadata.get(PUSHBACK)]).toEqual([
      status.UNAVAILABLE,
      'circuit breaker "payments" is open: call not attempted, retry after 1235 ms',
      ['1235'],
    ]);
  });

  it('maps an isolated circuit to UNAVAILABLE without pushback', () => {
    const s = statusOf(new CircuitOpenError('payments', Number.POSITIVE_INFINITY, 'isolated'));
    expect([s.code, s.details, s.metadata.get(PUSHBACK)]).toEqual([
      status.UNAVAILABLE,
      'circuit breaker "payments" is isolated: calls are refused until reset() or until every isolate() is released',
      [],
    ]);
  });

  it.each([
    [2_147_483_647, ['2147483647']],
    [2_147_483_647.5, []],
    [3e9, []],
    [Number.MAX_VALUE, []],
    [0, ['0']],
  ])(
    'an open circuit with retryAfterMs %d: pushback only within A6 range (0..2^31-1), never out of it',
    (ms, pushback) => {
      const s = statusOf(new CircuitOpenError('payments', ms, 'open'));
      expect([s.code, s.metadata.get(PUSHBACK)]).toEqual([status.UNAVAILABLE, pushback]);
    },
  );

  it("maps a RetryExhaustedError (onExhausted: 'wrap') to the status of its cause", () => {
    const cause = new GrpcStatusError({ code: status.UNAVAILABLE, details: 'down', metadata: new Metadata() }, 5, true);
    expect(statusOf(new RetryExhaustedError('r', 3, cause)).code).toBe(status.UNAVAILABLE);
    const timedOut = statusOf(new RetryExhaustedError('r', 3, new TimeoutError('rpc', 250)));
    expect([timedOut.code, timedOut.details]).toEqual([
      status.DEADLINE_EXCEEDED,
      'timeout "rpc": the operation did not settle within 250 ms',
    ]);
  });

  it('is total: whatever was thrown, a status (UNKNOWN), never a throw', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
    const noProto = Object.create(null) as unknown;
    for (const e of [hostile, noProto, Symbol('s'), 10n]) {
      const s = statusOf(e);
      expect(s.code).toBe(status.UNKNOWN);
      expect(s.details.startsWith('bulwark: ')).toBe(true);
    }
    expect(statusOf(noProto).details).toBe('bulwark: {}');
  });

  it('maps a full bulkhead to RESOURCE_EXHAUSTED and a timeout to DEADLINE_EXCEEDED', () => {
    const full = statusOf(new BulkheadRejectedError('db', 'full', 4, 2));
    expect([full.code, full.details, full.metadata.getMap()]).toEqual([
      status.RESOURCE_EXHAUSTED,
      'bulkhead "db" is full (4 running, 2 queued): call rejected',
      {},
    ]);
    const late = statusOf(new TimeoutError('rpc', 250));
    expect([late.code, late.details, late.metadata.getMap()]).toEqual([
      status.DEADLINE_EXCEEDED,
      'timeout "rpc": the operation did not settle within 250 ms',
      {},
    ]);
  });

  it('maps anything else to UNKNOWN with a bulwark prefix', () => {
    expect([statusOf(new Error('boom')).code, statusOf(new Error('boom')).details]).toEqual([
      status.UNKNOWN,
      'bulwark: boom',
    ]);
    expect(statusOf('a string').details).toBe('bulwark: a string');
    expect(statusOf(undefined).details).toBe('bulwark: undefined');
    expect(statusOf({ code: 'ERR_CIRCUIT_OPEN' }).code).toBe(status.UNKNOWN);
  });
});

describe('pushbackOf', () => {
  const md = (...values: string[]) => {
    const m = new Metadata();
    for (const v of values) m.add(PUSHBACK, v);
    return m;
  };

  it('is undefined without the trailer', () => {
    expect(pushbackOf(new Metadata())).toBeUndefined();
  });

  it.each([
    ['2000', 2_000],
    ['0', 0],
    ['007', 7],
    ['86400000', 86_400_000],
    ['2147483647', 2_147_483_647],
    ['0002147483647', 2_147_483_647],
    [' 5', 5],
    ['5 ', 5],
  ])('parses %j as %d', (value, ms) => {
    expect(pushbackOf(md(value))).toBe(ms);
  });

  it.each([
    '-1',
    '-0',
    '-250',
    'soon',
    '1.5',
    '1e3',
    '+5',
    '0x10',
    '',
    ' ',
    '1 000',
    '2147483648',
    '9'.repeat(310),
    'Infinity',
  ])('reads %j as stop', (value) => {
    expect(pushbackOf(md(value))).toBe('stop');
  });

  it('several values: the largest delay, or stop if any says stop', () => {
    expect(pushbackOf(md('300', '500'))).toBe(500);
    expect(pushbackOf(md('500', '300'))).toBe(500);
    expect(pushbackOf(md('300', '-1'))).toBe('stop');
    expect(pushbackOf(md('x', '300'))).toBe('stop');
  });

  it('a value joined with commas (HTTP/2 joins a repeated field) is read as several', () => {
    expect(pushbackOf(md('300, 500'))).toBe(500);
    expect(pushbackOf(md('300,-1'))).toBe('stop');
    expect(pushbackOf(md('300,'))).toBe('stop');
    expect(pushbackOf(md(','))).toBe('stop');
  });
});
