/** Suite 4: what observing costs: bulwark's pipeline with no listener, one listener, a diagnostics_channel subscriber. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { bulkhead, channelName, circuitBreaker, pipeline, retry, timeout } from '../../src/index.js';
import { median, nsPerCall, progress, roundOrder, type Settings } from '../harness.js';

export interface EventsRow {
  readonly case: string;
  readonly ns: number;
  readonly overNoListenerNs: number;
}

const op = async () => 1;
const make = () => pipeline(retry(), circuitBreaker(), timeout(60_000), bulkhead({ limit: 1_000 }));

export async function eventsSuite(s: Settings, step: string): Promise<EventsRow[]> {
  const quiet = make();
  const listened = make();
  let count = 0;
  listened.on('execution.completed', () => {
    count++;
  });
  const channelled = make();
  const onMessage = () => {
    count++;
  };
  const cases = [
    { name: 'no listener', call: () => quiet.execute(op) },
    { name: "one policy.on('execution.completed') listener", call: () => listened.execute(op) },
    {
      name: 'diagnostics_channel subscriber (bulwark:execution:completed)',
      call: async () => {
        return channelled.execute(op);
      },
      channel: true,
    },
  ];
  const ns = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const over = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let r = 0; r < s.rounds; r++) {
    const round = new Map<string, number>();
    for (const [ci, c] of roundOrder(cases, r).entries()) {
      progress(`${step} events: round ${r + 1}/${s.rounds}, ${ci + 1}/${cases.length} ${c.name}`);
      // The channel is process-wide, so it is subscribed only while its own case runs.
      if (c.channel) subscribe(channelName('execution.completed'), onMessage);
      try {
        round.set(c.name, (await nsPerCall(c.call, s)).p50);
      } finally {
        if (c.channel) unsubscribe(channelName('execution.completed'), onMessage);
      }
    }
    const base = round.get('no listener') as number;
    for (const [k, v] of round) {
      ns.get(k)?.push(v);
      over.get(k)?.push(v - base);
    }
  }
  if (count === 0) throw new Error('events suite: no event reached a listener');
  return cases.map((c) => ({
    case: c.name,
    ns: median(ns.get(c.name) as number[]),
    overNoListenerNs: median(over.get(c.name) as number[]),
  }));
}
