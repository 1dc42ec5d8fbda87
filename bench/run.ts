/**
 * The bench runner: `npm run bench [-- --quick] [-- --suites=a,b] [-- --update-docs] [-- --report file.json ...]`.
 * Runs the suites, prints tables and saves JSON under bench/results/. `--instructions [--contenders=a,b]` counts
 * instructions per call under callgrind instead (see bench/instructions.ts). It never writes a tracked file unless asked:
 * `--update-docs` (maintainers) regenerates docs/benchmarks.md, its SVG and bench/results/published.json.
 * Missed targets are reported, not failed: the exit code is 0 unless the bench itself broke (a suite that fails,
 * in its child process or otherwise, is a broken bench: exit code 1).
 *
 * Each suite runs in a fresh child process: this bundle again (`--child-suite=<name>`), on the same node binary with
 * the same flags (`process.execPath`, `process.execArgv`), which sends its rows back over IPC; the parent measures
 * nothing itself and merges the rows into one run. Why: suites run one after another in one process leave the next
 * suite their heap, timers, JIT state and megamorphic call sites, so a suite's numbers depended on the suites before
 * it (wrapHandler measured 0.29x of a bare handler as the last suite on Node 20 and 0.77-1.08x alone).
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, totalmem, type } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type Contender, inFlightContenders, overheadContenders } from './contenders.js';
import {
  endProgress,
  IN_PROCESS_CHILD,
  inProcessRounds,
  inProcessSize,
  progress,
  type Settings,
  settings,
} from './harness.js';
import {
  buildDistChild,
  countInstructions,
  distProblem,
  type InstructionsResults,
  instructionsReport,
  instructionsSize,
  valgrindVersion,
} from './instructions.js';
import { loadPeers, type Peers } from './peers.js';
import {
  evaluateTargets,
  markdown,
  missedTargetsReport,
  nodeOf,
  overheadSvg,
  overloadSvg,
  type Results,
  terminalReport,
} from './report.js';
import { breakersSuite } from './suites/breakers.js';
import { deoptChild, deoptSuite } from './suites/deopt.js';
import { eventsSuite } from './suites/events.js';
import { failFastSuite } from './suites/fail-fast.js';
import { grpcInProcessContenders, grpcSuite } from './suites/grpc.js';
import { httpInProcessContenders, httpSuite } from './suites/http.js';
import { inFlightSuite } from './suites/in-flight.js';
import { messagingSuite } from './suites/messaging.js';
import { overheadSuite } from './suites/overhead.js';
import { overloadSuite } from './suites/overload.js';
import { redisSuite } from './suites/redis.js';
import { redisSharedSuite } from './suites/redis-shared.js';

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
  'redis',
  'redis-shared',
  'overload',
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
  /** Count instructions per call under callgrind instead of running the suites (see bench/instructions.ts). */
  readonly instructions: boolean;
  /** With `instructions`: the contenders to count (bare is always counted); default: bare, the floors, bulwark's. */
  readonly contenders: string[] | undefined;
  /** With `instructions`: count bulwark as built in dist/ instead of bundled from src/ (see buildDistChild). */
  readonly dist: boolean;
}

const USAGE = `usage: npm run bench [-- --quick] [-- --suites=${SUITES.join(',')}] [-- --update-docs]
       npm run bench -- --report <results.json> [--report <results.json> ...] [--update-docs]
       npm run bench -- --instructions [--quick] [--dist] [--contenders=<name>,<name>]   (needs valgrind)`;

