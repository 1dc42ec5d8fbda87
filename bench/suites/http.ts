/**
 * Suite 6: HTTP end to end. A node:http server in a child process on 127.0.0.1, an undici Pool with 64 requests in
 * flight, a fixed number of requests bounded in time. A floor row: the pool composed with an interceptor that only
 * passes the dispatch through (what composing any interceptor costs in undici). bulwark runs twice: as the undici interceptor composed on the
 * pool (how users wire it), and as the core pipeline around `pool.request` passing `ctx.signal` (which shows what an
 * AbortSignal per request costs inside undici). The peers wrap the same `request()` call: cockatiel's four policies,
 * and opossum's CircuitBreaker around a function that calls `pool.request` (how opossum is used with undici).
 *
 * Besides req/s and latency, each run records the client's CPU time (process.cpuUsage, user + system) divided by the
 * requests done. The server runs in another process, so this is the client's own cost per request: on a 2-core
 * machine shared with the server, the cleanest of the signals (req/s depends on how the two processes share the
 * cores). "CPU over bare" is the median over rounds of (contender - bare) in the same round. It still moves between
 * runs by about as much as an interceptor costs, so the same contenders also run in process, on a dispatcher that
 * answers on the next turn of the event loop (see `httpInProcessContenders` and `inProcessInChild`).
 */
import { Dispatcher, Pool } from 'undici';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { interceptor } from '../../src/integrations/undici/index.js';
import {
  closedLoop,
  inProcessInChild,
  type LoadResult,
  loadRounds,
  median,
  type Settings,
  startChildServer,
  withLeadIn,
} from '../harness.js';
import type { Peers } from '../peers.js';

export interface HttpRow {
  readonly contender: string;
  readonly requests: number;
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Median over rounds of (contender req/s / bare req/s) in the same round. */
  readonly throughputRatio: number;
  /** Median over rounds of (contender p99 / bare p99) in the same round. */
  readonly p99Ratio: number;
  /** Median over rounds of the client's CPU time (user + system) per request, in µs. */
  readonly cpuUsPerReq?: number;
  /** Median over rounds of (contender CPU per request - bare CPU per request) in the same round, in µs. */
  readonly cpuUsOverBare?: number;
  /** In process, on a fake dispatcher (see {@link httpInProcessContenders}): median CPU per request, in µs. */
  readonly ownUsPerCall?: number;
  /** In process: median over rounds of (contender - bare) CPU per request in the same round, in µs. */
  readonly ownUsOverBare?: number;
}

/** The contenders' names the targets look up. */
export const HTTP_INTERCEPTOR = 'bulwark interceptor, pipeline(4)';
/** The floor row: an interceptor that passes every dispatch through as it is. */
export const HTTP_EMPTY_INTERCEPTOR = 'empty pass-through interceptor';
/** The prefix of opossum's rows (one per major loaded): `opossum 9 around request()`. */
export const OPOSSUM_AROUND_REQUEST = 'around request()';

const CONCURRENCY = 64;
/** Unmeasured requests of a contender: its warm-up, and again before each of its measured runs (see `withLeadIn`). */
const LEAD_IN = 500;

/** The end-to-end suites' lead-in for contender `c`: its warm-up, and what `withLeadIn` runs before each round. */
export function leadIn(
  s: Settings,
  concurrency: number,
): (c: { readonly run: () => Promise<unknown> }) => Promise<LoadResult> {
  return (c) => closedLoop(c.run, Math.min(LEAD_IN, s.httpRequests), s.httpMaxMs, concurrency);
}

/**
 * Rounds of the end-to-end suites: at least 8 (quick) or 20. Why more than the settings' default: throughput on a
 * 2-core machine shared with the server swings from one short run to the next, and only many alternating rounds
 * give a median ratio that holds still.
 */
export function endToEndRounds(s: Settings): number {
  return Math.max(s.httpRounds, s.quick ? 8 : 20);
}

/**
 * An interceptor that does nothing: it hands every dispatch on as it is. Why in the table: composing any interceptor
 * on undici 7 costs something before it does anything: compose wraps the caller's handler in a WrapHandler (undici's
 * legacy callbacks behind the newer API), and the pool, handed a handler of the newer API, wraps it again in an
 * UnwrapHandler, so every request's headers and trailers are parsed into objects and turned back into buffers. On a
 * 2-core machine shared with the server any CPU added per request lowers req/s. This row is that floor, measured in
 * the same rounds as the bulwark interceptor (which speaks the legacy API to both sides and skips the conversion).
 */
