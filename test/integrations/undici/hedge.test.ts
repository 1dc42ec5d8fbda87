import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { Agent, type Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bulkhead,
  constant,
  HedgeCancelledError,
  type HedgePolicy,
  hedge,
  keyed,
  pipeline,
  retry,
  timeout,
} from '../../../src/index.js';
import { createFetch, interceptor, type UndiciInterceptorOptions } from '../../../src/integrations/undici/index.js';
import { type Hit, Resources, rejectionOf, reply, startServer, type TestServer, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.closeAll());

function agentWith(options: UndiciInterceptorOptions): Dispatcher {
  return resources.add(new Agent()).compose(interceptor(options));
}

/**
 * Closes `agent` (it waits for every request still running: a leaked attempt would hang it) and waits until the
 * server saw every socket closed.
 */
async function closedEverywhere(agent: Dispatcher, server: TestServer): Promise<void> {
  await agent.close();
  await waitFor(() => server.sockets.open === 0, 'every socket closed');
}

/** Replies to request `n` with `answer`, after `ms` (never: `undefined`, the request hangs until aborted). */
async function serverOf(plan: (hit: Hit, res: ServerResponse) => void): Promise<TestServer> {
  return resources.add(await startServer((_req, res, hit) => plan(hit, res)));
}

/** Request 1 never answers (it hangs until the client goes away); every other answers at once. */
function firstHangs(hit: Hit, res: ServerResponse): void {
  if (hit.n !== 1) reply(res, 200, `body of #${hit.n}`);
}

/** The events of `policy` of `type`, collected. */
function eventsOf(policy: HedgePolicy, type: 'hedge.launched' | 'hedge.late_outcome'): unknown[] {
  const seen: unknown[] = [];
  policy.on(type, (e: unknown) => seen.push(e));
  return seen;
}

