import {
  type CallOptions,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  credentials,
  type Deadline,
  type GrpcObject,
  type Interceptor,
  loadPackageDefinition,
  Metadata,
  Server,
  ServerCredentials,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceClientConstructor,
  type ServiceError,
  type StatusObject,
  type sendUnaryData,
  type status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { vi } from 'vitest';

export interface HelloRequest {
  name: string;
}

export interface HelloReply {
  message: string;
  attempt: number;
}

/** Full method paths of the test service. */
export const PATH = {
  SayHello: '/bulwark.test.Greeter/SayHello',
  CreateOrder: '/bulwark.test.Greeter/CreateOrder',
  StreamHellos: '/bulwark.test.Greeter/StreamHellos',
  CollectHellos: '/bulwark.test.Greeter/CollectHellos',
} as const;

export type MethodName = keyof typeof PATH;

/** Metadata to send: one value per key, or several (each added in order). */
type Pairs = Readonly<Record<string, string | readonly string[]>>;

/** What the server does with one unary call: reply, fail with a status, or hold the call open. */
export type Action =
  | { readonly ok: HelloReply; readonly initial?: Pairs; readonly trailers?: Pairs }
  | { readonly code: status; readonly details: string; readonly trailers?: Pairs }
  | 'hang';

/** What the server saw of one call. */
export interface Hit {
  readonly method: MethodName;
  /** 1 for the first call this server received (any method). */
  readonly n: number;
  readonly metadata: Metadata;
  /** The request (unary, server streaming) or every request received (client streaming). */
  readonly request: HelloRequest | HelloRequest[];
  readonly deadline: Deadline;
  /** True once the client cancelled the call (or its deadline passed on the server). */
  cancelled: boolean;
  /** True once the server answered. */
  answered: boolean;
  /** Answers a held ('hang') call. */
  respond(action: Exclude<Action, 'hang'>): void;
  /** Sends the response headers of a unary call now (before its reply), so a held call can send them first. */
  sendHeaders(pairs: Pairs): void;
}

export type UnaryScript = (hit: Hit) => Action;
/** A server-streaming script: messages to write, then OK or an error status. */
export type StreamScript = (hit: Hit) => {
  readonly messages: readonly string[];
  readonly error?: { readonly code: status; readonly details: string };
};

export interface Scripts {
  SayHello?: UnaryScript;
  CreateOrder?: UnaryScript;
  StreamHellos?: StreamScript;
  CollectHellos?: UnaryScript;
}

export interface GreeterServer {
  readonly address: string;
  readonly hits: Hit[];
  /** The hits of one method, in order. */
  of(method: MethodName): Hit[];
  /** Calls the server has received and neither answered nor seen cancelled. */
  open(): number;
}

/** A client of the test service (the shape grpc-js generates from the proto). */
export interface GreeterClient extends Client {
  SayHello(
    request: HelloRequest,
    metadata: Metadata,
    options: CallOptions,
    callback: (error: ServiceError | null, value?: HelloReply) => void,
  ): ClientUnaryCall;
  CreateOrder(
    request: HelloRequest,
    metadata: Metadata,
    options: CallOptions,
    callback: (error: ServiceError | null, value?: HelloReply) => void,
  ): ClientUnaryCall;
  StreamHellos(request: HelloRequest, metadata: Metadata, options?: CallOptions): ClientReadableStream<HelloReply>;
  CollectHellos(
    metadata: Metadata,
    options: CallOptions,
    callback: (error: ServiceError | null, value?: HelloReply) => void,
  ): ClientWritableStream<HelloRequest>;
}

const PROTO = new URL('../../fixtures/greeter.proto', import.meta.url).pathname;
const pkg = loadPackageDefinition(loadSync(PROTO, { keepCase: true, defaults: true }));
const Greeter = ((pkg.bulwark as GrpcObject).test as GrpcObject).Greeter as ServiceClientConstructor;

/** Everything a test opened; closed after each test, whatever happened. */
const opened: { clients: Client[]; servers: Server[] } = { clients: [], servers: [] };

/** Closes every client and force-shuts every server the test created. */
export function closeAll(): void {
  for (const c of opened.clients.splice(0)) c.close();
  for (const s of opened.servers.splice(0)) s.forceShutdown();
}

function metadataOf(pairs: Pairs | undefined): Metadata {
  const m = new Metadata();
  if (pairs !== undefined) {
    for (const [k, v] of Object.entries(pairs)) for (const one of typeof v === 'string' ? [v] : v) m.add(k, one);
  }
  return m;
}

const NOT_SCRIPTED: UnaryScript = () => ({ code: 12, details: 'not scripted' });

/** Starts a real grpc-js server for the test service on 127.0.0.1, port 0. */
export async function startGreeter(scripts: Scripts): Promise<GreeterServer> {
  const hits: Hit[] = [];
  const record = (
    method: MethodName,
    call: {
      metadata: Metadata;
      getDeadline(): Deadline;
      on(event: 'cancelled', fn: () => void): unknown;
      sendMetadata(m: Metadata): void;
    },
    request: HelloRequest | HelloRequest[],
    answer: (action: Exclude<Action, 'hang'>) => void,
  ): Hit => {
    const hit: Hit = {
      method,
      n: hits.length + 1,
      metadata: call.metadata,
      request,
      deadline: call.getDeadline(),
      cancelled: false,
      answered: false,
      respond: (action) => {
        if (hit.answered || hit.cancelled) return;
        hit.answered = true;
        answer(action);
      },
      sendHeaders: (pairs) => call.sendMetadata(metadataOf(pairs)),
    };
    call.on('cancelled', () => {
      hit.cancelled = true;
    });
    hits.push(hit);
    return hit;
  };
  const unaryAnswer =
    (call: { sendMetadata(m: Metadata): void }, callback: sendUnaryData<HelloReply>) =>
    (action: Exclude<Action, 'hang'>): void => {
      if ('ok' in action) {
        if (action.initial !== undefined) call.sendMetadata(metadataOf(action.initial));
        callback(null, action.ok, metadataOf(action.trailers));
      } else {
        callback({ code: action.code, details: action.details, metadata: metadataOf(action.trailers) });
      }
    };
  const run = (hit: Hit, action: Action): void => {
    if (action !== 'hang') hit.respond(action);
  };
  const unary =
    (method: 'SayHello' | 'CreateOrder', script: UnaryScript | undefined) =>
    (call: ServerUnaryCall<HelloRequest, HelloReply>, callback: sendUnaryData<HelloReply>): void => {
      const hit = record(method, call, call.request, unaryAnswer(call, callback));
      run(hit, (script ?? NOT_SCRIPTED)(hit));
    };
  const server = new Server();
  opened.servers.push(server);
  server.addService(Greeter.service, {
    SayHello: unary('SayHello', scripts.SayHello),
    CreateOrder: unary('CreateOrder', scripts.CreateOrder),
    StreamHellos: (call: ServerWritableStream<HelloRequest, HelloReply>): void => {
      const hit = record('StreamHellos', call, call.request, () => {});
      hit.answered = true;
      const script = scripts.StreamHellos ?? (() => ({ messages: [], error: { code: 12, details: 'not scripted' } }));
      const { messages, error } = script(hit);
      for (const m of messages) call.write({ message: m, attempt: hit.n });
      if (error === undefined) call.end();
      else call.emit('error', { code: error.code, details: error.details });
    },
    CollectHellos: (
      call: ServerReadableStream<HelloRequest, HelloReply>,
      callback: sendUnaryData<HelloReply>,
    ): void => {
      const requests: HelloRequest[] = [];
      call.on('data', (r: HelloRequest) => requests.push(r));
      call.on('end', () => {
        const hit = record('CollectHellos', call, requests, unaryAnswer(call, callback));
        run(hit, (scripts.CollectHellos ?? NOT_SCRIPTED)(hit));
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    hits,
    of: (method) => hits.filter((h) => h.method === method),
    open: () => hits.filter((h) => !h.answered && !h.cancelled).length,
  };
}

/** A client of `server` with the given interceptors, closed after the test. */
export function greeterClient(server: GreeterServer, interceptors: Interceptor[]): GreeterClient {
  const client = new Greeter(server.address, credentials.createInsecure(), {
    interceptors,
  }) as unknown as GreeterClient;
  opened.clients.push(client);
  return client;
}

/** How a unary call ended. */
export interface UnaryResult {
  readonly error: ServiceError | null;
  readonly value: HelloReply | undefined;
}

/** A unary call in flight, with what the caller has received so far. */
export interface PendingCall {
  readonly call: ClientUnaryCall;
  readonly result: Promise<UnaryResult>;
  /** The outcome once the callback ran, else undefined. */
  readonly settled: UnaryResult | undefined;
  /** The `metadata` event (response headers), if one was emitted. */
  readonly headers: Metadata | undefined;
  /** The `status` event, once emitted. */
  readonly status: StatusObject | undefined;
}

/** Starts a unary call and records what the caller receives. */
export function unary(
  client: GreeterClient,
  method: 'SayHello' | 'CreateOrder',
  request: HelloRequest,
  options: { metadata?: Metadata; deadline?: Deadline } = {},
): PendingCall {
  let settled: UnaryResult | undefined;
  let headers: Metadata | undefined;
  let statusObject: StatusObject | undefined;
  let call: ClientUnaryCall | undefined;
  const callOptions: CallOptions = options.deadline === undefined ? {} : { deadline: options.deadline };
  const result = new Promise<UnaryResult>((resolve) => {
    call = client[method](request, options.metadata ?? new Metadata(), callOptions, (error, value) => {
      settled = { error, value };
      resolve(settled);
    });
  });
  const c = call as unknown as ClientUnaryCall;
  c.on('metadata', (m: Metadata) => {
    headers = m;
  });
  c.on('status', (s: StatusObject) => {
    statusObject = s;
  });
  return {
    call: c,
    result,
    get settled() {
      return settled;
    },
    get headers() {
      return headers;
    },
    get status() {
      return statusObject;
    },
  };
}

/** Code, details and the listed metadata keys of an error (what a caller acts on). */
export function summary(error: ServiceError | null, keys: readonly string[] = []) {
  if (error === null) return null;
  const metadata: Record<string, unknown[]> = {};
  for (const k of keys) metadata[k] = error.metadata.get(k);
  return { code: error.code, details: error.details, metadata };
}

/**
 * Calls the channel of `client` has open (started and not yet ended), read from grpc-js's own counter. Fails
 * loudly if a grpc-js upgrade renames it rather than reading `undefined`.
 */
export function openCalls(client: Client): number {
  const channel = client.getChannel() as unknown as { internalChannel?: { callCount?: unknown } };
  const n = channel.internalChannel?.callCount;
  if (typeof n !== 'number') throw new Error('grpc-js internals changed: internalChannel.callCount not found');
  return n;
}

export { advanceUntil, waitFor } from '../../helpers/wait.js';

/** A process warning as emitted: its message, type and code. */
export interface CapturedWarning {
  readonly message: string;
  readonly type: string | undefined;
  readonly code: string | undefined;
}

/**
 * Captures `process.emitWarning` calls until `restore()`, and keeps them off stderr (the spy replaces the call).
 */
export function captureWarnings(): { readonly warnings: CapturedWarning[]; restore(): void } {
  const warnings: CapturedWarning[] = [];
  const spy = vi.spyOn(process, 'emitWarning').mockImplementation((warning: string | Error, options?: unknown) => {
    const o = typeof options === 'object' && options !== null ? (options as { type?: string; code?: string }) : {};
    warnings.push({
      message: typeof warning === 'string' ? warning : warning.message,
      type: typeof options === 'string' ? options : o.type,
      code: o.code,
    });
  });
  return { warnings, restore: () => spy.mockRestore() };
}
