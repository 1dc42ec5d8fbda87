import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIST = new URL('../../dist/index.js', import.meta.url);

interface ChildResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Milliseconds between the child printing 'done' and its exit. */
  readonly exitAfterDoneMs: number;
}

/**
 * Runs an ES module source in a fresh `node` and waits for it to print 'done' and then exit by itself. Kills it
 * and rejects when it does not print 'done' within `doneWithinMs`, or does not exit within `exitWithinMs` of it.
 */
function runChild(source: string, { doneWithinMs = 15_000, exitWithinMs = 5_000 } = {}): Promise<ChildResult> {
  return new Promise<ChildResult>((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '--eval', source], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let doneAt: number | undefined;
    let exitTimer: NodeJS.Timeout | undefined;
    const fail = (message: string): void => {
      child.kill('SIGKILL');
      reject(new Error(`${message}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const doneTimer = setTimeout(() => fail(`the child did not print 'done' within ${doneWithinMs} ms`), doneWithinMs);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (doneAt === undefined && /^done\b/m.test(stdout)) {
        doneAt = performance.now();
        clearTimeout(doneTimer);
        exitTimer = setTimeout(
          () => fail(`the child printed 'done' but was still alive ${exitWithinMs} ms later`),
          exitWithinMs,
        );
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (error) => {
      clearTimeout(doneTimer);
      clearTimeout(exitTimer);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(doneTimer);
      clearTimeout(exitTimer);
      if (doneAt === undefined) {
        reject(
          new Error(`the child exited (code ${code}, signal ${signal}) without printing 'done'\n${stdout}\n${stderr}`),
        );
        return;
      }
      resolve({ stdout, stderr, code, signal, exitAfterDoneMs: performance.now() - doneAt });
    });
  });
}

describe('process exit', () => {
  it('dist/ is built (npm test runs tsup first)', () => {
    expect(existsSync(fileURLToPath(DIST)), `${fileURLToPath(DIST)} exists`).toBe(true);
  });

  it('exits by itself after 10,000 executions through retry > breaker > timeout(60s) > bulkhead', async () => {
    const source = `
      import { pipeline, retry, circuitBreaker, timeout, bulkhead } from ${JSON.stringify(DIST.href)};
      const policy = pipeline(retry(), circuitBreaker(), timeout(60_000), bulkhead({ limit: 100 }));
      let sum = 0;
      for (let batch = 0; batch < 100; batch++) {
        const calls = [];
        for (let i = 0; i < 100; i++) calls.push(policy.execute(async () => 1));
        for (const v of await Promise.all(calls)) sum += v;
      }
      console.log('done ' + sum);
    `;
    const r = await runChild(source);
    expect(r.stdout).toContain('done 10000');
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.exitAfterDoneMs).toBeLessThan(5_000);
  });

  it('a rate limiter keeps the process alive for its queued calls only, and exits once the queue is empty', async () => {
    // Nothing but the limiter's one timer holds the loop: the queued calls must still run, then the process exits;
    // a queue emptied by an abort leaves no timer either.
    const source = `
      import { rateLimit } from ${JSON.stringify(DIST.href)};
      const rl = rateLimit({ rate: 50, burst: 1, queue: 10 });
      const t0 = performance.now();
      const ran = await Promise.all([1, 2, 3, 4].map((i) => rl.execute(() => i)));
      const elapsed = performance.now() - t0;
      const ac = new AbortController();
      const aborted = rl.execute(() => 'never', { signal: ac.signal }).catch((e) => e);
      ac.abort('gone');
      console.log('done ' + ran.join(',') + ' ' + (elapsed >= 59) + ' ' + (await aborted));
    `;
    const r = await runChild(source);
    expect(r.stdout).toContain('done 1,2,3,4 true gone');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.exitAfterDoneMs).toBeLessThan(5_000);
  });

  it('exits promptly after hedged calls (a 60 s hedge delay pending for each), with no unhandled rejection from a loser', async () => {
    // Each call queues a 60 s hedge deadline; the process must not wait for it. A hedge that fires leaves a loser
    // that rejects with its HedgeCancelledError after the call settled: reported as an event, never unhandled.
    const source = `
      import { adaptiveLimit, adaptiveThrottle, hedge, injectLatency, pipeline, retry, retryBudget } from ${JSON.stringify(DIST.href)};
      const budget = retryBudget();
      const slow = pipeline(retry({ budget }), adaptiveThrottle(), hedge({ delayMs: 60_000, budget }), adaptiveLimit());
      for (let i = 0; i < 1_000; i++) await slow.execute(async () => i);
      const fast = hedge({ delayMs: 5 });
      let n = 0;
      const late = [];
      fast.on('hedge.late_outcome', (e) => late.push(e.outcome.error.name));
      const v = await fast.execute(({ signal }) => new Promise((resolve, reject) => {
        const me = ++n;
        const t = setTimeout(() => resolve(me), me === 1 ? 200 : 1);
        signal.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); });
      }));
      await new Promise((r) => setTimeout(r, 10));
      const chaos = await injectLatency({ latencyMs: 20, injectionRate: 1 }).execute(() => 'slow');
      console.log('done ' + v + ' ' + late.join(',') + ' ' + chaos + ' ' + budget.callsInFlight);
    `;
    const r = await runChild(source);
    expect(r.stdout).toContain('done 2 HedgeCancelledError slow 0');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.exitAfterDoneMs).toBeLessThan(5_000);
  });

  it('exits promptly after a call timed out around a never-settling promise', async () => {
    // The interval keeps the process alive while the call is pending (a never-settling promise holds no handle);
    // once it is cleared, nothing bulwark left behind may keep the process running.
    const source = `
      import { timeout, isTimeoutError } from ${JSON.stringify(DIST.href)};
      const keepAlive = setInterval(() => {}, 1_000);
      let result;
      try {
        await timeout(50).execute(() => new Promise(() => {}));
        result = 'resolved';
      } catch (e) {
        result = isTimeoutError(e) ? 'timeout' : 'other ' + String(e);
      }
      clearInterval(keepAlive);
      console.log('done ' + result);
    `;
    const r = await runChild(source);
    expect(r.stdout).toContain('done timeout');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.exitAfterDoneMs).toBeLessThan(5_000);
  });

  it('exits promptly after retried attempts timed out under the full pipeline', async () => {
    const source = `
      import { pipeline, retry, circuitBreaker, timeout, bulkhead, constant, isTimeoutError } from ${JSON.stringify(DIST.href)};
      const keepAlive = setInterval(() => {}, 1_000);
      const policy = pipeline(
        retry({ maxAttempts: 2, backoff: constant(10) }),
        circuitBreaker(),
        timeout(50),
        bulkhead({ limit: 1, queue: 1 }),
      );
      let result;
      try {
        await policy.execute(() => new Promise(() => {}));
        result = 'resolved';
      } catch (e) {
        result = isTimeoutError(e) ? 'timeout' : 'other ' + String(e);
      }
      clearInterval(keepAlive);
      console.log('done ' + result);
    `;
    const r = await runChild(source);
    expect(r.stdout).toContain('done timeout');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.exitAfterDoneMs).toBeLessThan(5_000);
  });
});
