import { afterAll, describe, expect, it } from 'vitest';
import { isBulkheadRejectedError, isInvalidOptionsError, isLocalRejectionError } from '../../../src/index.js';
import { redisBulkhead } from '../../../src/integrations/redis/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import {
  CLIENTS,
  connect,
  connectIoredis,
  deleteKeys,
  disconnect,
  redisProxy,
  sleep,
  uniquePrefix,
} from './harness.js';

/**
 * The store timeout of the tests that are not about an outage: generous, the machine may be loaded. Why 5 s, as in
 * breaker.test.ts: with 1 s, a test worker stalled for a second by the rest of the suite took the fallback there.
 */
const SLOW_OK = 5_000;
/**
 * What a call may take beyond the store timeout and its own time, on a loaded machine (scheduling, the event loop).
 * A call waiting for a reconnect would take seconds (the clients retry every 20 ms, but the proxy refuses them).
 */
const SLACK_MS = 250;
const prefix = uniquePrefix('bh');
afterAll(() => deleteKeys(prefix));

/** The holders of a limit in Redis now (its sorted set's size, read through a connection of its own). */
async function holders(name: string): Promise<number> {
  const admin = await connectIoredis();
  try {
    return await admin.zcard(`${prefix}{${name}}:p`);
  } finally {
    admin.disconnect();
  }
}

