/**
 * The bench runner's contract with a user's clone: `npm run bench` prints and saves results but never rewrites a
 * tracked docs file unless `--update-docs` asks; missed targets are listed and exit 0; every table names its Node.
 * The runner is bundled as `npm run bench` bundles it, into a scratch folder that stands in for the repository. Each
 * suite runs in a process of its own; a suite that fails there fails the bench.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SENTINEL = 'tracked docs page, must not change\n';

let root: string;
let bundle: string;

const overheadRow = (contender: string, library: string, ns: number, bare: number) => ({
  contender,
  library,
  ns,
  nsMin: ns,
  nsMax: ns,
  ratio: ns / bare,
  overheadNs: ns - bare,
});

/** A full run of every suite, small enough to read: one missed target, four met and a stretch goal not yet met. */
function fixture(node: string, quick = false) {
  return {
    date: '2026-12-01T10:00:00.000Z',
    node,
    peers: ['cockatiel 3', 'opossum 9'],
    quick,
    durationSec: 321,
    machine: { node, v8: '12.4', os: 'Linux', cpus: 2, cpuModel: 'test cpu', memoryGiB: 8 },
    versions: { bulwark: '0.1.0', cockatiel: '3.2.1', cockatiel4: '4.0.0', opossum: '9.0.0' },
    settings: { rounds: 5, inFlight: 10_000, gcBatchMs: 30 },
    overhead: [
      {
        op: 'async () => 1',
        rows: [
          overheadRow('bare', 'baseline', 100, 100),
          overheadRow('bulwark retry', 'bulwark', 250, 100),
          overheadRow('cockatiel 3 retry', 'cockatiel', 260, 100),
        ],
        gcStressed: [
          overheadRow('bare', 'baseline', 120, 120),
          overheadRow('bulwark retry', 'bulwark', 210, 120),
          overheadRow('cockatiel 3 retry', 'cockatiel', 400, 120),
        ],
      },
    ],
    inFlight: [
      {
        contender: 'bare',
        library: 'baseline',
        callsPerSec: 1e6,
        timeRatio: 1,
        bytesPerCall: 200,
        bytesOverBare: 0,
        gcCount: 0,
      },
      {
        contender: 'bulwark pipeline(4)',
        library: 'bulwark',
        callsPerSec: 5e5,
        timeRatio: 2,
        bytesPerCall: 650,
        bytesOverBare: 450,
        gcCount: 1,
      },
    ],
    deopt: [
      {
        op: 'async () => 1',
        batches: 100,
        total: 3,
        functions: 3,
        maxPerFunction: 1,
        offenders: [
          { name: '<instance_members_initializer>', functions: 3, count: 3, max: 1, reasons: ['weak objects'] },
        ],
        other: 5,
        otherTop: [{ name: 'processImmediate', count: 5 }],
      },
    ],
    failFast: [
      { case: 'bare throw', library: 'baseline', ns: 300, overBareNs: 0 },
      { case: 'bulwark circuitBreaker, open', library: 'bulwark', ns: 200, overBareNs: -100 },
    ],
    events: [],
    breakers: [],
    http: [],
    grpc: [],
    messaging: [],
    redis: [],
    redisShared: [],
    overload: {
      model: {
        workers: 20,
        serviceMs: 20,
        scenarios: [{ name: 'fail-fast upstream', queue: 500 }],
        rejectCostMs: 0.2,
        timeoutMs: 1_000,
        loads: [3],
        warmupSec: 2,
        measureSec: 8,
      },
      hedgeModel: { normalMs: 10, slowFactor: 50, slowEvery: 100, ratePerSec: 200, warmupCalls: 1_000, calls: 20_000 },
      rows: [
        {
          scenario: 'fail-fast upstream',
          config: 'retry + retryBudget()',
          load: 3,
          offeredPerSec: 3_000,
          goodputPerSec: 950,
          goodputOfCapacity: 0.95,
          p50Ms: 500,
          p99Ms: 700,
          amplification: 1.1,
          failed503: 0.6,
          failedTimeout: 0,
          failedLocal: 0,
          wasted: 0,
        },
      ],
      hedge: [],
    },
    // Saved with the run; --report evaluates them again from the measurements (this stale entry must not show).
    targets: [{ what: 'a target bench/report.ts no longer has', limit: '<= 1', measured: '2', met: false, by: '1' }],
  };
}

