import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { AckPolicy, type ConnectionOptions, type JetStreamManager, type NatsConnection, nanos } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  consumeJetStream,
  type JetStreamClosed,
  type JetStreamConsumption,
  type WrappedHandler,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { NATS_CLIENTS, type NatsClient } from '../../helpers/nats-clients.js';
import { waitFor } from '../../helpers/wait.js';

// A consumer learns that it stopped (issue 11 item 15), against the real server on 127.0.0.1:4222; outages are a
// TCP proxy this test controls.
let admin: NatsConnection;
let jsm: JetStreamManager;
/** The client line of the describe block running (see NATS_CLIENTS). */
let client: NatsClient;

const streams: string[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  for (const s of streams.splice(0)) await jsm.streams.delete(s).catch(() => false);
});

const until = (check: () => boolean | Promise<boolean>, ms = 4_000) =>
  waitFor(check, 'the condition', { timeoutMs: ms, intervalMs: 20 });

/** A TCP proxy to the NATS server; `drop()` cuts every connection through it (the server keeps running). */
async function proxy(): Promise<{ port: number; drop(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(4222, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const drop = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    port: address.port,
    drop,
    close: () =>
      new Promise<void>((r) => {
        drop();
        server.close(() => r());
      }),
  };
}

async function setup(servers = '127.0.0.1:4222', extra: Partial<ConnectionOptions> = {}) {
  const id = randomUUID().replaceAll('-', '');
  const stream = `BW_${id}`;
  const subject = `bw.${id}.work`;
  await jsm.streams.add({ name: stream, subjects: [subject] });
  streams.push(stream);
  await jsm.consumers.add(stream, {
    durable_name: 'worker',
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(2_000),
    max_deliver: -1,
  });
  const nc = await client.connect({ servers, timeout: 3_000, ...extra });
  cleanups.push(() => nc.close());
  const js = client.jetstream(nc);
  const consumer = await js.consumers.get(stream, 'worker');
  const seen: string[] = [];
  const handle: WrappedHandler<Uint8Array> = wrapHandler(async (body: Uint8Array) => {
    seen.push(new TextDecoder().decode(body));
  });
  const onClose: JetStreamClosed[] = [];
  const loop: JetStreamConsumption = consumeJetStream(consumer, handle, {
    maxMessages: 10,
    onClose: (c) => {
      onClose.push(c);
      throw new Error('a failing onClose is ignored');
    },
  });
  cleanups.push(() => Promise.all([handle.shutdown(200).catch(() => undefined), loop.stop()]));
  let closed: JetStreamClosed | undefined;
  void loop.closed.then((c) => {
    closed = c;
  });
  const publish = (text: string) => client.jetstream(admin).publish(subject, new TextEncoder().encode(text));
  return { stream, subject, nc, loop, seen, publish, onClose, closedNow: () => closed };
}

describe.each(NATS_CLIENTS)('$name', (c) => {
  beforeAll(async () => {
    client = c;
    admin = await c.connect({ servers: '127.0.0.1:4222', timeout: 3_000, maxReconnectAttempts: 0 });
    jsm = await c.jetstreamManager(admin);
  });

  afterAll(async () => {
    await admin?.drain();
  });

  describe('consumeJetStream: closed (real NATS)', () => {
    it('stop(): closed resolves with reason "stopped", done resolves', async () => {
      const { loop, publish, seen } = await setup();
      await publish('a');
      await until(() => seen.length === 1);
      await loop.stop();
      await expect(loop.closed).resolves.toEqual({ reason: 'stopped' });
      await expect(loop.done).resolves.toBeUndefined();
    });

    it('the consumer is deleted: closed resolves with "consumer_deleted", done rejects', async () => {
      const { stream, loop, publish, seen, onClose, closedNow } = await setup();
      await publish('a');
      await until(() => seen.length === 1);
      expect(closedNow()).toBeUndefined();
      expect(onClose).toEqual([]);
      await jsm.consumers.delete(stream, 'worker');
      await until(() => closedNow() !== undefined, 6_000);
      expect(closedNow()?.reason).toBe('consumer_deleted');
      // onClose: once, with the same value.
      expect(onClose).toEqual([closedNow()]);
      await loop.stop();
      expect(onClose).toHaveLength(1);
      await expect(loop.done).rejects.toThrow(/consumer deleted/);
    });

    it('the stream is deleted: closed resolves with "consumer_deleted"', async () => {
      const { stream, loop, closedNow } = await setup();
      // Deleted once the loop's pull is waiting at the server, which then ends it with a 409 at once. Deleted before
      // the first pull arrives (a loaded machine), nats.js 2.x learns it only from missed idle heartbeats (2 x 15 s
      // by default), and the test would time out.
      await until(async () => (await jsm.consumers.info(stream, 'worker')).num_waiting > 0);
      await jsm.streams.delete(stream);
      await until(() => closedNow() !== undefined, 6_000);
      expect(closedNow()?.reason).toBe('consumer_deleted');
      await expect(loop.done).rejects.toBeDefined();
    });

    it('the connection is closed: closed resolves with "connection_closed"', async () => {
      const { nc, loop, publish, seen, closedNow } = await setup();
      await publish('a');
      await until(() => seen.length === 1);
      await nc.close();
      await until(() => closedNow() !== undefined);
      expect(closedNow()?.reason).toBe('connection_closed');
      await expect(loop.done).rejects.toThrow(/connection_closed/);
    });

    it('the server becomes unreachable and the client gives up reconnecting: closed resolves with "connection_closed"', async () => {
      const p = await proxy();
      const { seen, publish, closedNow } = await setup(`127.0.0.1:${p.port}`, {
        maxReconnectAttempts: 2,
        reconnectTimeWait: 50,
      });
      await publish('a');
      await until(() => seen.length === 1);
      await p.close(); // every connection cut, and no more accepted
      await until(() => closedNow() !== undefined);
      expect(closedNow()?.reason).toBe('connection_closed');
    });

    it('the socket drops and the client reconnects: the loop keeps consuming, closed stays pending', async () => {
      const p = await proxy();
      cleanups.push(() => p.close());
      const { nc, seen, publish, closedNow } = await setup(`127.0.0.1:${p.port}`, {
        maxReconnectAttempts: -1,
        reconnectTimeWait: 100,
      });
      await publish('before');
      await until(() => seen.length === 1);
      let reconnected = false;
      void (async () => {
        for await (const s of nc.status()) if (s.type === 'reconnect') reconnected = true;
      })();
      p.drop();
      await until(() => reconnected, 6_000);
      await publish('after');
      await until(() => seen.includes('after'), 10_000);
      expect(closedNow()).toBeUndefined();
    });
  });
});
