import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  type CircuitBreakerPolicy,
  circuitBreaker,
  exponential,
  pipeline,
  retry,
  timeout,
} from '../../../src/index.js';
import { createFetch } from '../../../src/integrations/undici/index.js';
import { reply, startServer, type TestServer } from './helpers.js';

// Issue 11 item 19: with the recommended pipeline, a burst of local load (32 workers, a bulkhead of 4) against a
// healthy server opened the breaker 0.1 s after start: every BulkheadRejectedError counted as a failure of the
// upstream. A breaker must count only what the upstream did.
describe('a local burst against a healthy server (issue 11 item 19)', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('rejects locally but never opens the breaker of the documented pipeline', async () => {
    server = await startServer((_req, res) => {
      setTimeout(() => reply(res, 200, 'ok'), 5); // healthy, a little slow: the bulkhead fills up
    });
    let breaker: CircuitBreakerPolicy | undefined;
    const opened: string[] = [];
    const perOrigin = () => {
      breaker = circuitBreaker({ failureRate: 0.5, minimumCalls: 20, halfOpenAfterMs: 10_000 });
      breaker.on('circuit.open', (e) => opened.push(`${e.failureRate}`));
      return pipeline(
        retry({ maxAttempts: 3, backoff: exponential({ initialMs: 1, maxMs: 5 }) }),
        breaker,
        timeout(2_000),
        bulkhead({ limit: 4, queue: 0 }),
      );
    };
    const fetch = createFetch({ dispatcher: new Agent({ connections: 8 }), policy: perOrigin });
    const origin = server.origin;
    let ok = 0;
    let rejected = 0;
    const other: unknown[] = [];
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 10; i++) {
        try {
          const res = await fetch(`${origin}/v1/stock`);
          await res.text();
          if (res.status === 200) ok++;
        } catch (e) {
          if (e instanceof BulkheadRejectedError) rejected++;
          else other.push(e);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: 32 }, worker));
    } finally {
      await fetch.close();
    }
    expect(other).toEqual([]);
    expect(rejected).toBeGreaterThan(0); // the burst really was refused locally
    expect(ok + rejected).toBe(320);
    expect(opened).toEqual([]);
    expect(breaker?.state).toBe('closed');
  });
});
