import { createReadStream, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BulkheadRejectedError,
  bulkhead,
  CircuitOpenError,
  circuitBreaker,
  constant,
  pipeline,
  retry,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import { createFetch, interceptor, type UndiciInterceptorOptions } from '../../../src/integrations/undici/index.js';
import { Resources, rejectionOf, reply, startServer, waitFor } from './helpers.js';

/*
 * Whatever request body bulwark does not send, it releases (a stream destroyed, an iterator returned): a file
 * stream it never reads must not keep its descriptor open. Counted on real descriptors (/proc/self/fd).
 */

const resources = new Resources();
afterEach(() => resources.closeAll());

const CONTENT = 'id,total\n1,20\n';
const files: string[] = [];
let file = '';
/** Each test reads its own file, so a leak in one test is not counted in the next. */
beforeEach(() => {
  const path = join(tmpdir(), `bulwark-bodies-${process.pid}-${Date.now()}-${files.length}.csv`);
  writeFileSync(path, CONTENT);
  file = realpathSync(path);
  files.push(file);
});
afterAll(() => {
  for (const f of files) rmSync(f, { force: true });
});

/** Descriptors of this process open on this test's file. */
function openOnFile(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // closed while we listed it
    }
  }
  return n;
}

/** Settles when each file stream made so far has opened its descriptor (or closed): only then can a leak show. */
let opening: Promise<void>[] = [];
beforeEach(() => {
  opening = [];
});

/** A stream of this test's file (its descriptor opens at once, read or not). */
function fileStream(): Readable {
  const s = createReadStream(file);
  opening.push(new Promise<void>((resolve) => s.once('open', () => resolve()).once('close', () => resolve())));
  return s;
}

async function expectNoneOpen(what: string): Promise<void> {
  expect(opening.length).toBeGreaterThan(0);
  await Promise.all(opening);
  await waitFor(() => openOnFile() === 0, `every descriptor on the file closed (${what})`, { timeoutMs: 2_000 });
  expect(openOnFile()).toBe(0);
}

/**
 * One request through the raw dispatch API, whose handler (unlike `request()`) destroys no request body on error:
 * what bulwark does not release stays open. `abortAtStart` aborts in `onRequestStart`.
 */
function dispatchOnce(
  d: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  abortAtStart = false,
): { done: Promise<number>; abort: (reason: Error) => void } {
  let controller: Dispatcher.DispatchController | undefined;
  const done = new Promise<number>((resolve, reject) => {
    let status = 0;
    d.dispatch(opts, {
      onRequestStart(c) {
        controller = c;
        if (abortAtStart) c.abort(new Error('aborted at start'));
      },
      onResponseStart(_c, s) {
        status = s;
      },
      onResponseData() {},
      onResponseEnd() {
        resolve(status);
      },
      onResponseError(_c, e) {
        reject(e);
      },
    });
  });
  return { done, abort: (reason) => controller?.abort(reason) };
}

function agentWith(options: UndiciInterceptorOptions): Dispatcher {
  return resources.add(new Agent()).compose(interceptor(options));
}