const emptyInterceptor: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) =>
  dispatch(opts, handler);

type Request = (signal: AbortSignal | undefined, via?: Dispatcher) => Promise<void>;

const fullPipeline = () =>
  pipeline(
    retry({ maxAttempts: 3 }),
    circuitBreaker({ window: { kind: 'count', size: 100 } }),
    timeout(60_000),
    bulkhead({ limit: 1_000, queue: 1_000 }),
  );

function contenders(
  pool: Dispatcher,
  peers: Peers,
  request: Request,
): { name: string; run: () => Promise<void>; dispose?: () => void }[] {
  const bw = fullPipeline();
  const composed = pool.compose(interceptor({ policy: fullPipeline() }));
  const passThrough = pool.compose(emptyInterceptor);
  return [
    { name: 'bare undici', run: () => request(undefined) },
    { name: HTTP_EMPTY_INTERCEPTOR, run: () => request(undefined, passThrough) },
    { name: HTTP_INTERCEPTOR, run: () => request(undefined, composed) },
    { name: 'bulwark pipeline(4) around request()', run: () => bw.execute(({ signal }) => request(signal)) },
    ...peers.cockatiel.map(({ label, lib: c }) => {
      const ck = c.wrap(
        c.retry(c.handleAll, { maxAttempts: 2, backoff: new c.ExponentialBackoff() }),
        c.circuitBreaker(c.handleAll, {
          halfOpenAfter: 10_000,
          breaker: new c.CountBreaker({ threshold: 0.5, size: 100 }),
        }),
        c.timeout(60_000, c.TimeoutStrategy.Cooperative),
        c.bulkhead(1_000, 1_000),
      );
      return { name: `${label} wrap(4) around request()`, run: () => ck.execute(({ signal }) => request(signal)) };
    }),
    ...peers.opossum.map(({ label, lib: CircuitBreaker }) => {
      // How opossum is used with undici: the breaker wraps the function that makes the request (and reads the
      // body, so a failure mid-body counts), with opossum's defaults (a 10 s timeout per call, rolling stats).
      const breaker = new CircuitBreaker(() => request(undefined));
      return {
        name: `${label} ${OPOSSUM_AROUND_REQUEST}`,
        run: () => breaker.fire() as Promise<void>,
        dispose: () => breaker.shutdown(),
      };
    }),
  ];
}

/** The client's CPU time (user + system), in µs. */
function cpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

/**
 * Runs `load` and records the client CPU per operation done, in call order per contender: with every contender run
 * once per round, the i-th entry of each list belongs to round i.
 */
export function cpuRecorder<C extends { readonly name: string }>(
  load: (c: C) => Promise<LoadResult>,
): { load: (c: C) => Promise<LoadResult>; perRound: Map<string, number[]> } {
  const perRound = new Map<string, number[]>();
  return {
    perRound,
    load: async (c) => {
      const before = cpuUs();
      const result = await load(c);
      const used = cpuUs() - before;
      let list = perRound.get(c.name);
      if (list === undefined) perRound.set(c.name, (list = []));
      list.push(result.done > 0 ? used / result.done : Number.NaN);
      return result;
    },
  };
}

/** Median CPU per operation, and the median of the same-round differences to `baseline`. */
export function cpuSummary(
  perRound: Map<string, number[]>,
  name: string,
  baseline: string,
): { cpuUsPerReq: number; cpuUsOverBare: number } {
  const mine = perRound.get(name) ?? [];
  const base = perRound.get(baseline) ?? [];
  const diffs = mine.map((x, i) => x - (base[i] ?? Number.NaN)).filter((x) => Number.isFinite(x));
  return { cpuUsPerReq: median(mine), cpuUsOverBare: median(diffs) };
}

/**
 * A GET of `/` through `via` (or `dispatcher`), its body read, its status checked. `origin` goes into the request
 * when given (a dispatcher that is not a pool needs one); a pool has its own.
 */
function requestVia(dispatcher: Dispatcher, origin?: string): Request {
  if (origin === undefined) {
    return async (signal, via) => {
      const res = await (via ?? dispatcher).request({ path: '/', method: 'GET', signal });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`bench http server answered ${res.statusCode}`);
    };
  }
  return async (signal, via) => {
    const res = await (via ?? dispatcher).request({ origin, path: '/', method: 'GET', signal });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`bench fake dispatcher answered ${res.statusCode}`);
  };
}

