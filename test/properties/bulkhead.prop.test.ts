import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bulkhead, isBulkheadRejectedError } from '../../src/index.js';
import { FakeClock } from '../../src/testing/index.js';

/** How long an operation runs: fake-clock milliseconds, or a number of microtask turns (0: settles at once). */
type Duration = { readonly kind: 'ms'; readonly n: number } | { readonly kind: 'ticks'; readonly n: number };

interface OpSpec {
  readonly duration: Duration;
  /** Whether the operation rejects (async) or throws (sync, when it takes no time) instead of resolving. */
  readonly fails: boolean;
}

/** Calls submitted together, synchronously, at fake time `at`. */
interface Burst {
  readonly at: number;
  readonly ops: readonly OpSpec[];
}

const duration: fc.Arbitrary<Duration> = fc.oneof(
  fc.record({ kind: fc.constant('ms' as const), n: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ kind: fc.constant('ticks' as const), n: fc.integer({ min: 0, max: 6 }) }),
);
const opSpec: fc.Arbitrary<OpSpec> = fc.record({ duration, fails: fc.boolean() });
const bursts: fc.Arbitrary<Burst[]> = fc.array(
  fc.record({ at: fc.integer({ min: 0, max: 60 }), ops: fc.array(opSpec, { minLength: 1, maxLength: 8 }) }),
  { minLength: 1, maxLength: 10 },
);

/** Waits `n` microtask turns. */
async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

interface Submitted {
  readonly index: number;
  /** What the counters said just before `execute`: 'run' (a free slot, nobody queued), 'queue' or 'reject'. */
  readonly expected: 'run' | 'queue' | 'reject';
  started: boolean;
  /** The op started synchronously inside `execute`. */
  startedSync: boolean;
  settled: boolean;
  rejectedByBulkhead: boolean;
  error: unknown;
}

async function runScenario(limit: number, queue: number, plan: readonly Burst[]): Promise<void> {
  const clock = new FakeClock();
  const policy = bulkhead({ limit, queue, clock });
  const submitted: Submitted[] = [];
  const startOrder: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const violations: string[] = [];

  const check = (where: string): void => {
    if (policy.active > limit) violations.push(`${where}: active ${policy.active} > limit ${limit}`);
    if (policy.queued > queue) violations.push(`${where}: queued ${policy.queued} > queue ${queue}`);
    if (running > policy.active) violations.push(`${where}: ${running} ops running but active is ${policy.active}`);
    if (policy.active < 0 || policy.queued < 0) violations.push(`${where}: negative counters`);
  };

  const submit = (spec: OpSpec): void => {
    const index = submitted.length;
    const expected: Submitted['expected'] =
      policy.active < limit && policy.queued === 0 ? 'run' : policy.queued < queue ? 'queue' : 'reject';
    const s: Submitted = {
      index,
      expected,
      started: false,
      startedSync: false,
      settled: false,
      rejectedByBulkhead: false,
      error: undefined,
    };
    submitted.push(s);
    let inExecute = true;
    const op = (): Promise<number> | number => {
      s.started = true;
      s.startedSync = inExecute;
      startOrder.push(index);
      running++;
      maxRunning = Math.max(maxRunning, running);
      check(`start of op ${index}`);
      const done = (): number => {
        running--;
        if (spec.fails) throw new Error(`op ${index} failed`);
        return index;
      };
      const d = spec.duration;
      if (d.kind === 'ticks' && d.n === 0) return done();
      if (d.kind === 'ticks') return ticks(d.n).then(done);
      return new Promise<void>((resolve) => clock.setTimeout(resolve, d.n)).then(done);
    };
    const p = policy.execute(op);
    inExecute = false;
    check(`after submitting op ${index}`);
    p.then(
      (v) => {
        s.settled = true;
        if (v !== index) violations.push(`op ${index} resolved with ${v}`);
        check(`settle of op ${index}`);
      },
      (e: unknown) => {
        s.settled = true;
        s.error = e;
        s.rejectedByBulkhead = isBulkheadRejectedError(e);
        check(`settle of op ${index}`);
      },
    );
  };

  for (const burst of plan) {
    clock.setTimeout(() => {
      for (const spec of burst.ops) submit(spec);
    }, burst.at);
  }
  await clock.runAll();
  await clock.flush();

  expect(violations).toEqual([]);
  expect(maxRunning).toBeLessThanOrEqual(limit);
  for (const s of submitted) {
    expect(s.settled, `op ${s.index} settled`).toBe(true);
    // Rejected exactly when every slot and every queue place was taken at submission.
    expect(s.rejectedByBulkhead, `op ${s.index} (${s.expected}) rejected by the bulkhead`).toBe(
      s.expected === 'reject',
    );
    expect(s.started, `op ${s.index} (${s.expected}) started`).toBe(s.expected !== 'reject');
    if (s.expected === 'run') expect(s.startedSync, `op ${s.index} started inside execute`).toBe(true);
    if (s.expected === 'queue') expect(s.startedSync, `op ${s.index} waited for a slot`).toBe(false);
    if (s.rejectedByBulkhead) {
      expect((s.error as { reason?: unknown }).reason).toBe('full');
    }
  }
  // FIFO: queued calls start in the order they were submitted (and after every call admitted before them).
  const queuedStarts = startOrder.filter((i) => submitted[i]?.expected === 'queue');
  expect(queuedStarts).toEqual([...queuedStarts].sort((a, b) => a - b));
  // Every admitted call starts in submission order overall: no later call overtakes a queued one.
  expect(startOrder).toEqual([...startOrder].sort((a, b) => a - b));
  expect(policy.active).toBe(0);
  expect(policy.queued).toBe(0);
  expect(policy.available).toBe(limit);
  expect(running).toBe(0);
  expect(clock.pendingTimers).toBe(0);
}

describe('bulkhead properties', () => {
  it('never runs more than limit ops, queues FIFO, rejects only when full, and drains its counters to 0', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 8 }), bursts, (limit, queue, plan) =>
        runScenario(limit, queue, plan),
      ),
      { numRuns: 150 },
    );
  });

  it('holds the same invariants for bursts of microtask-only ops submitted at one instant', async () => {
    const tickOps = fc.array(
      fc.record({
        duration: fc.record({ kind: fc.constant('ticks' as const), n: fc.integer({ min: 0, max: 10 }) }),
        fails: fc.boolean(),
      }),
      { minLength: 1, maxLength: 30 },
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 8 }), tickOps, (limit, queue, ops) =>
        runScenario(limit, queue, [{ at: 0, ops }]),
      ),
      { numRuns: 150 },
    );
  });
});
