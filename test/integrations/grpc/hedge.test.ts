/**
 * hedge() inside the gRPC interceptor, against a real grpc-js server on 127.0.0.1, under gRFC A6's hedging rules:
 * several attempts in flight, the first to receive response headers, a message or a fatal status is committed (the
 * others are cancelled on the wire, no hedge starts after), a failure code (A6's non-fatal codes: `failureCodes`)
 * sends the next hedge at once, server pushback delays or stops the next hedge. Delays run on a FakeClock: what
 * starts when is exact, never timed.
 */
import { Metadata, status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type HedgeOptions, hedge, keyed, type Policy, pipeline, retry, timeout } from '../../../src/index.js';
import { type GrpcInterceptorOptions, grpcInterceptor } from '../../../src/integrations/grpc/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import {
  type Action,
  closeAll,
  type GreeterServer,
  greeterClient,
  type Hit,
  openCalls,
  PATH,
  type Scripts,
  startGreeter,
  unary,
  waitFor,
} from './helpers.js';

const PREVIOUS = 'grpc-previous-rpc-attempts';
const PUSHBACK = 'grpc-retry-pushback-ms';

const ok = (hit: Hit): Exclude<Action, 'hang'> => ({ ok: { message: `hello #${hit.n}`, attempt: hit.n } });
const down = (details = 'down', trailers?: Record<string, string>): Exclude<Action, 'hang'> => ({
  code: status.UNAVAILABLE,
  details,
  ...(trailers === undefined ? {} : { trailers }),
});

/** Unhandled rejections seen during a test: there must be none. */
let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeEach(() => {
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
  closeAll();
});

async function setup(
  scripts: Scripts,
  hedgeOptions: HedgeOptions,
  options: Partial<GrpcInterceptorOptions> = {},
  clock = new FakeClock(),
): Promise<{ server: GreeterServer; client: ReturnType<typeof greeterClient>; clock: FakeClock }> {
  const server = await startGreeter(scripts);
  const policy = hedge({ delayMs: 1_000, clock, ...hedgeOptions });
  const client = greeterClient(server, [
    grpcInterceptor({ methods: { [PATH.SayHello]: policy }, clock, wallClock: () => clock.now(), ...options }),
  ]);
  return { server, client, clock };
}

/** The `grpc-previous-rpc-attempts` each hit carried, in order (undefined: none). */
const previous = (server: GreeterServer): (string | undefined)[] =>
  server.hits.map((h) => h.metadata.get(PREVIOUS)[0] as string | undefined);

/**
 * Runs every timer left (a hedge's shared delay queue keeps its timer armed after its last call left it), then
 * checks that none is left and that nothing more was sent.
 */
async function drained(clock: FakeClock, server: GreeterServer, hits: number): Promise<void> {
  await clock.runAll();
  await settle();
  expect(clock.pendingTimers).toBe(0);
  expect(server.hits).toHaveLength(hits);
}

