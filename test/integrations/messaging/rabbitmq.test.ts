import { randomBytes, randomUUID } from 'node:crypto';
import { type Channel, type ChannelModel, type ConfirmChannel, connect, type GetMessage } from 'amqplib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  consumeRabbit,
  DELIVERIES_HEADER,
  declareRabbitTopology,
  type MessageHandler,
  PermanentError,
  type RabbitConsumer,
  type WrapHandlerOptions,
  type WrappedHandler,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';

/**
 * Against the real broker on 127.0.0.1:5672 (CI starts it). No skipping: an unreachable broker fails every test.
 */
const URL = 'amqp://guest:guest@127.0.0.1:5672';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms until it holds, failing after `ms`. */
async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 4_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

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
