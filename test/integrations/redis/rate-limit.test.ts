import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidOptionsError,
  isRateLimitedError,
  Properties,
  PropertyKey,
  pipeline,
  type RateLimitedError,
  rateLimit,
  retry,
  timeout,
} from '../../../src/index.js';
import {
  type IoredisClient,
  type NodeRedisClient,
  type RedisRateLimitPolicy,
  redisRateLimit,
} from '../../../src/integrations/redis/index.js';
import { prometheusMetrics } from '../../../src/metrics/prometheus.js';
import { FakeClock } from '../../../src/testing/index.js';
import { CLIENTS, connect, deleteKeys, disconnect, keysWithTtl, redisProxy, sleep, uniquePrefix } from './harness.js';

const prefix = uniquePrefix('rl');
afterAll(() => deleteKeys(prefix));

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as RateLimitedError,
  );

/** Runs one call; 'ok' when admitted at once, or the rejection's reason. */
async function decide(limiter: RedisRateLimitPolicy, properties?: Properties): Promise<string> {
  try {
    await limiter.execute(() => undefined, properties === undefined ? undefined : { properties });
    return 'ok';
  } catch (e) {
    return isRateLimitedError(e) ? e.reason : `other: ${String(e)}`;
  }
}

describe.each(CLIENTS)('redisRateLimit with %s', (name) => {
  let client: IoredisClient | NodeRedisClient;
  const made: RedisRateLimitPolicy[] = [];
  const limiter = (options: Record<string, unknown>): RedisRateLimitPolicy => {
    // A store timeout far above loopback's: on a loaded machine a slow answer must not turn into a fallback
    // (fail-closed, so one would show as 'unavailable' instead of a silent local decision).
    const l = redisRateLimit({
      client,
      keyPrefix: prefix,
      name: `${name}-${Math.random()}`,
      storeTimeoutMs: 5_000,
      onStoreError: 'fail-closed',
      ...options,
    } as never);
    made.push(l);
    return l;
  };
  beforeAll(async () => {
    client = await connect(name);
  });
  afterEach(() => {
    for (const l of made.splice(0)) l.dispose();
  });
  afterAll(() => disconnect(client));

  it('token bucket: admits the burst, then refuses with the exact wait (Redis TIME), one key that expires', async () => {
    const l = limiter({ rate: 10, burst: 2 }); // a token every 100 ms
    const t0 = performance.now();
    expect(await decide(l)).toBe('ok');
    expect(await decide(l)).toBe('ok');
    const e = await refusal(l.execute(() => 1));
    const elapsed = performance.now() - t0;
    expect(e?.reason).toBe('limit');
    // Exact: 100 ms minus the time from the first call's decision to this one's, on Redis's clock.
    expect(e?.retryAfterMs).toBeLessThanOrEqual(100);
    expect(e?.retryAfterMs).toBeGreaterThanOrEqual(100 - elapsed - 1);
    expect(l.available).toBe(0);
    const keys = await keysWithTtl(`${prefix}{${l.name.replace(':', '%3A')}}`);
    expect(keys.size).toBe(1);
    const [key, ttl] = [...keys][0] as [string, number];
    expect(key.endsWith(':tb')).toBe(true);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(200);
    await sleep((e?.retryAfterMs ?? 0) + 5);
    expect(await decide(l)).toBe('ok');
  });

  it('sliding and fixed windows: the limit per window, the wait until tokens leave it', async () => {
    const sw = limiter({ algorithm: 'sliding-window', limit: 3, windowMs: 60_000, segments: 6 });
    for (let i = 0; i < 3; i++) expect(await decide(sw)).toBe('ok');
    const e = await refusal(sw.execute(() => 1));
    expect(e?.reason).toBe('limit');
    expect(e?.retryAfterMs).toBeGreaterThan(50_000); // the segment of the first calls leaves in 50-60 s
    expect(e?.retryAfterMs).toBeLessThanOrEqual(60_000);
    const fw = limiter({ algorithm: 'fixed-window', limit: 2, windowMs: 3_600_000 });
    expect(await decide(fw)).toBe('ok');
    expect(await decide(fw)).toBe('ok');
    const f = await refusal(fw.execute(() => 1));
    expect(f?.retryAfterMs).toBeLessThanOrEqual(3_600_000);
    // The window's keys expire when their newest segment leaves the window (-2: expired meanwhile, another test's).
    const keys = await keysWithTtl(prefix);
    for (const ttl of keys.values()) expect(ttl === -2 || ttl > 0).toBe(true);
  });

  it('extreme periods: a token every 30,000 years still decides, and its key gets a finite expiry', async () => {
    const l = limiter({ rate: 1, periodMs: 1e15, burst: 1 });
    expect(await decide(l)).toBe('ok');
    const e = await refusal(l.execute(() => 1));
    expect(e?.reason).toBe('limit');
    expect(e?.retryAfterMs).toBeGreaterThan(1e15 - 60_000);
    const w = limiter({ algorithm: 'fixed-window', limit: 1, windowMs: 1e15 });
    expect(await decide(w)).toBe('ok');
    expect(await decide(w)).toBe('limit');
  });

  it('queues calls on their reserved tokens, in order, and rejects past queue and queueTimeoutMs', async () => {
    const l = limiter({ rate: 20, burst: 1, queue: 2, queueTimeoutMs: 1_000 }); // a token every 50 ms
    const starts: number[] = [];
    const t0 = performance.now();
    const calls = [0, 1, 2].map((i) =>
      l.execute(() => {
        starts.push(i);
        return performance.now() - t0;
      }),
    );
    const full = await refusal(l.execute(() => 0));
    expect(full?.reason).toBe('queue_full');
    const times = await Promise.all(calls);
    expect(starts).toEqual([0, 1, 2]);
    // The reserved calls start no earlier than their tokens (two intervals for the third).
    expect(times[2]).toBeGreaterThanOrEqual(90);
    expect(l.queued).toBe(0);
    const slow = limiter({ rate: 1, periodMs: 10_000, burst: 1, queue: 5, queueTimeoutMs: 1_000 });
    expect(await decide(slow)).toBe('ok');
    const late = await refusal(slow.execute(() => 0));
    expect(late?.reason).toBe('queue_timeout');
    expect(late?.retryAfterMs).toBeGreaterThan(9_000);
  });

  it('a queued call leaves on abort with the reason, and dispose() rejects the queue', async () => {
    const l = limiter({ rate: 1, periodMs: 60_000, burst: 1, queue: 5 });
    expect(await decide(l)).toBe('ok');
    const ac = new AbortController();
    const aborted = l.execute(() => 1, { signal: ac.signal }).catch((e: unknown) => e);
    const disposedCall = l.execute(() => 1).catch((e: unknown) => e);
    while (l.queued < 2) await sleep(2);
    ac.abort(new Error('gone'));
    expect(((await aborted) as Error).message).toBe('gone');
    l.dispose();
    expect(((await disposedCall) as RateLimitedError).reason).toBe('disposed');
    expect(((await refusal(l.execute(() => 1))) as RateLimitedError).reason).toBe('disposed');
  });

  it('queued calls wait on the injected clock, one timer each, and leave none behind', async () => {
    const clock = new FakeClock();
    const l = limiter({ rate: 10, burst: 1, queue: 3, clock });
    const starts: number[] = [];
    expect(await decide(l)).toBe('ok');
    const calls = [1, 2, 3].map((i) => l.execute(() => starts.push(i)));
    while (l.queued < 3) await sleep(2);
    expect(clock.pendingTimers).toBe(3);
    await clock.advance(400); // Redis reserved them about 100, 200 and 300 ms ahead
    await Promise.all(calls);
    expect(starts).toEqual([1, 2, 3]);
    expect(clock.pendingTimers).toBe(0);
    const late = l.execute(() => 0).catch((e: unknown) => e);
    while (l.queued < 1) await sleep(2);
    l.dispose();
    expect(((await late) as RateLimitedError).reason).toBe('disposed');
    expect(clock.pendingTimers).toBe(0);
  });

  it('works inside a pipeline, whose listeners see its events (and an outer retry waits retryAfterMs)', async () => {
    // A token every 400 ms: a loaded machine's pause between the two calls does not refill it (at 20/s it did).
    const l = limiter({ rate: 1, periodMs: 400, burst: 1 });
    const p = pipeline(retry({ maxAttempts: 3, maxRetryAfterMs: 1_000 }), timeout(5_000), l);
    const rejected: number[] = [];
    p.on('rate_limit.rejected', (e) => rejected.push(e.retryAfterMs));
    expect(await p.execute(() => 'a')).toBe('a');
    const t0 = performance.now();
    expect(await p.execute(() => 'b')).toBe('b'); // refused once, retried after about 400 ms
    expect(performance.now() - t0).toBeGreaterThanOrEqual(rejected[0] ?? 0);
    expect(rejected).toHaveLength(1);
  });

  it('a limit per key: tenants do not share tokens; hostile keys are fine and stay apart', async () => {
    const TENANT = new PropertyKey<string>('tenant');
    const l = limiter({
      rate: 1,
      periodMs: 60_000,
      burst: 1,
      key: (ctx: { readonly properties: Properties }) => ctx.properties.get(TENANT) ?? '',
    });
    const odd = [
      'acme',
      'acme:',
      '{acme}',
      '}{',
      '%7B',
      '',
      'x'.repeat(1_000_000),
      'x'.repeat(999_999),
      '\uD800',
      '\uDC00',
      'line\nbreak\0nul',
      '🙂',
    ];
    for (const key of odd) {
      expect(await decide(l, new Properties().set(TENANT, key))).toBe('ok');
    }
    for (const key of odd) {
      expect(await decide(l, new Properties().set(TENANT, key))).toBe('limit');
    }
    // Every Redis key is short.
    for (const k of (await keysWithTtl(prefix)).keys()) expect(k.length).toBeLessThan(400);
  });

  it('cost per call: a cost function, a cost of 0, a cost above the burst rejected at once', async () => {
    const COST = new PropertyKey<number>('cost');
    const l = limiter({
      rate: 1,
      periodMs: 60_000,
      burst: 10,
      cost: (ctx: { readonly properties: Properties }) => ctx.properties.get(COST) ?? 1,
    });
    const props = (n: number) => new Properties().set(COST, n);
    expect(await decide(l, props(7))).toBe('ok');
    expect(await decide(l, props(4))).toBe('limit');
    expect(await decide(l, props(3))).toBe('ok');
    expect(await decide(l, props(0))).toBe('ok');
    const e = await refusal(l.execute(() => 1, { properties: props(11) }));
    expect(e?.reason).toBe('cost');
    expect(e?.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    const bad = await l.execute(() => 1, { properties: props(Number.NaN) }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(TypeError);
  });

  it('decides as the in-process limiter does (same options, same counts), for any sequence of costs', async () => {
    // A period so long that the time the test takes refills nothing: decisions then depend on counts only.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('token-bucket', 'sliding-window', 'fixed-window'),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: 12 }),
        async (algorithm, capacity, costs) => {
          const options =
            algorithm === 'token-bucket'
              ? { rate: 1, periodMs: 1e10, burst: capacity }
              : algorithm === 'sliding-window'
                ? { algorithm, limit: capacity, windowMs: 1e11, segments: 4 }
                : { algorithm, limit: capacity, windowMs: 1e11 };
          const COST = new PropertyKey<number>('c');
          const cost = (ctx: { readonly properties: Properties }) => ctx.properties.get(COST) ?? 1;
          const shared = limiter({ ...options, cost });
          const local = rateLimit({ ...options, cost, clock: new FakeClock() } as never);
          for (const c of costs) {
            const properties = new Properties().set(COST, c);
            const a = await decide(shared, properties);
            const b = await local.execute(() => 'ok', { properties }).catch((e: RateLimitedError) => e.reason);
            expect(a).toBe(b);
          }
          shared.dispose();
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('redisRateLimit when Redis is unavailable (a TCP proxy the test controls)', () => {
  const STORE_TIMEOUT = 50;

  describe.each(CLIENTS)('with %s', (name) => {
    it.each(['fail-open', 'fail-closed', 'local'] as const)(
      '%s: every call completes within the store timeout, with the fallback; back to Redis after',
      async (mode) => {
        const proxy = await redisProxy();
        const client = await connect(name, proxy.port);
        const l = redisRateLimit({
          client,
          keyPrefix: prefix,
          name: `outage-${name}-${mode}`,
          rate: 1,
          periodMs: 60_000,
          burst: 3,
          storeTimeoutMs: STORE_TIMEOUT,
          storeRecheckMs: 100,
          onStoreError: mode,
        });
        const fallbacks: string[] = [];
        const recovered: number[] = [];
        l.on('store.fallback', (e) => fallbacks.push(`${e.reason}/${e.fallback}`));
        l.on('store.recovered', (e) => recovered.push(e.downMs));
        try {
          expect(await decide(l)).toBe('ok'); // Redis: 2 tokens left
          const expected = mode === 'fail-closed' ? 'unavailable' : 'ok';
          for (const outage of ['pause', 'cut'] as const) {
            if (outage === 'pause') proxy.pause();
            else proxy.cut();
            await sleep(20);
            for (let i = 0; i < 6; i++) {
              const t0 = performance.now();
              const got = await decide(l);
              const took = performance.now() - t0;
              // 'local': the local limiter has its own burst of 3 (and refills 1 a minute): the 4th call and
              // later ones are refused by it.
              expect(got).toBe(mode === 'local' && (i >= 3 || outage === 'cut') ? 'limit' : expected);
              // The call's own time is ~0: the store timeout bounds it (plus scheduling slack, never a reconnect).
              expect(took).toBeLessThan(STORE_TIMEOUT + 150);
            }
            expect(l.storeHealthy).toBe(false);
            proxy.resume();
            // Back to Redis: a call sees Redis's state again (2 tokens, then 1, then none).
            const until = performance.now() + 5_000;
            while (!l.storeHealthy && performance.now() < until) {
              await sleep(25);
              await decide(l);
            }
            expect(l.storeHealthy).toBe(true);
          }
          // Each outage fell back with its reasons, and Redis came back twice.
          expect(fallbacks.some((f) => f.startsWith('timeout/'))).toBe(true);
          expect(fallbacks.some((f) => f.startsWith('unavailable/'))).toBe(true);
          expect(fallbacks.every((f) => f.endsWith(`/${mode}`))).toBe(true);
          expect(recovered.length).toBeGreaterThanOrEqual(2);
          // Decisions come from Redis: its bucket is empty by now (3 tokens, every probe after resume took one).
          expect(await decide(l)).toBe('limit');
        } finally {
          l.dispose();
          await disconnect(client);
          await proxy.close();
        }
      },
    );
  });

  it('a client that is not ready is skipped at once (no wait for the reconnect)', async () => {
    const client = await connect('ioredis');
    (client as unknown as { disconnect(): void }).disconnect();
    while ((client as { status: string }).status === 'ready') await sleep(2);
    const l = redisRateLimit({ client, keyPrefix: prefix, rate: 5, onStoreError: 'fail-closed' });
    const reasons: string[] = [];
    l.on('store.fallback', (e) => reasons.push(e.reason));
    const t0 = performance.now();
    const e = await refusal(l.execute(() => 1));
    expect(performance.now() - t0).toBeLessThan(20);
    expect(e?.reason).toBe('unavailable');
    expect(e?.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    expect(reasons).toEqual(['not_ready']);
  });

  it('an unexpected reply and a script error fall back too; no client error reaches the caller', async () => {
    const replies: unknown[] = [['x', '1'], 'nope', null];
    const l = redisRateLimit({
      client: {
        ready: () => true,
        evalSha: async () => replies.shift(),
        eval: async () => undefined,
      },
      rate: 5,
      onStoreError: 'fail-open',
    });
    const reasons: string[] = [];
    l.on('store.fallback', (e) => reasons.push(e.reason));
    for (let i = 0; i < 3; i++) expect(await l.execute(() => 'ran')).toBe('ran');
    // Redis answered (the store is healthy), with nonsense: each call falls back, reason 'error'.
    expect(reasons).toEqual(['error', 'error', 'error']);
    const failing = redisRateLimit({
      client: { ready: () => true, evalSha: () => Promise.reject(new Error('ECONNRESET')), eval: async () => 1 },
      rate: 5,
      onStoreError: 'fail-closed',
      storeRecheckMs: 0,
    });
    const e = await refusal(failing.execute(() => 1));
    expect(e?.reason).toBe('unavailable');
  });
});

describe('redisRateLimit options', () => {
  const scripting = { ready: () => true, evalSha: async () => ['0', '1'], eval: async () => ['0', '1'] };
  const problems = (options: unknown): string[] => {
    try {
      redisRateLimit(options as never);
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidOptionsError);
      return (e as InvalidOptionsError).problems.map((p) => p.option);
    }
    return [];
  };

  it('reports every invalid option at construction, with the rate limiter rules and the store ones', () => {
    expect(problems({ client: scripting, rate: 10 })).toEqual([]);
    expect(problems(undefined)).toEqual(['rate', 'client']);
    expect(problems({ rate: 10 })).toEqual(['client']);
    expect(problems({ client: {}, rate: 10 })).toEqual(['client']);
    expect(problems({ client: scripting, rate: Number.NaN })).toEqual(['rate']);
    expect(problems({ client: scripting, rate: -1, burst: 0 })).toEqual(['rate', 'burst']);
    expect(problems({ client: scripting, rate: 10, burst: 5, cost: 6 })).toEqual(['cost']);
    expect(problems({ client: scripting, rate: 10, storeTimeoutMs: 0, storeRecheckMs: -1 })).toEqual([
      'storeTimeoutMs',
      'storeRecheckMs',
    ]);
    expect(problems({ client: scripting, rate: 10, storeTimeoutMs: Number.NaN })).toEqual(['storeTimeoutMs']);
    expect(problems({ client: scripting, rate: 10, onStoreError: 'ignore' })).toEqual(['onStoreError']);
    expect(problems({ client: scripting, rate: 10, keyPrefix: 'a{b}' })).toEqual(['keyPrefix']);
    expect(problems({ client: scripting, rate: 10, keyPrefix: 'x'.repeat(101) })).toEqual(['keyPrefix']);
    expect(problems({ client: scripting, rate: 10, key: 'tenant' })).toEqual(['key']);
    expect(problems({ client: scripting, rate: 10, maxLocalKeys: 5 })).toEqual(['maxLocalKeys']);
    expect(problems({ client: scripting, rate: 10, key: () => 'a', maxLocalKeys: 0 })).toEqual(['maxLocalKeys']);
    expect(problems({ client: scripting, algorithm: 'sliding-window', limit: 0, windowMs: -5 })).toEqual([
      'limit',
      'windowMs',
    ]);
    expect(problems({ client: scripting, rate: 10, surprise: true })).toEqual(['surprise']);
  });

  it('a key function that throws rejects the call with what it threw, a non-string with a TypeError', async () => {
    const boom = new Error('no tenant');
    const l = redisRateLimit({
      client: scripting,
      rate: 10,
      key: () => {
        throw boom;
      },
    });
    expect(await l.execute(() => 1).catch((e: unknown) => e)).toBe(boom);
    const m = redisRateLimit({ client: scripting, rate: 10, key: () => 42 as unknown as string });
    expect(await m.execute(() => 1).catch((e: unknown) => e)).toBeInstanceOf(TypeError);
  });
});

describe('redisRateLimit metrics', () => {
  it('counts store.fallback with its reason, store.recovered, and the local limiter’s rejections', async () => {
    const registry = new Registry();
    let ready = false;
    const l = redisRateLimit({
      client: { ready: () => ready, evalSha: async () => ['0', '4'], eval: async () => ['0', '4'] },
      name: 'shared',
      rate: 1,
      periodMs: 60_000,
      burst: 1,
    });
    const m = prometheusMetrics({ registry });
    m.attach(l);
    await l.execute(() => 1); // not ready: the local limiter admits
    await l.execute(() => 1).catch(() => undefined); // not ready: the local limiter refuses
    ready = true;
    await l.execute(() => 1); // Redis answers again
    const text = await registry.metrics();
    expect(text).toContain(
      'bulwark_events_total{policy="shared",operation="default",event="store.fallback",reason="not_ready"} 2',
    );
    expect(text).toContain('bulwark_events_total{policy="shared",operation="default",event="store.recovered"} 1');
    expect(text).toContain(
      'bulwark_events_total{policy="shared",operation="default",event="rate_limit.rejected",reason="limit"} 1',
    );
    m.close();
  });
});
