import { describe, expect, it } from 'vitest';
import {
  type Context,
  FallbackPolicy,
  type FallbackUsedEvent,
  fallback,
  handleAllErrors,
  handleErrors,
  handleOutcomes,
  handleResults,
  InvalidOptionsError,
  type Outcome,
  Properties,
  PropertyKey,
  pipeline,
  TimeoutError,
  timeout,
} from '../../../src/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import { deferred, invalidOptions, rejectionOf } from '../../helpers/deferred.js';
import { captureWarnings } from '../../helpers/warnings.js';

const thrower = (value: unknown) => (): never => {
  throw value;
};

describe('fallback: values', () => {
  it('replaces an error with a static value', async () => {
    const fb = fallback({ value: 'cached' });
    expect(fb).toBeInstanceOf(FallbackPolicy);
    expect(await fb.execute<string>(thrower(new Error('down')))).toBe('cached');
    expect(
      await fb.execute<string>(async () => {
        throw new Error('async down');
      }),
    ).toBe('cached');
  });

  it('passes a success through untouched without calling the value function', async () => {
    let calls = 0;
    const fb = fallback({
      value: () => {
        calls++;
        return 'fb';
      },
    });
    expect(await fb.execute(() => 'real')).toBe('real');
    expect(await fb.execute(async () => 'real async')).toBe('real async');
    expect(calls).toBe(0);
  });

  it('calls a value function with the failure outcome and the context (sync)', async () => {
    const seen: { outcome: Outcome<unknown>; ctx: Context }[] = [];
    const KEY = new PropertyKey<string>('tenant');
    const fb = fallback({
      value: (outcome: Outcome<unknown>, ctx: Context) => {
        seen.push({ outcome, ctx });
        return `fallback for ${ctx.properties.get(KEY)}`;
      },
    });
    const boom = new Error('boom');
    const result = await fb.execute<string>(thrower(boom), {
      operation: 'GET /quote',
      properties: new Properties().set(KEY, 'acme'),
    });
    expect(result).toBe('fallback for acme');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.outcome).toEqual({ ok: false, error: boom });
    const o = seen[0]?.outcome;
    expect(o !== undefined && !o.ok && o.error === boom).toBe(true);
    expect(seen[0]?.ctx.operation).toBe('GET /quote');
    expect(seen[0]?.ctx.attempt).toBe(1);
  });

  it('awaits an async value function', async () => {
    const fb = fallback({ value: async (outcome: Outcome<unknown>) => (outcome.ok ? 'n/a' : 'async fallback') });
    expect(await fb.execute<string>(thrower(new Error('x')))).toBe('async fallback');
  });

  it('rejects with the error of a value function that throws or rejects', async () => {
    const fbErr = new Error('fallback broke');
    const sync = fallback({ value: thrower(fbErr) });
    expect(await rejectionOf(sync.execute(thrower(new Error('op'))))).toBe(fbErr);
    const asyncFb = fallback({
      value: async () => {
        throw fbErr;
      },
    });
    expect(await rejectionOf(asyncFb.execute(thrower(new Error('op'))))).toBe(fbErr);
  });

  it('a value of undefined or null is a valid replacement', async () => {
    expect(await fallback({ value: undefined }).execute(thrower(new Error('x')))).toBe(undefined);
    expect(await fallback({ value: null }).execute(thrower(new Error('x')))).toBe(null);
  });

  it('returns a function value when wrapped in a function', async () => {
    const fn = (): number => 1;
    const fb = fallback({ value: () => fn });
    expect(await fb.execute<() => number>(thrower(new Error('x')))).toBe(fn);
  });
});

