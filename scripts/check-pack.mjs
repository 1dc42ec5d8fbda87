#!/usr/bin/env node
// Checks the package as a user gets it from the registry: `npm pack` of a fresh copy of the source (no dist/, so
// `prepack` must build it), then the tarball installed offline into a scratch project outside the repository.
// Every subpath in `exports` is then tried in its own copy of that project holding only the peers the subpath
// needs (symlinked from this repo's node_modules, so the check needs no network): imported from ESM and from CJS
// in child node processes, and a small TS file (.mts, then .cts) typechecked with `skipLibCheck: false`, as a
// strict TypeScript user would.
//
// Usage: node scripts/check-pack.mjs [--keep]   (--keep leaves the scratch directory for a look)
// Exit code 0 when every check passes (known failures listed in KNOWN_FAILURES fail as expected).
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));

// Every optional peer bulwark declares; a case may see only those it lists.
const ALL_PEERS = Object.keys(pkg.peerDependencies ?? {});

/**
 * One scratch project per case. `peers`: the packages the subpath needs, no more (types included: a user whose
 * project compiles with skipLibCheck: false has them installed). `names`: exports the subpath must have.
 * `compilerOptions`: what the case's typecheck changes in the strict defaults below, and why.
 */
const CASES = [
  { id: 'core', subpath: 'bulwark', peers: [], names: ['retry', 'circuitBreaker', 'pipeline', 'ResilienceError'] },
  { id: 'testing', subpath: 'bulwark/testing', peers: [], names: ['FakeClock'] },
  { id: 'undici', subpath: 'bulwark/undici', peers: ['undici'], names: ['interceptor', 'createFetch'] },
  { id: 'grpc', subpath: 'bulwark/grpc', peers: ['@grpc/grpc-js'], names: ['grpcInterceptor', 'GrpcStatusError'] },
  {
    id: 'messaging-amqplib',
    subpath: 'bulwark/messaging',
    peers: ['amqplib'],
    names: ['consumeRabbit', 'declareRabbitTopology', 'PermanentError'],
  },
  {
    id: 'messaging-nats2',
    subpath: 'bulwark/messaging',
    peers: ['nats'],
    names: ['consumeJetStream', 'declareJetStreamTopology', 'PermanentError'],
    // nats 2's own declarations, imported alone, need the DOM lib (TextEncoder as a type) and fail under
    // exactOptionalPropertyTypes (TS2420 in its MsgImpl, NatsConnectionImpl): a nats 2 user compiles without these.
    compilerOptions: { lib: ['ES2023', 'DOM'], exactOptionalPropertyTypes: false },
  },
  {
    id: 'messaging-nats3',
    subpath: 'bulwark/messaging',
    peers: ['@nats-io/transport-node', '@nats-io/jetstream'],
    names: ['consumeJetStream', 'declareJetStreamTopology', 'PermanentError'],
  },
  // bulwark/redis imports no Redis client (structural types, see client.ts): it loads with either client, or none.
  { id: 'redis-ioredis', subpath: 'bulwark/redis', peers: ['ioredis'], names: ['fromIoredis', 'RedisStoreError'] },
  { id: 'redis-node-redis', subpath: 'bulwark/redis', peers: ['redis'], names: ['fromNodeRedis', 'RedisStoreError'] },
  {
    id: 'opentelemetry',
    subpath: 'bulwark/opentelemetry',
    peers: ['@opentelemetry/api'],
    names: ['openTelemetryMetrics'],
  },
  { id: 'prometheus', subpath: 'bulwark/prometheus', peers: ['prom-client'], names: ['prometheusMetrics'] },
];

/**
 * Checks known to fail today, `case id:check` -> why. Such a check must fail (and is reported, not counted);
 * when it starts passing the script fails, asking for its line to be removed here, so the list stays true.
 */
/** @type {Map<string, string>} None today: messaging's declarations import no broker client since issue 12 item 2. */
const KNOWN_FAILURES = new Map();

const results = []; // { id, check, ok, detail }
const record = (id, check, ok, detail = '') => {
  const key = `${id}:${check}`;
  const known = KNOWN_FAILURES.get(key);
  results.push({ key, ok, known, detail });
  const mark = ok ? (known ? 'UNEXPECTED PASS' : 'ok') : known ? 'known failure' : 'FAIL';
  console.log(`  ${mark.padEnd(15)} ${key}${!ok && known ? `  (${known})` : ''}`);
  // A known failure shows its first lines too, so a change in how it fails is visible.
  if (!ok && detail) console.log(indent(detail, known ? 4 : 40));
};
const indent = (text, lines) =>
  text
    .trim()
    .split('\n')
    .slice(0, lines)
    .map((l) => `      | ${l}`)
    .join('\n');

