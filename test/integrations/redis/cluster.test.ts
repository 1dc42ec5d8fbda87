/**
 * bulwark/redis on a real Redis Cluster (three masters of the test's own, see cluster-harness.ts), through ioredis's
 * `Cluster` and node-redis's `createCluster`: every script declares its keys and one policy's keys (one tenant's,
 * for a per-tenant limit) share one hash tag, so each decision is one script on one node. Checked here: the
 * decisions are right, per-tenant limits really spread over the nodes, no CROSSSLOT / MOVED / NOSCRIPT error
 * reaches a policy (no `store.fallback`), also after a script cache flush and after a slot moved to another node.
 *
 * Without redis-server the suite fails under CI=true (its beforeAll throws); elsewhere it is skipped with a note on
 * stderr.
 */
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  isBulkheadRejectedError,
  isCircuitOpenError,
  isRateLimitedError,
  Properties,
  PropertyKey,
} from '../../../src/index.js';
import {
  type IoredisClient,
  type NodeRedisClient,
  redisBulkhead,
  redisCircuitBreaker,
  redisRateLimit,
} from '../../../src/integrations/redis/index.js';
import { CLUSTER_HOST, REDIS_CLI, REDIS_SERVER, startCluster, type TestCluster } from './cluster-harness.js';
import { sleep, uniquePrefix } from './harness.js';

const available = REDIS_SERVER !== undefined && REDIS_CLI !== undefined;
const CI = process.env.CI === 'true' || process.env.CI === '1';
if (!available && !CI) {
  process.stderr.write(
    '\nredis-server/redis-cli not found: the Redis Cluster tests are skipped (they fail under CI)\n',
  );
}

/**
 * A store timeout far above loopback's: on a loaded machine a slow answer must not turn into a fallback (5 s, as in
 * breaker.test.ts: with 1 s, a test worker stalled for a second by the rest of the suite took the fallback there).
 */
const SLOW_OK = 5_000;
const prefix = uniquePrefix('cluster');
const TENANT = new PropertyKey<string>('tenant');
const TENANTS = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
const withTenant = (t: string) => ({ properties: new Properties().set(TENANT, t) });

let cluster: TestCluster;
/** An ioredis Cluster client of the test's own, to read what the policies wrote. */
let admin: Cluster;

type ClusterClientName = 'ioredis Cluster' | 'node-redis createCluster';
const CLUSTER_CLIENTS: readonly ClusterClientName[] = ['ioredis Cluster', 'node-redis createCluster'];
/** A connected cluster client of either kind, and how to close it. */
interface Connected {
  readonly client: IoredisClient | NodeRedisClient;
  close(): void;
}

async function connectIoredisCluster(): Promise<Cluster> {
  // One root node only: the client must learn the others (and the slots) from the cluster itself.
  const c = new Cluster([{ host: CLUSTER_HOST, port: cluster.ports[0] as number }], { lazyConnect: true });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function connectCluster(name: ClusterClientName): Promise<Connected> {
  if (name === 'ioredis Cluster') {
    const c = await connectIoredisCluster();
    return { client: c, close: () => c.disconnect() };
  }
  const c = createCluster({
    rootNodes: [{ socket: { host: CLUSTER_HOST, port: cluster.ports[0] as number } }],
    defaults: { socket: { reconnectStrategy: () => 20, connectTimeout: 2_000 } },
  });
  c.on('error', () => undefined);
  await c.connect();
  return {
    client: c as unknown as NodeRedisClient,
    close: () => {
      try {
        c.destroy();
      } catch {
        // already closed
      }
    },
  };
}

/** Every key under `prefix` on each master: port -> keys (SCAN on that node only, never KEYS). */
async function keysByNode(under: string): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const port of cluster.ports) {
    const keys = (await cluster.cli(port, '--scan', '--pattern', `${under}*`)).split('\n').filter((k) => k !== '');
    out.set(port, keys);
  }
  return out;
}

