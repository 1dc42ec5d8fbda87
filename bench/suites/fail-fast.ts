/** Suite 3: the cost of a rejected call when the breaker is open or the bulkhead is full, over a bare throw. */
import { bulkhead, circuitBreaker } from '../../src/index.js';
import { median, nsPerCall, progress, roundOrder, type Settings } from '../harness.js';
import type { Cockatiel, Opossum, Peer, Peers } from '../peers.js';

export interface FailFastRow {
  readonly case: string;
  readonly library: string;
  readonly ns: number;
  /** Median over rounds of (case - bare throw) in the same round. */
  readonly overBareNs: number;
}

const PREALLOCATED = new Error('preallocated');
const never = () => new Promise<never>(() => undefined);

interface Case {
  readonly name: string;
  readonly library: string;
  readonly setup: () => Promise<() => Promise<unknown>>;
}

const swallow = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a rejection');
    },
    () => undefined,
  );

function cockatielCases({ label, lib: c }: Peer<Cockatiel>): Case[] {
  return [
    {
      name: `${label} circuitBreaker, open`,
      library: 'cockatiel',
      setup: async () => {
        const cb = c.circuitBreaker(c.handleAll, { halfOpenAfter: 3_600_000, breaker: new c.ConsecutiveBreaker(1) });
        await cb.execute(() => Promise.reject(PREALLOCATED)).catch(() => undefined);
        const op = async () => 1;
        const call = () => cb.execute(op);
        await call().catch((e: unknown) => {
          if (!(e instanceof c.BrokenCircuitError)) throw e;
        });
        return () => swallow(call());
      },
    },
    {
      name: `${label} bulkhead, full`,
      library: 'cockatiel',
      setup: async () => {
        const b = c.bulkhead(1, 0);
        void b.execute(never);
        const op = async () => 1;
        await b.execute(op).catch((e: unknown) => {
          if (!(e instanceof c.BulkheadRejectedError)) throw e;
        });
        return () => swallow(b.execute(op));
      },
    },
  ];
}

function opossumCase({ label, lib: CircuitBreaker }: Peer<Opossum>): Case {
  return {
    name: `${label} fire, open`,
    library: 'opossum',
    setup: async () => {
      const breaker = new CircuitBreaker(async () => 1, { resetTimeout: 3_600_000 });
      breaker.open();
      return () => swallow(breaker.fire());
    },
  };
}

/** The cases: a bare throw first (the baseline), bulwark's, then cockatiel's and opossum's per major loaded. */
const cases = (peers: Peers): readonly Case[] => [
  {
    name: 'bare throw of a preallocated error',
    library: 'baseline',
    setup: async () => {
      const op = async () => {
        throw PREALLOCATED;
      };
      return () => swallow(op());
    },
  },
  {
    name: 'bulwark circuitBreaker, open',
    library: 'bulwark',
    setup: async () => {
      const cb = circuitBreaker({ window: { kind: 'consecutive', threshold: 1 }, halfOpenAfterMs: 3_600_000 });
      await cb.execute(() => Promise.reject(PREALLOCATED)).catch(() => undefined);
      const op = async () => 1;
      return () => swallow(cb.execute(op));
    },
  },
  {
    name: 'bulwark bulkhead, full',
    library: 'bulwark',
    setup: async () => {
      const b = bulkhead({ limit: 1 });
      void b.execute(never);
      const op = async () => 1;
      return () => swallow(b.execute(op));
    },
  },
  ...peers.cockatiel.flatMap(cockatielCases),
  ...peers.opossum.map(opossumCase),
];

export async function failFastSuite(s: Settings, step: string, peers: Peers): Promise<FailFastRow[]> {
  const CASES = cases(peers);
  const calls = new Map<string, () => Promise<unknown>>();
  for (const c of CASES) calls.set(c.name, await c.setup());
  const ns = new Map<string, number[]>(CASES.map((c) => [c.name, []]));
  const over = new Map<string, number[]>(CASES.map((c) => [c.name, []]));
  for (let r = 0; r < s.rounds; r++) {
    const round = new Map<string, number>();
    for (const [ci, c] of roundOrder(CASES, r).entries()) {
      progress(`${step} fail-fast: round ${r + 1}/${s.rounds}, ${ci + 1}/${CASES.length} ${c.name}`);
      round.set(c.name, (await nsPerCall(calls.get(c.name) as () => Promise<unknown>, s)).p50);
    }
    const bare = round.get(CASES[0]?.name as string) as number;
    for (const [k, v] of round) {
      ns.get(k)?.push(v);
      over.get(k)?.push(v - bare);
    }
  }
  return CASES.map((c) => ({
    case: c.name,
    library: c.library,
    ns: median(ns.get(c.name) as number[]),
    overBareNs: median(over.get(c.name) as number[]),
  }));
}
