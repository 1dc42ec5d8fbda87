import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
} from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { circuitBreaker } from '../../../src/index.js';
import {
  consumeJetStream,
  type Delivery,
  type JetStreamConsumption,
  jetstreamDelivery,
  PermanentError,
  type Settlement,
  type WrappedHandler,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';
import { NATS_CLIENTS, type NatsClient, NatsResources } from '../../helpers/nats-clients.js';
import { waitFor } from '../../helpers/wait.js';

// Against the real server on 127.0.0.1:4222. No skip: if it does not answer, beforeAll throws and every test fails.
let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;

/** The client line of the describe block running (see NATS_CLIENTS). */
let client: NatsClient;

const resources = new NatsResources();
const { streams, loops, handlers } = resources;

afterEach(() => resources.release(jsm, true));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls every 20 ms until `check` holds, for at most `ms`. */
const until = (check: () => boolean | Promise<boolean>, ms = 4_000) =>
  waitFor(check, 'the broker condition', { timeoutMs: ms, intervalMs: 20 });

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
      const h = client.headers();
      h.set('x-trace', 't-1');
      await js.publish(subject, enc('one'), { headers: h });
      await until(() => seen.length === 1);
      await until(async () => (await consumer.info()).num_ack_pending === 0);
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
      await until(() => seen.length === 3);
      expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
      const gap1 = (seen[1]?.at ?? 0) - (seen[0]?.at ?? 0);
      const gap2 = (seen[2]?.at ?? 0) - (seen[1]?.at ?? 0);
      // The delays were 400 ms then 800 ms (timer granularity allowed), and well short of ack-wait (2 s).
      expect(gap1).toBeGreaterThanOrEqual(350);
      expect(gap1).toBeLessThan(1_500);
      expect(gap2).toBeGreaterThanOrEqual(750);
      expect(gap2).toBeLessThan(1_900);
      await until(async () => (await consumer.info()).num_ack_pending === 0);
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
      const h = client.headers();
      h.set('x-trace', 'abc');
      await js.publish(subject, data, { headers: h });
      await until(async () => (await deadLetters(stream, dead)) === 1);
      const letter = await jsm.streams.getMessage(stream, { last_by_subj: dead });
      expect(Buffer.from(letter.data).equals(Buffer.from(data))).toBe(true);
      expect(letter.header.get('x-bulwark-attempts')).toBe('3');
      expect(letter.header.get('x-bulwark-reason')).toBe('exhausted');
      expect(letter.header.get('x-bulwark-error')).toBe('Error: boom second line');
      expect(letter.header.get('x-bulwark-original-subject')).toBe(subject);
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
      await until(async () => (await deadLetters(stream, dead)) === 1);
      const letter = await jsm.streams.getMessage(stream, { last_by_subj: dead });
      expect(new TextDecoder().decode(letter.data)).toBe('{"bad":true}');
      expect(letter.header.get('x-bulwark-reason')).toBe('permanent');
      expect(letter.header.get('x-bulwark-attempts')).toBe('1');
      expect(letter.header.get('x-bulwark-error')).toBe('PermanentError: no id');
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
      await until(() => attempts.length === 1);
      await until(async () => (await consumer.info()).num_ack_pending === 0);
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
      await until(() => attempts.length === 1);
      await until(async () => (await consumer.info()).num_ack_pending === 0, 3_000);
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
      await until(() => attempts.length >= 2, 3_000);
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
      await until(() => seen.length === 1);
      loop.pause();
      await sleep(100);
      await js.publish(subject, enc('b'));
      await sleep(400);
      expect(seen).toEqual(['a']);
      loop.resume();
      await until(() => seen.length === 2, 3_000);
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

  /** FNV-1a over the bytes: a deterministic spread of payloads into failure classes. */
  function fnv1a(data: Uint8Array): number {
    let h = 0x811c9dc5;
    for (const b of data) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    return h;
  }

  /**
   * A wrapped handler that records every delivery it is fed and how each was settled, delegating to `inner`
   * (consumeJetStream reads `paused`, and the cleanup calls `shutdown`).
   */
  function observed(
    inner: WrappedHandler<Uint8Array>,
    onDelivery: (d: Delivery<Uint8Array>) => void,
    onSettled: (d: Delivery<Uint8Array>, s: Settlement) => void,
  ): WrappedHandler<Uint8Array> {
    const fn = (async (d: Delivery<Uint8Array>) => {
      onDelivery(d);
      const s = await inner(d);
      onSettled(d, s);
      return s;
    }) as WrappedHandler<Uint8Array>;
    Object.defineProperties(fn, {
      inFlight: { get: () => inner.inFlight },
      paused: { get: () => inner.paused },
      shutdown: { value: (graceMs?: number) => inner.shutdown(graceMs) },
    });
    return fn;
  }

  /** Whether the server is older than major.minor.patch. */
  function serverBefore(major: number, minor: number, patch: number): boolean {
    const [a = 0, b = 0, c = 0] = nc.info?.version.split(/[.-]/).map(Number) ?? [];
    return a !== major ? a < major : b !== minor ? b < minor : c < patch;
  }

  describe('consumeJetStream under load and backpressure (real NATS)', () => {
    it('an open breaker pauses consumption (no deliveries while paused), resumes at half-open, dead-letters nothing', async () => {
      const { stream, subject, dead, consumer } = await setup({ max_deliver: 20 });
      const dec = new TextDecoder();
      let down = true;
      let dependencyCalls = 0;
      let paused = false;
      const deliveriesWhilePaused: string[] = [];
      const deliveryTimes: number[] = [];
      const pauses: { at: number; resumeAfterMs: number; resumedAt?: number }[] = [];
      const acked = new Map<string, number>();
      const settlements: Settlement[] = [];
      const fed = new Map<string, number[]>();
      let loop: JetStreamConsumption | undefined;
      const inner = wrapHandler(
        async () => {
          dependencyCalls++;
          await sleep(5);
          if (down) throw new Error('dependency down');
        },
        {
          policy: circuitBreaker({ window: { kind: 'consecutive', threshold: 3 }, halfOpenAfterMs: 2_000 }),
          maxDeliveries: 20,
          redeliveryDelay: () => 50,
          onPause: (resumeAfterMs) => {
            paused = true;
            pauses.push({ at: Date.now(), resumeAfterMs });
            loop?.pause();
          },
          onResume: () => {
            paused = false;
            const last = pauses.at(-1);
            if (last) last.resumedAt = Date.now();
            loop?.resume();
          },
        },
      );
      const handle = observed(
        inner,
        (d) => {
          const key = dec.decode(d.body);
          fed.set(key, [...(fed.get(key) ?? []), d.attempt]);
          deliveryTimes.push(Date.now());
          if (paused) deliveriesWhilePaused.push(dec.decode(d.body));
        },
        (d, s) => {
          settlements.push(s);
          if (s === 'acked') acked.set(dec.decode(d.body), (acked.get(dec.decode(d.body)) ?? 0) + 1);
        },
      );
      handlers.push(inner);
      loop = consumeJetStream(consumer, handle, { maxMessages: 10, deadLetterSubject: dead, js });
      loops.push(loop);

      const bodies = Array.from({ length: 30 }, (_, i) => `msg-${i}`);
      await Promise.all(bodies.map((b) => js.publish(subject, enc(b))));

      // The dependency fails: three failures in a row open the breaker and the consumer pauses.
      await until(() => pauses.length >= 1, 3_000);
      const firstPause = pauses[0];
      if (firstPause === undefined) throw new Error('no pause');
      expect(firstPause.resumeAfterMs).toBeGreaterThan(0);
      expect(firstPause.resumeAfterMs).toBeLessThanOrEqual(2_000);
      // Over a window well inside the break, nothing is delivered and the dependency is not called.
      await sleep(50); // deliveries already in flight when the breaker opened settle
      const callsAtStart = dependencyCalls;
      const deliveriesAtStart = deliveryTimes.length;
      await sleep(400);
      expect(paused).toBe(true);
      expect(deliveryTimes.length).toBe(deliveriesAtStart);
      expect(dependencyCalls).toBe(callsAtStart);
      expect(acked.size).toBe(0);

      // The dependency recovers; the consumer resumes at half-open and drains the stream.
      down = false;
      await until(() => acked.size === bodies.length, 10_000);
      expect(firstPause.resumedAt).toBeDefined();
      expect((firstPause.resumedAt ?? 0) - firstPause.at).toBeGreaterThanOrEqual(firstPause.resumeAfterMs - 20);
      // Deliveries resumed after the break, none was fed while paused.
      expect(deliveryTimes.some((t) => t >= (firstPause.resumedAt ?? Infinity))).toBe(true);
      expect(deliveriesWhilePaused).toEqual([]);
      // Every message acked exactly once; none dead-lettered while the dependency was down.
      expect([...acked.keys()].sort()).toEqual([...bodies].sort());
      // A duplicate is allowed only where the server itself delivered the message twice with its delivery count
      // going backwards (2, then 1): nats-server before 2.10.14 (nats-io/nats-server#5305) does that to a message it
      // failed to deliver to a stopped pull, which pausing makes. Everything else is acked exactly once.
      const backwards = new Set(
        [...fed].filter(([, a]) => a.some((n, i) => i > 0 && n < Math.max(...a.slice(0, i)))).map(([k]) => k),
      );
      if (backwards.size > 0) expect(serverBefore(2, 10, 14)).toBe(true);
      for (const [key, n] of acked) expect(n, key).toBe(backwards.has(key) ? Math.min(n, 2) : 1);
      expect(settlements).not.toContain('dead_lettered');
      await until(async () => (await consumer.info()).num_ack_pending === 0, 5_000);
      const info = await consumer.info();
      expect(info.num_pending).toBe(0);
      expect(await deadLetters(stream, dead)).toBe(0);
    });

    it('10,000 messages, 10% failing transiently: each acked exactly once or dead-lettered, verified against the server', async () => {
      const started = Date.now();
      const N = 10_000;
      const { stream, subject, dead, consumer } = await setup({ max_deliver: 5, ack_wait: nanos(30_000) });
      const dec = new TextDecoder();
      const bodies = Array.from({ length: N }, (_, i) => `order-${i}`);
      // Failure classes, by hash: 10% fail transiently on their first delivery only; a few are poison (permanent);
      // a few always fail transiently and are dead-lettered when their deliveries run out.
      const classOf = (data: Uint8Array): 'transient' | 'poison' | 'exhausted' | 'ok' => {
        const h = fnv1a(data);
        if (h % 10 === 0) return 'transient';
        if (h % 1_000 === 3) return 'poison';
        if (h % 1_000 === 7) return 'exhausted';
        return 'ok';
      };
      const expectedDead = new Set(bodies.filter((b) => ['poison', 'exhausted'].includes(classOf(enc(b)))));
      const transient = bodies.filter((b) => classOf(enc(b)) === 'transient').length;
      expect(transient).toBeGreaterThan(800);
      expect(transient).toBeLessThan(1_200);
      expect(expectedDead.size).toBeGreaterThan(0);

      const acked = new Map<string, number>();
      const deadLettered = new Map<string, number>();
      const inner = wrapHandler(
        (body: Uint8Array, ctx) => {
          const kind = classOf(body);
          if (kind === 'poison') throw new PermanentError('poison');
          if (kind === 'exhausted') throw new Error('always failing');
          if (kind === 'transient' && ctx.delivery.attempt === 1) throw new Error('transient');
        },
        { maxDeliveries: 3, redeliveryDelay: () => 10 },
      );
      const handle = observed(
        inner,
        () => {},
        (d, s) => {
          const key = dec.decode(d.body);
          if (s === 'acked') acked.set(key, (acked.get(key) ?? 0) + 1);
          if (s === 'dead_lettered') deadLettered.set(key, (deadLettered.get(key) ?? 0) + 1);
        },
      );
      handlers.push(inner);
      const errors: unknown[] = [];
      const loop = consumeJetStream(consumer, handle, {
        maxMessages: 100,
        deadLetterSubject: dead,
        js,
        onError: (e) => errors.push(e),
      });
      loops.push(loop);

      // Published asynchronously in batches, while the consumer already runs.
      for (let i = 0; i < N; i += 500) {
        await Promise.all(bodies.slice(i, i + 500).map((b) => js.publish(subject, enc(b))));
      }
      const published = Date.now();
      await until(() => acked.size + deadLettered.size >= N, 25_000);
      await until(async () => {
        const info = await consumer.info();
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 5_000);
      const drained = Date.now();

      // Against the server: nothing pending or unacknowledged, the ack floor at the last message, the dead-letter
      // subject holding exactly the expected messages.
      const info = await consumer.info();
      expect(info.num_pending).toBe(0);
      expect(info.num_ack_pending).toBe(0);
      const streamInfo = await jsm.streams.info(stream, { subjects_filter: '>' });
      expect(streamInfo.state.subjects?.[subject]).toBe(N);
      expect(streamInfo.state.subjects?.[dead]).toBe(expectedDead.size);
      expect(await deadLetters(stream, dead)).toBe(expectedDead.size);
      const deadBodies: string[] = [];
      const reader = await jsm.consumers.add(stream, { ack_policy: AckPolicy.None, filter_subject: dead });
      const deadConsumer = await js.consumers.get(stream, reader.name);
      const batch = await deadConsumer.fetch({ max_messages: expectedDead.size, expires: 2_000 });
      for await (const m of batch) deadBodies.push(dec.decode(m.data));
      expect(deadBodies.sort()).toEqual([...expectedDead].sort());

      // In the process: every message settled once, acked or dead-lettered, never both, no duplicates.
      expect(errors).toEqual([]);
      expect([...acked.values()].every((n) => n === 1)).toBe(true);
      expect([...deadLettered.values()].every((n) => n === 1)).toBe(true);
      expect(acked.size + deadLettered.size).toBe(N);
      expect(new Set([...acked.keys(), ...deadLettered.keys()]).size).toBe(N);
      expect([...acked.keys()].sort()).toEqual(bodies.filter((b) => !expectedDead.has(b)).sort());
      expect(new Set(deadLettered.keys())).toEqual(expectedDead);
      expect(Date.now() - started).toBeLessThan(30_000);
      console.info(
        `nats soak: ${N} messages (${transient} transient, ${expectedDead.size} dead): published in ${published - started} ms, drained in ${drained - started} ms`,
      );
    }, 30_000);
  });
});