function parseArgs(argv: readonly string[]): Args {
  let quick = false;
  let suites: Suite[] = [...SUITES];
  const reports: string[] = [];
  let updateDocs = false;
  let instructions = false;
  let picked: string[] | undefined;
  let suitesGiven = false;
  let dist = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') quick = true;
    else if (a === '--update-docs') updateDocs = true;
    else if (a === '--instructions') instructions = true;
    else if (a === '--dist') dist = true;
    else if (a.startsWith('--contenders=')) picked = a.slice('--contenders='.length).split(',').filter(Boolean);
    else if (a.startsWith('--suites=')) {
      const wanted = a.slice('--suites='.length).split(',');
      const unknown = wanted.filter((w) => !(SUITES as readonly string[]).includes(w));
      if (unknown.length > 0)
        throw new UsageError(`unknown suite(s): ${unknown.join(', ')}; known: ${SUITES.join(', ')}`);
      suites = wanted as Suite[];
      suitesGiven = true;
    } else if (a === '--report') {
      const file = argv[++i];
      if (file === undefined) throw new UsageError(`--report needs a results file\n${USAGE}`);
      reports.push(file);
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a}\n${USAGE}`);
  }
  if (instructions && (updateDocs || reports.length > 0 || suitesGiven)) {
    throw new UsageError(
      `--instructions counts instructions instead of running suites: drop --update-docs, --report and --suites\n${USAGE}`,
    );
  }
  if (picked !== undefined && !instructions) throw new UsageError(`--contenders goes with --instructions\n${USAGE}`);
  if (dist && !instructions) throw new UsageError(`--dist goes with --instructions\n${USAGE}`);
  if (updateDocs && reports.length === 0 && (quick || suites.length !== SUITES.length)) {
    throw new UsageError(
      '--update-docs publishes a full run of every suite; drop --quick and --suites (or pass --report <results.json>)',
    );
  }
  return { quick, suites, reports, updateDocs, instructions, contenders: picked, dist };
}

/**
 * What a saved results file holds: one timed run, one instruction count (`--instructions`) or, for the published
 * files, a list of either. The targets are evaluated again from the measurements, so a re-rendered page states the
 * targets of the current bench/report.ts.
 */
function readReports(file: string): { runs: Results[]; counts: InstructionsResults[] } {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as
    | Results
    | InstructionsResults
    | (Results | InstructionsResults)[];
  const all = Array.isArray(parsed) ? parsed : [parsed];
  const isCount = (x: Results | InstructionsResults): x is InstructionsResults => 'valgrind' in x;
  return {
    runs: all.filter((x): x is Results => !isCount(x)).map((r) => ({ ...r, targets: evaluateTargets(r) })),
    counts: all.filter(isCount),
  };
}

const PUBLISHED_COUNTS = 'bench/results/published-instructions.json';

/** The instruction counts the docs show now (none before any was published). */
function publishedCounts(): InstructionsResults[] {
  const file = `${ROOT}${PUBLISHED_COUNTS}`;
  return existsSync(file) ? readReports(file).counts : [];
}

/**
 * Regenerates the docs page, its charts, bench/results/published.json (the runs they show) and, when counts are given,
 * bench/results/published-instructions.json (the instruction counts they show); maintainers only. Without counts, the
 * published ones stay.
 */
function writeDocs(runs: readonly Results[], given: readonly InstructionsResults[]): void {
  if (runs.length === 0) {
    throw new UsageError(
      '--update-docs needs at least one timed run (--report <results.json>), not instruction counts alone',
    );
  }
  const unfit = runs.filter((r) => r.quick || SUITES.some((k) => !hasSuite(r, k)));
  if (unfit.length > 0) {
    throw new UsageError(
      `--update-docs publishes full runs of every suite only; not: ${unfit.map((r) => `${r.date} (Node ${nodeOf(r)}${r.quick ? ', quick' : ', some suites'})`).join(', ')}`,
    );
  }
  const quickCounts = given.filter((c) => c.quick);
  if (quickCounts.length > 0) {
    throw new UsageError(
      `--update-docs publishes full instruction counts only; not: ${quickCounts.map((c) => `${c.date} (Node ${c.node}, quick)`).join(', ')}`,
    );
  }
  const counts = given.length > 0 ? given : publishedCounts();
  writeFileSync(`${ROOT}bench/results/published.json`, `${JSON.stringify(runs, null, 2)}\n`);
  if (given.length > 0) writeFileSync(`${ROOT}${PUBLISHED_COUNTS}`, `${JSON.stringify(given, null, 2)}\n`);
  writeFileSync(`${ROOT}docs/benchmarks.md`, markdown(runs, counts));
  writeFileSync(`${ROOT}docs/benchmarks-overhead.svg`, overheadSvg(runs));
  writeFileSync(`${ROOT}docs/benchmarks-overload.svg`, overloadSvg(runs));
  console.log(
    `\nwrote docs/benchmarks.md, docs/benchmarks-overhead.svg, docs/benchmarks-overload.svg and bench/results/published.json from ${runs.length} run(s) (Node ${runs.map(nodeOf).join(', Node ')})`,
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
  redis: 'redis',
  'redis-shared': 'redisShared',
  overload: 'overload',
};
const hasSuite = (r: Results, s: Suite) => r[SUITE_KEYS[s]] !== undefined;

/** Process warnings seen (a contender leaking listeners, say), each with the frame that raised it. */
function watchWarnings(): Set<string> {
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
  return warnings;
}

/** Runs one suite in this process and returns its rows (what goes under its key in {@link Results}). */
async function runSuite(suite: Suite, s: Settings, step: string, peers: Peers): Promise<unknown> {
  if (suite === 'overhead') return overheadSuite(s, step, overheadContenders(peers));
  if (suite === 'in-flight') return inFlightSuite(s, step, inFlightContenders(peers));
  if (suite === 'deopt') return deoptSuite(s, step);
  if (suite === 'fail-fast') return failFastSuite(s, step, peers);
  if (suite === 'events') return eventsSuite(s, step);
  if (suite === 'breakers') return breakersSuite(s, step, peers);
  if (suite === 'http') return httpSuite(s, step, peers);
  if (suite === 'grpc') return grpcSuite(s, step, peers);
  if (suite === 'overload') return overloadSuite(s, step);
  if (suite === 'redis') return redisSuite(s, step);
  if (suite === 'redis-shared') return redisSharedSuite(s, step);
  return messagingSuite(s, step);
}

const CHILD_SUITE = '--child-suite=';
const CHILD_STEP = '--step=';

/** What a suite's child process sends the runner: its rows and the process warnings it saw. */
interface ChildReport {
  readonly suite: Suite;
  readonly rows: unknown;
  readonly warnings: readonly string[];
}

/**
 * The child's side (`run.mjs --child-suite=<name> [--step=<label>] [--quick]`): runs that one suite and sends its
 * report over IPC. Run by hand (no IPC channel), it prints the report as JSON on stdout instead.
 */
async function childMain(argv: readonly string[]): Promise<void> {
  const suite = (argv.find((a) => a.startsWith(CHILD_SUITE)) ?? '').slice(CHILD_SUITE.length) as Suite;
  if (!SUITES.includes(suite)) throw new UsageError(`--child-suite: unknown suite "${suite}"`);
  const step = (argv.find((a) => a.startsWith(CHILD_STEP)) ?? '').slice(CHILD_STEP.length) || '[1/1]';
  const warnings = watchWarnings();
  const rows = await runSuite(suite, settings(argv.includes('--quick')), step, await loadPeers());
  endProgress();
  const report: ChildReport = { suite, rows, warnings: [...warnings] };
  const send = process.send?.bind(process);
  if (send === undefined) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  await new Promise<void>((resolve, reject) => send(report, undefined, {}, (e) => (e ? reject(e) : resolve())));
  // Without the IPC channel the process exits by itself once the suite has released its handles.
  process.disconnect();
}

/** How long a child may take to exit after it reported: longer means a suite left a timer or socket open. */
const CHILD_EXIT_GRACE_MS = 30_000;

/**
 * Runs one suite in a fresh child process: this bundle again, with the node binary and flags of this one
 * (`--expose-gc`, or whatever the caller passed). Rejects with a message naming the suite when the child fails.
 */
function runChild(suite: Suite, quick: boolean, step: string): Promise<ChildReport> {
  const args = [`${CHILD_SUITE}${suite}`, `${CHILD_STEP}${step}`, ...(quick ? ['--quick'] : [])];
  return new Promise<ChildReport>((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), args, {
      execPath: process.execPath,
      execArgv: process.execArgv,
      // Structured clone rather than JSON: a NaN (a measurement that could not be made) stays NaN, as it was when
      // the suites ran in the runner's process.
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let report: ChildReport | undefined;
    let lingering: NodeJS.Timeout | undefined;
    child.on('message', (m: ChildReport) => {
      report = m;
      lingering = setTimeout(() => child.kill('SIGKILL'), CHILD_EXIT_GRACE_MS);
    });
    child.once('error', (e) => reject(new Error(`suite "${suite}": its child process failed to run: ${e.message}`)));
    child.once('exit', (code, signal) => {
      clearTimeout(lingering);
      const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
      if (report !== undefined && code === 0) resolve(report);
      else if (report !== undefined && signal === 'SIGKILL' && lingering !== undefined) {
        reject(
          new Error(
            `suite "${suite}": its child process reported but did not exit within ${CHILD_EXIT_GRACE_MS / 1000} s (a timer or socket left open)`,
          ),
        );
      } else if (report !== undefined) reject(new Error(`suite "${suite}": its child process ${how} after reporting`));
      else reject(new Error(`suite "${suite}": its child process ${how} without a result (its output is above)`));
    });
  });
}

/** End-to-end suites whose contenders also run in process, on a fake transport (see inProcessInChild). */
const IN_PROCESS: Readonly<
  Record<string, (peers: Peers) => { name: string; run: () => Promise<unknown>; dispose?: () => void }[]>
> = {
  http: httpInProcessContenders,
  grpc: grpcInProcessContenders,
};

/**
 * An in-process part's own process (`run.mjs --in-process-child <suite> <step> [--quick]`): runs the suite's
 * contenders on their fake transport and prints what {@link inProcessRounds} measured as JSON on stdout.
 */
async function inProcessChild(argv: readonly string[]): Promise<void> {
  const [suite = '', step = '[1/1]'] = argv;
  const make = IN_PROCESS[suite];
  if (make === undefined) throw new UsageError(`${IN_PROCESS_CHILD}: no in-process part for suite "${suite}"`);
  const { rounds, calls } = inProcessSize(argv.includes('--quick'));
  const list = make(await loadPeers());
  try {
    const own = await inProcessRounds(
      list,
      rounds,
      calls,
      64,
      (r, i, c) => `${step} ${suite} in process: round ${r + 1}/${rounds}, ${i + 1}/${list.length} ${c.name}`,
    );
    endProgress();
    process.stdout.write(`${JSON.stringify([...own])}\n`);
  } finally {
    for (const c of list) c.dispose?.();
  }
}

/**
 * Saves `data` as bench/results/<date>T<time>Z-node<major><suffix>.json and returns the path. One file per run (time
 * of day and Node major in the name), so runs on several Nodes never overwrite each other.
 */
function saveResults(date: string, suffix: string, data: unknown): string {
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  const stamp = date.slice(0, 19).replace(/:/g, '-');
  const file = `${ROOT}bench/results/${stamp}Z-node${process.versions.node.split('.')[0]}${suffix}.json`;
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** The contenders `--instructions` counts: those named, or bare, the floors and bulwark's; bare always first. */
function instructionContenders(all: readonly Contender[], names: readonly string[] | undefined): Contender[] {
  if (names === undefined)
    return all.filter((c) => c.library === 'baseline' || c.library === 'floor' || c.library === 'bulwark');
  const unknown = names.filter((n) => !all.some((c) => c.name === n));
  if (unknown.length > 0) {
    throw new UsageError(
      `--contenders: unknown ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${all.map((c) => c.name).join(', ')}`,
    );
  }
  return all.filter((c) => c.name === 'bare' || names.includes(c.name));
}

/** `--instructions`: counts each contender under callgrind, prints the tables and saves them under bench/results/. */
async function instructionsMain(args: Args): Promise<void> {
  // Built next to this bundle by `npm run bench` (a second entry point: the counted process loads only contenders).
  const child = fileURLToPath(new URL('./instructions-child.mjs', import.meta.url));
  if (!existsSync(child)) {
    throw new UsageError(`--instructions runs ${child}, which is missing: \`npm run bench\` builds it`);
  }
  const list = instructionContenders(overheadContenders(await loadPeers()), args.contenders);
  const valgrind = valgrindVersion();
  if (valgrind === undefined) {
    throw new UsageError('--instructions needs valgrind (callgrind) on the PATH: install it (apt install valgrind)');
  }
  let script = child;
  if (args.dist) {
    const problem = distProblem(ROOT);
    if (problem !== undefined) throw new UsageError(problem);
    // Built here rather than by `npm run bench`: it needs a bundler plugin, and only --dist uses it.
    script = fileURLToPath(new URL('./instructions-child-dist.mjs', import.meta.url));
    await buildDistChild(`${ROOT}bench/instructions-child.ts`, script);
  }
  const size = instructionsSize(args.quick);
  // Two counts per contender and op, each a whole process under callgrind (tens of seconds): one per core at a time.
  const rows = await countInstructions(script, list, size, Math.max(1, cpus().length), (d, n, what) =>
    progress(`instructions: ${d}/${n} counted (${what})`),
  );
  endProgress();
  const r: InstructionsResults = {
    date: new Date().toISOString(),
    build: args.dist ? 'dist' : 'bench',
    machine: `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores`,
    node: process.versions.node,
    valgrind,
    quick: args.quick,
    size,
    rows,
  };
  console.log(instructionsReport(r));
  const file = saveResults(r.date, `-instructions${args.dist ? '-dist' : ''}${args.quick ? '-quick' : ''}`, r);
  console.log(`\nsaved ${file.slice(ROOT.length)}`);
}

