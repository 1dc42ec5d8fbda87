/**
 * Suite: how often V8 throws away bulwark's optimised code once it is warm. A child process (this bundle, run with
 * `node --expose-gc --trace-deopt`) drives every bulwark policy alone and the four-policy pipeline through
 * GC-stressed batches (a full GC, then ~30 ms of serial calls); the parent counts, per bulwark function, the
 * optimised code objects that V8 marked for deoptimisation or bailed out of after the warm-up.
 *
 * What is charged to bulwark: a function whose name is defined in bulwark's source as bundled into the child (the
 * `// src/...` sections of the bundle), and that is not a function seen deoptimising in a bare-only control phase of
 * the same child (Node's own timers and immediates lose their optimised code after every full GC too: their
 * SharedFunctionInfo addresses are excluded, so a bulwark function that shares a name with one of them still counts).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { contenders, type Instance } from '../contenders.js';
import { gc, progress, type Settings } from '../harness.js';
import { OPS } from './overhead.js';

/** The ops the suite drives: `async () => 1` and the setImmediate op (indexes into the overhead suite's OPS). */
const DEOPT_OPS = [0, 2] as const;
/** GC-stressed batches before counting starts: enough for V8 to optimise the hot functions and settle. */
const WARM_BATCHES = 20;
/** Bare-only batches in the control phase. */
const CONTROL_BATCHES = 10;

const MARK_CONTROL_END = 'BENCH-CONTROL-END';
const MARK_WARM = 'BENCH-WARM';
const MARK_END = 'BENCH-END';

/** One function name's deopts after warm-up (several functions may share a name: `_run` of each policy). */
export interface DeoptOffender {
  readonly name: string;
  /** Distinct functions (SharedFunctionInfos) with this name that were deoptimised. */
  readonly functions: number;
  /** Deopts of all of them. */
  readonly count: number;
  /** The most deopts of one of them. */
  readonly max: number;
  /** V8's reasons, most frequent first (`weak objects`: a map the code depends on died in a GC). */
  readonly reasons: readonly string[];
}

export interface DeoptRow {
  readonly op: string;
  /** GC-stressed batches counted (after the warm-up). */
  readonly batches: number;
  /** Deopts of bulwark functions after warm-up (an optimised code object marked or bailed out of counts once). */
  readonly total: number;
  /** Bulwark functions deoptimised at least once. */
  readonly functions: number;
  /** The most deopts of one bulwark function; the target is at most 1 per process. */
  readonly maxPerFunction: number;
  /** Every bulwark name deoptimised, most deopts first. */
  readonly offenders: readonly DeoptOffender[];
  /** Deopts after warm-up not charged to bulwark: Node's own functions, the bench's, anonymous functions. */
  readonly other: number;
  /** Their names, most deopts first (`(anonymous)` for functions without one). */
  readonly otherTop: readonly { readonly name: string; readonly count: number }[];
}

/** One deopt event parsed from a --trace-deopt line. */
interface DeoptEvent {
  readonly name: string;
  /** The SharedFunctionInfo's address, normalised. */
  readonly sfi: string;
  /** `sfi:opt id`: a marking and the lazy bailout that follows it are one deopt of one code object. */
  readonly code: string;
  readonly reason: string;
}

/** A function name as V8 prints it: may be empty, may hold one `<...>` (`<instance_members_initializer>`). */
const NAME = '(?:<[^<>\\[\\]\\n]*>|[^<>\\[\\]\\n])*?';
/**
 * The phase markers and the two kinds of trace entry, matched over the whole output rather than line by line: V8
 * prints an entry in several writes, and on Node 24 a background thread's entry can land in the middle of another
 * (an entry cut short that way still counts, without its opt id).
 */
const TOKEN = new RegExp(
  [
    `(${MARK_CONTROL_END}|${MARK_WARM}|${MARK_END})`,
    `\\[marking dependent code [^\\[\\]]*?\\((0x[0-9a-f]+) <SharedFunctionInfo ?(${NAME})>\\)?(?: \\(opt id (\\d+)\\))?(?: for deoptimization, reason: ([^\\[\\]\\n]*))?`,
    `\\[bailout \\(kind: [^,\\[\\]]*, reason: ([^\\[\\]\\n]*?)\\): begin\\. deoptimizing \\S+ <JSFunction ?(${NAME}) \\(sfi = (0x[0-9a-f]+)\\)>(?:[^\\[\\]\\n]*?opt id (\\d+))?`,
  ].join('|'),
  'g',
);

