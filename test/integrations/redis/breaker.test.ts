import { afterAll, describe, expect, it } from 'vitest';
import { isCircuitOpenError, isInvalidOptionsError } from '../../../src/index.js';
import { type RedisCircuitBreakerOptions, redisCircuitBreaker } from '../../../src/integrations/redis/index.js';
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
 * The store timeout of the tests that are not about an outage: generous, the machine may be loaded. Why 5 s: a
 * flush that times out is dropped with the outcomes it carried (the documented degraded mode), so a test that counts
 * outcomes never sees the breaker open; with 1 s, a test worker stalled for a second by the rest of the suite did
 * exactly that once in CI ("a time window counts the calls of every process", Node 20).
 */
const SLOW_OK = 5_000;
/**
 * What a call may take beyond the store timeout and its own time, on a loaded machine (scheduling, the event loop).
 * A call waiting for a reconnect would take seconds (the clients retry every 20 ms, but the proxy refuses them).
 */
const SLACK_MS = 250;
const prefix = uniquePrefix('cb');
afterAll(() => deleteKeys(prefix));

async function stateOf(name: string): Promise<Record<string, string>> {
  const admin = await connectIoredis();
  try {
    return await admin.hgetall(`${prefix}{${name}}:s`);
  } finally {
    admin.disconnect();
  }
}

const fail = () => Promise.reject(new Error('upstream down'));
const ok = () => 'ok';
/** Waits (polling) until `cond` holds: the machine may be slow, a fixed sleep is not a bound. */
async function until(cond: () => boolean | Promise<boolean>, what = 'condition'): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}
async function leaseOf(name: string): Promise<number> {
  const admin = await connectIoredis();
  try {
    return await admin.pttl(`${prefix}{${name}}:p`);
  } finally {
    admin.disconnect();
  }
}
/**
 * Waits until a call through `p` finds `state`: a process learns of a transition made by another within
 * `syncIntervalMs` plus a round trip (the documented staleness bound), so this is a wait, not a race.
 */
const sees = (p: Parameters<typeof view>[0], state: string) =>
  until(async () => (await view(p)) === state, `the process to see ${state}`);
const openedOnce = (name: string) => until(async () => (await stateOf(name)).x === '1', 'the breaker to open');
const closedIn = (name: string) => until(async () => (await stateOf(name)).st === '0', 'the breaker to close');

/** Reads the state, trying again while a Redis just resumed is still answering what it held. */
async function syncSoon(p: { sync(): Promise<void> }): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await p.sync();
    } catch (e) {
      if (i === 20) throw e;
      await sleep(20);
    }
  }
}
/** What a call through `p` finds now: 'closed' (it ran), or the state that rejected it. */
const view = (p: { execute(op: () => string): Promise<string> }) =>
  p.execute(ok).then(
    () => 'closed',
    (e: unknown) => (e as { state: string }).state,
  );