describe('fallback: classification', () => {
  it('falls back from handled results via handleResults, and passes unhandled results through', async () => {
    const fb = fallback({ value: -1, handle: handleResults<number>((v) => v >= 500) });
    expect(await fb.execute(() => 503)).toBe(-1);
    expect(await fb.execute(() => 200)).toBe(200);
    // handleResults still handles every error
    expect(await fb.execute<number>(thrower(new Error('x')))).toBe(-1);
  });

  it('passes unhandled errors through unchanged (same object)', async () => {
    const fb = fallback({ value: 'fb', handle: handleErrors((e) => e instanceof RangeError) });
    const err = new TypeError('not handled');
    expect(await rejectionOf(fb.execute(thrower(err)))).toBe(err);
    expect(await fb.execute<string>(thrower(new RangeError('handled')))).toBe('fb');
  });

  it.each([
    ['a string', 'str'],
    ['undefined', undefined],
    ['null', null],
    ['a frozen object', Object.freeze({ code: 'EFROZEN' })],
    ['a number', 0],
  ])('passes %s thrown by the op through unchanged when not handled', async (_label, thrown) => {
    const fb = fallback({ value: 'fb', handle: handleErrors((e) => e instanceof Error) });
    const e = await rejectionOf(fb.execute(thrower(thrown)));
    expect(e).toBe(thrown);
  });

  it.each([
    ['a string', 'str'],
    ['undefined', undefined],
    ['null', null],
    ['a frozen object', Object.freeze({ code: 'EFROZEN' })],
  ])('falls back from %s by default (every error is handled)', async (_label, thrown) => {
    const outcomes: Outcome<unknown>[] = [];
    const fb = fallback({
      value: (o: Outcome<unknown>) => {
        outcomes.push(o);
        return 'fb';
      },
    });
    expect(await fb.execute<string>(thrower(thrown))).toBe('fb');
    expect(outcomes).toHaveLength(1);
    const o = outcomes[0];
    expect(o?.ok).toBe(false);
    expect(o !== undefined && !o.ok && o.error === thrown).toBe(true);
  });

  it('handles non-Error values per the predicate', async () => {
    const frozen = Object.freeze({ code: 'EFROZEN' });
    const fb = fallback({ value: 'fb', handle: handleErrors((e) => e === 'str' || e === frozen) });
    expect(await fb.execute<string>(thrower('str'))).toBe('fb');
    expect(await fb.execute<string>(thrower(frozen))).toBe('fb');
    expect(await rejectionOf(fb.execute(thrower('other')))).toBe('other');
    expect(await rejectionOf(fb.execute(thrower(undefined)))).toBe(undefined);
  });

  it('an outcome classifier sees successful results too', async () => {
    const seen: Outcome<unknown>[] = [];
    const fb = fallback({
      value: 0,
      handle: handleOutcomes((o: Outcome<unknown>) => {
        seen.push(o);
        return false;
      }),
    });
    expect(await fb.execute(() => 5)).toBe(5);
    const err = new Error('e');
    expect(await rejectionOf(fb.execute(thrower(err)))).toBe(err);
    expect(seen).toEqual([
      { ok: true, value: 5 },
      { ok: false, error: err },
    ]);
  });

  it('rejects with the error a throwing predicate threw', async () => {
    const predicateError = new Error('predicate broke');
    const fb = fallback({
      value: 'fb',
      handle: () => {
        throw predicateError;
      },
    });
    expect(await rejectionOf(fb.execute(thrower(new Error('op'))))).toBe(predicateError);
    // A plain predicate sees errors only: a result passes by without it.
    expect(await fb.execute(() => 'ok')).toBe('ok');
    const outcomes = fallback({
      value: 'fb',
      handle: handleOutcomes(() => {
        throw predicateError;
      }),
    });
    expect(await rejectionOf(outcomes.execute(() => 'ok'))).toBe(predicateError);
  });

  it('falls back from a TimeoutError of an inner timeout', async () => {
    const clock = new FakeClock();
    const p = pipeline(fallback({ value: 'stale' }), timeout({ ms: 100, clock }));
    let outcome: Outcome<unknown> | undefined;
    p.on('fallback.used', (e) => {
      outcome = e.outcome;
    });
    const g = deferred<string>();
    const result = p.execute(() => g.promise);
    await clock.advance(100);
    expect(await result).toBe('stale');
    expect(outcome !== undefined && !outcome.ok && outcome.error instanceof TimeoutError).toBe(true);
    g.resolve('late');
    await clock.flush();
  });
});

