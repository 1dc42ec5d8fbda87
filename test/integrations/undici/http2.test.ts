import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { constant, pipeline, retry, timeout } from '../../../src/index.js';
import { createFetch, interceptor } from '../../../src/integrations/undici/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { advanceUntil, Resources, waitFor } from './helpers.js';

/*
 * undici 8 speaks HTTP/2 by default to a TLS server that offers it (ALPN); undici 7 does with `allowH2: true`.
 * The interceptor must hold, retry, time out and deliver per stream as it does per HTTP/1.1 request. The key and
 * certificate in test/fixtures/tls are a self-signed pair for 127.0.0.1, for these tests only.
 */
const TLS = new URL('../../fixtures/tls/', import.meta.url);
const cert = readFileSync(new URL('localhost.crt', TLS));
const key = readFileSync(new URL('localhost.key', TLS));

const resources = new Resources();
/** The undici major this run uses (vitest.undici8.config.ts sets 8). */
const MAJOR = Number(process.env.BULWARK_UNDICI_MAJOR ?? '7');
afterEach(() => resources.closeAll());

interface H2Server {
  readonly origin: string;
  /** Request paths, in arrival order. */
  readonly hits: string[];
  /** HTTP/2 sessions (connections) opened. */
  readonly sessions: { opened: number };
  /** Paths of the streams the client reset before they ended. */
  readonly reset: string[];
  close(): Promise<void>;
}

/** An HTTP/2-only TLS server on 127.0.0.1: `respond` answers each stream (it may leave one hanging). */
async function startH2(respond: (stream: ServerHttp2Stream, path: string, n: number) => void): Promise<H2Server> {
  const hits: string[] = [];
  const reset: string[] = [];
  const sessions = { opened: 0 };
  const server: Http2SecureServer = createSecureServer({ key, cert, allowHTTP1: false });
  const live = new Set<import('node:http2').ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.opened++;
    live.add(session);
    session.on('close', () => live.delete(session));
  });
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    hits.push(path);
    stream.on('error', () => {});
    stream.on('aborted', () => reset.push(path)); // the client reset the stream before it ended
    respond(stream, path, hits.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `https://127.0.0.1:${port}`,
    hits,
    sessions,
    reset,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function h2Agent(policy: Parameters<typeof interceptor>[0]['policy']): Dispatcher {
  return resources.add(new Agent({ allowH2: true, connect: { ca: cert } })).compose(interceptor({ policy }));
}

describe('undici interceptor over HTTP/2 (TLS, ALPN)', { timeout: 5_000 }, () => {
  it('holds a failed response with a 100 KiB body, retries, delivers the 200; nothing reset', async () => {
    const server = resources.add(
      await startH2((stream, _path, n) => {
        if (n === 1) {
          stream.respond({ ':status': 503, 'retry-after': '0' });
          stream.end('x'.repeat(100 * 1024));
        } else {
          stream.respond({ ':status': 200, 'x-n': String(n) });
          stream.end(`ok ${n}`);
        }
      }),
    );
    const agent = h2Agent(retry({ clock: new FakeClock(), backoff: constant(0) }));
    const res = await agent.request({ origin: server.origin, path: '/', method: 'GET' });
    expect([res.statusCode, res.headers['x-n'], await res.body.text()]).toEqual([200, '2', 'ok 2']);
    expect(server.hits).toEqual(['/', '/']);
    // undici 7 opens a second session for the retry while the held 503's body still streams (one stream per
    // session unless `pipelining` says more); undici 8 multiplexes both on one. Either way nothing was cut off.
    expect(server.sessions.opened).toBe(MAJOR >= 8 ? 1 : 2);
    expect(server.reset).toEqual([]);
  });

  it('a per-attempt timeout resets only its stream; the retry succeeds on the same session', async () => {
    const server = resources.add(
      await startH2((stream, _path, n) => {
        if (n === 1) return; // never answers: the attempt times out
        stream.respond({ ':status': 200 });
        stream.end(`ok ${n}`);
      }),
    );
    const clock = new FakeClock();
    const agent = h2Agent(pipeline(retry({ clock, backoff: constant(0) }), timeout({ ms: 1_000, clock })));
    const pending = agent.request({ origin: server.origin, path: '/slow', method: 'GET' });
    pending.catch(() => {});
    await waitFor(() => server.hits.length === 1, 'the first stream');
    await advanceUntil(clock, 100, () => server.hits.length === 2, 'the retried stream');
    const res = await pending;
    expect([res.statusCode, await res.body.text()]).toEqual([200, 'ok 2']);
    await waitFor(() => server.reset.length === 1, 'the timed-out stream to be reset');
    expect(server.reset).toEqual(['/slow']);
    expect(server.sessions.opened).toBe(1);
  });

  it('createFetch over HTTP/2: the retried response with its headers', async () => {
    const server = resources.add(
      await startH2((stream, _path, n) => {
        stream.respond({ ':status': n === 1 ? 503 : 200, 'x-n': String(n) });
        stream.end(`#${n}`);
      }),
    );
    const fetch = resources.add(
      createFetch({
        policy: retry({ clock: new FakeClock(), backoff: constant(0) }),
        dispatcher: new Agent({ allowH2: true, connect: { ca: cert } }),
      }),
    );
    const res = await fetch(`${server.origin}/`);
    expect([res.status, res.headers.get('x-n'), await res.text()]).toEqual([200, '2', '#2']);
  });
});
