/**
 * The bench runner: `npm run bench [-- --quick] [-- --suites=a,b] [-- --report file.json]`.
 * Runs the suites, prints tables, saves JSON under bench/results/, and (full runs) regenerates docs/benchmarks.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, totalmem, type } from 'node:os';
import { fileURLToPath } from 'node:url';
import { endProgress, progress, settings } from './harness.js';
import { evaluateTargets, markdown, overheadSvg, type Results, terminalReport } from './report.js';
import { breakersSuite } from './suites/breakers.js';
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
const SUITES = ['overhead', 'in-flight', 'fail-fast', 'events', 'breakers', 'http', 'grpc', 'messaging'] as const;
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

function parseArgs(argv: readonly string[]): { quick: boolean; suites: Suite[]; report: string | undefined } {
  let quick = false;
  let suites: Suite[] = [...SUITES];
  let report: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') quick = true;
    else if (a.startsWith('--suites=')) {
      const wanted = a.slice('--suites='.length).split(',');
      const unknown = wanted.filter((w) => !(SUITES as readonly string[]).includes(w));
      if (unknown.length > 0) throw new Error(`unknown suite(s): ${unknown.join(', ')}; known: ${SUITES.join(', ')}`);
      suites = wanted as Suite[];
    } else if (a === '--report') report = argv[++i];
    else throw new Error(`unknown argument ${a}; use --quick, --suites=${SUITES.join(',')} or --report <results.json>`);
  }
  return { quick, suites, report };
}

function writeDocs(r: Results): void {
  writeFileSync(`${ROOT}docs/benchmarks.md`, markdown(r));
  writeFileSync(`${ROOT}docs/benchmarks-overhead.svg`, overheadSvg(r));
  console.log('\nwrote docs/benchmarks.md and docs/benchmarks-overhead.svg');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.report !== undefined) {
    const r = JSON.parse(readFileSync(args.report, 'utf8')) as Results;
    console.log(terminalReport(r));
    writeDocs(r);
    return;
  }
  const s = settings(args.quick);
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
    },
    settings: { ...s },
    targets: [],
  };
  const results = r as { -readonly [K in keyof Results]: Results[K] };
  const total = args.suites.length;
  for (const [i, suite] of args.suites.entries()) {
    const step = `[${i + 1}/${total}]`;
    progress(`${step} ${suite}...`);
    if (suite === 'overhead') results.overhead = await overheadSuite(s, step);
    else if (suite === 'in-flight') results.inFlight = await inFlightSuite(s, step);
    else if (suite === 'fail-fast') results.failFast = await failFastSuite(s, step);
    else if (suite === 'events') results.events = await eventsSuite(s, step);
    else if (suite === 'breakers') results.breakers = await breakersSuite(s, step);
    else if (suite === 'http') results.http = await httpSuite(s, step);
    else if (suite === 'grpc') results.grpc = await grpcSuite(s, step);
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
  const file = `${ROOT}bench/results/${r.date.slice(0, 10)}${s.quick ? '-quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  console.log(`\nsaved ${file.slice(ROOT.length)} (${results.durationSec.toFixed(0)} s)`);
  // Only a full run of every suite stands for the project's published numbers.
  if (!s.quick && args.suites.length === SUITES.length) writeDocs(r);
  const missed = r.targets.filter((t) => !t.met);
  if (missed.length > 0) console.log(`\n${missed.length} target(s) missed; see the Targets table above.`);
}

main().catch((error: unknown) => {
  endProgress();
  console.error(error);
  process.exitCode = 1;
});
