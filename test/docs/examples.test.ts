import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CheckResult,
  DOC_FILES,
  type DocBlock,
  entryPoints,
  extractBlocks,
  printExpectations,
  type RunResult,
  runBlock,
  show,
  tempDir,
  typecheck,
  whyNotRun,
} from './doc-blocks.js';

/**
 * The docs' examples must be right as written (issue 11): every TypeScript block of the pages in DOC_FILES
 * type-checks as its own module under the project's strict options, and the blocks that need no network and
 * no third-party package run to completion and print what their comments say. See doc-blocks.ts.
 */
const blocks: DocBlock[] = DOC_FILES.flatMap((file) => extractBlocks(file));

/**
 * Blocks of a page that does not exist, checked in the same program to prove the checker is not vacuous:
 * a mistake must be reported at its page line and column, and every published entry point must resolve.
 */
const CANARY_PAGE = [
  '# canary', // 1
  '', // 2
  '```ts', // 3
  "import { retry } from 'bulwark';", // 4
  '', // 5
  'retry({ maxAtempts: 3 });', // 6
  '```', // 7
  '',
  '- in a list item:', // 9
  '', // 10
  '  ```typescript', // 11
  "  import { nothing } from 'bulwark/nope';", // 12
  '  console.log(nothing);', // 13
  '  ```',
  '',
  '```ts', // 16
  ...[...entryPoints().keys()].map((specifier, i) => `import * as m${i} from '${specifier}';`),
  `console.log(${[...entryPoints().keys()].map((_, i) => `Object.keys(m${i}).length > 0`).join(', ')});`,
  '```',
  '',
  '```ts',
  'console.log(1 + 1); // 3, says the comment',
  "throw new Error('boom');",
  '```',
].join('\n');
const canaries = extractBlocks('test/docs/canary.md', CANARY_PAGE);
const [wrongOption, missingModule, everyEntry, wrongRun] = canaries as [DocBlock, DocBlock, DocBlock, DocBlock];

const RUN_CONCURRENCY = 2;
let checked: CheckResult;
const runs = new Map<string, Promise<RunResult>>();
let cleanup: (() => Promise<void>) | undefined;

beforeAll(async () => {
  checked = typecheck([...blocks, ...canaries]);
  const { dir, remove } = await tempDir();
  cleanup = remove;
  // Start every run now, at most RUN_CONCURRENCY at a time; each test awaits its own.
  let active = 0;
  const waiting: (() => void)[] = [];
  for (const block of [...blocks.filter((b) => whyNotRun(b) === undefined), wrongRun]) {
    const run = (async () => {
      if (active >= RUN_CONCURRENCY) await new Promise<void>((r) => waiting.push(r));
      active++;
      try {
        return await runBlock(block, dir);
      } finally {
        active--;
        waiting.shift()?.();
      }
    })();
    run.catch(() => {}); // a bundling error is reported by the block's own test, not as an unhandled rejection
    runs.set(block.id, run);
  }
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(runs.values());
  await cleanup?.();
});

/** The failures of one run, as messages naming the page line; empty when the block ran as its page says. */
function runProblems(block: DocBlock, result: RunResult): string[] {
  const output = `\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
  if (result.timedOut) return [`${block.id} did not exit by itself (killed at the run timeout)${output}`];
  const problems: string[] = [];
  if (result.code !== 0) problems.push(`${block.id} exited with ${result.code ?? result.signal}${output}`);
  else if (result.stderr !== '') problems.push(`${block.id} wrote to stderr${output}`);
  for (const expectation of printExpectations(block)) {
    const where = `${block.file}:${expectation.line} (// ${expectation.comment})`;
    const printed = result.printed.get(expectation.line);
    if (printed === undefined) problems.push(`${where}: never printed`);
    for (const args of printed ?? []) {
      if (!isDeepStrictEqual(args, expectation.values)) problems.push(`${where}: printed ${show(args)}`);
    }
  }
  return problems;
}

