/**
 * The docs' TypeScript examples, extracted, type-checked and (where that is cheap and safe) run.
 *
 * Every ```ts / ```typescript block of the files in {@link DOC_FILES} is one ES module. It is type-checked with
 * the project's own strict compiler options, with `bulwark` and `bulwark/<sub>` mapped to the source entry
 * points (the same mapping tsup and package.json `exports` publish). A block that only imports bulwark itself
 * and Node built-ins and touches no network is also bundled with esbuild (again from source) and run in a
 * child process, which must exit by itself with status 0; a `console.log(...)` line whose trailing comment
 * starts with literals (`// 'ok'`, `// 0 0 4`) must print exactly those values.
 *
 * A block can opt out with an HTML comment on the line before its fence, the reason stated:
 * `<!-- docs-check: skip (reason) -->` (neither checked nor run) or `<!-- docs-check: no-run (reason) -->`
 * (checked, not run).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { build } from 'esbuild';
import ts from 'typescript';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The pages whose examples are checked, relative to the repository root. Adding a page is one line here.
 * (docs/integrations/*.md: to be added once their examples pass.)
 */
export const DOC_FILES: readonly string[] = [
  'README.md',
  'docs/getting-started.md',
  'docs/concepts.md',
  'docs/policies/retry.md',
  'docs/policies/retry-budget.md',
  'docs/policies/hedge.md',
  'docs/policies/circuit-breaker.md',
  'docs/policies/timeout.md',
  'docs/policies/bulkhead.md',
  'docs/policies/adaptive-limit.md',
  'docs/policies/fallback.md',
  'docs/policies/keyed.md',
  'docs/policies/rate-limit.md',
  'docs/policies/adaptive-throttle.md',
  'docs/policies/fault-injection.md',
  'docs/metrics.md',
  'docs/testing.md',
  'docs/integrations/http.md',
  'docs/integrations/grpc.md',
  'docs/integrations/messaging.md',
  'docs/integrations/redis.md',
  'docs/migrating-from-cockatiel.md',
  'docs/migrating-from-opossum.md',
  'docs/troubleshooting.md',
];

/** One fenced TypeScript block of a markdown page. */
export interface DocBlock {
  /** `docs/retry.md:165`: the page and the line of the opening fence. */
  readonly id: string;
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly fenceLine: number;
  /** The indentation of the fence (inside a list item), removed from every line of `code`. */
  readonly indent: number;
  readonly code: string;
  /** The reason of a `docs-check: skip (...)` marker. */
  readonly skip?: string;
  /** The reason of a `docs-check: no-run (...)` marker. */
  readonly noRun?: string;
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/;
const DIRECTIVE = /^<!--\s*docs-check:\s*(skip|no-run)\s*\(([^)]*\S[^)]*)\)\s*-->$/;

/** Extracts the TypeScript blocks of one page. Throws on a malformed or misplaced `docs-check` marker. */
export function extractBlocks(file: string, text: string = readFileSync(join(ROOT, file), 'utf8')): DocBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: DocBlock[] = [];
  let open: { marker: string; indent: number; lang: string; line: number; body: string[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (open !== undefined) {
      const close = FENCE.exec(line);
      const isClose =
        close !== null &&
        close[2]?.[0] === open.marker[0] &&
        (close[2]?.length ?? 0) >= open.marker.length &&
        line.trim() === close[2];
      if (!isClose) {
        open.body.push(line.slice(Math.min(open.indent, line.length - line.trimStart().length)));
        continue;
      }
      if (open.lang === 'ts' || open.lang === 'typescript') {
        const directive = directiveBefore(file, lines, open.line);
        blocks.push({
          id: `${file}:${open.line + 1}`,
          file,
          fenceLine: open.line + 1,
          indent: open.indent,
          code: open.body.join('\n'),
          ...(directive?.kind === 'skip' ? { skip: directive.reason } : {}),
          ...(directive?.kind === 'no-run' ? { noRun: directive.reason } : {}),
        });
      } else if (directiveBefore(file, lines, open.line) !== undefined) {
        throw new Error(`${file}:${open.line}: a docs-check marker before a \`${open.lang}\` block (only ts blocks)`);
      }
      open = undefined;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence !== null) {
      open = {
        marker: fence[2] as string,
        indent: (fence[1] as string).length,
        lang: (fence[3] as string).toLowerCase(),
        line: i,
        body: [],
      };
    } else if (line.trimStart().startsWith('<!--') && line.includes('docs-check')) {
      if (!DIRECTIVE.test(line.trim())) {
        throw new Error(`${file}:${i + 1}: malformed docs-check marker: ${line.trim()}`);
      }
      if (!FENCE.test(lines[i + 1] ?? '')) {
        throw new Error(`${file}:${i + 1}: a docs-check marker must be on the line right before a \`\`\`ts fence`);
      }
    }
  }
  if (open !== undefined) throw new Error(`${file}:${open.line + 1}: unclosed code fence`);
  return blocks;
}

