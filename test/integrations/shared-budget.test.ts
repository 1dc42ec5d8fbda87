import { status } from '@grpc/grpc-js';
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  constant,
  pipeline,
  type RetryBudget,
  type RetryExhaustedEvent,
  retry,
  retryBudget,
  retryTokenBudget,
  timeout,
} from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { type Delivery, wrapHandler } from '../../src/integrations/messaging/index.js';
import { createFetch } from '../../src/integrations/undici/index.js';
import { closeAll, greeterClient, PATH, startGreeter, unary } from './grpc/helpers.js';
import { reply, startServer, type TestServer } from './undici/helpers.js';

// The docs promise that one budget per upstream can be shared by the HTTP, gRPC and message-handler pipelines that
// call it: a failure seen through one adapter spends what the others may retry. This runs the three adapters for
// real (node:http and grpc-js servers on 127.0.0.1, wrapHandler settling a delivery) around one budget.

/** A delivery that records how the wrapper settled it (the broker adapters have their own tests). */
function delivery(body: string): { delivery: Delivery<string>; settled: string[] } {
  const settled: string[] = [];
  return {
    settled,
    delivery: {
      body,
      attempt: 1,
      headers: {},
      ack: () => void settled.push('ack'),
      retryLater: (ms) => void settled.push(`retryLater(${ms})`),
      deadLetter: (d) => void settled.push(`deadLetter(${d.reason})`),
      release: () => void settled.push('release'),
      working: () => undefined,
    },
  };
}

/** The three adapters of one upstream, each with its own pipeline around the same budget. */
async function upstream(budget: RetryBudget) {
  let healthy = false;
  const exhausted: string[] = [];
  const policy = (adapter: string) => {
    const r = retry({ maxAttempts: 3, backoff: constant(0), budget });
    r.on('retry.exhausted', (e: RetryExhaustedEvent) => exhausted.push(`${adapter}:${e.reason}`));
    return pipeline(r, timeout(5_000));
  };
  const http: TestServer = await startServer((_req, res) => reply(res, healthy ? 200 : 503, healthy ? 'ok' : 'down'));
  const agent = new Agent();
  const fetch = createFetch({ dispatcher: agent, policy: policy('http') });
  const grpc = await startGreeter({
    SayHello: (hit) =>
      healthy ? { ok: { message: 'hello', attempt: hit.n } } : { code: status.UNAVAILABLE, details: 'down' },
  });
  const client = greeterClient(grpc, [grpcInterceptor({ methods: { [PATH.SayHello]: policy('grpc') } })]);
  let handled = 0;
  const handle = wrapHandler(
    async () => {
      handled++;
      // The handler calls the same upstream (plain fetch: its retries are the handler policy's).
      const res = await globalThis.fetch(`${http.origin}/reserve`);
      await res.text();
      if (res.status !== 200) throw new Error(`inventory answered ${res.status}`);
    },
    { policy: policy('handler'), redeliveryDelay: () => 1_000 },
  );
  return {
    exhausted,
    setHealthy: (h: boolean) => {
      healthy = h;
    },
    /** Requests the HTTP server saw: the interceptor's attempts and the handler's. */
    httpHits: () => http.hits.length,
    grpcHits: () => grpc.hits.length,
    handled: () => handled,
    async get(): Promise<number> {
      const res = await fetch(`${http.origin}/stock`);
      await res.text();
      return res.status;
    },
    async hello(): Promise<number> {
      const { error } = await unary(client, 'SayHello', { name: 'ada' }).result;
      return error === null ? status.OK : error.code;
    },
    async message(): Promise<string[]> {
      const d = delivery('order-1');
      await handle(d.delivery);
      return d.settled;
    },
    async close(): Promise<void> {
      await agent.close();
      await http.close();
    },
  };
}

describe('one retry budget shared by the HTTP, gRPC and message-handler adapters of one upstream', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    closeAll();
    await close?.();
    close = undefined;
  });

  it("retryTokenBudget: failures seen over HTTP stop gRPC's and the handler's retries; successes anywhere restore them", async () => {
    // 4 tokens; a failed attempt takes 1, a success gives 0.5 back; retries only while more than 2 are left.
    const budget = retryTokenBudget({ maxTokens: 4, tokenRatio: 0.5 });
    const u = await upstream(budget);
    close = u.close;

    // HTTP: attempt 1 fails (4 -> 3 tokens), retried; attempt 2 fails (3 -> 2), refused: 2 requests, not 3.
    expect(await u.get()).toBe(503);
    expect(u.httpHits()).toBe(2);
    expect(budget.tokens).toBe(2);
    // gRPC: its first failure (2 -> 1) is not retried: the HTTP failures spent the budget.
    expect(await u.hello()).toBe(status.UNAVAILABLE);
    expect(u.grpcHits()).toBe(1);
    // The message handler: one run (1 -> 0), no in-process retry; the delivery is redelivered later by the broker.
    expect(await u.message()).toEqual(['retryLater(1000)']);
    expect(u.handled()).toBe(1);
    expect(u.httpHits()).toBe(3);
    expect(budget.tokens).toBe(0);
    expect(u.exhausted).toEqual(['http:budget', 'grpc:budget', 'handler:budget']);
    expect(budget.refused).toBe(3);

    // The upstream heals: successes through any adapter refill the one bucket, 0.5 each.
    u.setHealthy(true);
    for (let i = 0; i < 3; i++) expect(await u.get()).toBe(200);
    for (let i = 0; i < 3; i++) expect(await u.hello()).toBe(status.OK);
    expect(await u.message()).toEqual(['ack']);
    expect(budget.tokens).toBe(3.5);

    // It fails again: gRPC's first failure (3.5 -> 2.5) may be retried now, its second (2.5 -> 1.5) not.
    u.setHealthy(false);
    const before = u.grpcHits();
    expect(await u.hello()).toBe(status.UNAVAILABLE);
    expect(u.grpcHits() - before).toBe(2);
    expect(budget.tokens).toBe(1.5);
  });

  it('retryBudget: the calls in flight through every adapter make up the share retries may take', async () => {
    // ratio 0.5, no floor: a retry may start while retries in flight <= half the calls in flight (all adapters).
    const budget = retryBudget({ ratio: 0.5, minConcurrency: 0 });
    const u = await upstream(budget);
    close = u.close;

    // Alone, a call is 1 in flight: its retry would be 1 of 1 (> 0.5): refused.
    expect(await u.hello()).toBe(status.UNAVAILABLE);
    expect(u.grpcHits()).toBe(1);
    expect(budget.refused).toBe(1);

    // Three calls at once, one per adapter: 3 in flight, so 1 retry (1 <= 1.5) may run; a second (2 > 1.5) not.
    const refusedBefore = budget.refused;
    const [http, grpc, handler] = await Promise.all([u.get(), u.hello(), u.message()]);
    expect(http).toBe(503);
    expect(grpc).toBe(status.UNAVAILABLE);
    expect(handler).toEqual(['retryLater(1000)']);
    const attempts = u.httpHits() + u.grpcHits() - 1; // the first call's single gRPC attempt is not part of this
    expect(attempts).toBeGreaterThanOrEqual(4); // 3 first attempts and at least one retry
    expect(attempts).toBeLessThanOrEqual(5); // never the 9 that 3 attempts each would make
    expect(budget.refused).toBeGreaterThan(refusedBefore);
    expect(budget.callsInFlight).toBe(0);
    expect(budget.retriesInFlight).toBe(0);
  });
});
