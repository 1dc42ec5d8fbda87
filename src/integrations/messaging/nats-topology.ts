/**
 * `declareJetStreamTopology`: the streams and the durable consumer `consumeJetStream` needs, with settings under
 * which a message is never lost silently. Works with the JetStream manager of nats.js 2.x and 3.x; nothing is
 * imported from either (see `nats-types.ts`).
 */
import { Checker } from '../../errors/validate.js';
import { hasMethod, passes } from '../validate.js';
import {
  type JetStreamAdmin,
  type JetStreamConsumerSettings,
  type JetStreamStreamSettings,
  jetStreamErrorCode,
} from './nats-types.js';

// The JetStream API's values (the nats.js enums are these strings), spelled out: no client is loaded at run time.
const TOPOLOGY_ENUMS = {
  explicit: 'explicit',
  all: 'all',
  limits: 'limits',
  workqueue: 'workqueue',
} as const;

/** Options of {@link declareJetStreamTopology}. */
export interface JetStreamTopologyOptions {
  /** The work stream's name (created if missing). */
  stream: string;
  /** The subjects the work stream captures (added to an existing stream's subjects if missing). */
  subjects: readonly string[];
  /** The durable pull consumer's name (created if missing; its ack wait and max deliver are updated if present). */
  consumer: string;
  /** The subject the consumer reads, if not every subject of the stream. @defaultValue none (all of them) */
  filterSubject?: string;
  /**
   * The stream that stores dead letters, Limits retention (created if missing). It must be a stream of its own:
   * its subject must not be one the work stream captures. @defaultValue `<stream>_DLQ`
   */
  deadLetterStream?: string;
  /** The subject dead letters are published to, captured by `deadLetterStream`. @defaultValue `dlq.<stream>` */
  deadLetterSubject?: string;
  /**
   * `wrapHandler`'s `maxDeliveries` (the same number): the consumer's `max_deliver` must exceed it, so bulwark, not
   * the server, decides when a message is dead-lettered. @defaultValue 5 (`wrapHandler`'s default)
   */
  maxDeliveries?: number;
  /**
   * The consumer's `max_deliver`: -1 (unlimited) or an integer greater than `maxDeliveries`. The server stops
   * delivering a message after `max_deliver` deliveries and tells no one: with `max_deliver <= maxDeliveries` a
   * message whose dead-letter publish failed on its last delivery would never come back. @defaultValue -1
   */
  maxDeliver?: number;
  /**
   * `wrapHandler`'s `handlerTimeoutMs`: the ack wait must outlast it, or the server redelivers a message whose
   * handler is still running. @defaultValue none
   */
  handlerTimeoutMs?: number;
  /**
   * `wrapHandler`'s `workingEveryMs`: with heartbeats the ack wait only needs to outlast two of them (a handler
   * may then run longer than the ack wait). @defaultValue none
   */
  workingEveryMs?: number;
  /**
   * The consumer's `ack_wait` in ms: how long the server waits for an ack (or a heartbeat) before delivering the
   * message again. At least `handlerTimeoutMs + 1_000`, or `2 * workingEveryMs` with heartbeats.
   * @defaultValue `handlerTimeoutMs + 10_000`; with `workingEveryMs`, `max(30_000, 3 * workingEveryMs)`;
   * otherwise 60_000
   */
  ackWaitMs?: number;
  /** The consumer's `max_ack_pending`: messages delivered and not yet settled, at most. @defaultValue 1_000 */
  maxAckPending?: number;
  /**
   * The work stream's retention when it is created: `'limits'` (messages stay until the stream's limits remove
   * them, so the body of a message dead-lettered without it can still be read) or `'workqueue'` (a message is
   * removed once acked or terminated). An existing stream keeps its own. @defaultValue 'limits'
   */
  retention?: 'limits' | 'workqueue';
  /** The work stream's `max_age` in ms when it is created (0: no limit). @defaultValue 0 */
  maxAgeMs?: number;
}

