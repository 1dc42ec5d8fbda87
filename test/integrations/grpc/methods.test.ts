/**
 * The keys of a `methods` map: a key that can never match a call (not a full path, a typo, a streaming method)
 * must not leave a method silently without its policy. Checked at creation where it is knowable (the shape of a
 * key; with `services`, whether the method exists and is unary), reported once at the first call otherwise.
 */
import {
  type GrpcObject,
  loadPackageDefinition,
  Metadata,
  type ServiceClientConstructor,
  type ServiceDefinition,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { InvalidOptionsError, retry } from '../../../src/index.js';
import { type GrpcInterceptorOptions, grpcInterceptor } from '../../../src/integrations/grpc/index.js';
import { captureWarnings, closeAll, greeterClient, PATH, startGreeter, unary } from './helpers.js';

afterEach(() => closeAll());

const PROTO = new URL('../../fixtures/greeter.proto', import.meta.url).pathname;
const pkg = loadPackageDefinition(loadSync(PROTO, { keepCase: true, defaults: true }));
const Greeter = ((pkg.bulwark as GrpcObject).test as GrpcObject).Greeter as ServiceClientConstructor;

function problems(options: unknown): string[] {
  try {
    grpcInterceptor(options as GrpcInterceptorOptions);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidOptionsError);
    return (e as InvalidOptionsError).problems.map((p) => `${p.option}: expected ${p.expected}, got ${p.received}`);
  }
  throw new Error('expected grpcInterceptor to throw');
}

const FULL_PATH_EXPECTED =
  "a key that is a full method path, '/<package>.<Service>/<Method>' (as in Inventory.service.GetStock.path)";

describe('methods keys: checked at creation', () => {
  it.each([
    ['SayHello', 'the method name alone'],
    ['bulwark.test.Greeter/SayHello', 'no leading slash'],
    ['/bulwark.test.Greeter.SayHello', 'a dot for the second slash'],
    ['/bulwark.test.Greeter/SayHello ', 'a trailing space'],
    ['/bulwark.test.Greeter/', 'no method'],
    ['//SayHello', 'no service'],
    ['/bulwark.test.Greeter/SayHello/', 'a trailing slash'],
    ['/a/b/c', 'three parts'],
    ['', 'empty'],
  ])('%j (%s) is refused: it could never match a call', (key) => {
    expect(problems({ methods: { [key]: retry() } })).toEqual([
      `methods['${key}']: expected ${FULL_PATH_EXPECTED}, got ${JSON.stringify(key)}`,
    ]);
  });

  it('every malformed key is reported at once, with the other problems', () => {
    expect(
      problems({ methods: { Unary: retry(), '/ok.Service/Method': retry(), 'x/y': 5 }, failureCodes: [0] }),
    ).toEqual([
      `methods['Unary']: expected ${FULL_PATH_EXPECTED}, got "Unary"`,
      "methods['x/y']: expected a policy, or { policy, idempotent? }, got 5",
      `methods['x/y']: expected ${FULL_PATH_EXPECTED}, got "x/y"`,
      'failureCodes: expected an array of gRPC status codes (1..16), got an array of 1',
    ]);
  });

  it('full paths are accepted, with or without a package', () => {
    expect(typeof grpcInterceptor({ methods: { '/Greeter/SayHello': retry(), [PATH.SayHello]: retry() } })).toBe(
      'function',
    );
  });

  it('with services: a typo is refused, naming the unary methods it could have meant', () => {
    expect(problems({ methods: { '/bulwark.test.Greeter/SayHelo': retry() }, services: [Greeter.service] })).toEqual([
      "methods['/bulwark.test.Greeter/SayHelo']: expected the path of a unary method of `services` ('/bulwark.test.Greeter/CreateOrder', '/bulwark.test.Greeter/SayHello'), got \"/bulwark.test.Greeter/SayHelo\"",
    ]);
  });

  it('with services: a streaming method is refused, naming its kind', () => {
    expect(
      problems({
        methods: { [PATH.StreamHellos]: retry(), [PATH.CollectHellos]: retry(), [PATH.SayHello]: retry() },
        services: [Greeter.service],
      }),
    ).toEqual([
      `methods['${PATH.StreamHellos}']: expected a unary method (this is a server streaming method: streaming calls pass through untouched, so its policy would never run), got "${PATH.StreamHellos}"`,
      `methods['${PATH.CollectHellos}']: expected a unary method (this is a client streaming method: streaming calls pass through untouched, so its policy would never run), got "${PATH.CollectHellos}"`,
    ]);
  });

  it('with services: the unary methods of any listed service are accepted', () => {
    expect(
      typeof grpcInterceptor({
        methods: { [PATH.SayHello]: retry(), [PATH.CreateOrder]: { policy: retry(), idempotent: false } },
        services: [Greeter.service],
      }),
    ).toBe('function');
  });

  it('with services: a path of a hand-made definition is accepted as it is, whatever its shape', () => {
    const odd = { Odd: { path: '/legacy/v1/Odd', requestStream: false, responseStream: false } };
    expect(problems({ methods: { '/legacy/v1/Odd': retry() } })).toEqual([
      `methods['/legacy/v1/Odd']: expected ${FULL_PATH_EXPECTED}, got "/legacy/v1/Odd"`,
    ]);
    expect(
      typeof grpcInterceptor({
        methods: { '/legacy/v1/Odd': retry() },
        services: [odd as unknown as ServiceDefinition],
      }),
    ).toBe('function');
  });

  it.each([
    ['an object (one definition, not an array)', Greeter.service],
    ['an array holding null', [null]],
    ['a method without a path', [{ SayHello: { path: 5 } }]],
    ['a name', 'bulwark.test.Greeter'],
  ])('services that are not service definitions are refused: %s', (_what, services: unknown) => {
    const p = problems({ methods: {}, services });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(
      /^services: expected an array of grpc-js service definitions \(a client constructor's `service`, such as Inventory\.service\), got /,
    );
  });
});

describe('methods keys: a streaming method, known at its first call', { timeout: 5_000 }, () => {
  it('is reported once per key with a process warning (code BULWARK_GRPC_STREAMING_METHOD), and passes through', async () => {
    const captured = captureWarnings();
    onTestFinished(() => captured.restore());
    const server = await startGreeter({
      StreamHellos: () => ({ messages: ['a'] }),
      SayHello: (hit) => ({ ok: { message: 'hi', attempt: hit.n } }),
    });
    const client = greeterClient(server, [
      grpcInterceptor({ methods: { [PATH.StreamHellos]: retry(), [PATH.SayHello]: retry() } }),
    ]);
    const stream = () =>
      new Promise<number>((resolve) =>
        client
          .StreamHellos({ name: 'ada' }, new Metadata())
          .on('data', () => {})
          .on('status', (s: StatusObject) => resolve(s.code)),
      );

    expect(captured.warnings).toEqual([]);
    await unary(client, 'SayHello', { name: 'ada' }).result;
    expect(captured.warnings).toEqual([]);
    expect(await stream()).toBe(status.OK);
    expect(await stream()).toBe(status.OK);

    expect(captured.warnings).toEqual([
      {
        code: 'BULWARK_GRPC_STREAMING_METHOD',
        type: 'BulwarkGrpcWarning',
        message:
          "grpcInterceptor: methods['/bulwark.test.Greeter/StreamHellos'] names a server streaming method. Streaming calls pass through untouched, so this entry's policy never runs. Remove the entry, protect the stream in your own code, or pass `services` to have keys checked when the interceptor is created.",
      },
    ]);
    expect(server.of('StreamHellos')).toHaveLength(2);
  });
});