describe('undici interceptor: hedge() inside the policy', () => {
  it("a slow first request and a fast hedge: the hedge's response is delivered, the first request is aborted on the server", async () => {
    const server = await serverOf(firstHangs);
    const h = hedge({ delayMs: 30 });
    const launched = eventsOf(h, 'hedge.launched');
    const late = eventsOf(h, 'hedge.late_outcome');
    const agent = agentWith({ policy: pipeline(h, timeout(10_000)) });
    const res = await agent.request({ origin: server.origin, path: '/r', method: 'GET' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('body of #2');
    expect(server.hits.map((x) => x.url)).toEqual(['/r', '/r']);
    expect(launched).toEqual([expect.objectContaining({ attempt: 2, trigger: 'delay' })]);
    // The loser: its socket dropped (the server sees the request go away), its outcome reported late.
    await waitFor(() => server.hits[0]?.aborted === true, 'the first request aborted');
    await waitFor(() => late.length === 1, 'the late outcome');
    const outcome = (late[0] as { attempt: number; outcome: { ok: boolean; error: unknown } }).outcome;
    expect((late[0] as { attempt: number }).attempt).toBe(1);
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toBeInstanceOf(HedgeCancelledError);
    expect(server.hits[1]?.aborted).toBe(false);
    await closedEverywhere(agent, server);
  });

  it("the winner's body streams intact: 8 MiB, read slowly (backpressure), with trailers", async () => {
    const size = 8 << 20;
    const chunk = Buffer.alloc(64 << 10);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
    const expected = createHash('sha256');
    for (let sent = 0; sent < size; sent += chunk.length) expected.update(chunk);
    const server = await serverOf((hit, res) => {
      if (hit.n === 1) return; // hangs
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-checksum' });
      let sent = 0;
      const write = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', write);
            return;
          }
        }
        res.addTrailers({ 'x-checksum': 'ok' });
        res.end();
      };
      write();
    });
    const agent = agentWith({ policy: pipeline(hedge({ delayMs: 30 }), timeout(30_000)) });
    const res = await agent.request({ origin: server.origin, path: '/big', method: 'GET' });
    expect(res.statusCode).toBe(200);
    const hash = createHash('sha256');
    let received = 0;
    let n = 0;
    for await (const c of res.body) {
      hash.update(c as Buffer);
      received += (c as Buffer).length;
      // A slow reader: the body is paused and resumed many times.
      if (++n % 8 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    expect(received).toBe(size);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    expect(res.trailers).toEqual({ 'x-checksum': 'ok' });
    await waitFor(() => server.hits[0]?.aborted === true, 'the first request aborted');
  });

  it('the raw headers of the winner reach the caller (fetch reads them from the controller)', async () => {
    const server = await serverOf((hit, res) => {
      if (hit.n === 1) return;
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('x-attempt', String(hit.n));
      res.end('ok');
    });
    const fetch = createFetch({
      policy: pipeline(hedge({ delayMs: 30 }), timeout(10_000)),
      dispatcher: resources.add(new Agent()),
    });
    const res = await fetch(`${server.origin}/h`);
    expect(res.headers.get('x-attempt')).toBe('2');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.text()).toBe('ok');
  });

  it('parallel mode: every attempt at once; the first answer wins, the others are aborted', async () => {
    // The second request to arrive answers once the third arrived: all three were on the wire at once.
    let second: ServerResponse | undefined;
    const server = await serverOf((hit, res) => {
      if (hit.n === 2) second = res;
      if (hit.n === 3) reply(second as ServerResponse, 200, 'body of #2');
    });
    const h = hedge({ delayMs: 0, maxHedgedAttempts: 2 });
    const launched = eventsOf(h, 'hedge.launched');
    const agent = agentWith({ policy: pipeline(h, timeout(10_000)) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(await res.body.text()).toBe('body of #2');
    expect(launched).toHaveLength(2);
    expect(server.hits).toHaveLength(3);
    await waitFor(() => server.hits.filter((x) => x.aborted).length === 2, 'two requests aborted');
    expect(server.hits[1]?.aborted).toBe(false);
    await closedEverywhere(agent, server);
  });

  it("every attempt fails: the caller gets the primary's failed response (a 503 of request 1)", async () => {
    // Request 1 fails after the hedge started; request 2 fails at once: the hedge's failure comes first.
    const server = await serverOf((hit, res) => {
      setTimeout(() => reply(res, 503, `unavailable #${hit.n}`), hit.n === 1 ? 80 : 0);
    });
    const agent = agentWith({ policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('unavailable #1');
    expect(server.hits).toHaveLength(2);
  });

  it("fallback mode (a hedge only after a failure): the primary's 503 is kept while the hedge runs, and delivered when it fails too", async () => {
    const server = await serverOf((hit, res) => reply(res, 503, `unavailable #${hit.n}`));
    const agent = agentWith({ policy: hedge({ delayMs: -1 }) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('unavailable #1');
    expect(server.hits).toHaveLength(2);
    // Both connections are back in the pool (the bodies were read), none dropped.
    expect(server.sockets.opened).toBeLessThanOrEqual(2);
  });

  it("fallback mode: the primary's 503 is kept while later hedges time out one after the other (found by the property below)", async () => {
    const server = await serverOf((hit, res) => {
      if (hit.n === 1) reply(res, 503, 'unavailable #1'); // the others hang until their timeout
    });
    const agent = agentWith({ policy: pipeline(hedge({ delayMs: -1, maxHedgedAttempts: 2 }), timeout(100)) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('unavailable #1');
    expect(server.hits).toHaveLength(3);
  });

  it('fallback mode: a failure then a success delivers the success', async () => {
    const server = await serverOf((hit, res) => reply(res, hit.n === 1 ? 503 : 200, `#${hit.n}`));
    const agent = agentWith({ policy: hedge({ delayMs: -1 }) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('#2');
  });

  it('a POST without an idempotency key is never hedged: one request on the wire (latency and parallel modes)', async () => {
    for (const delayMs of [20, 0]) {
      const server = await serverOf((_hit, res) => {
        setTimeout(() => reply(res, 200, 'created'), 100);
      });
      const h = hedge({ delayMs, maxHedgedAttempts: 3 });
      const launched = eventsOf(h, 'hedge.launched');
      const agent = agentWith({ policy: pipeline(h, timeout(10_000)) });
      const res = await agent.request({ origin: server.origin, path: '/orders', method: 'POST', body: 'order' });
      expect(await res.body.text()).toBe('created');
      expect(server.hits).toHaveLength(1);
      expect(server.hits[0]?.body.toString()).toBe('order');
      expect(launched).toEqual([]);
    }
  });

  it('a POST queued in a bulkhead when the hedge starts: only the first attempt dispatched is sent, the other is refused unsent', async () => {
    let release: (() => void) | undefined;
    const server = await serverOf((hit, res) => {
      if (hit.url === '/block') release = () => reply(res, 200, 'unblocked');
      else setTimeout(() => reply(res, 200, `created #${hit.n}`), 50);
    });
    const agent = agentWith({
      policy: pipeline(hedge({ delayMs: 0 }), timeout(10_000), bulkhead({ limit: 1, queue: 10 })),
    });
    // Holds the only slot, so the POST's primary and its hedge both queue.
    const blocker = agent.request({ origin: server.origin, path: '/block', method: 'GET' });
    await waitFor(() => release !== undefined, 'the blocking request');
    const post = agent.request({ origin: server.origin, path: '/orders', method: 'POST', body: 'order' });
    await new Promise((r) => setTimeout(r, 20));
    (release as () => void)();
    await (await blocker).body.text();
    const res = await post;
    expect(await res.body.text()).toBe('created #2');
    expect(server.hits.map((x) => x.url)).toEqual(['/block', '/orders']);
  });

  it('a stream body without a factory is never hedged (it can be sent once)', async () => {
    const server = await serverOf((_hit, res) => setTimeout(() => reply(res, 200, 'stored'), 100));
    const agent = agentWith({ policy: pipeline(hedge({ delayMs: 0 }), timeout(10_000)) });
    const res = await agent.request({
      origin: server.origin,
      path: '/put',
      method: 'PUT',
      body: Readable.from([Buffer.from('one-shot')]),
    });
    expect(await res.body.text()).toBe('stored');
    expect(server.hits).toHaveLength(1);
    expect(server.hits[0]?.body.toString()).toBe('one-shot');
  });

  it('a POST with an Idempotency-Key is hedged: every attempt sends the body and the key', async () => {
    const server = await serverOf(firstHangs);
    const agent = agentWith({ policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
    const res = await agent.request({
      origin: server.origin,
      path: '/orders',
      method: 'POST',
      body: '{"item":1}',
      headers: { 'idempotency-key': 'k-1', 'content-type': 'application/json' },
    });
    expect(await res.body.text()).toBe('body of #2');
    expect(server.hits).toHaveLength(2);
    for (const hit of server.hits) {
      expect(hit.headers['idempotency-key']).toBe('k-1');
      expect(hit.method).toBe('POST');
    }
    await waitFor(() => server.hits[0]?.aborted === true, 'the first request aborted');
    // The hung request's body was read in full before its handler ran: both sent the whole body.
    expect(server.hits.map((x) => x.body.toString())).toEqual(['{"item":1}', '{"item":1}']);
  });

  it('a body factory is called once per attempt with its attempt number; the loser’s stream is released', async () => {
    const server = await serverOf(firstHangs);
    const made: { attempt: number; stream: Readable }[] = [];
    const agent = agentWith({
      policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)),
      generateIdempotencyKeys: true,
    });
    const res = await agent.request({
      origin: server.origin,
      path: '/upload',
      method: 'POST',
      body: Readable.from([Buffer.from('unused')]),
      bulwark: {
        body: (attempt) => {
          const stream = Readable.from([Buffer.from(`payload of attempt ${attempt}`)]);
          made.push({ attempt, stream });
          return stream;
        },
      },
    });
    expect(await res.body.text()).toBe('body of #2');
    expect(made.map((m) => m.attempt)).toEqual([1, 2]);
    expect(server.hits.map((x) => x.body.toString())).toEqual(['payload of attempt 1', 'payload of attempt 2']);
    const key = server.hits[0]?.headers['idempotency-key'];
    expect(typeof key).toBe('string');
    expect(server.hits[1]?.headers['idempotency-key']).toBe(key);
    await waitFor(() => made[0]?.stream.destroyed === true, "the loser's body released");
  });

  it('the caller aborts mid-hedge: every attempt is aborted, the server sees both closed, nothing leaks', async () => {
    const server = await serverOf(() => {}); // every request hangs
    const h = hedge({ delayMs: 20, maxHedgedAttempts: 2 });
    const late = eventsOf(h, 'hedge.late_outcome');
    const agent = agentWith({ policy: pipeline(h, timeout(10_000)) });
    const ac = new AbortController();
    const pending = agent.request({ origin: server.origin, path: '/', method: 'GET', signal: ac.signal });
    await waitFor(() => server.hits.length === 3, 'three requests');
    const reason = new Error('caller gave up');
    ac.abort(reason);
    const error = await rejectionOf(pending);
    expect(error).toBe(reason);
    await waitFor(() => server.hits.every((x) => x.aborted), 'every request aborted');
    await waitFor(() => late.length === 3, 'three late outcomes');
    for (const e of late) expect((e as { outcome: { error: unknown } }).outcome.error).toBe(reason);
    await closedEverywhere(agent, server);
  });

  it('retry around the hedge: a round where every attempt fails is retried, the next round hedges again', async () => {
    // Round 1: requests 1 and 2 fail (503). Round 2: request 3 hangs, its hedge (request 4) answers.
    const server = await serverOf((hit, res) => {
      if (hit.n <= 2) reply(res, 503, `unavailable #${hit.n}`);
      else if (hit.n === 4) reply(res, 200, `body of #${hit.n}`);
    });
    const h = hedge({ delayMs: 30 });
    const launched = eventsOf(h, 'hedge.launched');
    const agent = agentWith({
      policy: pipeline(retry({ maxAttempts: 2, backoff: constant(10) }), h, timeout(10_000)),
    });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('body of #4');
    expect(server.hits).toHaveLength(4);
    // Attempt numbers: round 1 is 1 (+1 for its hedge), round 2 is 2 (+1).
    expect(launched.map((e) => (e as { attempt: number }).attempt)).toEqual([2, 3]);
    await waitFor(() => server.hits[2]?.aborted === true, 'the third request aborted');
  });

  it('retry around the hedge, every round failing: the caller gets the last round primary’s 503', async () => {
    const server = await serverOf((hit, res) => {
      // The primary of each round answers after its hedge.
      const primary = hit.n === 1 || hit.n === 3;
      setTimeout(() => reply(res, 503, `unavailable #${hit.n}`), primary ? 60 : 0);
    });
    const agent = agentWith({
      policy: pipeline(retry({ maxAttempts: 2, backoff: constant(5) }), hedge({ delayMs: 20 }), timeout(10_000)),
    });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('unavailable #3');
    expect(server.hits).toHaveLength(4);
  });

  it('fetch through the interceptor: hedged, the hedge answers, the body and the idempotency key go with every attempt', async () => {
    const server = await serverOf(firstHangs);
    const fetch = createFetch({
      policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)),
      dispatcher: resources.add(new Agent()),
    });
    const get = await fetch(`${server.origin}/get`);
    expect(await get.text()).toBe('body of #2');
    expect(get.headers.get('content-type')).toBe('text/plain');
    await waitFor(() => server.hits[0]?.aborted === true, 'the first request aborted');
    const before = server.hits.length;
    const post = await fetch(`${server.origin}/post`, {
      method: 'POST',
      body: 'data',
      headers: { 'idempotency-key': 'f-1' },
    });
    expect(post.status).toBe(200);
    await post.text();
    expect(server.hits.length - before).toBe(1); // request 3 answers at once: no hedge needed
    expect(server.hits[before]?.body.toString()).toBe('data');
  });

  it('a per-origin policy function and a request’s own bulwark.policy may hold a hedge', async () => {
    const server = await serverOf(firstHangs);
    const agent = agentWith({ policy: () => pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(await res.body.text()).toBe('body of #2');
    const other = await serverOf(firstHangs);
    const plain = agentWith({ policy: timeout(10_000) });
    const own = await plain.request({
      origin: other.origin,
      path: '/',
      method: 'GET',
      bulwark: { policy: hedge({ delayMs: 20 }) },
    });
    expect(await own.body.text()).toBe('body of #2');
  });

  it('a hedge made by a keyed member is honoured from its first call', async () => {
    const server = await serverOf(firstHangs);
    const perKey = keyed(
      (ctx) => ctx.operation,
      () => hedge({ delayMs: 20 }),
    );
    const agent = agentWith({ policy: pipeline(perKey, timeout(10_000)) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(await res.body.text()).toBe('body of #2');
    await waitFor(() => server.hits[0]?.aborted === true, 'the first request aborted');
  });

  describe('hostile peers', () => {
    it("the server resets the primary's connection while the hedge runs: the hedge's response is delivered", async () => {
      const server = await serverOf((hit, res) => {
        if (hit.n === 1) setTimeout(() => res.socket?.resetAndDestroy(), 40);
        else setTimeout(() => reply(res, 200, `body of #${hit.n}`), 80);
      });
      const agent = agentWith({ policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('body of #2');
    });

    it("the server resets the loser's connection after the winner was chosen: nothing surfaces", async () => {
      let resetLoser: (() => void) | undefined;
      const server = await serverOf((hit, res) => {
        if (hit.n === 1) resetLoser = () => res.socket?.resetAndDestroy();
        else reply(res, 200, `body of #${hit.n}`);
      });
      const agent = agentWith({ policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      resetLoser?.();
      expect(await res.body.text()).toBe('body of #2');
      await waitFor(() => server.hits[0]?.aborted === true, 'the first request aborted');
    });

    it('a winner whose body fails mid-stream: the caller gets the error, no other attempt starts, the loser is aborted', async () => {
      const server = await serverOf((hit, res) => {
        if (hit.n === 1) return; // hangs
        res.writeHead(200, { 'content-length': '100000' });
        res.write(Buffer.alloc(1000, 'a'));
        setTimeout(() => res.socket?.destroy(), 20);
      });
      const agent = agentWith({ policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
      const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
      expect(res.statusCode).toBe(200);
      const error = await rejectionOf(res.body.text());
      expect(error).toBeInstanceOf(Error);
      expect(server.hits).toHaveLength(2);
      await waitFor(() => server.hits.every((x) => x.aborted), 'both requests over');
      await closedEverywhere(agent, server);
    });

    it('every attempt is reset: the caller gets the primary’s network error', async () => {
      const server = await serverOf((hit, res) => {
        setTimeout(() => res.socket?.resetAndDestroy(), hit.n === 1 ? 60 : 0);
      });
      const agent = agentWith({ policy: pipeline(hedge({ delayMs: 20 }), timeout(10_000)) });
      const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
      expect((error as { code?: string }).code).toMatch(/^(ECONNRESET|UND_ERR_SOCKET)$/);
      expect(server.hits).toHaveLength(2);
    });
  });
});

describe('undici interceptor: hedge() properties', () => {
  type Behaviour = 'ok' | 'fail' | 'hang' | 'reset';

  it('whatever each attempt does, the caller gets one outcome it may get, and nothing is left open', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ does: fc.constantFrom<Behaviour>('ok', 'fail', 'hang', 'reset'), ms: fc.nat(25) }), {
          minLength: 3,
          maxLength: 3,
        }),
        fc.constantFrom(15, 0, -1),
        fc.integer({ min: 1, max: 2 }),
        async (plan, delayMs, maxHedgedAttempts) => {
          // The attempt number travels in the body (a factory's), so the plan follows attempts, not arrival order.
          const server = await startServer((_req, res, hit) => {
            const attempt = Number(hit.body.toString());
            const { does, ms } = plan[attempt - 1] as { does: Behaviour; ms: number };
            setTimeout(() => {
              if (does === 'ok') reply(res, 200, `#${attempt}`);
              else if (does === 'fail') reply(res, 503, `#${attempt}`);
              else if (does === 'reset') res.socket?.resetAndDestroy();
            }, ms);
          });
          const agent = new Agent();
          try {
            const dispatcher = agent.compose(
              interceptor({ policy: pipeline(hedge({ delayMs, maxHedgedAttempts }), timeout(200)) }),
            );
            let outcome: { status: number; body: string } | { error: unknown };
            try {
              const res = await dispatcher.request({
                origin: server.origin,
                path: '/',
                method: 'PUT',
                body: 'unused',
                bulwark: { body: (attempt) => String(attempt) },
              });
              outcome = { status: res.statusCode, body: await res.body.text() };
            } catch (error) {
              outcome = { error };
            }
            const sent = server.hits.map((h) => Number(h.body.toString()));
            expect(sent.length).toBeGreaterThanOrEqual(1);
            expect(sent.length).toBeLessThanOrEqual(1 + maxHedgedAttempts);
            const primary = (plan[0] as { does: Behaviour }).does;
            if ('status' in outcome) {
              const attempt = Number(outcome.body.slice(1));
              expect(sent).toContain(attempt);
              if (outcome.status === 200) expect(plan[attempt - 1]?.does).toBe('ok');
              else {
                // Every attempt failed: the primary's failed response.
                expect(outcome).toEqual({ status: 503, body: '#1' });
                expect(primary).toBe('fail');
              }
            } else {
              // Every attempt failed: the primary's error (its timeout, or its reset connection).
              const error = outcome.error as { name?: string; code?: string };
              if (primary === 'hang') expect(error.name).toBe('TimeoutError');
              else expect(primary).toBe('reset');
            }
            // Nothing leaks: closing the agent waits for every request still running; then every socket closes.
            await agent.close();
            await waitFor(() => server.sockets.open === 0, 'every socket closed');
          } finally {
            await agent.destroy().catch(() => {});
            await server.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
