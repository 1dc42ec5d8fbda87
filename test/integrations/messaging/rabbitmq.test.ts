import { randomBytes, randomUUID } from 'node:crypto';
import { type Channel, type ChannelModel, type ConfirmChannel, connect, type GetMessage } from 'amqplib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  consumeRabbit,
  DELIVERIES_HEADER,
  type Delivery,
  declareRabbitTopology,
  type MessageHandler,
  PermanentError,
  type RabbitConsumer,
  type Settlement,
  type WrapHandlerOptions,
  type WrappedHandler,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { circuitBreaker } from '../../../src/policies/circuit-breaker/index.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * Against the real broker on 127.0.0.1:5672 (CI starts it). No skipping: an unreachable broker fails every test.
 */
const URL = 'amqp://guest:guest@127.0.0.1:5672';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms until it holds, failing after `ms`. */
const until = (condition: () => boolean | Promise<boolean>, what: string, ms = 4_000) =>
  waitFor(condition, what, { timeoutMs: ms, intervalMs: 10 });

let connections: ChannelModel[];
let admin: ConfirmChannel;
let queue: string;
/** Errors any channel or connection of the test reported (a 406 on a double ack would show up here). */
let errors: Error[];

async function open(): Promise<ChannelModel> {
  let connection: ChannelModel;
  try {
    connection = await connect(URL);
  } catch (error) {
    throw new Error(`RabbitMQ is not reachable at ${URL}: these tests need the real broker`, { cause: error });
  }
  connection.on('error', (e: Error) => errors.push(e));
  connections.push(connection);
  return connection;
}

async function channelOn(connection: ChannelModel): Promise<ConfirmChannel> {
  const channel = await connection.createConfirmChannel();
  channel.on('error', (e: Error) => errors.push(e));
  return channel;
}

async function publish(body: Buffer | string, headers?: Record<string, unknown>): Promise<void> {
  admin.sendToQueue(queue, Buffer.isBuffer(body) ? body : Buffer.from(body), {
    persistent: true,
    ...(headers ? { headers } : {}),
  });
  await admin.waitForConfirms();
}

async function count(name: string): Promise<number> {
  return (await admin.checkQueue(name)).messageCount;
}

/** A consumer on its own connection, with the handler wrapped; returns what the test needs to drive it. */
async function consumer(
  handler: MessageHandler<Buffer>,
  options: WrapHandlerOptions = {},
): Promise<{ handle: WrappedHandler<Buffer>; consumer: RabbitConsumer; channel: Channel }> {
  const ch = await channelOn(await open());
  const handle = wrapHandler(handler, options);
  const c = await consumeRabbit(ch, { queue, handler: handle, prefetch: 5, onError: (e) => errors.push(e as Error) });
  return { handle, consumer: c, channel: ch };
}

beforeEach(async () => {
  connections = [];
  errors = [];
  queue = `bulwark-test-${randomUUID()}`;
  admin = await channelOn(await open());
  const names = await declareRabbitTopology(admin, { queue });
  expect(names).toEqual({ queue, retryQueue: `${queue}.retry`, deadLetterQueue: `${queue}.dlq` });
});

afterEach(async () => {
  try {
    const cleanup = await channelOn(await open());
    for (const name of [queue, `${queue}.retry`, `${queue}.dlq`]) await cleanup.deleteQueue(name);
  } finally {
    for (const c of connections) await c.close().catch(() => undefined);
  }
});

