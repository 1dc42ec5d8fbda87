/** Suite 5: memory and idle CPU of many breakers (bulwark keeps no timer per breaker). */
import { circuitBreaker } from '../../src/index.js';
import { gc, heapUsed, progress, type Settings } from '../harness.js';
import type { Peers } from '../peers.js';

export interface BreakersRow {
  readonly library: string;
  readonly count: number;
  /** Heap per breaker, measured over 10,000 of them (the most precise), in bytes. */
  readonly bytesPerBreaker: number;
  /** Heap held by `count` breakers, measured directly, in bytes (noisy for a single breaker). */
  readonly heapBytes: number;
  /** CPU the process spends per second of idling with the breakers alive, over the same idle with none, in ms. */
  readonly idleCpuMsPerSec: number;
  /** Timers the breakers created and still keep. */
  readonly timers: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Counts timers created (and not cleared) while `fn` runs, by wrapping the timer globals for its duration. */
function countTimers<T>(fn: () => T): { value: T; timers: number } {
  const g = globalThis as unknown as Record<string, (...args: unknown[]) => unknown>;
  const names = ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'] as const;
  const saved = names.map((n) => g[n] as (...args: unknown[]) => unknown);
  const live = new Set<unknown>();
  const [st, si, ct, ci] = saved as [
    (...a: unknown[]) => unknown,
    (...a: unknown[]) => unknown,
    (...a: unknown[]) => unknown,
    (...a: unknown[]) => unknown,
  ];
  g.setTimeout = (...a: unknown[]) => {
    const h = st(...a);
    live.add(h);
    return h;
  };
  g.setInterval = (...a: unknown[]) => {
    const h = si(...a);
    live.add(h);
    return h;
  };
  g.clearTimeout = (h: unknown) => {
    live.delete(h);
    return ct(h);
  };
  g.clearInterval = (h: unknown) => {
    live.delete(h);
    return ci(h);
  };
  try {
    const value = fn();
    return { value, timers: live.size };
  } finally {
    names.forEach((n, i) => {
      g[n] = saved[i] as (...args: unknown[]) => unknown;
    });
  }
}

async function idleCpu(ms: number): Promise<number> {
  gc();
  await sleep(50); // let concurrent GC and finalizers settle before sampling
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await sleep(ms);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1_000 / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** One maker per library, and per major of cockatiel and opossum loaded (see bench/peers.ts). */
function makers(peers: Peers): readonly { library: string; make: () => { dispose: () => void } }[] {
  return [
    {
      library: 'bulwark',
      make: () => {
        const cb = circuitBreaker({ window: { kind: 'count', size: 100 } });
        return { dispose: () => void cb };
      },
    },
    ...peers.cockatiel.map(({ label, lib: c }) => ({
      library: label,
      make: () => {
        const cb = c.circuitBreaker(c.handleAll, {
          halfOpenAfter: 10_000,
          breaker: new c.CountBreaker({ threshold: 0.5, size: 100 }),
        });
        return { dispose: () => void cb };
      },
    })),
    ...peers.opossum.map(({ label, lib: CircuitBreaker }) => ({
      library: label,
      make: () => {
        const cb = new CircuitBreaker(async () => 1);
        return { dispose: () => cb.shutdown() };
      },
    })),
  ];
}

function allocate(
  make: () => { dispose: () => void },
  count: number,
): { alive: { dispose: () => void }[]; heap: number; timers: number } {
  gc();
  const before = heapUsed();
  const { value: alive, timers } = countTimers(() => Array.from({ length: count }, make));
  gc();
  return { alive, heap: heapUsed() - before, timers };
}

export async function breakersSuite(s: Settings, step: string, peers: Peers): Promise<BreakersRow[]> {
  const rows: BreakersRow[] = [];
  progress(`${step} many breakers: idle baseline`);
  const baseline = await idleCpu(s.idleMs);
  for (const m of makers(peers)) {
    progress(`${step} many breakers: ${m.library}, heap per breaker`);
    const probe = allocate(m.make, 10_000);
    const perBreaker = probe.heap / 10_000;
    for (const b of probe.alive) b.dispose();
    for (const count of s.breakerCounts) {
      progress(`${step} many breakers: ${m.library} x ${count.toLocaleString('en-US')}`);
      const { alive, heap, timers } = allocate(m.make, count);
      const idle = await idleCpu(s.idleMs);
      for (const b of alive) b.dispose();
      rows.push({
        library: m.library,
        count,
        bytesPerBreaker: perBreaker,
        heapBytes: heap,
        idleCpuMsPerSec: idle - baseline,
        timers,
      });
    }
  }
  return rows;
}
