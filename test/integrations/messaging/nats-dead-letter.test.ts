import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
  type StreamConfig,
} from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConsumeJetStreamOptions,
  consumeJetStream,
  isDeadLetterTooLargeError,
  jetstreamDelivery,
  PermanentError,
  type WrappedHandler,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { NATS_CLIENTS, type NatsClient, NatsResources } from '../../helpers/nats-clients.js';
import { waitFor } from '../../helpers/wait.js';

// Dead letters against the real server on 127.0.0.1:4222: poison errors (issue 11 item 13) and dead letters that
// would exceed max_payload (item 14).
let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;

/** The client line of the describe block running (see NATS_CLIENTS). */
let client: NatsClient;

const resources = new NatsResources();
const { streams, loops, handlers } = resources;

afterEach(() => resources.release(jsm, false));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = (check: () => boolean | Promise<boolean>, ms = 4_000) =>
  waitFor(check, 'the broker condition', { timeoutMs: ms, intervalMs: 20 });

/** A work stream and a separate dead-letter stream (its own limits), and a durable pull consumer. */
async function setup(config: Partial<ConsumerConfig> = {}, deadStream: Partial<StreamConfig> = {}) {
  const id = randomUUID().replaceAll('-', '');
  const stream = `BW_${id}`;
  const dlq = `BW_${id}_DLQ`;
  const subject = `bw.${id}.work`;
  const dead = `bw.${id}.dead`;
  await jsm.streams.add({ name: stream, subjects: [subject] });
  streams.push(stream);
  await jsm.streams.add({ name: dlq, subjects: [dead], ...deadStream });
  streams.push(dlq);
  await jsm.consumers.add(stream, {
    durable_name: 'worker',
    ack_policy: AckPolicy.Explicit,
    filter_subject: subject,
    ack_wait: nanos(1_000),
    max_deliver: -1,
    ...config,
  });
  const consumer = await js.consumers.get(stream, 'worker');
  return { stream, dlq, subject, dead, consumer };
}

async function deadLetters(dlq: string) {
  return (await jsm.streams.info(dlq)).state.messages;
}

function run(
  consumer: Parameters<typeof consumeJetStream>[0],
  handle: WrappedHandler<Uint8Array>,
  options: ConsumeJetStreamOptions,
) {
  handlers.push(handle);
  const loop = consumeJetStream(consumer, handle, { maxMessages: 10, ...options });
  loops.push(loop);
  return loop;
}

/** Values whose description (String(), name, message) throws or is not a string. */
const poisons: [string, () => unknown][] = [
  ['Object.create(null)', () => Object.create(null)],
  [
    'an object whose toString throws',
    () => ({
      toString() {
        throw new Error('no string for you');
      },
    }),
  ],
  [
    'an Error whose message getter throws',
    () => {
      const e = new Error('x');
      Object.defineProperty(e, 'message', {
        get() {
          throw new Error('no message');
        },
      });
      return e;
    },
  ],
  ['a Symbol', () => Symbol('poison')],
];

