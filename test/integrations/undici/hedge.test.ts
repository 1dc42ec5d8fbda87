import { Agent, type Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { hedge, InvalidOptionsError, keyed, type Policy, pipeline, retry, timeout } from '../../../src/index.js';
import { createFetch, interceptor, type UndiciInterceptorOptions } from '../../../src/integrations/undici/index.js';
import { Resources, rejectionOf, reply, startServer } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.closeAll());

/** What every refusal says: the reason, and what to do instead. */
const REFUSAL =
  /hedging is not supported inside the bulwark\/undici interceptor yet, because an HTTP call there runs one attempt at a time; hedge around request\(\)\/fetch instead, or use retry/;

function agentWith(options: UndiciInterceptorOptions): Dispatcher {
  return resources.add(new Agent()).compose(interceptor(options));
}

/** A server that answers the first request slowly (300 ms) and every other at once: what a hedge is for. */
async function slowFirst() {
  return resources.add(
    await startServer((_req, res, hit) => {
      setTimeout(() => reply(res, 200, `body of #${hit.n}`), hit.n === 1 ? 300 : 0);
    }),
  );
}

describe('undici interceptor: a policy holding hedge() is refused', () => {
  // Why refused, found with a real server: a hedge inside the interceptor discarded its primary attempt when the
  // hedge started (a call runs one attempt at a time), so with a primary answering after 40 ms and the hedge after
  // 300 ms the caller waited 300 ms: a restart after the delay, not a hedge.
  it('at construction: a hedge alone, in a pipeline, in a nested pipeline, or made already by a keyed member', () => {
    const candidates: Policy[] = [
      hedge({ delayMs: 20 }),
      pipeline(hedge({ delayMs: 20 }), timeout(1_000)),
      pipeline(retry(), pipeline(hedge({ delayMs: 20, name: 'reads' }), timeout(1_000))),
    ];
    const perKey = keyed(
      () => 'k',
      () => hedge({ delayMs: 20 }),
    );
    perKey.get('k');
    candidates.push(pipeline(retry(), perKey));
    for (const policy of candidates) {
      let thrown: unknown;
      try {
        interceptor({ policy });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expect((thrown as Error).message).toMatch(REFUSAL);
      expect((thrown as InvalidOptionsError).problems.map((p) => p.option)).toEqual(['policy']);
    }
    expect(() => interceptor({ policy: pipeline(hedge({ delayMs: 20, name: 'reads' }), timeout(1_000)) })).toThrow(
      /policy: expected a policy without hedge\(\): .*, got a policy containing hedge "reads"/,
    );
    // createFetch checks the same option, under its own name.
    expect(() =>
      createFetch({ policy: pipeline(hedge({ delayMs: 20 }), timeout(1_000)), dispatcher: resources.add(new Agent()) }),
    ).toThrow(/^createFetch: invalid options\n {2}- policy: expected a policy without hedge\(\)/);
  });

  it('a pipeline without a hedge still works (the check looks for hedge only)', async () => {
    const server = await slowFirst();
    const agent = agentWith({ policy: pipeline(retry(), timeout(1_000)) });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('body of #1');
  });

  it('per origin: the first request fails with the InvalidOptionsError, nothing is sent; asked again next time', async () => {
    const server = await slowFirst();
    let asked = 0;
    const agent = agentWith({
      policy: () => {
        asked++;
        return pipeline(hedge({ delayMs: 20 }), timeout(1_000));
      },
    });
    for (let i = 1; i <= 2; i++) {
      const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(REFUSAL);
      expect((error as InvalidOptionsError).problems[0]?.option).toBe(`policy(${JSON.stringify(server.origin)})`);
      expect(asked).toBe(i);
    }
    expect(server.hits).toHaveLength(0);
  });

  it("per origin through createFetch: fetch rejects with bulwark's error itself, nothing is sent", async () => {
    const server = await slowFirst();
    const fetch = createFetch({
      policy: () => pipeline(hedge({ delayMs: 20 }), timeout(1_000)),
      dispatcher: resources.add(new Agent()),
    });
    const error = await rejectionOf(fetch(`${server.origin}/`));
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toMatch(REFUSAL);
    expect(server.hits).toHaveLength(0);
  });

  it("a request's own bulwark.policy holding a hedge fails that request, unsent; the others go on", async () => {
    const server = await slowFirst();
    const agent = agentWith({ policy: timeout(1_000) });
    const error = await rejectionOf(
      agent.request({
        origin: server.origin,
        path: '/',
        method: 'GET',
        bulwark: { policy: pipeline(hedge({ delayMs: 20 }), timeout(1_000)) },
      }),
    );
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toMatch(REFUSAL);
    expect((error as InvalidOptionsError).problems[0]?.option).toBe('bulwark.policy');
    expect(server.hits).toHaveLength(0);

    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect(await res.body.text()).toBe('body of #1');
  });
});
