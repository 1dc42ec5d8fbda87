/**
 * Suite 1: per-call overhead on the happy path, for three operations, in two modes: a tight loop (mitata, millions of
 * calls between collections) and GC-stressed (a full GC before each short batch of serial calls, as in a process that
 * collects garbage while it serves).
 */
import type { Contender, Instance, Op } from '../contenders.js';
import { gcStressedBatch, median, nsPerCall, progress, quantile, roundOrder, type Settings } from '../harness.js';

export interface OverheadRow {
  readonly contender: string;
  readonly library: string;
  /** Median over rounds of each round's median ns per call. */
  readonly ns: number;
  /** Spread: the lowest and highest round median. */
  readonly nsMin: number;
  readonly nsMax: number;
  /** Median over rounds of (contender / bare) measured in the same round. */
  readonly ratio: number;
  /** Median over rounds of (contender - bare) in the same round, in ns. */
  readonly overheadNs: number;
}

export interface OverheadResult {
  readonly op: string;
  /** The tight loop (mitata). */
  readonly rows: readonly OverheadRow[];
  /**
   * GC-stressed mode: a full GC before each batch of serial calls (`settings.gcBatchMs` long), every contender batch
   * between two bare batches; "over bare" and the ratio compare with the mean of those two, the round's figure is the
   * median over its passes. Absent in results saved before the mode existed.
   */
  readonly gcStressed?: readonly OverheadRow[];
}

const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));
const resolved = Promise.resolve(1);

export const OPS: readonly { readonly name: string; readonly op: Op }[] = [
  { name: 'async () => 1', op: async () => 1 },
  { name: 'await a resolved promise', op: async () => await resolved },
  { name: 'cross the event loop (setImmediate)', op: () => immediate() },
];

export async function overheadSuite(s: Settings, step: string, list: readonly Contender[]): Promise<OverheadResult[]> {
  const results: OverheadResult[] = [];
  for (const [oi, { name, op }] of OPS.entries()) {
    const instances = new Map<string, Instance>(list.map((c) => [c.name, c.make(op, 1_000)]));
    const perRound = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const ratios = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const deltas = new Map<string, number[]>(list.map((c) => [c.name, []]));
    // Warm every instance up once, so round 1 does not charge JIT compilation to whoever runs first.
    for (const i of instances.values()) for (let k = 0; k < 2_000; k++) await i.call();
    for (let r = 0; r < s.rounds; r++) {
      const round = new Map<string, number>();
      for (const [ci, c] of roundOrder(list, r).entries()) {
        progress(
          `${step} per-call overhead: "${name}" (op ${oi + 1}/${OPS.length}), round ${r + 1}/${s.rounds}, ${ci + 1}/${list.length} ${c.name}`,
        );
        const call = (instances.get(c.name) as Instance).call;
        round.set(c.name, (await nsPerCall(call, s)).p50);
      }
      const bare = round.get('bare') as number;
      for (const [k, v] of round) {
        perRound.get(k)?.push(v);
        ratios.get(k)?.push(v / bare);
        deltas.get(k)?.push(v - bare);
      }
    }
    const gcStressed = await gcStressedMode(
      s,
      `${step} per-call overhead, GC-stressed: "${name}" (op ${oi + 1}/${OPS.length})`,
      list,
      instances,
    );
    for (const i of instances.values()) i.dispose();
    results.push({
      op: name,
      rows: list.map((c) => summarise(c, perRound, ratios, deltas)),
      gcStressed,
    });
  }
  return results;
}

function summarise(
  c: Contender,
  perRound: ReadonlyMap<string, number[]>,
  ratios: ReadonlyMap<string, number[]>,
  deltas: ReadonlyMap<string, number[]>,
): OverheadRow {
  const values = perRound.get(c.name) as number[];
  return {
    contender: c.name,
    library: c.library,
    ns: median(values),
    nsMin: quantile(values, 0),
    nsMax: quantile(values, 1),
    ratio: median(ratios.get(c.name) as number[]),
    overheadNs: median(deltas.get(c.name) as number[]),
  };
}

/**
 * The GC-stressed mode for one op: per round, `settings.gcBatches` passes; a pass runs bare, then each contender
 * followed by bare again (bare, c1, bare, c2, ..., bare; the contenders in alternating order), each batch after a
 * full GC. A contender's batch is compared with the mean of the bare batches on either side of it, so machine drift
 * over a pass cancels; its figure for the round is the median over the round's passes, and the result the median
 * over rounds (the spread: the lowest and highest round figure).
 */
async function gcStressedMode(
  s: Settings,
  label: string,
  list: readonly Contender[],
  instances: ReadonlyMap<string, Instance>,
): Promise<OverheadRow[]> {
  const bare = instances.get('bare') as Instance;
  const wrapped = list.filter((c) => c.name !== 'bare');
  const perRound = new Map<string, number[]>(list.map((c) => [c.name, []]));
  const ratios = new Map<string, number[]>(list.map((c) => [c.name, []]));
  const deltas = new Map<string, number[]>(list.map((c) => [c.name, []]));
  // One short pass first, so the batch loop itself is compiled before anything is measured.
  for (const i of instances.values()) await gcStressedBatch(i.call, s.gcBatchMs / 3);
  for (let r = 0; r < s.rounds; r++) {
    const ns = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const ratio = new Map<string, number[]>(list.map((c) => [c.name, []]));
    const delta = new Map<string, number[]>(list.map((c) => [c.name, []]));
    for (let b = 0; b < s.gcBatches; b++) {
      progress(`${label}, round ${r + 1}/${s.rounds}, pass ${b + 1}/${s.gcBatches}`);
      let before = await gcStressedBatch(bare.call, s.gcBatchMs);
      ns.get('bare')?.push(before);
      for (const c of roundOrder(wrapped, r * s.gcBatches + b)) {
        const x = await gcStressedBatch((instances.get(c.name) as Instance).call, s.gcBatchMs);
        const after = await gcStressedBatch(bare.call, s.gcBatchMs);
        ns.get('bare')?.push(after);
        const base = (before + after) / 2;
        ns.get(c.name)?.push(x);
        ratio.get(c.name)?.push(x / base);
        delta.get(c.name)?.push(x - base);
        before = after;
      }
    }
    for (const c of list) {
      perRound.get(c.name)?.push(median(ns.get(c.name) as number[]));
      ratios.get(c.name)?.push(c.name === 'bare' ? 1 : median(ratio.get(c.name) as number[]));
      deltas.get(c.name)?.push(c.name === 'bare' ? 0 : median(delta.get(c.name) as number[]));
    }
  }
  return list.map((c) => summarise(c, perRound, ratios, deltas));
}
