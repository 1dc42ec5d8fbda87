import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { constant, fallback, InvalidOptionsError, Properties, pipeline, retry, timeout } from '../../../src/index.js';
import { IDEMPOTENCY_KEY, withHeader } from '../../../src/integrations/undici/classify.js';
import {
  createFetch,
  HttpStatusError,
  interceptor,
  type UndiciInterceptorOptions,
} from '../../../src/integrations/undici/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { advanceUntil, Resources, rejectionOf, reply, startServer, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.closeAll());

function agentWith(options: UndiciInterceptorOptions, agentOptions?: Agent.Options): Dispatcher {
  return resources.add(new Agent(agentOptions)).compose(interceptor(options));
}

/*
 * Regressions: each test failed against an earlier version of src/integrations/undici.
 */
describe('undici interceptor: connections during a retry backoff', { timeout: 5_000 }, () => {
  it('a failed response waiting out a long backoff does not pin its connection (connections: 1)', async () => {
    const seen = new Map<string, number>();
    const server = resources.add(
      await startServer((req, res) => {
        const n = (seen.get(req.url ?? '') ?? 0) + 1;
        seen.set(req.url ?? '', n);
        reply(res, req.url === '/slow' && n === 1 ? 503 : 200, `${req.url} #${n}`);
      }),
    );
    const clock = new FakeClock();
    const agent = agentWith({ policy: retry({ clock, backoff: constant(10_000) }) }, { connections: 1 });

    const slow = agent.request({ origin: server.origin, path: '/slow', method: 'GET' });
    slow.catch(() => {}); // judged below; no unhandled rejection if the test fails early
    await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');
    let other: string | undefined;
    const fast = agent.request({ origin: server.origin, path: '/fast', method: 'GET' }).then(async (res) => {
      other = `${res.statusCode} ${await res.body.text()}`;
    });
    fast.catch(() => {});
    // The clock does not move: /fast must not wait for /slow's 10 s backoff (the 503 is already fully received).
    await waitFor(() => other !== undefined, '/fast to complete during /slow’s backoff');
    expect(other).toBe('200 /fast #1');
    await fast;

    await advanceUntil(clock, 10_000, () => server.hits.length === 3, '3 hits');
    const res = await slow;
    expect(await res.body.text()).toBe('/slow #2');
    expect(server.hits.map((h) => h.url)).toEqual(['/slow', '/fast', '/slow']);
  });
});

describe('undici interceptor: repeated request headers with generateIdempotencyKeys: true', { timeout: 5_000 }, () => {
  it('withHeader keeps every value of a header repeated in a flat array or an iterable', () => {
    expect(withHeader(['Accept', 'a', 'accept', 'b', 'x', '1'], IDEMPOTENCY_KEY, 'k')).toEqual({
      accept: ['a', 'b'],
      x: '1',
      [IDEMPOTENCY_KEY]: 'k',
    });
    const pairs: [string, string][] = [
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
    ];
    expect(withHeader(pairs[Symbol.iterator](), IDEMPOTENCY_KEY, 'k')).toEqual({
      cookie: ['a=1', 'b=2'],
      [IDEMPOTENCY_KEY]: 'k',
    });
  });

  it('a POST with a repeated header reaches the server with all its values when a key is generated', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const agent = agentWith({ policy: retry({ backoff: constant(0) }), generateIdempotencyKeys: true });
    const headers = ['x-tag', 'a', 'x-tag', 'b'];

    const plain = await agent.request({
      origin: server.origin,
      path: '/',
      method: 'POST',
      headers,
      body: 'x',
      bulwark: { policy: false },
    });
    await plain.body.dump();
    const keyed = await agent.request({ origin: server.origin, path: '/', method: 'POST', headers, body: 'x' });
    await keyed.body.dump();

    expect(server.hits[0]?.headers['x-tag']).toBe('a, b');
    expect(server.hits[1]?.headers[IDEMPOTENCY_KEY]).toMatch(/^[0-9a-f-]{36}$/);
    expect(server.hits[1]?.headers['x-tag']).toBe('a, b');
  });
});

describe('undici interceptor: requests that must not be sent twice', { timeout: 5_000 }, () => {
  it('a POST without a key that times out is not sent again', async () => {
    const server = resources.add(
      await startServer(() => {
        // never answers
      }),
    );
    // 300 ms: on a loaded machine a 50 ms timeout could fire before the request reached the server (0 hits).
    const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), timeout(300)) });
    const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'POST', body: 'x' }));
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(server.hits).toHaveLength(1);
  });

  it('a PUT with a one-shot stream body that times out is not sent again (never an empty second body)', async () => {
    const server = resources.add(
      await startServer(() => {
        // never answers
      }),
    );
    // 300 ms: on a loaded machine a 50 ms timeout could fire before the request reached the server (0 hits).
    const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), timeout(300)) });
    const body = Readable.from([Buffer.from('abc')]);
    const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'PUT', body }));
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(server.hits.map((h) => h.body.toString())).toEqual(['abc']);
  });
});