/** Waits (polling) until `cond` holds: the machine may be slow, a fixed sleep is not a bound. */
async function until(cond: () => boolean | Promise<boolean>, what = 'condition'): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe.each(CLIENTS)('redisBulkhead with %s', (clientName) => {
  it('shares one limit between two policies (two processes), gives permits back on success and failure', async () => {
    const a = await connect(clientName);
    const b = await connect(clientName);
    const name = `share-${clientName}`;
    try {
      const pa = redisBulkhead({ client: a, keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 3 });
      const pb = redisBulkhead({ client: b, keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 3 });
      const gate = deferred();
      const running = [
        pa.execute(() => gate.promise),
        pb.execute(() => gate.promise),
        pa.execute(async () => {
          await gate.promise;
          throw new Error('boom');
        }),
      ];
      await until(async () => (await holders(name)) === 3 && pa.active === 2 && pb.active === 1);
      expect(pa.active).toBe(2);
      const rejected = await pb.execute(() => 'never').catch((e: unknown) => e);
      expect(isBulkheadRejectedError(rejected)).toBe(true);
      expect(isLocalRejectionError(rejected)).toBe(true);
      expect(rejected).toMatchObject({ reason: 'full', active: 3, queued: 0 });
      gate.resolve();
      const results = await Promise.allSettled(running);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
      await sleep(30);
      expect(await holders(name)).toBe(0);
      expect(pa.active + pb.active).toBe(0);
      expect(await pb.execute(() => 'ok')).toBe('ok');
    } finally {
      await disconnect(a);
      await disconnect(b);
    }
  });

  it('queues locally, in FIFO order, and gets permits freed by another process by polling', async () => {
    const a = await connect(clientName);
    const b = await connect(clientName);
    const name = `queue-${clientName}`;
    try {
      const holder = redisBulkhead({ client: a, keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 2 });
      const waiter = redisBulkhead({
        client: b,
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        limit: 2,
        queue: 10,
        pollMaxMs: 20,
      });
      const gate = deferred();
      const held = [holder.execute(() => gate.promise), holder.execute(() => gate.promise)];
      await until(() => holder.active === 2);
      const order: number[] = [];
      const queued = [1, 2, 3].map((i) => waiter.execute(() => order.push(i)));
      await until(() => waiter.queued === 3);
      gate.resolve();
      await Promise.all([...held, ...queued]);
      expect(order).toEqual([1, 2, 3]);
      await sleep(30);
      expect(await holders(name)).toBe(0);
    } finally {
      await disconnect(a);
      await disconnect(b);
    }
  });

  it('hands a permit it gives back to its own first queued call, with no round trip', async () => {
    const client = await connect(clientName);
    const name = `handover-${clientName}`;
    try {
      const p = redisBulkhead({ client, keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 1, queue: 5 });
      const gate = deferred();
      const first = p.execute(() => gate.promise);
      await until(() => p.active === 1);
      const order: string[] = [];
      const second = p.execute(() => order.push('second'));
      const third = p.execute(() => order.push('third'));
      expect(p.queued).toBe(2);
      gate.resolve();
      await Promise.all([first, second, third]);
      expect(order).toEqual(['second', 'third']);
      expect(p.queued).toBe(0);
    } finally {
      await disconnect(client);
    }
  });

  it('a queued call leaves at once on its abort and on its queue timeout (fake clock: exact)', async () => {
    const client = await connect(clientName);
    const name = `leave-${clientName}`;
    const clock = new FakeClock();
    try {
      const p = redisBulkhead({
        client,
        clock,
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        limit: 1,
        queue: 5,
        queueTimeoutMs: 1_000,
      });
      const gate = deferred();
      const first = p.execute(() => gate.promise);
      await until(() => p.active === 1);
      const controller = new AbortController();
      const aborted = p.execute(() => 'x', { signal: controller.signal }).catch((e: unknown) => e);
      const timedOut = p.execute(() => 'y').catch((e: unknown) => e);
      controller.abort('mine');
      expect(await aborted).toBe('mine');
      await clock.advance(999);
      expect(p.queued).toBe(1);
      await clock.advance(1);
      expect(await timedOut).toMatchObject({ code: 'ERR_BULKHEAD_REJECTED', reason: 'queue_timeout' });
      gate.resolve();
      await first;
      p.dispose();
    } finally {
      await disconnect(client);
    }
  });

  it('renews the leases of long calls in one script call per interval, and a dead holder frees them', async () => {
    const client = await connect(clientName);
    const name = `lease-${clientName}`;
    try {
      const p = redisBulkhead({ client, keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 2, leaseMs: 300 });
      const gate = deferred();
      const long = [p.execute(() => gate.promise), p.execute(() => gate.promise)];
      await sleep(700); // more than two leases: still held, renewed
      expect(await holders(name)).toBe(2);
      gate.resolve();
      await Promise.all(long);
      // A holder that stops renewing (a crashed process): its lease expires and the permit comes back.
      const admin = await connectIoredis();
      const t = await admin.time();
      const nowMs = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000);
      await admin.zadd(`${prefix}{${name}}:p`, nowMs + 200, 'dead-1', nowMs + 200, 'dead-2');
      admin.disconnect();
      expect(await p.execute(() => 1).catch((e: unknown) => e)).toMatchObject({ reason: 'full' });
      await sleep(250);
      expect(await p.execute(() => 'back')).toBe('back');
    } finally {
      await disconnect(client);
    }
  });

  it('Redis paused or cut: every call takes its fallback within the store timeout, then back to Redis', async () => {
    const proxy = await redisProxy();
    const client = await connect(clientName, proxy.port);
    const name = `outage-${clientName}`;
    try {
      for (const mode of ['local', 'fail-open', 'fail-closed'] as const) {
        const p = redisBulkhead({
          client,
          keyPrefix: prefix,
          name: `${name}-${mode}`,
          limit: 2,
          onStoreError: mode,
          storeTimeoutMs: 40,
          storeRecheckMs: 50,
        });
        const fallbacks: string[] = [];
        let recovered = 0;
        p.on('store.fallback', (e) => fallbacks.push(`${e.reason}:${e.fallback}`));
        p.on('store.recovered', () => recovered++);
        // Subscribed before the local bulkhead exists (made on first use): its events still reach the listener.
        const rejected: string[] = [];
        p.on('bulkhead.rejected', (e) => rejected.push(e.reason));
        expect(p.localFallback).toBeUndefined();
        expect(await p.execute(() => 'redis')).toBe('redis');
        proxy.pause();
        const started = performance.now();
        // Each call's own time is 30 ms: it completes within the store timeout plus that (and some slack).
        const outcomes = await Promise.allSettled([1, 2, 3].map(() => p.execute(() => sleep(30))));
        expect(performance.now() - started).toBeLessThan(40 + 30 + SLACK_MS);
        if (mode === 'fail-closed') {
          for (const o of outcomes) {
            expect(o.status).toBe('rejected');
            expect((o as PromiseRejectedResult).reason).toMatchObject({ reason: 'unavailable' });
          }
        } else if (mode === 'local') {
          // The local bulkhead, limit 2, no queue: two run, the third is refused by it.
          expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
          expect(rejected).toEqual(['full']);
          expect(p.localFallback?.limit).toBe(2);
        } else {
          expect(outcomes.every((o) => o.status === 'fulfilled')).toBe(true);
        }
        expect(fallbacks.length).toBeGreaterThanOrEqual(3);
        expect(fallbacks.some((f) => f.startsWith('timeout:'))).toBe(true);
        proxy.resume();
        await sleep(80);
        expect(await p.execute(() => 'redis again')).toBe('redis again');
        expect(recovered).toBe(1);
        expect(p.storeHealthy).toBe(true);
      }
      // Cut: the client disconnects; calls skip Redis at once (not ready) and take the fallback.
      const p = redisBulkhead({ client, keyPrefix: prefix, name: `${name}-cut`, limit: 2, storeTimeoutMs: 40 });
      proxy.cut();
      await sleep(30);
      const started = performance.now();
      expect(await p.execute(() => 'local')).toBe('local');
      expect(performance.now() - started).toBeLessThan(40 + SLACK_MS);
      proxy.resume();
      for (let i = 0; i < 100 && !p.storeHealthy; i++) {
        await sleep(20);
        await p.execute(() => undefined);
      }
      expect(p.storeHealthy).toBe(true);
    } finally {
      await disconnect(client);
      await proxy.close();
    }
  });
});

