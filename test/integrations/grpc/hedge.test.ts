import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { hedge, InvalidOptionsError, keyed, type Policy, pipeline, retry, timeout } from '../../../src/index.js';
import { type GrpcInterceptorOptions, grpcInterceptor } from '../../../src/integrations/grpc/index.js';
import { closeAll, greeterClient, type Hit, openCalls, PATH, startGreeter, unary } from './helpers.js';

afterEach(() => closeAll());

/** What every refusal says: the reason, and what to do instead. */
const REFUSAL =
  /hedging is not supported inside bulwark\/grpc yet, because a gRPC call there runs one attempt at a time; hedge around the client call instead, or use retry/;

const hello = (hit: Hit) => ({ ok: { message: `hello #${hit.n}`, attempt: hit.n } });

describe('grpc interceptor: a policy holding hedge() is refused', { timeout: 5_000 }, () => {
  // Why refused, found with a real server: concurrent attempts did run (winner delivered, loser cancelled), but
  // gRFC A6 hedging is more than that: a server pushback saying stop (grpc-retry-pushback-ms: -1) must end hedging,
  // and a hedge started the next attempt anyway. Real A6 hedging is issue 14's; until then, no silent half of it.
  it('at construction: a map entry holding a hedge (alone, in a pipeline, nested, in a config, or made by keyed)', () => {
    const perKey = keyed(
      () => 'k',
      () => hedge({ delayMs: 20 }),
    );
    perKey.get('k');
    const entries: unknown[] = [
      hedge({ delayMs: 20 }),
      pipeline(hedge({ delayMs: 20 }), timeout(1_000)),
      pipeline(retry(), pipeline(hedge({ delayMs: 20 }), timeout(1_000))),
      { policy: pipeline(hedge({ delayMs: 20 }), timeout(1_000)), idempotent: true },
      pipeline(retry(), perKey),
    ];
    for (const entry of entries) {
      let thrown: unknown;
      try {
        grpcInterceptor({ methods: { [PATH.SayHello]: entry } } as GrpcInterceptorOptions);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expect((thrown as Error).message).toMatch(REFUSAL);
      expect((thrown as InvalidOptionsError).problems.map((p) => p.option)).toEqual([`methods['${PATH.SayHello}']`]);
    }
    expect(() =>
      grpcInterceptor({
        methods: { [PATH.SayHello]: pipeline(hedge({ delayMs: 20, name: 'reads' }), timeout(1_000)) },
      }),
    ).toThrow(/expected a policy without hedge\(\): .*, got a policy containing hedge "reads"/);
  });

  it('per method function: the call ends with UNKNOWN saying why, nothing is sent; other methods go on', async () => {
    const server = await startGreeter({ SayHello: hello, CreateOrder: hello });
    let asked = 0;
    const client = greeterClient(server, [
      grpcInterceptor({
        methods: (path): Policy | undefined => {
          asked++;
          return path === PATH.SayHello ? pipeline(hedge({ delayMs: 20 }), timeout(1_000)) : timeout(1_000);
        },
      }),
    ]);
    for (let i = 1; i <= 2; i++) {
      const { error, value } = await unary(client, 'SayHello', { name: 'ada' }).result;
      expect(value).toBeUndefined();
      expect(error?.code).toBe(status.UNKNOWN);
      expect(error?.details).toMatch(REFUSAL);
      expect(error?.details).toContain(`methods('${PATH.SayHello}')`);
    }
    expect(asked).toBe(2);
    expect(server.hits).toHaveLength(0);

    const { error, value } = await unary(client, 'CreateOrder', { name: 'ada' }).result;
    expect(error).toBeNull();
    expect(value?.message).toBe('hello #1');
    expect(openCalls(client)).toBe(0);
  });

  it('per method function returning { policy, idempotent } with a hedge: refused the same way', async () => {
    const server = await startGreeter({ SayHello: hello });
    const client = greeterClient(server, [
      grpcInterceptor({
        methods: () => ({ policy: pipeline(retry(), hedge({ delayMs: 20 })), idempotent: true }),
      }),
    ]);
    const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(error?.code).toBe(status.UNKNOWN);
    expect(error?.details).toMatch(REFUSAL);
    expect(server.hits).toHaveLength(0);
  });
});