/** The master holding `key` now, by asking each one (EXISTS answers MOVED on the others: only the owner says 1). */
async function ownerOf(key: string): Promise<number | undefined> {
  for (const port of cluster.ports) {
    // A MOVED reply may make redis-cli exit non-zero: that node is not the owner either.
    if ((await cluster.cli(port, 'EXISTS', key).catch(() => '')).trim() === '1') return port;
  }
  return undefined;
}

/** The node id of the master on `port`. */
async function nodeId(port: number): Promise<string> {
  return (await cluster.cli(port, 'CLUSTER', 'MYID')).trim();
}

/**
 * Moves `slot` (and its keys) from the master on `from` to the one on `to`, the way a resharding does it
 * (IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE on every master): the clients' slot maps are stale afterwards,
 * so their next command there gets MOVED.
 */
async function moveSlot(slot: number, from: number, to: number): Promise<void> {
  const [fromId, toId] = [await nodeId(from), await nodeId(to)];
  const s = String(slot);
  await cluster.cli(to, 'CLUSTER', 'SETSLOT', s, 'IMPORTING', fromId);
  await cluster.cli(from, 'CLUSTER', 'SETSLOT', s, 'MIGRATING', toId);
  for (;;) {
    const keys = (await cluster.cli(from, 'CLUSTER', 'GETKEYSINSLOT', s, '100')).split('\n').filter((k) => k !== '');
    if (keys.length === 0) break;
    await cluster.cli(from, 'MIGRATE', CLUSTER_HOST, String(to), '', '0', '5000', 'KEYS', ...keys);
  }
  for (const port of cluster.ports) await cluster.cli(port, 'CLUSTER', 'SETSLOT', s, 'NODE', toId);
}

async function decide(l: { execute(op: () => unknown, o?: { properties: Properties }): Promise<unknown> }, t?: string) {
  try {
    await l.execute(() => undefined, t === undefined ? undefined : withTenant(t));
    return 'ok';
  } catch (e) {
    return isRateLimitedError(e) ? e.reason : `other: ${String(e)}`;
  }
}

