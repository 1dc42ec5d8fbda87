import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type ClientName, connectIoredis, deleteKeys, sleep, uniquePrefix } from './harness.js';

/**
 * A concurrency limit and a circuit breaker shared by several processes on the real Redis, half on ioredis and half
 * on node-redis; some of them killed with SIGKILL. Loads dist/: `npm run build` first (`npm test` does).
 */
const CHILD = fileURLToPath(new URL('./fixtures/shared-child.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../../../dist/redis.js', import.meta.url));
const prefix = uniquePrefix('shared-fleet');
afterAll(() => deleteKeys(prefix));

type Answer = Record<string, unknown>;

interface Member {
  proc: ChildProcess;
  ask(command: Record<string, unknown>): Promise<Answer>;
  kill(): Promise<void>;
}

const started: Member[] = [];
afterEach(async () => {
  for (const m of started.splice(0)) {
    if (m.proc.exitCode === null && m.proc.signalCode === null) await m.kill();
  }
});

async function member(client: ClientName, kind: 'bulkhead' | 'breaker', name: string, options: object) {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify({ client, prefix, name, kind, options })], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, (a: Answer) => void>();
  let nextId = 0;
  await new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`child exited with ${code} before it was ready`)));
    proc.on('message', (m: Answer) => {
      if (m.ready) resolve();
      else pending.get(m.id as number)?.(m);
    });
  });
  const m: Member = {
    proc,
    ask(command) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        proc.send({ ...command, id });
      });
    },
    kill: () =>
      new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      }),
  };
  started.push(m);
  return m;
}

const clientOf = (i: number): ClientName => (i % 2 === 0 ? 'ioredis' : 'node-redis');

async function zcard(key: string): Promise<number> {
  const admin = await connectIoredis();
  try {
    return await admin.zcard(key);
  } finally {
    admin.disconnect();
  }
}

describe('a concurrency limit shared by 4 processes', () => {
  it('dist/ is built (npm run build)', () => {
    expect(existsSync(DIST), 'run `npm run build` first: this test loads dist/redis.js in child processes').toBe(true);
  });

  it('a global limit of 10 is never exceeded (holders sampled in Redis), and every process gets permits', async () => {
    const name = 'global-10';
    const options = { limit: 10, queue: 20, queueTimeoutMs: 2_000, pollMaxMs: 20 };
    const fleet = await Promise.all([0, 1, 2, 3].map((i) => member(clientOf(i), 'bulkhead', name, options)));
    const admin = await connectIoredis();
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await admin.zcard(`${prefix}{${name}}:p`));
        await sleep(2);
      }
    })();
    try {
      const reports = await Promise.all(
        fleet.map((m) => m.ask({ op: 'run', durationMs: 2_000, workers: 6, minMs: 2, maxMs: 15 })),
      );
      sampling = false;
      await sampler;
      expect(samples.length).toBeGreaterThan(100);
      expect(Math.max(...samples)).toBeLessThanOrEqual(10);
      // The limit was used: at times all 10 permits were held.
      expect(Math.max(...samples)).toBe(10);
      for (const r of reports) {
        expect(r.calls as number).toBeGreaterThan(20);
        expect(r.fallbacks).toBe(0);
        expect(r.maxActive as number).toBeLessThanOrEqual(10);
      }
    } finally {
      sampling = false;
      await sampler;
      admin.disconnect();
    }
    await sleep(50);
    expect(await zcard(`${prefix}{${name}}:p`)).toBe(0);
  }, 30_000);

  it('a process killed with SIGKILL while holding permits gives them back within the lease', async () => {
    const name = 'killed';
    const leaseMs = 1_000;
    const [victim, other] = await Promise.all([
      member('ioredis', 'bulkhead', name, { limit: 10, leaseMs }),
      member('node-redis', 'bulkhead', name, { limit: 10, leaseMs, queue: 10, queueTimeoutMs: 5_000 }),
    ]);
    await victim.ask({ op: 'hold', n: 6 });
    await other.ask({ op: 'hold', n: 4 });
    // Held past two leases: the holders renew.
    await sleep(2 * leaseMs + 100);
    expect(await zcard(`${prefix}{${name}}:p`)).toBe(10);
    const killedAt = performance.now();
    await victim.kill();
    // The other process's queued call gets one of the dead process's permits once its lease has run out.
    const next = await other.ask({ op: 'call', kind: 'ok' });
    const waited = performance.now() - killedAt;
    expect(next.result).toBe('ok');
    expect(waited).toBeLessThanOrEqual(leaseMs + 300);
    await sleep(leaseMs);
    expect(await zcard(`${prefix}{${name}}:p`)).toBe(4);
  }, 30_000);
});

