/**
 * Runs the Redis shared-state suite alone (until the bench runner has a Redis table of its own):
 * `npx esbuild bench/redis-shared.ts --bundle --platform=node --format=esm --target=node20 --packages=external
 * --outfile=bench/.out/redis-shared.mjs && node --expose-gc bench/.out/redis-shared.mjs [--quick]`.
 * Prints a table and writes bench/results/redis-shared.tmp.json (untracked).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { endProgress, fmt, settings, table } from './harness.js';
import { redisSharedSuite } from './suites/redis-shared.js';

const s = settings(process.argv.includes('--quick'));
const rows = await redisSharedSuite(s);
endProgress();
const pct = (v: number) => `${(v * 100).toPrecision(2)} %`;
console.log(
  table(
    ['policy', 'client', 'callers', 'calls/s', 'added p50', 'added p99', 'round trips/call'],
    rows.map((r) => [
      r.policy,
      r.client,
      String(r.concurrency),
      fmt.int(r.callsPerSec),
      fmt.ms(r.addedP50Ms),
      fmt.ms(r.addedP99Ms),
      r.policy === 'concurrency limit' ? r.roundTripsPerCall.toFixed(2) : pct(r.roundTripsPerCall),
    ]),
  ),
);
// The bundle runs from bench/.out/: the results go to bench/results/.
const dir = new URL('../results/', import.meta.url);
mkdirSync(dir, { recursive: true });
const file = new URL('redis-shared.tmp.json', dir);
writeFileSync(file, `${JSON.stringify({ node: process.version, rows }, null, 2)}\n`);
