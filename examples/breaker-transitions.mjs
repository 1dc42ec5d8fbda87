// Prints a circuit breaker's transitions as node:diagnostics_channel sees them.
//
//   npm run build && node examples/breaker-transitions.mjs
//
// The breaker opens after 3 failures in a row, admits a probe 200 ms later, and closes when the probe succeeds.
// Real timers; the script exits by itself in about 250 ms.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { channelName, circuitBreaker } from '../dist/index.js';

const started = performance.now();
// Wall-clock time (UTC) and the time since start.
const stamp = () =>
  `${new Date().toISOString().slice(11)} +${String(Math.round(performance.now() - started)).padStart(3)} ms`;

const handlers = {
  'circuit.open': (e) => `opened from ${e.from} after ${e.failureRate} failures in a row, for ${e.breakDurationMs} ms`,
  'circuit.half_open': () => 'half-open, admitting a probe',
  'circuit.closed': (e) => `closed from ${e.from}`,
};

// One subscriber per channel. Node rethrows what a subscriber throws on the next tick, as an uncaught
// exception, so each handler catches its own errors.
const subscriptions = Object.entries(handlers).map(([type, describe]) => {
  const name = channelName(type);
  const onMessage = (e) => {
    try {
      console.log(`${stamp()}  ${name.padEnd(27)} ${e.policy} (${e.operation}) ${describe(e)}`);
    } catch (error) {
      console.error('breaker-transitions: subscriber failed', error);
    }
  };
  subscribe(name, onMessage);
  return () => unsubscribe(name, onMessage);
});

const inventory = circuitBreaker({
  name: 'inventory',
  window: { kind: 'consecutive', threshold: 3 },
  halfOpenAfterMs: 200,
});
const options = { operation: 'GET /stock/:sku' };
const failing = () => Promise.reject(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' }));
const working = () => Promise.resolve({ sku: 'A-100', available: 7 });

for (let i = 1; i <= 3; i++) {
  await inventory.execute(failing, options).catch((e) => console.log(`${stamp()}  call ${i} failed: ${e.code}`));
}
await inventory
  .execute(working, options)
  .catch((e) => console.log(`${stamp()}  call 4 rejected: ${e.name}, retry after ${Math.round(e.retryAfterMs)} ms`));

await sleep(250);
console.log(`${stamp()}  state is now ${inventory.state}; the next call is the probe`);
const stock = await inventory.execute(working, options);
console.log(`${stamp()}  call 5 succeeded: ${stock.available} in stock; state ${inventory.state}`);

for (const off of subscriptions) off();
