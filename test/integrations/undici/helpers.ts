import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the server saw of one request. */
export interface Hit {
  /** 1 for the first request this server received. */
  readonly n: number;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The complete request body (set before the handler runs, unless `readBody: false`). */
  body: Buffer;
  /** True when the client went away before the response was finished. */
  aborted: boolean;
  /** True once the request body ended normally (`'end'` fired). */
  bodyComplete: boolean;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, hit: Hit) => void;

/** A real node:http server on 127.0.0.1, port 0, counting requests and sockets. */
export interface TestServer {
  readonly server: Server;
  readonly origin: string;
  readonly hits: Hit[];
  /** Sockets opened since start. */
  readonly sockets: { opened: number; open: number; live: Set<Socket> };
  close(): Promise<void>;
}

/**
 * Starts a server. By default the whole request body is read before `handler` runs (so `hit.body` is complete);
 * with `readBody: false` the handler runs at once (the body is still recorded as it arrives).
 */
export async function startServer(handler: Handler, options: { readBody?: boolean } = {}): Promise<TestServer> {
  const hits: Hit[] = [];
  const sockets = { opened: 0, open: 0, live: new Set<Socket>() };
  const server = createServer((req, res) => {
    const hit: Hit = {
      n: hits.length + 1,
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.alloc(0),
      aborted: false,
      bodyComplete: false,
    };
    hits.push(hit);
    res.on('close', () => {
      if (!res.writableFinished) hit.aborted = true;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    if (options.readBody === false) {
      req.on('end', () => {
        hit.body = Buffer.concat(chunks);
        hit.bodyComplete = true;
      });
      handler(req, res, hit);
      return;
    }
    req.on('end', () => {
      hit.body = Buffer.concat(chunks);
      hit.bodyComplete = true;
      handler(req, res, hit);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.opened++;
    sockets.open++;
    sockets.live.add(socket);
    socket.on('close', () => {
      sockets.open--;
      sockets.live.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    hits,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Replies with a status, headers and a body. */
export function reply(res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', ...headers });
  res.end(body);
}

/** Cleanup registry: every server and agent a test creates is closed after it, whatever happened. */
export class Resources {
  #closers: (() => Promise<unknown>)[] = [];

  add<T extends { close(): Promise<unknown> } | { destroy(): Promise<unknown> }>(resource: T): T {
    if ('destroy' in resource) this.#closers.push(() => resource.destroy());
    else this.#closers.push(() => resource.close());
    return resource;
  }

  async closeAll(): Promise<void> {
    const closers = this.#closers.reverse();
    this.#closers = [];
    for (const close of closers) await close();
  }
}

export { advanceUntil, waitFor } from '../../helpers/wait.js';

/** The rejection reason of a promise (fails when it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection, got a resolution');
}
