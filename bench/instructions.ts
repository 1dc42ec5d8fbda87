/**
 * Instructions per call, counted by valgrind's callgrind: a deterministic measure of what a contender adds to a call,
 * for a machine too noisy to time a difference of a few percent (`npm run bench -- --instructions`).
 *
 * Why: on a shared 2-core machine the timed ratios of the overhead suite move between runs of the same code by more
 * than a change to the hot path is worth (the pipeline's setImmediate ratio measured 1.03x and 1.46x in one run, tight
 * and GC-stressed), so a change could not be judged before and after. Counted instructions do not depend on what else
 * runs: with V8 made deterministic (`--single-threaded --predictable`: no concurrent compiler or GC threads, tasks in
 * a fixed order) the same build counts the same figure to within 0.1% from run to run, and every thread's work (the
 * JIT's, the GC's, Node's) is in it. Not so for a contender whose state follows the wall clock (adaptiveThrottle's
 * time buckets, adaptiveLimit's measured latencies): its count moves with the machine's load (see docs/benchmarks.md).
 *
 * How: a contender runs in a child process of its own (bench/instructions-child.ts, which loads the contenders and
 * nothing else of the bench) under callgrind twice: `warm` calls and exit, then `warm + calls` calls
 * and exit; the difference over `calls` is its steady-state cost per call, start-up, compilation and warm-up
 * cancelled out. The operations are those of the overhead suite that a policy's cost is judged on: `async () => 1`
 * (the tight loop) and one that awaits a setImmediate (a call that crosses the event loop).
 *
 * What it does not measure: time. An instruction is not a nanosecond (a cache miss costs more than a hundred), so this
 * is for comparing builds and contenders on one Node. The targets table stays timed; counts published with the docs
 * (bench/results/published-instructions.json) judge the setImmediate ratio targets on counted ratios beside it.
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Contender } from './contenders.js';
import { table } from './harness.js';
import { INSTRUCTION_OPS } from './instruction-ops.js';

/** The V8 flags that make a count reproducible (see the module comment). */
export const DETERMINISTIC_FLAGS = ['--single-threaded', '--predictable'] as const;

export interface InstructionsSize {
  /** Calls before the counted ones, in both runs: the contender is compiled and its caches warm. */
  readonly warm: number;
  /** The calls whose instructions are counted (the difference between the two runs). */
  readonly calls: number;
}

/**
 * 50,000 calls of warm-up and 100,000 counted (quick: 20,000 and 20,000, rougher). Why that many: the warm-up must
 * outlast V8's compilation of the contender (one optimising compile is millions of instructions; counted, it would
 * add tens per call), and a serial call allocates about 1 KB, so V8 scavenges every one or two thousand calls: the
 * counted calls hold dozens of scavenges, and one more or less moves the figure by well under 1%.
 */
export function instructionsSize(quick: boolean): InstructionsSize {
  return quick ? { warm: 20_000, calls: 20_000 } : { warm: 50_000, calls: 100_000 };
}

export interface InstructionsRow {
  readonly contender: string;
  readonly library: string;
  readonly op: string;
  /** Instructions per call, rounded. */
  readonly perCall: number;
  /** `perCall` minus bare's for the same op. */
  readonly overBare: number;
  /** `perCall` over bare's for the same op. */
  readonly ratio: number;
}

/**
 * Which bulwark a count runs: `bench`, bundled from src/ with the contenders (what `npm run bench` times, and the
 * layout a user's own bundler makes), or `dist`, the package's tsup build imported as `bulwark` (what `npm install`
 * gives).
 */
export type InstructionsBuild = 'bench' | 'dist';

export interface InstructionsResults {
  readonly date: string;
  /** Absent in counts saved before `--dist` existed: those are `bench`. */
  readonly build?: InstructionsBuild;
  /** The CPU model and its cores (absent in counts saved before it was recorded). */
  readonly machine?: string;
  readonly node: string;
  readonly valgrind: string;
  readonly quick: boolean;
  readonly size: InstructionsSize;
  readonly rows: readonly InstructionsRow[];
}

/** What the `--dist` child's build must turn into an import of the package: the contenders' import of src/. */
const SRC_ENTRY = /(^|[\\/])src[\\/]index\.js$/;

/**
 * Builds the counted process of `--dist` (`entry` is bench/instructions-child.ts) into `outfile`: bundled as
 * `npm run bench` bundles it, except that bulwark is imported as the package itself, `bulwark`, which Node resolves
 * through package.json's `exports` to this repository's dist/ (a package may import itself by name). Throws when any
 * file of src/ still ended up in the bundle (a contender that imports a module of src/ other than its index), rather
 * than count a mix of the two builds.
 *
 * Why a second layout: V8 inlines by bytecode size within a budget per optimised function, and which functions fit
 * depends on how the build lays the code out. The same source change has counted 366 more instructions per call in
 * the bench's bundle and 51 fewer in dist/, so a hot-path change is judged in both.
 */
export async function buildDistChild(entry: string, outfile: string): Promise<void> {
  // Loaded here, not at the top: only `--dist` needs the bundler at run time.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
    metafile: true,
    plugins: [
      {
        name: 'bulwark-from-dist',
        setup(b) {
          b.onResolve({ filter: SRC_ENTRY }, () => ({ path: 'bulwark', external: true }));
        },
      },
    ],
  });
  const fromSrc = Object.keys(result.metafile.inputs).filter((f) => /(^|[\\/])src[\\/]/.test(f));
  if (fromSrc.length > 0) {
    throw new Error(
      `--dist: the counted process still bundles bulwark's source (${fromSrc.join(', ')}); the contenders must import bulwark from '../src/index.js' only`,
    );
  }
}