/** What a call through a breaker finds: 'closed' (it ran) or the state that rejected it. */
const view = (p: { execute(op: () => string): Promise<string> }) =>
  p
    .execute(() => 'ok')
    .then(
      () => 'closed',
      (e: unknown) => (isCircuitOpenError(e) ? e.state : `other: ${String(e)}`),
    );

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!available && !CI)('bulwark/redis on a Redis Cluster', () => {
  beforeAll(async () => {
    cluster = await startCluster(3);
    admin = await connectIoredisCluster();
  }, 60_000);
  afterAll(async () => {
    admin?.disconnect();
    cluster?.stop();
  });

  it('the cluster is three masters, each serving a third of the slots', async () => {
    const info = await cluster.cli(cluster.ports[0] as number, 'CLUSTER', 'INFO');
    expect(info).toMatch(/cluster_state:ok/);
    expect(info).toMatch(/cluster_size:3\b/);
    expect(info).toMatch(/cluster_slots_assigned:16384\b/);
  });

  describe.each(CLUSTER_CLIENTS)('with %s', (clientName) => {
    const tag = clientName.startsWith('ioredis') ? 'io' : 'nr';
    let conn: Connected;
    /** Every store.fallback seen: none may happen on a healthy cluster. */
    const fallbacks: string[] = [];
    const disposables: { dispose(): void }[] = [];
    const watch = <P extends { on(e: 'store.fallback', l: (e: { reason: string; error: unknown }) => void): unknown }>(
      p: P,
    ): P => {
      p.on('store.fallback', (e) => fallbacks.push(`${e.reason}: ${String(e.error)}`));
      return p;
    };
    beforeAll(async () => {
      conn = await connectCluster(clientName);
    });
    afterEach(() => {
      for (const d of disposables.splice(0)) d.dispose();
      expect(fallbacks.splice(0)).toEqual([]);
    });
    afterAll(async () => {
      conn?.close();
    });

    const limiter = (options: Record<string, unknown>) => {
      const l = watch(
        redisRateLimit({
          client: conn.client,
          keyPrefix: prefix,
          storeTimeoutMs: SLOW_OK,
          onStoreError: 'fail-closed',
          key: (ctx: { readonly properties: Properties }) => ctx.properties.get(TENANT) ?? '',
          ...options,
        } as never),
      );
      disposables.push(l);
      return l;
    };

    it.each([
      ['token bucket', { rate: 1, periodMs: 3_600_000, burst: 2 }, 2],
      ['sliding window', { algorithm: 'sliding-window', limit: 3, windowMs: 3_600_000, segments: 6 }, 3],
    ] as const)(
      'redisRateLimit %s: a limit per tenant, the tenants spread over the nodes',
      async (kind, options, allowed) => {
        const name = `rl-${kind.replace(' ', '-')}-${tag}`;
        const l = limiter({ name, ...options });
        for (const t of TENANTS) {
          const got: string[] = [];
          for (let i = 0; i <= allowed; i++) got.push(await decide(l, t));
          expect(got, t).toEqual([...Array.from({ length: allowed }, () => 'ok'), 'limit']);
        }
        // Each tenant's keys are on one node, and the tenants are on more than one node.
        const byNode = await keysByNode(`${prefix}{${name}:`);
        const nodeOfTenant = new Map<string, number>();
        for (const [port, keys] of byNode) {
          for (const k of keys) {
            const t = /:(tenant-\d+)\}/.exec(k)?.[1] as string;
            expect(nodeOfTenant.get(t) ?? port, `${t}'s keys on one node`).toBe(port);
            nodeOfTenant.set(t, port);
          }
        }
        expect([...nodeOfTenant.keys()].sort()).toEqual([...TENANTS].sort());
        const nodesUsed = new Set(nodeOfTenant.values());
        expect(nodesUsed.size).toBeGreaterThan(1);
        // Their slots are what CLUSTER KEYSLOT says for the hash tag: one slot per tenant, several slots in all.
        const slots = new Set<string>();
        for (const keys of byNode.values()) {
          for (const k of keys)
            slots.add((await cluster.cli(cluster.ports[0] as number, 'CLUSTER', 'KEYSLOT', k)).trim());
        }
        expect(slots.size).toBe(TENANTS.length);
      },
    );

    it('redisRateLimit: a script cache flushed on every node costs nothing visible (NOSCRIPT, then EVAL)', async () => {
      const l = limiter({ name: `rl-noscript-${tag}`, rate: 1, periodMs: 3_600_000, burst: 2 });
      for (const t of TENANTS) expect(await decide(l, t)).toBe('ok');
      for (const port of cluster.ports) await cluster.cli(port, 'SCRIPT', 'FLUSH');
      for (const t of TENANTS) expect(await decide(l, t)).toBe('ok');
      for (const t of TENANTS) expect(await decide(l, t)).toBe('limit');
    });

    it('redisRateLimit: a tenant whose slot moved to another node keeps its state (MOVED followed, not surfaced)', async () => {
      const name = `rl-moved-${tag}`;
      const l = limiter({ name, rate: 1, periodMs: 3_600_000, burst: 3 });
      const t = 'tenant-moving';
      expect(await decide(l, t)).toBe('ok');
      const key = `${prefix}{${name}:${t}}:tb`;
      const from = await ownerOf(key);
      expect(from).toBeDefined();
      const to = cluster.ports.find((p) => p !== from) as number;
      const slot = Number((await cluster.cli(to, 'CLUSTER', 'KEYSLOT', key)).trim());
      await moveSlot(slot, from as number, to);
      expect(await ownerOf(key)).toBe(to);
      // The client's slot map still says `from`: the script gets MOVED there and the client follows it.
      expect(await decide(l, t)).toBe('ok');
      expect(await decide(l, t)).toBe('ok');
      expect(await decide(l, t)).toBe('limit');
      expect(await ownerOf(key)).toBe(to);
    });

    it('redisBulkhead: one limit shared by two clients, permits given back, no slot errors', async () => {
      const other = await connectCluster(clientName);
      const name = `bh-${tag}`;
      try {
        const options = { keyPrefix: prefix, storeTimeoutMs: SLOW_OK, name, limit: 3 } as const;
        const pa = watch(redisBulkhead({ client: conn.client, ...options }));
        const pb = watch(redisBulkhead({ client: other.client, ...options }));
        disposables.push(pa, pb);
        let release = (): void => undefined;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        const running = [pa.execute(() => gate), pb.execute(() => gate), pa.execute(() => gate)];
        const holders = () => admin.zcard(`${prefix}{${name}}:p`);
        await until(async () => (await holders()) === 3 && pa.active === 2 && pb.active === 1, 'three permits held');
        const rejected = await pb.execute(() => 'never').catch((e: unknown) => e);
        expect(isBulkheadRejectedError(rejected)).toBe(true);
        expect(rejected).toMatchObject({ reason: 'full', active: 3 });
        release();
        await Promise.all(running);
        await until(async () => (await holders()) === 0, 'the permits to be given back');
        expect(await pb.execute(() => 'again')).toBe('again');
      } finally {
        other.close();
      }
    });

    it('redisCircuitBreaker: opens once from two clients’ failures, one probe when half-open, closes', async () => {
      const other = await connectCluster(clientName);
      const name = `cb-${tag}`;
      try {
        const options = {
          keyPrefix: prefix,
          storeTimeoutMs: SLOW_OK,
          name,
          window: { kind: 'consecutive', threshold: 4 },
          halfOpenAfterMs: 300,
          syncIntervalMs: 20,
        } as const;
        const pa = watch(redisCircuitBreaker({ client: conn.client, ...options }));
        const pb = watch(redisCircuitBreaker({ client: other.client, ...options }));
        const state = () => admin.hgetall(`${prefix}{${name}}:s`);
        await pa.sync();
        await pb.sync();
        const fail = () => Promise.reject(new Error('upstream down'));
        for (const p of [pa, pb, pa, pb]) await p.execute(fail).catch(() => undefined);
        await until(async () => (await state()).x === '1', 'the breaker to open');
        await until(async () => (await view(pa)) === 'open' && (await view(pb)) === 'open', 'both to see it open');
        // Half-open after 300 ms: both try at once, exactly one probes (the lease), and its success closes it.
        await sleep(350);
        await pa.sync();
        await pb.sync();
        let probes = 0;
        let letGo = (): void => undefined;
        const held = new Promise<void>((resolve) => {
          letGo = resolve;
        });
        const probe = async () => {
          probes++;
          await held;
          return 'probed';
        };
        // Settled at once: the loser's rejection comes before the probe is let go, and must not go unhandled.
        const tries = Promise.allSettled([pa.execute(probe), pb.execute(probe)]);
        await sleep(100);
        letGo();
        const settled = await tries;
        expect(probes).toBe(1);
        expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
        await until(async () => (await state()).st === '0', 'the breaker to close');
        await until(
          async () => (await view(pa)) === 'closed' && (await view(pb)) === 'closed',
          'both to see it closed',
        );
        // Every key of the breaker is on one node (one hash tag, one slot).
        const byNode = await keysByNode(`${prefix}{${name}}`);
        expect([...byNode.values()].filter((keys) => keys.length > 0)).toHaveLength(1);
      } finally {
        await sleep(100); // the breakers' last exchanges (one per syncIntervalMs after the last call) finish first
        other.close();
      }
    });
  });
});
