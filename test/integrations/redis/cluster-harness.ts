/**
 * A Redis Cluster of the test's own: three masters (no replicas) started from `redis-server` on free ports of
 * 127.0.0.1, joined with `redis-cli --cluster create`, in a temporary folder. The machine's Redis on 6379 is never
 * touched. The servers are killed and the folder removed by `stop()` (call it from afterAll), by a process exit
 * handler (a worker that exits without running afterAll), and by a watchdog shell that outlives a worker killed
 * with SIGKILL: it polls the worker's pid and kills the servers once the worker is gone. No server outlives its test.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CLUSTER_HOST = '127.0.0.1';

/** The binaries: REDIS_SERVER / REDIS_CLI override them; else the Debian paths, else whatever is on PATH. */
function binary(envName: string, name: string): string | undefined {
  const fromEnv = process.env[envName];
  const candidates = [fromEnv, `/usr/bin/${name}`, `/usr/local/bin/${name}`].filter(
    (c): c is string => c !== undefined && c !== '',
  );
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not this one
    }
  }
  return undefined;
}

export const REDIS_SERVER = binary('REDIS_SERVER', 'redis-server');
export const REDIS_CLI = binary('REDIS_CLI', 'redis-cli');

export interface TestCluster {
  /** The masters' ports, in creation order. */
  readonly ports: readonly number[];
  /** Runs a redis-cli command against the node on `port`; resolves with its stdout. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Kills every server (SIGKILL) and removes the folder. Idempotent. */
  stop(): void;
}

/** Whether `port` can be listened on at 127.0.0.1 now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, CLUSTER_HOST, () => s.close(() => resolve(true)));
  });
}

/**
 * `n` ports P whose cluster bus port (P + 10000) is free too. Why not port 0: redis-server needs its port on the
 * command line, and the bus port is derived from it.
 */
async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let tries = 0; out.length < n && tries < 500; tries++) {
    const p = 20_000 + Math.floor(Math.random() * 20_000);
    if (out.includes(p) || out.includes(p + 10_000) || out.includes(p - 10_000)) continue;
    if ((await isFree(p)) && (await isFree(p + 10_000))) out.push(p);
  }
  if (out.length < n) throw new Error('no free ports for a test Redis Cluster on 127.0.0.1');
  return out;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts a cluster of `masters` nodes and waits until every node says cluster_state:ok. */
export async function startCluster(masters = 3): Promise<TestCluster> {
  const server = REDIS_SERVER;
  const cliBin = REDIS_CLI;
  if (server === undefined || cliBin === undefined) {
    throw new Error(
      'redis-server / redis-cli not found (looked in $REDIS_SERVER/$REDIS_CLI, /usr/bin, /usr/local/bin): the Redis Cluster test needs them',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-cluster-'));
  const children: ChildProcess[] = [];
  const logs = new Map<number, string>();
  let watchdog: ChildProcess | undefined;
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stop);
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    watchdog?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  // A worker that exits without afterAll (an uncaught error, process.exit) still kills its servers.
  process.on('exit', stop);
  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run(cliBin, ['-h', CLUSTER_HOST, '-p', String(port), ...args], { timeout: 10_000 })).stdout;
  try {
    const ports = await freePorts(masters);
    for (const port of ports) {
      const child = spawn(
        server,
        [
          '--port',
          String(port),
          '--bind',
          CLUSTER_HOST,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '5000',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
          '--protected-mode',
          'no',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      logs.set(port, '');
      const keep = (d: Buffer) => logs.set(port, ((logs.get(port) ?? '') + d.toString()).slice(-2_000));
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      child.on('error', (e) => keep(Buffer.from(`\nspawn error: ${String(e)}`)));
      children.push(child);
    }
    // The watchdog: a detached shell that kills the servers (and removes the folder) once this process is gone,
    // whatever way it went (SIGKILL included), and exits by itself when the servers are gone.
    const pids = children.map((c) => c.pid).filter((p): p is number => p !== undefined);
    watchdog = spawn(
      'sh',
      [
        '-c',
        `while kill -0 ${process.pid} 2>/dev/null; do alive=0; for p in ${pids.join(' ')}; do kill -0 $p 2>/dev/null && alive=1; done; [ $alive = 1 ] || exit 0; sleep 1; done; kill -9 ${pids.join(' ')} 2>/dev/null; rm -rf '${dir}'`,
      ],
      { detached: true, stdio: 'ignore' },
    );
    watchdog.unref();
    // Every node answers PING.
    for (const port of ports) {
      for (let i = 0; ; i++) {
        const child = children[ports.indexOf(port)] as ChildProcess;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `redis-server on port ${port} exited (${child.exitCode ?? child.signalCode}):\n${logs.get(port)}`,
          );
        }
        const pong = await cli(port, 'PING').catch(() => '');
        if (pong.trim() === 'PONG') break;
        if (i === 100) throw new Error(`redis-server on port ${port} does not answer PING:\n${logs.get(port)}`);
        await sleep(50);
      }
    }
    await run(
      cliBin,
      ['--cluster', 'create', ...ports.map((p) => `${CLUSTER_HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 30_000 },
    );
    for (const port of ports) {
      for (let i = 0; ; i++) {
        const info = await cli(port, 'CLUSTER', 'INFO').catch(() => '');
        if (/cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(info)) break;
        if (i === 300) throw new Error(`the test cluster is not ok on port ${port} after 15 s:\n${info}`);
        await sleep(50);
      }
    }
    return { ports, cli, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

/** The slot of `key` (CRC16 of its hash tag, mod 16384), as the node on `port` computes it. */
export async function keySlot(cluster: TestCluster, key: string): Promise<number> {
  return Number((await cluster.cli(cluster.ports[0] as number, 'CLUSTER', 'KEYSLOT', key)).trim());
}
