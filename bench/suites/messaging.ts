/**
 * Suite 8: message handler throughput, bare vs wrapped. In memory (no broker): each message is a Delivery whose
 * ack just counts, so the numbers are the wrapper's own cost per message, in the same round as the bare handler.
 */
import { circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { type Delivery, wrapHandler } from '../../src/integrations/messaging/index.js';
import { median, progress, roundOrder, type Settings } from '../harness.js';

export interface MessagingRow {
  readonly contender: string;
  readonly messagesPerSec: number;
  readonly ratio: number;
}

const N_QUICK = 50_000;
const N_FULL = 300_000;

function delivery(body: number, counter: { acks: number }): Delivery<number> {
  return {
    body,
    attempt: 1,
    headers: {},
    ack: () => {
      counter.acks++;
    },
    retryLater: () => undefined,
    deadLetter: () => undefined,
    release: () => undefined,
  };
}

export async function messagingSuite(s: Settings, step: string): Promise<MessagingRow[]> {
  const n = s.quick ? N_QUICK : N_FULL;
  const handler = async (_body: number) => {};
  const wrappedBare = wrapHandler(handler);
  const wrappedFull = wrapHandler(handler, { policy: pipeline(retry(), circuitBreaker(), timeout(60_000)) });
  const contenders = [
    {
      name: 'bare handler + ack',
      run: async (d: Delivery<number>) => {
        await handler(d.body);
        await d.ack();
      },
    },
    { name: 'wrapHandler, no policy', run: (d: Delivery<number>) => wrappedBare(d) },
    { name: 'wrapHandler, pipeline(retry, breaker, timeout)', run: (d: Delivery<number>) => wrappedFull(d) },
  ];
  const rates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const ratios = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < s.rounds; r++) {
    const round = new Map<string, number>();
    for (const [i, c] of roundOrder(contenders, r).entries()) {
      progress(`${step} messaging: round ${r + 1}/${s.rounds}, ${i + 1}/${contenders.length} ${c.name}`);
      const counter = { acks: 0 };
      const t0 = process.hrtime.bigint();
      // 64 messages in flight, like a consumer with prefetch 64.
      let next = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < n) await c.run(delivery(next++, counter));
        }),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (counter.acks !== n) throw new Error(`messaging suite: ${c.name} acked ${counter.acks} of ${n}`);
      round.set(c.name, n / seconds);
    }
    const bare = round.get('bare handler + ack') as number;
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
