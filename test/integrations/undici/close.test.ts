import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Agent, Dispatcher, errors } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { bulkhead, constant, retry } from '../../../src/index.js';
import { createFetch, interceptor } from '../../../src/integrations/undici/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { Resources, rejectionOf, reply, startServer, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.closeAll());

const CLOSED_MESSAGE =
  'bulwark/undici: fetch.close() was called while this request waited to be sent again (a retry backoff, a Retry-After or a bulkhead queue); it was not sent again';

const LATE_MESSAGE = 'bulwark/undici: fetch.close() was called before this request; it was not sent';

/*
 * Regressions: fetch.close() during a retry backoff resolved at once; the waiting request failed about 1 s later
 * with UND_ERR_DESTROYED, and its timer kept the process alive until then.
 */
describe('createFetch: close() settles what waits to be sent', { timeout: 10_000 }, () => {
  it('a request waiting out a backoff rejects at once with a clear error, before close() resolves; no timer left', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 503, 'busy')));
    const clock = new FakeClock();
    const fetch = createFetch({ policy: retry({ clock, backoff: constant(10_000) }) });
    const order: string[] = [];
    const pending = fetch(server.origin).then(
      () => order.push('resolved'),
      (error: unknown) => {
        order.push('rejected');
        return error;
      },
    );
    await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');

    await fetch.close();
    order.push('closed');
    await waitFor(() => order.length === 2, 'the waiting request to settle', { timeoutMs: 1_000 });
    expect(order).toEqual(['rejected', 'closed']);
    const error = await pending;
    expect(error).toBeInstanceOf(errors.ClientClosedError);
    expect(error).toMatchObject({ code: 'UND_ERR_CLOSED', message: CLOSED_MESSAGE });
    expect(clock.pendingTimers).toBe(0);
    expect(server.hits).toHaveLength(1);
  });

  it('a request whose last attempt the dispatcher threw on (not on the wire) rejects at once too', async () => {
    const clock = new FakeClock();
    let thrown = 0;
    // A dispatcher of its own whose dispatch throws (undici's own report errors to the handler instead).
    class Throwing extends Dispatcher {
      override dispatch(): boolean {
        thrown++;
        throw new Error('dispatcher bug');
      }
      override async close(): Promise<void> {}
    }
    const throwing = new Throwing();
    const fetch = createFetch({ dispatcher: throwing, policy: retry({ clock, backoff: constant(10_000) }) });
    const pending = rejectionOf(fetch('http://127.0.0.1:8089/'));
    await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');
    const closing = fetch.close();
    expect(await pending).toMatchObject({ code: 'UND_ERR_CLOSED', message: CLOSED_MESSAGE });
    await closing;
    expect(clock.pendingTimers).toBe(0);
    expect(thrown).toBe(1);
  });

  it('a request queued in a bulkhead rejects at once too', async () => {
    let answer: (() => void) | undefined;
    const server = resources.add(
      await startServer((_req, res) => {
        answer = () => reply(res, 200, 'first');
      }),
    );
    const fetch = createFetch({ policy: bulkhead({ limit: 1, queue: 1 }) });
    const first = fetch(`${server.origin}/first`);
    await waitFor(() => answer !== undefined, 'the first request at the server');
    const queued = rejectionOf(fetch(`${server.origin}/queued`));

    const closing = fetch.close();
    expect(await queued).toMatchObject({ code: 'UND_ERR_CLOSED', message: CLOSED_MESSAGE });
    answer?.();
    expect(await (await first).text()).toBe('first'); // the one in flight finishes, as undici's close() promises
    await closing;
    expect(server.hits.map((h) => h.url)).toEqual(['/first']);
  });

  it('an attempt in flight at close() finishes and is final: its 503 is returned, not retried', async () => {
    let answer: (() => void) | undefined;
    const server = resources.add(
      await startServer((_req, res) => {
        answer = () => reply(res, 503, 'busy');
      }),
    );
    const clock = new FakeClock();
    const fetch = createFetch({ policy: retry({ clock, backoff: constant(100) }) });
    const pending = fetch(server.origin);
    await waitFor(() => answer !== undefined, 'the request at the server');

    const closing = fetch.close();
    answer?.();
    const res = await pending;
    expect([res.status, await res.text()]).toEqual([503, 'busy']);
    await closing;
    expect(clock.pendingTimers).toBe(0);
    expect(server.hits).toHaveLength(1);
  });

  it('a request made while close() waits for another is refused at once, unsent, never retried', async () => {
    let answer: (() => void) | undefined;
    const server = resources.add(
      await startServer((req, res) => {
        if (req.url === '/hold') answer = () => reply(res, 200, 'held');
        else reply(res, 200, 'ok');
      }),
    );
    const clock = new FakeClock();
    const fetch = createFetch({ policy: retry({ clock, backoff: constant(100) }) });
    const held = fetch(`${server.origin}/hold`);
    await waitFor(() => answer !== undefined, 'the held request at the server');
    const closing = fetch.close(); // waits for /hold

    const error = await rejectionOf(fetch(`${server.origin}/late`));
    expect(error).toBeInstanceOf(errors.ClientClosedError);
    expect(error).toMatchObject({ code: 'UND_ERR_CLOSED', message: LATE_MESSAGE });
    expect(clock.pendingTimers).toBe(0);
    answer?.();
    expect(await (await held).text()).toBe('held');
    await closing;
    expect(server.hits.map((h) => h.url)).toEqual(['/hold']);
  });

  it('after close() has resolved, a request is refused too, even one given its own dispatcher (never sent without the policy)', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 200, 'ok')));
    const clock = new FakeClock();
    const fetch = createFetch({ policy: retry({ clock, backoff: constant(100) }) });
    await fetch.close();
    const own = resources.add(new Agent());
    for (const init of [undefined, { dispatcher: own }]) {
      const error = await rejectionOf(fetch(server.origin, init));
      expect(error).toMatchObject({ code: 'UND_ERR_CLOSED', message: LATE_MESSAGE });
    }
    expect(clock.pendingTimers).toBe(0);
    expect(server.hits).toHaveLength(0);
  });
});