function bench(...args: string[]) {
  return spawnSync(process.execPath, ['--expose-gc', bundle, ...args], { cwd: root, encoding: 'utf8' });
}

const docs = () => readFileSync(join(root, 'docs/benchmarks.md'), 'utf8');

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'bulwark-bench-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'bulwark', version: '0.1.0' }));
  mkdirSync(join(root, 'docs'));
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'), 'dir');
  bundle = join(root, 'bench/.out/run.mjs');
  await build({
    entryPoints: [join(REPO, 'bench/run.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile: bundle,
    logLevel: 'warning',
  });
  writeFileSync(join(root, 'node20.json'), JSON.stringify(fixture('20.99.0')));
  writeFileSync(join(root, 'node24.json'), JSON.stringify(fixture('24.99.0')));
  writeFileSync(join(root, 'quick.json'), JSON.stringify(fixture('24.99.0', true)));
}, 60_000);

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('npm run bench', { timeout: 60_000 }, () => {
  it('prints saved results without touching the tracked docs page, and exits 0 on a missed target', () => {
    writeFileSync(join(root, 'docs/benchmarks.md'), SENTINEL);
    const run = bench('--report', 'node20.json');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(docs()).toBe(SENTINEL);
    expect(existsSync(join(root, 'docs/benchmarks-overhead.svg'))).toBe(false);
    expect(existsSync(join(root, 'bench/results/published.json'))).toBe(false);
    // Every table names the Node it came from.
    expect(run.stdout).toContain('Per-call overhead, tight loop: async () => 1 [Node 20.99.0]');
    expect(run.stdout).toContain(
      'Per-call overhead, GC-stressed (a full GC before each 30 ms batch): async () => 1 [Node 20.99.0]',
    );
    expect(run.stdout).toContain("Deopts of bulwark's code after warm-up");
    expect(run.stdout).toContain('Targets [Node 20.99.0]');
    expect(run.stdout).toContain('cockatiel 4.0.0 (npm alias cockatiel4)');
  });

  it('lists each missed target with what was measured after the tables, as information', () => {
    const run = bench('--report', 'node20.json');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('NO (50 ns over)');
    expect(run.stdout).not.toContain('a target bench/report.ts no longer has');
    // The stretch goal shows in the table but is not counted as missed.
    expect(run.stdout).toMatch(
      /heap per call over bare \(stretch goal\) +<= 300 B +450 B +not yet \(150 B over; stretch goal\)/,
    );
    const summary = run.stdout.slice(run.stdout.indexOf('1 of 7 targets missed'));
    expect(summary.split('\n').slice(0, 2)).toEqual([
      '1 of 7 targets missed on this run (Node 20.99.0):',
      '- retry alone, async () => 1, tight loop: per call over bare: measured +150 ns, target <= +100 ns (50 ns over)',
    ]);
    expect(summary).toContain('This is information, not a failure (the exit code is 0)');
  });

  it('rewrites the docs page only with --update-docs, one section per run, each table labelled with its Node', () => {
    writeFileSync(join(root, 'docs/benchmarks.md'), SENTINEL);
    const run = bench('--report', 'node20.json', '--report', 'node24.json', '--update-docs');
    expect(run.status).toBe(0);
    const page = docs();
    expect(page).not.toBe(SENTINEL);
    expect(page).toContain('## Node 20.99.0');
    expect(page).toContain('## Node 24.99.0');
    expect(page).toContain('### Per-call overhead, tight loop: async () => 1 [Node 20.99.0]');
    expect(page).toContain('### Per-call overhead, tight loop: async () => 1 [Node 24.99.0]');
    expect(page).toContain(
      '### Per-call overhead, GC-stressed (a full GC before each 30 ms batch): async () => 1 [Node 24.99.0]',
    );
    expect(page).toContain('`<instance_members_initializer>` 3 (3)');
    const published = JSON.parse(readFileSync(join(root, 'bench/results/published.json'), 'utf8')) as {
      node: string;
    }[];
    expect(published.map((r) => r.node)).toEqual(['20.99.0', '24.99.0']);
    expect(readFileSync(join(root, 'docs/benchmarks-overhead.svg'), 'utf8')).toContain('Node 24.99.0');
    expect(page).toContain('![Goodput and load amplification against offered load, per configuration]');
    expect(page).toContain('### Overload in virtual time, fail-fast upstream');
    expect(readFileSync(join(root, 'docs/benchmarks-overload.svg'), 'utf8')).toContain('retry + retryBudget()');
  });

  it('publishes instruction counts given with --report beside the runs, judging the setImmediate targets on them', () => {
    const row = (contender: string, library: string, op: string, perCall: number, bare: number) => ({
      contender,
      library,
      op,
      perCall,
      overBare: perCall - bare,
      ratio: perCall / bare,
    });
    const imm = 'cross the event loop (setImmediate)';
    const counts = (quick: boolean) => ({
      date: '2026-12-02T10:00:00.000Z',
      build: 'bench',
      machine: 'test cpu, 2 cores',
      node: '20.99.0',
      valgrind: 'valgrind-3.19.0',
      quick,
      size: quick ? { warm: 20_000, calls: 20_000 } : { warm: 50_000, calls: 100_000 },
      rows: [
        row('bare', 'baseline', 'async () => 1', 700, 700),
        row('floor: own promise + clock', 'floor', 'async () => 1', 1_464, 700),
        row('bulwark retry', 'bulwark', 'async () => 1', 1_267, 700),
        row('bulwark timeout', 'bulwark', 'async () => 1', 2_255, 700),
        row('bulwark pipeline(4)', 'bulwark', 'async () => 1', 2_981, 700),
        row('bare', 'baseline', imm, 6_600, 6_600),
        row('floor: own promise + clock', 'floor', imm, 7_392, 6_600),
        row('bulwark retry', 'bulwark', imm, 7_128, 6_600),
        row('bulwark timeout', 'bulwark', imm, 8_250, 6_600),
        row('bulwark pipeline(4)', 'bulwark', imm, 8_910, 6_600),
      ],
    });
    writeFileSync(join(root, 'counts.json'), JSON.stringify(counts(false)));
    writeFileSync(join(root, 'counts-quick.json'), JSON.stringify(counts(true)));
    writeFileSync(join(root, 'docs/benchmarks.md'), SENTINEL);

    // Printed like any saved result.
    const shown = bench('--report', 'counts.json');
    expect(shown.status).toBe(0);
    expect(shown.stdout).toContain(
      'Instructions per call (callgrind), cross the event loop (setImmediate) [Node 20.99.0]',
    );
    expect(docs()).toBe(SENTINEL);

    const run = bench('--report', 'node20.json', '--report', 'counts.json', '--update-docs');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const page = docs();
    expect(page).toContain('#### Published counts');
    expect(page).toContain(
      "**Node 20.99.0, bulwark bundled from src/ with the bench's code** (2026-12-02; test cpu, 2 cores; valgrind-3.19.0",
    );
    expect(page).toMatch(/\| bulwark retry +\| +1,267 \| +1\.810x \| +7,128 \| +1\.080x \| +<= 1\.10x: yes \|/);
    expect(page).toMatch(
      /\| bulwark timeout +\| +2,255 \| +3\.221x \| +8,250 \| +1\.250x \| +<= 1\.10x: NO \(0\.15x over\) \|/,
    );
    expect(page).toMatch(/\| bulwark pipeline\(4\) +\| .* \| +1\.350x \| +<= 1\.30x: NO \(0\.05x over\) \|/);
    // Floors and bare have no target of their own.
    expect(page).toMatch(/\| floor: own promise \+ clock +\| .* \| +1\.120x \| +\|/);
    expect(page).toContain(
      "counts 1.120x with the setImmediate op on this Node, above the timeout's 1.10x: no timeout with an exact deadline meets that target here",
    );
    expect(JSON.parse(readFileSync(join(root, 'bench/results/published-instructions.json'), 'utf8'))).toEqual([
      counts(false),
    ]);

    // Re-rendered from the runs alone, the page keeps the published counts.
    const again = bench('--report', 'node20.json', '--update-docs');
    expect(again.status).toBe(0);
    expect(docs()).toBe(page);

    // Counts alone are not a page, and quick counts are not published.
    writeFileSync(join(root, 'docs/benchmarks.md'), SENTINEL);
    const alone = bench('--report', 'counts.json', '--update-docs');
    expect(alone.status).toBe(1);
    expect(alone.stderr).toBe(
      'bench: --update-docs needs at least one timed run (--report <results.json>), not instruction counts alone\n',
    );
    const quick = bench('--report', 'node20.json', '--report', 'counts-quick.json', '--update-docs');
    expect(quick.status).toBe(1);
    expect(quick.stderr).toBe(
      'bench: --update-docs publishes full instruction counts only; not: 2026-12-02T10:00:00.000Z (Node 20.99.0, quick)\n',
    );
    expect(docs()).toBe(SENTINEL);
  });

  it('refuses to publish a quick run or a measuring run that is not full, before measuring anything', () => {
    writeFileSync(join(root, 'docs/benchmarks.md'), SENTINEL);
    const fromQuick = bench('--report', 'quick.json', '--update-docs');
    expect(fromQuick.status).toBe(1);
    expect(fromQuick.stderr).toContain('--update-docs publishes full runs of every suite only');
    const quick = bench('--quick', '--update-docs');
    expect(quick.status).toBe(1);
    expect(quick.stderr).toBe(
      'bench: --update-docs publishes a full run of every suite; drop --quick and --suites (or pass --report <results.json>)\n',
    );
    expect(docs()).toBe(SENTINEL);
  });

  it('runs each suite in its own process with the same flags, merges its rows and prints its duration', () => {
    const run = bench('--quick', '--suites=messaging');
    expect(run.stderr).not.toContain('FAILED');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^\[1\/1\] messaging: \d+\.\d s$/m);
    expect(run.stdout).toContain('Message handlers (in memory, 64 in flight) [Node ');
    const saved = /saved (bench\/results\/\S+-quick\.json)/.exec(run.stdout)?.[1] as string;
    const r = JSON.parse(readFileSync(join(root, saved), 'utf8')) as { messaging?: { ratio: number }[] };
    expect(r.messaging?.map((x) => typeof x.ratio)).toEqual(['number', 'number', 'number']);
  });

  it('fails the bench, naming the suite, when its process fails (and gives it the flags the runner got)', () => {
    // A flag only the suites' processes act on: it proves they get the runner's flags, and makes them fail.
    const boom = 'data:text/javascript,if(process.argv.some((a)=>a.startsWith("--child-suite=")))process.exit(3)';
    const run = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', boom, bundle, '--quick', '--suites=messaging'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('[1/1] messaging: FAILED after');
    expect(run.stderr).toContain('bench: 1 suite(s) failed, so the run saved above lacks them:');
    expect(run.stderr).toContain('- suite "messaging": its child process exited with code 3 without a result');
  });

  it('names an unknown argument and shows the usage', () => {
    const run = bench('--update-doc');
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('bench: unknown argument --update-doc');
    expect(run.stderr).toContain('usage: npm run bench');
  });
});
