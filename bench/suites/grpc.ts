/**
 * Suite 7: gRPC end to end. A grpc-js server in a child process on 127.0.0.1, one client channel per contender, 64
 * unary calls in flight, a fixed number of calls per contender and round: a bare client, an interceptor that does
 * nothing (the floor any interceptor pays in grpc-js), the bulwark interceptor with the full pipeline on the
 * method, the same pipeline around the unary call, and opossum's CircuitBreaker around the unary call (one row per
 * major loaded). Client CPU per call is recorded as in the HTTP suite.
 */
import { fileURLToPath } from 'node:url';
import {
  type Client,
  credentials,
  type InterceptingCall,
  type Interceptor,
  loadPackageDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { closedLoop, loadRounds, type Settings, startChildServer, withLeadIn } from '../harness.js';
import { loadPeers, type Peers } from '../peers.js';
import { cpuRecorder, cpuSummary, endToEndRounds, leadIn } from './http.js';

export interface GrpcRow {
  readonly contender: string;
  readonly calls: number;
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly throughputRatio: number;
  readonly p99Ratio: number;
  /** Median over rounds of the client's CPU time (user + system) per call, in µs. */
  readonly cpuUsPerReq?: number;
  /** Median over rounds of (contender CPU per call - bare CPU per call) in the same round, in µs. */
  readonly cpuUsOverBare?: number;
}

/** The interceptor's row, as the targets look it up. */
export const GRPC_INTERCEPTOR = 'bulwark interceptor, pipeline(4)';

/** The floor row: an interceptor that does nothing, as cheaply as grpc-js allows. */
export const GRPC_EMPTY_INTERCEPTOR = 'empty pass-through interceptor';

/**
 * An interceptor that does nothing: it returns the next call itself. Why not grpc-js's documented
 * `new InterceptingCall(nextCall(options))`: that wrapper adds, per call, an object of three bound listener
 * methods, three closures and a message context on top of the chain, so it is not the floor. grpc-js only calls
 * the returned object's methods (bulwark's interceptor returns its own call object the same way). What is left is
 * what grpc-js makes every interceptor pay: the interceptor list built per call and a closure per interceptor.
 */
const emptyInterceptor: Interceptor = (options, nextCall) => nextCall(options) as unknown as InterceptingCall;

type Greeter = Client & {
  SayHello(req: { name: string }, cb: (e: ServiceError | null, v?: unknown) => void): void;
};

const CONCURRENCY = 64;

const sayHello = (client: Greeter) => () =>
  new Promise<void>((resolve, reject) => client.SayHello({ name: 'bench' }, (e) => (e ? reject(e) : resolve())));

const fullPipeline = () =>
  pipeline(retry(), circuitBreaker(), timeout(60_000), bulkhead({ limit: 1_000, queue: 1_000 }));

export async function grpcSuite(s: Settings, step: string, given?: Peers): Promise<GrpcRow[]> {
  const peers = given ?? (await loadPeers());
  const { port, child } = await startChildServer(new URL('../grpc-server.mjs', import.meta.url));
  const address = `127.0.0.1:${port}`;
  const proto = fileURLToPath(new URL('../../test/fixtures/greeter.proto', import.meta.url));
  const def = loadPackageDefinition(loadSync(proto)) as unknown as {
    bulwark: { test: { Greeter: new (address: string, creds: unknown, options?: object) => Greeter } };
  };
  const Ctor = def.bulwark.test.Greeter;
  const client = (options?: object) => new Ctor(address, credentials.createInsecure(), options);
  const clients: Greeter[] = [];
  const own = (c: Greeter) => {
    clients.push(c);
    return c;
  };
  const bw = fullPipeline();
  const aroundClient = own(client());
  const list: { name: string; run: () => Promise<void>; dispose?: () => void }[] = [
    { name: 'bare grpc-js', run: sayHello(own(client())) },
    { name: GRPC_EMPTY_INTERCEPTOR, run: sayHello(own(client({ interceptors: [emptyInterceptor] }))) },
    {
      name: GRPC_INTERCEPTOR,
      run: sayHello(
        own(
          client({
            interceptors: [grpcInterceptor({ methods: { '/bulwark.test.Greeter/SayHello': fullPipeline() } })],
          }),
        ),
      ),
    },
    {
      name: 'bulwark pipeline(4) around the call',
      run: (
        (call) => () =>
          bw.execute(call)
      )(sayHello(aroundClient)),
    },
    ...peers.opossum.map(({ label, lib: CircuitBreaker }) => {
      // opossum as it is used with grpc-js: the breaker wraps the function that makes the unary call (defaults).
      const breaker = new CircuitBreaker(sayHello(own(client())));
      return {
        name: `${label} around the call`,
        run: () => breaker.fire() as Promise<void>,
        dispose: () => breaker.shutdown(),
      };
    }),
  ];
  try {
    const warm = leadIn(s, CONCURRENCY);
    for (const c of list) await warm(c);
    const cpu = cpuRecorder((c: (typeof list)[number]) => closedLoop(c.run, s.httpRequests, s.httpMaxMs, CONCURRENCY));
    const rounds = endToEndRounds(s);
    const rows = await loadRounds(
      list,
      rounds,
      (r, i, c) => `${step} gRPC end to end: round ${r + 1}/${rounds}, ${i + 1}/${list.length} ${c.name}`,
      withLeadIn(cpu.load, warm),
    );
    const bare = (list[0] as (typeof list)[number]).name;
    return rows.map((x) => ({
      contender: x.contender,
      calls: x.done,
      callsPerSec: x.perSec,
      p50Ms: x.p50Ms,
      p99Ms: x.p99Ms,
      throughputRatio: x.throughputRatio,
      p99Ratio: x.p99Ratio,
      ...cpuSummary(cpu.perRound, x.contender, bare),
    }));
  } finally {
    for (const c of list) c.dispose?.();
    for (const c of clients) c.close();
    child.stdin?.end();
    child.kill();
  }
}
