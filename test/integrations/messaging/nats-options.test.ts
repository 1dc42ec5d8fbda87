import fc from 'fast-check';
import type { Consumer, JetStreamManager, JsMsg } from 'nats';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError, isInvalidOptionsError } from '../../../src/index.js';
import {
  consumeJetStream,
  declareJetStreamTopology,
  jetstreamDelivery,
  wrapHandler,
} from '../../../src/integrations/messaging/index.js';

// Option fuzzing for the NATS adapter's factories: random option objects give an InvalidOptionsError naming the
// factory, or are accepted; never another error. No server is involved: the manager below fails any call with a
// sentinel, which marks options that passed validation.
const REACHED = new Error('reached the server');
const jsm = {
  streams: { info: () => Promise.reject(REACHED) },
  consumers: { info: () => Promise.reject(REACHED) },
} as unknown as JetStreamManager;

const hostile = fc.oneof(
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -1,
    0,
    0.5,
    1e300,
    '',
    ' ',
    'a.b',
    '>',
    'orders.>',
    null,
    undefined,
    true,
    [],
    {},
    () => 1,
    Symbol('s'),
    Object.create(null),
  ),
  fc.anything(),
);
const keys = [
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
  '__proto__',
  'constructor',
  'unknown',
];
const randomOptions = fc.dictionary(fc.constantFrom(...keys), hostile, { maxKeys: 6 });

describe('NATS adapter options', () => {
  it('declareJetStreamTopology: any options give an InvalidOptionsError or reach the server', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(randomOptions, hostile),
        fc.record({ stream: fc.constant('ORDERS'), subjects: fc.constant(['orders.>']), consumer: fc.constant('w') }),
        fc.boolean(),
        async (random, valid, merge) => {
          const options = merge && typeof random === 'object' && random !== null ? { ...valid, ...random } : random;
          try {
            await declareJetStreamTopology(jsm, options as never);
            return false;
          } catch (error) {
            if (error === REACHED) return true;
            return isInvalidOptionsError(error) && /declareJetStreamTopology/.test((error as Error).message);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('declareJetStreamTopology: every problem at once, naming option, value and what is allowed', async () => {
    const error = await declareJetStreamTopology(jsm, {
      stream: 'ORDERS',
      subjects: ['orders.>'],
      consumer: 'w',
      maxDeliveries: 0,
      handlerTimeoutMs: Number.NaN,
      ackWaitMs: -5,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    const message = (error as Error).message;
    expect(message).toMatch(/maxDeliveries: expected an integer >= 1 or Infinity, got 0/);
    expect(message).toMatch(/handlerTimeoutMs: expected a number > 0, got NaN/);
    expect(message).toMatch(/ackWaitMs: expected an integer >= 1, got -5/);
  });

  it('jetstreamDelivery and consumeJetStream: any options give an InvalidOptionsError or are accepted', () => {
    const msg = { data: new Uint8Array(0), info: { deliveryCount: 1 }, headers: undefined } as unknown as JsMsg;
    const consumer = { consume: () => Promise.reject(new Error('not consuming')) } as unknown as Consumer;
    const handle = wrapHandler(() => {});
    const deliveryOptions = fc.dictionary(
      fc.constantFrom(
        'deadLetterSubject',
        'js',
        'releaseDelayMs',
        'onError',
        'maxMessages',
        'onClose',
        'clock',
        '__proto__',
      ),
      hostile,
      { maxKeys: 4 },
    );
    fc.assert(
      fc.property(fc.oneof(deliveryOptions, hostile), (options) => {
        for (const make of [
          () => jetstreamDelivery(msg, options as never),
          () => consumeJetStream(consumer, handle, options as never).stop(),
        ]) {
          try {
            make();
          } catch (error) {
            if (!isInvalidOptionsError(error)) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