// Every subpath in `exports` has a case, so a new entry point cannot ship unchecked.
const subpaths = Object.keys(pkg.exports)
  .filter((k) => k !== './package.json')
  .map((k) => (k === '.' ? 'bulwark' : `bulwark/${k.slice(2)}`));
const uncovered = subpaths.filter((s) => !CASES.some((c) => c.subpath === s));
const stale = CASES.filter((c) => !subpaths.includes(c.subpath)).map((c) => c.subpath);
if (uncovered.length > 0 || stale.length > 0) {
  console.error(`check-pack: CASES and package.json exports differ: uncovered ${uncovered}, not exported ${stale}`);
  process.exit(1);
}
for (const c of CASES) {
  for (const p of c.peers) {
    if (!existsSync(join(repo, 'node_modules', p, 'package.json'))) {
      console.error(`check-pack: peer ${p} (case ${c.id}) is not in ${join(repo, 'node_modules')}; run npm ci`);
      process.exit(1);
    }
  }
}

// The scratch root must have no node_modules above it, or packages there would leak into every case.
const scratch = mkdtempSync(join(tmpdir(), 'bulwark-pack-'));
for (let dir = dirname(scratch); ; dir = dirname(dir)) {
  if (existsSync(join(dir, 'node_modules'))) {
    console.error(`check-pack: ${join(dir, 'node_modules')} exists above the scratch directory ${scratch}`);
    process.exit(1);
  }
  if (dirname(dir) === dir) break;
}
// Children see no NODE_PATH/NODE_OPTIONS from the caller (a preload or extra lookup path would hide a gap).
const childEnv = { ...process.env };
delete childEnv.NODE_PATH;
delete childEnv.NODE_OPTIONS;