describe.each(CLIENTS)('redisCircuitBreaker with %s', (clientName) => {
  it('opens once from the combined failures of two processes, and both see it open', async () => {
    const a = await connect(clientName);
    const b = await connect(clientName);
    const name = `combined-${clientName}`;
    try {
      const options = {
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'consecutive', threshold: 4 },
      } as const;
      const pa = redisCircuitBreaker({ client: a, ...options, syncIntervalMs: 20 });
      const pb = redisCircuitBreaker({ client: b, ...options, syncIntervalMs: 20 });
      const opened: string[] = [];
      pa.on('circuit.open', (e) => opened.push(`a:${e.from}`));
      pb.on('circuit.open', (e) => opened.push(`b:${e.from}`));
      await pa.sync();
      await pb.sync();
      for (const p of [pa, pb, pa, pb]) await p.execute(fail).catch(() => undefined);
      await openedOnce(name);
      expect((await stateOf(name)).x).toBe('1');
      await sees(pa, 'open');
      await sees(pb, 'open');
      expect(opened.sort()).toEqual(['a:closed', 'b:closed']);
      const e = await pa.execute(ok).catch((x: unknown) => x);
      expect(isCircuitOpenError(e)).toBe(true);
      expect(e).toMatchObject({ state: 'open' });
      expect((e as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(9_000);
    } finally {
      await disconnect(a);
      await disconnect(b);
    }
  });

  it('a count window counts the calls of every process (failure rate over the fleet)', async () => {
    const a = await connect(clientName);
    const b = await connect(clientName);
    const name = `count-${clientName}`;
    try {
      const options = {
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'count', size: 10 },
        minimumCalls: 10,
        failureRate: 0.5,
        syncIntervalMs: 20,
      } as const;
      const pa = redisCircuitBreaker({ client: a, ...options });
      const pb = redisCircuitBreaker({ client: b, ...options });
      // 5 successes from a, then 4 failures from b: 4/9, not yet judged (minimum 10).
      for (let i = 0; i < 5; i++) await pa.execute(ok);
      await pa.sync();
      for (let i = 0; i < 4; i++) await pb.execute(fail).catch(() => undefined);
      await sleep(40);
      expect(await view(pb)).toBe('closed');
      // The 10th call, a failure: 5/10 >= 0.5.
      await pa.execute(fail).catch(() => undefined);
      await openedOnce(name);
      const s = await stateOf(name);
      expect(s.x).toBe('1');
      expect(Number(s.fr)).toBe(0.5);
      await sees(pa, 'open');
      await sees(pb, 'open');
    } finally {
      await disconnect(a);
      await disconnect(b);
    }
  });

  it('a time window counts the calls of every process', async () => {
    const a = await connect(clientName);
    const b = await connect(clientName);
    const name = `time-${clientName}`;
    try {
      const options = {
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'time', sizeMs: 10_000, buckets: 5 },
        minimumCalls: 4,
        failureRate: 0.75,
        syncIntervalMs: 20,
      } as const;
      const pa = redisCircuitBreaker({ client: a, ...options });
      const pb = redisCircuitBreaker({ client: b, ...options });
      await pa.execute(ok);
      await pa.sync();
      await pb.execute(fail).catch(() => undefined);
      await pa.execute(fail).catch(() => undefined);
      await sleep(40);
      expect(await view(pa)).toBe('closed');
      await pb.execute(fail).catch(() => undefined);
      await openedOnce(name);
      expect((await stateOf(name)).x).toBe('1');
      await sees(pa, 'open');
    } finally {
      await disconnect(a);
      await disconnect(b);
    }
  });

  it('the closed happy path makes no round trip per call: outcomes go in batches', async () => {
    const client = await connect(clientName);
    const clock = new FakeClock();
    const name = `batch-${clientName}`;
    try {
      const p = redisCircuitBreaker({
        client,
        clock,
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'count', size: 1000 },
      });
      // The first call reads the state (the process knew none); the next 499 make no round trip.
      for (let i = 0; i < 500; i++) await p.execute(ok);
      expect(p._roundTrips).toBe(1);
      await clock.advance(99);
      expect(p._roundTrips).toBe(1);
      await clock.advance(1); // the exchange every syncIntervalMs (100) while calls run: the 500 outcomes in one
      await sleep(20);
      expect(p._roundTrips).toBe(2);
      expect((await stateOf(name)).n).toBe('500');
      for (let i = 0; i < 500; i++) await p.execute(ok);
      await clock.advance(100);
      await sleep(20);
      expect(p._roundTrips).toBe(3);
      expect((await stateOf(name)).n).toBe('1000');
      // Idle: one more tick finds no call, and the timer stops.
      await clock.advance(1_000);
      expect(p._roundTrips).toBe(3);
      expect(clock.pendingTimers).toBe(0);
    } finally {
      await disconnect(client);
    }
  });

  it('half-open: exactly one probe in the fleet; its success closes it for everyone', async () => {
    const clients = await Promise.all([connect(clientName), connect(clientName), connect(clientName)]);
    const name = `probe-${clientName}`;
    try {
      const options: Omit<RedisCircuitBreakerOptions, 'client'> = {
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 200,
        syncIntervalMs: 20,
      };
      const ps = clients.map((client) => redisCircuitBreaker({ client, ...options }));
      const closed: number[] = [];
      for (const [i, p] of ps.entries()) p.on('circuit.closed', () => closed.push(i));
      await (ps[0] as (typeof ps)[0]).execute(fail).catch(() => undefined);
      await sleep(250);
      let running = 0;
      let maxRunning = 0;
      let probes = 0;
      const slowOk = async () => {
        probes++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(50);
        running--;
        return 'probed';
      };
      const results = await Promise.allSettled(ps.flatMap((p) => [p.execute(slowOk), p.execute(slowOk)]));
      expect(probes).toBe(1);
      expect(maxRunning).toBe(1);
      const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected).toHaveLength(5);
      for (const r of rejected) expect(r.reason).toMatchObject({ code: 'ERR_CIRCUIT_OPEN', state: 'half_open' });
      await closedIn(name);
      await sleep(30);
      for (const p of ps) expect(await view(p)).toBe('closed');
      expect(closed.sort()).toEqual([0, 1, 2]);
      expect(await (ps[1] as (typeof ps)[0]).execute(ok)).toBe('ok');
    } finally {
      for (const c of clients) await disconnect(c);
    }
  });

  it('a hung prober loses its lease: another process probes, and the late outcome is ignored', async () => {
    const a = await connect(clientName);
    const b = await connect(clientName);
    const name = `hung-${clientName}`;
    try {
      const options: Omit<RedisCircuitBreakerOptions, 'client'> = {
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 100,
        halfOpenLeaseMs: 300,
        syncIntervalMs: 20,
      };
      const pa = redisCircuitBreaker({ client: a, ...options });
      const pb = redisCircuitBreaker({ client: b, ...options });
      const expired: number[] = [];
      pa.on('circuit.probe_expired', (e) => expired.push(e.probes));
      await pa.execute(fail).catch(() => undefined);
      await sleep(150);
      let release = (): void => undefined;
      const hung = pa.execute(
        () =>
          new Promise<never>((_, reject) => {
            release = () => reject(new Error('late failure'));
          }),
      );
      await until(async () => (await leaseOf(name)) > 0, 'the probe lease');
      expect(await pb.execute(ok).catch((e: unknown) => e)).toMatchObject({ state: 'half_open' });
      await until(async () => (await leaseOf(name)) < 0, 'the lease to expire');
      expect(await pb.execute(ok)).toBe('ok');
      await closedIn(name);
      await sleep(30);
      expect(await view(pb)).toBe('closed');
      release();
      await hung.catch(() => undefined);
      await until(() => expired.length > 0, 'circuit.probe_expired');
      expect(expired).toEqual([1]);
      expect(await view(pa)).toBe('closed');
      expect((await stateOf(name)).st).toBe('0');
    } finally {
      await disconnect(a);
      await disconnect(b);
    }
  });

  it('outcomes of calls admitted before it opened are dropped; reset() closes it for the fleet', async () => {
    const client = await connect(clientName);
    const name = `gen-${clientName}`;
    try {
      const p = redisCircuitBreaker({
        client,
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name,
        window: { kind: 'consecutive', threshold: 2 },
        syncIntervalMs: 20,
      });
      await p.sync();
      let finish = (): void => undefined;
      const late = p.execute(
        () =>
          new Promise<void>((_, reject) => {
            finish = () => reject(new Error('late'));
          }),
      );
      await p.execute(fail).catch(() => undefined);
      await p.execute(fail).catch(() => undefined);
      await openedOnce(name);
      await sleep(30);
      await sees(p, 'open');
      await p.reset();
      expect(await view(p)).toBe('closed');
      finish();
      await late.catch(() => undefined);
      await sleep(40);
      const s = await stateOf(name);
      expect(s.st).toBe('0');
      expect(s.c ?? '0').toBe('0');
    } finally {
      await disconnect(client);
    }
  });

  it('Redis paused or cut: calls take the fallback at once or within the store timeout, then back', async () => {
    const proxy = await redisProxy();
    const client = await connect(clientName, proxy.port);
    try {
      for (const mode of ['local', 'fail-open', 'fail-closed'] as const) {
        const name = `outage-${clientName}-${mode}`;
        const p = redisCircuitBreaker({
          client,
          keyPrefix: prefix,
          name,
          onStoreError: mode,
          window: { kind: 'consecutive', threshold: 1 },
          halfOpenAfterMs: 100,
          storeTimeoutMs: 40,
          storeRecheckMs: 50,
          syncIntervalMs: 10,
        });
        const fallbacks: string[] = [];
        let recovered = 0;
        p.on('store.fallback', (e) => fallbacks.push(e.reason));
        p.on('store.recovered', () => recovered++);
        await syncSoon(p);
        expect(await p.execute(ok)).toBe('ok');
        proxy.pause();
        // Calls never wait for Redis while closed: each completes in its own time.
        const deadline = performance.now() + 200;
        while (performance.now() < deadline) {
          const started = performance.now();
          const r = await p
            .execute(() => sleep(5))
            .then(
              () => 'ran',
              (e: unknown) => e,
            );
          expect(performance.now() - started).toBeLessThan(40 + 5 + SLACK_MS);
          if (mode === 'fail-closed' && r !== 'ran') expect(r).toMatchObject({ state: 'unavailable' });
        }
        expect(p.storeHealthy).toBe(false);
        expect(fallbacks.length).toBeGreaterThan(0);
        proxy.resume();
        for (let i = 0; i < 100 && !p.storeHealthy; i++) {
          await sleep(10);
          await p.execute(ok).catch(() => undefined);
        }
        expect(p.storeHealthy).toBe(true);
        expect(recovered).toBe(1);
        expect(await p.execute(ok)).toBe('ok');
      }
      // Half-open and paused: the probe's ask waits at most the store timeout.
      const p = redisCircuitBreaker({
        client,
        keyPrefix: prefix,
        name: `outage-probe-${clientName}`,
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 50,
        storeTimeoutMs: 40,
      });
      await syncSoon(p);
      await p.execute(fail).catch(() => undefined);
      await sleep(250); // well past halfOpenAfterMs: the failure reaches Redis (and opens it there) a round trip later, slower under load
      proxy.pause();
      const started = performance.now();
      expect(await p.execute(ok)).toBe('ok'); // the local breaker (onStoreError 'local') runs it
      expect(performance.now() - started).toBeLessThan(40 + SLACK_MS);
      proxy.resume();
    } finally {
      await disconnect(client);
      await proxy.close();
    }
  });
});

