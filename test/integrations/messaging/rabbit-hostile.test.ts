import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  consumeRabbit,
  DELIVERIES_HEADER,
  declareRabbitTopology,
  type MessageHandler,
  PermanentError,
  type WrapHandlerOptions,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { deliveriesOf } from '../../../src/integrations/messaging/rabbitmq.js';
import { RabbitScene, sleep, until } from './rabbit-harness.js';

/**
 * Poison messages against the real broker: whatever the handler throws and whatever a producer put in the headers,
 * a failing message goes through the retry queue with its attempt count rising and reaches the dead-letter queue
 * after `maxDeliveries`. Before the fix, a throw `String()` could not convert was requeued in a hot loop (13,651
 * handler calls in 2 s), never dead-lettered.
 */
let scene: RabbitScene;

beforeEach(async () => {
  scene = await new RabbitScene().setUp();
});

afterEach(async () => {
  await scene.tearDown();
});

async function consume(handler: MessageHandler<Buffer>, options: WrapHandlerOptions) {
  const channel = await scene.channelOn(await scene.open());
  const handle = wrapHandler(handler, options);
  await consumeRabbit(channel, {
    queue: scene.queue,
    handler: handle,
    prefetch: 20,
    requeueDelayMs: 50,
    onError: (e) => scene.errors.push(e),
  });
  return handle;
}

async function deadLetters(): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  for (;;) {
    const msg = await scene.admin.get(`${scene.queue}.dlq`, { noAck: true });
    if (msg === false) return out;
    out.set(msg.content.toString(), msg.properties.headers ?? {});
  }
}

function hostile(): Record<string, () => unknown> {
  const trap = () => {
    throw new Error('trap');
  };
  return {
    'null-prototype': () => Object.create(null),
    'toString-throws': () => ({ toString: trap }),
    'message-getter-throws': () => Object.defineProperty(new Error('x'), 'message', { get: trap }),
    'name-getter-throws': () => Object.defineProperty(new Error('readable'), 'name', { get: trap }),
    symbol: () => Symbol('poison'),
    'proxy-every-trap': () =>
      new Proxy({}, { get: trap, has: trap, getPrototypeOf: trap, ownKeys: trap, getOwnPropertyDescriptor: trap }),
    'revoked-proxy': () => {
      const r = Proxy.revocable({}, {});
      r.revoke();
      return r.proxy;
    },
    bigint: () => 2n ** 70n,
    'huge-string': () => new Error('y'.repeat(2_000_000)),
  };
}

