/**
 * Suite 7: gRPC end to end. A grpc-js server in a child process on 127.0.0.1, one client channel, 64 unary calls in
 * flight, a fixed number of calls per contender and round: bare client vs the bulwark interceptor with the full
 * pipeline on the method.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Client, credentials, loadPackageDefinition, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import * as hdr from 'hdr-histogram-js';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { median, progress, roundOrder, type Settings } from '../harness.js';

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

async function startServer(): Promise<{ address: string; child: ChildProcess }> {
  const script = fileURLToPath(new URL('../grpc-server.mjs', import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(Number(line));
    });
    child.once('exit', (code) => reject(new Error(`bench grpc server exited early with code ${code}`)));
  });
  return { address: `127.0.0.1:${port}`, child };
}

async function load(client: Greeter, total: number, maxMs: number) {
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let started = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(maxMs) * 1_000_000n;
  const call = () =>
    new Promise<void>((resolve, reject) => client.SayHello({ name: 'bench' }, (e) => (e ? reject(e) : resolve())));
  const worker = async () => {
    while (started < total && process.hrtime.bigint() < deadline) {
      started++;
      const s = process.hrtime.bigint();
      await call();
      histogram.recordValue(Number((process.hrtime.bigint() - s) / 1_000n));
      done++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const r = {
    done,
    seconds,
    p50: histogram.getValueAtPercentile(50) / 1_000,
    p99: histogram.getValueAtPercentile(99) / 1_000,
  };
  histogram.destroy();
  return r;
}

export async function grpcSuite(s: Settings, step: string): Promise<GrpcRow[]> {
  const { address, child } = await startServer();
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
    for (const c of list) await load(c.client, Math.min(500, s.httpRequests), s.httpMaxMs);
    const cps = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const p50 = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const p99 = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const tr = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const pr = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const calls = new Map<string, number[]>(list.map((c) => [c.name, []]));
    for (let r = 0; r < s.httpRounds; r++) {
      const round = new Map<string, { cps: number; p50: number; p99: number; done: number }>();
      for (const [ci, c] of roundOrder(list, r).entries()) {
        progress(`${step} gRPC end to end: round ${r + 1}/${s.httpRounds}, ${ci + 1}/${list.length} ${c.name}`);
        const x = await load(c.client, s.httpRequests, s.httpMaxMs);
        round.set(c.name, { cps: x.done / x.seconds, p50: x.p50, p99: x.p99, done: x.done });
      }
      const bare = round.get('bare grpc-js') as { cps: number; p99: number };
      for (const [k, v] of round) {
        cps.get(k)?.push(v.cps);
        p50.get(k)?.push(v.p50);
        p99.get(k)?.push(v.p99);
        tr.get(k)?.push(v.cps / bare.cps);
        pr.get(k)?.push(v.p99 / bare.p99);
        calls.get(k)?.push(v.done);
      }
    }
    return list.map((c) => ({
      contender: c.name,
      calls: median(calls.get(c.name) as number[]),
      callsPerSec: median(cps.get(c.name) as number[]),
      p50Ms: median(p50.get(c.name) as number[]),
      p99Ms: median(p99.get(c.name) as number[]),
      throughputRatio: median(tr.get(c.name) as number[]),
      p99Ratio: median(pr.get(c.name) as number[]),
    }));
  } finally {
    for (const c of list) c.client.close();
    child.stdin?.end();
    child.kill();
  }
}
