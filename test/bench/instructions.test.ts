/**
 * `npm run bench -- --instructions`: instructions per call counted under callgrind (bench/instructions.ts). The
 * counted process is the second bundle `npm run bench` builds (bench/.out/instructions-child.mjs), built here as the
 * script builds it, into a scratch folder that stands in for the repository. The counts themselves need valgrind,
 * which this machine and CI have: under CI its absence fails the test rather than skipping it.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Contender } from '../../bench/contenders.js';
import { FLOOR_OWN_PROMISE, overheadContenders } from '../../bench/contenders.js';
import { INSTRUCTION_OPS, runInstructionsChild } from '../../bench/instruction-ops.js';
import {
  buildDistChild,
  collected,
  countInstructions,
  distProblem,
  instructionsReport,
  instructionsSize,
  valgrindVersion,
} from '../../bench/instructions.js';
import { loadPeers } from '../../bench/peers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const VALGRIND = valgrindVersion();

let root: string;
let runner: string;
let child: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'bulwark-instructions-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'bulwark', version: '0.1.0' }));
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'), 'dir');
  // The same build as package.json's bench script: two entry points, one folder.
  await build({
    entryPoints: [join(REPO, 'bench/run.ts'), join(REPO, 'bench/instructions-child.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outdir: join(root, 'bench/.out'),
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
  });
  runner = join(root, 'bench/.out/run.mjs');
  child = join(root, 'bench/.out/instructions-child.mjs');
}, 60_000);

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function bench(args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, ['--expose-gc', runner, ...args], { cwd: root, encoding: 'utf8', env });
}

describe('the counted process', () => {
  it('runs exactly the calls it is asked for, through the contender named, then returns', async () => {
    let calls = 0;
    let disposed = 0;
    const counting: Contender = {
      name: 'counting',
      library: 'baseline',
      limiter: false,
      make: (op) => ({
        call: () => {
          calls++;
          return op();
        },
        dispose: () => disposed++,
      }),
    };
    await runInstructionsChild([counting], ['counting', '1', '250']);
    expect(calls).toBe(250);
    expect(disposed).toBe(1);
    await runInstructionsChild([counting], ['counting', '0', '0']);
    expect(calls).toBe(250);
    expect(disposed).toBe(2);
  });

  it('refuses an unknown contender, op or count, saying what it got', async () => {
    const list = overheadContenders(await loadPeers());
    await expect(runInstructionsChild(list, ['nobody', '0', '10'])).rejects.toThrow(
      'instructions-child <contender> <op index> <calls>: got ["nobody","0","10"]',
    );
    await expect(runInstructionsChild(list, ['bare', '2', '10'])).rejects.toThrow('got ["bare","2","10"]');
    await expect(runInstructionsChild(list, ['bare', '0', '-1'])).rejects.toThrow('got ["bare","0","-1"]');
    await expect(runInstructionsChild(list, ['bare', '0', '1.5'])).rejects.toThrow('got ["bare","0","1.5"]');
  });

  it('counts the two operations the overhead targets are judged on', () => {
    expect(INSTRUCTION_OPS.map((o) => o.name)).toEqual(['async () => 1', 'cross the event loop (setImmediate)']);
  });
});

describe('reading callgrind', () => {
  it("takes the count from callgrind's closing lines, and says so when there is none", () => {
    expect(
      collected('==12== Events    : Ir\n==12== Collected : 1234567890\n==12==\n==12== I   refs:      1,234,567,890\n'),
    ).toBe(1_234_567_890);
    expect(() => collected('valgrind: failed to start tool')).toThrow(
      'callgrind printed no instruction count; its output ended with:\nvalgrind: failed to start tool',
    );
  });

  it('sizes the counted run so the warm-up outlasts compilation (quick: rougher)', () => {
    expect(instructionsSize(false)).toEqual({ warm: 50_000, calls: 100_000 });
    expect(instructionsSize(true)).toEqual({ warm: 20_000, calls: 20_000 });
  });

  it('prints one table per op, each naming its Node, with the ratio to bare', () => {
    const rows = INSTRUCTION_OPS.flatMap(({ name }) => [
      { contender: 'bare', library: 'baseline', op: name, perCall: 1_000, overBare: 0, ratio: 1 },
      { contender: 'bulwark retry', library: 'bulwark', op: name, perCall: 1_250, overBare: 250, ratio: 1.25 },
    ]);
    const text = instructionsReport({
      date: '2026-12-07T00:00:00.000Z',
      node: '20.99.0',
      valgrind: 'valgrind-3.19.0',
      quick: false,
      size: instructionsSize(false),
      rows,
    });
    expect(text).toContain('Instructions per call (callgrind), async () => 1 [Node 20.99.0]');
    expect(text).toContain('Instructions per call (callgrind), cross the event loop (setImmediate) [Node 20.99.0]');
    expect(text).toMatch(/bulwark retry +1,250 +\+250 +1\.250x/);
    expect(text).toContain('valgrind-3.19.0, node --single-threaded --predictable; 50,000 calls of warm-up');
    // Which bulwark was counted: the bench's bundle unless the run says dist (counts saved before --dist say neither).
    expect(text).toContain('bulwark bundled from src/ with the bench; valgrind-3.19.0');
    const dist = instructionsReport({
      date: '2026-12-07T00:00:00.000Z',
      build: 'dist',
      node: '20.99.0',
      valgrind: 'valgrind-3.19.0',
      quick: false,
      size: instructionsSize(false),
      rows,
    });
    expect(dist).toContain('bulwark from dist/ (the package build, imported as `bulwark`); valgrind-3.19.0');
  });
});

describe('--dist: counting the package build', () => {
  it('refuses a dist/ that is missing or older than src/, naming the newest change', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-dist-state-'));
    try {
      mkdirSync(join(dir, 'src/policies'), { recursive: true });
      writeFileSync(join(dir, 'src/index.ts'), '');
      writeFileSync(join(dir, 'src/policies/retry.ts'), '');
      expect(distProblem(dir)).toBe(
        '--dist counts the package build in dist/, which is missing: run `npm run build` first',
      );
      mkdirSync(join(dir, 'dist'));
      writeFileSync(join(dir, 'dist/index.js'), '');
      const t = Date.now() / 1000;
      utimesSync(join(dir, 'src/index.ts'), t - 60, t - 60);
      utimesSync(join(dir, 'src/policies/retry.ts'), t - 30, t - 30);
      utimesSync(join(dir, 'dist/index.js'), t - 10, t - 10);
      expect(distProblem(dir)).toBeUndefined();
      // A file, not the folder that holds it, is named (a folder's time changes when a file is added or removed).
      utimesSync(join(dir, 'src/policies/retry.ts'), t, t);
      expect(distProblem(dir)).toBe(
        '--dist counts dist/, which is older than src/ (src/policies/retry.ts changed after the last build): run `npm run build` first',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds the counted process around the package itself, and it runs its calls through dist/', async () => {
    // The scratch repository imports itself by name, as this one does: package.json's exports lead to dist/.
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-dist-child-'));
    try {
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({ name: 'bulwark', type: 'module', exports: { '.': './dist/index.js' } }),
      );
      symlinkSync(join(REPO, 'dist'), join(dir, 'dist'), 'dir');
      symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
      const out = join(dir, 'bench/.out/instructions-child-dist.mjs');
      await buildDistChild(join(REPO, 'bench/instructions-child.ts'), out);
      const text = readFileSync(out, 'utf8');
      expect(text).toMatch(/from "bulwark"/);
      // None of bulwark's own code is in the bundle: the policies come from dist/.
      expect(text).not.toMatch(/class (RetryPolicy|FusedUnit|DeadlineQueue)\b/);
      const run = spawnSync(process.execPath, [out, 'bulwark pipeline(4)', '1', '200'], { cwd: dir, encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses to build a counted process that would still bundle part of src/', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-dist-mixed-'));
    try {
      const entry = join(dir, 'entry.ts');
      writeFileSync(
        entry,
        `import { systemClock } from '${join(REPO, 'src/core/clock.js')}';\nconsole.log(systemClock);\n`,
      );
      await expect(buildDistChild(entry, join(dir, 'out.mjs'))).rejects.toThrow(
        /^--dist: the counted process still bundles bulwark's source \(.*src\/core\/clock\.ts\); the contenders must import bulwark from '\.\.\/src\/index\.js' only$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('npm run bench -- --instructions', { timeout: 60_000 }, () => {
  it('refuses what does not go with it, before counting anything', () => {
    const docs = bench(['--instructions', '--update-docs']);
    expect(docs.status).toBe(1);
    expect(docs.stderr).toContain('bench: --instructions counts instructions instead of running suites');
    const alone = bench(['--contenders=bare']);
    expect(alone.status).toBe(1);
    expect(alone.stderr).toContain('bench: --contenders goes with --instructions');
    const dist = bench(['--dist']);
    expect(dist.status).toBe(1);
    expect(dist.stderr).toContain('bench: --dist goes with --instructions');
  });

  // The scratch repository has no dist/. Valgrind is looked for first, so this needs it (CI has it: never skipped there).
  it.runIf(VALGRIND !== undefined || process.env.CI !== undefined)(
    'with --dist, says to build the package first when dist/ is missing',
    () => {
      const run = bench(['--instructions', '--dist', '--contenders=bare']);
      expect(run.status).toBe(1);
      expect(run.stderr).toBe(
        'bench: --dist counts the package build in dist/, which is missing: run `npm run build` first\n',
      );
    },
  );

  it('names an unknown contender and lists the known ones', () => {
    // Checked before valgrind is looked for: a typo is reported on any machine.
    const run = bench(['--instructions', '--contenders=bulwark retyr'], { ...process.env, PATH: '/nonexistent' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('bench: --contenders: unknown "bulwark retyr"; known: bare, floor: one .then,');
  });

  it('says how to get valgrind when it is missing', () => {
    const run = bench(['--instructions'], { ...process.env, PATH: '/nonexistent' });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      'bench: --instructions needs valgrind (callgrind) on the PATH: install it (apt install valgrind)\n',
    );
  });
});

describe.runIf(VALGRIND !== undefined || process.env.CI !== undefined)('counting under callgrind', () => {
  it('is on this machine (CI must not pass by skipping)', () => {
    expect(VALGRIND, 'valgrind is not on the PATH').toMatch(/^valgrind-/);
  });

  it('counts the same figure twice for the same build, and a policy that settles its own promise above bare', async () => {
    const list = overheadContenders(await loadPeers()).filter((c) => c.name === 'bare' || c.name === FLOOR_OWN_PROMISE);
    const bareOnly = list.filter((c) => c.name === 'bare');
    // Small, the setImmediate op only and one count at a time: each count is a whole node process under callgrind,
    // and the rest of the suite runs beside it.
    // 30,000 counted: with 6,000 two counts differed by 1.3% (half a million instructions of start-up noise over too
    // few calls); the full size (100,000) differs by 0.1%.
    const size = { warm: 10_000, calls: 30_000 };
    const imm = 1;
    const done: string[] = [];
    const rows = await countInstructions(child, list, size, 1, (d, n, what) => done.push(`${d}/${n} ${what}`), [imm]);
    const again = await countInstructions(child, bareOnly, size, 1, undefined, [imm]);
    const op = 'cross the event loop (setImmediate)';
    expect(rows.map((r) => [r.contender, r.op])).toEqual([
      ['bare', op],
      [FLOOR_OWN_PROMISE, op],
    ]);
    expect(done).toHaveLength(2);
    const [bare, own] = rows as [(typeof rows)[number], (typeof rows)[number]];
    expect(bare.ratio).toBe(1);
    expect(bare.overBare).toBe(0);
    expect(bare.perCall).toBeGreaterThan(1_000);
    // Deterministic V8 (--single-threaded --predictable): within 1% from run to run (measured: 0.1%).
    expect(Math.abs((again[0]?.perCall as number) - bare.perCall) / bare.perCall).toBeLessThan(0.01);
    // A second promise and a reaction cost more than the call alone.
    expect(own.overBare).toBeGreaterThan(0);
    expect(own.ratio).toBeCloseTo(own.perCall / bare.perCall, 2);
  }, 240_000);
});