describe('undici interceptor: request bodies bulwark does not send are released', { timeout: 10_000 }, () => {
  it('with a bulwark.body factory, the request’s own stream body (never sent) is destroyed: 50 PUTs leave 0 descriptors', async () => {
    const server = resources.add(await startServer((_req, res, hit) => reply(res, 200, hit.body.toString())));
    const agent = agentWith({ policy: retry({ backoff: constant(0) }) });
    const originals: Readable[] = [];
    for (let i = 0; i < 50; i++) {
      const body = fileStream();
      originals.push(body);
      const res = await agent.request({
        origin: server.origin,
        path: '/upload',
        method: 'PUT',
        body,
        bulwark: { body: () => fileStream() },
      });
      expect(await res.body.text()).toBe(CONTENT);
    }
    await expectNoneOpen('50 PUTs');
    expect(originals.every((s) => s.destroyed)).toBe(true);
    expect(server.hits.map((h) => h.body.toString())).toEqual(Array(50).fill(CONTENT));
  });

  it('a factory alone (no body, as the docs show): each attempt sends the file again; nothing stays open', async () => {
    const server = resources.add(
      await startServer((_req, res, hit) => reply(res, hit.n === 1 ? 503 : 200, hit.body.toString())),
    );
    const agent = agentWith({ policy: retry({ backoff: constant(0) }) });
    const res = await agent.request({
      origin: server.origin,
      path: '/upload',
      method: 'PUT',
      bulwark: { body: () => fileStream() },
    });
    expect([res.statusCode, await res.body.text()]).toEqual([200, CONTENT]);
    expect(server.hits.map((h) => h.body.toString())).toEqual([CONTENT, CONTENT]);
    await expectNoneOpen('factory alone');
  });

  it('an open breaker: the stream body of the refused request is released (raw dispatch, no API to clean up)', async () => {
    const breaker = circuitBreaker();
    const release = breaker.isolate();
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const agent = agentWith({ policy: pipeline(retry({ backoff: constant(0) }), breaker) });
    const opts = { origin: server.origin, path: '/', method: 'PUT' } as const;
    const errors = [
      await rejectionOf(dispatchOnce(agent, { ...opts, body: fileStream() }).done),
      await rejectionOf(
        dispatchOnce(agent, { ...opts, body: fileStream(), bulwark: { body: () => fileStream() } }).done,
      ),
    ];
    expect(errors.map((e) => e instanceof CircuitOpenError)).toEqual([true, true]);
    expect(server.hits).toHaveLength(0);
    await expectNoneOpen('open breaker');
    release();
  });

  it('a full bulkhead, and a caller abort while queued: the stream bodies are released', async () => {
    let answer: (() => void) | undefined;
    const server = resources.add(
      await startServer((_req, res) => {
        answer = () => reply(res, 200, 'late');
      }),
    );
    const agent = agentWith({ policy: bulkhead({ limit: 1, queue: 1 }) });
    const busy = dispatchOnce(agent, { origin: server.origin, path: '/busy', method: 'GET' });
    await waitFor(() => answer !== undefined, 'the first request to reach the server');

    const queued = dispatchOnce(agent, { origin: server.origin, path: '/queued', method: 'PUT', body: fileStream() });
    queued.done.catch(() => {});
    const full = dispatchOnce(agent, {
      origin: server.origin,
      path: '/full',
      method: 'PUT',
      body: fileStream(),
      bulwark: { body: () => fileStream() },
    });
    expect(await rejectionOf(full.done)).toBeInstanceOf(BulkheadRejectedError);
    queued.abort(new Error('caller gave up'));
    expect(await rejectionOf(queued.done)).toMatchObject({ message: 'caller gave up' });
    await expectNoneOpen('full bulkhead, queued abort');

    answer?.();
    expect(await busy.done).toBe(200);
    expect(server.hits.map((h) => h.url)).toEqual(['/busy']);
  });

  it('attempts abandoned by a timeout: each factory body, and the unsent original, are released', async () => {
    const server = resources.add(
      await startServer(
        () => {
          // never answers
        },
        { readBody: false },
      ),
    );
    const agent = agentWith({ policy: pipeline(retry({ maxAttempts: 3, backoff: constant(0) }), timeout(100)) });
    const made: Readable[] = [];
    const error = await rejectionOf(
      dispatchOnce(agent, {
        origin: server.origin,
        path: '/',
        method: 'PUT',
        body: fileStream(),
        bulwark: {
          body: () => {
            // A stream that never ends: the upload is still in progress when the attempt is abandoned.
            const s = new Readable({ read() {} });
            s.push('partial');
            made.push(s);
            return s;
          },
        },
      }).done,
    );
    expect(error).toBeInstanceOf(TimeoutError);
    expect(made).toHaveLength(3);
    await waitFor(() => made.every((s) => s.destroyed), 'every attempt body destroyed');
    await expectNoneOpen('timeouts');
  });

  it('async-iterator bodies: an abandoned attempt’s iterator is returned (its finally runs), an unsent one too', async () => {
    const server = resources.add(
      await startServer(
        () => {
          // never answers
        },
        { readBody: false },
      ),
    );
    const agent = agentWith({ policy: pipeline(retry({ maxAttempts: 2, backoff: constant(0) }), timeout(100)) });
    const finished: number[] = [];
    async function* endless(n: number): AsyncGenerator<Buffer> {
      try {
        for (;;) {
          yield Buffer.from('partial'); // the upload never ends
          await new Promise<void>((resolve) => setTimeout(resolve, 10));
        }
      } finally {
        finished.push(n);
      }
    }
    const original = endless(0);
    const error = await rejectionOf(
      dispatchOnce(agent, {
        origin: server.origin,
        path: '/',
        method: 'PUT',
        // undici sends async iterables, though its DispatchOptions type does not list them.
        body: original as unknown as Readable,
        bulwark: { body: (attempt) => endless(attempt) as unknown as Readable },
      }).done,
    );
    expect(error).toBeInstanceOf(TimeoutError);
    await waitFor(() => finished.length === 2, 'both attempt iterators returned');
    expect(finished.sort()).toEqual([1, 2]); // the original never started: nothing to finish, but it is done
    expect(await original.next()).toEqual({ done: true, value: undefined });
  });

  it('a request the caller aborts as it starts never leaks its body', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const agent = agentWith({ policy: retry() });
    const call = dispatchOnce(agent, { origin: server.origin, path: '/', method: 'PUT', body: fileStream() }, true);
    expect(await rejectionOf(call.done)).toMatchObject({ message: 'aborted at start' });
    await expectNoneOpen('aborted at start');
    expect(server.hits).toHaveLength(0);
  });
});

describe('createFetch: request bodies it does not send are released', { timeout: 10_000 }, () => {
  it('an open breaker: a file stream body (never read) is released', async () => {
    const breaker = circuitBreaker();
    breaker.isolate();
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const fetch = createFetch({ dispatcher: resources.add(new Agent()), policy: breaker });
    const body = fileStream();
    const error = await rejectionOf(
      fetch(server.origin, { method: 'PUT', body: Readable.toWeb(body) as never, duplex: 'half' }),
    );
    expect(error).toBeInstanceOf(CircuitOpenError);
    await expectNoneOpen('fetch, open breaker');
  });
});