function directiveBefore(
  file: string,
  lines: readonly string[],
  fenceIndex: number,
): { kind: 'skip' | 'no-run'; reason: string } | undefined {
  const prev = (lines[fenceIndex - 1] ?? '').trim();
  if (!prev.startsWith('<!--') || !prev.includes('docs-check')) return undefined;
  const m = DIRECTIVE.exec(prev);
  if (m === null) throw new Error(`${file}:${fenceIndex}: malformed docs-check marker: ${prev}`);
  return { kind: m[1] as 'skip' | 'no-run', reason: (m[2] as string).trim() };
}

// ---------------------------------------------------------------------------------------------------------------
// Module mapping: `bulwark` and `bulwark/<sub>` to the source entry points.

/**
 * `bulwark` -> /abs/src/index.ts, `bulwark/undici` -> /abs/src/integrations/undici/index.ts, ... Built from the
 * tsup entries, and checked against package.json `exports`, so the mapping cannot drift from what is published.
 */
let entryPointsCache: ReadonlyMap<string, string> | undefined;
export function entryPoints(): ReadonlyMap<string, string> {
  if (entryPointsCache !== undefined) return entryPointsCache;
  const entry = tsupEntries();
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { import?: { default?: string } }>;
  };
  const map = new Map<string, string>();
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue; // ./package.json
    const dist = target.import?.default;
    const name = dist === undefined ? undefined : /^\.\/dist\/(.+)\.js$/.exec(dist)?.[1];
    const src = name === undefined ? undefined : entry.get(name);
    if (src === undefined) throw new Error(`package.json exports ${subpath}: no tsup entry for ${dist}`);
    map.set(subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`, resolve(ROOT, src));
  }
  entryPointsCache = map;
  return map;
}

/** The `entry` object of tsup.config.ts (read, not imported: importing it would load tsup). */
function tsupEntries(): ReadonlyMap<string, string> {
  const file = join(ROOT, 'tsup.config.ts');
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const entries = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (
      ts.isPropertyAssignment(node) &&
      ts.isIdentifier(node.name) &&
      node.name.text === 'entry' &&
      ts.isObjectLiteralExpression(node.initializer)
    ) {
      for (const p of node.initializer.properties) {
        if (!ts.isPropertyAssignment(p) || !ts.isStringLiteral(p.initializer)) {
          throw new Error(`tsup.config.ts: unexpected entry ${p.getText(sf)}`);
        }
        entries.set(p.name.getText(sf).replace(/^['"]|['"]$/g, ''), p.initializer.text);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (entries.size === 0) throw new Error('tsup.config.ts: no entry object found');
  return entries;
}

// ---------------------------------------------------------------------------------------------------------------
// Type-checking.

/**
 * Declarations of packages a page imports that the project does not install (peers of the user's own stack).
 * Kept to the members the examples use, with the published signatures.
 */
const AMBIENT_STUBS = `
declare module '@opentelemetry/exporter-metrics-otlp-http' {
  import type { ExportResult } from '@opentelemetry/core';
  import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
  export interface OTLPExporterNodeConfigBase {
    url?: string;
    headers?: Record<string, string>;
    timeoutMillis?: number;
    concurrencyLimit?: number;
  }
  export class OTLPMetricExporter implements PushMetricExporter {
    constructor(config?: OTLPExporterNodeConfigBase);
    export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void;
    forceFlush(): Promise<void>;
    shutdown(): Promise<void>;
  }
}
`;

export interface CheckResult {
  /** Per block id, the formatted diagnostics (empty when the block type-checks). */
  readonly diagnostics: ReadonlyMap<string, readonly string[]>;
  /** Diagnostics of the compiler set-up itself (options, lib files, the stubs). */
  readonly setup: readonly string[];
}

function blockPath(block: DocBlock): string {
  return join(ROOT, 'test/docs/.blocks', `${block.file.replace(/[/.]/g, '_')}_L${block.fenceLine}.ts`);
}

/** The project's compiler options (tsconfig.json), adjusted for examples. */
export function compilerOptions(): ts.CompilerOptions {
  const raw = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
  if (raw.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(raw.error.messageText, '\n'));
  const config = raw.config as { compilerOptions: Record<string, unknown> };
  const paths: Record<string, string[]> = {};
  for (const [specifier, file] of entryPoints()) paths[specifier] = [file];
  const parsed = ts.convertCompilerOptionsFromJson(
    {
      ...config.compilerOptions,
      // Examples use fetch, Response and AbortSignal, as an application does.
      lib: ['ES2023', 'DOM'],
      types: ['node'],
      // Every block is a module of its own, even one without import or export.
      moduleDetection: 'force',
      declaration: false,
      noEmit: true,
      paths,
    },
    ROOT,
  );
  if (parsed.errors.length > 0) throw new Error(ts.formatDiagnostics(parsed.errors, formatHost));
  return parsed.options;
}

const formatHost: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (f) => f,
  getCurrentDirectory: () => ROOT,
  getNewLine: () => '\n',
};

/** Type-checks every block (skipped ones excluded) in one program. */
export function typecheck(blocks: readonly DocBlock[]): CheckResult {
  const options = compilerOptions();
  const virtual = new Map<string, string>();
  const byPath = new Map<string, DocBlock>();
  const stubPath = join(ROOT, 'test/docs/.blocks/ambient-stubs.d.ts');
  virtual.set(stubPath, AMBIENT_STUBS);
  for (const block of blocks) {
    if (block.skip !== undefined) continue;
    virtual.set(blockPath(block), block.code);
    byPath.set(blockPath(block), block);
  }
  const host = ts.createCompilerHost(options, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (f) => virtual.has(f) || fileExists.call(host, f);
  host.readFile = (f) => virtual.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, languageVersion, onError, shouldCreate) => {
    const text = virtual.get(f);
    if (text !== undefined) return ts.createSourceFile(f, text, languageVersion, true);
    return getSourceFile.call(host, f, languageVersion, onError, shouldCreate);
  };
  const program = ts.createProgram({ rootNames: [...virtual.keys()], options, host });

  const diagnostics = new Map<string, string[]>();
  for (const [path, block] of byPath) {
    const sf = program.getSourceFile(path);
    if (sf === undefined) throw new Error(`${block.id}: not in the program`);
    const found = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
    diagnostics.set(
      block.id,
      found.map((d) => formatDiagnostic(block, d)),
    );
  }
  const stub = program.getSourceFile(stubPath);
  const setup = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...(stub === undefined ? [] : program.getSemanticDiagnostics(stub)),
  ].map((d) => ts.formatDiagnostic(d, formatHost).trim());
  return { diagnostics, setup };
}

function formatDiagnostic(block: DocBlock, d: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
  if (d.file === undefined || d.start === undefined) return `${block.id}: TS${d.code}: ${message}`;
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
  const where =
    d.file.fileName === blockPath(block)
      ? `${block.file}:${block.fenceLine + 1 + line}:${block.indent + character + 1}`
      : `${d.file.fileName}:${line + 1}:${character + 1} (from ${block.id})`;
  return `${where} TS${d.code}: ${message}`;
}

/** The module specifiers a block imports, static and dynamic. */
export function importsOf(block: DocBlock): string[] {
  const sf = ts.createSourceFile('block.ts', block.code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

// ---------------------------------------------------------------------------------------------------------------
// Running.

const BUILTINS = new Set(builtinModules);
const OWN_RUNNABLE = new Set(['bulwark', 'bulwark/testing']);
/** What makes a block talk to the network or serve: such a block is type-checked only. */
const NETWORK = /\bfetch\s*\(|\bcreateServer\b|\.listen\s*\(|\bconnect\s*\(/;

/** Why a block is not run, or undefined when it is. */
export function whyNotRun(block: DocBlock): string | undefined {
  if (block.skip !== undefined) return `skipped: ${block.skip}`;
  if (block.noRun !== undefined) return `no-run: ${block.noRun}`;
  const other = importsOf(block).filter((s) => !OWN_RUNNABLE.has(s) && !BUILTINS.has(s) && !s.startsWith('node:'));
  if (other.length > 0) return `imports ${other.join(', ')}`;
  if (NETWORK.test(block.code)) return 'uses the network';
  return undefined;
}

/** A `console.log(...)` line of a block whose trailing comment states what it prints. */
export interface PrintExpectation {
  /** Line in the page. */
  readonly line: number;
  readonly values: readonly (string | number | boolean | null | undefined)[];
  readonly comment: string;
}

const LITERAL = /^(?:'([^'\\]*)'|"([^"\\]*)"|(-?\d[\d_]*(?:\.\d+)?)|(true|false|null|undefined))/;

/**
 * `console.log(a, b); // 'ok' 3, prose` expects the values 'ok' and 3. A comment that does not start with
 * literals (`// the last attempt's number`), or whose literals run into more words (`// 5 s`), states nothing.
 */
export function printExpectations(block: DocBlock): PrintExpectation[] {
  const found: PrintExpectation[] = [];
  block.code.split('\n').forEach((text, i) => {
    const m = /\bconsole\.log\(.*\/\/\s*(.*)$/.exec(text);
    if (m === null) return;
    const comment = m[1] as string;
    let rest = comment;
    const values: (string | number | boolean | null | undefined)[] = [];
    for (;;) {
      const lit = LITERAL.exec(rest);
      if (lit === null) break;
      if (lit[1] !== undefined) values.push(lit[1]);
      else if (lit[2] !== undefined) values.push(lit[2]);
      else if (lit[3] !== undefined) values.push(Number(lit[3].replaceAll('_', '')));
      else values.push(lit[4] === 'null' ? null : lit[4] === 'undefined' ? undefined : lit[4] === 'true');
      rest = rest.slice(lit[0].length);
      if (!rest.startsWith(' ')) break;
      const next = rest.trimStart();
      if (!LITERAL.test(next)) break;
      rest = next;
    }
    if (values.length > 0 && /^(?:$|[,:;.]|\s+[(—-])/.test(rest)) {
      found.push({ line: block.fenceLine + 1 + i, values, comment });
    }
  });
  return found;
}

/** What a run printed through `console.log`, per page line. */
export interface RunResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly printed: ReadonlyMap<number, readonly (readonly unknown[])[]>;
}

const LOG_MARK = '\u241edocs-log ';

/**
 * Bundles a block with esbuild (bulwark from source, Node built-ins external) and runs it in a fresh Node
 * process, with every `console.log(` of the block reporting its page line. The process must exit by itself.
 */
export async function runBlock(block: DocBlock, dir: string, timeoutMs = 10_000): Promise<RunResult> {
  const entries = entryPoints();
  const lines = block.code
    .split('\n')
    .map((text, i) => text.replaceAll('console.log(', `__docsLog(${block.fenceLine + 1 + i}, `));
  const out = await build({
    stdin: { contents: lines.join('\n'), loader: 'ts', resolveDir: ROOT, sourcefile: block.id },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    banner: {
      js: [
        "import { inspect as __docsInspect } from 'node:util';",
        'function __docsLog(line, ...args) {',
        '  const shown = args.map((a) =>',
        '    a === undefined ? { undefined: true }',
        "    : a === null || typeof a === 'string' || typeof a === 'boolean' || Number.isFinite(a) ? a",
        '    : { inspect: __docsInspect(a) },',
        '  );',
        `  process.stdout.write(${JSON.stringify(LOG_MARK)} + JSON.stringify({ line, args: shown }) + '\\n');`,
        '}',
      ].join('\n'),
    },
    plugins: [
      {
        name: 'bulwark-from-source',
        setup(b) {
          b.onResolve({ filter: /^bulwark(\/.*)?$/ }, (args) => {
            const path = entries.get(args.path);
            return path === undefined ? { errors: [{ text: `no entry point for ${args.path}` }] } : { path };
          });
        },
      },
    ],
  });
  const file = join(dir, `${block.file.replace(/[/.]/g, '_')}_L${block.fenceLine}.mjs`);
  await writeFile(file, out.outputFiles[0]?.text ?? '');
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      [file],
      { cwd: dir, timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' } },
      (error, stdout, stderr) => {
        const printed = new Map<number, unknown[][]>();
        const rest: string[] = [];
        for (const line of stdout.split('\n')) {
          if (!line.startsWith(LOG_MARK)) {
            rest.push(line);
            continue;
          }
          const record = JSON.parse(line.slice(LOG_MARK.length)) as { line: number; args: unknown[] };
          const args = record.args.map((a) =>
            a !== null && typeof a === 'object' && 'undefined' in a ? undefined : a,
          );
          printed.set(record.line, [...(printed.get(record.line) ?? []), args]);
        }
        const e = error as (Error & { code?: unknown; killed?: boolean; signal?: NodeJS.Signals | null }) | null;
        resolvePromise({
          code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
          signal: e?.signal ?? null,
          timedOut: e?.killed === true,
          stdout: rest.join('\n'),
          stderr,
          printed,
        });
      },
    );
  });
}

/** A temporary directory for the bundles, and its removal. */
export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-docs-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Describes a printed value for a failure message. */
export function show(value: unknown): string {
  return inspect(value);
}