/** What {@link declareJetStreamTopology} set up: pass these to `js.consumers.get` and `consumeJetStream`. */
export interface JetStreamTopology {
  /** The work stream. */
  readonly stream: string;
  /** The durable consumer. */
  readonly consumer: string;
  /** The dead-letter stream. */
  readonly deadLetterStream: string;
  /** The subject to pass to `consumeJetStream`'s `deadLetterSubject`. */
  readonly deadLetterSubject: string;
  /** The consumer's ack wait, in ms. */
  readonly ackWaitMs: number;
  /** The consumer's `max_deliver` (-1: unlimited). */
  readonly maxDeliver: number;
}

const OPTIONS = [
  'stream',
  'subjects',
  'consumer',
  'filterSubject',
  'deadLetterStream',
  'deadLetterSubject',
  'maxDeliveries',
  'maxDeliver',
  'handlerTimeoutMs',
  'workingEveryMs',
  'ackWaitMs',
  'maxAckPending',
  'retention',
  'maxAgeMs',
] as const;

/** Stream and consumer names: no whitespace, `.`, `*`, `>`, path separators (NATS ADR-6). */
const NAME = /^[^\s.*>/\\]+$/;
/** A subject: dot-separated non-empty tokens without whitespace; `*` a whole token, `>` only the last one. */
function isSubject(s: unknown, wildcards: boolean): s is string {
  if (typeof s !== 'string' || s === '' || /\s/.test(s)) return false;
  const tokens = s.split('.');
  return tokens.every((t, i) => {
    if (t === '') return false;
    if (t === '>') return wildcards && i === tokens.length - 1;
    if (t === '*') return wildcards;
    return !t.includes('*') && !t.includes('>');
  });
}

/** Whether subject filter `filter` matches every subject `subject` can match (or `subject` itself). */
function matches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== '*' && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

/** Whether every subject filter `a` matches is matched by filter `b` too. */
function isSubset(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < x.length; i++) {
    if (i >= y.length) return false;
    if (y[i] === '>') return true;
    if (x[i] === '>') return false;
    if (y[i] !== '*' && x[i] !== y[i]) return false;
  }
  return x.length === y.length;
}

/**
 * Whether the server takes `filter` as a consumer filter on a stream capturing `subject` (its rule): the filter
 * is within the subject, or, with a wildcard, it covers the whole subject (`>` on a stream of `orders.>`).
 */
function filterFits(filter: string, subject: string): boolean {
  return isSubset(filter, subject) || (/(^|\.)[*>](\.|$)/.test(filter) && isSubset(subject, filter));
}

const nanos = (ms: number): number => Math.round(ms * 1_000_000);

/** The longest duration the server takes, in ms (about 285 years): its nanoseconds must fit an int64. */
const MAX_DURATION_MS = 9e12;

/** Whether a JetStream API error is "not found" (stream 10059, consumer 10014). */
function isNotFound(error: unknown): boolean {
  const code = jetStreamErrorCode(error);
  return code === 10059 || code === 10014;
}

