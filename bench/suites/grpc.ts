/**
 * Suite 7: gRPC end to end. A grpc-js server in a child process on 127.0.0.1, one client channel, 64 unary calls in
 * flight, a fixed number of calls per contender and round: bare client vs the bulwark interceptor with the full
 * pipeline on the method.
 */
import { fileURLToPath } from 'node:url';
import { type Client, credentials, loadPackageDefinition, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { closedLoop, loadRounds, type Settings, startChildServer } from '../harness.js';

export interface GrpcRow {
  readonly contender: string;
  readonly calls: number;
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly throughputRatio: number;
  readonly p99Ratio: number;
}

type Greeter = Client & {
  SayHello(req: { name: string }, cb: (e: ServiceError | null, v?: unknown) => void): void;
};

const CONCURRENCY = 64;

const sayHello = (client: Greeter) => () =>
  new Promise<void>((resolve, reject) => client.SayHello({ name: 'bench' }, (e) => (e ? reject(e) : resolve())));

export async function grpcSuite(s: Settings, step: string): Promise<GrpcRow[]> {
  const { port, child } = await startChildServer(new URL('../grpc-server.mjs', import.meta.url));
  const address = `127.0.0.1:${port}`;
  const proto = fileURLToPath(new URL('../../test/fixtures/greeter.proto', import.meta.url));
  const def = loadPackageDefinition(loadSync(proto)) as unknown as {
    bulwark: { test: { Greeter: new (address: string, creds: unknown, options?: object) => Greeter } };
  };
  const Ctor = def.bulwark.test.Greeter;
  const policy = pipeline(retry(), circuitBreaker(), timeout(60_000), bulkhead({ limit: 1_000, queue: 1_000 }));
  const list: { name: string; client: Greeter }[] = [
    { name: 'bare grpc-js', client: new Ctor(address, credentials.createInsecure()) },
    {
      name: 'bulwark interceptor, pipeline(4)',
      client: new Ctor(address, credentials.createInsecure(), {
        interceptors: [grpcInterceptor({ methods: { '/bulwark.test.Greeter/SayHello': policy } })],
      }),
    },
  ];
  try {
    for (const c of list) await closedLoop(sayHello(c.client), Math.min(500, s.httpRequests), s.httpMaxMs, CONCURRENCY);
    const rows = await loadRounds(
      list,
      s.httpRounds,
      (r, i, c) => `${step} gRPC end to end: round ${r + 1}/${s.httpRounds}, ${i + 1}/${list.length} ${c.name}`,
      (c) => closedLoop(sayHello(c.client), s.httpRequests, s.httpMaxMs, CONCURRENCY),
    );
    return rows.map((x) => ({
      contender: x.contender,
      calls: x.done,
      callsPerSec: x.perSec,
      p50Ms: x.p50Ms,
      p99Ms: x.p99Ms,
      throughputRatio: x.throughputRatio,
      p99Ratio: x.p99Ratio,
    }));
  } finally {
    for (const c of list) c.client.close();
    child.stdin?.end();
    child.kill();
  }
}