describe('undici interceptor: a closed dispatcher', { timeout: 10_000 }, () => {
  it("a retry that wakes while agent.close() is under way fails at once with undici's UND_ERR_CLOSED, not retried", async () => {
    let answer: (() => void) | undefined;
    const server = resources.add(
      await startServer((req, res) => {
        if (req.url === '/hold') answer = () => reply(res, 200, 'held');
        else reply(res, 503, 'busy');
      }),
    );
    const clock = new FakeClock();
    const base = new Agent();
    const agent = base.compose(interceptor({ policy: retry({ clock, maxAttempts: 5, backoff: constant(1_000) }) }));
    const held = agent.request({ origin: server.origin, path: '/hold', method: 'GET', bulwark: { policy: false } });
    await waitFor(() => answer !== undefined, 'the held request at the server');
    const pending = rejectionOf(agent.request({ origin: server.origin, path: '/', method: 'GET' }));
    await waitFor(() => clock.pendingTimers === 1, 'the backoff timer');

    // The interceptor cannot see agent.close() (undici calls no hook): the waiting retry wakes, and the closing
    // dispatcher's refusal is final instead of being retried on the backoff.
    const closing = base.close();
    await clock.advance(1_000);
    const error = await pending;
    expect(error).toMatchObject({ code: 'UND_ERR_CLOSED', retryable: false });
    expect(clock.pendingTimers).toBe(0);
    answer?.();
    await (await held).body.dump();
    await closing;
    expect(server.hits.map((h) => h.url)).toEqual(['/hold', '/']);
  });
});

const DIST = new URL('../../../dist/undici.js', import.meta.url);

/** The undici major this run uses (vitest.undici8.config.ts sets 8 and aliases 'undici' to 'undici8'). */
const MAJOR = Number(process.env.BULWARK_UNDICI_MAJOR ?? '7');

/**
 * Node options for a child that must use the same undici as this run: under undici 8, a resolve hook preloaded
 * with --import sends 'undici' (imported by dist/) to 'undici8', as the vitest alias does in this process.
 */
const CHILD_FLAGS: readonly string[] =
  MAJOR >= 8
    ? [
        '--import',
        `data:text/javascript,${encodeURIComponent(
          "import { registerHooks } from 'node:module'; registerHooks({ resolve: (s, c, next) => next(s === 'undici' || s.startsWith('undici/') ? 'undici8' + s.slice(6) : s, c) });",
        )}`,
      ]
    : [];

/** Runs an ES module source in a fresh `node`; resolves with its stdout and how long it lived. Kills it past `limitMs`. */
function runChild(source: string, limitMs: number): Promise<{ stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [...CHILD_FLAGS, '--input-type=module', '--eval', source], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child was still alive after ${limitMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, limitMs);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ stdout, stderr, ms: performance.now() - start });
    });
  });
}

describe('createFetch: close() lets the process exit', { timeout: 30_000 }, () => {
  it('dist/ is built (npx tsup)', () => {
    expect(existsSync(fileURLToPath(DIST)), `${fileURLToPath(DIST)} exists`).toBe(true);
  });

  it('a process that closes its fetch during a 60 s backoff exits at once', async () => {
    const source = `
      import { createServer } from 'node:http';
      import { retry, constant } from ${JSON.stringify(new URL('../../../dist/index.js', import.meta.url).href)};
      import { createFetch } from ${JSON.stringify(DIST.href)};
      console.log('undici ' + ('Dispatcher1Wrapper' in (await import('undici')) ? 8 : 7));
      let hits = 0;
      const server = createServer((req, res) => { hits++; res.writeHead(503).end('busy'); });
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const fetch = createFetch({ policy: retry({ backoff: constant(60_000) }) });
      const pending = fetch('http://127.0.0.1:' + server.address().port).then(
        (res) => 'resolved ' + res.status,
        (e) => 'rejected ' + e.code,
      );
      while (hits === 0) await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      await fetch.close();
      server.close();
      console.log('request ' + (await pending));
      console.log('done');
    `;
    const { stdout, stderr } = await runChild(source, 15_000);
    expect(stderr).toBe('');
    expect(stdout).toBe(`undici ${MAJOR}\nrequest rejected UND_ERR_CLOSED\ndone\n`);
  });
});
