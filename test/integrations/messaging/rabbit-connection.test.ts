import { type EventEmitter, errorMonitor } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { type Channel, type ChannelModel, connect } from 'amqplib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../../src/index.js';
import {
  type ConsumeRabbitOptions,
  consumeRabbit,
  declareRabbitTopology,
  type RabbitConsumer,
  type RabbitConsumerClosed,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { deferred } from '../../helpers/deferred.js';
import { RabbitScene, sleep, type TcpProxy, tcpProxy, until } from './rabbit-harness.js';

/**
 * Connection loss, simulated by cutting a TCP proxy the test owns (amqplib connects to the proxy's port, never to
 * 5672 directly); the broker itself is never stopped. Before the fix a consumer whose connection went away gave no
 * signal: no callback, no promise, and `consumerTag` still set.
 */
let scene: RabbitScene;
let proxy: TcpProxy;

beforeEach(async () => {
  scene = await new RabbitScene().setUp();
  proxy = await tcpProxy();
});

afterEach(async () => {
  await proxy.close();
  await scene.tearDown();
});

describe('RabbitMQ consumer lifecycle (real broker, through a TCP proxy)', () => {
  it('a dropped connection: closed resolves with the reason, onClose is called once, consumerTag is cleared', async () => {
    const connection = await scene.open(proxy.url);
    const channel = await scene.channelOn(connection);
    const started = deferred();
    const finish = deferred();
    const handle = wrapHandler<Buffer>(async () => {
      started.resolve();
      await finish.promise;
    });
    const notified: RabbitConsumerClosed[] = [];
    const events = connection.connection as unknown as EventEmitter;
    const closeListeners = events.listenerCount('close');
    const errorMonitors = events.listenerCount(errorMonitor);
    const consumer = await consumeRabbit(channel, {
      queue: scene.queue,
      handler: handle,
      onClose: (closed) => notified.push(closed),
      onError: (e) => scene.errors.push(e),
    });
    expect(consumer.consumerTag).toEqual(expect.any(String));
    await scene.publish(['in flight']);
    await started.promise;

    proxy.drop();
    const closed = await consumer.closed;
    expect(closed.reason).toBe('channel_closed');
    expect(closed.error).toBeInstanceOf(Error); // the socket's end, as amqplib reports it
    expect(notified).toEqual([closed]);
    expect(consumer.consumerTag).toBeUndefined();
    // The connection's own listeners that consumeRabbit added are gone with the channel.
    expect(events.listenerCount('close')).toBe(closeListeners);
    expect(events.listenerCount(errorMonitor)).toBe(errorMonitors);

    // The handler finishing later settles nothing on the dead channel; the broker redelivers the message.
    finish.resolve();
    await until(() => handle.inFlight === 0, 'the orphaned handler to settle');
    await until(async () => (await scene.count(scene.queue)) === 1, 'the message back in the queue');
    await consumer.resume(); // nothing to resume on a closed channel
    expect(consumer.consumerTag).toBeUndefined();
    expect(notified).toHaveLength(1);
    // What the application saw: the connection's 'error' (its listener kept the process alive), nothing else.
    expect(scene.errors.every((e) => e instanceof Error)).toBe(true);
  });

  it('does not handle the channel\'s "error" events itself: an application without a listener still hears of them', async () => {
    const connection = await scene.open(proxy.url);
    const channel = await connection.createConfirmChannel();
    const handle = wrapHandler<Buffer>(async () => undefined);
    await consumeRabbit(channel, { queue: scene.queue, handler: handle });
    expect(channel.listenerCount('error')).toBe(0);
    channel.on('error', () => undefined);
    await channel.close();
  });

  it('cancel() resolves closed with reason cancelled; a deleted queue with reason broker_cancelled', async () => {
    const channel = await scene.channelOn(await scene.open(proxy.url));
    const first = await consumeRabbit(channel, { queue: scene.queue, handler: wrapHandler<Buffer>(async () => {}) });
    await first.cancel();
    await expect(first.closed).resolves.toEqual({ reason: 'cancelled', error: undefined });

    const other = `${scene.queue}.other`;
    await scene.admin.assertQueue(other, { autoDelete: false });
    const second = await consumeRabbit(channel, { queue: other, handler: wrapHandler<Buffer>(async () => {}) });
    await scene.admin.deleteQueue(other);
    await expect(second.closed).resolves.toEqual({ reason: 'broker_cancelled', error: undefined });
    expect(second.consumerTag).toBeUndefined();
    await second.resume(); // final: no new subscription to a deleted queue
    expect(second.consumerTag).toBeUndefined();
  });

  it('consumeRabbit on a closed channel rejects and leaves no listener behind on the connection', async () => {
    const connection = await scene.open(proxy.url);
    const channel = await scene.channelOn(connection);
    await channel.close();
    const events = connection.connection as unknown as EventEmitter;
    const before = [events.listenerCount('close'), events.listenerCount(errorMonitor)];
    await expect(
      consumeRabbit(channel, { queue: scene.queue, handler: wrapHandler<Buffer>(async () => {}) }),
    ).rejects.toThrow(/closed/i);
    expect([events.listenerCount('close'), events.listenerCount(errorMonitor)]).toEqual(before);
  });

  it('twelve consumers on one connection add one listener to it, not twelve (no MaxListenersExceededWarning)', async () => {
    const connection = await scene.open(proxy.url);
    const events = connection.connection as unknown as EventEmitter;
    const [closeBefore, monitorsBefore] = [events.listenerCount('close'), events.listenerCount(errorMonitor)];
    const consumers: RabbitConsumer[] = [];
    for (let i = 0; i < 12; i++) {
      const channel = await scene.channelOn(connection);
      consumers.push(
        await consumeRabbit(channel, { queue: scene.queue, handler: wrapHandler<Buffer>(async () => {}) }),
      );
    }
    expect([events.listenerCount('close'), events.listenerCount(errorMonitor)]).toEqual([
      closeBefore + 1,
      monitorsBefore + 1,
    ]);
    proxy.drop();
    const closed = await Promise.all(consumers.map((c) => c.closed));
    expect(closed.every((c) => c.reason === 'channel_closed' && c.error instanceof Error)).toBe(true);
    await sleep(0);
    expect([events.listenerCount('close'), events.listenerCount(errorMonitor)]).toEqual([closeBefore, monitorsBefore]);
  });

  it('a channel error closes the consumer with that error', async () => {
    const channel = await scene.channelOn(await scene.open(proxy.url));
    const consumer = await consumeRabbit(channel, { queue: scene.queue, handler: wrapHandler<Buffer>(async () => {}) });
    // A 404 from the broker closes the channel.
    await channel.checkQueue(`${scene.queue}.missing`).catch(() => undefined);
    const closed = await consumer.closed;
    expect(closed.reason).toBe('channel_closed');
    expect(String((closed.error as Error).message)).toMatch(/404/);
  });
});

/**
 * The reconnection loop of docs/integrations/messaging.md ("Reconnecting"), as written there except for the URL,
 * the queue, the handler and the log lines.
 */
function reconnectingConsumer(url: string, queue: string, processed: string[], log: unknown[]) {
  const handle = wrapHandler(async (body: Buffer) => {
    processed.push(body.toString());
  });
  let stopping = false;
  let current: { connection: ChannelModel; consumer: RabbitConsumer } | undefined;

  async function run(): Promise<void> {
    for (let failures = 0; !stopping; ) {
      try {
        const connection = await connect(url);
        // Without these listeners, a dropped socket is an uncaught 'error' event: the process exits.
        connection.on('error', (error) => log.push(['connection error', error]));
        const channel = await connection.createConfirmChannel();
        channel.on('error', (error) => log.push(['channel error', error]));
        await declareRabbitTopology(channel, { queue });
        const consumer = await consumeRabbit(channel, { queue, handler: handle, onError: (e) => log.push(e) });
        current = { connection, consumer };
        failures = 0;
        const { reason, error } = await consumer.closed;
        if (reason === 'cancelled') return; // our own shutdown
        log.push([`consumer stopped (${reason}), reconnecting`, error]);
        await connection.close().catch(() => undefined);
      } catch (error) {
        log.push(['connecting failed', error]);
        failures++;
      }
      if (!stopping) await delay(Math.min(30_000, 100 * 2 ** failures)); // the docs use 500 ms
    }
  }

  async function shutdown(): Promise<void> {
    stopping = true;
    await current?.consumer.cancel();
    await handle.shutdown(10_000);
    await current?.connection.close();
  }

  return { done: run(), shutdown, current: () => current };
}

describe('the documented reconnection loop (real broker, through a TCP proxy)', () => {
  it('survives two dropped connections: every message is processed, none is left behind', async () => {
    const processed: string[] = [];
    const log: unknown[] = [];
    const app = reconnectingConsumer(proxy.url, scene.queue, processed, log);
    await until(() => app.current()?.consumer.consumerTag !== undefined, 'the first subscription');

    for (let round = 0; round < 3; round++) {
      const bodies = Array.from({ length: 20 }, (_, i) => `r${round}-${i}`);
      await scene.publish(bodies);
      await until(() => bodies.every((b) => processed.includes(b)), `round ${round} to be processed`, 8_000);
      if (round < 2) {
        const before = app.current();
        proxy.drop();
        await until(
          () => app.current() !== before && app.current()?.consumer.consumerTag !== undefined,
          'the consumer to reconnect',
          8_000,
        );
      }
    }
    await app.shutdown();
    await app.done;
    await sleep(100);
    expect(await scene.count(scene.queue)).toBe(0);
    expect(new Set(processed).size).toBe(60);
    const reconnects = log.filter((entry) => Array.isArray(entry) && String(entry[0]).startsWith('consumer stopped'));
    expect(reconnects).toHaveLength(2);
  });
});

describe('consumeRabbit options', () => {
  it('rejects bad options with one InvalidOptionsError naming each option, its value and what is allowed', async () => {
    const bad = {
      queue: '',
      handler: 5,
      prefetch: -1,
      requeueDelayMs: Number.NaN,
      onClose: 'log',
      retries: 3,
    } as unknown as ConsumeRabbitOptions;
    const error = await consumeRabbit({} as Channel, bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    const message = (error as Error).message;
    expect(message).toMatch(/^consumeRabbit: invalid options/);
    for (const part of [
      /retries: expected a known option/,
      /queue: expected a non-empty string, got ""/,
      /handler: expected a wrapHandler\(\) result, got 5/,
      /prefetch: expected an integer .*got -1/,
      /requeueDelayMs: expected a number .*got NaN/,
      /onClose: expected a function/,
      /channel: expected an amqplib channel/,
    ]) {
      expect(message).toMatch(part);
    }
  });
});

describe('declareRabbitTopology options', () => {
  it('rejects a missing or empty queue name, or an unknown option, with an InvalidOptionsError', async () => {
    for (const bad of [{ queue: '' }, {}, { queue: 'q', durable: false }, undefined]) {
      const error = await declareRabbitTopology({} as Channel, bad as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(/^declareRabbitTopology: invalid options/);
    }
  });
});