describe('fallback: caller abort', () => {
  it('never falls back when the caller aborted, even from an error other than the abort reason', async () => {
    let valueCalls = 0;
    const fb = fallback({
      value: () => {
        valueCalls++;
        return 'fb';
      },
    });
    const events: FallbackUsedEvent[] = [];
    fb.on('fallback.used', (e) => events.push(e));

    const c1 = new AbortController();
    const reason = new Error('caller aborted');
    const p1 = fb.execute(
      ({ signal }) =>
        new Promise<string>((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      { signal: c1.signal },
    );
    c1.abort(reason);
    expect(await rejectionOf(p1)).toBe(reason);

    const c2 = new AbortController();
    const own = new Error('op noticed the abort and threw its own error');
    const p2 = fb.execute(
      ({ signal }) =>
        new Promise<string>((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(own), { once: true });
        }),
      { signal: c2.signal },
    );
    c2.abort();
    expect(await rejectionOf(p2)).toBe(own);

    expect(valueCalls).toBe(0);
    expect(events).toEqual([]);
  });

  it('never falls back from a caller abort that reaches it through an inner timeout', async () => {
    const clock = new FakeClock();
    const p = pipeline(fallback({ value: 'fb' }), timeout({ ms: 100, clock }));
    const controller = new AbortController();
    const g = deferred<string>();
    const result = p.execute(() => g.promise, { signal: controller.signal });
    await clock.advance(10);
    const reason = new Error('stop');
    controller.abort(reason);
    expect(await rejectionOf(result)).toBe(reason);
    g.resolve('late');
    await clock.flush();
  });

  it('a pre-aborted signal rejects with its reason without calling the op or the fallback', async () => {
    let opCalls = 0;
    let fbCalls = 0;
    const fb = fallback({
      value: () => {
        fbCalls++;
        return 'fb';
      },
    });
    const reason = new Error('pre');
    const e = await rejectionOf(
      fb.execute(
        () => {
          opCalls++;
          return 'x';
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(e).toBe(reason);
    expect(opCalls).toBe(0);
    expect(fbCalls).toBe(0);
  });
});

describe('fallback: events', () => {
  it('emits fallback.used with the replaced outcome, only when it falls back', async () => {
    const fb = fallback({ value: 0, name: 'quote-fallback', handle: handleResults<number>((v) => v < 0) });
    const events: FallbackUsedEvent[] = [];
    const off = fb.on('fallback.used', (e) => events.push(e));
    const err = new Error('x');
    expect(await fb.execute<number>(thrower(err), { operation: 'quote' })).toBe(0);
    expect(await fb.execute(() => -5)).toBe(0);
    expect(await fb.execute(() => 5)).toBe(5);
    expect(events).toEqual([
      {
        type: 'fallback.used',
        policy: 'quote-fallback',
        operation: 'quote',
        attempt: 1,
        outcome: { ok: false, error: err },
      },
      {
        type: 'fallback.used',
        policy: 'quote-fallback',
        operation: 'default',
        attempt: 1,
        outcome: { ok: true, value: -5 },
      },
    ]);
    off();
    await fb.execute<number>(thrower(err));
    expect(events).toHaveLength(2);
  });

  it('a listener that throws does not change the outcome', async () => {
    const fb = fallback({ value: 'fb' });
    fb.on('fallback.used', () => {
      throw new Error('listener bug');
    });
    const warnings = captureWarnings();
    try {
      expect(await fb.execute<string>(thrower(new Error('x')))).toBe('fb');
    } finally {
      warnings.stop();
    }
    expect(warnings.names()).toEqual(['BulwarkListenerWarning']);
    expect(warnings.messages()[0]).toMatch(/a bulwark "fallback.used" listener threw \(listener bug\)/);
  });
});

describe('fallback: options', () => {
  it('requires value', () => {
    const e = invalidOptions(() => fallback({} as never));
    expect(e).toBeInstanceOf(InvalidOptionsError);
    expect(e.policy).toBe('fallback');
    expect(e.problems).toEqual([
      { option: 'value', received: 'undefined', expected: 'a value or a function (required)' },
    ]);
    expect(invalidOptions(() => fallback(undefined as never)).problems).toEqual([
      { option: 'value', received: 'undefined', expected: 'a value or a function (required)' },
    ]);
  });

  it('reports every problem at once', () => {
    const e = invalidOptions(() => fallback({ handle: 5, name: '', valu: 1 } as never));
    expect(e.problems).toEqual([
      { option: 'valu', received: '1', expected: 'a known option (unknown name; allowed: value, handle, name, clock)' },
      { option: 'value', received: 'undefined', expected: 'a value or a function (required)' },
      {
        option: 'handle',
        received: '5',
        expected:
          'a function (error) => boolean, or handleOutcomes(), handleResults(), handleErrors() or handleAllErrors',
      },
      { option: 'name', received: '""', expected: 'a non-empty string' },
    ]);
  });

  it('uses handleAllErrors by default and a default name', async () => {
    const fb = fallback({ value: 1, handle: handleAllErrors });
    expect(fb.name).toBe('fallback');
    expect(await fb.execute<number>(thrower(new Error('x')))).toBe(1);
  });
});