describe('a circuit breaker shared by 3 processes', () => {
  const breaker = (extra: object = {}) => ({
    window: { kind: 'count', size: 30 },
    minimumCalls: 30,
    failureRate: 0.5,
    halfOpenAfterMs: 300,
    syncIntervalMs: 20,
    ...extra,
  });

  async function openIt(fleet: Member[]): Promise<void> {
    // 10 calls each, 5 of them failures: 15 of 30 fail together; no process alone reaches minimumCalls. Each ends
    // with a failure: as locally, a breaker judges its window when a failure comes in.
    await Promise.all(
      fleet.map(async (m) => {
        for (let i = 0; i < 10; i++) await m.ask({ op: 'call', kind: i % 2 === 1 ? 'fail' : 'ok' });
      }),
    );
    await sleep(60);
  }

  it('opens once from their combined failures; each process learns it', async () => {
    const name = 'opens-once';
    const fleet = await Promise.all([0, 1, 2].map((i) => member(clientOf(i), 'breaker', name, breaker())));
    await openIt(fleet);
    const admin = await connectIoredis();
    try {
      expect(await admin.hget(`${prefix}{${name}}:s`, 'x')).toBe('1');
    } finally {
      admin.disconnect();
    }
    for (const m of fleet) expect((await m.ask({ op: 'call', kind: 'ok' })).result).toBe('open');
    for (const m of fleet) expect((await m.ask({ op: 'stats' })).opened).toBe(1);
  }, 30_000);

  it('half-open: exactly one probe runs in the whole fleet', async () => {
    const name = 'one-probe';
    const fleet = await Promise.all([0, 1, 2].map((i) => member(clientOf(i), 'breaker', name, breaker())));
    await openIt(fleet);
    const before = await Promise.all(fleet.map((m) => m.ask({ op: 'stats' })));
    await sleep(350);
    const answers = await Promise.all(
      fleet.flatMap((m) => [0, 1, 2, 3].map(() => m.ask({ op: 'call', kind: 'ok', ms: 100 }))),
    );
    const after = await Promise.all(fleet.map((m) => m.ask({ op: 'stats' })));
    const ran = after.reduce((n, s, i) => n + (s.ran as number) - ((before[i] as Answer).ran as number), 0);
    expect(ran).toBe(1);
    expect(answers.filter((a) => a.result === 'ok')).toHaveLength(1);
    expect(answers.filter((a) => a.result === 'half_open')).toHaveLength(11);
    await sleep(60);
    for (const m of fleet) expect((await m.ask({ op: 'call', kind: 'ok' })).result).toBe('ok');
  }, 30_000);

  it('a prober killed mid-probe lets another process probe after its lease', async () => {
    const name = 'killed-prober';
    const leaseMs = 600;
    const fleet = await Promise.all(
      [0, 1, 2].map((i) => member(clientOf(i), 'breaker', name, breaker({ halfOpenLeaseMs: leaseMs }))),
    );
    await openIt(fleet);
    await sleep(350);
    const [prober, a, b] = fleet as [Member, Member, Member];
    expect(await prober.ask({ op: 'call', kind: 'hang' })).toMatchObject({ started: true });
    const killedAt = performance.now();
    await prober.kill();
    expect((await a.ask({ op: 'call', kind: 'ok' })).result).toBe('half_open');
    expect((await b.ask({ op: 'call', kind: 'ok' })).result).toBe('half_open');
    // After the lease: one of them probes (and closes it).
    let result: unknown;
    while (performance.now() - killedAt < leaseMs + 500) {
      result = (await a.ask({ op: 'call', kind: 'ok' })).result;
      if (result === 'ok') break;
      await sleep(20);
    }
    expect(result).toBe('ok');
    expect(performance.now() - killedAt).toBeGreaterThanOrEqual(leaseMs - 50);
    await sleep(60);
    expect((await b.ask({ op: 'call', kind: 'ok' })).result).toBe('ok');
  }, 30_000);
});
