/**
 * Suite 11: the Redis-backed rate limiter (bulwark/redis) against the real Redis on 127.0.0.1:6379 (loopback).
 * Each decision is one script call (one round trip); a bare `PING` on the same client is the floor: what one round
 * trip costs with no limiter at all, so `limiter - PING` is what the limiter itself adds.
 *
 * Two measurements per contender, in alternating order over rounds, each bounded in time (about 10 s in all):
 * - latency: one call at a time (a closed loop of one), p50 and p99 of each call's duration;
 * - throughput: 64 calls in flight, decisions per second.
 * The limiter admits every call (a rate of 1e9 per second): a refusal costs the same round trip.
 *
 * When Redis does not answer, the suite reports nothing (a note on stderr) rather than failing the bench.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { redisRateLimit } from '../../src/integrations/redis/index.js';
import { median, progress, quantile, roundOrder, type Settings } from '../harness.js';

export interface RedisRow {
  readonly contender: string;
  /** Decisions (or PINGs) per second with 64 in flight. */
  readonly perSec: number;
  /** Latency of one call at a time, median over rounds of each round's p50 and p99, in ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** The contender of the p99 target (<= 1 ms on loopback). */
export const REDIS_TOKEN_BUCKET = 'redisRateLimit token bucket (ioredis)';

const IN_FLIGHT = 64;

/** Runs `call` one at a time for `ms`; returns every call's duration in ms. */
async function latencies(call: () => Promise<unknown>, ms: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    await call();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Runs `call` with `IN_FLIGHT` in flight for `ms`; returns calls per second. */
async function throughput(call: () => Promise<unknown>, ms: number): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await call();
        n++;
      }
    }),
  );
  return n / ((performance.now() - t0) / 1_000);
}

export async function redisSuite(s: Settings, step: string): Promise<RedisRow[]> {
  const io = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, enableOfflineQueue: false });
  io.on('error', () => undefined);
  try {
    await io.connect();
  } catch (e) {
    process.stderr.write(`\nbench redis: Redis is not answering on 127.0.0.1:6379 (${String(e)}); suite skipped\n`);
    io.disconnect();
    return [];
  }
  const nr = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  nr.on('error', () => undefined);
  await nr.connect();
  const keyPrefix = `bulwark-bench:${randomUUID().slice(0, 8)}:`;
  // A rate no call reaches: every decision admits. Short windows: the keys expire within a second after the run.
  const common = { keyPrefix, rate: 1e9, onStoreError: 'fail-closed', storeTimeoutMs: 1_000 } as const;
  const tbIo = redisRateLimit({ ...common, client: io, name: 'tb-io' });
  const tbNr = redisRateLimit({ ...common, client: nr, name: 'tb-nr' });
  const swIo = redisRateLimit({
    keyPrefix,
    client: io,
    name: 'sw-io',
    algorithm: 'sliding-window',
    limit: 1e9,
    windowMs: 1_000,
    segments: 10,
    onStoreError: 'fail-closed',
    storeTimeoutMs: 1_000,
  });
  const op = () => undefined;
  const contenders = [
    { name: 'PING, no limiter (ioredis): one round trip', run: () => io.ping() },
    { name: REDIS_TOKEN_BUCKET, run: () => tbIo.execute(op) },
    { name: 'redisRateLimit sliding window, 10 segments (ioredis)', run: () => swIo.execute(op) },
    { name: 'PING, no limiter (node-redis): one round trip', run: () => nr.ping() },
    { name: 'redisRateLimit token bucket (node-redis)', run: () => tbNr.execute(op) },
  ];
  const rounds = s.quick ? 2 : 3;
  // Per round and contender: latency then throughput. Quick: 5 x 2 x 2 x 0.25 s = 5 s; full: 5 x 3 x 2 x 0.35 s.
  const phaseMs = s.quick ? 250 : 350;
  const acc = new Map(
    contenders.map((c) => [c.name, { perSec: [] as number[], p50: [] as number[], p99: [] as number[] }]),
  );
  try {
    // Warm-up, not recorded: loads the scripts into Redis and JIT-compiles both paths.
    for (const c of contenders) await latencies(c.run, 100);
    for (let r = 0; r < rounds; r++) {
      for (const [i, c] of roundOrder(contenders, r).entries()) {
        progress(`${step} redis: round ${r + 1}/${rounds}, ${i + 1}/${contenders.length} ${c.name}`);
        const a = acc.get(c.name) as { perSec: number[]; p50: number[]; p99: number[] };
        const lat = await latencies(c.run, phaseMs);
        a.p50.push(quantile(lat, 0.5));
        a.p99.push(quantile(lat, 0.99));
        a.perSec.push(await throughput(c.run, phaseMs));
      }
    }
  } finally {
    for (const l of [tbIo, tbNr, swIo]) l.dispose();
    io.disconnect();
    await nr.quit();
  }
  return contenders.map((c) => {
    const a = acc.get(c.name) as { perSec: number[]; p50: number[]; p99: number[] };
    return { contender: c.name, perSec: median(a.perSec), p50Ms: median(a.p50), p99Ms: median(a.p99) };
  });
}
