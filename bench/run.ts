/**
 * The bench runner: `npm run bench [-- --quick] [-- --suites=a,b] [-- --update-docs] [-- --report file.json ...]`.
 * Runs the suites, prints tables and saves JSON under bench/results/. It never writes a tracked file unless asked:
 * `--update-docs` (maintainers) regenerates docs/benchmarks.md, its SVG and bench/results/published.json.
 * Missed targets are reported, not failed: the exit code is 0 unless the bench itself broke.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, totalmem, type } from 'node:os';
import { fileURLToPath } from 'node:url';
import { contenders } from './contenders.js';
import { endProgress, progress, settings } from './harness.js';
import { loadPeers } from './peers.js';
import {
  evaluateTargets,
  markdown,
  missedTargetsReport,
  nodeOf,
  overheadSvg,
  type Results,
  terminalReport,
} from './report.js';
import { breakersSuite } from './suites/breakers.js';
import { deoptChild, deoptSuite } from './suites/deopt.js';
import { eventsSuite } from './suites/events.js';
import { failFastSuite } from './suites/fail-fast.js';
import { grpcSuite } from './suites/grpc.js';
import { httpSuite } from './suites/http.js';
import { inFlightSuite } from './suites/in-flight.js';
import { messagingSuite } from './suites/messaging.js';
import { overheadSuite } from './suites/overhead.js';

/** The repository root: the nearest folder above this file (or its bundle in bench/.out) with bulwark's package.json. */
function findRoot(): string {
  let dir = new URL('.', import.meta.url);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string };
      if (pkg.name === 'bulwark') return fileURLToPath(dir);
    } catch {
      // not here; look one folder up
    }
    dir = new URL('..', dir);
  }
  throw new Error('bench: cannot find the bulwark repository root above bench/');
}
const ROOT = findRoot();
const require = createRequire(`${ROOT}package.json`);
const VERSIONED = [
  'cockatiel',
  'opossum',
  'p-limit',
  'p-retry',
  'undici',
  '@grpc/grpc-js',
  'mitata',
  'hdr-histogram-js',
] as const;
const SUITES = [
  'overhead',
  'in-flight',
  'deopt',
  'fail-fast',
  'events',
  'breakers',
  'http',
  'grpc',
  'messaging',
] as const;
type Suite = (typeof SUITES)[number];

function versionOf(name: string): string {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    // Packages whose exports map hides package.json: read it from node_modules directly.
    return (JSON.parse(readFileSync(`${ROOT}node_modules/${name}/package.json`, 'utf8')) as { version: string })
      .version;
  }
}

/** A mistake in the command line: printed without a stack trace. */
class UsageError extends Error {}

interface Args {
  readonly quick: boolean;
  readonly suites: Suite[];
  /** Saved results to print (and, with --update-docs, publish) instead of measuring. */
  readonly reports: string[];
  readonly updateDocs: boolean;
}

const USAGE = `usage: npm run bench [-- --quick] [-- --suites=${SUITES.join(',')}] [-- --update-docs]
       npm run bench -- --report <results.json> [--report <results.json> ...] [--update-docs]`;

