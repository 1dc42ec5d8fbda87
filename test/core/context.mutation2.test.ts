// Tests killing mutants that survived `npm run mutation` in core/context.ts: subscribing to a view that nothing
// can abort, unsubscribing without a subscription, and the reason of such a view.
import { describe, expect, it } from 'vitest';
import { rootContext } from '../../src/core/context.js';

const listener = () => {
  const reasons: unknown[] = [];
  return { reasons, _onAbort: (reason: unknown) => reasons.push(reason) };
};

describe('ExecutionContext subscriptions (mutation, round 2)', () => {
  it('a view with no signal and no scope cannot be subscribed to', () => {
    const ctx = rootContext(undefined);
    expect(ctx._subscribe(listener())).toBe(false);
    expect(ctx._reason).toBeUndefined();
    expect(ctx._aborted).toBe(false);
  });

  it('unsubscribing a listener that never subscribed is a no-op, with or without per-call extras', () => {
    const bare = rootContext(undefined);
    expect(() => bare._unsubscribe(listener())).not.toThrow();
    const withExtras = rootContext({ properties: { tenant: 'a' } as never });
    withExtras._extras();
    expect(() => withExtras._unsubscribe(listener())).not.toThrow();
  });

  it("a view with the caller's signal subscribes once per listener and hears its abort", () => {
    const ac = new AbortController();
    const ctx = rootContext({ signal: ac.signal });
    const a = listener();
    const b = listener();
    expect(ctx._subscribe(a)).toBe(true);
    expect(ctx._derive(2, undefined)._subscribe(b)).toBe(true);
    ctx._unsubscribe(a);
    ac.abort('gone');
    expect(a.reasons).toEqual([]);
    expect(b.reasons).toEqual(['gone']);
    expect(ctx._reason).toBe('gone');
  });
});
