import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeys, uniquePrefix } from './harness.js';

/**
 * Four processes share one limit of 100 calls per second on the real Redis, two on ioredis and two on node-redis,
 * one with its clock 5 s ahead and one 5 s behind. Each keeps calls waiting in the limiter's queue for 3 s; the
 * calls that start within those 3 s are counted (by the machine's wall clock, which is also Redis's `TIME`).
 * Loads dist/: `npm run build` first (`npm test` does).
 */
const CHILD = fileURLToPath(new URL('./fixtures/fleet-child.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../../../dist/redis.js', import.meta.url));
const prefix = uniquePrefix('fleet');
afterAll(() => deleteKeys(prefix));

/**
 * The fewest calls each process must start in the window: proof that it competed. Why not near a fair share (75): the
 * limit is exact for the fleet, not fair between processes (whoever asks Redis first when a token frees gets it), and
 * on a loaded 2-core machine a process of the four, starved of CPU by the test run around it, started 20 of 300. A
 * process whose windows or clock were wrong would start none (or push the total past 303).
 */
const MIN_SHARE = 5;

interface ChildReport {
  starts: number[];
  rejected: number;
  fallbacks: number;
}

interface Child {
  ready: Promise<void>;
  start(startAt: number): void;
  report: Promise<ChildReport>;
}

function runChild(args: Record<string, unknown>): Child {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('close', (code) => reject(new Error(`fleet child exited with ${code} before it was ready`)));
  });
  const report = new Promise<ChildReport>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`fleet child exited with ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1) as string) as ChildReport);
    });
  });
  return { ready, report, start: (startAt) => child.send({ startAt }) };
}

async function fleet(name: string, options: Record<string, unknown>, align: number) {
  const durationMs = 3_000;
  const setups = [
    { client: 'ioredis', skewMs: 5_000 },
    { client: 'node-redis', skewMs: -5_000 },
    { client: 'ioredis', skewMs: 0 },
    { client: 'node-redis', skewMs: 0 },
  ];
  const children = setups.map((s) => runChild({ ...s, prefix, name, options, durationMs }));
  await Promise.all(children.map((c) => c.ready));
  // Every process is loaded and connected: start on a boundary of `align` ms of the wall clock (a window's
  // segment: Redis counts windows on the same clock), a little ahead so that each has its message by then.
  const startAt = Math.ceil((Date.now() + 300) / align) * align;
  for (const c of children) c.start(startAt);
  const reports = await Promise.all(children.map((c) => c.report));
  const inWindow = reports.map((r) => r.starts.filter((t) => t >= startAt && t < startAt + durationMs).length);
  // FLEET_LOG=1 prints what each process started in the window (the figures of the docs).
  if (process.env.FLEET_LOG) console.log(name, inWindow);
  return { reports, inWindow, total: inWindow.reduce((a, b) => a + b, 0) };
}

describe('a rate limit shared by 4 processes on Redis', () => {
  it('dist/ is built (npm run build)', () => {
    expect(existsSync(DIST), 'run `npm run build` first: this test loads dist/redis.js in child processes').toBe(true);
  });

  it('token bucket, 100 per second (burst 1): 300 calls start in 3 s, whatever the processes clocks say', async () => {
    const { reports, inWindow, total } = await fleet('tb', { rate: 100, burst: 1 }, 10);
    // Within 1% of 300, the fleet together; every process got a share (they all competed) and none fell back.
    expect(total).toBeGreaterThanOrEqual(297);
    expect(total).toBeLessThanOrEqual(303);
    for (const n of inWindow) expect(n).toBeGreaterThanOrEqual(MIN_SHARE);
    for (const r of reports) expect(r.fallbacks).toBe(0);
  }, 30_000);

  it('sliding window, 100 per 1 s in 10 segments: 300 calls start in 3 s', async () => {
    const { reports, inWindow, total } = await fleet(
      'sw',
      { algorithm: 'sliding-window', limit: 100, windowMs: 1_000, segments: 10 },
      1_000,
    );
    expect(total).toBeGreaterThanOrEqual(297);
    expect(total).toBeLessThanOrEqual(303);
    for (const n of inWindow) expect(n).toBeGreaterThanOrEqual(MIN_SHARE);
    for (const r of reports) expect(r.fallbacks).toBe(0);
  }, 30_000);
});