/** A child's --trace-deopt output as phase markers and deopt events, in order. Exported for the parser's tests. */
export function parseTrace(output: string): (DeoptEvent | { readonly marker: string })[] {
  const out: (DeoptEvent | { readonly marker: string })[] = [];
  let torn = 0;
  for (const m of output.matchAll(TOKEN)) {
    if (m[1] !== undefined) out.push({ marker: m[1] });
    else if (m[2] !== undefined) {
      const sfi = BigInt(m[2]).toString(16);
      const code = m[4] === undefined ? `torn${torn++}` : m[4];
      out.push({ name: m[3] as string, sfi, code: `${sfi}:${code}`, reason: m[5] ?? '(cut short)' });
    } else {
      const sfi = BigInt(m[8] as string).toString(16);
      const code = m[9] === undefined ? `torn${torn++}` : m[9];
      out.push({ name: m[7] as string, sfi, code: `${sfi}:${code}`, reason: m[6] as string });
    }
  }
  return out;
}

/**
 * The names of the functions, methods, accessors and classes defined in the `// src/...` sections of a bundle, as V8
 * names them (`get x` for an accessor, `#m` for a private method, `<instance_members_initializer>` for class fields).
 * A name the bench's own sections define too (a contender's `call` closure, say) is left out: V8's trace cannot tell
 * the two apart, and the bench's closures inline bulwark's code, so they die with it.
 */
export function bulwarkNames(bundle: string): Set<string> {
  const mine = new Set<string>();
  const theirs = new Set<string>();
  let names = theirs;
  const id = '#?[\\w$]+';
  const patterns = [
    new RegExp(`\\bfunction\\s*\\*?\\s*(${id})\\s*\\(`, 'g'),
    new RegExp(`\\bclass\\s+(${id})`, 'g'),
    // methods and accessors at the start of a line, as esbuild prints class bodies
    new RegExp(`^\\s*(?:static\\s+)?(?:async\\s+)?((?:get\\s+|set\\s+)?\\*?\\s*${id})\\s*\\([^)]*\\)\\s*\\{`, 'g'),
    // `x = (...) =>`, `x = function`, `x: (...) =>`, `var X = class {` (V8 names these after what they are assigned to)
    new RegExp(`(${id})\\s*[=:]\\s*(?:async\\s*)?(?:function\\b|class\\b|\\([^)]*\\)\\s*=>|[\\w$]+\\s*=>)`, 'g'),
  ];
  for (const line of bundle.split('\n')) {
    const section = /^\/\/ (\S+)$/.exec(line);
    if (section) {
      names = (section[1] as string).startsWith('src/') ? mine : theirs;
      continue;
    }
    for (const p of patterns) {
      p.lastIndex = 0;
      for (let m = p.exec(line); m !== null; m = p.exec(line)) {
        const name = (m[1] as string).replace(/\s+/g, ' ').replace(/^\* ?/, '');
        if (!['if', 'for', 'while', 'switch', 'catch', 'return', 'function'].includes(name)) names.add(name);
      }
    }
  }
  for (const n of theirs) mine.delete(n);
  // Class field initialisers: V8 names them alike in every class, so any class in bulwark's source makes them count.
  if ([...mine].some((n) => /^[A-Z_]/.test(n))) {
    mine.add('<instance_members_initializer>');
    mine.add('<static_initializer>');
  }
  return mine;
}

/** Counts the deopts in a child's --trace-deopt output (see the module comment for what is charged to bulwark). */
export function countDeopts(
  output: string,
  names: ReadonlySet<string>,
  op: string,
): Omit<DeoptRow, 'batches'> & { readonly markers: boolean } {
  let phase: 'control' | 'warm' | 'counted' | 'done' = 'control';
  const controlSfis = new Set<string>();
  const seen = new Set<string>();
  const perSfi = new Map<string, { name: string; count: number; reasons: Map<string, number> }>();
  const other = new Map<string, number>();
  let markers = 0;
  for (const e of parseTrace(output)) {
    if ('marker' in e) {
      markers++;
      phase = e.marker === MARK_CONTROL_END ? 'warm' : e.marker === MARK_WARM ? 'counted' : 'done';
      continue;
    }
    if (phase === 'control') controlSfis.add(e.sfi);
    if (phase !== 'counted' || seen.has(e.code)) continue;
    seen.add(e.code);
    if (names.has(e.name) && !controlSfis.has(e.sfi)) {
      const f = perSfi.get(e.sfi) ?? { name: e.name, count: 0, reasons: new Map<string, number>() };
      f.count++;
      f.reasons.set(e.reason, (f.reasons.get(e.reason) ?? 0) + 1);
      perSfi.set(e.sfi, f);
    } else {
      const name = e.name === '' ? '(anonymous)' : e.name;
      other.set(name, (other.get(name) ?? 0) + 1);
    }
  }
  const byName = new Map<string, { functions: number; count: number; max: number; reasons: Map<string, number> }>();
  for (const f of perSfi.values()) {
    const n = byName.get(f.name) ?? { functions: 0, count: 0, max: 0, reasons: new Map<string, number>() };
    n.functions++;
    n.count += f.count;
    n.max = Math.max(n.max, f.count);
    for (const [r, k] of f.reasons) n.reasons.set(r, (n.reasons.get(r) ?? 0) + k);
    byName.set(f.name, n);
  }
  const offenders = [...byName]
    .map(([name, n]) => ({
      name,
      functions: n.functions,
      count: n.count,
      max: n.max,
      reasons: [...n.reasons].sort((a, b) => b[1] - a[1]).map(([r]) => r),
    }))
    .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  return {
    op,
    total: offenders.reduce((s, o) => s + o.count, 0),
    functions: perSfi.size,
    maxPerFunction: Math.max(0, ...offenders.map((o) => o.max)),
    offenders,
    other: [...other.values()].reduce((s, k) => s + k, 0),
    otherTop: [...other]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 8)
      .map(([name, count]) => ({ name, count })),
    markers: markers === 3,
  };
}

