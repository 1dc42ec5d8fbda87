/** Suite 5: memory and idle CPU of many breakers (bulwark keeps no timer per breaker). */
import { CountBreaker, circuitBreaker as cCircuitBreaker, handleAll } from 'cockatiel';
import CircuitBreaker from 'opossum';
import { circuitBreaker } from '../../src/index.js';
import { gc, heapUsed, progress, type Settings } from '../harness.js';

export interface BreakersRow {
  readonly library: string;
  readonly count: number;
  readonly bytesPerBreaker: number;
  /** CPU time the process used per second of idling with the breakers alive, in ms. */
  readonly idleCpuMsPerSec: number;
  /** Timers the breakers keep (active Timeout handles over the baseline). */
  readonly timers: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

const MAKERS: readonly { library: string; make: () => { dispose: () => void } }[] = [
  {
    library: 'bulwark',
    make: () => {
      const cb = circuitBreaker({ window: { kind: 'count', size: 100 } });
      return { dispose: () => void cb };
    },
  },
  {
    library: 'cockatiel',
    make: () => {
      const cb = cCircuitBreaker(handleAll, {
        halfOpenAfter: 10_000,
        breaker: new CountBreaker({ threshold: 0.5, size: 100 }),
      });
      return { dispose: () => void cb };
    },
  },
  {
    library: 'opossum',
    make: () => {
      const cb = new CircuitBreaker(async () => 1);
      return { dispose: () => cb.shutdown() };
    },
  },
];

export async function breakersSuite(s: Settings, step: string): Promise<BreakersRow[]> {
  const rows: BreakersRow[] = [];
  for (const m of MAKERS) {
    for (const count of s.breakerCounts) {
      progress(`${step} many breakers: ${m.library} x ${count.toLocaleString('en-US')}`);
      gc();
      const timersBefore = timeouts();
      const before = heapUsed();
      const alive: { dispose: () => void }[] = [];
      for (let i = 0; i < count; i++) alive.push(m.make());
      gc();
      const bytes = (heapUsed() - before) / count;
      const timers = timeouts() - timersBefore;
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await sleep(s.idleMs);
      const cpu = process.cpuUsage(cpu0);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      for (const b of alive) b.dispose();
      rows.push({
        library: m.library,
        count,
        bytesPerBreaker: bytes,
        idleCpuMsPerSec: (cpu.user + cpu.system) / 1_000 / seconds,
        timers,
      });
    }
  }
  return rows;
}
