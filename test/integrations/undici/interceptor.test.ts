import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher, Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitOpenError,
  circuitBreaker,
  constant,
  fallback,
  handleResults,
  InvalidOptionsError,
  type PipelinePolicy,
  type Policy,
  pipeline,
  type RetryAttemptEvent,
  retry,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import { HttpStatusError, interceptor, type UndiciInterceptorOptions } from '../../../src/integrations/undici/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { advanceUntil, type Hit, Resources, rejectionOf, reply, startServer, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.closeAll());

/** An Agent composed with the interceptor, closed after the test. */
function agentWith(options: UndiciInterceptorOptions, agentOptions?: Agent.Options): Dispatcher {
  const agent = resources.add(new Agent(agentOptions));
  return agent.compose(interceptor(options));
}

/** A server that answers `statuses[i]` to its i-th request (then the last one), with a body naming the hit. */
async function sequence(statuses: number[], headers: (hit: Hit) => Record<string, string> = () => ({})) {
  return resources.add(
    await startServer((_req, res, hit) => {
      const status = statuses[Math.min(hit.n, statuses.length) - 1] as number;
      reply(res, status, `${status} #${hit.n} ${hit.body.toString()}`, headers(hit));
    }),
  );
}

/** A retry on a fake clock, recording its retry.attempt events. */
function recordedRetry(clock: FakeClock, backoffMs: number, maxAttempts = 3) {
  const policy = retry({ clock, backoff: constant(backoffMs), maxAttempts });
  const events: RetryAttemptEvent[] = [];
  policy.on('retry.attempt', (e) => events.push(e));
  return { policy, events };
}

