/** Suite 1: per-call overhead on the happy path, for three operations. */
import type { Contender, Instance, Op } from '../contenders.js';
import { median, nsPerCall, progress, quantile, roundOrder, type Settings } from '../harness.js';

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
  readonly rows: readonly OverheadRow[];
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
    for (const i of instances.values()) i.dispose();
    results.push({
      op: name,
      rows: list.map((c) => {
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
      }),
    });
  }
  return results;
}