describe.each(NATS_CLIENTS)('$name', (c) => {
  beforeAll(async () => {
    client = c;
    nc = await c.connect({ servers: '127.0.0.1:4222', timeout: 3_000, maxReconnectAttempts: 0 });
    jsm = await c.jetstreamManager(nc);
    js = c.jetstream(nc);
  });

  afterAll(async () => {
    await nc?.drain();
  });

  describe('a poison throw is dead-lettered after maxDeliveries (real NATS)', () => {
    for (const [name, make] of poisons) {
      it(`${name}: delivered maxDeliveries times, then one dead letter; never redelivered after`, async () => {
        const { dlq, subject, dead, consumer } = await setup();
        const attempts: number[] = [];
        const errors: unknown[] = [];
        const handle = wrapHandler(
          (_body: Uint8Array, ctx) => {
            attempts.push(ctx.delivery.attempt);
            throw make();
          },
          { maxDeliveries: 3, redeliveryDelay: () => 50 },
        );
        run(consumer, handle, { deadLetterSubject: dead, js, onError: (e) => errors.push(e) });
        await js.publish(subject, new TextEncoder().encode('poison'));
        await until(async () => (await deadLetters(dlq)) === 1);
        const letter = await jsm.streams.getMessage(dlq, { last_by_subj: dead });
        expect(new TextDecoder().decode(letter.data)).toBe('poison');
        expect(letter.header.get('x-bulwark-reason')).toBe('exhausted');
        expect(letter.header.get('x-bulwark-attempts')).toBe('3');
        expect(letter.header.get('x-bulwark-error')).not.toBe('');
        // Longer than ack_wait (1 s): a message left unterminated would have come back by now.
        await sleep(1_300);
        expect(attempts).toEqual([1, 2, 3]);
        expect(errors).toEqual([]);
        const info = await consumer.info();
        expect(info.num_ack_pending).toBe(0);
        expect(info.num_pending).toBe(0);
        expect(await deadLetters(dlq)).toBe(1);
      });
    }
  });

  describe('a dead letter that would exceed max_payload (real NATS)', () => {
    const maxPayload = () => {
      const limit = nc.info?.max_payload;
      if (limit === undefined) throw new Error('no server info');
      return limit;
    };
    const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) % 251);
    const longError = () => new Error(`upstream said: ${'x'.repeat(5_000)}`);

    // The docs' old advice: max_deliver equal to maxDeliveries. A dead-letter publish that failed on the last
    // allowed delivery was never retried: the message vanished.
    it('a body that fits with shorter headers: the error header is shortened, the body kept byte-identical', async () => {
      const { dlq, subject, dead, consumer } = await setup({ max_deliver: 2 });
      const attempts: number[] = [];
      const errors: unknown[] = [];
      const handle = wrapHandler(
        (_body: Uint8Array, ctx) => {
          attempts.push(ctx.delivery.attempt);
          throw longError();
        },
        { maxDeliveries: 2, redeliveryDelay: () => 50 },
      );
      run(consumer, handle, { deadLetterSubject: dead, js, onError: (e) => errors.push(e) });
      // Within 300 bytes of the limit, with a header of its own: the copy with 1 KiB of error text cannot fit.
      const data = bytes(maxPayload() - 300);
      const h = client.headers();
      h.set('x-trace', 'abc');
      await js.publish(subject, data, { headers: h });
      await until(async () => (await deadLetters(dlq)) === 1, 6_000);
      const letter = await jsm.streams.getMessage(dlq, { last_by_subj: dead });
      expect(Buffer.from(letter.data).equals(Buffer.from(data))).toBe(true);
      expect(letter.header.get('x-trace')).toBe('abc');
      expect(letter.header.get('x-bulwark-reason')).toBe('exhausted');
      expect(letter.header.get('x-bulwark-attempts')).toBe('2');
      const error = letter.header.get('x-bulwark-error');
      expect(error.startsWith('Error: upstream said: xxx')).toBe(true);
      expect(error.length).toBeLessThan(300);
      expect(letter.header.has('x-bulwark-body-omitted')).toBe(false);
      await sleep(1_300);
      expect(attempts).toEqual([1, 2]);
      expect(errors).toEqual([]);
      expect((await consumer.info()).num_ack_pending).toBe(0);
    });

    it('a body that cannot fit at all: a dead letter without the body, the original terminated, onError told', async () => {
      const { stream, dlq, subject, dead, consumer } = await setup({ max_deliver: 1 });
      const attempts: number[] = [];
      const errors: unknown[] = [];
      const handle = wrapHandler(
        (_body: Uint8Array, ctx) => {
          attempts.push(ctx.delivery.attempt);
          throw new Error('too big to handle');
        },
        { maxDeliveries: 1 },
      );
      run(consumer, handle, { deadLetterSubject: dead, js, onError: (e) => errors.push(e) });
      const data = bytes(maxPayload() - 20);
      const ack = await js.publish(subject, data);
      await until(async () => (await deadLetters(dlq)) === 1, 6_000);
      const letter = await jsm.streams.getMessage(dlq, { last_by_subj: dead });
      expect(letter.data.length).toBe(0);
      expect(letter.header.get('x-bulwark-body-omitted')).toBe(String(data.length));
      expect(letter.header.get('x-bulwark-original-stream')).toBe(stream);
      expect(letter.header.get('x-bulwark-original-sequence')).toBe(String(ack.seq));
      expect(letter.header.get('x-bulwark-original-subject')).toBe(subject);
      expect(letter.header.get('x-bulwark-reason')).toBe('exhausted');
      expect(letter.header.get('x-bulwark-error')).toBe('Error: too big to handle');
      await until(() => errors.length === 1);
      const [error] = errors;
      expect(isDeadLetterTooLargeError(error)).toBe(true);
      expect(error).toMatchObject({
        code: 'ERR_DEAD_LETTER_TOO_LARGE',
        bodyBytes: data.length,
        limitBytes: maxPayload(),
        stream,
        sequence: ack.seq,
        deadLetterSubject: dead,
      });
      // Terminated, not looping: no redelivery after ack_wait; the body is still in the work stream.
      await sleep(1_300);
      expect(attempts).toEqual([1]);
      expect((await consumer.info()).num_ack_pending).toBe(0);
      const original = await jsm.streams.getMessage(stream, { seq: ack.seq });
      expect(Buffer.from(original.data).equals(Buffer.from(data))).toBe(true);
      expect(errors).toHaveLength(1);
    });

    it('a dead-letter stream whose max_msg_size refuses the body: the same dead letter without the body', async () => {
      const { dlq, subject, dead, consumer } = await setup({}, { max_msg_size: 2_048 });
      const errors: unknown[] = [];
      const attempts: number[] = [];
      const handle = wrapHandler(
        (_body: Uint8Array, ctx) => {
          attempts.push(ctx.delivery.attempt);
          throw new PermanentError('bad');
        },
        { maxDeliveries: 5 },
      );
      run(consumer, handle, { deadLetterSubject: dead, js, onError: (e) => errors.push(e) });
      const ack = await js.publish(subject, bytes(4_096));
      await until(async () => (await deadLetters(dlq)) === 1, 6_000);
      const letter = await jsm.streams.getMessage(dlq, { last_by_subj: dead });
      expect(letter.data.length).toBe(0);
      expect(letter.header.get('x-bulwark-body-omitted')).toBe('4096');
      expect(letter.header.get('x-bulwark-original-sequence')).toBe(String(ack.seq));
      expect(letter.header.get('x-bulwark-reason')).toBe('permanent');
      await until(() => errors.length === 1);
      expect(errors[0]).toMatchObject({ code: 'ERR_DEAD_LETTER_TOO_LARGE', limitBytes: undefined, sequence: ack.seq });
      await sleep(1_300);
      expect(attempts).toEqual([1]);
      expect((await consumer.info()).num_ack_pending).toBe(0);
    });

    it('a dead-letter subject no stream captures: the publish fails, the message comes back and is not lost', async () => {
      const { subject, consumer } = await setup();
      const errors: unknown[] = [];
      const attempts: number[] = [];
      const handle = wrapHandler(
        (_body: Uint8Array, ctx) => {
          attempts.push(ctx.delivery.attempt);
          throw new PermanentError('bad');
        },
        { maxDeliveries: 5 },
      );
      const nowhere = `bw.${randomUUID()}.nowhere`;
      run(consumer, handle, { deadLetterSubject: nowhere, js, onError: (e) => errors.push(e) });
      await js.publish(subject, new TextEncoder().encode('x'));
      // Not terminated: redelivered after ack_wait (1 s), dead-lettered again, each failure reported.
      await until(() => attempts.length >= 2, 4_000);
      expect(attempts.slice(0, 2)).toEqual([1, 2]);
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(isDeadLetterTooLargeError(errors[0])).toBe(false);
    });
  });

  describe('onError', () => {
    it('an onError that throws does not become an unhandled rejection (the suite fails on any)', async () => {
      const { subject, consumer } = await setup();
      let calls = 0;
      const handle = wrapHandler(() => {
        throw new PermanentError('bad');
      });
      // No js for a deadLetterSubject the server has no stream for: every dead letter fails and is reported.
      run(consumer, handle, {
        deadLetterSubject: `bw.${randomUUID()}.nowhere`,
        js,
        onError: () => {
          calls++;
          throw new Error('the reporter itself fails');
        },
      });
      await js.publish(subject, new TextEncoder().encode('x'));
      await until(() => calls >= 1);
      await sleep(50);
      expect(calls).toBeGreaterThanOrEqual(1);
    });
  });

  describe('retryLater delays the server reads as asked (real NATS)', () => {
    // nats.js sends no delay for NaN (an immediate redelivery) and `{"delay":null}` for Infinity. The adapter alone:
    // wrapHandler may already replace such delays by its own.
    it('Infinity: the message is held, not redelivered at once', async () => {
      const { subject, consumer } = await setup({ ack_wait: nanos(30_000) });
      await js.publish(subject, new TextEncoder().encode('x'));
      const first = await consumer.next({ expires: 2_000 });
      if (first === null) throw new Error('no message');
      await jetstreamDelivery(first).retryLater(Number.POSITIVE_INFINITY, new Error('later'));
      expect(await consumer.next({ expires: 1_500 })).toBeNull();
      expect((await consumer.info()).num_ack_pending).toBe(1);
    });

    it('NaN: the release delay, not at once', async () => {
      const { subject, consumer } = await setup({ ack_wait: nanos(30_000) });
      await js.publish(subject, new TextEncoder().encode('x'));
      const first = await consumer.next({ expires: 2_000 });
      if (first === null) throw new Error('no message');
      await jetstreamDelivery(first, { releaseDelayMs: 2_000 }).retryLater(Number.NaN, new Error('later'));
      expect(await consumer.next({ expires: 1_000 })).toBeNull();
      const second = await consumer.next({ expires: 3_000 });
      expect(second?.info.deliveryCount).toBe(2);
      second?.ack();
    });
  });

  describe('a settlement that fails on the last delivery the server allows (real NATS)', () => {
    it('is reported as a message the server will not deliver again, naming max_deliver', async () => {
      const { stream, subject, consumer } = await setup({ max_deliver: 2 });
      const errors: unknown[] = [];
      const attempts: number[] = [];
      const handle = wrapHandler(
        (_body: Uint8Array, ctx) => {
          attempts.push(ctx.delivery.attempt);
          throw new Error('always failing');
        },
        { maxDeliveries: 2, redeliveryDelay: () => 50 },
      );
      // No stream captures this subject: the dead-letter publish on delivery 2 fails.
      run(consumer, handle, { deadLetterSubject: `bw.${randomUUID()}.nowhere`, js, onError: (e) => errors.push(e) });
      const ack = await js.publish(subject, new TextEncoder().encode('x'));
      await until(() => errors.length === 1);
      expect(attempts).toEqual([1, 2]);
      const error = errors[0] as Error;
      expect(error.message).toBe(
        `bulwark/messaging: settling message ${stream}#${ack.seq} failed on its last delivery (the consumer's ` +
          "max_deliver is 2): the server will not deliver it again. Set max_deliver to -1 or above wrapHandler's " +
          'maxDeliveries (declareJetStreamTopology does)',
      );
      expect(error.cause).toBeDefined();
    });
  });
});