describe('undici interceptor', { timeout: 5_000 }, () => {
  describe('which requests are retried', () => {
    it('retries a GET on 503 and delivers the final 200 with its body', async () => {
      const server = await sequence([503, 503, 200]);
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 1_000);
      const agent = agentWith({ policy });

      const pending = agent.request({ origin: server.origin, path: '/a', method: 'GET' });
      await advanceUntil(clock, 1_000, () => server.hits.length === 3, '3 hits');
      const res = await pending;

      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #3 ');
      expect(server.hits.map((h) => `${h.method} ${h.url}`)).toEqual(['GET /a', 'GET /a', 'GET /a']);
      expect(events.map((e) => [e.attempt, e.delayMs])).toEqual([
        [1, 1_000],
        [2, 1_000],
      ]);
      const first = events[0]?.outcome;
      expect(first?.ok).toBe(false);
      const error = first?.ok === false ? first.error : undefined;
      expect(error).toBeInstanceOf(HttpStatusError);
      expect((error as HttpStatusError).status).toBe(503);
      expect((error as HttpStatusError).retryable).toBe(true);
    });

    it('delivers the last failed response (its status and body) when the attempts run out', async () => {
      const server = await sequence([503]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 10);
      const agent = agentWith({ policy });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 10, () => server.hits.length === 3, '3 hits');
      const res = await pending;

      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('503 #3 ');
      expect(server.hits).toHaveLength(3);
      expect(clock.pendingTimers).toBe(0);
    });

    it('does not retry a POST on 503: one hit, the caller gets the 503 with its body', async () => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 1_000);
      const agent = agentWith({ policy });

      const res = await agent.request({ origin: server.origin, path: '/pay', method: 'POST', body: 'amount=5' });

      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('503 #1 amount=5');
      expect(server.hits).toHaveLength(1);
      expect(server.hits[0]?.headers['idempotency-key']).toBeUndefined();
      expect(events).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
    });

    it('retries a POST carrying an Idempotency-Key, sending the same key and body on every attempt', async () => {
      const server = await sequence([503, 502, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });
      const headers = { 'Idempotency-Key': 'order-42', 'content-type': 'text/plain' };

      const pending = agent.request({ origin: server.origin, path: '/orders', method: 'POST', headers, body: 'buy' });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      const res = await pending;

      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #3 buy');
      expect(server.hits.map((h) => h.headers['idempotency-key'])).toEqual(['order-42', 'order-42', 'order-42']);
      expect(server.hits.map((h) => h.body.toString())).toEqual(['buy', 'buy', 'buy']);
      // The caller's headers object is left as it was.
      expect(headers).toEqual({ 'Idempotency-Key': 'order-42', 'content-type': 'text/plain' });
    });

    it('generateIdempotencyKeys: true gives each POST one key, reused across its attempts, different between requests', async () => {
      const server = await sequence([503, 200, 503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy, generateIdempotencyKeys: true });
      const headers = { 'x-tenant': 't1' };

      const first = agent.request({ origin: server.origin, path: '/', method: 'POST', headers, body: 'one' });
      await advanceUntil(clock, 100, () => server.hits.length === 2, '2 hits');
      const r1 = await first;
      expect(await r1.body.text()).toBe('200 #2 one');

      const second = agent.request({ origin: server.origin, path: '/', method: 'POST', headers, body: 'two' });
      await advanceUntil(clock, 100, () => server.hits.length === 4, '4 hits');
      const r2 = await second;
      expect(await r2.body.text()).toBe('200 #4 two');

      const keys = server.hits.map((h) => h.headers['idempotency-key']);
      expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(keys[1]).toBe(keys[0]);
      expect(keys[2]).toMatch(/^[0-9a-f-]{36}$/);
      expect(keys[3]).toBe(keys[2]);
      expect(keys[2]).not.toBe(keys[0]);
      expect(server.hits.map((h) => h.headers['x-tenant'])).toEqual(['t1', 't1', 't1', 't1']);
      expect(server.hits.map((h) => h.body.toString())).toEqual(['one', 'one', 'two', 'two']);
      expect(headers).toEqual({ 'x-tenant': 't1' });
    });

    it('generateIdempotencyKeys: true keeps a key the caller set (flat array headers too)', async () => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy, generateIdempotencyKeys: true });

      const pending = agent.request({
        origin: server.origin,
        path: '/',
        method: 'POST',
        headers: ['x-a', '1', 'IDEMPOTENCY-KEY', 'mine'],
        body: 'b',
      });
      await advanceUntil(clock, 100, () => server.hits.length === 2, '2 hits');
      expect((await pending).statusCode).toBe(200);
      expect(server.hits.map((h) => h.headers['idempotency-key'])).toEqual(['mine', 'mine']);
      expect(server.hits.map((h) => h.headers['x-a'])).toEqual(['1', '1']);
    });

    it('PATCH: not retried without a key, retried with the same generated key under generateIdempotencyKeys: true', async () => {
      const plain = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });
      const res = await agent.request({ origin: plain.origin, path: '/', method: 'PATCH', body: 'p' });
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('503 #1 p');
      expect(plain.hits).toHaveLength(1);

      const keyed = await sequence([503, 503, 200]);
      const keyedAgent = agentWith({ policy, generateIdempotencyKeys: true });
      const pending = keyedAgent.request({ origin: keyed.origin, path: '/', method: 'PATCH', body: 'p' });
      await advanceUntil(clock, 100, () => keyed.hits.length === 3, '3 hits');
      const ok = await pending;
      expect(ok.statusCode).toBe(200);
      expect(await ok.body.text()).toBe('200 #3 p');
      const keys = keyed.hits.map((h) => h.headers['idempotency-key']);
      expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(keys).toEqual([keys[0], keys[0], keys[0]]);
      expect(keyed.hits.map((h) => h.method)).toEqual(['PATCH', 'PATCH', 'PATCH']);
    });

    // Regression: honouring a caller's Idempotency-Key was always on; a server that ignores the header got retries.
    it("honorIdempotencyKey: false: a caller's Idempotency-Key no longer makes a POST retryable", async () => {
      const server = await sequence([503, 503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy, honorIdempotencyKey: false });
      const headers = { 'idempotency-key': 'order-7' };

      const post = await agent.request({ origin: server.origin, path: '/', method: 'POST', headers, body: 'b' });
      expect([post.statusCode, await post.body.text()]).toEqual([503, '503 #1 b']);
      expect(server.hits).toHaveLength(1);
      expect(server.hits[0]?.headers['idempotency-key']).toBe('order-7'); // still sent, only not relied on
      expect(clock.pendingTimers).toBe(0);

      // An idempotent method is still retried; so is a POST the caller marks with retryNonIdempotent.
      const pending = agent.request({
        origin: server.origin,
        path: '/',
        method: 'POST',
        headers,
        body: 'c',
        bulwark: { retryNonIdempotent: true },
      });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      expect((await pending).statusCode).toBe(200);
    });

    // Regression: any Idempotency-Key header, an empty one included, made a POST retryable.
    it.each([
      ['an empty', { 'idempotency-key': '' }],
      ['a blank', ['Idempotency-Key', '  ']],
    ])('%s Idempotency-Key does not make a POST retryable (and is not replaced)', async (_name, headers) => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy, generateIdempotencyKeys: true });
      const res = await agent.request({
        origin: server.origin,
        path: '/',
        method: 'POST',
        headers: headers as never,
        body: 'b',
      });
      expect([res.statusCode, await res.body.text()]).toEqual([503, '503 #1 b']);
      expect(server.hits).toHaveLength(1);
      expect(clock.pendingTimers).toBe(0);
    });

    it('the old idempotencyKey option is refused, naming generateIdempotencyKeys; a contradiction is refused', () => {
      expect(() => interceptor({ policy: retry(), idempotencyKey: true } as never)).toThrow(
        /^undici interceptor: invalid options\n {2}- idempotencyKey: expected generateIdempotencyKeys instead \(renamed: it generates a key for every POST and PATCH without one; honorIdempotencyKey turns off honouring a caller's key\), got true$/,
      );
      expect(() => interceptor({ policy: retry(), idempotencyKey: false } as never)).toThrow(/generateIdempotencyKeys/);
      expect(() => interceptor({ policy: retry(), generateIdempotencyKeys: true, honorIdempotencyKey: false })).toThrow(
        /- honorIdempotencyKey: expected true \(or unset\) with generateIdempotencyKeys: true: a generated key is only worth sending if it makes the request retryable, got false/,
      );
    });

    it('bulwark: { retryNonIdempotent: true } retries a POST without adding a key', async () => {
      const server = await sequence([503, 503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const pending = agent.request({
        origin: server.origin,
        path: '/',
        method: 'POST',
        body: Buffer.from('bytes'),
        bulwark: { retryNonIdempotent: true },
      });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #3 bytes');
      expect(server.hits.map((h) => h.body.toString())).toEqual(['bytes', 'bytes', 'bytes']);
      expect(server.hits.map((h) => h.headers['idempotency-key'])).toEqual([undefined, undefined, undefined]);
    });

    it('methods: [...] replaces the set of methods retried without a key', async () => {
      const server = await sequence([503, 503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy, methods: ['post'] });

      const get = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(get.statusCode).toBe(503);
      await get.body.dump();
      expect(server.hits).toHaveLength(1);

      const pending = agent.request({ origin: server.origin, path: '/', method: 'POST', body: 'x' });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      expect((await pending).statusCode).toBe(200);
      expect(server.hits.map((h) => h.method)).toEqual(['GET', 'POST', 'POST']);
    });
  });

  describe('Retry-After', () => {
    it('in seconds sets the delay (longer than the backoff)', async () => {
      const server = await sequence([503, 200], (hit) => (hit.n === 1 ? { 'retry-after': '7' } : {}));
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');
      expect(events.map((e) => e.delayMs)).toEqual([7_000]);
      await clock.advance(6_999);
      expect(server.hits).toHaveLength(1);
      await advanceUntil(clock, 1, () => server.hits.length === 2, '2 hits', 10);
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #2 ');
      const error = events[0]?.outcome.ok === false ? events[0].outcome.error : undefined;
      expect((error as HttpStatusError).retryAfterMs).toBe(7_000);
    });

    it('as an HTTP date is read against the injected wallClock (429 too)', async () => {
      const wallNow = Date.UTC(2030, 0, 1, 12, 0, 0);
      const server = await sequence([429, 200], (hit) =>
        hit.n === 1 ? { 'retry-after': new Date(wallNow + 5_000).toUTCString() } : {},
      );
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy, wallClock: () => wallNow });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 1_000, () => server.hits.length === 2, '2 hits');
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #2 ');
      expect(events.map((e) => e.delayMs)).toEqual([5_000]);
    });

    it.each([
      ['a past date', new Date(Date.UTC(2000, 0, 1)).toUTCString()],
      ['garbage', 'soon'],
      ['zero', '0'],
    ])('%s falls back to the backoff', async (_name, value) => {
      const server = await sequence([503, 200], (hit) => (hit.n === 1 ? { 'retry-after': value } : {}));
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 250);
      const agent = agentWith({ policy, wallClock: () => Date.UTC(2030, 0, 1) });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 250, () => server.hits.length === 2, '2 hits');
      expect((await pending).statusCode).toBe(200);
      expect(events.map((e) => e.delayMs)).toEqual([250]);
    });

    it.each([
      [503, '5', 4_999],
      [429, '61', undefined],
    ])("over the retry's maxRetryAfterMs: the %i response is returned at once (1 hit)", async (status, value, max) => {
      const server = await sequence([status, 200], () => ({ 'retry-after': value }));
      const clock = new FakeClock();
      const policy = retry({ clock, backoff: constant(100), ...(max === undefined ? {} : { maxRetryAfterMs: max }) });
      const events: string[] = [];
      policy.on('retry.attempt', (e) => events.push(`attempt ${e.delayMs}`));
      policy.on('retry.exhausted', (e) => events.push(`exhausted ${e.reason}`));
      const agent = agentWith({ policy });

      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(status);
      expect(res.headers['retry-after']).toBe(value);
      expect(await res.body.text()).toBe(`${status} #1 `);
      expect(server.hits).toHaveLength(1);
      expect(events).toEqual(['exhausted stopped']);
      expect(clock.pendingTimers).toBe(0);
    });

    // Regression: the interceptor had a maxRetryAfterMs of its own (60 s); raising only the retry's had no effect.
    it("the retry's maxRetryAfterMs is the one limit: raising it lets a 90 s Retry-After be waited for", async () => {
      const server = await sequence([503, 200], (hit) => (hit.n === 1 ? { 'retry-after': '90' } : {}));
      const clock = new FakeClock();
      const policy = retry({ clock, backoff: constant(100), maxRetryAfterMs: 120_000 });
      const delays: number[] = [];
      policy.on('retry.attempt', (e) => delays.push(e.delayMs));
      const agent = agentWith({ policy });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 10_000, () => server.hits.length === 2, '2 hits');
      const res = await pending;
      expect([res.statusCode, await res.body.text()]).toEqual([200, '200 #2 ']);
      expect(delays).toEqual([90_000]);
    });

    it("the interceptor's old maxRetryAfterMs is refused, naming the retry's", () => {
      expect(() => interceptor({ policy: retry(), maxRetryAfterMs: 10_000 } as never)).toThrow(
        'undici interceptor: invalid options\n  - maxRetryAfterMs: expected maxRetryAfterMs on the retry policy instead (retry({ maxRetryAfterMs })): it is the one limit on Retry-After; a longer one makes retry give up at once and the caller gets that response, got 10000',
      );
    });

    // Regression: 400 digits parsed to Infinity, which retry ignored: with no limit the 503 was retried on the backoff.
    it.each([
      ['400 digits', '9'.repeat(400)],
      ['2^53 ms and more', '9007199254741'],
    ])('a Retry-After too large to represent (%s) means do not retry now, even with no limit', async (_n, value) => {
      const server = await sequence([503, 200], () => ({ 'retry-after': value }));
      const clock = new FakeClock();
      const policy = retry({ clock, backoff: constant(100), maxRetryAfterMs: Number.POSITIVE_INFINITY });
      const seen: unknown[] = [];
      policy.on('retry.attempt', (e) => seen.push(e));
      const errors: unknown[] = [];
      policy.on('execution.completed', (e) => errors.push(e.result === 'success' ? undefined : e.error));
      const agent = agentWith({ policy });

      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect([res.statusCode, await res.body.text()]).toEqual([503, '503 #1 ']);
      expect(server.hits).toHaveLength(1);
      expect(seen).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ status: 503, retryAfterMs: Number.POSITIVE_INFINITY, retryable: false });
    });

    // Regression: Date.parse read '2.5.2030' as 5 Feb 2030 (months away), so a 503 waited until then.
    it.each(['2.5.2030', 'May 2030'])('a lax date %j is no hint: the backoff decides', async (value) => {
      const server = await sequence([503, 200], (hit) => (hit.n === 1 ? { 'retry-after': value } : {}));
      const clock = new FakeClock();
      const policy = retry({ clock, backoff: constant(250), maxRetryAfterMs: Number.POSITIVE_INFINITY });
      const delays: number[] = [];
      policy.on('retry.attempt', (e) => delays.push(e.delayMs));
      const agent = agentWith({ policy, wallClock: () => Date.UTC(2030, 0, 1) });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 250, () => server.hits.length === 2, '2 hits');
      expect((await pending).statusCode).toBe(200);
      expect(delays).toEqual([250]);
    });

    it("exactly the retry's maxRetryAfterMs is still waited for", async () => {
      const server = await sequence([503, 200], () => ({ 'retry-after': '5' }));
      const clock = new FakeClock();
      const policy = retry({ clock, backoff: constant(100), maxRetryAfterMs: 5_000 });
      const events: RetryAttemptEvent[] = [];
      policy.on('retry.attempt', (e) => events.push(e));
      const agent = agentWith({ policy });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 1_000, () => server.hits.length === 2, '2 hits');
      expect((await pending).statusCode).toBe(200);
      expect(events.map((e) => e.delayMs)).toEqual([5_000]);
    });
  });

  describe('request bodies', () => {
    it('a stream body is sent once: a 503 is returned after 1 hit, and the server got the whole body', async () => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const res = await agent.request({
        origin: server.origin,
        path: '/upload',
        method: 'PUT',
        body: Readable.from([Buffer.from('part-1|'), Buffer.from('part-2|'), Buffer.from('part-3')]),
      });
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('503 #1 part-1|part-2|part-3');
      expect(server.hits).toHaveLength(1);
      expect(server.hits[0]?.body.toString()).toBe('part-1|part-2|part-3');
      expect(events).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits).toHaveLength(1);
    });

    it('a stream body is not replayed after a connection reset either', async () => {
      const server = resources.add(
        await startServer((req, res, hit) => {
          if (hit.n === 1) req.socket.resetAndDestroy();
          else reply(res, 200, hit.body.toString());
        }),
      );
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const error = await rejectionOf(
        agent.request({ origin: server.origin, path: '/', method: 'PUT', body: Readable.from(['a', 'b']) }),
      );
      expect((error as { code?: string }).code).toBe('ECONNRESET');
      expect(events).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits).toHaveLength(1);
      expect(server.hits[0]?.body.toString()).toBe('ab');
    });

    it('bulwark: { body } makes a stream body retryable, with a fresh complete body on every attempt', async () => {
      const server = await sequence([503, 500, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });
      const calls: number[] = [];

      const pending = agent.request({
        origin: server.origin,
        path: '/upload',
        method: 'PUT',
        body: Readable.from(['unused']),
        bulwark: {
          body: (attempt) => {
            calls.push(attempt);
            return Readable.from([Buffer.from(`attempt-${attempt}:`), Buffer.from('x'.repeat(100_000))]);
          },
        },
      });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(calls).toEqual([1, 2, 3]);
      expect(server.hits.map((h) => h.body.toString())).toEqual(
        [1, 2, 3].map((a) => `attempt-${a}:${'x'.repeat(100_000)}`),
      );
      expect(server.hits.every((h) => h.bodyComplete)).toBe(true);
      expect((await res.body.text()).length).toBe('200 #3 attempt-3:'.length + 100_000);
    });

    it('a Uint8Array body is replayed byte for byte', async () => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });
      const bytes = new Uint8Array([0, 1, 2, 250, 255]);

      const pending = agent.request({ origin: server.origin, path: '/', method: 'PUT', body: bytes });
      await advanceUntil(clock, 100, () => server.hits.length === 2, '2 hits');
      expect((await pending).statusCode).toBe(200);
      expect(server.hits.map((h) => [...h.body])).toEqual([
        [0, 1, 2, 250, 255],
        [0, 1, 2, 250, 255],
      ]);
    });
  });

  describe('responses', () => {
    it('streams a 10 MiB response to the caller intact through a retry pipeline', async () => {
      const size = 10 * 1024 * 1024;
      const payload = randomBytes(size);
      const expected = createHash('sha256').update(payload).digest('hex');
      const server = resources.add(
        await startServer((_req, res, hit) => {
          if (hit.n === 1) {
            reply(res, 503, 'try again');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          // 64 KiB writes with backpressure.
          let offset = 0;
          const write = (): void => {
            while (offset < size) {
              const chunk = payload.subarray(offset, offset + 65_536);
              offset += chunk.length;
              if (!res.write(chunk)) {
                res.once('drain', write);
                return;
              }
            }
            res.end();
          };
          write();
        }),
      );
      const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), circuitBreaker()) });

      const res = await agent.request({ origin: server.origin, path: '/big', method: 'GET' });
      expect(res.statusCode).toBe(200);
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      expect(bytes).toBe(size);
      expect(hash.digest('hex')).toBe(expected);
      expect(server.hits).toHaveLength(2);
    });

    it('1,000 requests each retried once through connections: 10 leave at most 10 sockets open', {
      timeout: 20_000,
    }, async () => {
      const seen = new Map<string, number>();
      const server = resources.add(
        await startServer((req, res) => {
          const n = (seen.get(req.url ?? '') ?? 0) + 1;
          seen.set(req.url ?? '', n);
          if (n === 1) reply(res, 503, `busy ${req.url} ${'-'.repeat(2_000)}`);
          else reply(res, 200, `ok ${req.url}`);
        }),
      );
      const agent = agentWith({ policy: retry({ backoff: constant(0) }) }, { connections: 10 });

      const bodies = await Promise.all(
        Array.from({ length: 1_000 }, async (_, i) => {
          const res = await agent.request({ origin: server.origin, path: `/r${i}`, method: 'GET' });
          return `${res.statusCode} ${await res.body.text()}`;
        }),
      );

      expect(bodies).toEqual(Array.from({ length: 1_000 }, (_, i) => `200 ok /r${i}`));
      expect(server.hits).toHaveLength(2_000);
      expect([...seen.values()].every((n) => n === 2)).toBe(true);
      expect(server.sockets.open).toBeLessThanOrEqual(10);
      // The discarded 503 bodies were drained, not dropped with their sockets.
      expect(server.sockets.opened).toBeLessThanOrEqual(10);
    });

    it('a large failed body: discarded when retried, delivered intact when it is the answer', async () => {
      const big = Buffer.alloc(3 * 1024 * 1024, 'e');
      const server = resources.add(
        await startServer((_req, res, hit) => {
          if (hit.n === 2) reply(res, 200, 'small ok');
          else {
            res.writeHead(503, { 'content-length': String(big.length) });
            res.end(big);
          }
        }),
      );
      const agent = agentWith({ policy: retry({ backoff: constant(0) }) });

      const get = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(get.statusCode).toBe(200);
      expect(await get.body.text()).toBe('small ok');
      expect(server.hits).toHaveLength(2);

      const post = await agent.request({ origin: server.origin, path: '/', method: 'POST', body: 'x' });
      expect(post.statusCode).toBe(503);
      const received = Buffer.from(await post.body.arrayBuffer());
      expect(received.length).toBe(big.length);
      expect(received.equals(big)).toBe(true);
      expect(server.hits).toHaveLength(3);
    });

    it("a request without a body is dispatched with the caller's own options, not a copy", async () => {
      // A copy cost a spread per request, and undici reads a copy's properties several times slower.
      const seen: Dispatcher.DispatchOptions[] = [];
      const dispatch = (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean => {
        seen.push(opts);
        const controller = {
          aborted: false,
          paused: false,
          reason: null,
          abort() {},
          pause() {},
          resume() {},
        } as unknown as Dispatcher.DispatchController;
        queueMicrotask(() => {
          handler.onRequestStart?.(controller, {});
          handler.onResponseStart?.(controller, 200, {}, 'OK');
          handler.onResponseEnd?.(controller, {});
        });
        return true;
      };
      const intercepted = interceptor({ policy: pipeline(retry(), circuitBreaker()) })(
        dispatch as Dispatcher['dispatch'],
      );
      for (const opts of [
        { origin: 'http://127.0.0.1:1', path: '/', method: 'GET' },
        { origin: 'http://127.0.0.1:1', path: '/', method: 'GET', body: null },
      ] as Dispatcher.DispatchOptions[]) {
        const status = await new Promise<number>((resolve, reject) => {
          let code = 0;
          intercepted(opts, {
            onResponseStart: (_c, statusCode) => {
              code = statusCode;
            },
            onResponseEnd: () => resolve(code),
            onResponseError: (_c, error) => reject(error),
          });
        });
        expect(status).toBe(200);
        expect(seen.at(-1)).toBe(opts);
      }
    });

    it('request() on a raw-header response: the same headers, raw, as without the interceptor', async () => {
      const server = resources.add(
        await startServer((_req, res) => {
          res.setHeader('X-Mixed-Case', 'v');
          res.setHeader('set-cookie', ['a=1', 'b=2']);
          res.end('ok');
        }),
      );
      const agent = agentWith({ policy: pipeline(retry(), circuitBreaker(), timeout(5_000)) });
      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.headers['x-mixed-case']).toBe('v');
      expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(await res.body.text()).toBe('ok');
    });

    it("retry({ onExhausted: 'wrap' }): the caller still gets the last failed response", async () => {
      const server = await sequence([502]);
      const agent = agentWith({ policy: retry({ backoff: constant(0), maxAttempts: 2, onExhausted: 'wrap' }) });
      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(502);
      expect(await res.body.text()).toBe('502 #2 ');
      expect(server.hits).toHaveLength(2);
    });

    /** The order in which the caller's handler saw the response start and the policy settled, for one GET. */
    async function orderUnder(policy: PipelinePolicy, statuses: number[]): Promise<string[]> {
      const server = await sequence(statuses);
      const agent = agentWith({ policy });
      const order: string[] = [];
      policy.on('execution.completed', () => order.push('policy settled'));
      await new Promise<void>((resolve, reject) => {
        agent.dispatch(
          { origin: server.origin, path: '/', method: 'GET' },
          {
            onRequestStart: () => {},
            onResponseStart: (_c, status) => void order.push(`response ${status}`),
            onResponseData: () => {},
            onResponseEnd: () => resolve(),
            onResponseError: (_c, error) => reject(error),
          },
        );
      });
      return order;
    }

    it('streams a success at once when no policy of the chain can judge it (not held until the policy settles)', async () => {
      const policy = pipeline(
        retry({ backoff: constant(0), maxAttempts: 3 }),
        circuitBreaker(),
        timeout(5_000),
        bulkhead({ limit: 10 }),
      );
      expect(await orderUnder(policy, [200])).toEqual(['response 200', 'policy settled']);
    });

    it('still retries a failed status under that chain, and streams the final success', async () => {
      const policy = pipeline(retry({ backoff: constant(0), maxAttempts: 3 }), circuitBreaker(), timeout(5_000));
      // The caller saw only the final response, before the retry loop settled.
      expect((await orderUnder(policy, [503, 200]))[0]).toBe('response 200');
    });

    it('holds a success until the policy settles when a policy of the chain may judge results', async () => {
      const judging = pipeline(retry({ backoff: constant(0), maxAttempts: 2, handle: handleResults(() => false) }));
      expect(await orderUnder(judging, [200])).toEqual(['policy settled', 'response 200']);
      const withFallback = pipeline(fallback({ value: 'x' }), retry({ backoff: constant(0) }));
      expect(await orderUnder(withFallback, [200])).toEqual(['policy settled', 'response 200']);
    });
  });

  describe('network errors', () => {
    it('ECONNRESET before any response is retried for a GET', async () => {
      const server = resources.add(
        await startServer((req, res, hit) => {
          if (hit.n < 3) req.socket.resetAndDestroy();
          else reply(res, 200, 'finally');
        }),
      );
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('finally');
      expect(events.map((e) => (e.outcome.ok ? 'ok' : (e.outcome.error as { code?: string }).code))).toEqual([
        'ECONNRESET',
        'ECONNRESET',
      ]);
    });

    it('ECONNRESET before any response is not retried for a POST: the caller gets the error', async () => {
      const server = resources.add(
        await startServer((req, res) => {
          req.socket.resetAndDestroy();
          void res;
        }),
      );
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'POST', body: 'x' }));
      expect((error as { code?: string }).code).toBe('ECONNRESET');
      expect((error as { retryable?: boolean }).retryable).toBe(false);
      expect(events).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits).toHaveLength(1);
    });

    it('ECONNRESET mid-response: the delivered response errors, nothing is retried', async () => {
      const server = resources.add(
        await startServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first part|');
        }),
      );
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(200);
      const iterator = res.body[Symbol.asyncIterator]();
      const first = await iterator.next();
      expect(Buffer.from(first.value as Buffer).toString()).toBe('first part|');
      [...server.sockets.live][0]?.resetAndDestroy();

      const error = await rejectionOf(iterator.next());
      expect((error as { code?: string }).code).toBe('ECONNRESET');
      expect(events).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits).toHaveLength(1);
      expect(clock.pendingTimers).toBe(0);
    });

    it('a refused connection is retried (ECONNREFUSED) and finally rejected with that error', async () => {
      const closed = await startServer(() => {});
      const origin = closed.origin;
      await closed.close();
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });

      let settled = false;
      const pending = rejectionOf(agent.request({ origin, path: '/', method: 'GET' })).finally(() => {
        settled = true;
      });
      await advanceUntil(clock, 100, () => settled, 'the rejection');
      const error = await pending;
      expect((error as { code?: string }).code).toBe('ECONNREFUSED');
      expect(events.map((e) => e.attempt)).toEqual([1, 2]);
    });

    it('an error that is not a failure passes through: not retried, not counted by the breaker', async () => {
      const server = await sequence([200]);
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      const r = retry({ backoff: constant(0) });
      const events: RetryAttemptEvent[] = [];
      r.on('retry.attempt', (e) => events.push(e));
      const agent = agentWith({ policy: pipeline(r, breaker) });

      const error = await rejectionOf(
        agent.request({
          origin: server.origin,
          path: '/',
          method: 'PUT',
          body: 'abc',
          headers: { 'content-length': '10' },
        }),
      );
      expect((error as { code?: string }).code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
      expect(events).toEqual([]);
      expect(breaker.state).toBe('closed');
      expect(server.hits).toHaveLength(0);
    });
  });

  describe('caller abort', () => {
    it('during the backoff: rejects at once with the abort reason, no further hit', async () => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy } = recordedRetry(clock, 10_000);
      const agent = agentWith({ policy });
      const ac = new AbortController();

      const pending = rejectionOf(
        agent.request({ origin: server.origin, path: '/', method: 'GET', signal: ac.signal }),
      );
      await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');
      const reason = new Error('caller gave up');
      ac.abort(reason);
      expect(await pending).toBe(reason);
      expect(clock.pendingTimers).toBe(0);
      await clock.advance(20_000);
      expect(server.hits).toHaveLength(1);
    });

    it('while the response is awaited: rejects with the reason and the server sees the request abandoned', async () => {
      const server = resources.add(await startServer(() => {}));
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });
      const ac = new AbortController();

      const pending = rejectionOf(
        agent.request({ origin: server.origin, path: '/', method: 'GET', signal: ac.signal }),
      );
      await waitFor(() => server.hits.length === 1, 'the first hit');
      const reason = new Error('stop');
      ac.abort(reason);
      expect(await pending).toBe(reason);
      await waitFor(() => server.hits[0]?.aborted === true, 'the server to see the abort');
      expect(events).toEqual([]);
      await clock.advance(10_000);
      expect(server.hits).toHaveLength(1);
    });

    it('while the body streams: reading the body rejects with the reason', async () => {
      const server = resources.add(
        await startServer((_req, res) => {
          res.writeHead(200);
          res.write('partial');
        }),
      );
      const agent = agentWith({ policy: retry({ backoff: constant(0) }) });
      const ac = new AbortController();

      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET', signal: ac.signal });
      const iterator = res.body[Symbol.asyncIterator]();
      expect(Buffer.from((await iterator.next()).value as Buffer).toString()).toBe('partial');
      const reason = new Error('enough');
      ac.abort(reason);
      expect(await rejectionOf(iterator.next())).toBe(reason);
      await waitFor(() => server.hits[0]?.aborted === true, 'the server to see the abort');
      expect(server.hits).toHaveLength(1);
    });

    it('a caller abort is not counted by a breaker (consecutive threshold 1)', async () => {
      const server = resources.add(await startServer(() => {}));
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), breaker) });
      const ac = new AbortController();

      const pending = rejectionOf(
        agent.request({ origin: server.origin, path: '/', method: 'GET', signal: ac.signal }),
      );
      await waitFor(() => server.hits.length === 1, 'the first hit');
      const reason = new Error('bye');
      ac.abort(reason);
      expect(await pending).toBe(reason);
      expect(breaker.state).toBe('closed');
      expect(server.hits).toHaveLength(1);
    });

    it('an already aborted signal: no hit at all', async () => {
      const server = await sequence([200]);
      const agent = agentWith({ policy: retry({ backoff: constant(0) }) });
      const reason = new Error('before');
      const error = await rejectionOf(
        agent.request({ origin: server.origin, path: '/', method: 'GET', signal: AbortSignal.abort(reason) }),
      );
      expect(error).toBe(reason);
      expect(server.hits).toHaveLength(0);
    });
  });

  describe('per-attempt timeout', () => {
    it('pipeline(retry, timeout) aborts only the slow attempt; the next one succeeds', async () => {
      const server = resources.add(
        await startServer((_req, res, hit) => {
          if (hit.n === 1) return; // hangs
          reply(res, 200, `answer #${hit.n}`);
        }),
      );
      const clock = new FakeClock();
      const r = recordedRetry(clock, 100);
      const agent = agentWith({ policy: pipeline(r.policy, timeout({ ms: 1_000, clock })) });

      const pending = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await waitFor(() => server.hits.length === 1, 'the first hit');
      await clock.advance(999);
      expect(r.events).toEqual([]);
      await advanceUntil(clock, 1, () => server.hits.length === 2, '2 hits', 200);
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('answer #2');
      expect(r.events).toHaveLength(1);
      const error = r.events[0]?.outcome.ok === false ? r.events[0].outcome.error : undefined;
      expect(error).toBeInstanceOf(TimeoutError);
      expect(r.events[0]?.delayMs).toBe(100);
      await waitFor(() => server.hits[0]?.aborted === true, 'the first request to be abandoned');
      expect(server.hits[1]?.aborted).toBe(false);
    });

    it('when every attempt times out the caller gets the TimeoutError itself', async () => {
      const server = resources.add(await startServer(() => {}));
      const clock = new FakeClock();
      const agent = agentWith({
        policy: pipeline(retry({ clock, backoff: constant(100), maxAttempts: 2 }), timeout({ ms: 1_000, clock })),
      });

      let settled = false;
      const pending = rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' })).finally(() => {
        settled = true;
      });
      await advanceUntil(clock, 100, () => settled, 'the rejection');
      const error = await pending;
      expect(error).toBeInstanceOf(TimeoutError);
      expect((error as TimeoutError).code).toBe('ERR_TIMEOUT');
      expect(server.hits).toHaveLength(2);
      await waitFor(() => server.hits.every((h) => h.aborted), 'both requests to be abandoned');
    });
  });

  describe('per-origin policies', () => {
    it('a failing origin opens its own breaker; another origin still works', async () => {
      const a = await sequence([503]);
      const b = await sequence([200]);
      const clock = new FakeClock();
      const breakers = new Map<string, CircuitBreakerPolicy>();
      const agent = agentWith({
        policy: (origin) => {
          const breaker = circuitBreaker({
            window: { kind: 'consecutive', threshold: 2 },
            halfOpenAfterMs: 30_000,
            clock,
          });
          breakers.set(origin, breaker);
          return breaker;
        },
      });

      for (let i = 1; i <= 2; i++) {
        const res = await agent.request({ origin: a.origin, path: '/', method: 'GET' });
        expect(res.statusCode).toBe(503);
        expect(await res.body.text()).toBe(`503 #${i} `);
      }
      expect(breakers.get(a.origin)?.state).toBe('open');

      const error = await rejectionOf(agent.request({ origin: a.origin, path: '/', method: 'GET' }));
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect((error as CircuitOpenError).retryAfterMs).toBe(30_000);
      expect(a.hits).toHaveLength(2);

      const ok = await agent.request({ origin: b.origin, path: '/', method: 'GET' });
      expect(ok.statusCode).toBe(200);
      expect(await ok.body.text()).toBe('200 #1 ');
      expect(breakers.get(b.origin)?.state).toBe('closed');
      expect([...breakers.keys()]).toEqual([a.origin, b.origin]);

      await clock.advance(10_000);
      const later = await rejectionOf(agent.request({ origin: a.origin, path: '/', method: 'GET' }));
      expect((later as CircuitOpenError).retryAfterMs).toBe(20_000);
    });

    it('maxOrigins keeps the most recently used origins and evicts the least recently used', async () => {
      const [a, b, c] = [await sequence([200]), await sequence([200]), await sequence([200])] as const;
      const made: string[] = [];
      const agent = agentWith({
        maxOrigins: 2,
        policy: (origin) => {
          made.push(origin);
          return retry({ backoff: constant(0) });
        },
      });
      const get = async (origin: string) => {
        const res = await agent.request({ origin, path: '/', method: 'GET' });
        await res.body.dump();
        return res.statusCode;
      };

      expect(await get(a.origin)).toBe(200);
      expect(await get(b.origin)).toBe(200);
      expect(await get(a.origin)).toBe(200); // a is now the most recent
      expect(made).toEqual([a.origin, b.origin]);
      expect(await get(c.origin)).toBe(200); // evicts b
      expect(await get(a.origin)).toBe(200);
      expect(made).toEqual([a.origin, b.origin, c.origin]);
      expect(await get(b.origin)).toBe(200); // b again: a new policy, evicting c
      expect(made).toEqual([a.origin, b.origin, c.origin, b.origin]);
      expect(await get(a.origin)).toBe(200);
      expect(await get(c.origin)).toBe(200);
      expect(made).toEqual([a.origin, b.origin, c.origin, b.origin, c.origin]);
    });

    it('works on a Pool too (the origin is the pool’s)', async () => {
      const server = await sequence([503, 200]);
      const made: string[] = [];
      const pool = resources.add(new Pool(server.origin, { connections: 2 }));
      const composed = pool.compose(
        interceptor({
          policy: (origin) => {
            made.push(origin);
            return retry({ backoff: constant(0) });
          },
        }),
      );
      const res = await composed.request({ path: '/', method: 'GET' });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #2 ');
      expect(server.hits).toHaveLength(2);
      expect(made).toHaveLength(1);
    });
  });

  describe('policy refusals reach the caller as the bulwark error itself', () => {
    it('an open breaker: request() rejects with the CircuitOpenError, no hit', async () => {
      const server = await sequence([200]);
      const breaker = circuitBreaker();
      breaker.isolate();
      const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), breaker) });

      const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect((error as CircuitOpenError).code).toBe('ERR_CIRCUIT_OPEN');
      expect((error as CircuitOpenError).retryAfterMs).toBe(Number.POSITIVE_INFINITY);
      expect(server.hits).toHaveLength(0);
    });

    it('a full bulkhead: request() rejects with the BulkheadRejectedError; the slot frees with the response', async () => {
      const held: (() => void)[] = [];
      const server = resources.add(
        await startServer((_req, res, hit) => {
          const answer = () => reply(res, 200, `#${hit.n}`);
          if (hit.n === 1) held.push(answer);
          else answer();
        }),
      );
      const limit = bulkhead({ limit: 1 });
      const agent = agentWith({ policy: limit });

      const first = agent.request({ origin: server.origin, path: '/', method: 'GET' });
      await waitFor(() => server.hits.length === 1, 'the first hit');
      const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
      expect(error).toBeInstanceOf(BulkheadRejectedError);
      expect((error as BulkheadRejectedError).reason).toBe('full');
      expect((error as BulkheadRejectedError).active).toBe(1);
      expect(server.hits).toHaveLength(1);

      held[0]?.();
      const r1 = await first;
      expect(await r1.body.text()).toBe('#1');
      expect(limit.active).toBe(0);
      const r3 = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(await r3.body.text()).toBe('#2');
    });
  });

  describe('classification', () => {
    it('a 404 never opens a breaker (ten 404s, consecutive threshold 1)', async () => {
      const server = await sequence([404]);
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      const agent = agentWith({ policy: breaker });

      for (let i = 1; i <= 10; i++) {
        const res = await agent.request({ origin: server.origin, path: '/missing', method: 'GET' });
        expect(res.statusCode).toBe(404);
        expect(await res.body.text()).toBe(`404 #${i} `);
      }
      expect(server.hits).toHaveLength(10);
      expect(breaker.state).toBe('closed');
    });

    it('failureStatuses: [404] makes a 404 a failure (it opens the breaker)', async () => {
      const server = await sequence([404]);
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      const agent = agentWith({ policy: breaker, failureStatuses: [404] });

      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(404);
      expect(await res.body.text()).toBe('404 #1 ');
      expect(breaker.state).toBe('open');
      expect(await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }))).toBeInstanceOf(
        CircuitOpenError,
      );
      expect(server.hits).toHaveLength(1);
    });

    it('failureStatuses: [] makes a 503 a success (not retried, breaker closed)', async () => {
      const server = await sequence([503]);
      const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 } });
      const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), breaker), failureStatuses: [] });

      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('503 #1 ');
      expect(server.hits).toHaveLength(1);
      expect(breaker.state).toBe('closed');
    });
  });

  describe('per-request policy', () => {
    it('bulwark: { policy: false } bypasses the policy; { policy: other } uses another', async () => {
      const server = await sequence([503, 503, 200]);
      const isolated = circuitBreaker();
      isolated.isolate();
      const agent = agentWith({ policy: isolated });

      expect(await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }))).toBeInstanceOf(
        CircuitOpenError,
      );
      expect(server.hits).toHaveLength(0);

      const bypass = await agent.request({
        origin: server.origin,
        path: '/',
        method: 'GET',
        bulwark: { policy: false },
      });
      expect(bypass.statusCode).toBe(503);
      expect(await bypass.body.text()).toBe('503 #1 ');
      expect(server.hits).toHaveLength(1);

      const clock = new FakeClock();
      const other = recordedRetry(clock, 100);
      const pending = agent.request({
        origin: server.origin,
        path: '/',
        method: 'GET',
        bulwark: { policy: other.policy, operation: 'quote' },
      });
      await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
      const res = await pending;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('200 #3 ');
      expect(other.events.map((e) => e.operation)).toEqual(['quote']);
    });

    it('the operation defaults to the method', async () => {
      const server = await sequence([503, 200]);
      const clock = new FakeClock();
      const { policy, events } = recordedRetry(clock, 100);
      const agent = agentWith({ policy });
      const pending = agent.request({ origin: server.origin, path: '/', method: 'DELETE' });
      await advanceUntil(clock, 100, () => server.hits.length === 2, '2 hits');
      expect((await pending).statusCode).toBe(200);
      expect(events.map((e) => e.operation)).toEqual(['DELETE']);
    });
  });

  describe('options', () => {
    const policy: Policy = retry();

    it('interceptor({}) names the missing policy', () => {
      expect(() => interceptor({} as never)).toThrow(InvalidOptionsError);
      expect(() => interceptor({} as never)).toThrow(
        'undici interceptor: invalid options\n  - policy: expected a bulwark policy or a function of the origin returning one (required), got undefined',
      );
      expect(() => interceptor(undefined as never)).toThrow(
        'undici interceptor: invalid options\n  - policy: expected a bulwark policy or a function of the origin returning one (required), got undefined',
      );
    });

    it('an unknown option is reported with the allowed names', () => {
      expect(() => interceptor({ policy, retries: 3 } as never)).toThrow(
        'undici interceptor: invalid options\n  - retries: expected a known option (unknown name; allowed: policy, maxOrigins, methods, generateIdempotencyKeys, honorIdempotencyKey, failureStatuses, failureCodes, wallClock), got 3',
      );
    });

    it('bad failureStatuses, and every problem at once', () => {
      expect(() => interceptor({ policy, failureStatuses: [503, 99] })).toThrow(
        'undici interceptor: invalid options\n  - failureStatuses: expected an array of HTTP statuses (100..599), got an array of 2',
      );
      let caught: unknown;
      try {
        interceptor({
          policy: 42 as never,
          maxOrigins: 0,
          failureStatuses: '503' as never,
          generateIdempotencyKeys: 'yes' as never,
          honorIdempotencyKey: 0 as never,
          wallClock: 5 as never,
        });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(InvalidOptionsError);
      expect(caught).toBeInstanceOf(TypeError);
      expect((caught as InvalidOptionsError).problems.map((p) => p.option)).toEqual([
        'policy',
        'maxOrigins',
        'generateIdempotencyKeys',
        'honorIdempotencyKey',
        'failureStatuses',
        'wallClock',
      ]);
      expect((caught as Error).message).toBe(
        [
          'undici interceptor: invalid options',
          '  - policy: expected a bulwark policy or a function of the origin returning one (required), got 42',
          '  - maxOrigins: expected an integer >= 1, got 0',
          '  - generateIdempotencyKeys: expected a boolean, got "yes"',
          '  - honorIdempotencyKey: expected a boolean, got 0',
          '  - failureStatuses: expected an array of HTTP statuses (100..599), got "503"',
          '  - wallClock: expected a function, got 5',
        ].join('\n'),
      );
    });
  });
});