describe('redisCircuitBreaker options', () => {
  it('huge durations (a break of 1e300 ms, a lease of 1e20 ms) still work: Redis gets integers it accepts', async () => {
    const client = await connectIoredis();
    try {
      const p = redisCircuitBreaker({
        client,
        keyPrefix: prefix,
        storeTimeoutMs: SLOW_OK,
        name: 'huge',
        window: { kind: 'consecutive', threshold: 1 },
        halfOpenAfterMs: 1e300,
        halfOpenLeaseMs: 1e20,
      });
      await p.sync();
      await p.execute(fail).catch(() => undefined);
      await openedOnce('huge');
      await p.sync();
      expect(p.storeHealthy).toBe(true);
      const e = await p.execute(ok).catch((x: unknown) => x);
      expect(e).toMatchObject({ state: 'open' });
      expect((e as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(1e200);
    } finally {
      client.disconnect();
    }
  });

  it('hostile options: InvalidOptionsError at construction, naming every problem', async () => {
    const client = await connectIoredis();
    try {
      const bad = [
        undefined,
        {},
        { client, halfOpenProbes: 2 },
        { client, failureRate: Number.NaN },
        { client, window: { kind: 'count', size: -1 } },
        { client, window: { kind: 'consecutive' }, failureRate: 0.5 },
        { client, syncIntervalMs: 0 },
        { client, syncIntervalMs: Number.POSITIVE_INFINITY },
        { client, onStoreError: 'later' },
        { client, keyPrefix: 'x}' },
        { client, initialState: { version: 1 } },
        { client: 'redis://localhost', name: 'x' },
        { client, limit: 3 },
      ];
      for (const options of bad) {
        let error: unknown;
        try {
          redisCircuitBreaker(options as never);
        } catch (e) {
          error = e;
        }
        expect(isInvalidOptionsError(error), JSON.stringify(Object.keys(options ?? {}))).toBe(true);
        expect(String((error as Error).message)).toContain('redisCircuitBreaker');
      }
    } finally {
      client.disconnect();
    }
  });
});
