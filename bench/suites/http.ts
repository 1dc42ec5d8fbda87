/**
 * Suite 6: HTTP end to end. A node:http server in a child process on 127.0.0.1, an undici Pool with 64 requests in
 * flight, a fixed number of requests bounded in time. bulwark runs twice: as the undici interceptor composed on the
 * pool (how users wire it), and as the core pipeline around `pool.request` passing `ctx.signal` (which shows what an
 * AbortSignal per request costs inside undici).
 */
import { type Dispatcher, Pool } from 'undici';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { interceptor } from '../../src/integrations/undici/index.js';
import { closedLoop, loadRounds, type Settings, startChildServer } from '../harness.js';
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
}

const CONCURRENCY = 64;

type Request = (signal: AbortSignal | undefined, via?: Dispatcher) => Promise<void>;

const fullPipeline = () =>
  pipeline(
    retry({ maxAttempts: 3 }),
    circuitBreaker({ window: { kind: 'count', size: 100 } }),
    timeout(60_000),
    bulkhead({ limit: 1_000, queue: 1_000 }),
  );

function contenders(pool: Pool, peers: Peers): { name: string; run: (req: Request) => Promise<void> }[] {
  const bw = fullPipeline();
  const composed = pool.compose(interceptor({ policy: fullPipeline() }));
  return [
    { name: 'bare undici', run: (req) => req(undefined) },
    { name: 'bulwark interceptor, pipeline(4)', run: (req) => req(undefined, composed) },
    { name: 'bulwark pipeline(4) around request', run: (req) => bw.execute(({ signal }) => req(signal)) },
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
      return { name: `${label} wrap(4)`, run: (req: Request) => ck.execute(({ signal }) => req(signal)) };
    }),
    ...peers.opossum.map(({ label, lib: CircuitBreaker }) => {
      const op = new CircuitBreaker((req: Request) => req(undefined));
      return { name: `${label} fire (defaults)`, run: (req: Request) => op.fire(req) };
    }),
  ];
}

export async function httpSuite(s: Settings, step: string, peers: Peers): Promise<HttpRow[]> {
  const { port, child } = await startChildServer(new URL('../http-server.mjs', import.meta.url));
  const origin = `http://127.0.0.1:${port}`;
  const pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1 });
  try {
    const request: Request = async (signal, via) => {
      const res = await (via ?? pool).request({ path: '/', method: 'GET', signal });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`bench http server answered ${res.statusCode}`);
    };
    const list = contenders(pool, peers);
    // Warm the connections and the JIT.
    for (const c of list)
      await closedLoop(() => c.run(request), Math.min(500, s.httpRequests), s.httpMaxMs, CONCURRENCY);
    const rows = await loadRounds(
      list,
      s.httpRounds,
      (r, i, c) => `${step} HTTP end to end: round ${r + 1}/${s.httpRounds}, ${i + 1}/${list.length} ${c.name}`,
      (c) => closedLoop(() => c.run(request), s.httpRequests, s.httpMaxMs, CONCURRENCY),
    );
    return rows.map((x) => ({
      contender: x.contender,
      requests: x.done,
      reqPerSec: x.perSec,
      p50Ms: x.p50Ms,
      p99Ms: x.p99Ms,
      throughputRatio: x.throughputRatio,
      p99Ratio: x.p99Ratio,
    }));
  } finally {
    await pool.close();
    child.stdin?.end();
    child.kill();
  }
}
