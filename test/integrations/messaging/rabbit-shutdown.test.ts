import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  consumeRabbit,
  DELIVERIES_HEADER,
  type MessageHandler,
  type WrapHandlerOptions,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { deferred } from '../../helpers/deferred.js';
import { RabbitScene, sleep, until } from './rabbit-harness.js';

/**
 * Graceful shutdown against the real broker: the documented sequence (cancel, `handle.shutdown(grace)`,
 * `connection.close()`) must lose no settlement. Before the fix, the close overtook acks still queued on the
 * channel and 4-5 of 10 messages finishing during shutdown came back and were processed twice.
 */
let scene: RabbitScene;

beforeEach(async () => {
  scene = await new RabbitScene().setUp();
});

afterEach(async () => {
  await scene.tearDown();
});

/** Ten handlers held open until the test lets them finish, all inside the shutdown grace period. */
async function tenInFlight(handler: MessageHandler<Buffer>, options: WrapHandlerOptions = {}) {
  const gate = deferred();
  let started = 0;
  const connection = await scene.open();
  const channel = await scene.channelOn(connection);
  const handle = wrapHandler<Buffer>(async (body, ctx) => {
    started++;
    await gate.promise;
    await handler(body, ctx);
  }, options);
  const consumer = await consumeRabbit(channel, {
    queue: scene.queue,
    handler: handle,
    prefetch: 10,
    onError: (e) => scene.errors.push(e),
  });
  const bodies = Array.from({ length: 10 }, (_, i) => `m-${i}`);
  await scene.publish(bodies);
  await until(() => started === 10, 'ten handlers to start');
  return { gate, connection, channel, handle, consumer, started: () => started };
}

/** The work queue as seen from outside: messages the broker would deliver again. */
async function redeliveries(): Promise<number> {
  // The broker requeues a closed connection's unacked messages asynchronously: look twice, apart.
  await sleep(100);
  const first = await scene.count(scene.queue);
  await sleep(100);
  return Math.max(first, await scene.count(scene.queue));
}

describe('RabbitMQ graceful shutdown (real broker)', () => {
  it('cancel, shutdown(grace), connection.close(): ten acks finishing during shutdown all reach the broker', async () => {
    const { gate, connection, handle, consumer } = await tenInFlight(async () => undefined);
    await consumer.cancel();
    const stopping = handle.shutdown(5_000);
    gate.resolve(); // all ten finish inside the grace period
    await stopping;
    await connection.close();
    expect(await redeliveries()).toBe(0);
    expect(await scene.count(`${scene.queue}.retry`)).toBe(0);
    expect(await scene.count(`${scene.queue}.dlq`)).toBe(0);
    expect(scene.errors).toEqual([]);
  });

  it('retries finishing during shutdown: each copy confirmed and each original acked before shutdown resolves', async () => {
    const { gate, connection, handle, consumer } = await tenInFlight(
      async () => {
        throw new Error('transient');
      },
      { redeliveryDelay: () => 60_000, maxDeliveries: 5 },
    );
    await consumer.cancel();
    const stopping = handle.shutdown(5_000);
    gate.resolve();
    await stopping;
    await connection.close();
    expect(await redeliveries()).toBe(0); // no original left behind: no second copy would circulate
    expect(await scene.count(`${scene.queue}.retry`)).toBe(10);
    const copy = await scene.admin.get(`${scene.queue}.retry`, { noAck: true });
    expect(copy === false ? undefined : copy.properties.headers?.[DELIVERIES_HEADER]).toBe(1);
    expect(scene.errors).toEqual([]);
  });

  it('shutdown does not abort the signal of a handler that already completed and was acked', async () => {
    const signals: AbortSignal[] = [];
    const hold = deferred();
    let n = 0;
    const connection = await scene.open();
    const channel = await scene.channelOn(connection);
    const handle = wrapHandler<Buffer>(async (_body, { signal }) => {
      signals.push(signal);
      if (n++ === 1) {
        await new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      }
      await hold.promise;
    });
    const consumer = await consumeRabbit(channel, { queue: scene.queue, handler: handle, prefetch: 10 });
    await scene.publish(['done', 'stuck']);
    await until(() => signals.length === 2, 'both handlers to start');
    await consumer.cancel();
    const stopping = handle.shutdown(50);
    hold.resolve(); // 'done' completes and is acked; 'stuck' waits for its signal
    await stopping;
    expect(signals[0]?.aborted).toBe(false);
    expect(signals[1]?.aborted).toBe(true);
    await connection.close();
    expect(await redeliveries()).toBe(1); // only the released one
  });

  it('a handler finishing while the connection is closing: its settlement is skipped quietly, nothing is lost', async () => {
    const reported: unknown[] = [];
    const gate = deferred();
    let started = 0;
    const connection = await scene.open();
    const channel = await scene.channelOn(connection);
    const handle = wrapHandler<Buffer>(
      async () => {
        started++;
        await gate.promise;
        throw new Error('fails late'); // its retry copy and ack would go to a closing channel
      },
      { redeliveryDelay: () => 60_000 },
    );
    await consumeRabbit(channel, {
      queue: scene.queue,
      handler: handle,
      requeueDelayMs: 60_000, // a hold here would time the test out
      onError: (e) => reported.push(e),
    });
    await scene.publish(['a', 'b']);
    await until(() => started === 2, 'both handlers to start');
    const closing = connection.close(); // the application closes without shutting the handler down first
    gate.resolve();
    await closing;
    await until(() => handle.inFlight === 0, 'both deliveries to settle');
    expect(reported).toEqual([]);
    expect(await redeliveries()).toBe(2);
    expect(await scene.count(`${scene.queue}.retry`)).toBe(0);
  });

  it('shutdown() without cancel() first: the consumer unsubscribes itself instead of releasing in a hot loop', async () => {
    let deliveries = 0;
    const connection = await scene.open();
    const channel = await scene.channelOn(connection);
    const handle = wrapHandler<Buffer>(async () => undefined);
    const counting = Object.defineProperties(
      (delivery: Parameters<typeof handle>[0]) => {
        deliveries++;
        return handle(delivery);
      },
      {
        inFlight: { get: () => handle.inFlight },
        paused: { get: () => handle.paused },
        stopping: { get: () => handle.stopping },
        shutdown: { value: (graceMs?: number) => handle.shutdown(graceMs) },
      },
    ) as typeof handle;
    const consumer = await consumeRabbit(channel, { queue: scene.queue, handler: counting, prefetch: 5 });
    await handle.shutdown(1_000); // the application forgot consumer.cancel()
    await scene.publish(['a', 'b', 'c']);
    // Before: 668 deliveries in 300 ms. Now the first release cancels the subscription: each message is released
    // at most once, plus at most a prefetch's worth already on its way before the broker took the cancel. How
    // many arrive before the cancel depends on the machine's load, so wait for the end, not for a time.
    await expect(consumer.closed).resolves.toEqual({ reason: 'cancelled', error: undefined });
    await sleep(300); // a hot loop would show here: nothing may arrive after the cancel
    expect(deliveries).toBeGreaterThanOrEqual(1);
    expect(deliveries).toBeLessThanOrEqual(3 + 5);
    expect(consumer.consumerTag).toBeUndefined();
    expect(await redeliveries()).toBe(3);
  });
});