/**
 * Declares what {@link consumeJetStream} needs, so that no message is lost silently:
 * - the work stream `stream` capturing `subjects` (created with `retention`, Limits by default; an existing
 *   stream gets the missing subjects added and keeps everything else);
 * - the dead-letter stream `deadLetterStream` (`<stream>_DLQ`) capturing `deadLetterSubject` (`dlq.<stream>`),
 *   Limits retention: dead letters are stored until you remove them;
 * - the durable pull consumer `consumer`: explicit acks; `max_deliver` -1 (or above `maxDeliveries`), so the
 *   server never drops a message bulwark has not dead-lettered; an `ack_wait` longer than the handler timeout
 *   plus a margin (or twice the heartbeat). An existing consumer gets these updated; its filter subject must
 *   match.
 *
 * Releases (a shutdown's unfinished messages, nak'd with `releaseDelayMs`) count as deliveries on JetStream: a
 * message released during a few restarts reaches `maxDeliveries` sooner. With `max_deliver` -1 it is still
 * dead-lettered by bulwark (with its body), never dropped by the server; raise `maxDeliveries` if your deploys
 * release often.
 *
 * Idempotent. A stream or consumer that exists with settings that cannot be changed (retention, filter subject,
 * a dead-letter stream with Limits retention missing) makes it throw, naming the setting.
 *
 * @throws InvalidOptionsError listing every invalid option.
 * @returns the names and settings to pass to `js.consumers.get` and `consumeJetStream`.
 * @example
 * ```ts
 * const nc = await connect({ servers: '127.0.0.1:4222' });
 * // nats.js 3.x: await jetstreamManager(nc), from '@nats-io/jetstream'
 * const topology = await declareJetStreamTopology(await nc.jetstreamManager(), {
 *   stream: 'ORDERS',
 *   subjects: ['orders.>'],
 *   consumer: 'worker',
 *   maxDeliveries: 5, // the same as wrapHandler's
 *   handlerTimeoutMs: 30_000, // the same as wrapHandler's: ack_wait becomes 40 s
 * });
 * const js = nc.jetstream();
 * const consumer = await js.consumers.get(topology.stream, topology.consumer);
 * consumeJetStream(consumer, handle, { deadLetterSubject: topology.deadLetterSubject, js });
 * ```
 */