/**
 * A dispatcher that answers every request on the next turn of the event loop, as the bench's server does (200,
 * `content-type` and `content-length` headers, a 2-byte body), with no socket and no parser: what is left of a
 * request's cost is undici's API and the contender's own work. It speaks undici's handler API that the handler
 * it is given speaks (the legacy callbacks, as undici's own `request()` and the bulwark interceptor do, or the
 * controller API, as undici 7's `compose` hands to an interceptor that passes it through).
 */
export class FakeDispatcher extends Dispatcher {
  static readonly #raw = [
    Buffer.from('content-type'),
    Buffer.from('text/plain'),
    Buffer.from('content-length'),
    Buffer.from('2'),
  ];
  static readonly #body = Buffer.from('ok');

  override dispatch(_opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    setImmediate(() => {
      const legacy = handler as unknown as {
        onConnect?: (abort: () => void) => void;
        onHeaders?: (status: number, raw: Buffer[], resume: () => void, text: string) => boolean;
        onData?: (chunk: Buffer) => boolean;
        onComplete?: (trailers: Buffer[]) => void;
      };
      if (typeof legacy.onConnect === 'function') {
        legacy.onConnect(() => undefined);
        legacy.onHeaders?.(200, FakeDispatcher.#raw, () => undefined, 'OK');
        legacy.onData?.(FakeDispatcher.#body);
        legacy.onComplete?.([]);
        return;
      }
      const controller = {
        abort: () => undefined,
        pause: () => undefined,
        resume: () => undefined,
        paused: false,
        aborted: false,
        reason: null,
      } as unknown as Dispatcher.DispatchController;
      handler.onRequestStart?.(controller, {});
      handler.onResponseStart?.(controller, 200, { 'content-type': 'text/plain', 'content-length': '2' }, 'OK');
      handler.onResponseData?.(controller, FakeDispatcher.#body);
      handler.onResponseEnd?.(controller, {});
    });
    return true;
  }

  override close(): Promise<void> {
    return Promise.resolve();
  }

  override destroy(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The suite's contenders on one {@link FakeDispatcher}: the in-process part of the suite. Why: end to end, a request
 * costs the client about 20 µs of CPU, and the interceptor's cost, about 1 µs, is within how much that figure moves
 * between runs; in process the same-round difference to bare holds still to a few tenths of a µs.
 */
export function httpInProcessContenders(
  peers: Peers,
): { name: string; run: () => Promise<void>; dispose?: () => void }[] {
  const fake = new FakeDispatcher();
  return contenders(fake, peers, requestVia(fake, 'http://127.0.0.1:8'));
}

export async function httpSuite(s: Settings, step: string, peers: Peers): Promise<HttpRow[]> {
  const own = await inProcessInChild('http', s, step);
  const { port, child } = await startChildServer(new URL('../http-server.mjs', import.meta.url));
  const origin = `http://127.0.0.1:${port}`;
  const pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1 });
  const list = contenders(pool, peers, requestVia(pool));
  try {
    // Warm the connections and the JIT.
    const warm = leadIn(s, CONCURRENCY);
    for (const c of list) await warm(c);
    const cpu = cpuRecorder((c: (typeof list)[number]) => closedLoop(c.run, s.httpRequests, s.httpMaxMs, CONCURRENCY));
    const rounds = endToEndRounds(s);
    const rows = await loadRounds(
      list,
      rounds,
      (r, i, c) => `${step} HTTP end to end: round ${r + 1}/${rounds}, ${i + 1}/${list.length} ${c.name}`,
      withLeadIn(cpu.load, warm),
    );
    const bare = (list[0] as (typeof list)[number]).name;
    return rows.map((x) => ({
      contender: x.contender,
      requests: x.done,
      reqPerSec: x.perSec,
      p50Ms: x.p50Ms,
      p99Ms: x.p99Ms,
      throughputRatio: x.throughputRatio,
      p99Ratio: x.p99Ratio,
      ...cpuSummary(cpu.perRound, x.contender, bare),
      ...own.get(x.contender),
    }));
  } finally {
    for (const c of list) c.dispose?.();
    await pool.close();
    child.stdin?.end();
    child.kill();
  }
}