/** Lets grpc-js's I/O run a few turns: for checks that something did not happen (never a timing). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('grpc interceptor: hedge() under gRFC A6', { timeout: 5_000 }, () => {
  it('a slow primary and a fast hedge: the hedge answers, the primary is cancelled on the server', async () => {
    const { server, client, clock } = await setup({ SayHello: (hit) => (hit.n === 1 ? 'hang' : ok(hit)) }, {});
    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => server.hits.length === 1, 'the primary');
    await clock.advance(999);
    await settle();
    expect(server.hits).toHaveLength(1);
    await clock.advance(1);
    const { error, value } = await pending.result;
    expect(error).toBeNull();
    expect(value).toEqual({ message: 'hello #2', attempt: 2 });
    await waitFor(() => server.hits[0]?.cancelled === true, 'the primary cancelled on the server');
    expect(previous(server)).toEqual([undefined, '1']);
    expect(openCalls(client)).toBe(0);
    await drained(clock, server, 2);
    expect(unhandled).toEqual([]);
  });

  it('grpc-previous-rpc-attempts counts the attempts sent before each hedge', async () => {
    const { server, client, clock } = await setup(
      { SayHello: (hit) => (hit.n < 4 ? 'hang' : ok(hit)) },
      { maxHedgedAttempts: 3 },
    );
    const pending = unary(client, 'SayHello', { name: 'ada' });
    for (let n = 2; n <= 4; n++) {
      await waitFor(() => server.hits.length === n - 1, `attempt ${n - 1}`);
      await clock.advance(1_000);
    }
    expect((await pending.result).value?.attempt).toBe(4);
    expect(previous(server)).toEqual([undefined, '1', '2', '3']);
    await waitFor(() => server.hits.slice(0, 3).every((h) => h.cancelled), 'the losers cancelled');
  });

  it('a failure code (non-fatal) sends the next hedge at once, without waiting for the delay', async () => {
    const { server, client, clock } = await setup(
      { SayHello: (hit) => (hit.n === 1 ? down() : ok(hit)) },
      { delayMs: 60_000 },
    );
    const { error, value } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(error).toBeNull();
    expect(value?.attempt).toBe(2);
    expect(clock.now()).toBe(0); // the fake clock never moved: the hedge did not wait
    expect(previous(server)).toEqual([undefined, '1']);
  });

  it('a fatal status commits its attempt: the caller gets it, the others are cancelled, no hedge starts', async () => {
    const { server, client, clock } = await setup(
      {
        SayHello: (hit) =>
          hit.n === 1 ? 'hang' : { code: status.INVALID_ARGUMENT, details: 'bad name', trailers: { 'x-why': 'n' } },
      },
      { maxHedgedAttempts: 3 },
    );
    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => server.hits.length === 1, 'the primary');
    await clock.advance(1_000);
    const { error } = await pending.result;
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toBe('bad name');
    expect(error?.metadata.get('x-why')).toEqual(['n']);
    await waitFor(() => server.hits[0]?.cancelled === true, 'the primary cancelled');
    await drained(clock, server, 2);
  });

  describe('commit on response headers or a message', () => {
    it('an attempt that sent its headers is committed: no hedge starts while its reply is slow', async () => {
      const { server, client, clock } = await setup(
        {
          SayHello: (hit) => {
            hit.sendHeaders({ 'x-served-by': `a${hit.n}` });
            return 'hang';
          },
        },
        { maxHedgedAttempts: 2 },
      );
      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === 1, 'the primary');
      await settle();
      await clock.advance(5_000);
      await settle();
      expect(server.hits).toHaveLength(1);
      // Until the reply, nothing reached the caller (A6: the caller sees only the committed attempt's stream).
      expect(pending.headers).toBeUndefined();
      server.hits[0]?.respond(ok(server.hits[0]));
      const { error, value } = await pending.result;
      expect(error).toBeNull();
      expect(value?.attempt).toBe(1);
      expect(pending.headers?.get('x-served-by')).toEqual(['a1']);
    });

    it('headers on one attempt cancel the others; its later failure code is final, not hedged', async () => {
      const { server, client, clock } = await setup({ SayHello: () => 'hang' }, { maxHedgedAttempts: 3 });
      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === 1, 'the primary');
      await clock.advance(1_000);
      await waitFor(() => server.hits.length === 2, 'the first hedge');
      server.hits[1]?.sendHeaders({ 'x-served-by': 'a2' });
      await waitFor(() => server.hits[0]?.cancelled === true, 'the primary cancelled by the commit');
      server.hits[1]?.respond(down('late failure'));
      const { error } = await pending.result;
      expect(error?.code).toBe(status.UNAVAILABLE);
      expect(error?.details).toBe('late failure');
      await drained(clock, server, 2);
    });
  });

  describe('server pushback (grpc-retry-pushback-ms) on a failure code', () => {
    it('a valid value delays the next hedge by exactly that much, then the delays resume from there', async () => {
      const { server, client, clock } = await setup(
        {
          SayHello: (hit) => (hit.n === 1 ? down('busy', { [PUSHBACK]: '300' }) : hit.n === 2 ? 'hang' : ok(hit)),
        },
        { maxHedgedAttempts: 2 },
      );
      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => clock.nextTimerAt === 300, 'the pushback to be waited for');
      await clock.advance(299);
      await settle();
      expect(server.hits).toHaveLength(1);
      await clock.advance(1);
      await waitFor(() => server.hits.length === 2, 'the hedge after the pushback');
      // The next hedge: the policy's delay, from the pushback's end (1,300).
      await clock.advance(999);
      await settle();
      expect(server.hits).toHaveLength(2);
      await clock.advance(1);
      const { value } = await pending.result;
      expect(value?.attempt).toBe(3);
      expect(previous(server)).toEqual([undefined, '1', '2']);
    });

    it('a negative value stops hedging; the attempts running go on and can still win', async () => {
      const { server, client, clock } = await setup(
        { SayHello: (hit) => (hit.n === 1 ? 'hang' : down('stop', { [PUSHBACK]: '-1' })) },
        { maxHedgedAttempts: 3 },
      );
      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === 1, 'the primary');
      await clock.advance(1_000);
      await waitFor(() => server.hits[1]?.answered === true, 'the hedge to fail with pushback -1');
      await settle();
      await clock.advance(10_000);
      await settle();
      expect(server.hits).toHaveLength(2);
      server.hits[0]?.respond(ok(server.hits[0]));
      const { error, value } = await pending.result;
      expect(error).toBeNull();
      expect(value?.attempt).toBe(1);
      await drained(clock, server, 2);
    });

    it('a stop on the only attempt running ends the call with its failure at once', async () => {
      const { server, client, clock } = await setup(
        { SayHello: () => down('go away', { [PUSHBACK]: 'soon' }) },
        { maxHedgedAttempts: 3 },
      );
      const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
      expect(error?.code).toBe(status.UNAVAILABLE);
      expect(error?.details).toBe('go away');
      await drained(clock, server, 1);
    });
  });

  it('every attempt fails: the caller gets the primary attempt failure', async () => {
    const { server, client, clock } = await setup(
      { SayHello: (hit) => down(`attempt ${hit.n} down`, { 'x-n': String(hit.n) }) },
      { maxHedgedAttempts: 2 },
    );
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(error?.details).toBe('attempt 1 down');
    expect(error?.metadata.get('x-n')).toEqual(['1']);
    expect(previous(server)).toEqual([undefined, '1', '2']);
    expect(clock.now()).toBe(0);
    await drained(clock, server, 3);
  });

  it('the caller cancels mid-hedge: every attempt is cancelled on the server, nothing leaks', async () => {
    const { server, client, clock } = await setup({ SayHello: () => 'hang' }, { maxHedgedAttempts: 3 });
    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => server.hits.length === 1, 'the primary');
    await clock.advance(1_000);
    await waitFor(() => server.hits.length === 2, 'the hedge');
    pending.call.cancel();
    const { error } = await pending.result;
    expect(error?.code).toBe(status.CANCELLED);
    await waitFor(() => server.hits.every((h) => h.cancelled), 'every attempt cancelled on the server');
    expect(openCalls(client)).toBe(0);
    await drained(clock, server, 2);
    expect(unhandled).toEqual([]);
  });

  it('the deadline covers every attempt: DEADLINE_EXCEEDED, every attempt cancelled', async () => {
    // The interceptor reads the deadline on the fake wall clock: 2,500 ms from now. grpc-js reads the real one,
    // a minute away, so only the interceptor's deadline can pass.
    const deadline = Date.now() + 60_000;
    const clock = new FakeClock();
    const { server, client } = await setup(
      { SayHello: () => 'hang' },
      { maxHedgedAttempts: 3 },
      { wallClock: () => deadline - 2_500 + clock.now() },
      clock,
    );
    const pending = unary(client, 'SayHello', { name: 'ada' }, { deadline });
    await waitFor(() => server.hits.length === 1, 'the primary');
    await clock.advance(1_000);
    await waitFor(() => server.hits.length === 2, 'hedge 1');
    await clock.advance(1_000);
    await waitFor(() => server.hits.length === 3, 'hedge 2');
    await clock.advance(500);
    const { error } = await pending.result;
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    await waitFor(() => server.hits.every((h) => h.cancelled), 'every attempt cancelled on the server');
    await drained(clock, server, 3);
    expect(unhandled).toEqual([]);
  });

  it('a method that is not idempotent is never hedged', async () => {
    const clock = new FakeClock();
    const server = await startGreeter({ SayHello: () => 'hang' });
    const client = greeterClient(server, [
      grpcInterceptor({
        methods: { [PATH.SayHello]: { policy: hedge({ delayMs: 1_000, clock }), idempotent: false } },
        clock,
      }),
    ]);
    const pending = unary(client, 'SayHello', { name: 'ada' });
    await waitFor(() => server.hits.length === 1, 'the primary');
    await clock.advance(5_000);
    await settle();
    expect(server.hits).toHaveLength(1);
    server.hits[0]?.respond(ok(server.hits[0]));
    expect((await pending.result).value?.attempt).toBe(1);
  });

  it('under retry and in a pipeline, from a methods function or made by keyed: hedges and commits the same', async () => {
    const clock = new FakeClock();
    const server = await startGreeter({
      SayHello: (hit) => {
        if (hit.n % 2 === 1) return 'hang';
        hit.sendHeaders({ 'x-n': String(hit.n) });
        return ok(hit);
      },
    });
    const perKey = keyed(
      () => 'k',
      () => hedge({ delayMs: 1_000, clock }),
    );
    const policies: Policy[] = [
      pipeline(retry({ clock }), hedge({ delayMs: 1_000, clock }), timeout({ ms: 60_000, clock })),
      pipeline(retry({ clock }), perKey),
    ];
    for (const policy of policies) {
      const client = greeterClient(server, [grpcInterceptor({ methods: () => policy, clock })]);
      const before = server.hits.length;
      const pending = unary(client, 'SayHello', { name: 'ada' });
      await waitFor(() => server.hits.length === before + 1, 'the primary');
      await clock.advance(1_000);
      const { error, value } = await pending.result;
      expect(error).toBeNull();
      expect(value?.attempt).toBe(before + 2);
      expect(pending.headers?.get('x-n')).toEqual([String(before + 2)]);
      await waitFor(() => server.hits[before]?.cancelled === true, 'the primary cancelled');
      await drained(clock, server, before + 2);
    }
  });

  it('hedges read the caller metadata on every attempt', async () => {
    const { server, client, clock } = await setup({ SayHello: (hit) => (hit.n === 1 ? 'hang' : ok(hit)) }, {});
    const metadata = new Metadata();
    metadata.set('x-request-id', 'req-7');
    const pending = unary(client, 'SayHello', { name: 'ada' }, { metadata });
    await waitFor(() => server.hits.length === 1, 'the primary');
    await clock.advance(1_000);
    await pending.result;
    expect(server.hits.map((h) => h.metadata.get('x-request-id'))).toEqual([['req-7'], ['req-7']]);
    expect(server.hits.map((h) => h.request)).toEqual([{ name: 'ada' }, { name: 'ada' }]);
  });
});
