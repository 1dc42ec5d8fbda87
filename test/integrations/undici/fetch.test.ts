import { Readable } from 'node:stream';
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  constant,
  InvalidOptionsError,
  pipeline,
  type RetryAttemptEvent,
  retry,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import { type CreateFetchOptions, createFetch } from '../../../src/integrations/undici/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { advanceUntil, type Hit, Resources, rejectionOf, reply, startServer, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.closeAll());

/** A fetch on its own Agent, closed after the test. */
function fetchWith(options: Omit<CreateFetchOptions, 'dispatcher'>) {
  return createFetch({ ...options, dispatcher: resources.add(new Agent()) });
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

function recordedRetry(clock: FakeClock, backoffMs: number, maxAttempts = 3) {
  const policy = retry({ clock, backoff: constant(backoffMs), maxAttempts });
  const events: RetryAttemptEvent[] = [];
  policy.on('retry.attempt', (e) => events.push(e));
  return { policy, events };
}

describe('createFetch', { timeout: 5_000 }, () => {
  it('retries a GET on 503 and resolves with the final 200', async () => {
    const server = await sequence([503, 503, 200]);
    const clock = new FakeClock();
    const { policy, events } = recordedRetry(clock, 1_000);
    const fetch = fetchWith({ policy });

    const pending = fetch(`${server.origin}/quote?id=1`);
    await advanceUntil(clock, 1_000, () => server.hits.length === 3, '3 hits');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('200 #3 ');
    expect(server.hits.map((h) => `${h.method} ${h.url}`)).toEqual([
      'GET /quote?id=1',
      'GET /quote?id=1',
      'GET /quote?id=1',
    ]);
    expect(events.map((e) => e.delayMs)).toEqual([1_000, 1_000]);
  });

  it('resolves with the last failed response when the attempts run out', async () => {
    const server = await sequence([503], () => ({ 'x-attempt': 'last' }));
    const clock = new FakeClock();
    const { policy } = recordedRetry(clock, 10, 2);
    const fetch = fetchWith({ policy });

    const pending = fetch(server.origin);
    await advanceUntil(clock, 10, () => server.hits.length === 2, '2 hits');
    const res = await pending;
    expect(res.status).toBe(503);
    expect(res.headers.get('x-attempt')).toBe('last');
    expect(await res.text()).toBe('503 #2 ');
  });

  it('does not retry a POST without a key: one hit, the 503 is returned', async () => {
    const server = await sequence([503, 200]);
    const clock = new FakeClock();
    const { policy, events } = recordedRetry(clock, 10);
    const fetch = fetchWith({ policy });

    const res = await fetch(server.origin, { method: 'POST', body: 'order' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('503 #1 order');
    expect(server.hits).toHaveLength(1);
    expect(events).toEqual([]);
  });

  it('replays a string POST body intact on every attempt, with one generated Idempotency-Key', async () => {
    const server = await sequence([503, 500, 200]);
    const clock = new FakeClock();
    const { policy } = recordedRetry(clock, 100);
    const fetch = fetchWith({ policy, generateIdempotencyKeys: true });
    const body = `{"items":[${'1,'.repeat(5_000)}2],"note":"ünïcødé"}`;

    const pending = fetch(`${server.origin}/orders`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(`200 #3 ${body}`);
    expect(server.hits.map((h) => h.body.toString('utf8'))).toEqual([body, body, body]);
    expect(server.hits.map((h) => h.headers['content-length'])).toEqual(Array(3).fill(String(Buffer.byteLength(body))));
    expect(server.hits.map((h) => h.headers['content-type'])).toEqual(Array(3).fill('application/json'));
    const keys = server.hits.map((h) => h.headers['idempotency-key']);
    expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(keys).toEqual([keys[0], keys[0], keys[0]]);
  });

  it('concurrent POSTs each replay their own body under their own key', async () => {
    const seen = new Map<string, number>();
    const server = resources.add(
      await startServer((_req, res, hit) => {
        const key = String(hit.headers['idempotency-key']);
        const n = (seen.get(key) ?? 0) + 1;
        seen.set(key, n);
        reply(res, n === 1 ? 503 : 200, `${hit.body.toString()} try ${n}`);
      }),
    );
    const clock = new FakeClock();
    const { policy } = recordedRetry(clock, 100);
    const fetch = fetchWith({ policy, generateIdempotencyKeys: true });

    const pending = Promise.all(
      [0, 1, 2, 3, 4].map(async (i) => {
        const res = await fetch(server.origin, { method: 'POST', body: `body-${i}` });
        return `${res.status} ${await res.text()}`;
      }),
    );
    await advanceUntil(clock, 100, () => server.hits.length === 10, '10 hits');
    expect(await pending).toEqual([0, 1, 2, 3, 4].map((i) => `200 body-${i} try 2`));
    const byKey = new Map<string, string[]>();
    for (const h of server.hits) {
      const key = String(h.headers['idempotency-key']);
      byKey.set(key, [...(byKey.get(key) ?? []), h.body.toString()]);
    }
    expect(byKey.size).toBe(5);
    expect([...byKey.values()].map((bodies) => bodies.join(',')).sort()).toEqual(
      [0, 1, 2, 3, 4].map((i) => `body-${i},body-${i}`),
    );
  });

  it.each([
    ['URLSearchParams', () => new URLSearchParams({ a: '1', b: 'x y' }), 'a=1&b=x+y'],
    ['Uint8Array', () => new TextEncoder().encode('raw bytes'), 'raw bytes'],
    ['ArrayBuffer', () => new TextEncoder().encode('array buffer').buffer as ArrayBuffer, 'array buffer'],
  ])('replays a %s body (bulwark: { retryNonIdempotent: true })', async (_name, make, text) => {
    const server = await sequence([503, 200]);
    const clock = new FakeClock();
    const { policy } = recordedRetry(clock, 100);
    const fetch = fetchWith({ policy });

    const pending = fetch(server.origin, { method: 'POST', body: make(), bulwark: { retryNonIdempotent: true } });
    await advanceUntil(clock, 100, () => server.hits.length === 2, '2 hits');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(`200 #2 ${text}`);
    expect(server.hits.map((h) => h.body.toString())).toEqual([text, text]);
    expect(server.hits.map((h) => h.headers['idempotency-key'])).toEqual([undefined, undefined]);
  });

  it('a ReadableStream body is sent once: 1 hit, the server got all of it, the 503 is returned', async () => {
    const server = await sequence([503, 200]);
    const clock = new FakeClock();
    const { policy, events } = recordedRetry(clock, 100);
    const fetch = fetchWith({ policy });
    const encoder = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode('chunk-a|'));
        controller.enqueue(encoder.encode('chunk-b|'));
        controller.enqueue(encoder.encode('chunk-c'));
        controller.close();
      },
    });

    const res = await fetch(`${server.origin}/upload`, { method: 'PUT', body: stream, duplex: 'half' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('503 #1 chunk-a|chunk-b|chunk-c');
    expect(server.hits).toHaveLength(1);
    expect(server.hits[0]?.body.toString()).toBe('chunk-a|chunk-b|chunk-c');
    expect(events).toEqual([]);
    await clock.advance(10_000);
    expect(server.hits).toHaveLength(1);
  });

  it('an async-iterable body is sent once too', async () => {
    const server = await sequence([503, 200]);
    const fetch = fetchWith({ policy: retry({ backoff: constant(0) }) });

    const res = await fetch(server.origin, {
      method: 'PUT',
      body: Readable.from([Buffer.from('one,'), Buffer.from('two')]),
      duplex: 'half',
    });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('503 #1 one,two');
    expect(server.hits.map((h) => h.body.toString())).toEqual(['one,two']);
  });

  it('follows a redirect and retries at the new location with the body intact', async () => {
    let target = 0;
    const server = resources.add(
      await startServer((_req, res, hit) => {
        if (hit.url === '/old') {
          res.writeHead(307, { location: '/new' });
          res.end();
          return;
        }
        target++;
        reply(res, target === 1 ? 503 : 200, `${hit.url} ${hit.body.toString()}`);
      }),
    );
    const clock = new FakeClock();
    const { policy } = recordedRetry(clock, 100);
    const fetch = fetchWith({ policy });

    const pending = fetch(`${server.origin}/old`, { method: 'PUT', body: 'payload' });
    await advanceUntil(clock, 100, () => server.hits.length === 3, '3 hits');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('/new payload');
    expect(server.hits.map((h) => `${h.url} ${h.body.toString()}`)).toEqual([
      '/old payload',
      '/new payload',
      '/new payload',
    ]);
  });

  it('an open breaker rejects with the CircuitOpenError itself, not TypeError("fetch failed")', async () => {
    const server = await sequence([503]);
    const clock = new FakeClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', threshold: 2 }, halfOpenAfterMs: 5_000, clock });
    const fetch = fetchWith({ policy: breaker });

    for (let i = 1; i <= 2; i++) {
      const res = await fetch(server.origin);
      expect(res.status).toBe(503);
      expect(await res.text()).toBe(`503 #${i} `);
    }
    expect(breaker.state).toBe('open');
    const error = await rejectionOf(fetch(server.origin));
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).not.toBeInstanceOf(TypeError);
    expect((error as CircuitOpenError).retryAfterMs).toBe(5_000);
    expect(server.hits).toHaveLength(2);
  });

  it('a full bulkhead rejects with the BulkheadRejectedError itself', async () => {
    const held: (() => void)[] = [];
    const server = resources.add(
      await startServer((_req, res, hit) => {
        const answer = () => reply(res, 200, `#${hit.n}`);
        if (hit.n === 1) held.push(answer);
        else answer();
      }),
    );
    const fetch = fetchWith({ policy: pipeline(retry({ backoff: constant(0) }), bulkhead({ limit: 1 })) });

    const first = fetch(server.origin);
    await waitFor(() => server.hits.length === 1, 'the first hit');
    const error = await rejectionOf(fetch(server.origin));
    expect(error).toBeInstanceOf(BulkheadRejectedError);
    expect((error as BulkheadRejectedError).reason).toBe('full');
    expect(server.hits).toHaveLength(1);
    held[0]?.();
    expect(await (await first).text()).toBe('#1');
  });

  it('every attempt timing out rejects with the TimeoutError itself', async () => {
    const server = resources.add(await startServer(() => {}));
    const clock = new FakeClock();
    const fetch = fetchWith({
      policy: pipeline(retry({ clock, backoff: constant(100), maxAttempts: 2 }), timeout({ ms: 500, clock })),
    });

    let settled = false;
    const pending = rejectionOf(fetch(server.origin)).finally(() => {
      settled = true;
    });
    await advanceUntil(clock, 100, () => settled, 'the rejection');
    const error = await pending;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).not.toBeInstanceOf(TypeError);
    expect(server.hits).toHaveLength(2);
  });

  it('a non-bulwark failure keeps fetch’s own shape (TypeError with the network error as cause)', async () => {
    const server = resources.add(
      await startServer((req) => {
        req.socket.resetAndDestroy();
      }),
    );
    const fetch = fetchWith({ policy: retry({ backoff: constant(0) }) });

    const error = await rejectionOf(fetch(server.origin, { method: 'POST', body: 'x' }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe('fetch failed');
    expect(((error as Error).cause as { code?: string }).code).toBe('ECONNRESET');
    expect(server.hits).toHaveLength(1);
  });

  it('bulwark: { policy: false } in init bypasses the policy', async () => {
    const server = await sequence([503, 200]);
    const breaker = circuitBreaker();
    breaker.isolate();
    const fetch = fetchWith({ policy: breaker });

    expect(await rejectionOf(fetch(server.origin))).toBeInstanceOf(CircuitOpenError);
    const res = await fetch(server.origin, { bulwark: { policy: false } });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('503 #1 ');
    expect(server.hits).toHaveLength(1);
  });

  it('a caller abort during the backoff rejects with the reason; no further hit', async () => {
    const server = await sequence([503, 200]);
    const clock = new FakeClock();
    const { policy } = recordedRetry(clock, 10_000);
    const fetch = fetchWith({ policy });
    const ac = new AbortController();

    const pending = rejectionOf(fetch(server.origin, { signal: ac.signal }));
    await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');
    const reason = new Error('user navigated away');
    ac.abort(reason);
    expect(await pending).toBe(reason);
    await waitFor(() => clock.pendingTimers === 0, 'the backoff timer to be cleared');
    await clock.advance(20_000);
    expect(server.hits).toHaveLength(1);
  });

  it('checks its options like the interceptor, reporting them under its own name', () => {
    const dispatcher = resources.add(new Agent());
    expect(() => createFetch({ dispatcher } as never)).toThrow(InvalidOptionsError);
    expect(() => createFetch({ dispatcher } as never)).toThrow(
      'createFetch: invalid options\n  - policy: expected a bulwark policy or a function of the origin returning one (required), got undefined',
    );
  });

  it('refuses the renamed and removed options, naming what to use instead', () => {
    const dispatcher = resources.add(new Agent());
    expect(() =>
      createFetch({ dispatcher, policy: retry(), idempotencyKey: true, maxRetryAfterMs: 5 } as never),
    ).toThrow(
      /^createFetch: invalid options\n {2}- idempotencyKey: expected generateIdempotencyKeys instead .*\n {2}- maxRetryAfterMs: expected maxRetryAfterMs on the retry policy instead \(retry\(\{ maxRetryAfterMs \}\)\).*, got 5$/,
    );
  });
});
