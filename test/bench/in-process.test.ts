/**
 * The in-process parts of the HTTP and gRPC suites: real clients (undici's `request()`, a grpc-js client) on the fake
 * transport complete each call with the reply, through an interceptor and a bulwark pipeline as without, so what
 * the parts time is whole calls.
 */
import { credentials } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { inProcessRounds } from '../../bench/harness.js';
import { fakeChannel, greeter, grpcInProcessContenders } from '../../bench/suites/grpc.js';
import { FakeDispatcher, httpInProcessContenders } from '../../bench/suites/http.js';
import { pipeline, retry, timeout } from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { interceptor } from '../../src/integrations/undici/index.js';

// The bench's own client constructor for the fixture's greeter: the one the suite's contenders use.
const Greeter = greeter();

const say = (client: InstanceType<typeof Greeter>) =>
  new Promise<unknown>((resolve, reject) => client.SayHello({ name: 'test' }, (e, v) => (e ? reject(e) : resolve(v))));

describe('the end-to-end suites in process', () => {
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

  it('undici on the fake dispatcher gets the response, bare and through the bulwark interceptor', async () => {
    const fake = new FakeDispatcher();
    const policy = pipeline(retry(), timeout(1_000));
    const outcomes: string[] = [];
    policy.on('execution.completed', (e) => outcomes.push(e.result));
    const composed = fake.compose(interceptor({ policy }));
    const get = async (via: typeof fake | typeof composed) => {
      const res = await via.request({ origin: 'http://127.0.0.1:8', path: '/', method: 'GET' });
      return [res.statusCode, res.headers['content-type'], await res.body.text()];
    };
    expect(await get(fake)).toEqual([200, 'text/plain', 'ok']);
    const replies = await Promise.all(Array.from({ length: 64 }, () => get(composed)));
    expect(replies).toEqual(Array.from({ length: 64 }, () => [200, 'text/plain', 'ok']));
    expect(outcomes).toEqual(Array.from({ length: 64 }, () => 'success'));
  });

  it.each([
    [
      'gRPC',
      grpcInProcessContenders,
      [
        'bare grpc-js',
        'empty pass-through interceptor',
        'bulwark interceptor, pipeline(4)',
        'bulwark pipeline(4) around the call',
      ],
    ],
    [
      'HTTP',
      httpInProcessContenders,
      [
        'bare undici',
        'empty pass-through interceptor',
        'bulwark interceptor, pipeline(4)',
        'bulwark pipeline(4) around request()',
      ],
    ],
  ])(
    '%s: every contender completes its calls, and the rounds report each one against the first',
    async (_, make, names) => {
      const list = make({ cockatiel: [], opossum: [] });
      expect(list.map((c) => c.name)).toEqual(names);
      let calls = 0;
      const counted = list.map((c) => ({ ...c, run: () => c.run().then(() => void calls++) }));
      const labels: string[] = [];
      const own = await inProcessRounds(counted, 3, 100, 64, (r, i, c) => {
        labels.push(`${r}:${i}:${c.name}`);
        return '';
      });
      // A warm-up of 400 calls and three rounds of 100 per contender, every one settled successfully.
      expect(calls).toBe(4 * (400 + 3 * 100));
      // Rounds alternate their order, so no contender always runs first.
      expect(labels.slice(0, 4).map((l) => l.split(':')[2])).toEqual(names);
      expect(labels.slice(4, 8).map((l) => l.split(':')[2])).toEqual([...names].reverse());
      expect([...own.keys()]).toEqual(names);
      expect(own.get(names[0] as string)?.ownUsOverBare).toBe(0);
      for (const { ownUsPerCall, ownUsOverBare } of own.values()) {
        expect(ownUsPerCall).toBeGreaterThan(0);
        expect(Number.isFinite(ownUsOverBare)).toBe(true);
      }
      for (const c of list) c.dispose?.();
    },
  );
});
