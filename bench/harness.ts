/**
 * Measurement helpers shared by the suites: rounds in alternating order, robust statistics, progress and tables.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { measure } from 'mitata';

/** Run settings; `--quick` shrinks every knob so the whole run fits in under two minutes. */
export interface Settings {
  readonly quick: boolean;
  /** Rounds per suite; contenders alternate order between rounds. */
  readonly rounds: number;
  /** mitata's minimum CPU time per measurement, in ns. */
  readonly minCpuNs: number;
  /** Calls in flight in the concurrency suite. */
  readonly inFlight: number;
  /** Requests per contender per round in the HTTP suite. */
  readonly httpRequests: number;
  /** Rounds of the HTTP suite: many short rounds, so machine drift hits every contender alike. */
  readonly httpRounds: number;
  /** Upper bound of one HTTP run, in ms. */
  readonly httpMaxMs: number;
  /** Breaker counts in the many-breakers suite. */
  readonly breakerCounts: readonly number[];
  /** How long idle CPU is sampled, in ms. */
  readonly idleMs: number;
  /** GC-stressed overhead mode: the length of one batch of serial calls after a full GC, in ms. */
  readonly gcBatchMs: number;
  /** GC-stressed overhead mode: batches of each contender per round (each between two bare batches). */
  readonly gcBatches: number;
  /** Deopt suite: GC-stressed batches counted after the warm-up (the target is stated for 100). */
  readonly deoptBatches: number;
}

export function settings(quick: boolean): Settings {
  return quick
    ? {
        quick,
        rounds: 2,
        minCpuNs: 150e6,
        inFlight: 10_000,
        httpRequests: 1_000,
        httpRounds: 4,
        httpMaxMs: 4_000,
        breakerCounts: [1, 100, 10_000],
        idleMs: 250,
        gcBatchMs: 30,
        gcBatches: 3,
        deoptBatches: 100,
      }
    : {
        quick,
        rounds: 5,
        minCpuNs: 400e6,
        inFlight: 10_000,
        httpRequests: 4_000,
        httpRounds: 12,
        httpMaxMs: 10_000,
        breakerCounts: [1, 100, 10_000],
        idleMs: 1_000,
        gcBatchMs: 30,
        gcBatches: 3,
        deoptBatches: 100,
      };
}

/** The order of round `r`: forward on even rounds, reversed on odd ones, so no contender always goes first. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...items] : [...items].reverse();
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

/** ns per call of an async function: the median of mitata's samples. */
export async function nsPerCall(
  fn: () => Promise<unknown>,
  s: Settings,
): Promise<{ p50: number; p25: number; p75: number }> {
  // Every contender is measured through the same async wrapper, so mitata sees one kind of function throughout.
  const wrapped = async () => {
    await fn();
  };
  // Start from a clean heap: garbage left by the previous contender must not be collected on this one's time.
  gc();
  const stats = await measure(wrapped, { min_cpu_time: s.minCpuNs, warmup_samples: 256 });
  return { p50: stats.p50, p25: stats.p25, p75: stats.p75 };
}

/**
 * One GC-stressed batch: a full collection (two, as `gc()` runs), then serial awaited calls of `call` for about `ms`;
 * returns ns per call. The first calls after the collection pay for whatever it threw away (optimised code V8 marked
 * for deoptimisation, inline caches), which a tight loop of millions of calls amortises to nothing.
 */
export async function gcStressedBatch(call: () => Promise<unknown>, ms: number): Promise<number> {
  gc();
  const t0 = performance.now();
  const end = t0 + ms;
  let n = 0;
  do {
    // Reading the clock every 64 calls keeps its cost out of the per-call figure.
    for (let i = 0; i < 64; i++) await call();
    n += 64;
  } while (performance.now() < end);
  return ((performance.now() - t0) * 1e6) / n;
}

/** Forces a full collection (the runner starts node with --expose-gc). */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g === undefined) throw new Error('run the bench with node --expose-gc (npm run bench does)');
  g();
  g();
}

export function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

let progressLine = '';
/** One progress line on stderr, rewritten in place on a terminal. */
export function progress(text: string): void {
  if (process.stderr.isTTY) {
    process.stderr.write(`\r${text.padEnd(progressLine.length)}`);
    progressLine = text;
  } else {
    process.stderr.write(`${text}\n`);
  }
}

export function endProgress(): void {
  if (process.stderr.isTTY && progressLine) process.stderr.write(`\r${' '.repeat(progressLine.length)}\r`);
  progressLine = '';
}