/** Objects the child keeps alive for its whole run (see deoptChild). */
const held: unknown[] = [];

/**
 * The child's side (`run.mjs --deopt-child <op index> <batches> <batch ms>`): a bare-only control phase, a
 * warm-up, then the counted GC-stressed batches, each phase ended by a marker line on stdout (where V8 writes its
 * trace too, in order).
 */
export async function deoptChild(argv: readonly string[]): Promise<void> {
  const [opIndex, batches, ms] = argv.map(Number) as [number, number, number];
  const { op } = OPS[opIndex] as (typeof OPS)[number];
  const list = contenders({ cockatiel: [], opossum: [] });
  const bare = (list[0] as (typeof list)[number]).make(op, 1_000);
  const bulwark: Instance[] = list.filter((c) => c.library === 'bulwark').map((c) => c.make(op, 1_000));
  // Why: Node's Immediate objects share one hidden class, which dies in a full GC when no immediate is alive; then
  // every function that inlined `setImmediate` (Node's, the op's, and bulwark's `invoke`, which inlines the op) loses
  // its optimised code. That is the op's doing, not bulwark's: one Immediate held for the whole run keeps the class.
  held.push(setImmediate(() => undefined));
  // One batch: a full GC, then every instance in turn, 16 serial calls each, until `ms` have passed.
  const batch = async (instances: readonly Instance[]) => {
    gc();
    const end = performance.now() + ms;
    do {
      for (const i of instances) for (let k = 0; k < 16; k++) await i.call();
    } while (performance.now() < end);
  };
  for (let b = 0; b < CONTROL_BATCHES; b++) await batch([bare]);
  console.log(MARK_CONTROL_END);
  for (let b = 0; b < WARM_BATCHES; b++) await batch(bulwark);
  console.log(MARK_WARM);
  for (let b = 0; b < batches; b++) await batch(bulwark);
  console.log(MARK_END);
  for (const i of [bare, ...bulwark]) i.dispose();
  held.length = 0;
}

/** Runs one child per op (both at once: they count deopts, not time) and counts what they print. */
export async function deoptSuite(s: Settings, step: string): Promise<DeoptRow[]> {
  const bundle = fileURLToPath(import.meta.url);
  const names = bulwarkNames(readFileSync(bundle, 'utf8'));
  if (names.size < 20) throw new Error(`deopt suite: found only ${names.size} bulwark function names in ${bundle}`);
  progress(
    `${step} deopts: ${DEOPT_OPS.length} child processes with --trace-deopt, ${s.deoptBatches} GC-stressed batches each`,
  );
  const outputs = await Promise.all(
    DEOPT_OPS.map(
      (oi) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(
            process.execPath,
            [
              '--expose-gc',
              '--trace-deopt',
              bundle,
              '--deopt-child',
              String(oi),
              String(s.deoptBatches),
              String(s.gcBatchMs),
            ],
            { stdio: ['ignore', 'pipe', 'inherit'] },
          );
          const chunks: Buffer[] = [];
          child.stdout.on('data', (d: Buffer) => chunks.push(d));
          child.once('error', reject);
          child.once('close', (code) =>
            code === 0
              ? resolve(Buffer.concat(chunks).toString('utf8'))
              : reject(new Error(`deopt suite: the child for op ${oi} exited with code ${code}`)),
          );
        }),
    ),
  );
  return DEOPT_OPS.map((oi, k) => {
    const name = (OPS[oi] as (typeof OPS)[number]).name;
    const { markers, ...row } = countDeopts(outputs[k] as string, names, name);
    if (!markers) throw new Error(`deopt suite: the child for "${name}" did not print its phase markers`);
    return { ...row, batches: s.deoptBatches };
  });
}