try {
  // 1. Pack from a fresh copy of the source (the files git would commit, uncommitted edits included, no dist/ nor
  //    other ignored output), as `npm publish` from a fresh clone in CI would: only `prepack` can build dist/.
  console.log('== npm pack (from a fresh copy of the source, without dist/)');
  const source = join(scratch, 'source');
  const tracked = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repo,
    encoding: 'utf8',
  });
  for (const file of tracked.split('\0')) {
    // Skips deleted files, and node_modules when it is a symlink (git lists a link, not an ignored directory).
    if (file === '' || file === 'node_modules' || !existsSync(join(repo, file))) continue;
    cpSync(join(repo, file), join(source, file), { recursive: true, verbatimSymlinks: true });
  }
  symlinkSync(join(repo, 'node_modules'), join(source, 'node_modules'));
  const packOut = execFileSync('npm', ['pack', '--json', '--pack-destination', scratch], {
    cwd: source,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // `prepack` may print before npm's JSON; the JSON is the array starting a line.
  const [packed] = JSON.parse(packOut.slice(packOut.search(/^\[/m)));
  const tarball = join(scratch, packed.filename);
  const files = new Set(packed.files.map((f) => f.path));
  const targets = Object.values(pkg.exports).flatMap(function leaves(v) {
    return typeof v === 'string' ? [v.replace(/^\.\//, '')] : Object.values(v).flatMap(leaves);
  });
  const missing = [...new Set(targets)].filter((t) => !files.has(t));
  record('tarball', 'exports-targets', missing.length === 0, `not in the tarball: ${missing.join(', ')}`);
  console.log(`  ${packed.filename}: ${packed.files.length} files, ${packed.size} bytes`);
  if (missing.length > 0) throw new Error('the tarball lacks files its exports name: nothing else to check');

  // 2. Install the tarball once, offline (bulwark has no dependencies; its peers are optional).
  console.log('== npm install <tarball> (offline)');
  const base = join(scratch, 'install');
  mkdirSync(base);
  writeFileSync(join(base, 'package.json'), JSON.stringify({ name: 'scratch', private: true }));
  execFileSync(
    'npm',
    ['install', tarball, '--no-save', '--no-package-lock', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'],
    { cwd: base, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const installed = join(base, 'node_modules', 'bulwark');

  // 3. One project per case: a copy of the installed package (a copy, not a link: node resolves a module's
  //    imports from its real path) and links to the case's peers only.
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  const jobs = []; // { id, check, args, dir }
  for (const c of CASES) {
    const dir = join(scratch, c.id);
    const modules = join(dir, 'node_modules');
    cpSync(installed, join(modules, 'bulwark'), { recursive: true });
    const link = (name) => {
      mkdirSync(dirname(join(modules, name)), { recursive: true });
      symlinkSync(join(repo, 'node_modules', name), join(modules, name), 'dir');
    };
    for (const p of c.peers) link(p);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `scratch-${c.id}`, private: true }));
    const absent = ALL_PEERS.filter((p) => !c.peers.includes(p));
    const names = JSON.stringify(c.names);

    // ESM and CJS: the import works, the expected names are there, both formats export the same names, and
    // the peers the case lacks really are out of reach (else the case would prove nothing).
    writeFileSync(
      join(dir, 'esm.mjs'),
      `import * as m from '${c.subpath}';\n` +
        `const missing = ${names}.filter((n) => m[n] === undefined);\n` +
        `if (missing.length) throw new Error('missing exports: ' + missing);\n` +
        `console.log(JSON.stringify(Object.keys(m).filter((k) => k !== 'default').sort()));\n`,
    );
    writeFileSync(
      join(dir, 'cjs.cjs'),
      `const m = require('${c.subpath}');\n` +
        `const missing = ${names}.filter((n) => m[n] === undefined);\n` +
        `if (missing.length) throw new Error('missing exports: ' + missing);\n` +
        `const { createRequire } = require('node:module');\n` +
        `const from = createRequire(require.resolve('bulwark/package.json'));\n` +
        `for (const p of ${JSON.stringify(absent)}) {\n` +
        `  let found; try { found = from.resolve(p); } catch {}\n` +
        `  if (found) throw new Error('isolation: ' + p + ' resolves from bulwark (' + found + ')');\n` +
        `}\n` +
        `console.log(JSON.stringify(Object.keys(m).filter((k) => k !== '__esModule').sort()));\n`,
    );
    jobs.push({ id: c.id, check: 'esm', args: ['esm.mjs'], dir });
    jobs.push({ id: c.id, check: 'cjs', args: ['cjs.cjs'], dir });

    // Types: a strict project with skipLibCheck off importing the subpath, once as an ES module project and once
    // as a CommonJS one (the `import` and `require` conditions resolve to different declaration files).
    link('@types/node');
    const use = `import { ${c.names.join(', ')} } from '${c.subpath}';\nexport const used = [${c.names.join(', ')}];\n`;
    for (const [check, file] of [
      ['types-esm', 'check.mts'],
      ['types-cjs', 'check.cts'],
    ]) {
      writeFileSync(join(dir, file), use);
      writeFileSync(
        join(dir, `tsconfig.${check}.json`),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            lib: ['ES2023'],
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            types: ['node'],
            strict: true,
            exactOptionalPropertyTypes: true,
            skipLibCheck: false,
            noEmit: true,
            ...c.compilerOptions,
          },
          files: [file],
        }),
      );
      jobs.push({ id: c.id, check, args: [tsc, '-p', `tsconfig.${check}.json`, '--pretty', 'false'], dir });
    }
  }

  // 4. Run the checks, a few at a time (each is a child node process; tsc dominates).
  const runJob = (job) =>
    new Promise((done) => {
      const child = spawn(process.execPath, job.args, { cwd: job.dir, env: childEnv });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('close', (code) => done({ ...job, ok: code === 0, out }));
    });
  const outcomes = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      outcomes[i] = await runJob(jobs[i]);
    }
  };
  const width = Math.max(1, Math.min(4, availableParallelism()));
  await Promise.all(Array.from({ length: width }, worker));

  for (const c of CASES) {
    console.log(`== ${c.subpath} with ${c.peers.length > 0 ? c.peers.join(' + ') : 'no peers'}`);
    const mine = outcomes.filter((o) => o.id === c.id);
    for (const o of mine) record(o.id, o.check, o.ok, o.out);
    const [esm, cjs] = [mine.find((o) => o.check === 'esm'), mine.find((o) => o.check === 'cjs')];
    if (esm.ok && cjs.ok) {
      record(c.id, 'esm=cjs', esm.out.trim() === cjs.out.trim(), `ESM exports ${esm.out}CJS exports ${cjs.out}`);
    }
  }
} finally {
  if (keep) console.log(`scratch directory kept: ${scratch}`);
  else rmSync(scratch, { recursive: true, force: true });
}

const failed = results.filter((r) => !r.ok && !r.known);
const unexpected = results.filter((r) => r.ok && r.known);
const knownFailed = results.filter((r) => !r.ok && r.known);
console.log(
  `\ncheck-pack: ${results.filter((r) => r.ok && !r.known).length} passed, ${failed.length} failed, ` +
    `${knownFailed.length} known failures` +
    (unexpected.length > 0 ? `, ${unexpected.length} unexpectedly passing` : ''),
);
for (const r of unexpected) {
  console.log(`  ${r.key} passes now: remove it from KNOWN_FAILURES in scripts/check-pack.mjs`);
}
process.exit(failed.length > 0 || unexpected.length > 0 ? 1 : 0);
