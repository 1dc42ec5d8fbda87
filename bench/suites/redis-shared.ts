/**
 * Suite 12 (`redis-shared`): what each bulwark/redis policy adds to a call and how many Redis round trips it makes,
 * against the real Redis on 127.0.0.1:6379 (loopback), on ioredis and on node-redis. Every script call goes through
 * a counting `RedisScripting`, so round trips are counted, not inferred.
 *
 * - Rate limiter (token bucket, admitting every call): the latency it adds (p50, p99) and its round trips per
 *   decision (the goal: exactly one).
 *
 * - Concurrency limit: permits per second with 1 and 16 callers in a closed loop (each call takes a permit and gives
 *   it back: two script calls, one before the call and one after it), and the latency it adds to a call that
 *   does nothing, p50 and p99 over serial calls (the call's own time is ~0, so its latency is what the limit adds).
 * - Shared breaker, closed: the latency it adds (p50, p99) and the share of calls that made a Redis round trip
 *   (the goal: most calls none; outcomes go in batches every `syncIntervalMs`, 100 ms by default).
 *
 * Keys live under a random prefix and are deleted afterwards; Redis is never flushed. Bounded in time: per client
 * four phases of 0.8 s (0.4 s in quick mode) and three warm-ups of 0.25 s, about 10 s in all (6 s quick). When Redis does not
 * answer, the suite reports nothing (a note on stderr) rather than failing the bench.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { redisBulkhead, redisCircuitBreaker, redisRateLimit } from '../../src/integrations/redis/index.js';
import { progress, quantile, type Settings } from '../harness.js';

export interface RedisSharedRow {
  readonly policy: 'rate limiter (token bucket)' | 'concurrency limit' | 'shared breaker (closed)';
  readonly client: 'ioredis' | 'node-redis';
  /** Callers in a closed loop (permits per second), or 1 (latency). */
  readonly concurrency: number;
  /** Calls completed per second. */
  readonly callsPerSec: number;
  /** Latency added to a no-op call, p50 and p99, in ms (serial calls). */
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
  /**
   * Redis round trips per call (script calls, the release included): for the breaker, the share of calls that made
   * one (its exchanges go in batches, one per `syncIntervalMs`).
   */
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
    c.on('error', () => undefined);
    await c.connect().catch((e: unknown) => {
      c.disconnect();
      throw e;
    });
    return c;
  }
  const c = createClient({ socket: { host: '127.0.0.1', port: 6379, reconnectStrategy: false } });
  c.on('error', () => undefined);
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

/** Deletes the run's keys (SCAN, never KEYS or FLUSH). */
async function deleteKeys(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
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

/** The serial phase of one policy: its row, with the latency it adds and its round trips per call. */
async function serialRow(
  policy: RedisSharedRow['policy'],
  client: RedisSharedRow['client'],
  call: () => Promise<unknown>,
  calls: () => number,
  ms: number,
): Promise<RedisSharedRow> {
  await closedLoop(call, 1, WARM_UP_MS);
  const before = calls();
  let n = 0;
  const counted = () => {
    n++;
    return call();
  };
  const t0 = performance.now();
  const lat = await latencies(counted, ms);
  const elapsed = performance.now() - t0;
  return {
    policy,
    client,
    concurrency: 1,
    // Serial calls interleaved with the bare ones: the rate of this policy's calls over the whole phase.
    callsPerSec: n / (elapsed / 1000),
    addedP50Ms: quantile(lat.own, 0.5) - quantile(lat.bare, 0.5),
    addedP99Ms: quantile(lat.own, 0.99) - quantile(lat.bare, 0.99),
    roundTripsPerCall: (calls() - before) / n,
  };
}

/** Each policy's warm-up, not recorded: loads its scripts into Redis and JIT-compiles its path before it is timed. */
const WARM_UP_MS = 250;
/** The call every policy wraps: nothing, so its latency is what the policy adds. */
const nothing = (): undefined => undefined;

export async function redisSharedSuite(s: Settings, step: string): Promise<RedisSharedRow[]> {
  const rows: RedisSharedRow[] = [];
  const ms = s.quick ? 400 : 800;
  const prefix = `bulwark-bench:${randomUUID().slice(0, 8)}:`;
  let admin: Redis;
  try {
    admin = (await connect('ioredis')) as Redis;
  } catch (e) {
    process.stderr.write(
      `\nbench redis-shared: Redis is not answering on 127.0.0.1:6379 (${String(e)}); suite skipped\n`,
    );
    return [];
  }
  try {
    for (const kind of ['ioredis', 'node-redis'] as const) {
      const client = await connect(kind);
      const { scripting, calls } = counting(client);
      // Fail-closed with a generous timeout: a fallback would show as an error, never as a fast local decision.
      const store = { client: scripting, keyPrefix: prefix, storeTimeoutMs: 1_000 } as const;
      const limiter = redisRateLimit({ ...store, onStoreError: 'fail-closed', name: `rl-${kind}`, rate: 1e9 });
      const limit = redisBulkhead({ ...store, onStoreError: 'fail-closed', name: `bh-${kind}`, limit: 64 });
      const breaker = redisCircuitBreaker({ ...store, name: `cb-${kind}` });
      try {
        progress(`${step} redis-shared: rate limiter (${kind})`);
        rows.push(await serialRow('rate limiter (token bucket)', kind, () => limiter.execute(nothing), calls, ms));

        progress(`${step} redis-shared: concurrency limit (${kind})`);
        const op = () => limit.execute(nothing);
        const serial = await serialRow('concurrency limit', kind, op, calls, ms);
        rows.push(serial);
        progress(`${step} redis-shared: concurrency limit, 16 callers (${kind})`);
        const before = calls();
        let n = 0;
        const perSec = await closedLoop(
          () => {
            n++;
            return op();
          },
          16,
          ms,
        );
        rows.push({
          ...serial,
          concurrency: 16,
          callsPerSec: perSec,
          addedP50Ms: Number.NaN,
          addedP99Ms: Number.NaN,
          roundTripsPerCall: (calls() - before) / n,
        });

        progress(`${step} redis-shared: shared breaker, closed (${kind})`);
        rows.push(await serialRow('shared breaker (closed)', kind, () => breaker.execute(nothing), calls, ms));
      } finally {
        limiter.dispose();
        limit.dispose();
        await close(client);
      }
    }
  } finally {
    await deleteKeys(admin, prefix);
    admin.disconnect();
  }
  return rows;
}
