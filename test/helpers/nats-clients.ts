/**
 * The two nats.js lines bulwark/messaging supports, behind one shape, so that the NATS tests run against both:
 * `nats` 2.x (`nc.jetstream()`, `headers` from 'nats') and 3.x (`jetstream(nc)` / `jetstreamManager(nc)` from
 * '@nats-io/jetstream', `connect` and `headers` from '@nats-io/transport-node').
 *
 * The test files are written against the 2.x types; a 3.x object is handed to them under those types. That is a
 * test-only convenience: the 3.x API the tests call (consumers.get, next, fetch, consume, streams.getMessage,
 * info, status, close, drain) behaves the same, and that the public API accepts 3.x objects as they are typed is
 * proven by test/package/messaging-types.test.ts.
 */
import { jetstream as jetstream3, jetstreamManager as jetstreamManager3 } from '@nats-io/jetstream';
import { connect as connect3, headers as headers3 } from '@nats-io/transport-node';
import {
  type ConnectionOptions,
  connect as connect2,
  headers as headers2,
  type JetStreamClient,
  type JetStreamManager,
  type MsgHdrs,
  type NatsConnection,
} from 'nats';
import type { JetStreamConsumption, WrappedHandler } from '../../src/integrations/messaging/index.js';

/** One nats.js client line. */
export interface NatsClient {
  /** `nats 2` or `nats 3`, for test names. */
  readonly name: string;
  connect(options: ConnectionOptions): Promise<NatsConnection>;
  jetstream(nc: NatsConnection): JetStreamClient;
  jetstreamManager(nc: NatsConnection): Promise<JetStreamManager>;
  headers(): MsgHdrs;
}

const v2: NatsClient = {
  name: 'nats 2',
  connect: (options) => connect2(options),
  jetstream: (nc) => nc.jetstream(),
  jetstreamManager: (nc) => nc.jetstreamManager(),
  headers: () => headers2(),
};

// 3.x objects under the 2.x types (see the module comment).
const v3: NatsClient = {
  name: 'nats 3',
  connect: async (options) => (await connect3(options as Parameters<typeof connect3>[0])) as unknown as NatsConnection,
  jetstream: (nc) => jetstream3(nc as unknown as Parameters<typeof jetstream3>[0]) as unknown as JetStreamClient,
  jetstreamManager: async (nc) =>
    (await jetstreamManager3(nc as unknown as Parameters<typeof jetstreamManager3>[0])) as unknown as JetStreamManager,
  headers: () => headers3() as unknown as MsgHdrs,
};

/** Both client lines: `describe.each(NATS_CLIENTS)('$name', (client) => ...)`. */
export const NATS_CLIENTS: readonly NatsClient[] = [v2, v3];

/**
 * What a NATS test started and must stop after it: handlers shut down, consume loops stopped, then streams deleted,
 * in that order. `strict`: a handler's shutdown that rejects fails the test (some suites provoke failed
 * settlements on purpose and pass `false`).
 */
export class NatsResources {
  readonly streams: string[] = [];
  readonly loops: JetStreamConsumption[] = [];
  readonly handlers: WrappedHandler<Uint8Array>[] = [];

  async release(jsm: JetStreamManager, strict: boolean): Promise<void> {
    await Promise.all(
      this.handlers.splice(0).map((h) => (strict ? h.shutdown(500) : h.shutdown(500).catch(() => undefined))),
    );
    await Promise.all(this.loops.splice(0).map((l) => l.stop()));
    for (const s of this.streams.splice(0)) await jsm.streams.delete(s).catch(() => false);
  }
}