async function main(): Promise<void> {
  // The deopt suite's child process: this bundle again, under --trace-deopt (see bench/suites/deopt.ts).
  if (process.argv[2] === '--deopt-child') return deoptChild(process.argv.slice(3));
  // An end-to-end suite's in-process part (see inProcessInChild in bench/harness.ts).
  if (process.argv[2] === IN_PROCESS_CHILD) return inProcessChild(process.argv.slice(3));
  // A suite's own process (see runChild).
  if (process.argv[2]?.startsWith(CHILD_SUITE)) return childMain(process.argv.slice(2));
  const args = parseArgs(process.argv.slice(2));
  if (args.instructions) return instructionsMain(args);
  if (args.reports.length > 0) {
    const read = args.reports.map(readReports);
    const runs = read.flatMap((x) => x.runs);
    const counts = read.flatMap((x) => x.counts);
    for (const r of runs) console.log(`${terminalReport(r)}\n\n${missedTargetsReport(r)}`);
    for (const c of counts) console.log(`\n${instructionsReport(c)}`);
    if (args.updateDocs) writeDocs(runs, counts);
    return;
  }
  // Checked here, before any child starts: each would fail on its first gc() otherwise.
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    throw new UsageError('run the bench with node --expose-gc (npm run bench does); the suites inherit the flags');
  }
  const s = settings(args.quick);
  // The runner loads the peers only to name them and their versions; the suites load their own, in their process.
  const peers = await loadPeers();
  const warnings = watchWarnings();
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
  const failures: string[] = [];
  for (const [i, suite] of args.suites.entries()) {
    const step = `[${i + 1}/${total}]`;
    progress(`${step} ${suite}: starting its own process...`);
    const t0 = process.hrtime.bigint();
    try {
      const report = await runChild(suite, args.quick, step);
      (results as Record<string, unknown>)[SUITE_KEYS[suite]] = report.rows;
      for (const w of report.warnings) warnings.add(w);
      endProgress();
      console.log(`${step} ${suite}: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s`);
    } catch (error) {
      // The other suites still run (a long run is not thrown away), but the bench fails at the end.
      endProgress();
      const message = error instanceof Error ? error.message : String(error);
      console.error(
        `${step} ${suite}: FAILED after ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s: ${message}`,
      );
      failures.push(message);
    }
  }
  endProgress();
  results.durationSec = Number(process.hrtime.bigint() - started) / 1e9;
  results.targets = evaluateTargets(r);
  results.warnings = [...warnings];
  if (warnings.size > 0)
    console.log(`\nwarnings seen during the run:\n${[...warnings].map((w) => `- ${w}`).join('\n')}`);
  console.log(terminalReport(r));
  const file = saveResults(r.date, s.quick ? '-quick' : '', r);
  console.log(`\nsaved ${file.slice(ROOT.length)} (${results.durationSec.toFixed(0)} s, Node ${r.node})`);
  if (failures.length === 0 && args.updateDocs) writeDocs([r], []);
  // Missed targets are information about this machine and run, not a failure of the bench: the exit code stays 0.
  console.log(`\n${missedTargetsReport(r)}`);
  if (failures.length > 0) {
    throw new UsageError(
      `${failures.length} suite(s) failed, so the run saved above lacks them${args.updateDocs ? ' and the docs were not updated' : ''}:\n${failures.map((f) => `- ${f}`).join('\n')}`,
    );
  }
}

main().catch((error: unknown) => {
  endProgress();
  console.error(error instanceof UsageError ? `bench: ${error.message}` : error);
  process.exitCode = 1;
});