describe('RabbitMQ poison messages (real broker)', () => {
  it('every hostile throw: retried with the attempt rising, then dead-lettered after maxDeliveries, no hot loop', async () => {
    const throws = hostile();
    const attempts = new Map<string, number[]>();
    const handle = await consume(
      async (body, { delivery }) => {
        const kind = body.toString();
        attempts.set(kind, [...(attempts.get(kind) ?? []), delivery.attempt]);
        throw (throws[kind] as () => unknown)();
      },
      { maxDeliveries: 3, redeliveryDelay: () => 20 },
    );
    const kinds = Object.keys(throws);
    await scene.publish(kinds);
    await until(
      async () => (await scene.count(`${scene.queue}.dlq`)) === kinds.length && handle.inFlight === 0,
      'every poison message in the dead-letter queue',
      8_000,
    );
    await sleep(150); // a hot loop or a stray copy would show now
    for (const kind of kinds) expect(attempts.get(kind), kind).toEqual([1, 2, 3]);
    const dead = await deadLetters();
    expect([...dead.keys()].sort()).toEqual([...kinds].sort());
    for (const [kind, headers] of dead) {
      expect(headers['x-bulwark-attempts'], kind).toBe(3);
      expect(headers['x-bulwark-reason'], kind).toBe('exhausted');
      const error = headers['x-bulwark-error'];
      expect(typeof error, kind).toBe('string');
      expect((error as string).length, kind).toBeLessThanOrEqual(512);
    }
    expect(dead.get('null-prototype')?.['x-bulwark-error']).toBe('{}');
    expect(dead.get('symbol')?.['x-bulwark-error']).toBe('Symbol(poison)');
    expect(dead.get('bigint')?.['x-bulwark-error']).toBe(`${2n ** 70n}n`);
    expect(dead.get('huge-string')?.['x-bulwark-error']).toBe(`Error: ${'y'.repeat(504)}…`);
    expect(await scene.count(scene.queue)).toBe(0);
    expect(await scene.count(`${scene.queue}.retry`)).toBe(0);
    expect(scene.errors).toEqual([]);
  });

  it('reads the attempt count strictly from hostile x-bulwark-deliveries values', async () => {
    const cases: [string, unknown, number][] = [
      ['number', 2, 3],
      ['digits', '2', 3],
      ['negative', -5, 1],
      ['fraction', 2.5, 1],
      ['huge', 1e300, 1],
      ['beyond-safe', 2 ** 60, 1],
      ['array', [3], 1],
      ['table', { n: 3 }, 1],
      ['hex', '0x10', 1],
      ['spaced', ' 3 ', 1],
      ['text', 'three', 1],
      ['negative-double', { '!': 'double', value: -1e300 }, 1],
    ];
    const seen = new Map<string, number>();
    const handle = await consume(
      async (body, { delivery }) => {
        seen.set(body.toString(), delivery.attempt);
      },
      { maxDeliveries: 5 },
    );
    for (const [name, value] of cases) await scene.publish([name], { [DELIVERIES_HEADER]: value });
    await until(() => seen.size === cases.length && handle.inFlight === 0, 'every message to be handled');
    for (const [name, , attempt] of cases) expect(seen.get(name), name).toBe(attempt);
    expect(scene.errors).toEqual([]);
  });

  it("headers too large to encode again with bulwark's added: the copy goes with bulwark's headers only", async () => {
    const attempts: number[] = [];
    const channel = await scene.channelOn(await scene.open());
    const handle = wrapHandler<Buffer>(
      async (_body, { delivery }) => {
        attempts.push(delivery.attempt);
        throw new Error('x'.repeat(600));
      },
      { maxDeliveries: 2, redeliveryDelay: () => 20 },
    );
    await consumeRabbit(channel, { queue: scene.queue, handler: handle, onError: (e) => scene.errors.push(e) });
    // Fits amqplib's 64 KiB encoding buffer on its own, not with the 512-character error header added.
    await scene.publish(['big headers'], { 'x-big': 'b'.repeat(65_200) });
    await until(
      async () => (await scene.count(`${scene.queue}.dlq`)) === 1 && handle.inFlight === 0,
      'the dead letter',
      6_000,
    );
    expect(attempts).toEqual([1, 2]);
    const headers = (await deadLetters()).get('big headers') ?? {};
    expect(headers['x-big']).toBeUndefined();
    expect(headers['x-bulwark-attempts']).toBe(2);
    expect(headers['x-bulwark-reason']).toBe('exhausted');
    // Each fallback is reported (it loses the message's own headers).
    expect(scene.errors.length).toBeGreaterThanOrEqual(1);
    expect(scene.errors.every((e) => e instanceof RangeError)).toBe(true);
  });

  // (A NaN or infinite double never arrives: RabbitMQ closes the publisher's connection with INTERNAL_ERROR.)
  it('a header amqplib cannot encode again (a huge negative double) is left off the copies, nothing loops', async () => {
    const attempts: number[] = [];
    const seenHeaders: Record<string, string>[] = [];
    const handle = await consume(
      async (_body, { delivery }) => {
        attempts.push(delivery.attempt);
        seenHeaders.push({ ...delivery.headers });
        throw new Error('still failing');
      },
      { maxDeliveries: 3, redeliveryDelay: () => 20 },
    );
    await scene.publish(['odd headers'], {
      'x-very-negative': { '!': 'double', value: -1e300 },
      'x-kept': 'yes',
      'x-death': 'not a list', // a producer's own x-death: never parsed, never copied
      'x-nested': { list: [1, 'two', { deep: true }] },
    });
    await until(
      async () => (await scene.count(`${scene.queue}.dlq`)) === 1 && handle.inFlight === 0,
      'the dead letter',
      6_000,
    );
    await sleep(150);
    expect(attempts).toEqual([1, 2, 3]);
    const headers = (await deadLetters()).get('odd headers') ?? {};
    expect(headers['x-kept']).toBe('yes');
    expect(headers['x-nested']).toEqual({ list: [1, 'two', { deep: true }] });
    expect('x-very-negative' in headers).toBe(false);
    expect(headers['x-death']).toBeUndefined();
    expect(seenHeaders[0]?.['x-death']).toBe('not a list');
    expect(seenHeaders[0]?.['x-kept']).toBe('yes');
    expect(headers['x-bulwark-attempts']).toBe(3);
    expect(scene.errors).toEqual([]);
  });
});

