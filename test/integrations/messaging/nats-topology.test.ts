import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
  RetentionPolicy,
} from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../../src/index.js';
import {
  consumeJetStream,
  declareJetStreamTopology,
  type JetStreamTopologyOptions,
  PermanentError,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { NATS_CLIENTS, NatsResources } from '../../helpers/nats-clients.js';
import { waitFor } from '../../helpers/wait.js';

// declareJetStreamTopology against the real server on 127.0.0.1:4222 (issue 11 item 16).
let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;

const resources = new NatsResources();
const { streams, loops, handlers } = resources;

afterEach(() => resources.release(jsm, false));

const until = (check: () => boolean | Promise<boolean>, ms = 4_000) =>
  waitFor(check, 'the broker condition', { timeoutMs: ms, intervalMs: 20 });

/** Unique names; the streams are deleted after the test. */
function names() {
  const id = randomUUID().replaceAll('-', '');
  const stream = `BW_${id}`;
  streams.push(stream, `${stream}_DLQ`);
  return { stream, subject: `bw.${id}.work`, subjects: [`bw.${id}.>`] };
}

describe.each(NATS_CLIENTS)('$name', (c) => {
  beforeAll(async () => {
    nc = await c.connect({ servers: '127.0.0.1:4222', timeout: 3_000, maxReconnectAttempts: 0 });
    jsm = await c.jetstreamManager(nc);
    js = c.jetstream(nc);
  });

  afterAll(async () => {
    await nc?.drain();
  });

  describe('declareJetStreamTopology (real NATS)', () => {
    it('creates the work stream, a Limits dead-letter stream and a consumer with safe defaults; idempotent', async () => {
      const { stream, subjects } = names();
      const options: JetStreamTopologyOptions = {
        stream,
        subjects,
        consumer: 'worker',
        maxDeliveries: 5,
        handlerTimeoutMs: 30_000,
      };
      const topology = await declareJetStreamTopology(jsm, options);
      expect(topology).toEqual({
        stream,
        consumer: 'worker',
        deadLetterStream: `${stream}_DLQ`,
        deadLetterSubject: `dlq.${stream}`,
        ackWaitMs: 40_000,
        maxDeliver: -1,
      });
      const work = await jsm.streams.info(stream);
      expect(work.config.subjects).toEqual(subjects);
      expect(work.config.retention).toBe(RetentionPolicy.Limits);
      const dlq = await jsm.streams.info(`${stream}_DLQ`);
      expect(dlq.config.subjects).toEqual([`dlq.${stream}`]);
      expect(dlq.config.retention).toBe(RetentionPolicy.Limits);
      const consumer = await jsm.consumers.info(stream, 'worker');
      expect(consumer.config.ack_policy).toBe(AckPolicy.Explicit);
      expect(consumer.config.ack_wait).toBe(nanos(40_000));
      expect(consumer.config.max_deliver).toBe(-1);
      expect(consumer.config.max_ack_pending).toBe(1_000);
      // Again: nothing changes, nothing fails.
      await expect(declareJetStreamTopology(jsm, options)).resolves.toEqual(topology);
      expect((await jsm.consumers.info(stream, 'worker')).config.ack_wait).toBe(nanos(40_000));
    });

    it("fixes the docs' old consumer (max_deliver equal to maxDeliveries, ack_wait under the handler timeout)", async () => {
      const { stream, subjects } = names();
      await jsm.streams.add({ name: stream, subjects });
      await jsm.consumers.add(stream, {
        durable_name: 'worker',
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(30_000),
        max_deliver: 5,
      });
      await declareJetStreamTopology(jsm, {
        stream,
        subjects,
        consumer: 'worker',
        handlerTimeoutMs: 60_000,
        workingEveryMs: 10_000,
      });
      const consumer = await jsm.consumers.info(stream, 'worker');
      expect(consumer.config.max_deliver).toBe(-1);
      expect(consumer.config.ack_wait).toBe(nanos(30_000)); // max(30 s, 3 heartbeats)
    });

    it('adds missing subjects to an existing work stream, and refuses a consumer whose filter differs', async () => {
      const { stream, subjects } = names();
      await jsm.streams.add({ name: stream, subjects: ['bw.other.subject'] });
      await jsm.consumers.add(stream, {
        durable_name: 'worker',
        ack_policy: AckPolicy.Explicit,
        filter_subject: 'bw.other.subject',
      });
      await expect(declareJetStreamTopology(jsm, { stream, subjects, consumer: 'worker' })).rejects.toThrow(
        /consumer "worker" of stream "BW_\w+" exists with filter subject "bw.other.subject", not null/,
      );
      expect((await jsm.streams.info(stream)).config.subjects).toEqual(['bw.other.subject', ...subjects]);
    });

    it('a dead letter whose publish fails on the last delivery comes back and is stored later (never lost)', async () => {
      const { stream, subject, subjects } = names();
      const options: JetStreamTopologyOptions = {
        stream,
        subjects,
        consumer: 'worker',
        maxDeliveries: 2,
        ackWaitMs: 1_000,
      };
      const topology = await declareJetStreamTopology(jsm, options);
      // The dead-letter stream is missing when the message is given up on: the publish fails (no stream answers).
      await jsm.streams.delete(topology.deadLetterStream);
      const attempts: number[] = [];
      const errors: unknown[] = [];
      const handle = wrapHandler(
        (_body: Uint8Array, ctx) => {
          attempts.push(ctx.delivery.attempt);
          throw new Error('always failing');
        },
        { maxDeliveries: 2, redeliveryDelay: () => 50 },
      );
      handlers.push(handle);
      const loop = consumeJetStream(await js.consumers.get(topology.stream, topology.consumer), handle, {
        deadLetterSubject: topology.deadLetterSubject,
        js,
        onError: (e) => errors.push(e),
      });
      loops.push(loop);
      await js.publish(subject, new TextEncoder().encode('poison'));
      await until(() => errors.length >= 1);
      expect(attempts).toEqual([1, 2]);
      // Back again: the server redelivers it after ack_wait (max_deliver -1), and this time the letter is stored.
      await declareJetStreamTopology(jsm, options);
      await until(async () => (await jsm.streams.info(topology.deadLetterStream)).state.messages === 1, 6_000);
      expect(attempts.length).toBeGreaterThanOrEqual(3);
      const letter = await jsm.streams.getMessage(topology.deadLetterStream, {
        last_by_subj: topology.deadLetterSubject,
      });
      expect(new TextDecoder().decode(letter.data)).toBe('poison');
      expect(letter.header.get('x-bulwark-reason')).toBe('exhausted');
      await until(async () => (await jsm.consumers.info(stream, 'worker')).num_ack_pending === 0);
    });

    it('the dead letters of a consumer set up by it are stored in the dead-letter stream', async () => {
      const { stream, subject, subjects } = names();
      const topology = await declareJetStreamTopology(jsm, { stream, subjects, consumer: 'worker' });
      const handle = wrapHandler(() => {
        throw new PermanentError('bad');
      });
      handlers.push(handle);
      const loop = consumeJetStream(await js.consumers.get(topology.stream, topology.consumer), handle, {
        deadLetterSubject: topology.deadLetterSubject,
        js,
      });
      loops.push(loop);
      await js.publish(subject, new TextEncoder().encode('x'));
      await until(async () => (await jsm.streams.info(topology.deadLetterStream)).state.messages === 1);
      const letter = await jsm.streams.getMessage(topology.deadLetterStream, {
        last_by_subj: topology.deadLetterSubject,
      });
      expect(letter.header.get('x-bulwark-reason')).toBe('permanent');
      expect(letter.header.get('x-bulwark-original-stream')).toBe(stream);
    });
  });

  describe('declareJetStreamTopology: options', () => {
    const base: JetStreamTopologyOptions = { stream: 'ORDERS', subjects: ['orders.>'], consumer: 'worker' };
    /** The InvalidOptionsError thrown for `options` (no server call is made). */
    async function problem(options: unknown): Promise<string> {
      try {
        await declareJetStreamTopology(jsm, options as JetStreamTopologyOptions);
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidOptionsError);
        return (error as Error).message;
      }
      throw new Error('no error');
    }

    it('max_deliver must leave bulwark the decision', async () => {
      expect(await problem({ ...base, maxDeliveries: 5, maxDeliver: 5 })).toMatch(
        /declareJetStreamTopology[\s\S]*maxDeliver: expected -1 \(unlimited\) or an integer > maxDeliveries \(5\)[\s\S]*got 5/,
      );
      expect(await problem({ ...base, maxDeliveries: Number.POSITIVE_INFINITY, maxDeliver: 100 })).toMatch(
        /maxDeliver[\s\S]*-1 \(unlimited\), since maxDeliveries is Infinity/,
      );
      expect(await problem({ ...base, maxDeliver: 0 })).toMatch(/maxDeliver/);
    });

    it('the ack wait must outlast the handler timeout plus a margin, or two heartbeats', async () => {
      expect(await problem({ ...base, handlerTimeoutMs: 30_000, ackWaitMs: 30_000 })).toMatch(
        /ackWaitMs: expected at least handlerTimeoutMs \+ 1000 \(31000 ms\)[\s\S]*got 30000/,
      );
      expect(await problem({ ...base, workingEveryMs: 10_000, ackWaitMs: 15_000 })).toMatch(
        /ackWaitMs[\s\S]*at least 2 \* workingEveryMs \(20000 ms\)/,
      );
    });

    it('the dead-letter subject must not be captured by the work stream', async () => {
      expect(await problem({ ...base, subjects: ['>'] })).toMatch(
        /deadLetterSubject \(default\): [\s\S]*its subject ">" does[\s\S]*got "dlq.ORDERS"/,
      );
      expect(await problem({ ...base, deadLetterSubject: 'orders.dead' })).toMatch(
        /deadLetterSubject[\s\S]*"orders.>"/,
      );
      expect(await problem({ ...base, deadLetterSubject: 'dead.*' })).toMatch(/a subject without wildcards/);
    });

    it('names, subjects and unknown options', async () => {
      const message = await problem({
        stream: 'ORD ERS',
        subjects: [],
        consumer: 'a.b',
        filterSubject: 'elsewhere.x',
        retention: 'interest',
        maxAckPending: 0,
        colour: 'blue',
      });
      for (const option of ['stream', 'subjects', 'consumer', 'retention', 'maxAckPending', 'colour']) {
        expect(message).toContain(option);
      }
      expect(await problem({ ...base, filterSubject: 'elsewhere.x' })).toMatch(/filterSubject[\s\S]*within the stream/);
      expect(await problem({ ...base, subjects: ['orders..x'] })).toMatch(/subjects/);
      expect(await problem(undefined)).toMatch(/options/);
      expect(await problem(null)).toMatch(/options/);
    });
  });
});