/** A plain text table for the terminal. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fmt = {
  ns: (v: number) =>
    Number.isFinite(v) ? (v >= 10_000 ? `${(v / 1000).toFixed(1)} µs` : `${v.toFixed(0)} ns`) : 'n/a',
  ratio: (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a'),
  signedNs: (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(0)} ns` : 'n/a'),
  int: (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a'),
  // `+ 0` turns a rounded -0 (a heap that shrank by a few bytes) into 0.
  bytes: (v: number) => (Number.isFinite(v) ? `${(Math.round(v) + 0).toLocaleString('en-US')} B` : 'n/a'),
  ms: (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : 'n/a'),
};

/**
 * Starts a bench server script (bench/*-server.mjs) in a child process and waits for the port it prints. The
 * child exits when its stdin closes, so it never outlives the run.
 */
export async function startChildServer(script: URL): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [fileURLToPath(script)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(Number(line));
    });
    child.once('exit', (code) => reject(new Error(`bench server ${script.pathname} exited early with code ${code}`)));
  });
  return { port, child };
}

/** One contender's load result in one round of an end-to-end suite. */
export interface LoadResult {
  readonly done: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
}

/** Medians over rounds of an end-to-end suite, with ratios to the baseline measured in the same round. */
export interface LoadSummary {
  readonly contender: string;
  readonly done: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly throughputRatio: number;
  readonly p99Ratio: number;
}

/**
 * `load` run after an unmeasured lead-in of the same contender, every time. Why: contenders share the suite's process
 * and run one after another, so the garbage one leaves (and the collections it is due) fell on the next one's
 * measured time, and the p99 of a short round moved with whichever contender ran before it (the HTTP interceptor's
 * p99 measured 1.11x to 1.53x bare in runs of the same code). A lead-in lets that collection happen off the clock.
 * Not a full `gc()` before each load: that shrinks the heap, and every short round then paid for regrowing it (bare
 * undici fell from 55,000 to 30,000 req/s).
 */
export function withLeadIn<C>(
  load: (c: C) => Promise<LoadResult>,
  leadIn: (c: C) => Promise<unknown>,
): (c: C) => Promise<LoadResult> {
  return async (c) => {
    await leadIn(c);
    return load(c);
  };
}

/**
 * Runs `load` for every contender, `rounds` times in alternating order, and summarises each against `baseline`
 * (the first contender) measured in the same round.
 */
export async function loadRounds<C extends { readonly name: string }>(
  contenders: readonly C[],
  rounds: number,
  label: (round: number, index: number, c: C) => string,
  load: (c: C) => Promise<LoadResult>,
): Promise<LoadSummary[]> {
  const baseline = (contenders[0] as C).name;
  const acc = new Map(
    contenders.map((c) => [
      c.name,
      {
        rate: [] as number[],
        p50: [] as number[],
        p99: [] as number[],
        tr: [] as number[],
        pr: [] as number[],
        done: [] as number[],
      },
    ]),
  );
  for (let r = 0; r < rounds; r++) {
    const round = new Map<string, LoadResult>();
    for (const [i, c] of roundOrder(contenders, r).entries()) {
      progress(label(r, i, c));
      round.set(c.name, await load(c));
    }
    const base = round.get(baseline) as LoadResult;
    for (const [name, x] of round) {
      const a = acc.get(name);
      if (a === undefined) continue;
      a.rate.push(x.done / x.seconds);
      a.p50.push(x.p50);
      a.p99.push(x.p99);
      a.tr.push(x.done / x.seconds / (base.done / base.seconds));
      a.pr.push(x.p99 / base.p99);
      a.done.push(x.done);
    }
  }
  return contenders.map((c) => {
    const a = acc.get(c.name) as {
      rate: number[];
      p50: number[];
      p99: number[];
      tr: number[];
      pr: number[];
      done: number[];
    };
    return {
      contender: c.name,
      done: median(a.done),
      perSec: median(a.rate),
      p50Ms: median(a.p50),
      p99Ms: median(a.p99),
      throughputRatio: median(a.tr),
      p99Ratio: median(a.pr),
    };
  });
}

/**
 * A closed loop: `concurrency` workers call `call` until `total` calls are done or `maxMs` passes; latencies go
 * into an HDR histogram (µs). Shared by the end-to-end suites.
 */
