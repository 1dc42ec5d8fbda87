/**
 * The gRPC suite's in-process part: a real grpc-js client on the fake channel completes each call with the reply, through
 * an interceptor and a bulwark pipeline as through a bare client, so what the part times is whole calls.
 */
import { fileURLToPath } from 'node:url';
import { type Client, credentials, loadPackageDefinition, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { fakeChannel, inProcessContenders, inProcessRounds } from '../../bench/suites/grpc.js';
import { pipeline, retry, timeout } from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';

type Greeter = Client & {
  SayHello(req: { name: string }, cb: (e: ServiceError | null, v?: { message: string; attempt: number }) => void): void;
};
type GreeterCtor = (new (
  address: string,
  creds: unknown,
  options?: object,
) => Greeter) & {
  service: { SayHello: { responseSerialize: (reply: object) => Buffer } };
};

const proto = fileURLToPath(new URL('../fixtures/greeter.proto', import.meta.url));
const Greeter = (loadPackageDefinition(loadSync(proto)) as unknown as { bulwark: { test: { Greeter: GreeterCtor } } })
  .bulwark.test.Greeter;

const say = (client: Greeter) =>
  new Promise<{ message: string; attempt: number } | undefined>((resolve, reject) =>
    client.SayHello({ name: 'test' }, (e, v) => (e ? reject(e) : resolve(v))),
  );

describe('the gRPC suite in process', () => {
  it('a client on the fake channel gets the reply, bare and through the bulwark interceptor', async () => {
    const channel = fakeChannel(Greeter.service.SayHello.responseSerialize({ message: 'hi there', attempt: 7 }));
    const policy = pipeline(retry(), timeout(1_000));
    const outcomes: string[] = [];
    policy.on('execution.completed', (e) => outcomes.push(e.result));
    const bare = new Greeter('in-process', credentials.createInsecure(), { channelOverride: channel });
    const intercepted = new Greeter('in-process', credentials.createInsecure(), {
      channelOverride: channel,
      interceptors: [grpcInterceptor({ methods: { '/bulwark.test.Greeter/SayHello': policy } })],
    });
    expect(await say(bare)).toEqual({ message: 'hi there', attempt: 7 });
    const replies = await Promise.all(Array.from({ length: 64 }, () => say(intercepted)));
    expect(replies).toEqual(Array.from({ length: 64 }, () => ({ message: 'hi there', attempt: 7 })));
    // Each call ran through the policy, to its end, as a success.
    expect(outcomes).toEqual(Array.from({ length: 64 }, () => 'success'));
  });

  it('every contender completes its calls, and the rounds report each one against the first', async () => {
    const list = inProcessContenders({ cockatiel: [], opossum: [] });
    expect(list.map((c) => c.name)).toEqual([
      'bare grpc-js',
      'empty pass-through interceptor',
      'bulwark interceptor, pipeline(4)',
      'bulwark pipeline(4) around the call',
    ]);
    let calls = 0;
    const counted = list.map((c) => ({ ...c, run: () => c.run().then(() => void calls++) }));
    const labels: string[] = [];
    const own = await inProcessRounds(counted, 3, 100, (r, i, c) => {
      labels.push(`${r}:${i}:${c.name}`);
      return '';
    });
    // A warm-up of 400 calls and three rounds of 100 per contender, every one settled successfully.
    expect(calls).toBe(4 * (400 + 3 * 100));
    // Rounds alternate their order, so no contender always runs first.
    expect(labels.slice(0, 4).map((l) => l.split(':')[2])).toEqual(list.map((c) => c.name));
    expect(labels.slice(4, 8).map((l) => l.split(':')[2])).toEqual(list.map((c) => c.name).reverse());
    expect([...own.keys()]).toEqual(list.map((c) => c.name));
    expect(own.get('bare grpc-js')?.ownUsOverBare).toBe(0);
    for (const { ownUsPerCall, ownUsOverBare } of own.values()) {
      expect(ownUsPerCall).toBeGreaterThan(0);
      expect(Number.isFinite(ownUsOverBare)).toBe(true);
    }
    for (const c of list) c.dispose?.();
  });
});