describe('undici interceptor: a policy that resolves with something else', () => {
  it('a fallback inside the policy rejects with a clear TypeError, not with its value', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 503, 'down')));
    const agent = agentWith({ policy: fallback({ value: 'CACHED' }) });
    const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/not an HTTP response \(a fallback inside the interceptor's policy\?\)/);
  });

  it('a policy from elsewhere that resolves with the success of an attempt it replaced gets a TypeError', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const ctx = (attempt: number) =>
      ({ signal: new AbortController().signal, attempt, operation: 'x', properties: new Properties() }) as never;
    // Runs the operation, starts it again, and answers with the first outcome at once: starting the second attempt
    // dropped the first one's response, and the second has none yet.
    const twice = {
      name: 'twice',
      execute: async <T>(op: (ctx: never) => T | PromiseLike<T>) => {
        const first = await op(ctx(1));
        Promise.resolve(op(ctx(2))).catch(() => {});
        return first;
      },
    };
    const agent = agentWith({ policy: twice as never });
    const error = await rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/success of an attempt it had already replaced/);
  });
});

describe('undici integration: odds and ends', () => {
  it('HttpStatusError is recognised across copies by its brand', () => {
    const foreign = Object.assign(new Error('x'), { [Symbol.for('bulwark.http-status-error')]: true });
    expect(foreign).toBeInstanceOf(HttpStatusError);
    expect(new Error('y')).not.toBeInstanceOf(HttpStatusError);
    expect(new HttpStatusError(503, {}, undefined, true, undefined)).toBeInstanceOf(HttpStatusError);
  });

  it('a URL origin and its string form share one per-origin policy', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const origins: string[] = [];
    const agent = agentWith({
      policy: (origin) => {
        origins.push(origin);
        return retry();
      },
    });
    for (const origin of [server.origin, `${server.origin}/`, new URL(server.origin)]) {
      const res = await agent.request({ origin, path: '/', method: 'GET' });
      await res.body.text();
    }
    expect(origins).toEqual([server.origin]);
  });

  it('createFetch names its own options, checks the dispatcher, and closes what it created', async () => {
    expect(() => createFetch({ policy: retry(), dispatchr: 1 } as never)).toThrow(
      /createFetch: invalid options\n {2}- dispatchr: expected a known option \(unknown name; allowed: dispatcher, policy,/,
    );
    expect(() => createFetch({ policy: retry(), dispatcher: {} as never })).toThrow(
      /dispatcher: expected an undici Dispatcher/,
    );
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const fetch = createFetch({ policy: retry() });
    const res = await fetch(server.origin);
    expect(await res.text()).toBe('ok');
    await fetch.close();
    expect((fetch.dispatcher as unknown as { closed: boolean }).closed).toBe(true);
  });
});

describe('undici interceptor: review regressions', () => {
  it("a throw from the caller's handler fails the request instead of hanging it", async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const agent = agentWith({ policy: retry() });
    const error = await rejectionOf(
      agent.stream({ origin: server.origin, path: '/', method: 'GET' }, () => {
        throw new Error('factory bug');
      }),
    );
    expect(error).toMatchObject({ message: 'factory bug' });
  });

  it('a Policy written outside bulwark (a plain execute) runs requests', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const own = {
      name: 'own',
      execute: <T>(op: (ctx: never) => T | PromiseLike<T>) =>
        Promise.resolve(
          op({
            signal: new AbortController().signal,
            attempt: 1,
            operation: 'x',
            properties: new Properties(),
          } as never),
        ),
    };
    const agent = agentWith({ policy: own as never });
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect([res.statusCode, await res.body.text()]).toEqual([200, 'ok']);
  });
});

/** What a v2 handler sees of one response through `dispatcher`: the controller's raw headers and trailers. */
function rawOf(dispatcher: Dispatcher, origin: string, path: string): Promise<{ status: number; raw: unknown[] }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let rawHeaders: unknown;
    dispatcher.dispatch(
      { origin, path, method: 'GET' },
      {
        // undici 7 takes a handler for a v2 one only when it has onRequestStart; undici 8 wants onResponseData.
        onRequestStart() {},
        onResponseData() {},
        onResponseStart(controller, statusCode) {
          status = statusCode;
          rawHeaders = controller.rawHeaders;
        },
        onResponseEnd(controller) {
          resolve({
            status,
            raw: [rawHeaders, controller.rawTrailers].map((r) => (Array.isArray(r) ? r.map(String) : r)),
          });
        },
        onResponseError(_controller, error) {
          reject(error);
        },
      },
    );
  });
}

/*
 * undici 8 reads a response's headers from `controller.rawHeaders` (fetch, request({ responseHeaders: 'raw' }),
 * upgrade, pipeline): the stable controller handed to the caller must show the delivered attempt's raw headers
 * and trailers, or fetch sees a response with no headers at all (and follows no redirect).
 */