function parseArgs(argv: readonly string[]): Args {
  let quick = false;
  let suites: Suite[] = [...SUITES];
  const reports: string[] = [];
  let updateDocs = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') quick = true;
    else if (a === '--update-docs') updateDocs = true;
    else if (a.startsWith('--suites=')) {
      const wanted = a.slice('--suites='.length).split(',');
      const unknown = wanted.filter((w) => !(SUITES as readonly string[]).includes(w));
      if (unknown.length > 0)
        throw new UsageError(`unknown suite(s): ${unknown.join(', ')}; known: ${SUITES.join(', ')}`);
      suites = wanted as Suite[];
    } else if (a === '--report') {
      const file = argv[++i];
      if (file === undefined) throw new UsageError(`--report needs a results file\n${USAGE}`);
      reports.push(file);
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a}\n${USAGE}`);
  }
  if (updateDocs && reports.length === 0 && (quick || suites.length !== SUITES.length)) {
    throw new UsageError(
      '--update-docs publishes a full run of every suite; drop --quick and --suites (or pass --report <results.json>)',
    );
  }
  return { quick, suites, reports, updateDocs };
}

/**
 * A results file holds one run or, for bench/results/published.json, the runs the docs page shows. The targets are
 * evaluated again from the measurements, so a re-rendered page states the targets of the current bench/report.ts.
 */
function readRuns(file: string): Results[] {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Results | Results[];
  return (Array.isArray(parsed) ? parsed : [parsed]).map((r) => ({ ...r, targets: evaluateTargets(r) }));
}

/** Regenerates the docs page, its chart and bench/results/published.json (the runs they show); maintainers only. */
function writeDocs(runs: readonly Results[]): void {
  const unfit = runs.filter((r) => r.quick || SUITES.some((k) => !hasSuite(r, k)));
  if (unfit.length > 0) {
    throw new UsageError(
      `--update-docs publishes full runs of every suite only; not: ${unfit.map((r) => `${r.date} (Node ${nodeOf(r)}${r.quick ? ', quick' : ', some suites'})`).join(', ')}`,
    );
  }
  writeFileSync(`${ROOT}bench/results/published.json`, `${JSON.stringify(runs, null, 2)}\n`);
  writeFileSync(`${ROOT}docs/benchmarks.md`, markdown(runs));
  writeFileSync(`${ROOT}docs/benchmarks-overhead.svg`, overheadSvg(runs));
  console.log(
    `\nwrote docs/benchmarks.md, docs/benchmarks-overhead.svg and bench/results/published.json from ${runs.length} run(s) (Node ${runs.map(nodeOf).join(', Node ')})`,
  );
}

const SUITE_KEYS: Record<Suite, keyof Results> = {
  overhead: 'overhead',
  'in-flight': 'inFlight',
  deopt: 'deopt',
  'fail-fast': 'failFast',
  events: 'events',
  breakers: 'breakers',
  http: 'http',
  grpc: 'grpc',
  messaging: 'messaging',
};
const hasSuite = (r: Results, s: Suite) => r[SUITE_KEYS[s]] !== undefined;

async function main(): Promise<void> {
  // The deopt suite's child process: this bundle again, under --trace-deopt (see bench/suites/deopt.ts).
  if (process.argv[2] === '--deopt-child') return deoptChild(process.argv.slice(3));
  const args = parseArgs(process.argv.slice(2));
  if (args.reports.length > 0) {
    const runs = args.reports.flatMap(readRuns);
    for (const r of runs) console.log(`${terminalReport(r)}\n\n${missedTargetsReport(r)}`);
    if (args.updateDocs) writeDocs(runs);
    return;
  }
  const s = settings(args.quick);
  const peers = await loadPeers();
  const list = contenders(peers);
  // Record process warnings (a contender leaking listeners, say) with the frame that raised them.
  const warnings = new Set<string>();
  process.on('warning', (w) => {
    const frame = (w.stack ?? '')
      .split('\n')
      .slice(1)
      .map((l) => l.trim())
      .find((l) => l.startsWith('at ') && !l.includes('node:internal'));
    const where = frame
      ?.replace(/^at /, '')
      .replace(/\(.*node_modules\//, '(')
      .replace(/\(\/.*\/(src|bench)\//, '($1/');
    warnings.add(`${w.name}: ${w.message.split('. ')[0]}${where ? `, raised at ${where}` : ''}`);
  });
  const started = process.hrtime.bigint();
  const cpu = cpus();
  const r: Results = {
    date: new Date().toISOString(),
    node: process.versions.node,
    quick: s.quick,
    durationSec: 0,
    machine: {
      node: process.versions.node,
      v8: process.versions.v8,
      os: `${type()} ${release()}`,
      cpus: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
    },
    versions: {
      bulwark: (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version,
      ...Object.fromEntries(VERSIONED.map((n) => [n, versionOf(n)])),
      // The newer majors run under their npm alias (cockatiel4, opossum10) on Node >= 22 only.
      ...Object.fromEntries(
        [...peers.cockatiel, ...peers.opossum]
          .filter((p) => !(VERSIONED as readonly string[]).includes(p.pkg))
          .map((p) => [p.pkg, versionOf(p.pkg)]),
      ),
    },
    peers: [...peers.cockatiel, ...peers.opossum].map((p) => p.label),
    settings: { ...s },
    targets: [],
  };
  const results = r as { -readonly [K in keyof Results]: Results[K] };
  const total = args.suites.length;
  for (const [i, suite] of args.suites.entries()) {
    const step = `[${i + 1}/${total}]`;
    progress(`${step} ${suite}...`);
    if (suite === 'overhead') results.overhead = await overheadSuite(s, step, list);
    else if (suite === 'in-flight') results.inFlight = await inFlightSuite(s, step, list);
    else if (suite === 'deopt') results.deopt = await deoptSuite(s, step);
    else if (suite === 'fail-fast') results.failFast = await failFastSuite(s, step, peers);
    else if (suite === 'events') results.events = await eventsSuite(s, step);
    else if (suite === 'breakers') results.breakers = await breakersSuite(s, step, peers);
    else if (suite === 'http') results.http = await httpSuite(s, step, peers);
    else if (suite === 'grpc') results.grpc = await grpcSuite(s, step, peers);
    else results.messaging = await messagingSuite(s, step);
  }
  endProgress();
  results.durationSec = Number(process.hrtime.bigint() - started) / 1e9;
  results.targets = evaluateTargets(r);
  results.warnings = [...warnings];
  if (warnings.size > 0)
    console.log(`\nwarnings seen during the run:\n${[...warnings].map((w) => `- ${w}`).join('\n')}`);
  console.log(terminalReport(r));
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  // One file per run (time of day and Node major in the name), so runs on several Nodes never overwrite each other.
  const stamp = r.date.slice(0, 19).replace(/:/g, '-');
  const file = `${ROOT}bench/results/${stamp}Z-node${process.versions.node.split('.')[0]}${s.quick ? '-quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  console.log(`\nsaved ${file.slice(ROOT.length)} (${results.durationSec.toFixed(0)} s, Node ${r.node})`);
  if (args.updateDocs) writeDocs([r]);
  // Missed targets are information about this machine and run, not a failure of the bench: the exit code stays 0.
  console.log(`\n${missedTargetsReport(r)}`);
}

main().catch((error: unknown) => {
  endProgress();
  console.error(error instanceof UsageError ? `bench: ${error.message}` : error);
  process.exitCode = 1;
});
