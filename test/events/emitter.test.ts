import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { Emitter, EV } from '../../src/events/emitter.js';
import {
  channelName,
  circuitBreaker,
  constant,
  EVENT_TYPES,
  pipeline,
  type ResilienceEvent,
  retry,
} from '../../src/index.js';
import { captureWarnings } from '../helpers/warnings.js';

describe('events', () => {
  it('maps every event type to a bulwark diagnostics channel', () => {
    expect(channelName('retry.attempt')).toBe('bulwark:retry:attempt');
    expect(channelName('circuit.half_open')).toBe('bulwark:circuit:half_open');
    expect(channelName('execution.completed')).toBe('bulwark:execution:completed');
    expect(new Set(EVENT_TYPES.map(channelName)).size).toBe(EVENT_TYPES.length);
  });

  it('publishes on diagnostics_channel only while someone subscribes', async () => {
    const seen: unknown[] = [];
    const onMessage = (m: unknown) => seen.push(m);
    const cb = circuitBreaker({ name: 'dc', window: { kind: 'consecutive', threshold: 1 } });
    const e = new Emitter();
    expect(e.wants(EV.circuitOpen)).toBe(false);
    subscribe(channelName('circuit.open'), onMessage);
    try {
      expect(e.wants(EV.circuitOpen)).toBe(true);
      await cb.execute(() => Promise.reject(new Error('x'))).catch(() => undefined);
    } finally {
      unsubscribe(channelName('circuit.open'), onMessage);
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ type: 'circuit.open', policy: 'dc' });
    expect(e.wants(EV.circuitOpen)).toBe(false);
  });

  it('refuses to listen to something that is not an event type, naming the valid ones', () => {
    const p = retry();
    expect(() => p.on('retry.atempt' as 'retry.attempt', () => undefined)).toThrow(
      /cannot listen to "retry\.atempt": not an event type; expected one of retry\.attempt, /,
    );
    expect(() => p.on('toString' as 'retry.attempt', () => undefined)).toThrow(TypeError);
  });

  it('gives every event type its own id, in EVENT_TYPES order', () => {
    expect(Object.values(EV)).toEqual(EVENT_TYPES.map((_, i) => i));
  });

  it('unsubscribes exactly the listener, once', () => {
    const e = new Emitter();
    const got: string[] = [];
    const offA = e.on('fallback.used', () => got.push('a'));
    const offB = e.on('fallback.used', () => got.push('b'));
    const event = {
      type: 'fallback.used',
      policy: 'f',
      operation: 'o',
      attempt: 1,
      outcome: { ok: false, error: 1 },
    } as const satisfies ResilienceEvent;
    e.emit(EV.fallbackUsed, event);
    offA();
    offA();
    e.emit(EV.fallbackUsed, event);
    offB();
    expect(e.wants(EV.fallbackUsed)).toBe(false);
    e.emit(EV.fallbackUsed, event);
    expect(got).toEqual(['a', 'b', 'b']);
  });

  it('wants a type while this emitter has a listener for it or its channel has a subscriber, and not after', () => {
    const e = new Emitter();
    const other = new Emitter();
    const onMessage = () => undefined;
    const offA = e.on('fallback.used', () => undefined);
    const offB = e.on('fallback.used', () => undefined);
    expect(e.wants(EV.fallbackUsed)).toBe(true);
    // Per type and per emitter.
    expect(e.wants(EV.retryAttempt)).toBe(false);
    expect(other.wants(EV.fallbackUsed)).toBe(false);
    offA();
    expect(e.wants(EV.fallbackUsed)).toBe(true);
    subscribe(channelName('fallback.used'), onMessage);
    try {
      offB();
      // No listener left, but the channel has a subscriber.
      expect(e.wants(EV.fallbackUsed)).toBe(true);
      expect(other.wants(EV.fallbackUsed)).toBe(true);
    } finally {
      unsubscribe(channelName('fallback.used'), onMessage);
    }
    expect(e.wants(EV.fallbackUsed)).toBe(false);
    // A listener added again after the last one left is heard again.
    const offC = e.on('fallback.used', () => undefined);
    expect(e.wants(EV.fallbackUsed)).toBe(true);
    offC();
    expect(e.wants(EV.fallbackUsed)).toBe(false);
  });

  it('a throwing listener never changes the outcome and is reported once as a warning', async () => {
    const captured = captureWarnings();
    const warnings = captured.warnings;
    try {
      const policy = retry({ maxAttempts: 3, backoff: () => 0 });
      const thrower = () => {
        throw new Error('listener bug');
      };
      policy.on('retry.attempt', thrower);
      let n = 0;
      await expect(
        policy.execute(() => {
          if (++n < 3) throw new Error('flaky');
          return 'fine';
        }),
      ).resolves.toBe('fine');
      await new Promise((r) => setImmediate(r));
    } finally {
      captured.stop();
    }
    const ours = warnings;
    expect(ours.map((w) => w.code)).toEqual(['BULWARK_LISTENER_THREW']);
    expect(ours[0]?.message).toMatch(
      /a bulwark "retry.attempt" listener threw \(listener bug\); the call was not affected/,
    );
  });
});

describe('one listener reached by several paths', () => {
  it('is called once per event, and stays until every path lets go', async () => {
    const r = retry({ name: 'shared', maxAttempts: 2, backoff: constant(0) });
    const a = pipeline(r);
    const b = pipeline(r);
    let calls = 0;
    const fn = () => {
      calls++;
    };
    const offA = a.on('retry.attempt', fn);
    const offB = b.on('retry.attempt', fn);
    const offDirect = r.on('retry.attempt', fn);
    await r.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    expect(calls).toBe(1);
    offA();
    offA(); // a second call of the same unsubscribe changes nothing
    offDirect();
    await r.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    expect(calls).toBe(2);
    offB();
    await r.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    expect(calls).toBe(2);
  });
});
