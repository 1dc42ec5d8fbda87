/**
 * Regressions of the gRPC interceptor: each test failed against an earlier version of src/integrations/grpc.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bulkhead,
  constant,
  fallback,
  isInvalidOptionsError,
  type Policy,
  Properties,
  pipeline,
  retry,
  timeout,
} from '../../../src/index.js';
import { type GrpcInterceptorOptions, GrpcStatusError, grpcInterceptor } from '../../../src/integrations/grpc/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import {
  closeAll,
  greeterClient,
  type Hit,
  openCalls,
  PATH,
  type Scripts,
  startGreeter,
  summary,
  unary,
  waitFor,
} from './helpers.js';

afterEach(() => closeAll());

const hello = (hit: Hit) => ({ ok: { message: `hello ${(hit.request as { name: string }).name}`, attempt: hit.n } });

async function setup(scripts: Scripts, options: GrpcInterceptorOptions) {
  const server = await startGreeter(scripts);
  const client = greeterClient(server, [grpcInterceptor(options)]);
  return { server, client };
}

describe('grpc interceptor: regressions', { timeout: 5_000 }, () => {
  it('the call deadline passing while an attempt is in flight reaches the caller as DEADLINE_EXCEEDED', async () => {
    const clock = new FakeClock();
    const base = Date.now();
    const policy = retry({ clock, backoff: constant(1_000) });
    const { server, client } = await setup(
      { SayHello: () => 'hang' },
      { methods: { [PATH.SayHello]: policy }, clock, wallClock: () => base + clock.now() },
    );

    const pending = unary(client, 'SayHello', { name: 'ada' }, { deadline: base + 60_000 });
    await waitFor(() => server.hits.length === 1, 'the call to reach the server');
    await clock.advance(60_000);
    await waitFor(() => pending.settled !== undefined, 'the call to end');

    expect(summary(pending.settled?.error ?? null)).toEqual({
      code: status.DEADLINE_EXCEEDED,
      details: 'Deadline exceeded',
      metadata: {},
    });
  });

  it('a non-idempotent method is sent once even when its first attempt was refused locally (bulkhead)', async () => {
    const clock = new FakeClock();
    const gate = bulkhead({ name: 'orders', limit: 1 });
    let release = () => {};
    const occupied = gate.execute(() => new Promise<void>((r) => (release = r)));
    const policy = pipeline(
      retry({ clock, backoff: constant(1_000), maxAttempts: 3 }),
      gate,
      timeout({ ms: 100, clock, name: 'order-timeout' }),
    );
    const { server, client } = await setup(
      { CreateOrder: () => 'hang' },
      { methods: { [PATH.CreateOrder]: { policy, idempotent: false } } },
    );

    const pending = unary(client, 'CreateOrder', { name: 'order-1' });
    await waitFor(() => clock.pendingTimers === 1, 'attempt 1 refused by the bulkhead, backoff armed');
    release();
    await occupied;
    await clock.advance(1_000); // attempt 2: admitted, sent
    await waitFor(() => server.hits.length === 1, 'the order to reach the server');
    await clock.advance(100); // the attempt times out: the server may have done the work
    await clock.advance(5_000);
    await waitFor(() => pending.settled !== undefined, 'the call to end');

    expect(server.hits.length).toBe(1);
    expect(pending.settled?.error?.code).toBe(status.DEADLINE_EXCEEDED);
  });

  it('grpc-previous-rpc-attempts counts attempts sent, not attempts refused locally', async () => {
    const clock = new FakeClock();
    const gate = bulkhead({ name: 'hello', limit: 1 });
    let release = () => {};
    const occupied = gate.execute(() => new Promise<void>((r) => (release = r)));
    const policy = pipeline(retry({ clock, backoff: constant(1_000), maxAttempts: 3 }), gate);
    const { server, client } = await setup({ SayHello: hello }, { methods: { [PATH.SayHello]: policy } });

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => clock.pendingTimers === 1, 'attempt 1 refused by the bulkhead, backoff armed');
    release();
    await occupied;
    await clock.advance(1_000);
    await pending.result;

    expect(server.hits.length).toBe(1);
    expect(server.hits[0]?.metadata.get('grpc-previous-rpc-attempts')).toEqual([]);
  });

  it('a Policy implemented outside bulwark (it calls the operation with a plain Context) runs the call', async () => {
    const own: Policy = {
      name: 'own',
      execute: async (op, options) =>
        op({
          signal: options?.signal ?? new AbortController().signal,
          attempt: 1,
          operation: options?.operation ?? 'default',
          properties: new Properties(),
        }),
    };
    const { server, client } = await setup({ SayHello: hello }, { methods: { [PATH.SayHello]: own } });

    const result = await unary(client, 'SayHello', { name: 'ada' }).result;

    expect(summary(result.error)).toBeNull();
    expect(result.value).toEqual({ message: 'hello ada', attempt: 1 });
    expect(server.hits.length).toBe(1);
  });

  it('a Policy written outside bulwark sends the call and leaves no call open on the channel', async () => {
    const own: Policy = {
      name: 'own',
      execute: async (op) =>
        op({ signal: new AbortController().signal, attempt: 1, operation: 'x', properties: new Properties() }),
    };
    const { server, client } = await setup({ SayHello: hello }, { methods: { [PATH.SayHello]: own } });

    await unary(client, 'SayHello', { name: 'ada' }).result;
    await waitFor(() => true, 'a turn of I/O');

    expect(server.hits.length).toBe(1);
    expect(openCalls(client)).toBe(0);
  });

  it("a bulwark timeout wrapped by retry's onExhausted: 'wrap' still reaches the caller as DEADLINE_EXCEEDED", async () => {
    const clock = new FakeClock();
    const policy = pipeline(
      retry({ clock, backoff: constant(10), maxAttempts: 2, onExhausted: 'wrap' }),
      timeout({ ms: 100, clock, name: 'hello-timeout' }),
    );
    const { server, client } = await setup({ SayHello: () => 'hang' }, { methods: { [PATH.SayHello]: policy } });

    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => server.hits.length === 1, 'attempt 1');
    await clock.advance(110);
    await waitFor(() => server.hits.length === 2, 'attempt 2');
    await clock.advance(100);
    await waitFor(() => pending.settled !== undefined, 'the call to end');

    expect(pending.settled?.error?.code).toBe(status.DEADLINE_EXCEEDED);
  });

  it('a methods entry that is not a policy is reported when the interceptor is built', () => {
    let thrown: unknown;
    try {
      grpcInterceptor({ methods: { [PATH.SayHello]: 5 } } as unknown as GrpcInterceptorOptions);
    } catch (e) {
      thrown = e;
    }
    expect(isInvalidOptionsError(thrown)).toBe(true);
  });
});

describe('grpc interceptor: a fallback inside the policy', () => {
  it('ends the call with UNKNOWN and a clear message, never hangs', async () => {
    const { client } = await setup(
      { SayHello: () => ({ code: status.UNAVAILABLE, details: 'down' }) },
      { methods: { [PATH.SayHello]: fallback({ value: 'CACHED' }) } },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(error?.code).toBe(status.UNKNOWN);
    expect(error?.details).toMatch(/not a gRPC reply \(a fallback inside the interceptor's policy\?\)/);
  });

  it('a hostile fallback value (a getter that throws, a proxy that throws on every read): UNKNOWN, never hangs', async () => {
    const getter = Object.defineProperty({}, '_owner', {
      get() {
        throw new Error('hostile getter');
      },
    });
    const proxy = new Proxy(
      {},
      {
        get() {
          throw new Error('hostile proxy');
        },
        getPrototypeOf() {
          throw new Error('hostile proxy');
        },
      },
    );
    // The proxy fails earlier: resolving a promise with it reads its `then`, which throws, so the policy rejects.
    for (const [value, details] of [
      [getter, /not a gRPC reply/],
      [proxy, /^bulwark: hostile proxy$/],
    ] as const) {
      const { client } = await setup(
        { SayHello: () => ({ code: status.UNAVAILABLE, details: 'down' }) },
        { methods: { [PATH.SayHello]: fallback({ value }) } },
      );
      const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
      expect(error?.code).toBe(status.UNKNOWN);
      expect(error?.details).toMatch(details);
    }
  });

  it('GrpcStatusError is recognised across copies by its brand', () => {
    expect(Object.assign(new Error('x'), { [Symbol.for('bulwark.grpc-status-error')]: true })).toBeInstanceOf(
      GrpcStatusError,
    );
    expect(new Error('y')).not.toBeInstanceOf(GrpcStatusError);
  });
});

describe('grpc interceptor: method config validation', () => {
  it("an idempotent flag that is not a boolean is refused (a 'false' string would silently retry)", () => {
    expect(() =>
      grpcInterceptor({ methods: { [PATH.SayHello]: { policy: retry(), idempotent: 'false' } } } as never),
    ).toThrow(/methods\['\/bulwark.test.Greeter\/SayHello'\].idempotent: expected a boolean, got "false"/);
  });
});

describe('grpc interceptor: every failure ends the call with a status (issue 11, same class)', {
  timeout: 5_000,
}, () => {
  it.each([
    ['an object without a prototype', () => Object.create(null) as unknown, 'bulwark: {}'],
    [
      'an object whose toString throws',
      () => ({
        toString() {
          throw new Error('no');
        },
      }),
      'bulwark: {}',
    ],
    [
      'an Error whose message getter throws',
      () =>
        Object.defineProperty(new Error('x'), 'message', {
          get() {
            throw new Error('no');
          },
        }),
      'bulwark: Error: [message unreadable]',
    ],
  ])('a policy rejecting with %s: UNKNOWN, never a hang or an unhandled rejection', async (_what, make, details) => {
    const thrower: Policy = { name: 'thrower', execute: () => Promise.reject(make()) };
    const { server, client } = await setup({ SayHello: hello }, { methods: { [PATH.SayHello]: thrower } });
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(summary(error)).toEqual({ code: status.UNKNOWN, details, metadata: {} });
    expect(server.hits.length).toBe(0);
  });

  it('a Policy whose execute throws synchronously: UNKNOWN with its message, and no deadline timer left', async () => {
    const clock = new FakeClock();
    const base = Date.now();
    const broken = {
      name: 'broken',
      execute: () => {
        throw new Error('sync boom');
      },
    } as unknown as Policy;
    const { client } = await setup(
      { SayHello: hello },
      { methods: { [PATH.SayHello]: broken }, clock, wallClock: () => base + clock.now() },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }, { deadline: base + 5_000 }).result;
    expect(summary(error)).toEqual({ code: status.UNKNOWN, details: 'bulwark: sync boom', metadata: {} });
    expect(clock.pendingTimers).toBe(0);
  });

  it.each([
    ['null', null, 'null'],
    ['a number', 5, '5'],
    ['a config without a policy', { policy: 'retry' }, '{"policy":"retry"}'],
  ])(
    'a methods function returning %s: the call ends with UNKNOWN saying so, nothing sent',
    async (_what, value, shown) => {
      const { server, client } = await setup({ SayHello: hello }, { methods: () => value as unknown as Policy });
      const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
      expect(summary(error)).toEqual({
        code: status.UNKNOWN,
        details: `bulwark: grpcInterceptor: methods('${PATH.SayHello}') returned ${shown}; expected a policy, { policy, idempotent?: boolean }, or undefined to pass the call through`,
        metadata: {},
      });
      expect(server.hits.length).toBe(0);
    },
  );

  it('a methods function that throws: the call ends with UNKNOWN saying so, no throw from the client call', async () => {
    const { server, client } = await setup(
      { SayHello: hello },
      {
        methods: () => {
          throw new Error('config not loaded');
        },
      },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(summary(error)).toEqual({
      code: status.UNKNOWN,
      details: `bulwark: grpcInterceptor: methods('${PATH.SayHello}') threw: config not loaded`,
      metadata: {},
    });
    expect(server.hits.length).toBe(0);
  });

  it("a methods function returning idempotent: 'false' (a string) is refused, never retried as idempotent", async () => {
    const { server, client } = await setup(
      { SayHello: () => ({ code: status.UNAVAILABLE, details: 'down' }) },
      { methods: () => ({ policy: retry({ backoff: constant(1) }), idempotent: 'false' as unknown as boolean }) },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(error?.code).toBe(status.UNKNOWN);
    expect(server.hits.length).toBe(0);
  });
});

describe('grpc interceptor: deadlines far in the future', { timeout: 5_000 }, () => {
  it.each([
    ['Date.now() + 1e15 ms', () => Date.now() + 1e15],
    ['the largest Date', () => new Date(8.64e15)],
    ['1e300', () => 1e300],
  ])(
    '%s: the call runs (grpc-js alone never ends it: "Deadline is too far in the future")',
    async (_what, deadline) => {
      const { server, client } = await setup(
        { SayHello: (hit) => (hit.n === 1 ? { code: status.UNAVAILABLE, details: 'down' } : hello(hit)) },
        { methods: { [PATH.SayHello]: retry({ backoff: constant(1) }) } },
      );
      const { error, value } = await unary(client, 'SayHello', { name: 'ada' }, { deadline: deadline() }).result;
      expect([error, value]).toEqual([null, { message: 'hello ada', attempt: 2 }]);
      // The attempts carry no grpc-timeout: a deadline grpc-js cannot encode is sent as none.
      expect(server.hits.map((h) => h.deadline)).toEqual([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
    },
  );

  it('a deadline just below what grpc-js can encode is still sent to the server', async () => {
    const { server, client } = await setup({ SayHello: hello }, { methods: { [PATH.SayHello]: retry() } });
    const deadline = Date.now() + 3e14;
    const { value } = await unary(client, 'SayHello', { name: 'ada' }, { deadline }).result;
    expect(value?.message).toBe('hello ada');
    expect(server.hits[0]?.deadline).not.toBe(Number.POSITIVE_INFINITY);
  });
});
