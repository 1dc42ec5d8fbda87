/**
 * Suite 7: gRPC end to end. A grpc-js server in a child process on 127.0.0.1, one client channel per contender, 64
 * unary calls in flight, a fixed number of calls per contender and round: a bare client, an interceptor that does
 * nothing (the floor any interceptor pays in grpc-js), the bulwark interceptor with the full pipeline on the
 * method, the same pipeline around the unary call, and opossum's CircuitBreaker around the unary call (one row per
 * major loaded). Client CPU per call is recorded as in the HTTP suite.
 *
 * The same contenders also run in process (see `inProcessInChild`): each client on a fake channel that answers every call on the next turn of
 * the event loop, with no socket, no HTTP/2 and no server, so the client's CPU per call is grpc-js's call machinery
 * plus the contender's own work. Why: end to end, a call costs the client about 120 µs (HTTP/2 in JS, sockets) and
 * that figure moves by about 10 µs between runs of the same code (the empty interceptor measured -13.6 to +10.5 µs
 * over bare), with how many frames each read and write batches; the interceptor's own cost, about 0.7 µs, is lost in
 * it. In process, the same-round difference to bare holds still to a few tenths of a µs between runs.
 */
import { fileURLToPath } from 'node:url';
import {
  type ChannelInterface,
  type Client,
  credentials,
  type InterceptingCall,
  type Interceptor,
  loadPackageDefinition,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { bulkhead, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { closedLoop, inProcessInChild, loadRounds, type Settings, startChildServer, withLeadIn } from '../harness.js';
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
  /** In process, on a fake channel (see the module's comment): median over rounds of the CPU per call, in µs. */
  readonly ownUsPerCall?: number;
  /** In process, on a fake channel: median over rounds of (contender - bare) CPU per call in the same round, in µs. */
  readonly ownUsOverBare?: number;
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

export interface Contender {
  readonly name: string;
  readonly run: () => Promise<void>;
  readonly dispose?: () => void;
}

/** The suite's contenders, their clients made by `client` (on the real channel, or on the fake one). */
function contenders(client: (options?: object) => Greeter, peers: Peers): Contender[] {
  const bw = fullPipeline();
  const aroundCall = sayHello(client());
  return [
    { name: 'bare grpc-js', run: sayHello(client()) },
    { name: GRPC_EMPTY_INTERCEPTOR, run: sayHello(client({ interceptors: [emptyInterceptor] })) },
    {
      name: GRPC_INTERCEPTOR,
      run: sayHello(
        client({ interceptors: [grpcInterceptor({ methods: { '/bulwark.test.Greeter/SayHello': fullPipeline() } })] }),
      ),
    },
    { name: 'bulwark pipeline(4) around the call', run: () => bw.execute(aroundCall) },
    ...peers.opossum.map(({ label, lib: CircuitBreaker }) => {
      // opossum as it is used with grpc-js: the breaker wraps the function that makes the unary call (defaults).
      const breaker = new CircuitBreaker(sayHello(client()));
      return {
        name: `${label} around the call`,
        run: () => breaker.fire() as Promise<void>,
        dispose: () => breaker.shutdown(),
      };
    }),
  ];
}

type Call = ReturnType<ChannelInterface['createCall']>;
type CallListener = Parameters<Call['start']>[1];

/**
 * A call on the fake channel: it answers once the client half-closes, on the next turn of the event loop (as a
 * reply read from a socket would arrive), with response headers, one message and an OK status.
 */
class FakeCall implements Call {
  #listener: CallListener | undefined;
  readonly #reply: Buffer;

  constructor(reply: Buffer) {
    this.#reply = reply;
  }

  start(_metadata: Metadata, listener: CallListener): void {
    this.#listener = listener;
  }

  sendMessageWithContext(context: { callback?: (error?: Error | null) => void }): void {
    context.callback?.();
  }

  startRead(): void {}

  halfClose(): void {
    setImmediate(() => {
      const listener = this.#listener as CallListener;
      listener.onReceiveMetadata(new Metadata());
      listener.onReceiveMessage(this.#reply);
      listener.onReceiveStatus({ code: status.OK, details: 'OK', metadata: new Metadata() });
    });
  }

  cancelWithStatus(): void {}

  getPeer(): string {
    return 'in-process';
  }

  getCallNumber(): number {
    return 0;
  }

  setCredentials(): void {}

  getAuthContext(): null {
    return null;
  }
}

/** A channel whose every call is a {@link FakeCall} answering with `reply`. */
export function fakeChannel(reply: Buffer): ChannelInterface {
  return {
    close: () => undefined,
    getTarget: () => 'in-process',
    getConnectivityState: () => 2, // READY
    watchConnectivityState: () => undefined,
    // grpc-js's channelz kinds are a const enum its declarations do not export as a value.
    getChannelzRef: () =>
      ({ kind: 'channel', id: 0, name: 'in-process' }) as unknown as ReturnType<ChannelInterface['getChannelzRef']>,
    createCall: () => new FakeCall(reply),
  };
}

export async function grpcSuite(s: Settings, step: string, given?: Peers): Promise<GrpcRow[]> {
  const peers = given ?? (await loadPeers());
  const own = await inProcessInChild('grpc', s, step);
  const { port, child } = await startChildServer(new URL('../grpc-server.mjs', import.meta.url));
  const address = `127.0.0.1:${port}`;
  const Ctor = greeter();
  const clients: Greeter[] = [];
  const client = (options?: object) => {
    const c = new Ctor(address, credentials.createInsecure(), options);
    clients.push(c);
    return c;
  };
  const list = contenders(client, peers);
  let rows: GrpcRow[];
  try {
    const warm = leadIn(s, CONCURRENCY);
    for (const c of list) await warm(c);
    const cpu = cpuRecorder((c: Contender) => closedLoop(c.run, s.httpRequests, s.httpMaxMs, CONCURRENCY));
    const rounds = endToEndRounds(s);
    const e2e = await loadRounds(
      list,
      rounds,
      (r, i, c) => `${step} gRPC end to end: round ${r + 1}/${rounds}, ${i + 1}/${list.length} ${c.name}`,
      withLeadIn(cpu.load, warm),
    );
    const bare = (list[0] as Contender).name;
    rows = e2e.map((x) => ({
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
  return rows.map((x) => ({ ...x, ...own.get(x.contender) }));
}

/** The greeter's client constructor and its reply serialiser, from the test fixture's proto. */
export function greeter(): (new (
  address: string,
  creds: unknown,
  options?: object,
) => Greeter) & {
  service: { SayHello: { responseSerialize: (reply: object) => Buffer } };
} {
  const proto = fileURLToPath(new URL('../../test/fixtures/greeter.proto', import.meta.url));
  const def = loadPackageDefinition(loadSync(proto)) as unknown as {
    bulwark: { test: { Greeter: ReturnType<typeof greeter> } };
  };
  return def.bulwark.test.Greeter;
}

/** The suite's contenders, every client on one {@link fakeChannel} answering the greeter's reply. */
export function grpcInProcessContenders(peers: Peers): Contender[] {
  const Ctor = greeter();
  const channel = fakeChannel(Ctor.service.SayHello.responseSerialize({ message: 'hi bench', attempt: 1 }));
  return contenders(
    (options) => new Ctor('in-process', credentials.createInsecure(), { ...options, channelOverride: channel }),
    peers,
  );
}