describe('undici interceptor: raw headers and trailers reach the caller', { timeout: 5_000 }, () => {
  function serve(): ReturnType<typeof startServer> {
    return startServer((req, res, hit) => {
      if (req.url === '/flaky' && hit.n === 1) {
        res.writeHead(503, { 'x-attempt': 'first' }).end('busy');
        return;
      }
      res.writeHead(200, [
        ['x-attempt', req.url === '/flaky' ? 'second' : 'only'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['trailer', 'x-checksum'],
      ]);
      res.write('ok');
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end();
    });
  }

  it('fetch sees every response header, repeated ones included, of the delivered attempt', async () => {
    const server = resources.add(await serve());
    const fetch = resources.add(createFetch({ policy: retry({ clock: new FakeClock(), backoff: constant(0) }) }));
    const res = await fetch(`${server.origin}/flaky`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-attempt')).toBe('second');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.text()).toBe('ok');
    expect(server.hits.length).toBe(2);
  });

  it("request({ responseHeaders: 'raw' }) gets the raw headers of the delivered attempt", async () => {
    const server = resources.add(await serve());
    const plain = resources.add(new Agent());
    const composed = agentWith({ policy: retry({ clock: new FakeClock(), backoff: constant(0) }) });
    const rawOfRequest = async (d: Dispatcher, path: string) => {
      const res = await d.request({ origin: server.origin, path, method: 'GET', responseHeaders: 'raw' });
      await res.body.text();
      const raw = (res.headers as unknown as unknown[]).map(String);
      return raw.filter((_v, i) => raw[i - (i % 2)]?.toLowerCase() !== 'date'); // its value may change between calls
    };
    const expected = await rawOfRequest(plain, '/plain');
    expect(expected.slice(0, 6)).toEqual(['x-attempt', 'only', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
    const got = await rawOfRequest(composed, '/flaky');
    // On undici 7 too: the interceptor hands request() (a legacy handler) the raw headers undici read, not headers
    // rebuilt from a parsed object (lowercased names, repeated values joined), as any newer-API interceptor there.
    expect(got).toEqual(expected.map((v) => (v === 'only' ? 'second' : v)));
  });

  it("a handler's controller shows the delivered attempt's rawHeaders and rawTrailers, as undici's own does", async () => {
    const server = resources.add(await serve());
    const plain = resources.add(new Agent());
    const expected = await rawOf(plain, server.origin, '/plain');
    expect(expected.raw[1]).toEqual(['x-checksum', 'abc']);
    const composed = agentWith({ policy: retry({ clock: new FakeClock(), backoff: constant(0) }) });
    const got = await rawOf(composed, server.origin, '/flaky');
    expect(got.status).toBe(200);
    const noDate = (raw: unknown) => (raw as string[]).filter((_v, i, all) => all[i - (i % 2)] !== 'date');
    expect(noDate(got.raw[0])).toEqual(noDate(expected.raw[0]).map((v) => (v === 'only' ? 'second' : v)));
    expect(got.raw[1]).toEqual(['x-checksum', 'abc']);
  });
});

describe('undici interceptor and createFetch: option checks', () => {
  it('options whose names cannot be listed (a proxy that throws) are refused with InvalidOptionsError', () => {
    const hostile = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('boom: keys');
        },
      },
    );
    for (const [name, make] of [
      ['undici interceptor', () => interceptor(hostile as never)],
      ['createFetch', () => createFetch(hostile as never)],
    ] as const) {
      const error = (() => {
        try {
          make();
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error, name).toBeInstanceOf(InvalidOptionsError);
      expect((error as InvalidOptionsError).policy).toBe(name);
      expect((error as InvalidOptionsError).message).toContain('listing them threw "boom: keys"');
    }
  });

  it('a getter that throws, own or inherited, is reported by its option name', () => {
    const throwing = {
      get policy(): never {
        throw new Error('boom: read');
      },
    };
    for (const options of [throwing, Object.create(throwing)]) {
      for (const [name, make] of [
        ['undici interceptor', () => interceptor(options as never)],
        ['createFetch', () => createFetch(options as never)],
      ] as const) {
        let error: unknown;
        try {
          make();
        } catch (e) {
          error = e;
        }
        expect(error, name).toBeInstanceOf(InvalidOptionsError);
        expect((error as InvalidOptionsError).policy).toBe(name);
        expect((error as InvalidOptionsError).problems.map((p) => p.option)).toEqual(['policy']);
      }
    }
  });

  it('createFetch reports every bad option in one error: a retired one, a bad interceptor option, a missing policy', () => {
    let error: unknown;
    try {
      createFetch({ idempotencyKey: false, maxOrigins: 0, dispatcher: 5 } as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    const e = error as InvalidOptionsError;
    expect(e.policy).toBe('createFetch');
    expect(e.problems.map((p) => p.option).sort()).toEqual(['dispatcher', 'idempotencyKey', 'maxOrigins', 'policy']);
  });
});
