/**
 * vitest globalSetup: holds one JetStream stream of this run's own for the whole run.
 *
 * Why: when an account's last stream is deleted, nats-server removes the account's streams directory, and a stream
 * created at that moment fails with "error creating store for stream" (its mkdir is not recursive; seen once with
 * two suites running at once). NATS tests create and delete streams all the time, in parallel files; with this
 * stream alive, the directory never goes away while the run lasts. If NATS is not answering, this does nothing:
 * the NATS tests themselves fail loudly.
 */
import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';

export default async function setup(): Promise<() => Promise<void>> {
  const name = `BW_ANCHOR_${randomUUID().replaceAll('-', '')}`;
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: '127.0.0.1:4222', timeout: 3_000, maxReconnectAttempts: 0 });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name, subjects: [`bw.anchor.${name}`] });
  } catch {
    await nc?.close().catch(() => undefined);
    return async () => undefined;
  }
  const held = nc;
  return async () => {
    try {
      const jsm = await held.jetstreamManager();
      await jsm.streams.delete(name);
    } finally {
      await held.close();
    }
  };
}
