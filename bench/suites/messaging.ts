/**
 * Suite 8: message handler throughput, bare vs wrapped. In memory (no broker): each message is a Delivery whose
 * ack just counts, so the numbers are the wrapper's own cost per message, in the same round as the bare handler.
 *
 * The bare contender is what a user writes by hand around the same handler: try/catch, ack on success, a delayed
 * redelivery or a dead letter on failure. Both see the same deliveries, do the same settlement work (one ack per
 * message, awaited) and run 64 at a time, like a consumer with prefetch 64. Each batch starts after a full GC.
 */
import { circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { type Delivery, PermanentError, wrapHandler } from '../../src/integrations/messaging/index.js';
import { gc, median, progress, roundOrder, type Settings } from '../harness.js';

export interface MessagingRow {
  readonly contender: string;
  readonly messagesPerSec: number;
  readonly ratio: number;
}

/** The contender every ratio is taken against. */
export const BARE_HANDLER = 'bare handler (try/catch, ack or retry/dead-letter)';
/** The contender of the `wrapHandler` target (>= 0.5x the bare handler). */
export const WRAPPED_NO_POLICY = 'wrapHandler, no policy';

const N_QUICK = 50_000;
const N_FULL = 300_000;
/** Many short rounds in alternating order: machine drift then hits every contender alike. */
const ROUNDS_QUICK = 5;
const ROUNDS_FULL = 11;
const IN_FLIGHT = 64;

interface Counter {
  acks: number;
  others: number;
}

function delivery(body: number, counter: Counter): Delivery<number> {
  return {
    body,
    attempt: 1,
    headers: {},
    ack: () => {
      counter.acks++;
    },
    retryLater: () => {
      counter.others++;
    },
    deadLetter: () => {
      counter.others++;
    },
    release: () => {
      counter.others++;
    },
  };
}

/**
 * One delivery alive for the whole run. Why: when a full GC finds none alive, V8 drops the optimised code that
 * embeds the deliveries' map, in both contenders alike; the deliveries are the adapter's objects, not theirs.
 */
const KEEP_DELIVERY_MAP = delivery(-1, { acks: 0, others: 0 });

/** Runs `n` deliveries through `run`, `IN_FLIGHT` at a time; returns messages per second. */
async function load(run: (d: Delivery<number>) => Promise<unknown>, n: number, name: string): Promise<number> {
  const counter: Counter = { acks: 0, others: 0 };
  let next = 0;
  // A full GC first: the previous contender's garbage is not collected on this one's time, and every contender
  // starts from the state a consumer is in after a full GC (where V8 may drop optimised code whose maps died).
  gc();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < n) await run(delivery(next++, counter));
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (counter.acks !== n || counter.others !== 0) {
    throw new Error(`messaging suite: ${name} acked ${counter.acks} of ${n} (${counter.others} settled otherwise)`);
  }
  if (KEEP_DELIVERY_MAP.body !== -1) throw new Error('messaging suite: the kept delivery changed');
  return n / seconds;
}

export async function messagingSuite(s: Settings, step: string): Promise<MessagingRow[]> {
  const n = s.quick ? N_QUICK : N_FULL;
  const rounds = s.quick ? ROUNDS_QUICK : ROUNDS_FULL;
  const handler = async (_body: number) => {};
  const wrappedBare = wrapHandler(handler);
  const wrappedFull = wrapHandler(handler, { policy: pipeline(retry(), circuitBreaker(), timeout(60_000)) });
  const contenders = [
    {
      name: BARE_HANDLER,
      // What a consumer without bulwark does: the same settlement work wrapHandler does on success, and a
      // (never taken here) failure branch as a user would write it.
      run: async (d: Delivery<number>) => {
        try {
          await handler(d.body);
        } catch (error) {
          const permanent = error instanceof PermanentError;
          if (permanent || d.attempt >= 5) {
            await d.deadLetter({ reason: permanent ? 'permanent' : 'exhausted', error, attempts: d.attempt });
          } else await d.retryLater(1_000 * 2 ** (d.attempt - 1), error);
          return;
        }
        await d.ack();
      },
    },
    { name: WRAPPED_NO_POLICY, run: (d: Delivery<number>) => wrappedBare(d) },
    { name: 'wrapHandler, pipeline(retry, breaker, timeout)', run: (d: Delivery<number>) => wrappedFull(d) },
  ];
  // Warm-up, not recorded: every contender once, so the first measured round does not time the JIT.
  for (const c of contenders) await load(c.run, n / 5, c.name);
  const rates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const ratios = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    const round = new Map<string, number>();
    for (const [i, c] of roundOrder(contenders, r).entries()) {
      progress(`${step} messaging: round ${r + 1}/${rounds}, ${i + 1}/${contenders.length} ${c.name}`);
      round.set(c.name, await load(c.run, n, c.name));
    }
    const bare = round.get(BARE_HANDLER) as number;
    for (const [k, v] of round) {
      rates.get(k)?.push(v);
      ratios.get(k)?.push(v / bare);
    }
  }
  return contenders.map((c) => ({
    contender: c.name,
    messagesPerSec: median(rates.get(c.name) as number[]),
    ratio: median(ratios.get(c.name) as number[]),
  }));
}