/**
 * Why `--dist` cannot count dist/ as it is under `root` (missing, or built before the newest change to src/), or
 * undefined when it can.
 */
export function distProblem(root: string): string | undefined {
  const built = join(root, 'dist/index.js');
  if (!existsSync(built))
    return '--dist counts the package build in dist/, which is missing: run `npm run build` first';
  const builtAt = statSync(built).mtimeMs;
  const src = join(root, 'src');
  let newest: { file: string; at: number } | undefined;
  for (const f of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
    const stat = statSync(join(src, f));
    if (stat.isFile() && (newest === undefined || stat.mtimeMs > newest.at)) newest = { file: f, at: stat.mtimeMs };
  }
  if (newest !== undefined && newest.at > builtAt) {
    return `--dist counts dist/, which is older than src/ (src/${newest.file} changed after the last build): run \`npm run build\` first`;
  }
  return undefined;
}

/** Valgrind's version line (`valgrind-3.19.0`), or undefined when it is not installed. */
export function valgrindVersion(): string | undefined {
  const r = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The instruction count callgrind prints at exit (`==123== Collected : 1234567`). */
export function collected(stderr: string): number {
  const m = /Collected : (\d+)/.exec(stderr);
  if (m === null)
    throw new Error(`callgrind printed no instruction count; its output ended with:\n${stderr.slice(-600)}`);
  return Number(m[1]);
}

/** One run of the child under callgrind; resolves with the instructions it executed, all threads. */
function countOnce(script: string, contender: string, opIndex: number, calls: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = [
      '--tool=callgrind',
      '--callgrind-out-file=/dev/null',
      process.execPath,
      ...DETERMINISTIC_FLAGS,
      script,
      contender,
      String(opIndex),
      String(calls),
    ];
    const proc = spawn('valgrind', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    proc.stderr?.on('data', (d: Buffer) => err.push(d));
    proc.once('error', reject);
    proc.once('close', (code) => {
      const text = Buffer.concat(err).toString('utf8');
      if (code !== 0) {
        reject(new Error(`"${contender}" under callgrind exited with code ${code}:\n${text.slice(-600)}`));
        return;
      }
      try {
        resolve(collected(text));
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** Runs `jobs` with at most `parallel` at a time, in order of start. */
async function pooled<T>(jobs: readonly (() => Promise<T>)[], parallel: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await (jobs[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, jobs.length)) }, worker));
  return out;
}

/**
 * Counts every contender of `list` (which must hold `bare`) for each op of {@link INSTRUCTION_OPS} (or those at
 * `opIndexes`): two callgrind runs each, `parallel` at a time (they do not disturb each other's counts). `onDone`
 * hears of each finished contender.
 */
export async function countInstructions(
  script: string,
  list: readonly Contender[],
  size: InstructionsSize,
  parallel: number,
  onDone: (done: number, total: number, what: string) => void = () => undefined,
  opIndexes: readonly number[] = INSTRUCTION_OPS.map((_, i) => i),
): Promise<InstructionsRow[]> {
  if (!list.some((c) => c.name === 'bare')) throw new Error('instructions: the contenders must include "bare"');
  const cases = opIndexes.flatMap((opIndex) =>
    list.map((c) => ({ c, op: INSTRUCTION_OPS[opIndex] as (typeof INSTRUCTION_OPS)[number], opIndex })),
  );
  let done = 0;
  const perCall = await pooled(
    cases.map(({ c, op, opIndex }) => async () => {
      const warm = await countOnce(script, c.name, opIndex, size.warm);
      const all = await countOnce(script, c.name, opIndex, size.warm + size.calls);
      onDone(++done, cases.length, `${c.name}, ${op.name}`);
      return (all - warm) / size.calls;
    }),
    parallel,
  );
  const bare = new Map(cases.flatMap((k, i) => (k.c.name === 'bare' ? [[k.op.name, perCall[i] as number]] : [])));
  return cases.map(({ c, op }, i) => {
    const n = perCall[i] as number;
    const b = bare.get(op.name) as number;
    return {
      contender: c.name,
      library: c.library,
      op: op.name,
      perCall: Math.round(n),
      overBare: Math.round(n - b),
      ratio: n / b,
    };
  });
}

/** The terminal tables: one per op. */
export function instructionsReport(r: InstructionsResults): string {
  const parts = INSTRUCTION_OPS.map(({ name }) => {
    const rows = r.rows.filter((x) => x.op === name);
    return `Instructions per call (callgrind), ${name} [Node ${r.node}]\n${table(
      ['contender', 'instructions/call', 'over bare', 'ratio to bare'],
      rows.map((x) => [
        x.contender,
        x.perCall.toLocaleString('en-US'),
        x.contender === 'bare' ? '' : `${x.overBare >= 0 ? '+' : ''}${x.overBare.toLocaleString('en-US')}`,
        `${x.ratio.toFixed(3)}x`,
      ]),
    )}`;
  });
  const build =
    r.build === 'dist'
      ? 'bulwark from dist/ (the package build, imported as `bulwark`)'
      : 'bulwark bundled from src/ with the bench';
  return `${parts.join('\n\n')}\n\n${build}; ${r.machine === undefined ? '' : `${r.machine}; `}${r.valgrind}, node ${DETERMINISTIC_FLAGS.join(' ')}; ${r.size.warm.toLocaleString('en-US')} calls of warm-up, ${r.size.calls.toLocaleString('en-US')} counted. Counts, not times: compare builds and contenders on one Node.`;
}