describe('redisBulkhead options', () => {
  it('hostile options: InvalidOptionsError at construction, naming every problem', async () => {
    const client = await connectIoredis();
    try {
      const bad = [
        undefined,
        {},
        { client, limit: 0 },
        { client, limit: Number.NaN },
        { client, limit: 1.5 },
        { client, limit: 2, queue: -1 },
        { client, limit: 2, leaseMs: 50 },
        { client, limit: 2, leaseMs: Number.POSITIVE_INFINITY },
        { client, limit: 2, pollMaxMs: 0 },
        { client, limit: 2, onStoreError: 'maybe' },
        { client, limit: 2, keyPrefix: 'a{b}' },
        { client, limit: 2, storeTimeoutMs: -1 },
        { client: {}, limit: 2 },
        { client, limit: 2, halfOpenAfterMs: 5 },
      ];
      for (const options of bad) {
        let error: unknown;
        try {
          redisBulkhead(options as never);
        } catch (e) {
          error = e;
        }
        expect(isInvalidOptionsError(error), JSON.stringify(Object.keys(options ?? {}))).toBe(true);
        expect(String((error as Error).message)).toContain('redisBulkhead');
      }
      expect(() => redisBulkhead({ client, limit: 1, name: 'x'.repeat(10_000) })).not.toThrow();
    } finally {
      client.disconnect();
    }
  });

  it('a huge or odd name is a key of bounded size in one hash tag', async () => {
    const client = await connectIoredis();
    const name = `{odd}:${'é'.repeat(300)}`;
    try {
      const p = redisBulkhead({ client, keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 1 });
      const gate = deferred();
      const run = p.execute(() => gate.promise);
      await until(() => p.active === 1);
      const [, keys] = await client.scan('0', 'MATCH', `${prefix}*%#*`, 'COUNT', 10_000);
      const mine = keys;
      expect(mine).toHaveLength(1);
      expect((mine[0] as string).length).toBeLessThan(150);
      gate.resolve();
      await run;
    } finally {
      client.disconnect();
    }
  });
});
