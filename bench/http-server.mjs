// A minimal HTTP server for the end-to-end suite: 127.0.0.1 on a free port, a 2-byte body, keep-alive.
// It prints its port on stdout and exits when its parent closes stdin (or dies), so it can never outlive a run.
import { createServer } from 'node:http';

const body = Buffer.from('ok');
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
