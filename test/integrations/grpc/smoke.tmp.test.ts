import {
  credentials,
  loadPackageDefinition,
  Metadata,
  Server,
  ServerCredentials,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { expect, it } from 'vitest';
import { constant, retry } from '../../../src/index.js';
import { grpcInterceptor } from '../../../src/integrations/grpc/index.js';

it('smoke', async () => {
  const def = loadPackageDefinition(loadSync(new URL('../../fixtures/greeter.proto', import.meta.url).pathname)) as any;
  let n = 0;
  const server = new Server();
  server.addService(def.bulwark.test.Greeter.service, {
    SayHello: (call: any, cb: any) => {
      n++;
      if (n < 3) cb({ code: status.UNAVAILABLE, details: 'down' });
      else
        cb(null, { message: `hi ${call.request.name} ${call.metadata.get('grpc-previous-rpc-attempts')}`, attempt: n });
    },
    CreateOrder: (_c: any, cb: any) => cb({ code: status.UNAVAILABLE, details: 'down' }),
    StreamHellos: (call: any) => {
      call.write({ message: 'a' });
      call.end();
    },
  });
  const port = await new Promise<number>((r, j) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))),
  );
  const client = new def.bulwark.test.Greeter(`127.0.0.1:${port}`, credentials.createInsecure(), {
    interceptors: [
      grpcInterceptor({
        methods: {
          '/bulwark.test.Greeter/SayHello': retry({ backoff: constant(1) }),
          '/bulwark.test.Greeter/CreateOrder': { policy: retry({ backoff: constant(1) }), idempotent: false },
        },
      }),
    ],
  });
  const reply = await new Promise<any>((r, j) =>
    client.SayHello({ name: 'x' }, new Metadata(), (e: ServiceError | null, v: any) => (e ? j(e) : r(v))),
  );
  expect(reply).toEqual({ message: 'hi x 2', attempt: 3 });
  const err = await new Promise<any>((r) => client.CreateOrder({ name: 'y' }, (e: ServiceError | null) => r(e)));
  expect(err.code).toBe(status.UNAVAILABLE);
  client.close();
  server.forceShutdown();
});
