import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  connect,
  headers,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
} from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  consumeJetStream,
  type Delivery,
  type JetStreamConsumption,
  jetstreamDelivery,
  PermanentError,
  type WrappedHandler,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';

// Against the real server on 127.0.0.1:4222. No skip: if it does not answer, beforeAll throws and every test fails.
let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;

beforeAll(async () => {
  nc = await connect({ servers: '127.0.0.1:4222', timeout: 3_000, maxReconnectAttempts: 0 });
  jsm = await nc.jetstreamManager();
  js = nc.jetstream();
});

afterAll(async () => {
  await nc?.drain();
});

const streams: string[] = [];
const loops: JetStreamConsumption[] = [];
const handlers: WrappedHandler<Uint8Array>[] = [];

afterEach(async () => {
  await Promise.all(handlers.splice(0).map((h) => h.shutdown(500)));
  await Promise.all(loops.splice(0).map((l) => l.stop()));
  for (const s of streams.splice(0)) await jsm.streams.delete(s).catch(() => false);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds, for at most `ms`. */
async function waitFor(check: () => boolean | Promise<boolean>, ms = 4_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await sleep(20);
  }
}

/** A stream with a work subject and a dead-letter subject, and a durable pull consumer on the work subject. */
async function setup(config: Partial<ConsumerConfig> = {}) {
  const id = randomUUID().replaceAll('-', '');
  const stream = `BW_${id}`;
  const subject = `bw.${id}.work`;
  const dead = `bw.${id}.dead`;
  await jsm.streams.add({ name: stream, subjects: [subject, dead] });
  streams.push(stream);
  await jsm.consumers.add(stream, {
    durable_name: 'worker',
    ack_policy: AckPolicy.Explicit,
    filter_subject: subject,
    ack_wait: nanos(2_000),
    max_deliver: 10,
    ...config,
  });
  const consumer = await js.consumers.get(stream, 'worker');
  return { stream, subject, dead, consumer };
}

function run(consumer: Consumer, handle: WrappedHandler<Uint8Array>, dead?: string) {
  handlers.push(handle);
  const loop = consumeJetStream(
    consumer,
    handle,
    dead === undefined ? { maxMessages: 10 } : { maxMessages: 10, deadLetterSubject: dead, js },
  );
  loops.push(loop);
  return loop;
}

async function deadLetters(stream: string, dead: string) {
  const info = await jsm.streams.info(stream, { subjects_filter: dead });
  return info.state.subjects?.[dead] ?? 0;
}

const enc = (s: string) => new TextEncoder().encode(s);

describe('jetstreamDelivery / consumeJetStream (real NATS)', () => {
  it('acks after success only: ack pending while the handler runs, nothing pending afterwards', async () => {
    const { subject, consumer } = await setup();
    const seen: { body: string; attempt: number; ackPendingDuring: number; header: string | undefined }[] = [];
    const handle = wrapHandler(async (body: Uint8Array, ctx) => {
      const info = await consumer.info();
      seen.push({
        body: new TextDecoder().decode(body),
        attempt: ctx.delivery.attempt,
        ackPendingDuring: info.num_ack_pending,
        header: ctx.delivery.headers['x-trace'],
      });
    });
    run(consumer, handle);
    const h = headers();
    h.set('x-trace', 't-1');
    await js.publish(subject, enc('one'), { headers: h });
    await waitFor(() => seen.length === 1);
    await waitFor(async () => (await consumer.info()).num_ack_pending === 0);
    const info = await consumer.info();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(seen).toEqual([{ body: 'one', attempt: 1, ackPendingDuring: 1, header: 't-1' }]);
  });

  it('naks a transient failure with the computed delay: redelivered after it, not at once; attempt counts up', async () => {
    const { subject, consumer } = await setup();
    const seen: { attempt: number; at: number }[] = [];
    const handle = wrapHandler(
      (_body: Uint8Array, ctx) => {
        seen.push({ attempt: ctx.delivery.attempt, at: Date.now() });
        if (ctx.delivery.attempt < 3) throw new Error('db down');
      },
      { redeliveryDelay: (attempt) => attempt * 400, maxDeliveries: 5 },
    );
    run(consumer, handle);
    await js.publish(subject, enc('m'));
    await waitFor(() => seen.length === 3);
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    const gap1 = (seen[1]?.at ?? 0) - (seen[0]?.at ?? 0);
    const gap2 = (seen[2]?.at ?? 0) - (seen[1]?.at ?? 0);
    // The delays were 400 ms then 800 ms (timer granularity allowed), and well short of ack-wait (2 s).
    expect(gap1).toBeGreaterThanOrEqual(350);
    expect(gap1).toBeLessThan(1_500);
    expect(gap2).toBeGreaterThanOrEqual(750);
    expect(gap2).toBeLessThan(1_900);
    await waitFor(async () => (await consumer.info()).num_ack_pending === 0);
    expect((await consumer.info()).num_pending).toBe(0);
  });

  it('dead-letters once on exhaustion: identical bytes and headers; the original is terminated', async () => {
    const { stream, subject, dead, consumer } = await setup();
    const attempts: number[] = [];
    const handle = wrapHandler(
      (_body: Uint8Array, ctx) => {
        attempts.push(ctx.delivery.attempt);
        throw new Error('boom\nsecond line');
      },
      { redeliveryDelay: () => 100, maxDeliveries: 3 },
    );
    run(consumer, handle, dead);
    const data = Uint8Array.from({ length: 256 }, (_, i) => i);
    const h = headers();
    h.set('x-trace', 'abc');
    await js.publish(subject, data, { headers: h });
    await waitFor(async () => (await deadLetters(stream, dead)) === 1);
    const letter = await jsm.streams.getMessage(stream, { last_by_subj: dead });
    expect(Buffer.from(letter.data).equals(Buffer.from(data))).toBe(true);
    expect(letter.header.get('bulwark-attempts')).toBe('3');
    expect(letter.header.get('bulwark-reason')).toBe('exhausted');
    expect(letter.header.get('bulwark-error')).toBe('Error: boom second line');
    expect(letter.header.get('bulwark-original-subject')).toBe(subject);
    expect(letter.header.get('x-trace')).toBe('abc');
    // Terminated: no further delivery, nothing pending, a single dead letter.
    await sleep(500);
    expect(attempts).toEqual([1, 2, 3]);
    const info = await consumer.info();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(await deadLetters(stream, dead)).toBe(1);
  });

  it('dead-letters a permanent error at once', async () => {
    const { stream, subject, dead, consumer } = await setup();
    const attempts: number[] = [];
    const handle = wrapHandler(
      (_body: Uint8Array, ctx) => {
        attempts.push(ctx.delivery.attempt);
        throw new PermanentError('no id');
      },
      { redeliveryDelay: () => 100, maxDeliveries: 5 },
    );
    run(consumer, handle, dead);
    await js.publish(subject, enc('{"bad":true}'));
    await waitFor(async () => (await deadLetters(stream, dead)) === 1);
    const letter = await jsm.streams.getMessage(stream, { last_by_subj: dead });
    expect(new TextDecoder().decode(letter.data)).toBe('{"bad":true}');
    expect(letter.header.get('bulwark-reason')).toBe('permanent');
    expect(letter.header.get('bulwark-attempts')).toBe('1');
    expect(letter.header.get('bulwark-error')).toBe('PermanentError: no id');
    await sleep(400);
    expect(attempts).toEqual([1]);
    expect((await consumer.info()).num_ack_pending).toBe(0);
  });

  it('without a dead-letter subject, a dead letter terminates the message (no redelivery)', async () => {
    const { subject, consumer } = await setup();
    const attempts: number[] = [];
    const handle = wrapHandler(
      (_body: Uint8Array, ctx) => {
        attempts.push(ctx.delivery.attempt);
        throw new PermanentError('bad');
      },
      { maxDeliveries: 5 },
    );
    run(consumer, handle);
    await js.publish(subject, enc('x'));
    await waitFor(() => attempts.length === 1);
    await waitFor(async () => (await consumer.info()).num_ack_pending === 0);
    await sleep(300);
    expect(attempts).toEqual([1]);
  });

  it('working() heartbeats keep a handler that outlives ack_wait from being redelivered', async () => {
    const { subject, consumer } = await setup({ ack_wait: nanos(500) });
    const attempts: number[] = [];
    const handle = wrapHandler(
      async (_body: Uint8Array, ctx) => {
        attempts.push(ctx.delivery.attempt);
        await sleep(1_200);
      },
      { workingEveryMs: 200 },
    );
    run(consumer, handle);
    await js.publish(subject, enc('slow'));
    await waitFor(() => attempts.length === 1);
    await waitFor(async () => (await consumer.info()).num_ack_pending === 0, 3_000);
    await sleep(300);
    expect(attempts).toEqual([1]);
    expect((await consumer.info()).num_redelivered).toBe(0);
  });

  it('without heartbeats the same handler is redelivered after ack_wait (the control of the test above)', async () => {
    const { subject, consumer } = await setup({ ack_wait: nanos(500) });
    const attempts: number[] = [];
    const handle = wrapHandler(async (_body: Uint8Array, ctx) => {
      attempts.push(ctx.delivery.attempt);
      await sleep(1_200);
    });
    run(consumer, handle);
    await js.publish(subject, enc('slow'));
    await waitFor(() => attempts.length >= 2, 3_000);
    expect(attempts.slice(0, 2)).toEqual([1, 2]);
  });

  it('a handler timeout settles the delivery once (a late result does not ack it); it comes back later', async () => {
    const { subject, consumer } = await setup();
    await js.publish(subject, enc('t'));
    const handle = wrapHandler(
      async (_body: Uint8Array, ctx) => {
        // Ignores its signal on the first delivery: the result arrives after the timeout.
        await sleep(ctx.delivery.attempt === 1 ? 500 : 0);
      },
      { handlerTimeoutMs: 150, redeliveryDelay: () => 300 },
    );
    handlers.push(handle);
    const calls: string[] = [];
    /** Records every settlement call on the real delivery. */
    const recorded = (d: Delivery<Uint8Array>): Delivery<Uint8Array> => ({
      ...d,
      ack: () => {
        calls.push(`ack(${d.attempt})`);
        return d.ack();
      },
      retryLater: (ms, e) => {
        calls.push(`retryLater(${d.attempt}, ${ms})`);
        return d.retryLater(ms, e);
      },
      deadLetter: (x) => {
        calls.push('deadLetter');
        return d.deadLetter(x);
      },
      release: () => {
        calls.push('release');
        return d.release();
      },
    });
    const first = await consumer.next({ expires: 2_000 });
    if (first === null) throw new Error('no message');
    const started = Date.now();
    await expect(handle(recorded(jetstreamDelivery(first)))).resolves.toBe('retried');
    await sleep(500); // the late result of the first delivery arrives meanwhile
    expect(calls).toEqual(['retryLater(1, 300)']);
    const second = await consumer.next({ expires: 2_000 });
    if (second === null) throw new Error('not redelivered');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(second.info.deliveryCount).toBe(2);
    await expect(handle(recorded(jetstreamDelivery(second)))).resolves.toBe('acked');
    expect(calls).toEqual(['retryLater(1, 300)', 'ack(2)']);
    const info = await consumer.info();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it('stops pulling while paused and resumes; stop() waits for in-flight deliveries', async () => {
    const { subject, consumer } = await setup();
    const seen: string[] = [];
    const handle = wrapHandler(async (body: Uint8Array) => {
      await sleep(50);
      seen.push(new TextDecoder().decode(body));
    });
    const loop = run(consumer, handle);
    await js.publish(subject, enc('a'));
    await waitFor(() => seen.length === 1);
    loop.pause();
    await sleep(100);
    await js.publish(subject, enc('b'));
    await sleep(400);
    expect(seen).toEqual(['a']);
    loop.resume();
    await waitFor(() => seen.length === 2, 3_000);
    expect(seen).toEqual(['a', 'b']);
    await loop.stop();
    await expect(loop.done).resolves.toBeUndefined();
    expect(handle.inFlight).toBe(0);
  });

  it('validates its options', () => {
    expect(() =>
      consumeJetStream(
        {} as Consumer,
        wrapHandler(() => {}),
        { deadLetterSubject: 'x' },
      ),
    ).toThrow(/consumer[\s\S]*js/);
  });
});
