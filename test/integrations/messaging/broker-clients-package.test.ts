import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// bulwark/messaging as published, in a project that installed only ONE broker client (issue 12 item 2): its type
// declarations compile with `skipLibCheck: false`, and with nats.js 3.x alone a poison message is dead-lettered
// (no `import('nats')` at run time). The package is built into a scratch directory outside the repository and
// copied (not linked) into each project's node_modules, so that nothing resolves from the repository's own
// node_modules: a client the project did not install is absent, as on a user's machine.

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../../..');
const modules = join(root, 'node_modules');
const tsc = join(modules, 'typescript/bin/tsc');

/** The packages each project installs (linked from the repository's node_modules), besides bulwark. */
const CLIENTS = {
  'nats 2': ['nats'],
  'nats 3': ['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/nats-core', '@nats-io/nkeys', '@nats-io/nuid'],
  amqplib: ['amqplib'],
} as const;
type Client = keyof typeof CLIENTS;

/** A consumer of the public API with the client's own objects, as a user writes it. Type-checked, not run. */
const CONSUMER: Record<Client, string> = {
  'nats 2': `
import { connect, headers } from 'nats';
import { consumeJetStream, declareJetStreamTopology, jetstreamDelivery, wrapHandler } from 'bulwark/messaging';

export async function main(): Promise<void> {
  const nc = await connect({ servers: '127.0.0.1:4222' });
  const topology = await declareJetStreamTopology(await nc.jetstreamManager(), {
    stream: 'ORDERS', subjects: ['orders.>'], consumer: 'worker',
  });
  const js = nc.jetstream();
  const handle = wrapHandler(async (data: Uint8Array) => void data.length);
  const consumer = await js.consumers.get(topology.stream, topology.consumer);
  const loop = consumeJetStream(consumer, handle, {
    deadLetterSubject: topology.deadLetterSubject, js, onError: (_e, msg) => void msg.info.redelivered,
  });
  const msg = await consumer.next();
  if (msg) await handle(jetstreamDelivery(msg, { js }));
  void headers;
  await loop.stop();
}
`,
  'nats 3': `
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { consumeJetStream, declareJetStreamTopology, jetstreamDelivery, wrapHandler } from 'bulwark/messaging';

export async function main(): Promise<void> {
  const nc = await connect({ servers: '127.0.0.1:4222' });
  const topology = await declareJetStreamTopology(await jetstreamManager(nc), {
    stream: 'ORDERS', subjects: ['orders.>'], consumer: 'worker',
  });
  const js = jetstream(nc);
  const handle = wrapHandler(async (data: Uint8Array) => void data.length);
  const consumer = await js.consumers.get(topology.stream, topology.consumer);
  const loop = consumeJetStream(consumer, handle, {
    deadLetterSubject: topology.deadLetterSubject, js, onError: (_e, msg) => void msg.info.redelivered,
  });
  const msg = await consumer.next();
  if (msg) await handle(jetstreamDelivery(msg, { js }));
  await loop.stop();
}
`,
  amqplib: `
import { connect } from 'amqplib';
import { consumeRabbit, declareRabbitTopology, wrapHandler } from 'bulwark/messaging';

export async function main(): Promise<void> {
  const connection = await connect('amqp://guest:guest@127.0.0.1:5672');
  const channel = await connection.createConfirmChannel();
  const { queue } = await declareRabbitTopology(channel, { queue: 'orders' });
  const handler = wrapHandler(async (body: Buffer) => void body.length);
  const consumer = await consumeRabbit(channel, { queue, handler });
  await consumer.cancel();
  const plain = await connection.createChannel();
  await declareRabbitTopology(plain, { queue: 'orders' });
}
`,
};

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    // Not exactOptionalPropertyTypes: @nats-io/nats-core's own declarations do not compile with it.
    skipLibCheck: false,
    types: ['node'],
    noEmit: true,
  },
  files: ['consumer.ts'],
};

let scratch: string;
let bulwark: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'bulwark-broker-clients-'));
  bulwark = join(scratch, 'bulwark');
  // Built here, not into dist/: other test files may be reading dist/ meanwhile.
  await run('npx', ['tsup', '--silent', '--out-dir', join(bulwark, 'dist')], { cwd: root });
  await cp(join(root, 'package.json'), join(bulwark, 'package.json'));
}, 180_000);

