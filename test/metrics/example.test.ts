import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('examples/breaker-transitions.mjs (shown in docs/metrics.md)', () => {
  it('prints every transition from its diagnostics channel subscription and exits by itself', async () => {
    const { stdout } = await run(process.execPath, ['examples/breaker-transitions.mjs'], {
      cwd: ROOT,
      timeout: 10_000,
    });
    const channels = stdout
      .split('\n')
      .map((line) => /bulwark:circuit:\w+/.exec(line)?.[0])
      .filter((c) => c !== undefined);
    expect(channels).toEqual(['bulwark:circuit:open', 'bulwark:circuit:half_open', 'bulwark:circuit:closed']);
    expect(stdout).toMatch(/call 4 rejected: CircuitOpenError/);
    expect(stdout).toMatch(/call 5 succeeded/);
  });
});
