import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { fastConstructors, keptShapes } from '../../src/core/shapes.js';
import '../../src/index.js';

const execFileP = promisify(execFile);
const DIST = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const PROBE = fileURLToPath(new URL('../fixtures/deopt-probe.mjs', import.meta.url));

/** Runs the probe under --trace-deopt and returns what V8 deoptimised after the probe's warm-up, by function. */
function deoptsAfterWarmUp(): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--trace-deopt', PROBE, DIST, '10', '30'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0 || !/^done$/m.test(out)) {
        reject(new Error(`the probe failed (exit ${code}):\n${err}\n${out.slice(-2_000)}`));
        return;
      }
      const after = out.slice(out.search(/^WARM$/m));
      const counts = new Map<string, number>();
      for (const line of after.split('\n')) {
        if (!line.includes('marking dependent code') && !line.includes('[bailout')) continue;
        const name = /<(?:SharedFunctionInfo|JSFunction) ([^ >]*)/.exec(line)?.[1] ?? '?';
        if (name.startsWith('probe_')) continue; // the probe's own loop
        counts.set(name, (counts.get(name) ?? 0) + 1);
      }
      resolve(counts);
    });
  });
}

describe('hidden classes kept across full GCs', () => {
  it('keeps one instance of every class bulwark allocates per call', async () => {
    await import('../../src/integrations/grpc/index.js');
    const names = new Set(keptShapes().map((o) => o.constructor.name));
    for (const name of [
      'ExecutionContext',
      'CallExtras',
      'Orphan',
      'SignalFanout',
      'Properties',
      'Sleep',
      'TimeoutAttempt',
      'Waiter',
      'TimedWaiter',
      'HedgeCall',
      'HedgeAttempt',
      'PromiseReporter',
      'CircuitOpenError',
      'BulkheadRejectedError',
      'Error',
      'GrpcCall',
      'GrpcAttempt',
    ]) {
      expect(names, name).toContain(name);
    }
  });

  it('puts the constructor of every per-call subclass in fast mode (keepNames makes them dictionary maps)', async () => {
    await import('../../src/integrations/undici/index.js');
    await import('../../src/integrations/grpc/index.js');
    await import('../../src/integrations/messaging/index.js');
    const fast = fastConstructors();
    for (const name of ['HedgeCall', 'HedgeAttempt', 'TimedWaiter', 'GrpcCall', 'MessageRun', 'HttpCall']) {
      expect(fast, name).toContain(name);
    }
  });

  it('survives the bundler: the built package keeps them too', async () => {
    expect(existsSync(DIST), `${DIST} exists (npm test builds it first)`).toBe(true);
    // Tree shaking once removed a module-level array nobody read, and every keepShape() call with it.
    const { stdout } = await execFileP(process.execPath, [
      '--input-type=module',
      '--eval',
      `await import(${JSON.stringify(DIST)});
       const kept = globalThis[Symbol.for('bulwark.keptShapes.v1')] ?? [];
       console.log(JSON.stringify(kept.map((o) => o.constructor.name)));`,
    ]);
    const names = JSON.parse(stdout) as string[];
    expect(names).toEqual(expect.arrayContaining(['ExecutionContext', 'TimeoutAttempt', 'Waiter', 'CircuitOpenError']));
  });

  it('under the undici interceptor and a hedge, V8 keeps every optimised compile of bulwark code', async () => {
    expect(existsSync(DIST), `${DIST} exists (npm test builds it first)`).toBe(true);
    const undici = fileURLToPath(new URL('../../dist/undici.js', import.meta.url));
    // A dispatcher that answers every request on the next turn; the four-policy pipeline runs fused. With esbuild's
    // keepNames (a static block redefining every class's name: a dictionary-mode constructor map), TurboFan compiled
    // a derived per-call class's constructor (FusedCall, when it extended CancelScope) again every few thousand
    // requests and dropped it ("aborted optimizing ... dependency change"). A hedge's call classes extend CancelScope.
    const { stdout } = await execFileP(
      process.execPath,
      [
        '--single-threaded',
        '--trace-opt',
        '--input-type=module',
        '--eval',
        `const b = await import(${JSON.stringify(DIST)});
       const { interceptor } = await import(${JSON.stringify(undici)});
       const policy = b.pipeline(b.retry({ maxAttempts: 3 }), b.circuitBreaker({ window: { kind: 'count', size: 100 } }),
         b.timeout(60000), b.bulkhead({ limit: 1000, queue: 1000 }));
       const body = Buffer.from('ok');
       const dispatch = interceptor({ policy })((opts, h) => {
         setImmediate(() => {
           const c = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
           h.onRequestStart(c, {});
           h.onResponseStart(c, 200, {}, 'OK');
           h.onResponseData(c, body);
           h.onResponseEnd(c, {});
         });
         return true;
       });
       for (let i = 0; i < 20000; i++) {
         await new Promise((resolve) => dispatch({ origin: 'http://127.0.0.1', path: '/', method: 'GET' }, {
           onRequestStart() {}, onResponseStart() {}, onResponseData() {}, onResponseEnd: resolve, onResponseError: resolve,
         }));
       }
       const h = b.hedge({ delayMs: 60000 });
       for (let i = 0; i < 20000; i++) await h.execute(() => new Promise((r) => setImmediate(r)));
       console.log('done');`,
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    expect(stdout).toMatch(/^done$/m);
    const aborted = stdout.split('\n').filter((l) => l.startsWith('[aborted optimizing'));
    expect(aborted).toEqual([]);
  }, 60_000);

  it('no bulwark function is deoptimised after warm-up across 30 batches that each follow a full GC', async () => {
    expect(existsSync(DIST), `${DIST} exists (npm test builds it first)`).toBe(true);
    const counts = await deoptsAfterWarmUp();
    // Why zero: without the kept instances every batch threw away the optimised code of the whole call path
    // (`rootContext`, `_run`, `<instance_members_initializer>`, ...) and ran about 5x slower until re-optimised.
    expect(Object.fromEntries(counts)).toEqual({});
  }, 90_000);
});
