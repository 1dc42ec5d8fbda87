import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

function runChild(source: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const kill = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not exit within 5 s; stdout so far: ${stdout}`));
    }, 5_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout });
    });
  });
}

describe('a pending timeout or queue wait keeps the process alive until it fires', () => {
  it('an operation stuck on a lost callback still times out (the process does not exit mid-call)', async () => {
    expect(existsSync(dist)).toBe(true);
    const { code, stdout } = await runChild(`
      const { timeout } = await import(${JSON.stringify(dist)});
      try { await timeout(100).execute(() => new Promise(() => {})); console.log('resolved?'); }
      catch (e) { console.log(e.code); }
    `);
    expect(stdout.trim()).toBe('ERR_TIMEOUT');
    expect(code).toBe(0);
  });

  it('a call queued behind a stuck one is rejected at its queueTimeoutMs', async () => {
    const { code, stdout } = await runChild(`
      const { bulkhead } = await import(${JSON.stringify(dist)});
      const b = bulkhead({ limit: 1, queue: 1, queueTimeoutMs: 100 });
      void b.execute(() => new Promise(() => {}));
      try { await b.execute(() => 1); } catch (e) { console.log(e.code, e.reason); }
    `);
    expect(stdout.trim()).toBe('ERR_BULKHEAD_REJECTED queue_timeout');
    expect(code).toBe(0);
  });
});
