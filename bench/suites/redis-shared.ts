/**
 * Redis suite (shared state): the fleet-wide concurrency limit (`redisBulkhead`) and the shared breaker
 * (`redisCircuitBreaker`) against the real Redis on 127.0.0.1:6379 (loopback), on ioredis and on node-redis.
 *
 * - Concurrency limit: permits per second with 1 and 16 callers in a closed loop (each call takes a permit and gives
 *   it back: two script calls, one before the call and one after it), and the latency it adds to a call that
 *   does nothing, p50 and p99 over serial calls (the call's own time is ~0, so its latency is what the limit adds).
 * - Shared breaker, closed: the latency it adds (p50, p99) and the share of calls that made a Redis round trip
 *   (the goal: most calls none; outcomes go in batches every `syncIntervalMs`, 100 ms by default).
 *
 * Keys live under a random prefix and are deleted afterwards; Redis is never flushed.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { redisBulkhead, redisCircuitBreaker } from '../../src/integrations/redis/index.js';
import { progress, quantile, type Settings } from '../harness.js';

export interface RedisSharedRow {
  readonly policy: 'concurrency limit' | 'shared breaker (closed)';
  readonly client: 'ioredis' | 'node-redis';
  /** Callers in a closed loop (permits per second), or 1 (latency). */
  readonly concurrency: number;
  /** Calls completed per second. */
  readonly callsPerSec: number;
  /** Latency added to a no-op call, p50 and p99, in ms (serial calls). */
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
  /** Redis round trips per call (script calls, the release included). */
  readonly roundTripsPerCall: number;
}

/** A node-redis client, as bench code uses it. */
interface NodeRedis {
  readonly isReady: boolean;
  evalSha(sha: string, o: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(src: string, o: { keys: string[]; arguments: string[] }): Promise<unknown>;
  quit(): Promise<unknown>;
}
type AnyClient = Redis | NodeRedis;

async function connect(kind: RedisSharedRow['client']): Promise<AnyClient> {
  if (kind === 'ioredis') {
    const c = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, enableOfflineQueue: false });
    await c.connect();
    return c;
  }
  const c = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  await c.connect();
  return c as unknown as NodeRedis;
}

async function close(c: AnyClient): Promise<void> {
  if (c instanceof Redis) c.disconnect();
  else await c.quit();
}

/** A RedisScripting of `client` that counts the script calls it sends. */
function counting(client: AnyClient): {
  scripting: Parameters<typeof redisBulkhead>[0]['client'];
  calls: () => number;
} {
  let n = 0;
  const scripting =
    client instanceof Redis
      ? {
          ready: () => client.status === 'ready',
          evalSha: (sha: string, keys: readonly string[], args: readonly string[]) => {
            n++;
            return client.evalsha(sha, keys.length, ...keys, ...args);
          },
          eval: (src: string, keys: readonly string[], args: readonly string[]) => {
            n++;
            return client.eval(src, keys.length, ...keys, ...args);
          },
        }
      : {
          ready: () => client.isReady,
          evalSha: (sha: string, keys: readonly string[], args: readonly string[]) => {
            n++;
            return client.evalSha(sha, { keys: [...keys], arguments: [...args] });
          },
          eval: (src: string, keys: readonly string[], args: readonly string[]) => {
            n++;
            return client.eval(src, { keys: [...keys], arguments: [...args] });
          },
        };
  return { scripting, calls: () => n };
}

async function deleteKeys(client: AnyClient, prefix: string): Promise<void> {
  const admin = new Redis({ host: '127.0.0.1', port: 6379 });
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
  void client;
}

/** Serial calls for `ms`: per-call latencies in ms, of `call` and of a bare no-op (alternating batches). */
async function latencies(call: () => Promise<unknown>, ms: number): Promise<{ own: number[]; bare: number[] }> {
  const own: number[] = [];
  const bare: number[] = [];
  const noop = async () => undefined;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      await call();
      own.push(performance.now() - t0);
      const t1 = performance.now();
      await noop();
      bare.push(performance.now() - t1);
    }
    // Let timers run between batches (a service does I/O between calls; a loop of resolved promises would starve
    // the breaker's exchange timer and hide its round trips).
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { own, bare };
}

async function closedLoop(call: () => Promise<unknown>, workers: number, ms: number): Promise<number> {
  let calls = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        await call();
        calls++;
      }
    }),
  );
  return calls / (ms / 1000);
}

export async function redisSharedSuite(s: Settings): Promise<RedisSharedRow[]> {
  const rows: RedisSharedRow[] = [];
  const ms = s.quick ? 500 : 2_000;
  const prefix = `bulwark-bench:${randomUUID().slice(0, 8)}:`;
  for (const kind of ['ioredis', 'node-redis'] as const) {
    const client = await connect(kind);
    try {
      const { scripting, calls } = counting(client);
      progress(`redis shared: concurrency limit (${kind})`);
      const limit = redisBulkhead({ client: scripting, keyPrefix: prefix, name: `bh-${kind}`, limit: 64 });
      const op = () => limit.execute(() => undefined);
      await closedLoop(op, 4, 200); // warm-up
      const lat = await latencies(op, ms);
      const p50 = quantile(lat.own, 0.5) - quantile(lat.bare, 0.5);
      const p99 = quantile(lat.own, 0.99) - quantile(lat.bare, 0.99);
      for (const concurrency of [1, 16]) {
        const before = calls();
        let n = 0;
        const counted = () => {
          n++;
          return op();
        };
        const perSec = await closedLoop(counted, concurrency, ms);
        rows.push({
          policy: 'concurrency limit',
          client: kind,
          concurrency,
          callsPerSec: perSec,
          addedP50Ms: p50,
          addedP99Ms: p99,
          roundTripsPerCall: (calls() - before) / n,
        });
      }
      progress(`redis shared: shared breaker, closed (${kind})`);
      const breaker = redisCircuitBreaker({ client: scripting, keyPrefix: prefix, name: `cb-${kind}` });
      const call = () => breaker.execute(() => undefined);
      await closedLoop(call, 1, 200); // warm-up
      const before = calls();
      let n = 0;
      const counted = () => {
        n++;
        return call();
      };
      const blat = await latencies(counted, ms);
      rows.push({
        policy: 'shared breaker (closed)',
        client: kind,
        concurrency: 1,
        callsPerSec: n / (ms / 1000),
        addedP50Ms: quantile(blat.own, 0.5) - quantile(blat.bare, 0.5),
        addedP99Ms: quantile(blat.own, 0.99) - quantile(blat.bare, 0.99),
        roundTripsPerCall: (calls() - before) / n,
      });
    } finally {
      await deleteKeys(client, prefix);
      await close(client);
    }
  }
  return rows;
}