afterAll(async () => {
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

/** A project with bulwark (a copy) and only `client`'s packages (and @types/node) installed. */
async function project(client: Client, name: string): Promise<string> {
  const dir = join(scratch, name);
  await mkdir(join(dir, 'node_modules/@types'), { recursive: true });
  await cp(bulwark, join(dir, 'node_modules/bulwark'), { recursive: true });
  for (const name of [...CLIENTS[client], '@types/node']) {
    await mkdir(dirname(join(dir, 'node_modules', name)), { recursive: true });
    await symlink(join(modules, name), join(dir, 'node_modules', name), 'dir');
  }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  return dir;
}

/** Whether `name` resolves from `dir` (it must not, for a client the project did not install). */
function resolves(name: string, dir: string): boolean {
  try {
    createRequire(join(dir, 'x.js')).resolve(name);
    return true;
  } catch {
    return false;
  }
}

describe('bulwark/messaging with one broker client installed', () => {
  for (const client of Object.keys(CLIENTS) as Client[]) {
    it(`${client}: the declarations compile with skipLibCheck false, the other clients absent`, async () => {
      const dir = await project(client, `types-${client.replace(' ', '')}`);
      const others = (Object.keys(CLIENTS) as Client[]).filter((c) => c !== client).map((c) => CLIENTS[c][0]);
      for (const other of others) expect(resolves(other, dir), `${other} resolves from the project`).toBe(false);
      await writeFile(join(dir, 'consumer.ts'), CONSUMER[client]);
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG));
      const result = await run(process.execPath, [tsc, '-p', dir]).then(
        () => '',
        (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
      );
      expect(result).toBe('');
    }, 120_000);
  }

  it('nats 3 alone (no `nats` package): a poison message is dead-lettered, from ESM and CommonJS (real NATS)', async () => {
    const dir = await project('nats 3', 'run-nats3');
    expect(resolves('nats', dir)).toBe(false);
    const script = (loader: string) => `
${loader}
const nc = await connect({ servers: '127.0.0.1:4222', timeout: 3000, maxReconnectAttempts: 0 });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
const id = process.argv[2];
const topology = await declareJetStreamTopology(jsm, { stream: 'BW_' + id, subjects: ['bw.' + id + '.work'], consumer: 'worker' });
try {
  await js.publish('bw.' + id + '.work', new TextEncoder().encode('poison'));
  const handle = wrapHandler(async () => { throw new PermanentError('bad order'); });
  const errors = [];
  const loop = consumeJetStream(await js.consumers.get(topology.stream, topology.consumer), handle, {
    deadLetterSubject: topology.deadLetterSubject, js, onError: (e) => errors.push(String(e)),
  });
  let letter = null;
  for (let i = 0; i < 100 && letter === null; i++) {
    letter = await jsm.streams.getMessage(topology.deadLetterStream, { last_by_subj: topology.deadLetterSubject }).catch(() => null);
    if (letter === null) await new Promise((r) => setTimeout(r, 50));
  }
  await loop.stop();
  console.log(JSON.stringify({ body: letter && new TextDecoder().decode(letter.data), reason: letter && letter.header.get('x-bulwark-reason'), errors }));
} finally {
  await jsm.streams.delete(topology.stream).catch(() => {});
  await jsm.streams.delete(topology.deadLetterStream).catch(() => {});
  await nc.close();
}
`;
    const esm = `import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { consumeJetStream, declareJetStreamTopology, PermanentError, wrapHandler } from 'bulwark/messaging';`;
    const cjs = `const { connect } = require('@nats-io/transport-node');
const { jetstream, jetstreamManager } = require('@nats-io/jetstream');
const { consumeJetStream, declareJetStreamTopology, PermanentError, wrapHandler } = require('bulwark/messaging');`;
    await writeFile(join(dir, 'dead-letter.mjs'), script(esm));
    // CommonJS has no top-level await: the same script in an async function.
    await writeFile(join(dir, 'dead-letter.cjs'), `${cjs}\n(async () => {${script('')}})();`);
    for (const file of ['dead-letter.mjs', 'dead-letter.cjs']) {
      const id = randomUUID().replaceAll('-', '');
      const { stdout } = await run(process.execPath, [join(dir, file), id], { cwd: dir });
      expect(JSON.parse(stdout), file).toEqual({ body: 'poison', reason: 'permanent', errors: [] });
    }
  }, 120_000);
});