describe('RabbitMQ copies the broker refuses (real broker)', () => {
  it('a refused retry copy requeues the original after requeueDelayMs, never in a hot loop', async () => {
    // A retry queue that refuses every publish (max-length 0, reject-publish): each copy is nacked by the broker.
    await scene.admin.deleteQueue(`${scene.queue}.retry`);
    await scene.admin.assertQueue(`${scene.queue}.retry`, {
      durable: true,
      deadLetterExchange: '',
      deadLetterRoutingKey: scene.queue,
      arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' },
    });
    let calls = 0;
    const reported: unknown[] = [];
    const channel = await scene.channelOn(await scene.open());
    const handle = wrapHandler<Buffer>(
      async () => {
        calls++;
        throw new Error('transient');
      },
      { redeliveryDelay: () => 10 },
    );
    await consumeRabbit(channel, {
      queue: scene.queue,
      handler: handle,
      requeueDelayMs: 200,
      onError: (e) => reported.push(e),
    });
    await scene.publish(['refused']);
    await sleep(700);
    // 700 ms at one requeue per 200 ms: about 4 runs (a hot loop made thousands).
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(5);
    expect(reported.length).toBe(calls);
    expect(String(reported[0])).toMatch(/refused|nack/i);
  });
});

describe('RabbitMQ copies no queue takes (real broker)', () => {
  it('a deleted dead-letter queue: the copy is returned, the original requeued (not lost), dead-lettered once it is back', async () => {
    await scene.admin.deleteQueue(`${scene.queue}.dlq`);
    let calls = 0;
    const reported: unknown[] = [];
    const channel = await scene.channelOn(await scene.open());
    const handle = wrapHandler<Buffer>(async () => {
      calls++;
      throw new PermanentError('bad order');
    });
    await consumeRabbit(channel, {
      queue: scene.queue,
      handler: handle,
      requeueDelayMs: 100,
      onError: (e) => reported.push(e),
    });
    await scene.publish(['orphan']);
    await until(() => reported.length >= 1, 'the unroutable copy to be reported');
    expect(String((reported[0] as Error).message)).toMatch(/could not route the copy to queue ".*\.dlq"/);
    await declareRabbitTopology(scene.admin, { queue: scene.queue });
    await until(
      async () => (await scene.count(`${scene.queue}.dlq`)) === 1 && handle.inFlight === 0,
      'the dead letter once the queue is back',
    );
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(await scene.count(scene.queue)).toBe(0);
  });
});

describe('x-bulwark-deliveries parsing', () => {
  it('property: any header value reads as a whole number from 0 to 2^53 - 2, never a throw', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything({ withBigInt: true }), fc.double(), fc.string()), (value) => {
        const n = deliveriesOf(value);
        expect(Number.isSafeInteger(n)).toBe(true);
        expect(n).toBeGreaterThanOrEqual(0);
        expect(n + 1).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
      }),
    );
  });
});