function isDeepStrictEqual(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

describe('docs examples', () => {
  for (const file of DOC_FILES) {
    describe(file, () => {
      it('has TypeScript examples', () => {
        expect(blocks.filter((b) => b.file === file).length).toBeGreaterThan(0);
      });
      for (const block of blocks.filter((b) => b.file === file)) {
        if (block.skip !== undefined) {
          it.skip(`${block.id} (skipped: ${block.skip})`, () => {});
          continue;
        }
        it(`${block.id} type-checks`, () => {
          const diagnostics = checked.diagnostics.get(block.id);
          expect(diagnostics, `${block.id} was not checked`).toBeDefined();
          if (diagnostics !== undefined && diagnostics.length > 0) {
            expect.fail(`${block.id} does not type-check:\n  ${diagnostics.join('\n  ')}`);
          }
        });
        if (whyNotRun(block) === undefined) {
          it(`${block.id} runs, exits by itself and prints what its comments say`, async () => {
            const result = await runs.get(block.id);
            if (result === undefined) return expect.fail(`${block.id}: not run`);
            const problems = runProblems(block, result);
            if (problems.length > 0) expect.fail(problems.join('\n'));
          });
        }
      }
    });
  }
});

describe('the checker itself', () => {
  it('sets up the compiler cleanly (options, lib files, stubs)', () => {
    expect(checked.setup).toEqual([]);
  });

  it('reports a mistake at its page line and column, with the compiler message', () => {
    expect(checked.diagnostics.get(wrongOption.id)).toEqual([
      expect.stringMatching(/^test\/docs\/canary\.md:6:9 TS2561: .*'maxAtempts' does not exist/),
    ]);
  });

  it('maps lines and columns inside an indented fence, and reports an unknown subpath', () => {
    expect(missingModule.id).toBe('test/docs/canary.md:11');
    expect(checked.diagnostics.get(missingModule.id)).toEqual([
      expect.stringMatching(/^test\/docs\/canary\.md:12:27 TS2307: Cannot find module 'bulwark\/nope'/),
    ]);
  });

  it('resolves every published entry point (package.json exports) to its source', () => {
    expect([...entryPoints().keys()]).toEqual([
      'bulwark',
      'bulwark/testing',
      'bulwark/undici',
      'bulwark/grpc',
      'bulwark/messaging',
      'bulwark/redis',
      'bulwark/opentelemetry',
      'bulwark/prometheus',
    ]);
    expect(checked.diagnostics.get(everyEntry.id)).toEqual([]);
  });

  it('fails a run that throws, and a print that contradicts its comment', async () => {
    const result = await runs.get(wrongRun.id);
    if (result === undefined) return expect.fail('not run');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('boom');
    expect(runProblems(wrongRun, result)).toEqual([
      expect.stringMatching(/^test\/docs\/canary\.md:\d+ exited with 1/),
      `test/docs/canary.md:${wrongRun.fenceLine + 1} (// 3, says the comment): printed [ 2 ]`,
    ]);
  });

  it('reads markers, languages and comments as documented', () => {
    const page = [
      '```sh', // 1
      '```ts', // 2: inside the sh block, not a ts block
      '```',
      '<!-- docs-check: skip (needs a running Kafka) -->', // 4
      '```ts',
      'const a: number = "x";',
      '```',
      '<!-- docs-check: no-run (waits for SIGTERM) -->', // 8
      '````typescript',
      'console.log(a, "b"); // 0 \'x\' true: prose',
      'console.log(a); // 5 s',
      'console.log(a); // the last one',
      '````',
    ].join('\n');
    const [skipped, noRun, ...rest] = extractBlocks('page.md', page);
    expect(rest).toEqual([]);
    expect(skipped).toMatchObject({ id: 'page.md:5', skip: 'needs a running Kafka' });
    expect(noRun).toMatchObject({ id: 'page.md:9', noRun: 'waits for SIGTERM' });
    expect(whyNotRun(noRun as DocBlock)).toBe('no-run: waits for SIGTERM');
    expect(printExpectations(noRun as DocBlock)).toEqual([
      { line: 10, values: [0, 'x', true], comment: "0 'x' true: prose" },
    ]);
    expect(() => extractBlocks('bad.md', '<!-- docs-check: skip -->\n```ts\n```')).toThrow(/bad\.md:1: malformed/);
    expect(() => extractBlocks('bad.md', '<!-- docs-check: skip (why) -->\n\n```ts\n```')).toThrow(
      /bad\.md:1: a docs-check marker must be on the line right before/,
    );
    expect(() => extractBlocks('bad.md', '```ts\nconst a = 1;\n')).toThrow(/bad\.md:1: unclosed code fence/);
  });
});