describe('RabbitMQ adapter (real broker)', () => {
  it('acks after success only: nothing is left in the queue, even once the channel is gone', async () => {
    const seen: string[] = [];
    const { handle, channel } = await consumer(async (body) => {
      seen.push(body.toString());
    });
    await publish('hello');
    await until(() => seen.length === 1 && handle.inFlight === 0, 'the message to be handled');
    // Closing the channel would put an unacked message back in the queue.
    await channel.close();
    expect(await count(queue)).toBe(0);
    expect(await count(`${queue}.retry`)).toBe(0);
    expect(await count(`${queue}.dlq`)).toBe(0);
    expect(seen).toEqual(['hello']);
    expect(errors).toEqual([]);
  });

  it('retries a transient failure through the retry queue after the delay, not in a hot loop, then succeeds', async () => {
    const deliveries: { at: number; attempt: number; lastError: string | undefined }[] = [];
    const { handle } = await consumer(
      async (_body, { delivery }) => {
        deliveries.push({
          at: Date.now(),
          attempt: delivery.attempt,
          lastError: delivery.headers['x-bulwark-last-error'],
        });
        if (delivery.attempt === 1) throw new Error('db down');
      },
      { redeliveryDelay: () => 300, maxDeliveries: 5 },
    );
    await publish('work', { 'x-custom': 'kept' });
    await until(() => deliveries.length === 1, 'the first delivery');
    // Within the delay window the message is not delivered again: it waits in the retry queue.
    await sleep(150);
    expect(deliveries).toHaveLength(1);
    expect(await count(`${queue}.retry`)).toBe(1);
    await until(() => deliveries.length === 2 && handle.inFlight === 0, 'the delayed redelivery');
    const [first, second] = deliveries as [(typeof deliveries)[0], (typeof deliveries)[0]];
    expect(second.at - first.at).toBeGreaterThanOrEqual(280);
    expect(second.attempt).toBe(2);
    expect(second.lastError).toBe('Error: db down');
    await sleep(200);
    expect(deliveries).toHaveLength(2);
    expect(await count(queue)).toBe(0);
    expect(await count(`${queue}.retry`)).toBe(0);
    expect(await count(`${queue}.dlq`)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('dead-letters once when the deliveries are used up, with the byte-identical body and attempt headers', async () => {
    const body = randomBytes(256); // not valid UTF-8: any re-encoding would show
    const attempts: number[] = [];
    const { handle } = await consumer(
      async (_body, { delivery }) => {
        attempts.push(delivery.attempt);
        throw new Error('still down');
      },
      { redeliveryDelay: () => 20, maxDeliveries: 3 },
    );
    await publish(body, { 'x-custom': 'kept' });
    await until(async () => (await count(`${queue}.dlq`)) === 1 && handle.inFlight === 0, 'the dead letter');
    await sleep(150);
    expect(attempts).toEqual([1, 2, 3]);
    expect(await count(`${queue}.dlq`)).toBe(1);
    expect(await count(queue)).toBe(0);
    expect(await count(`${queue}.retry`)).toBe(0);
    const dead = (await admin.get(`${queue}.dlq`, { noAck: true })) as GetMessage;
    expect(Buffer.compare(dead.content, body)).toBe(0);
    const headers = dead.properties.headers ?? {};
    expect(headers['x-bulwark-attempts']).toBe(3);
    expect(headers['x-bulwark-reason']).toBe('exhausted');
    expect(headers['x-bulwark-error']).toBe('Error: still down');
    expect(headers['x-custom']).toBe('kept');
    expect(errors).toEqual([]);
  });

  it('dead-letters a permanent failure at once', async () => {
    const attempts: number[] = [];
    const { handle } = await consumer(
      async (_body, { delivery }) => {
        attempts.push(delivery.attempt);
        throw new PermanentError('no order id');
      },
      { redeliveryDelay: () => 20, maxDeliveries: 5 },
    );
    await publish('{"bad":true}');
    await until(async () => (await count(`${queue}.dlq`)) === 1 && handle.inFlight === 0, 'the dead letter');
    await sleep(100);
    expect(attempts).toEqual([1]);
    const dead = (await admin.get(`${queue}.dlq`, { noAck: true })) as GetMessage;
    expect(dead.content.toString()).toBe('{"bad":true}');
    expect(dead.properties.headers?.['x-bulwark-reason']).toBe('permanent');
    expect(dead.properties.headers?.['x-bulwark-attempts']).toBe(1);
    expect(dead.properties.headers?.['x-bulwark-error']).toBe('PermanentError: no order id');
    expect(await count(queue)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('settles a timed-out handler once: its late success does not ack again (no 406)', async () => {
    const attempts: number[] = [];
    let lateDone = false;
    const { handle, channel } = await consumer(
      async (_body, { delivery }) => {
        attempts.push(delivery.attempt);
        if (delivery.attempt === 1) {
          await sleep(200); // ignores its signal and finishes after the timeout
          lateDone = true;
        }
      },
      { handlerTimeoutMs: 50, redeliveryDelay: () => 20, maxDeliveries: 3 },
    );
    let channelClosed = false;
    channel.on('close', () => {
      channelClosed = true;
    });
    await publish('slow');
    await until(() => lateDone && attempts.length === 2 && handle.inFlight === 0, 'the timeout and the redelivery');
    // Give a wrong second ack the time to reach the broker and come back as a channel error.
    await sleep(150);
    expect(attempts).toEqual([1, 2]);
    expect(errors).toEqual([]);
    expect(channelClosed).toBe(false);
    await channel.close();
    expect(await count(queue)).toBe(0);
    expect(await count(`${queue}.dlq`)).toBe(0);
  });

  it('shutdown with a handler in flight loses nothing: the message goes back to the queue', async () => {
    let started = 0;
    const { handle, consumer: c } = await consumer(async (_body, { signal }) => {
      started++;
      await new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    await publish('in flight', { [DELIVERIES_HEADER]: 1 });
    await until(() => started === 1, 'the handler to start');
    await c.cancel();
    expect(c.consumerTag).toBeUndefined();
    await handle.shutdown(50);
    expect(handle.inFlight).toBe(0);
    await until(async () => (await count(queue)) === 1, 'the message back in the queue');
    const back = (await admin.get(queue, { noAck: true })) as GetMessage;
    expect(back.content.toString()).toBe('in flight');
    expect(back.fields.redelivered).toBe(true);
    expect(back.properties.headers?.[DELIVERIES_HEADER]).toBe(1); // a release is not a counted failure
    expect(started).toBe(1);
    expect(await count(`${queue}.dlq`)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a connection lost mid-handler: the message is redelivered and processed, no ack on another channel', async () => {
    const processed: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = false;
    const first = await open();
    const firstChannel = await channelOn(first);
    let firstClosed = false;
    firstChannel.on('close', () => {
      firstClosed = true;
    });
    const handle = wrapHandler<Buffer>(async () => {
      if (!started) {
        started = true;
        await gate; // the connection goes away while this runs
      }
    });
    const onError = (e: unknown) => errors.push(e as Error);
    await consumeRabbit(firstChannel, { queue, handler: handle, onError });
    await publish('survives');
    await until(() => started, 'the handler to start');
    await first.close();
    await until(() => firstClosed, 'the first channel to close');

    // The replacement consumer gets the message again.
    const secondChannel = await channelOn(await open());
    let secondClosed = false;
    secondChannel.on('close', () => {
      secondClosed = true;
    });
    const tracking = wrapHandler<Buffer>(async (_body, { delivery }) => {
      processed.push(delivery.attempt);
    });
    await consumeRabbit(secondChannel, { queue, handler: tracking, onError });
    await until(() => processed.length === 1 && tracking.inFlight === 0, 'the redelivery');
    // The first handler now finishes: its ack must be skipped, not sent on the new channel (406).
    release();
    await until(() => handle.inFlight === 0, 'the first handler to settle');
    await sleep(150);
    expect(errors).toEqual([]);
    expect(secondClosed).toBe(false);
    expect(processed).toEqual([1]); // a redelivery after a lost channel is not a counted failure
    await secondChannel.close();
    expect(await count(queue)).toBe(0);
  });

  it('pause and resume stop and restart the subscription', async () => {
    const seen: string[] = [];
    const { consumer: c } = await consumer(async (body) => {
      seen.push(body.toString());
    });
    const firstTag = c.consumerTag;
    expect(firstTag).toEqual(expect.any(String));
    await c.pause();
    expect(c.consumerTag).toBeUndefined();
    await publish('while paused');
    await sleep(100);
    expect(seen).toEqual([]);
    expect(await count(queue)).toBe(1);
    await c.resume();
    expect(c.consumerTag).not.toBe(firstTag);
    await until(() => seen.length === 1, 'the message after resume');
    expect(errors).toEqual([]);
  });
});

/** Publishes `bodies` to the work queue on the confirm channel, `batch` at a time, each batch confirmed. */
async function publishAll(bodies: readonly string[], batch = 1_000): Promise<void> {
  for (let i = 0; i < bodies.length; i += batch) {
    for (const body of bodies.slice(i, i + batch)) admin.sendToQueue(queue, Buffer.from(body), { persistent: true });
    await admin.waitForConfirms();
  }
}

/**
 * `handle` as `consumeRabbit` sees it, reporting each delivery it receives (whether or not the policy lets it reach
 * the handler) and how each one was settled.
 */
function tracked(
  handle: WrappedHandler<Buffer>,
  onDelivery: (delivery: Delivery<Buffer>) => void,
  onSettled: (body: string, settlement: Settlement) => void,
): WrappedHandler<Buffer> {
  const fn = (delivery: Delivery<Buffer>): Promise<Settlement> => {
    onDelivery(delivery);
    return handle(delivery).then((settlement) => {
      onSettled(delivery.body.toString(), settlement);
      return settlement;
    });
  };
  return Object.defineProperties(fn, {
    inFlight: { get: () => handle.inFlight },
    paused: { get: () => handle.paused },
    stopping: { get: () => handle.stopping },
    shutdown: { value: (graceMs?: number) => handle.shutdown(graceMs) },
  }) as WrappedHandler<Buffer>;
}

/** FNV-1a of a string: a deterministic choice of which messages fail. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The bodies in queue `name`, taken off it. */
async function drain(name: string): Promise<string[]> {
  const bodies: string[] = [];
  for (;;) {
    const msg = await admin.get(name, { noAck: true });
    if (msg === false) return bodies;
    bodies.push(msg.content.toString());
  }
}

describe('RabbitMQ adapter under load and backpressure (real broker)', () => {
  it('an open breaker pauses consumption and resumes after the break; nothing is dead-lettered meanwhile', async () => {
    let down = true;
    let handlerCalls = 0;
    let deliveries = 0;
    let pauses = 0;
    let resumes = 0;
    const acked: string[] = [];
    const settlements: Settlement[] = [];
    const onError = (e: unknown) => errors.push(e as Error);
    // The handler exists before the consumer it pauses: the hooks go through a mutable reference.
    let c: RabbitConsumer | undefined;
    const handle = wrapHandler<Buffer>(
      async () => {
        handlerCalls++;
        if (down) throw new Error('dependency down');
      },
      {
        policy: circuitBreaker({ window: { kind: 'consecutive', threshold: 3 }, halfOpenAfterMs: 2_000 }),
        maxDeliveries: 50,
        redeliveryDelay: () => 20,
        onPause: () => {
          pauses++;
          c?.pause().catch(onError);
        },
        onResume: () => {
          resumes++;
          c?.resume().catch(onError);
        },
      },
    );
    const ch = await channelOn(await open());
    c = await consumeRabbit(ch, {
      queue,
      prefetch: 5,
      onError,
      handler: tracked(
        handle,
        () => {
          deliveries++;
        },
        (body, settlement) => {
          settlements.push(settlement);
          if (settlement === 'acked') acked.push(body);
        },
      ),
    });
    const bodies = Array.from({ length: 20 }, (_, i) => `order-${i}`);
    await publishAll(bodies);

    await until(() => handle.paused && c?.consumerTag === undefined, 'the breaker to pause the consumer', 3_000);
    expect(pauses).toBe(1);
    // Let the cancel and the deliveries already on their way settle, then watch a quiet window.
    await sleep(50);
    const before = deliveries;
    const callsBefore = handlerCalls;
    await sleep(300);
    expect(handle.paused).toBe(true); // still inside the break: the window really was a paused one
    expect(deliveries).toBe(before);
    expect(handlerCalls).toBe(callsBefore);
    expect(await count(queue)).toBeGreaterThan(0); // the work waits in the queue rather than being consumed
    expect(await count(`${queue}.dlq`)).toBe(0);

    down = false; // the dependency recovers during the break
    await until(() => acked.length >= bodies.length && handle.inFlight === 0, 'every message to be acked', 8_000);
    expect(resumes).toBeGreaterThanOrEqual(1);
    expect(c.consumerTag).toEqual(expect.any(String));
    expect(deliveries).toBeGreaterThan(before);
    await sleep(100);
    expect([...acked].sort()).toEqual([...bodies].sort()); // each exactly once
    expect(settlements).not.toContain('dead_lettered');
    expect(await count(queue)).toBe(0);
    expect(await count(`${queue}.retry`)).toBe(0);
    expect(await count(`${queue}.dlq`)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('10,000 messages, 10% failing transiently once: each acked exactly once or dead-lettered, as the broker counts', async () => {
    const N = 10_000;
    const started = Date.now();
    const bodies = Array.from({ length: N }, (_, i) => `msg-${i}`);
    // Deterministic: about 10% fail on their first delivery only; a few (about 0.4%) fail permanently.
    const transient = (body: string) => fnv1a(body) % 10 === 0;
    const poison = (body: string) => fnv1a(body) % 250 === 7;
    const expectedDead = bodies.filter(poison);
    const expectedRetries = bodies.filter((b) => transient(b) && !poison(b)).length;
    expect(expectedRetries).toBeGreaterThan(N * 0.08);
    expect(expectedDead.length).toBeGreaterThan(0);

    const ackCount = new Map<string, number>();
    let acks = 0;
    let retried = 0;
    let deadLettered = 0;
    const attemptsSeen = new Map<string, number[]>();
    const handle = wrapHandler<Buffer>(
      async (body, { delivery }) => {
        const text = body.toString();
        if (poison(text)) throw new PermanentError(`poison ${text}`);
        if (transient(text) && delivery.attempt === 1) throw new Error(`transient ${text}`);
      },
      { redeliveryDelay: () => 10, maxDeliveries: 3 },
    );
    const ch = await channelOn(await open());
    const consumerHandle = tracked(
      handle,
      (delivery) => {
        const text = delivery.body.toString();
        attemptsSeen.set(text, [...(attemptsSeen.get(text) ?? []), delivery.attempt]);
      },
      (body, settlement) => {
        if (settlement === 'acked') {
          acks++;
          ackCount.set(body, (ackCount.get(body) ?? 0) + 1);
        } else if (settlement === 'retried') retried++;
        else if (settlement === 'dead_lettered') deadLettered++;
      },
    );
    const c = await consumeRabbit(ch, {
      queue,
      handler: consumerHandle,
      prefetch: 100,
      onError: (e) => errors.push(e as Error),
    });

    await publishAll(bodies);
    const published = Date.now();
    await until(
      () => acks + deadLettered >= N && handle.inFlight === 0,
      `${N} messages to be settled (acked ${acks}, dead-lettered ${deadLettered})`,
      25_000,
    );
    const settled = Date.now();
    await sleep(200); // a duplicate delivery would show up now
    await c.cancel();
    await handle.shutdown(1_000);

    // Against the broker: nothing left to work on or waiting for a retry; the dead letters are exactly the poison.
    expect(await count(queue)).toBe(0);
    expect(await count(`${queue}.retry`)).toBe(0);
    expect(await count(`${queue}.dlq`)).toBe(expectedDead.length);
    const dead = await drain(`${queue}.dlq`);
    expect(dead.sort()).toEqual([...expectedDead].sort());

    // Acked exactly once each, and acked plus dead-lettered is exactly the published set.
    expect([...ackCount.values()].every((n) => n === 1)).toBe(true);
    expect(acks).toBe(N - expectedDead.length);
    expect(deadLettered).toBe(expectedDead.length);
    expect(retried).toBe(expectedRetries);
    const deadSet = new Set(dead);
    expect([...ackCount.keys()].some((b) => deadSet.has(b))).toBe(false);
    expect(new Set([...ackCount.keys(), ...dead])).toEqual(new Set(bodies));
    // Transient failures came back once, as attempt 2; the rest were delivered once.
    for (const body of bodies) {
      const expected = poison(body) ? [1] : transient(body) ? [1, 2] : [1];
      expect(attemptsSeen.get(body), body).toEqual(expected);
    }
    expect(errors).toEqual([]);
    console.info(
      `rabbitmq soak: published ${N} in ${published - started} ms, settled in ${settled - published} ms ` +
        `(${acks} acked, ${retried} retried, ${deadLettered} dead-lettered)`,
    );
  }, 30_000);
});
