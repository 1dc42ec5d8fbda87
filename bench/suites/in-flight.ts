/** Suite 2: many calls in flight at once through each contender (limiters at 1,000, the rest queued). */
import { PerformanceObserver } from 'node:perf_hooks';
import type { Contender } from '../contenders.js';
import { gc, heapUsed, median, progress, roundOrder, type Settings } from '../harness.js';

export interface InFlightRow {
  readonly contender: string;
  readonly library: string;
  readonly callsPerSec: number;
  /** Median over rounds of (contender time / bare time) in the same round. */
  readonly timeRatio: number;
  /** Heap bytes retained per in-flight call, measured after a full GC while every call is pending. */
  readonly bytesPerCall: number;
  /** The same, minus bare's in the same round. */
  readonly bytesOverBare: number;
  /** Garbage collections during one run (median over rounds). */
  readonly gcCount: number;
}

async function once(
  make: (op: () => Promise<unknown>) => { call: () => Promise<unknown>; dispose: () => void },
  n: number,
): Promise<{ ms: number; bytes: number; gcs: number }> {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const op = () => gate;
  const instance = make(op);
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  const calls: Promise<unknown>[] = new Array(n);
  gc();
  const before = heapUsed();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) calls[i] = instance.call();
  const startedNs = Number(process.hrtime.bigint() - t0);
  gc();
  const bytes = (heapUsed() - before) / n;
  const t1 = process.hrtime.bigint();
  open();
  await Promise.all(calls);
  const settleNs = Number(process.hrtime.bigint() - t1);
  obs.disconnect();
  instance.dispose();
  return { ms: (startedNs + settleNs) / 1e6, bytes, gcs };
}

export async function inFlightSuite(s: Settings, step: string, list: readonly Contender[]): Promise<InFlightRow[]> {
  const ms = new Map<string, number[]>(list.map((c) => [c.name, []]));
  const ratios = new Map<string, number[]>(list.map((c) => [c.name, []]));
  const bytes = new Map<string, number[]>(list.map((c) => [c.name, []]));
  const over = new Map<string, number[]>(list.map((c) => [c.name, []]));
  const gcs = new Map<string, number[]>(list.map((c) => [c.name, []]));
  // One warm-up pass so the first contender does not pay for JIT compilation.
  for (const c of list) await once((op) => c.make(op, s.inFlight), 1_000);
  for (let r = 0; r < s.rounds; r++) {
    const round = new Map<string, { ms: number; bytes: number; gcs: number }>();
    for (const [ci, c] of roundOrder(list, r).entries()) {
      progress(
        `${step} ${s.inFlight.toLocaleString('en-US')} in flight: round ${r + 1}/${s.rounds}, ${ci + 1}/${list.length} ${c.name}`,
      );
      round.set(c.name, await once((op) => c.make(op, s.inFlight), s.inFlight));
    }
    const bare = round.get('bare') as { ms: number; bytes: number };
    for (const [k, v] of round) {
      ms.get(k)?.push(v.ms);
      ratios.get(k)?.push(v.ms / bare.ms);
      bytes.get(k)?.push(v.bytes);
      over.get(k)?.push(v.bytes - bare.bytes);
      gcs.get(k)?.push(v.gcs);
    }
  }
  return list.map((c) => ({
    contender: c.name,
    library: c.library,
    callsPerSec: s.inFlight / (median(ms.get(c.name) as number[]) / 1_000),
    timeRatio: median(ratios.get(c.name) as number[]),
    bytesPerCall: median(bytes.get(c.name) as number[]),
    bytesOverBare: median(over.get(c.name) as number[]),
    gcCount: median(gcs.get(c.name) as number[]),
  }));
}