export async function declareJetStreamTopology(
  jsm: JetStreamAdmin,
  options: JetStreamTopologyOptions,
): Promise<JetStreamTopology> {
  const check = new Checker('declareJetStreamTopology');
  if (!passes(() => hasMethod((jsm as JetStreamAdmin | null)?.streams, 'info'))) {
    check.fail(
      'jsm',
      jsm,
      'a JetStreamManager (await nc.jetstreamManager() with nats 2.x, await jetstreamManager(nc) with @nats-io/jetstream)',
    );
  }
  if (!check.object('', options, OPTIONS)) {
    // Not an object, or an option whose read threw (reported): the others are not read, nor blamed as missing.
    if (options === undefined) check.fail('options', options, 'an object');
    check.done();
  }
  const o: Partial<JetStreamTopologyOptions> = options;
  const nameOk = (option: string, value: unknown, required: boolean): void => {
    if (value === undefined && !required) return;
    if (typeof value !== 'string' || !NAME.test(value)) {
      check.fail(option, value, 'a stream or consumer name (no whitespace, ".", "*", ">", "/" or "\\")');
    }
  };
  nameOk('stream', o.stream, true);
  nameOk('consumer', o.consumer, true);
  nameOk('deadLetterStream', o.deadLetterStream, false);
  if (o.deadLetterStream !== undefined && o.deadLetterStream === o.stream) {
    check.fail(
      'deadLetterStream',
      o.deadLetterStream,
      'a stream other than `stream`: dead letters would be stored in the work stream and consumed again',
    );
  }
  const subjects = o.subjects;
  if (!Array.isArray(subjects) || subjects.length === 0 || !subjects.every((s) => isSubject(s, true))) {
    check.fail('subjects', subjects, 'a non-empty array of subjects ("orders.>", "orders.*.new")');
  }
  if (o.filterSubject !== undefined) {
    if (!isSubject(o.filterSubject, true)) check.fail('filterSubject', o.filterSubject, 'a subject');
    else if (
      Array.isArray(subjects) &&
      !subjects.some((s) => isSubject(s, true) && filterFits(o.filterSubject as string, s))
    ) {
      check.fail(
        'filterSubject',
        o.filterSubject,
        'a subject within the stream\'s subjects (within one of them, or a wildcard covering one whole, such as ">")',
      );
    }
  }
  if (o.deadLetterSubject !== undefined && !isSubject(o.deadLetterSubject, false)) {
    check.fail('deadLetterSubject', o.deadLetterSubject, 'a subject without wildcards');
  }
  // Checked against the work subjects only when it is a subject (the default: when the stream name is a string).
  const dlqSubject =
    o.deadLetterSubject !== undefined
      ? isSubject(o.deadLetterSubject, false)
        ? o.deadLetterSubject
        : undefined
      : typeof o.stream === 'string'
        ? `dlq.${o.stream}`
        : undefined;
  if (dlqSubject !== undefined && Array.isArray(subjects)) {
    const deadLetterSubject = dlqSubject;
    const captured = subjects.find((s) => isSubject(s, true) && matches(s, deadLetterSubject));
    if (captured !== undefined) {
      check.fail(
        o.deadLetterSubject === undefined ? 'deadLetterSubject (default)' : 'deadLetterSubject',
        deadLetterSubject,
        `a subject the work stream does not capture (its subject "${captured}" does): dead letters would be consumed again`,
      );
    }
  }
  const deliveriesOk = check.number('maxDeliveries', o.maxDeliveries, { min: 1, integer: true, infinity: true });
  const maxDeliveries = deliveriesOk ? (o.maxDeliveries as number) : 5;
  const md = o.maxDeliver;
  if (md !== undefined && md !== -1 && !(Number.isInteger(md) && md >= 1)) {
    check.fail('maxDeliver', md, '-1 (unlimited) or an integer > maxDeliveries');
  } else if (md !== undefined && (deliveriesOk || o.maxDeliveries === undefined)) {
    const ok = md === -1 || md > maxDeliveries;
    if (!ok) {
      check.fail(
        'maxDeliver',
        md,
        Number.isFinite(maxDeliveries)
          ? `-1 (unlimited) or an integer > maxDeliveries (${maxDeliveries}), so that bulwark, not the server, decides when a message is dead-lettered`
          : '-1 (unlimited), since maxDeliveries is Infinity',
      );
    }
  }
  // Bounded so that the ack wait made of them fits the server's int64 nanoseconds (3 * workingEveryMs included).
  const duration = (option: string, value: unknown, spec: { min: number; integer?: boolean }, max: number) => {
    const ok = check.number(option, value, { ...spec, exclusiveMin: spec.min === 0 && spec.integer !== true });
    if (ok && (value as number) > max) {
      check.fail(
        option,
        value,
        `a number <= ${max} (about ${Math.floor(max / 31_557_600_000)} years): the server keeps durations as int64 nanoseconds`,
      );
      return false;
    }
    return ok;
  };
  const timeoutOk = duration('handlerTimeoutMs', o.handlerTimeoutMs, { min: 0 }, MAX_DURATION_MS / 3);
  const workingOk = duration('workingEveryMs', o.workingEveryMs, { min: 0 }, MAX_DURATION_MS / 3);
  // Only numbers that passed their check are computed with; an invalid one is already reported.
  const handlerTimeoutMs = timeoutOk ? (o.handlerTimeoutMs as number) : undefined;
  const workingEveryMs = workingOk ? (o.workingEveryMs as number) : undefined;
  check.number('maxAckPending', o.maxAckPending, { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true });
  check.oneOf('retention', o.retention, ['limits', 'workqueue']);
  duration('maxAgeMs', o.maxAgeMs, { min: 0, integer: true }, MAX_DURATION_MS);
  const minAckWait =
    workingEveryMs !== undefined
      ? 2 * workingEveryMs
      : handlerTimeoutMs !== undefined
        ? handlerTimeoutMs + 1_000
        : 1_000;
  if (
    duration('ackWaitMs', o.ackWaitMs, { min: 1, integer: true }, MAX_DURATION_MS) &&
    (o.ackWaitMs as number) < minAckWait
  ) {
    check.fail(
      'ackWaitMs',
      o.ackWaitMs,
      workingEveryMs !== undefined
        ? `at least 2 * workingEveryMs (${minAckWait} ms): a heartbeat must reach the server before the ack wait ends`
        : handlerTimeoutMs !== undefined
          ? `at least handlerTimeoutMs + 1000 (${minAckWait} ms): the server would redeliver a message whose handler is still running (or set workingEveryMs)`
          : `at least ${minAckWait} ms`,
    );
  }
  check.done();

  const stream = o.stream as string;
  const deadLetterSubject = o.deadLetterSubject ?? `dlq.${stream}`;
  const consumer = o.consumer as string;
  const deadLetterStream = o.deadLetterStream ?? `${stream}_DLQ`;
  const ackWaitMs =
    o.ackWaitMs ??
    (workingEveryMs !== undefined
      ? Math.max(30_000, Math.ceil(3 * workingEveryMs)) // whole ms: the server takes integer nanoseconds
      : handlerTimeoutMs !== undefined
        ? Math.ceil(handlerTimeoutMs) + 10_000
        : 60_000);
  const maxDeliver = o.maxDeliver ?? -1;
  const where = 'declareJetStreamTopology';

  const info = (name: string): Promise<{ readonly config: JetStreamStreamSettings } | undefined> =>
    jsm.streams.info(name).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });

  // The work stream: created, or given the subjects it lacks.
  const work = await info(stream);
  if (work === undefined) {
    const config: JetStreamStreamSettings = {
      name: stream,
      subjects: [...(subjects as string[])],
      retention: o.retention === 'workqueue' ? TOPOLOGY_ENUMS.workqueue : TOPOLOGY_ENUMS.limits,
    };
    if (o.maxAgeMs !== undefined && o.maxAgeMs > 0) config.max_age = nanos(o.maxAgeMs);
    await jsm.streams.add(config);
  } else {
    const have = work.config.subjects ?? [];
    const missing = (subjects as string[]).filter((s) => !have.includes(s));
    if (missing.length > 0) await jsm.streams.update(stream, { ...work.config, subjects: [...have, ...missing] });
  }

  // The dead-letter stream: Limits retention, so dead letters stay until someone removes them.
  const dlq = await info(deadLetterStream);
  if (dlq === undefined) {
    await jsm.streams.add({
      name: deadLetterStream,
      subjects: [deadLetterSubject],
      retention: TOPOLOGY_ENUMS.limits,
    });
  } else {
    if (dlq.config.retention !== TOPOLOGY_ENUMS.limits) {
      throw new Error(
        `${where}: the dead-letter stream "${deadLetterStream}" exists with retention "${dlq.config.retention}"; ` +
          'dead letters need "limits" retention to be kept (use another deadLetterStream)',
      );
    }
    const have = dlq.config.subjects ?? [];
    if (!have.some((s) => matches(s, deadLetterSubject))) {
      await jsm.streams.update(deadLetterStream, { ...dlq.config, subjects: [...have, deadLetterSubject] });
    }
  }

  // The durable consumer.
  const settings = {
    ack_wait: nanos(ackWaitMs),
    max_deliver: maxDeliver,
    max_ack_pending: o.maxAckPending ?? 1_000,
  };
  const existing: { readonly config: JetStreamConsumerSettings } | undefined = await jsm.consumers
    .info(stream, consumer)
    .catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
  if (existing === undefined) {
    const config: JetStreamConsumerSettings = {
      durable_name: consumer,
      ack_policy: TOPOLOGY_ENUMS.explicit,
      deliver_policy: TOPOLOGY_ENUMS.all,
      ...settings,
    };
    if (o.filterSubject !== undefined) config.filter_subject = o.filterSubject;
    await jsm.consumers.add(stream, config);
  } else {
    const filter = existing.config.filter_subject || undefined;
    if (filter !== o.filterSubject) {
      throw new Error(
        `${where}: the consumer "${consumer}" of stream "${stream}" exists with filter subject ` +
          `${JSON.stringify(filter ?? null)}, not ${JSON.stringify(o.filterSubject ?? null)} (a filter cannot be changed here: delete the consumer or use another name)`,
      );
    }
    if (existing.config.ack_policy !== TOPOLOGY_ENUMS.explicit) {
      throw new Error(
        `${where}: the consumer "${consumer}" of stream "${stream}" exists with ack policy ` +
          `"${existing.config.ack_policy}"; bulwark needs "explicit" (delete the consumer or use another name)`,
      );
    }
    await jsm.consumers.update(stream, consumer, settings);
  }

  return { stream, consumer, deadLetterStream, deadLetterSubject, ackWaitMs, maxDeliver };
}