export async function closedLoop(
  call: () => Promise<unknown>,
  total: number,
  maxMs: number,
  concurrency: number,
): Promise<LoadResult> {
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let started = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(maxMs) * 1_000_000n;
  const worker = async () => {
    while (started < total && process.hrtime.bigint() < deadline) {
      started++;
      const s = process.hrtime.bigint();
      await call();
      histogram.recordValue(Number((process.hrtime.bigint() - s) / 1_000n));
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const result = {
    done,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    p50: histogram.getValueAtPercentile(50) / 1_000,
    p99: histogram.getValueAtPercentile(99) / 1_000,
  };
  histogram.destroy();
  return result;
}

/** What the in-process part of an end-to-end suite measured of one contender, in µs of CPU per call. */
export interface InProcessResult {
  /** Median over rounds of the contender's CPU per call. */
  readonly ownUsPerCall: number;
  /** Median over rounds of (contender - first contender) CPU per call in the same round. */
  readonly ownUsOverBare: number;
}

/** Rounds and calls per contender and round of an in-process part. */
export function inProcessSize(quick: boolean): { rounds: number; calls: number } {
  return quick ? { rounds: 7, calls: 2_000 } : { rounds: 21, calls: 5_000 };
}

/**
 * The in-process part of an end-to-end suite: its contenders on a fake transport that answers on the next turn of
 * the event loop, in rounds of alternating order, each a closed loop of `calls` calls with `concurrency` in flight,
 * timed by the process's CPU (`process.cpuUsage`). Returns, per contender, the median CPU per call and the median
 * of its same-round differences to the first contender, in µs.
 */
export async function inProcessRounds<C extends { readonly name: string; readonly run: () => Promise<unknown> }>(
  list: readonly C[],
  rounds: number,
  calls: number,
  concurrency: number,
  label: (round: number, index: number, c: C) => string,
): Promise<Map<string, InProcessResult>> {
  const loop = async (run: () => Promise<unknown>, n: number) => {
    let left = n;
    const worker = async () => {
      while (left-- > 0) await run();
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  // Warm-up: four rounds' worth each, so every contender's code is optimised before the first measured round.
  for (const c of list) await loop(c.run, 4 * calls);
  const perRound = new Map<string, number[]>(list.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of roundOrder(list, r).entries()) {
      progress(label(r, i, c));
      const before = process.cpuUsage();
      await loop(c.run, calls);
      const used = process.cpuUsage(before);
      perRound.get(c.name)?.push((used.user + used.system) / calls);
    }
  }
  const bare = perRound.get((list[0] as C).name) ?? [];
  return new Map(
    list.map((c) => {
      const mine = perRound.get(c.name) ?? [];
      return [
        c.name,
        { ownUsPerCall: median(mine), ownUsOverBare: median(mine.map((x, i) => x - (bare[i] as number))) },
      ];
    }),
  );
}

/** The argument that makes the bench bundle run an end-to-end suite's in-process part ({@link inProcessInChild}). */
export const IN_PROCESS_CHILD = '--in-process-child';

/**
 * Runs the in-process part of `suite` in a fresh process of this bundle (`run.mjs --in-process-child <suite> <step>
 * [--quick]`, which prints its result as JSON on stdout) and returns what it measured.
 *
 * Why a process of its own: the part's call sites (the client library's and bulwark's) must see only the fake
 * transport, as a service's see only the real one. Why without V8's allocation-site pretenuring: in some builds of the
 * bench bundle (the same code laid out differently: one more suite imported, say) V8 decided early in the process to
 * allocate the objects of one allocation site on the bare gRPC call's path (in grpc-js or the bench's own code)
 * straight into the old generation, although they die young; from then on every scavenge scanned them and every call
 * cost about twice as much, the bare client's included (7 -> 13 µs per call, same code). Which build tips over is
 * chance, and so was the figure; without pretenuring every build measures the same. bulwark runs in the same process
 * as bare, so what is compared is each contender's own work.
 */
export function inProcessInChild(suite: string, s: Settings, step: string): Promise<Map<string, InProcessResult>> {
  const args = [fileURLToPath(import.meta.url), IN_PROCESS_CHILD, suite, step, ...(s.quick ? ['--quick'] : [])];
  return new Promise((resolve, reject) => {
    const flags = [...process.execArgv, '--no-allocation-site-pretenuring'];
    const child = spawn(process.execPath, [...flags, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => chunks.push(d));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${suite} suite: its in-process child exited with code ${code}`));
        return;
      }
      try {
        resolve(new Map(JSON.parse(Buffer.concat(chunks).toString('utf8')) as [string, InProcessResult][]));
      } catch (error) {
        reject(new Error(`${suite} suite: its in-process child printed no result`, { cause: error }));
      }
    });
  });
}
