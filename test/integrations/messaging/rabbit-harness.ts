import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { type ChannelModel, type ConfirmChannel, connect } from 'amqplib';
import { declareRabbitTopology } from '../../../src/integrations/messaging/index.js';
import { waitFor } from '../../helpers/wait.js';

/** The real broker on 127.0.0.1:5672 (CI starts it). No skipping: an unreachable broker fails every test. */
export const RABBIT_HOST = '127.0.0.1';
export const RABBIT_PORT = 5672;
export const RABBIT_URL = `amqp://guest:guest@${RABBIT_HOST}:${RABBIT_PORT}`;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms until it holds, failing after `ms`. */
export const until = (condition: () => boolean | Promise<boolean>, what: string, ms = 4_000) =>
  waitFor(condition, what, { timeoutMs: ms, intervalMs: 10 });

/**
 * A TCP proxy in front of the broker that the test controls: `drop()` cuts every connection through it (both
 * sockets destroyed), as a network failure or a broker-side kill would, without touching the broker itself.
 */
export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Connections currently open through the proxy. */
  readonly open: number;
  drop(): void;
  close(): Promise<void>;
}

export async function tcpProxy(targetPort = RABBIT_PORT): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(targetPort, RABBIT_HOST);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, RABBIT_HOST, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');
  const port = address.port;
  const drop = () => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    url: `amqp://guest:guest@${RABBIT_HOST}:${port}`,
    get open() {
      return pairs.size;
    },
    drop,
    close() {
      drop();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * One test's broker resources: connections (closed at the end), an admin confirm channel, a unique work queue
 * with its topology (deleted at the end), and every error a connection or channel reported.
 */
export class RabbitScene {
  readonly connections: ChannelModel[] = [];
  readonly errors: unknown[] = [];
  readonly queue = `bulwark-test-${randomUUID()}`;
  admin!: ConfirmChannel;

  async setUp(): Promise<this> {
    this.admin = await this.channelOn(await this.open());
    await declareRabbitTopology(this.admin, { queue: this.queue });
    return this;
  }

  async open(url = RABBIT_URL): Promise<ChannelModel> {
    let connection: ChannelModel;
    try {
      connection = await connect(url);
    } catch (error) {
      throw new Error(`RabbitMQ is not reachable at ${url}: these tests need the real broker`, { cause: error });
    }
    connection.on('error', (e: Error) => this.errors.push(e));
    this.connections.push(connection);
    return connection;
  }

  async channelOn(connection: ChannelModel): Promise<ConfirmChannel> {
    const channel = await connection.createConfirmChannel();
    channel.on('error', (e: Error) => this.errors.push(e));
    return channel;
  }

  async publish(bodies: readonly string[], headers?: Record<string, unknown>): Promise<void> {
    for (const body of bodies) {
      this.admin.sendToQueue(this.queue, Buffer.from(body), { persistent: true, ...(headers ? { headers } : {}) });
    }
    await this.admin.waitForConfirms();
  }

  async count(name: string): Promise<number> {
    return (await this.admin.checkQueue(name)).messageCount;
  }

  async tearDown(): Promise<void> {
    try {
      const cleanup = await this.channelOn(await this.open());
      for (const name of [this.queue, `${this.queue}.retry`, `${this.queue}.dlq`]) await cleanup.deleteQueue(name);
    } finally {
      for (const c of this.connections) await c.close().catch(() => undefined);
    }
  }
}
