// A minimal gRPC server for the end-to-end suite: 127.0.0.1 on a free port, one unary method answering at once.
// It prints its port on stdout and exits when its parent closes stdin (or dies), so it can never outlive a run.
import { loadPackageDefinition, Server, ServerCredentials } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const proto = new URL('../test/fixtures/greeter.proto', import.meta.url).pathname;
const def = loadPackageDefinition(loadSync(proto));
const server = new Server();
server.addService(def.bulwark.test.Greeter.service, {
  SayHello: (call, callback) => callback(null, { message: `hi ${call.request.name}`, attempt: 1 }),
  CreateOrder: (_call, callback) => callback(null, { message: 'ok', attempt: 1 }),
  StreamHellos: (call) => call.end(),
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${port}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
