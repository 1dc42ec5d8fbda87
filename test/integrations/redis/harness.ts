import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import type { IoredisClient, NodeRedisClient } from '../../../src/integrations/redis/index.js';

/**
 * The real Redis on 127.0.0.1:6379 (CI starts it). No skipping: an unreachable Redis fails every test that uses
 * it. Tests never flush, stop nor reconfigure it: each uses keys under its own random prefix and deletes them.
 */
export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = 6379;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A key prefix no other test (nor run) shares. */
export const uniquePrefix = (what: string): string => `bulwark-test:${what}:${randomUUID().slice(0, 8)}:`;

/** Both clients, by name, each connected to `port` (Redis itself, or a proxy in front of it). */
export type ClientName = 'ioredis' | 'node-redis';
export const CLIENTS: readonly ClientName[] = ['ioredis', 'node-redis'];

/** Connects an ioredis client: no offline queue and fast retries (a test must not wait on reconnects). */
export async function connectIoredis(port = REDIS_PORT): Promise<Redis> {
  const client = new Redis({
    host: REDIS_HOST,
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 20,
  });
  client.on('error', () => undefined); // reconnects are expected in the outage tests
  await client.connect().catch((e: unknown) => {
    throw new Error(`Redis is not answering on ${REDIS_HOST}:${port} (CI starts it): ${String(e)}`);
  });
  return client;
}

/** Connects a node-redis client (reconnecting every 20 ms, never queueing while disconnected). */
export async function connectNodeRedis(port = REDIS_PORT) {
  const client = createClient({
    socket: { host: REDIS_HOST, port, reconnectStrategy: () => 20, connectTimeout: 2_000 },
    disableOfflineQueue: true,
  });
  client.on('error', () => undefined);
  await client.connect().catch((e: unknown) => {
    throw new Error(`Redis is not answering on ${REDIS_HOST}:${port} (CI starts it): ${String(e)}`);
  });
  return client;
}

export async function connect(name: ClientName, port = REDIS_PORT): Promise<IoredisClient | NodeRedisClient> {
  return name === 'ioredis' ? connectIoredis(port) : connectNodeRedis(port);
}

/** Closes a client of either kind, whatever its state. */
export async function disconnect(client: IoredisClient | NodeRedisClient): Promise<void> {
  if (client instanceof Redis) {
    client.disconnect();
    return;
  }
  const c = client as unknown as { destroy(): void };
  try {
    c.destroy();
  } catch {
    // already closed
  }
}

/** Deletes every key under `prefix` (SCAN, never KEYS/FLUSH), through a connection of its own. */
export async function deleteKeys(prefix: string): Promise<void> {
  const admin = await connectIoredis();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await admin.del(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
}

/** The keys under `prefix`, with their remaining time to live in ms. */
export async function keysWithTtl(prefix: string): Promise<Map<string, number>> {
  const admin = await connectIoredis();
  try {
    const out = new Map<string, number>();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const k of keys) out.set(k, await admin.pttl(k));
    } while (cursor !== '0');
    return out;
  } finally {
    admin.disconnect();
  }
}

/**
 * A TCP proxy in front of Redis that the test controls, to make Redis unavailable without touching it:
 * - `pause()`: stop forwarding in both directions (the connections stay open; commands get no answer);
 * - `resume()`: forward again (what was held is delivered);
 * - `cut()`: destroy every connection through it, and refuse new ones until `resume()`.
 */
export interface RedisProxy {
  readonly port: number;
  pause(): void;
  resume(): void;
  cut(): void;
  close(): Promise<void>;
}

export async function redisProxy(targetPort = REDIS_PORT): Promise<RedisProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let paused = false;
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(targetPort, REDIS_HOST);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => client.write(d));
    if (paused) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, REDIS_HOST, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    pause() {
      paused = true;
      for (const [a, b] of pairs) {
        a.pause();
        b.pause();
      }
    },
    resume() {
      paused = false;
      refusing = false;
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
    },
    cut() {
      refusing = true;
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
